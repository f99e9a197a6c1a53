using System;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Threading;
using OtelThreadContext.TestShared;

// The tests change process-wide state (the tracker, Activity.Current listeners), so they run one
// at a time.
[assembly: Xunit.v3.Parallelization(Mode = Xunit.Sdk.ParallelMode.None)]

namespace OtelThreadContext.ActivityTests;

/// <summary>Trace id, span id and flags, as the bytes lie in a record (W3C order).</summary>
internal readonly record struct Ids(ulong Trace0, ulong Trace1, ulong Span, byte Flags)
{
    /// <summary>What a record holds for "no span".</summary>
    public static Ids None => default;

    public static Ids Of(Activity? activity)
    {
        if (activity is null)
        {
            return None;
        }

        Span<byte> b = stackalloc byte[24];
        activity.TraceId.CopyTo(b.Slice(0, 16));
        activity.SpanId.CopyTo(b.Slice(16));
        return new Ids(
            MemoryMarshal.Read<ulong>(b),
            MemoryMarshal.Read<ulong>(b.Slice(8)),
            MemoryMarshal.Read<ulong>(b.Slice(16)),
            (byte)activity.ActivityTraceFlags);
    }

    public override string ToString() => this == None
        ? "(no span)"
        : $"{Hex(Trace0)}{Hex(Trace1)}/{Hex(Span)}/{Flags:x2}";

    private static string Hex(ulong inMemory)
    {
        Span<byte> b = stackalloc byte[8];
        MemoryMarshal.Write(b, in inMemory);
        return Convert.ToHexStringLower(b);
    }
}

/// <summary>A record's header as read: whether the thread had one at all, valid, ids.</summary>
internal readonly record struct Seen(bool Attached, byte Valid, Ids Ids)
{
    /// <summary>True when a reader would see exactly <paramref name="activity"/> (or no span
    /// when it is null).</summary>
    public bool Shows(Activity? activity) =>
        activity is null
            ? !Attached || Ids == Ids.None
            : Attached && Valid == 1 && Ids == Ids.Of(activity);

    public override string ToString() => Attached ? $"valid={Valid} {Ids}" : "(no record attached)";
}

/// <summary>The native library's own view of records (declared here, independently of the
/// package's bindings).</summary>
internal static unsafe partial class Records
{
    private const string Library = "otel_thread_ctx";
    private const int RecordSize = 640;
    private const int NoContext = 2;

    [LibraryImport(Library)]
    private static partial int otel_thread_ctx_read_current(byte* record);

    [LibraryImport(Library)]
    private static partial nint otel_thread_ctx_current();

    [LibraryImport(Library)]
    private static partial int otel_thread_ctx_record(nint ctx, byte** record);

    /// <summary>The calling thread's record, as <c>otel_thread_ctx_read_current</c> copies it
    /// (what an out-of-process reader finds through the thread's slot).</summary>
    public static Seen ReadCurrent()
    {
        byte* copy = stackalloc byte[RecordSize];
        int status = otel_thread_ctx_read_current(copy);
        if (status == NoContext)
        {
            return default;
        }

        if (status != 0)
        {
            throw new InvalidOperationException($"otel_thread_ctx_read_current returned {status}");
        }

        return Parse(copy);
    }

    /// <summary>The address of the record attached to the calling thread, or 0.</summary>
    public static nint CurrentRecordAddress()
    {
        nint ctx = otel_thread_ctx_current();
        byte* record = null;
        return ctx == 0 || otel_thread_ctx_record(ctx, &record) != 0 ? 0 : (nint)record;
    }

    /// <summary>
    /// Reads the header of a record attached to another thread. Sound only while that thread is
    /// alive (its record is freed when it exits) and keeps the record attached.
    /// </summary>
    public static Seen ReadAt(nint address)
    {
        byte* p = (byte*)address;
        byte valid = Volatile.Read(ref p[24]);
        var ids = new Ids(
            Volatile.Read(ref *(ulong*)p),
            Volatile.Read(ref *(ulong*)(p + 8)),
            Volatile.Read(ref *(ulong*)(p + 16)),
            Volatile.Read(ref p[25]));
        // A write that ran meanwhile changed valid: report the read as "being updated".
        return Volatile.Read(ref p[24]) == valid ? new Seen(true, valid, ids) : new Seen(true, 0, ids);
    }

    /// <summary>The attribute entries of the calling thread's record.</summary>
    public static (byte Key, string Value)[] CurrentAttributes()
    {
        byte* copy = stackalloc byte[RecordSize];
        if (otel_thread_ctx_read_current(copy) != 0)
        {
            return Array.Empty<(byte, string)>();
        }

        int size = Math.Min((int)BinaryPrimitives.ReadUInt16LittleEndian(new ReadOnlySpan<byte>(copy + 26, 2)), RecordSize - 28);
        return RecordTestHelpers.ParseAttributes(new ReadOnlySpan<byte>(copy + 28, size)).ToArray();
    }

    private static Seen Parse(byte* p) => new(
        true,
        p[24],
        new Ids(*(ulong*)p, *(ulong*)(p + 8), *(ulong*)(p + 16), p[25]));

    /// <summary>Runs <paramref name="body"/> on a new thread, waits for it and rethrows what it
    /// threw.</summary>
    public static void OnNewThread(Action body) => RecordTestHelpers.OnNewThread(body);
}
