using System;
using System.Collections.Generic;
using OtelThreadContext.TestShared;
using Xunit;

namespace OtelThreadContext.Tests;

/// <summary>What the native library reports, and a way to run code on a fresh thread.</summary>
internal static unsafe class Native
{
    /// <summary>The calling thread's record as <c>otel_thread_ctx_read_current</c> copies it.</summary>
    public static ThreadContextRecord ReadCurrent()
    {
        ThreadContextRecord copy;
        NativeStatus status = NativeMethods.otel_thread_ctx_read_current(&copy);
        Assert.Equal(NativeStatus.Ok, status);
        return copy;
    }

    public static byte[] TraceId(in ThreadContextRecord r)
    {
        fixed (byte* p = r.TraceId)
        {
            return new ReadOnlySpan<byte>(p, 16).ToArray();
        }
    }

    public static byte[] SpanId(in ThreadContextRecord r)
    {
        fixed (byte* p = r.SpanId)
        {
            return new ReadOnlySpan<byte>(p, 8).ToArray();
        }
    }

    /// <summary>The record's attribute entries in order, parsed as a reader would.</summary>
    public static List<(byte Key, string Value)> Attributes(in ThreadContextRecord r)
    {
        fixed (byte* p = r.AttrsData)
        {
            return RecordTestHelpers.ParseAttributes(
                new ReadOnlySpan<byte>(p, Math.Min((int)r.AttrsDataSize, NativeMethods.AttrsCapacity)));
        }
    }

    /// <summary>The record of a native handle this code does not own (the raw address of one).</summary>
    public static ThreadContextRecord* RecordOf(nint ctx) =>
        NativeMethods.otel_thread_ctx_record(new RecordHandle(ctx, ownsHandle: false));

    /// <summary>The record attached to the calling thread, or null.</summary>
    public static ThreadContextRecord* CurrentRecord() => RecordOf(NativeMethods.otel_thread_ctx_current());

    public static long LiveRecords() => (long)NativeMethods.otel_thread_ctx_live_records();

    /// <summary>Runs <paramref name="body"/> on a new thread, waits for it to end and rethrows
    /// what it threw.</summary>
    public static void OnNewThread(Action body) => RecordTestHelpers.OnNewThread(body);
}
