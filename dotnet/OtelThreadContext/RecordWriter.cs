using System;
using System.Buffers;
using System.Runtime.CompilerServices;
using System.Text.Unicode;
using System.Threading;

namespace OtelThreadContext;

/// <summary>
/// The writer of records for <see cref="ThreadContext"/>: each takes a record that is live and written
/// only by the calling thread (the caller checks that).
/// </summary>
/// <remarks>
/// A reader interrupts the writer at any instruction, so program order is what it sees. Each update
/// stores <c>valid = 0</c>, the fields, then <c>valid = 1</c>; every store is a
/// <see cref="Volatile.Write(ref byte, byte)"/> (a release) or follows a full barrier, so the JIT
/// keeps them inside that window.
/// </remarks>
internal static unsafe class RecordWriter
{
    /// <summary>Writes ids and flags; also empties the attributes when
    /// <paramref name="clearAttributes"/> (a constant at every call site, so the JIT drops the test); leaves
    /// <paramref name="valid"/> last (0 only for "no span").</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void WriteIds(OtelThreadCtxRecord* rec, ulong trace0, ulong trace1, ulong span, byte flags, bool clearAttributes = false, byte valid = 1)
    {
        // Safety: `rec` is a live 640-byte record only this thread writes (caller's contract).
        // Records start 64-byte aligned, so the 8-byte stores are aligned.
        Volatile.Write(ref rec->Valid, 0);
        Volatile.Write(ref *(ulong*)rec->TraceId, trace0);
        Volatile.Write(ref *(ulong*)(rec->TraceId + 8), trace1);
        Volatile.Write(ref *(ulong*)rec->SpanId, span);
        Volatile.Write(ref rec->TraceFlags, flags);
        if (clearAttributes)
        {
            Volatile.Write(ref rec->AttrsDataSize, 0);
        }

        Volatile.Write(ref rec->Valid, valid);
    }

    /// <summary>No span, OTEP 4947's way for a record that stays attached: <c>valid = 0</c>, zero ids and
    /// flags, no attributes.</summary>
    internal static void Clear(OtelThreadCtxRecord* rec) => WriteIds(rec, 0, 0, 0, 0, clearAttributes: true, valid: 0);

    /// <summary>Drops every attribute entry; the ids are kept.</summary>
    internal static void ClearAttributes(OtelThreadCtxRecord* rec)
    {
        // Safety: as in WriteIds.
        Volatile.Write(ref rec->Valid, 0);
        Volatile.Write(ref rec->AttrsDataSize, 0);
        Volatile.Write(ref rec->Valid, 1);
    }

    /// <summary>Sets attribute <paramref name="keyIndex"/> as UTF-8 (cut to 255 bytes at a character
    /// boundary), replacing every earlier entry for that key; NoSpace changes nothing.</summary>
    internal static SetAttributeResult SetAttribute(OtelThreadCtxRecord* rec, byte keyIndex, ReadOnlySpan<char> value)
    {
        Span<byte> buffer = stackalloc byte[NativeMethods.OTEL_THREAD_CTX_MAX_VALUE_LEN];
        bool truncated = Utf8.FromUtf16(value, buffer, out _, out int length) == OperationStatus.DestinationTooSmall;
        ReadOnlySpan<byte> utf8 = buffer.Slice(0, length);

        // Safety: `rec` is a live record only this thread writes, so reading it needs no care.
        // The attribute area is 612 bytes from rec->AttrsData; indexes below stay inside `used`,
        // which is clamped to that capacity.
        var data = new Span<byte>(rec->AttrsData, NativeMethods.OTEL_THREAD_CTX_ATTRS_CAPACITY);
        int used = Math.Min((int)rec->AttrsDataSize, NativeMethods.OTEL_THREAD_CTX_ATTRS_CAPACITY);

        // Size after removing entries for this key (readers keep the last of duplicates; we keep
        // none) and dropping any tail that is not a whole entry.
        int kept = 0;
        for (int i = 0; i + 2 <= used && i + 2 + data[i + 1] <= used; i += 2 + data[i + 1])
        {
            if (data[i] != keyIndex)
            {
                kept += 2 + data[i + 1];
            }
        }

        int newSize = kept + 2 + utf8.Length;
        if (newSize > NativeMethods.OTEL_THREAD_CTX_ATTRS_CAPACITY)
        {
            return SetAttributeResult.NoSpace;
        }

        // Safety: valid = 0 first; the full barrier keeps every later store (including the plain
        // copies below) after it; the size and valid = 1 are releases, so the copies stay before
        // them. Entries only move towards the start (destination <= source), and Span.CopyTo
        // copies overlapping ranges correctly.
        Volatile.Write(ref rec->Valid, 0);
        Interlocked.MemoryBarrier();
        int write = 0;
        for (int i = 0; i + 2 <= used && i + 2 + data[i + 1] <= used;)
        {
            int entry = 2 + data[i + 1];
            if (data[i] != keyIndex)
            {
                if (write != i)
                {
                    data.Slice(i, entry).CopyTo(data.Slice(write));
                }

                write += entry;
            }

            i += entry;
        }

        data[write] = keyIndex;
        data[write + 1] = (byte)utf8.Length;
        utf8.CopyTo(data.Slice(write + 2));
        Volatile.Write(ref rec->AttrsDataSize, (ushort)newSize);
        Volatile.Write(ref rec->Valid, 1);
        return truncated ? SetAttributeResult.Truncated : SetAttributeResult.Stored;
    }
}
