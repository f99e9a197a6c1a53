using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Xunit;

namespace OtelThreadContext.Tests;

/// <summary>The C# mirror of the record has the native size and offsets.</summary>
public sealed class RecordLayoutTests
{
    [Fact]
    public void SizeMatchesTheNativeConstant()
    {
        Assert.Equal(640, NativeMethods.OTEL_THREAD_CTX_RECORD_SIZE);
        Assert.Equal(NativeMethods.OTEL_THREAD_CTX_RECORD_SIZE, Unsafe.SizeOf<OtelThreadCtxRecord>());
        Assert.Equal(NativeMethods.OTEL_THREAD_CTX_RECORD_SIZE, Marshal.SizeOf<OtelThreadCtxRecord>());
    }

    [Fact]
    public void OffsetsMatchWhatTheCCompilerComputesFromTheHeader()
    {
        // Ask gcc for offsetof/sizeof of the header's struct: the native side's own numbers.
        using var dir = new TestSupport.TempDir("otel-layout-");
        string src = Path.Combine(dir.Path, "layout.c");
        File.WriteAllText(src, """
            #include <stdio.h>
            #include <stddef.h>
            #include "otel_thread_ctx.h"
            int main(void) {
              printf("TraceId %zu\nSpanId %zu\nValid %zu\nTraceFlags %zu\nAttrsDataSize %zu\nAttrsData %zu\nsize %zu\nheader %d\n",
                offsetof(OtelThreadCtxRecord, trace_id), offsetof(OtelThreadCtxRecord, span_id),
                offsetof(OtelThreadCtxRecord, valid), offsetof(OtelThreadCtxRecord, trace_flags),
                offsetof(OtelThreadCtxRecord, attrs_data_size), offsetof(OtelThreadCtxRecord, attrs_data),
                sizeof(OtelThreadCtxRecord), OTEL_THREAD_CTX_HEADER_SIZE);
              return 0;
            }
            """);
        string exe = Path.Combine(dir.Path, "layout");
        var (cc, ccOut) = TestSupport.Run("gcc", new[] { "-I", Path.Combine(TestSupport.RepoRoot, "include"), src, "-o", exe });
        Assert.True(cc == 0, ccOut);
        var (rc, output) = TestSupport.Run(exe, []);
        Assert.Equal(0, rc);
        Dictionary<string, int> native = output.Split('\n', System.StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split(' '))
            .ToDictionary(p => p[0], p => int.Parse(p[1], System.Globalization.CultureInfo.InvariantCulture));

        foreach (string field in new[] { "TraceId", "SpanId", "Valid", "TraceFlags", "AttrsDataSize", "AttrsData" })
        {
            Assert.True(
                native[field] == (int)Marshal.OffsetOf<OtelThreadCtxRecord>(field),
                $"{field}: C offset {native[field]}, C# offset {Marshal.OffsetOf<OtelThreadCtxRecord>(field)}");
        }

        Assert.Equal(native["size"], Unsafe.SizeOf<OtelThreadCtxRecord>());
        Assert.Equal(native["header"], (int)Marshal.OffsetOf<OtelThreadCtxRecord>("AttrsData"));
        Assert.Equal(NativeMethods.OTEL_THREAD_CTX_ATTRS_CAPACITY, native["size"] - native["AttrsData"]);
    }

    [Fact]
    public void OffsetsMatchTheSpecTable()
    {
        // OTEP 4947's table, as the header's comment restates it.
        Assert.Equal(0, (int)Marshal.OffsetOf<OtelThreadCtxRecord>(nameof(OtelThreadCtxRecord.TraceId)));
        Assert.Equal(16, (int)Marshal.OffsetOf<OtelThreadCtxRecord>(nameof(OtelThreadCtxRecord.SpanId)));
        Assert.Equal(24, (int)Marshal.OffsetOf<OtelThreadCtxRecord>(nameof(OtelThreadCtxRecord.Valid)));
        Assert.Equal(25, (int)Marshal.OffsetOf<OtelThreadCtxRecord>(nameof(OtelThreadCtxRecord.TraceFlags)));
        Assert.Equal(26, (int)Marshal.OffsetOf<OtelThreadCtxRecord>(nameof(OtelThreadCtxRecord.AttrsDataSize)));
        Assert.Equal(28, (int)Marshal.OffsetOf<OtelThreadCtxRecord>(nameof(OtelThreadCtxRecord.AttrsData)));
        Assert.Contains("Offsets: trace_id 0, span_id 16, valid 24, trace_flags 25, attrs_data_size 26,", File.ReadAllText(TestSupport.HeaderPath));
    }
}
