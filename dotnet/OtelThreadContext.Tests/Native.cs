using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using OtelThreadContext.TestShared;
using Xunit;

namespace OtelThreadContext.Tests;

/// <summary>
/// P/Invoke declarations the tests need and the package does not call: header functions the
/// package leaves to other callers, and the test hooks a library built with the
/// <c>test-hooks</c> feature exports (not in the header, not in the shipped library).
/// </summary>
internal static unsafe partial class TestNativeMethods
{
    /// <summary>Entry points that are test hooks, not header functions.</summary>
    public static readonly string[] TestHooks =
    {
        "otel_thread_ctx_read_current", "otel_thread_ctx_live_records", "otel_process_ctx_read_payload",
        "otel_process_ctx_forget_key_map",
    };

    [LibraryImport(NativeMethods.LibraryName)]
    internal static partial NativeStatus otel_thread_ctx_update(byte* trace_id, byte* span_id, byte trace_flags);

    [LibraryImport(NativeMethods.LibraryName)]
    internal static partial NativeStatus otel_thread_ctx_clear();

    [LibraryImport(NativeMethods.LibraryName)]
    internal static partial nint otel_thread_ctx_current();

    [LibraryImport(NativeMethods.LibraryName)]
    internal static partial NativeStatus otel_thread_ctx_set_attribute(nint ctx, byte key_index, byte* value, nuint value_len);

    [LibraryImport(NativeMethods.LibraryName)]
    internal static partial NativeStatus otel_thread_ctx_clear_attributes(nint ctx);

    /// <summary><c>OtelProcessCtxAttribute *</c>: pairs of NUL-terminated UTF-8 key and value.</summary>
    [LibraryImport(NativeMethods.LibraryName)]
    internal static partial NativeProcessStatus otel_process_ctx_publish(
        byte** resource_attributes, nuint resource_attribute_count, byte** attribute_keys, nuint attribute_key_count);

    [LibraryImport(NativeMethods.LibraryName)]
    internal static partial NativeProcessStatus otel_process_ctx_forget_key_map();

    [LibraryImport(NativeMethods.LibraryName)]
    internal static partial NativeProcessStatus otel_process_ctx_update(
        byte** resource_attributes, nuint resource_attribute_count, byte** attribute_keys, nuint attribute_key_count);

    [LibraryImport(NativeMethods.LibraryName)]
    internal static partial NativeStatus otel_thread_ctx_read_current(ThreadContextRecord* @out);

    [LibraryImport(NativeMethods.LibraryName)]
    internal static partial nuint otel_thread_ctx_live_records();

    [LibraryImport(NativeMethods.LibraryName)]
    internal static partial NativeProcessStatus otel_process_ctx_read_payload(byte* buffer, nuint capacity, nuint* payload_size);
}

/// <summary>What the native library reports, and a way to run code on a fresh thread.</summary>
internal static unsafe class Native
{
    /// <summary>The calling thread's record as <c>otel_thread_ctx_read_current</c> copies it.</summary>
    public static ThreadContextRecord ReadCurrent()
    {
        ThreadContextRecord copy;
        NativeStatus status = TestNativeMethods.otel_thread_ctx_read_current(&copy);
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

    /// <summary>The record of a native handle this code does not own (the raw address of one), or
    /// null when it is no live handle.</summary>
    public static ThreadContextRecord* RecordOf(nint ctx) => RecordOf(new RecordHandle(ctx, ownsHandle: false));

    /// <summary>The record of a native handle, or null when it is no live handle.</summary>
    public static ThreadContextRecord* RecordOf(RecordHandle ctx)
    {
        ThreadContextRecord* rec;
        return NativeMethods.otel_thread_ctx_record(ctx, &rec) == NativeStatus.Ok ? rec : null;
    }

    /// <summary>The record attached to the calling thread, or null.</summary>
    public static ThreadContextRecord* CurrentRecord() => RecordOf(TestNativeMethods.otel_thread_ctx_current());

    /// <summary>The payload as <c>otel_process_ctx_read_payload</c> copies it, or null when
    /// nothing is published.</summary>
    public static byte[]? ReadPayload()
    {
        nuint size = 0;
        NativeProcessStatus status = TestNativeMethods.otel_process_ctx_read_payload(null, 0, &size);
        if (status == NativeProcessStatus.NotPublished)
        {
            Assert.Equal(0u, (uint)size);
            return null;
        }

        Assert.Equal(NativeProcessStatus.BufferTooSmall, status);
        byte[] buffer = new byte[(int)size];
        fixed (byte* p = buffer)
        {
            nuint copied = 0;
            Assert.Equal(NativeProcessStatus.Ok, TestNativeMethods.otel_process_ctx_read_payload(p, size, &copied));
            Assert.Equal(size, copied);
        }

        return buffer;
    }

    public static long LiveRecords() => (long)TestNativeMethods.otel_thread_ctx_live_records();

    /// <summary>Runs <paramref name="body"/> on a new thread, waits for it to end and rethrows
    /// what it threw.</summary>
    public static void OnNewThread(Action body) => RecordTestHelpers.OnNewThread(body);
}
