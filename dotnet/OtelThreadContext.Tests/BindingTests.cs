using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using Xunit;

namespace OtelThreadContext.Tests;

/// <summary>
/// The P/Invoke declarations against the built library. They are generated from the Rust sources
/// (<c>NativeMethods.g.cs</c>, <c>TestNativeMethods.g.cs</c>), and <c>scripts/dev.sh gen --check</c>
/// fails when they are stale, so their signatures need no check here.
/// </summary>
public sealed unsafe class BindingTests
{
    /// <summary>The P/Invoke declarations of one class, by entry point.</summary>
    private static Dictionary<string, MethodInfo> DeclarationsOf(Type type) =>
        type.GetMethods(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly)
            .Select(m => (Method: m, Import: m.GetCustomAttribute<LibraryImportAttribute>()))
            .Where(x => x.Import != null)
            .ToDictionary(x => x.Import!.EntryPoint ?? x.Method.Name, x => x.Method);

    [Fact]
    public void EveryDeclaredEntryPointIsExportedByTheBuiltLibrary()
    {
        // The C API by the shipped library, which has no test hook; the test hooks by the
        // test-hooks build the tests load.
        ICollection<string> api = DeclarationsOf(typeof(NativeMethods)).Keys;
        ICollection<string> hooks = DeclarationsOf(typeof(TestNativeMethods)).Keys;
        Assert.Contains("otel_thread_ctx_ensure_record", api);
        Assert.Contains("otel_thread_ctx_read_current", hooks);

        var shipped = Exports(TestSupport.ShippedLibraryPath, api.Concat(hooks));
        var missing = api.Where(name => !shipped[name]).ToList();
        Assert.True(missing.Count == 0, "not exported by the shipped libotel_thread_ctx.so: " + string.Join(", ", missing));
        Assert.All(hooks, hook => Assert.False(shipped[hook], hook + " is exported by the shipped library"));

        var test = Exports(TestSupport.NativeLibraryPath, api.Concat(hooks).Append("otel_thread_ctx_no_such_function"));
        Assert.True(test.Where(kv => kv.Key != "otel_thread_ctx_no_such_function").All(kv => kv.Value), "the test library lacks: " + string.Join(", ", test.Where(kv => !kv.Value).Select(kv => kv.Key)));
        Assert.False(test["otel_thread_ctx_no_such_function"]);
    }

    /// <summary>Which of <paramref name="names"/> the library at <paramref name="path"/> exports: defined,
    /// non-local entries of its .dynsym, as readelf lists them. Not loaded: a second copy of the library
    /// in this process (which glibc never unloads) would be a second otel_thread_ctx_v1 slot, and the
    /// self-check rightly fails on that.</summary>
    private static Dictionary<string, bool> Exports(string path, IEnumerable<string> names)
    {
        var (rc, table) = TestSupport.Run("readelf", new[] { "--dyn-syms", "-W", path });
        Assert.True(rc == 0, table);
        // Num: Value Size Type Bind Vis Ndx Name[@version]
        HashSet<string> defined = table.Split('\n')
            .Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(c => c.Length == 8 && c[6] != "UND" && c[4] != "LOCAL")
            .Select(c => c[7].Split('@')[0])
            .ToHashSet(StringComparer.Ordinal);
        Assert.NotEmpty(defined);
        return names.Distinct().ToDictionary(name => name, defined.Contains);
    }

    [Fact]
    public void StatusNamesInMessagesAreTheHeaders()
    {
        string header = File.ReadAllText(TestSupport.HeaderPath);
        foreach (OtelThreadCtxStatus status in Enum.GetValues<OtelThreadCtxStatus>())
        {
            Assert.Contains($"  {status.CName()} = {(int)status},", header, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void NoPackageCallSkipsTheGCTransition()
    {
        // Each may attach, allocate or take the registry lock.
        var suppressed = DeclarationsOf(typeof(NativeMethods))
            .Where(kv => kv.Value.GetCustomAttribute<SuppressGCTransitionAttribute>() != null)
            .Select(kv => kv.Key)
            .ToList();
        Assert.Empty(suppressed);
    }

    [Fact]
    public void AttachReportsAStatusAndNoHandleOnError()
    {
        // An address that is no live handle: INVALID_HANDLE, the out-pointer NULL, nothing attached.
        nint before = NativeMethods.otel_thread_ctx_current();
        nint displaced = 0x1234;
        Assert.Equal(OtelThreadCtxStatus.InvalidHandle, NativeMethods.otel_thread_ctx_attach(0x1000, &displaced));
        Assert.Equal(0, displaced);
        Assert.Equal(before, NativeMethods.otel_thread_ctx_current());
    }

    [Fact]
    public void VersionHasOneSourceOfTruth()
    {
        string version = TestSupport.CargoVersion();

        string native = Marshal.PtrToStringUTF8((nint)NativeMethods.otel_thread_ctx_version())!;
        string managed = typeof(ThreadContext).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()!.InformationalVersion;
        Assert.Equal(version, native);
        Assert.Equal(version, managed.Split('+')[0]);
    }

    [Fact]
    public void NativeSelfCheckPassesInsideTheDotnetProcess()
    {
        // The runtime loads the library with dlopen: the self-check confirms the TLS slot is still
        // published the way readers need in that setting.
        bool ok = ThreadContext.SelfCheck(out string text);
        if (!ok && text.Contains("/libsampler.so references otel_thread_ctx_v1", StringComparison.Ordinal))
        {
            // SignalStressTests loaded tests/support/sampler.c's library, which references the slot
            // as an in-process sampler would, and it stays loaded: the check names it, and nothing else.
            Assert.Single(Regex.Matches(text, " references otel_thread_ctx_v1 "));
            Assert.DoesNotContain("defines its own", text, StringComparison.Ordinal);
            Assert.Contains("This library's own slot is fine", text, StringComparison.Ordinal);
            return;
        }

        Assert.True(ok, text);
    }
}
