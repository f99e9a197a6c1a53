using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using Xunit;

namespace OtelThreadContext.Tests;

/// <summary>The P/Invoke declarations stay in step with the committed header and the built library.</summary>
public sealed unsafe class BindingTests
{
    private static readonly CHeader Header = new(File.ReadAllText(TestSupport.HeaderPath));

    [Fact]
    public void HeaderParsesToTheFunctionsItDeclares()
    {
        // Guards the parser itself: a header it misreads would make the drift check vacuous.
        Assert.True(Header.Functions.Count >= 15, $"only {Header.Functions.Count} functions parsed");
        CHeader.Function attach = Header.Functions.Single(f => f.Name == "otel_thread_ctx_set_attribute");
        Assert.Equal(4, attach.Parameters.Count);
        Assert.Equal(new[] { 8, 1, 8, 8 }, attach.Parameters.Select(CHeader.CTypeSize));
        Assert.Empty(Header.Functions.Single(f => f.Name == "otel_thread_ctx_detach").Parameters);
    }

    [Fact]
    public void EveryHeaderFunctionHasAMatchingDeclaration()
    {
        List<string> problems = Header.Compare(CHeader.Declarations());
        Assert.True(problems.Count == 0, "bindings drifted from include/otel_thread_ctx.h:\n" + string.Join('\n', problems));
    }

