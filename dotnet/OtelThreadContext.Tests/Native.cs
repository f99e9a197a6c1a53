using System;
using System.Collections.Generic;
using OtelThreadContext.TestShared;
using Xunit;

namespace OtelThreadContext.Tests;

/// <summary>What the native library reports, and a way to run code on a fresh thread.</summary>
internal static unsafe class Native
{
    /// <summary>The calling thread's record as <c>otel_thread_ctx_read_current</c> copies it.</summary>
    public static OtelThreadCtxRecord ReadCurrent()
    {
        OtelThreadCtxRecord copy;
        OtelThreadCtxStatus status = TestNativeMethods.otel_thread_ctx_read_current(&copy);
        Assert.Equal(OtelThreadCtxStatus.Ok, status);
        return copy;
    }

    public static byte[] TraceId(in OtelThreadCtxRecord r)
    {
        fixed (byte* p = r.TraceId)
        {
            return new ReadOnlySpan<byte>(p, 16).ToArray();
        }
    }

    public static byte[] SpanId(in OtelThreadCtxRecord r)
    {
        fixed (byte* p = r.SpanId)
        {
            return new ReadOnlySpan<byte>(p, 8).ToArray();
        }
    }

    /// <summary>The record's attribute entries in order, parsed as a reader would.</summary>
    public static List<(byte Key, string Value)> Attributes(in OtelThreadCtxRecord r)
    {
        fixed (byte* p = r.AttrsData)
        {
            return RecordTestHelpers.ParseAttributes(
                new ReadOnlySpan<byte>(p, Math.Min((int)r.AttrsDataSize, NativeMethods.OTEL_THREAD_CTX_ATTRS_CAPACITY)));
        }
    }

    /// <summary>The record of a native handle (its address), or null when it is no live handle.</summary>
    public static OtelThreadCtxRecord* RecordOf(nint ctx)
    {
        OtelThreadCtxRecord* rec;
        return NativeMethods.otel_thread_ctx_record(ctx, &rec) == OtelThreadCtxStatus.Ok ? rec : null;
    }

    /// <summary>A new detached native record holding the given ids, owned by the caller (who frees it).</summary>
    public static nint NewRecord(byte[] traceId, byte[] spanId, byte flags)
    {
        nint ctx;
        fixed (byte* t = traceId)
        fixed (byte* s = spanId)
        {
            Assert.Equal(OtelThreadCtxStatus.Ok, NativeMethods.otel_thread_ctx_new(t, s, flags, &ctx));
        }

        return ctx;
    }

    /// <summary>The record attached to the calling thread, or null.</summary>
    public static OtelThreadCtxRecord* CurrentRecord() => RecordOf(NativeMethods.otel_thread_ctx_current());

    /// <summary>The payload as <c>otel_process_ctx_read_payload</c> copies it, or null when
    /// nothing is published.</summary>
    public static byte[]? ReadPayload()
    {
        nuint size = 0;
        OtelThreadCtxStatus status = TestNativeMethods.otel_process_ctx_read_payload(null, 0, &size);
        if (status == OtelThreadCtxStatus.NotPublished)
        {
            Assert.Equal(0u, (uint)size);
            return null;
        }

        Assert.Equal(OtelThreadCtxStatus.BufferTooSmall, status);
        byte[] buffer = new byte[(int)size];
        fixed (byte* p = buffer)
        {
            nuint copied = 0;
            Assert.Equal(OtelThreadCtxStatus.Ok, TestNativeMethods.otel_process_ctx_read_payload(p, size, &copied));
            Assert.Equal(size, copied);
        }

        return buffer;
    }

    public static long LiveRecords() => (long)TestNativeMethods.otel_thread_ctx_live_records();

    /// <summary>Runs <paramref name="body"/> on a new thread, waits for it to end and rethrows
    /// what it threw.</summary>
    public static void OnNewThread(Action body) => RecordTestHelpers.OnNewThread(body);
}
