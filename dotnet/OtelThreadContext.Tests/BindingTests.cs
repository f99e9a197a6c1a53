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
            .Replace("uint8_t trace_flags);", "uint16_t trace_flags);")
            .Replace("} // extern \"C\"", "int32_t otel_thread_ctx_brand_new(size_t n);\n\n} // extern \"C\"");
        Assert.NotEqual(text, changed);
        List<string> problems = new CHeader(changed).Compare(CHeader.Declarations());
        Assert.Contains(problems, p => p.StartsWith("otel_thread_ctx_brand_new: in the header, no C# declaration", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("otel_thread_ctx_update: parameter 2", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("otel_thread_ctx_new: parameter 2", StringComparison.Ordinal));

        string removed = Regex.Replace(text, @"size_t otel_thread_ctx_live_records\(void\);", string.Empty);
        Assert.Contains(
            new CHeader(removed).Compare(CHeader.Declarations()),
            p => p == "otel_thread_ctx_live_records: declared in C#, not in the header");
    }

    [Fact]
    public void EveryDeclaredEntryPointIsExportedByTheBuiltLibrary()
    {
        nint lib = NativeLibrary.Load(TestSupport.NativeLibraryPath);
        try
        {
            var missing = CHeader.Declarations().Keys.Where(name => !NativeLibrary.TryGetExport(lib, name, out _)).ToList();
            Assert.True(missing.Count == 0, "not exported by libotel_thread_ctx.so: " + string.Join(", ", missing));
            Assert.False(NativeLibrary.TryGetExport(lib, "otel_thread_ctx_no_such_function", out _));
        }
        finally
        {
            NativeLibrary.Free(lib);
        }
    }

    [Fact]
    public void StatusEnumMatchesTheHeader()
    {
        var expected = Header.StatusValues.ToDictionary(
            kv => kv.Key["OTEL_THREAD_CTX_STATUS_".Length..].Replace("_", string.Empty).ToUpperInvariant(),
            kv => kv.Value);
        var actual = Enum.GetValues<NativeStatus>().ToDictionary(v => v.ToString().ToUpperInvariant(), v => (long)v);
        Assert.Equal(12, expected.Count);
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
    public void ConstantsMatchTheHeaderDefines()
    {
        Assert.Equal((long)NativeMethods.RecordSize, Header.Defines["OTEL_THREAD_CTX_RECORD_SIZE"]);
        Assert.Equal((long)NativeMethods.HeaderSize, Header.Defines["OTEL_THREAD_CTX_HEADER_SIZE"]);
        Assert.Equal((long)NativeMethods.AttrsCapacity, Header.Defines["OTEL_THREAD_CTX_ATTRS_CAPACITY"]);
        Assert.Equal((long)NativeMethods.MaxValueLen, Header.Defines["OTEL_THREAD_CTX_MAX_VALUE_LEN"]);
    }

    [Fact]
    public void OnlyThePerSpanUpdateSkipsTheGCTransition()
    {
        var suppressed = CHeader.Declarations()
            .Where(kv => kv.Value.GetCustomAttribute<SuppressGCTransitionAttribute>() != null)
            .Select(kv => kv.Key)
            .ToList();
        Assert.Equal(new[] { "otel_thread_ctx_update" }, suppressed);
    }

    [Fact]
    public void AttachReportsErrnoThroughSetLastError()
    {
        var attach = CHeader.Declarations()["otel_thread_ctx_attach"].GetCustomAttribute<LibraryImportAttribute>()!;
        Assert.True(attach.SetLastError);

        // An address that is no live handle: NULL back, errno EINVAL (22), nothing attached.
        nint before = NativeMethods.otel_thread_ctx_current();
        nint bogus = NativeMethods.otel_thread_ctx_attach(0x1000);
        Assert.Equal(0, bogus);
        Assert.Equal(22, Marshal.GetLastPInvokeError());
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
        byte* msg = stackalloc byte[1024];
        NativeStatus status = NativeMethods.otel_thread_ctx_self_check(msg, 1024);
        Assert.True(status == NativeStatus.Ok, $"{status}: {Marshal.PtrToStringUTF8((nint)msg)}");
    }
}
