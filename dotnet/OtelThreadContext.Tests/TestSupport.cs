using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Text;
using System.Text.RegularExpressions;
using Xunit;

// The tests share process-wide native state (the live-record count, signal handlers, the
// current thread's slot), so they run one at a time.
[assembly: Xunit.v3.Parallelization(Mode = Xunit.Sdk.ParallelMode.None)]

namespace OtelThreadContext.Tests;

/// <summary>Paths and helpers the tests share.</summary>
internal static class TestSupport
{
    private static string Metadata(string key) =>
        typeof(TestSupport).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .Single(a => a.Key == key).Value
        ?? throw new InvalidOperationException($"assembly metadata {key} is empty");

    /// <summary>The repository root (where Cargo.toml is), as the build saw it.</summary>
    public static string RepoRoot { get; } = Metadata("OtelRepoRoot");

    /// <summary>The product version: the root Cargo.toml's <c>[workspace.package]</c> version.</summary>
    public static string CargoVersion()
    {
        string cargo = File.ReadAllText(Path.Combine(RepoRoot, "Cargo.toml"));
        Match m = Regex.Match(cargo, @"(?m)^\[workspace\.package\]\s*$[^\[]*?^version\s*=\s*""([^""]+)""");
        Assert.True(m.Success, "no version in Cargo.toml's [workspace.package]");
        return m.Groups[1].Value;
    }

    public static string HeaderPath => Path.Combine(RepoRoot, "include", "otel_thread_ctx.h");

    /// <summary>The native library the P/Invokes load: the copy next to the test assembly, a build
    /// with the <c>test-hooks</c> feature.</summary>
    public static string NativeLibraryPath => Path.Combine(AppContext.BaseDirectory, "libotel_thread_ctx.so");

    /// <summary>The library the package ships (no test hooks): what the package tests pack.</summary>
    public static string ShippedLibraryPath { get; } = Metadata("OtelNativeLibrary");

    /// <summary>Runs a program, returning exit code and combined output; fails the test on timeout.
    /// In <paramref name="environment"/>, a null value removes the variable.</summary>
    public static (int ExitCode, string Output) Run(
        string fileName,
        IEnumerable<string> args,
        string? workingDirectory = null,
        IDictionary<string, string?>? environment = null,
        int timeoutSeconds = 300)
    {
        var psi = new ProcessStartInfo(fileName)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? Environment.CurrentDirectory,
        };
        foreach (string a in args)
        {
            psi.ArgumentList.Add(a);
        }

        if (environment != null)
        {
            foreach (var kv in environment)
            {
                if (kv.Value is null)
                {
                    psi.Environment.Remove(kv.Key);
                }
                else
                {
                    psi.Environment[kv.Key] = kv.Value;
                }
            }
        }

        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {fileName}");
        var output = new StringBuilder();
        p.OutputDataReceived += (_, e) => { if (e.Data != null) { lock (output) { output.AppendLine(e.Data); } } };
        p.ErrorDataReceived += (_, e) => { if (e.Data != null) { lock (output) { output.AppendLine(e.Data); } } };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        if (!p.WaitForExit(timeoutSeconds * 1000))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail($"{fileName} {string.Join(' ', args)} did not finish within {timeoutSeconds}s:\n{output}");
        }

        p.WaitForExit();
        lock (output)
        {
            return (p.ExitCode, output.ToString());
        }
    }

    /// <summary>A fresh temporary folder, removed when disposed.</summary>
    public sealed class TempDir : IDisposable
    {
        public TempDir(string prefix)
        {
            Path = Directory.CreateTempSubdirectory(prefix).FullName;
        }

        public string Path { get; }

        public void Dispose()
        {
            try
            {
                Directory.Delete(Path, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}