    [Fact]
    public void DriftCheckCatchesAMissingFunctionAndAChangedSize()
    {
        string text = File.ReadAllText(TestSupport.HeaderPath);
        string changed = text
            .Replace("uint8_t trace_flags", "uint16_t trace_flags")
            .Replace("} // extern \"C\"", "int32_t otel_thread_ctx_brand_new(size_t n);\n\n} // extern \"C\"");
        Assert.NotEqual(text, changed);
        List<string> problems = new CHeader(changed).Compare(CHeader.Declarations());
        Assert.Contains(problems, p => p.StartsWith("otel_thread_ctx_brand_new: in the header, no C# declaration", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("otel_thread_ctx_update: parameter 2", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("otel_thread_ctx_new: parameter 2", StringComparison.Ordinal));

        string removed = Regex.Replace(text, @"const char \*otel_thread_ctx_version\(void\);", string.Empty);
        Assert.NotEqual(text, removed);
        Assert.Contains(
            new CHeader(removed).Compare(CHeader.Declarations()),
            p => p == "otel_thread_ctx_version: declared in C#, not in the header");
    }

    [Fact]
    public void EveryDeclaredEntryPointIsExportedByTheBuiltLibrary()
    {
        // Header functions by the shipped library, which has no test hook; the test hooks by the
        // test-hooks build the tests load.
        var shipped = Exports(TestSupport.ShippedLibraryPath, CHeader.Declarations().Keys.Concat(TestNativeMethods.TestHooks));
        var missing = CHeader.Declarations().Keys.Where(name => !shipped[name]).ToList();
        Assert.True(missing.Count == 0, "not exported by the shipped libotel_thread_ctx.so: " + string.Join(", ", missing));
        Assert.All(TestNativeMethods.TestHooks, hook => Assert.False(shipped[hook], hook + " is exported by the shipped library"));

        var test = Exports(TestSupport.NativeLibraryPath, CHeader.DeclarationsOf(typeof(TestNativeMethods)).Keys.Append("otel_thread_ctx_no_such_function"));
        Assert.True(test.Where(kv => kv.Key != "otel_thread_ctx_no_such_function").All(kv => kv.Value), "the test library lacks: " + string.Join(", ", test.Where(kv => !kv.Value).Select(kv => kv.Key)));
        Assert.False(test["otel_thread_ctx_no_such_function"]);
    }

    [Fact]
    public void ThePackageDeclaresOnlyWhatItCalls()
    {
        string dir = Path.Combine(TestSupport.RepoRoot, "dotnet", "OtelThreadContext");
        string code = string.Concat(Directory.GetFiles(dir, "*.cs")
            .Where(f => Path.GetFileName(f) != "NativeMethods.cs")
            .Select(File.ReadAllText));
        var unused = CHeader.DeclarationsOf(typeof(NativeMethods)).Keys.Where(name => !code.Contains("NativeMethods." + name + "(", StringComparison.Ordinal)).ToList();
        Assert.True(unused.Count == 0, "declared in NativeMethods but not called by the package: " + string.Join(", ", unused));
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
    public void StatusEnumMatchesTheHeader()
    {
        var expected = Header.StatusValues.ToDictionary(
            kv => kv.Key["OTEL_THREAD_CTX_STATUS_".Length..].Replace("_", string.Empty).ToUpperInvariant(),
            kv => kv.Value);
        var actual = Enum.GetValues<NativeStatus>().ToDictionary(v => v.ToString().ToUpperInvariant(), v => (long)v);
        Assert.Equal(15, expected.Count);
        Assert.Equal(expected.OrderBy(kv => kv.Key), actual.OrderBy(kv => kv.Key));
        Assert.Equal(sizeof(int), Marshal.SizeOf(Enum.GetUnderlyingType(typeof(NativeStatus))));
    }

    [Fact]
    public void ProcessStatusEnumMatchesTheHeader()
    {
        var expected = Header.ProcessStatusValues.ToDictionary(
            kv => kv.Key["OTEL_PROCESS_CTX_STATUS_".Length..].Replace("_", string.Empty).ToUpperInvariant(),
            kv => kv.Value);
        var actual = Enum.GetValues<NativeProcessStatus>().ToDictionary(v => v.ToString().ToUpperInvariant(), v => (long)v);
        Assert.NotEmpty(expected);
        Assert.Equal(expected.OrderBy(kv => kv.Key), actual.OrderBy(kv => kv.Key));
    }

    [Fact]
    public void ProcessStatusNamesInMessagesAreTheHeaders()
    {
        var names = Header.ProcessStatusValues.ToDictionary(kv => kv.Value, kv => kv.Key);
        foreach (NativeProcessStatus status in Enum.GetValues<NativeProcessStatus>())
        {
            Assert.Equal(names[(long)status], status.CName());
        }
    }

    [Fact]
    public void ConstantsMatchTheHeaderDefines()
    {
        Assert.Equal((long)NativeMethods.RecordSize, Header.Defines["OTEL_THREAD_CTX_RECORD_SIZE"]);
        Assert.Equal((long)NativeMethods.HeaderSize, Header.Defines["OTEL_THREAD_CTX_HEADER_SIZE"]);
        Assert.Equal((long)NativeMethods.AttrsCapacity, Header.Defines["OTEL_THREAD_CTX_ATTRS_CAPACITY"]);
        Assert.Equal((long)NativeMethods.MaxValueLen, Header.Defines["OTEL_THREAD_CTX_MAX_VALUE_LEN"]);
    }

    [Fact]
    public void NoPackageCallSkipsTheGCTransition()
    {
        // Each may attach, allocate or take the registry lock.
        var suppressed = CHeader.DeclarationsOf(typeof(NativeMethods))
            .Where(kv => kv.Value.GetCustomAttribute<SuppressGCTransitionAttribute>() != null)
            .Select(kv => kv.Key)
            .ToList();
        Assert.Empty(suppressed);
    }

    [Fact]
    public void AttachReportsAStatusAndNoHandleOnError()
    {
        // An address that is no live handle: INVALID_HANDLE, the out-pointer NULL, nothing attached.
        nint before = TestNativeMethods.otel_thread_ctx_current();
        nint displaced = 0x1234;
        Assert.Equal(NativeStatus.InvalidHandle, NativeMethods.otel_thread_ctx_attach(new RecordHandle(0x1000, ownsHandle: false), &displaced));
        Assert.Equal(0, displaced);
        Assert.Equal(before, TestNativeMethods.otel_thread_ctx_current());
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
