using System;
using System.Runtime.InteropServices;

namespace OtelThreadContext;

/// <summary>Turns a loader failure into a message that says what is missing and how to get it.</summary>
internal static class NativeLibraryErrors
{
    /// <summary>The package's runtime folder for this process: linux-[musl-]x64 or linux-[musl-]arm64.</summary>
    private static string Rid =>
        (ThreadContext.IsMusl(RuntimeInformation.RuntimeIdentifier) ? "linux-musl-" : "linux-") +
        (RuntimeInformation.ProcessArchitecture == Architecture.Arm64 ? "arm64" : "x64");

    /// <summary>Runs a native call, explaining a missing library.</summary>
    internal static T Call<T>(Func<T> call)
    {
        try
        {
            return call();
        }
        catch (DllNotFoundException inner)
        {
            throw new DllNotFoundException(
                $"OtelThreadContext could not load its native library {NativeMethods.LibraryFileName} " +
                $"(P/Invoke name \"{NativeMethods.LibraryName}\"). The OtelThreadContext NuGet package carries it as " +
                $"runtimes/{Rid}/native/{NativeMethods.LibraryFileName}, which the build copies to the app's output " +
                $"(or its runtimes/{Rid}/native folder); check that the file is there and that the app runs as " +
                $"{Rid}. Without the package, build it from the otel-thread-ctx sources with " +
                $"`cargo build --release` and put target/release/{NativeMethods.LibraryFileName} next to the app or in a " +
                "folder named by LD_LIBRARY_PATH (or load it from your own path with " +
                "NativeLibrary.SetDllImportResolver for the OtelThreadContext assembly). Loader said: " + inner.Message,
                inner);
        }
    }
}
