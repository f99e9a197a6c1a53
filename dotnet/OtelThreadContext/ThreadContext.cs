using System;
using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Text.Unicode;
using System.Threading;

namespace OtelThreadContext;

/// <summary>
/// Publishes the calling thread's current span (trace id, span id, trace flags and attributes)
/// where an out-of-process profiler can read it, as OpenTelemetry OTEP 4947 describes: a
/// 640-byte record that the thread-local symbol <c>otel_thread_ctx_v1</c> of the native library
/// points at.
/// </summary>
/// <remarks>
/// <para>
/// <b>Cost.</b> The first call on a thread makes one P/Invoke
/// (<c>otel_thread_ctx_ensure_record</c>), which attaches a record to the thread if it has none
/// and returns its address; the address is cached in a <see cref="ThreadStaticAttribute"/> field.
/// Every later call on that thread writes the record in place from managed code: no P/Invoke and
/// no allocation.
/// </para>
/// <para>
/// <b>Consistency.</b> A profiler reads the record while the thread is interrupted, at any
/// instruction. Each update stores <c>valid = 0</c>, then the fields, then <c>valid = 1</c>, every
/// store through <see cref="Volatile.Write(ref byte, byte)"/> (or after a full barrier), so the
/// JIT keeps them in that order and a reader that sees <c>valid == 1</c> sees a whole update.
/// </para>
/// <para>
/// <b>Lifetime.</b> The record stays attached to the thread; the native library frees it when
/// the thread exits (not for the process's main thread, whose record lives until the process
/// ends).
/// </para>
/// <para>
/// <b>Platforms.</b> Only Linux x64 and arm64 with glibc are supported (<see cref="IsSupported"/>).
/// Elsewhere every method of this class is a no-op that returns at once (attribute setters
/// return <see cref="SetAttributeResult.NotSupported"/>) and the native library is never loaded.
/// </para>
/// <para>
/// <b>Mixing with <see cref="ThreadContextHandle"/>.</b> On one thread, either let this class
/// write the thread's record in place, or swap records with <see cref="ThreadContextHandle"/>.
/// Mixing is safe but changes what is written: when a handle is attached or detached on a
/// thread, this class forgets the record address it cached for that thread, and its next call
/// there makes one P/Invoke again and writes into whatever record is then attached (the
/// handle's record if one is attached, else a fresh record it attaches). It never writes a
/// record the thread no longer has attached. Native code that attaches or detaches records on
/// the same thread behind this class's back is not supported.
/// </para>
/// </remarks>
public static unsafe class ThreadContext
{
    private static readonly bool s_supported = ComputeIsSupported();

    /// <summary>This thread's attached record, or null before the first call on the thread.</summary>
    [ThreadStatic]
    private static ThreadContextRecord* t_record;

    /// <summary>How many times this thread asked the native library for its record (tests).</summary>
    [ThreadStatic]
    private static int t_ensureCalls;

    /// <summary>
    /// True on Linux x64 and arm64 with glibc, the platforms the native library is built for. When false,
    /// every method of <see cref="ThreadContext"/> is a no-op.
    /// </summary>
    public static bool IsSupported => s_supported;

    /// <summary>Calls to <c>otel_thread_ctx_ensure_record</c> made by the current thread.</summary>
    internal static int EnsureCallsOnThisThread => t_ensureCalls;

    /// <summary>Publishes <paramref name="traceId"/>, <paramref name="spanId"/> and
    /// <paramref name="flags"/> as the current thread's span. Attributes are kept.</summary>
    /// <param name="traceId">The W3C trace id.</param>
    /// <param name="spanId">The W3C span id.</param>
    /// <param name="flags">The W3C trace flags (bit 0 = sampled).</param>
    /// <exception cref="DllNotFoundException">The native library could not be loaded (first call on
    /// a thread only); the message says which file was looked for and how to get it.</exception>
    public static void Set(ActivityTraceId traceId, ActivitySpanId spanId, ActivityTraceFlags flags) =>
        SetActivityIds(traceId, spanId, flags, clearAttributes: false);

    /// <summary>
    /// Activity tracking's write at a span switch: the Activity's ids, and no attributes, in one
    /// round of the protocol (one lookup, one valid = 0 ... valid = 1 window) rather than
    /// <see cref="ClearAttributes"/> followed by <see cref="Set(ActivityTraceId, ActivitySpanId, ActivityTraceFlags)"/>.
    /// </summary>
    /// <returns>False when <see cref="IsSupported"/> is false (nothing written).</returns>
    internal static bool SetWithoutAttributes(ActivityTraceId traceId, ActivitySpanId spanId, ActivityTraceFlags flags) =>
        SetActivityIds(traceId, spanId, flags, clearAttributes: true);

    /// <summary>Both writes of Activity ids; false when unsupported (nothing written).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool SetActivityIds(ActivityTraceId traceId, ActivitySpanId spanId, ActivityTraceFlags flags, bool clearAttributes)
    {
        ThreadContextRecord* rec = t_record;
        if (rec == null && (rec = EnsureRecord()) == null)
        {
            return false;
        }

        DecodeIds(traceId, spanId, out ulong trace0, out ulong trace1, out ulong span);
        WriteIds(rec, trace0, trace1, span, (byte)flags, clearAttributes);
        return true;
    }

    /// <summary>Publishes raw W3C id bytes as the current thread's span. Attributes are kept.</summary>
    /// <param name="traceId">Exactly 16 bytes, in W3C (big-endian, hex-string) order.</param>
    /// <param name="spanId">Exactly 8 bytes, in W3C order.</param>
    /// <param name="traceFlags">The W3C trace-flags byte (bit 0 = sampled).</param>
    /// <exception cref="ArgumentException">An id has the wrong length (checked on every platform).</exception>
    /// <exception cref="DllNotFoundException">The native library could not be loaded.</exception>
    public static void Set(ReadOnlySpan<byte> traceId, ReadOnlySpan<byte> spanId, byte traceFlags)
    {
        if (traceId.Length != 16)
        {
            throw new ArgumentException("A trace id is 16 bytes.", nameof(traceId));
        }

        if (spanId.Length != 8)
        {
            throw new ArgumentException("A span id is 8 bytes.", nameof(spanId));
        }

        ThreadContextRecord* rec = t_record;
        if (rec == null && (rec = EnsureRecord()) == null)
        {
            return;
        }

        WriteIds(
            rec,
            MemoryMarshal.Read<ulong>(traceId),
            MemoryMarshal.Read<ulong>(traceId.Slice(8)),
            MemoryMarshal.Read<ulong>(spanId),
            traceFlags);
    }

    /// <summary>
    /// Publishes ids given as numbers, as they read in W3C hex: the trace id
    /// <c>0af7651916cd43dd8448eb211c80319c</c> is <paramref name="traceIdHigh"/> =
    /// <c>0x0af7651916cd43dd</c> and <paramref name="traceIdLow"/> = <c>0x8448eb211c80319c</c>.
    /// Attributes are kept.
    /// </summary>
    /// <param name="traceIdHigh">The first 8 bytes of the trace id, as a big-endian number.</param>
    /// <param name="traceIdLow">The last 8 bytes of the trace id, as a big-endian number.</param>
    /// <param name="spanId">The span id, as a big-endian number.</param>
    /// <param name="traceFlags">The W3C trace-flags byte (bit 0 = sampled).</param>
    /// <exception cref="DllNotFoundException">The native library could not be loaded.</exception>
    public static void Set(ulong traceIdHigh, ulong traceIdLow, ulong spanId, byte traceFlags)
    {
        ThreadContextRecord* rec = t_record;
        if (rec == null && (rec = EnsureRecord()) == null)
        {
            return;
        }

        if (BitConverter.IsLittleEndian)
        {
            traceIdHigh = BinaryPrimitives.ReverseEndianness(traceIdHigh);
            traceIdLow = BinaryPrimitives.ReverseEndianness(traceIdLow);
            spanId = BinaryPrimitives.ReverseEndianness(spanId);
        }

        WriteIds(rec, traceIdHigh, traceIdLow, spanId, traceFlags);
    }

    /// <summary>
    /// Publishes "no active span": zero ids and flags, and no attributes. The record stays
    /// attached (and valid), so a profiler sees that the thread runs outside any span.
    /// </summary>
    /// <exception cref="DllNotFoundException">The native library could not be loaded.</exception>
    public static void Clear()
    {
        ThreadContextRecord* rec = t_record;
        if (rec == null && (rec = EnsureRecord()) == null)
        {
            return;
        }

        // Safety: `rec` is the record attached to this thread (see EnsureRecord), which only this
        // thread writes; every store is a release, so they stay in program order between
        // valid = 0 and valid = 1.
        Volatile.Write(ref rec->Valid, 0);
        Volatile.Write(ref *(ulong*)rec->TraceId, 0UL);
        Volatile.Write(ref *(ulong*)(rec->TraceId + 8), 0UL);
        Volatile.Write(ref *(ulong*)rec->SpanId, 0UL);
        Volatile.Write(ref rec->TraceFlags, 0);
        Volatile.Write(ref rec->AttrsDataSize, 0);
        Volatile.Write(ref rec->Valid, 1);
    }

    /// <summary>
    /// Sets attribute <paramref name="keyIndex"/> of the current thread's record to
    /// <paramref name="value"/>, encoded as UTF-8 without allocating, replacing an earlier value
    /// for that key. The key index is the position of the attribute's name in the process
    /// context's <c>threadlocal.attribute_key_map</c>.
    /// </summary>
    /// <param name="keyIndex">Index of the attribute's name in the key map.</param>
    /// <param name="value">The value. Invalid UTF-16 (a lone surrogate) is stored as U+FFFD.</param>
    /// <returns><see cref="SetAttributeResult.Stored"/>; <see cref="SetAttributeResult.Truncated"/>
    /// when the value was cut to 255 bytes at a character boundary;
    /// <see cref="SetAttributeResult.NoSpace"/> (nothing changed) when the record's 612 attribute
    /// bytes cannot hold the entry; <see cref="SetAttributeResult.NotSupported"/> when
    /// <see cref="IsSupported"/> is false.</returns>
    /// <exception cref="DllNotFoundException">The native library could not be loaded.</exception>
    public static SetAttributeResult SetAttribute(byte keyIndex, ReadOnlySpan<char> value)
    {
        ThreadContextRecord* rec = t_record;
        if (rec == null && (rec = EnsureRecord()) == null)
        {
            return SetAttributeResult.NotSupported;
        }

        Span<byte> utf8 = stackalloc byte[NativeMethods.MaxValueLen];
        bool truncated = EncodeValue(value, utf8, out int length);
        return WriteAttribute(rec, keyIndex, utf8.Slice(0, length), truncated);
    }

    /// <summary>
    /// Sets attribute <paramref name="keyIndex"/> of the current thread's record to
    /// <paramref name="value"/>; see <see cref="SetAttribute(byte, ReadOnlySpan{char})"/>.
    /// </summary>
    /// <param name="keyIndex">Index of the attribute's name in the key map.</param>
    /// <param name="value">The value.</param>
    /// <returns>As <see cref="SetAttribute(byte, ReadOnlySpan{char})"/>.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="value"/> is null.</exception>
    /// <exception cref="DllNotFoundException">The native library could not be loaded.</exception>
    public static SetAttributeResult SetAttribute(byte keyIndex, string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        return SetAttribute(keyIndex, value.AsSpan());
    }

    /// <summary>
    /// Sets attribute <paramref name="key"/> of the current thread's record to
    /// <paramref name="value"/>: writes <see cref="ThreadAttributeKey.Index"/>, resolved when the
    /// key was declared, so there is no lookup by name and no allocation. Otherwise as
    /// <see cref="SetAttribute(byte, ReadOnlySpan{char})"/>.
    /// </summary>
    /// <param name="key">A key from <see cref="ProcessContext.DeclareKey"/>.</param>
    /// <param name="value">The value. Invalid UTF-16 (a lone surrogate) is stored as U+FFFD.</param>
    /// <returns>As <see cref="SetAttribute(byte, ReadOnlySpan{char})"/>.</returns>
    /// <exception cref="ArgumentException"><paramref name="key"/> is
    /// <c>default(ThreadAttributeKey)</c>, not a declared key.</exception>
    /// <exception cref="DllNotFoundException">The native library could not be loaded.</exception>
    public static SetAttributeResult SetAttribute(ThreadAttributeKey key, ReadOnlySpan<char> value)
    {
        if (!key.IsDeclared)
        {
            ThrowUndeclaredKey();
        }

        return SetAttribute(key.Index, value);
    }

    /// <summary>
    /// Sets attribute <paramref name="key"/> of the current thread's record to
    /// <paramref name="value"/>; see <see cref="SetAttribute(ThreadAttributeKey, ReadOnlySpan{char})"/>.
    /// </summary>
    /// <param name="key">A key from <see cref="ProcessContext.DeclareKey"/>.</param>
    /// <param name="value">The value.</param>
    /// <returns>As <see cref="SetAttribute(byte, ReadOnlySpan{char})"/>.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="value"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="key"/> is not a declared key.</exception>
    /// <exception cref="DllNotFoundException">The native library could not be loaded.</exception>
    public static SetAttributeResult SetAttribute(ThreadAttributeKey key, string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        return SetAttribute(key, value.AsSpan());
    }

    /// <summary>Removes every attribute from the current thread's record; the ids are kept.</summary>
    /// <exception cref="DllNotFoundException">The native library could not be loaded.</exception>
    public static void ClearAttributes()
    {
        ThreadContextRecord* rec = t_record;
        if (rec == null && (rec = EnsureRecord()) == null)
        {
            return;
        }

        // Safety: as in Clear.
        Volatile.Write(ref rec->Valid, 0);
        Volatile.Write(ref rec->AttrsDataSize, 0);
        Volatile.Write(ref rec->Valid, 1);
    }

    /// <summary>
    /// Forgets the current thread's cached record address, so the next call asks the native
    /// library again. <see cref="ThreadContextHandle"/> calls it whenever it attaches or detaches
    /// a record on the current thread.
    /// </summary>
    internal static void ForgetThreadRecord() => t_record = null;

    /// <summary>The ids as they lie in the record: decoded with vectors where possible, else by CopyTo.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void DecodeIds(ActivityTraceId traceId, ActivitySpanId spanId, out ulong trace0, out ulong trace1, out ulong span)
    {
        if (!TryDecodeIds(traceId, spanId, out trace0, out trace1, out span))
        {
            CopyIds(traceId, spanId, out trace0, out trace1, out span);
        }
    }

    /// <summary>The CopyTo fallback, out of line: its stackalloc would stop the JIT inlining callers.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void CopyIds(ActivityTraceId traceId, ActivitySpanId spanId, out ulong trace0, out ulong trace1, out ulong span)
    {
        Span<byte> ids = stackalloc byte[24];
        traceId.CopyTo(ids.Slice(0, 16));
        spanId.CopyTo(ids.Slice(16));
        trace0 = MemoryMarshal.Read<ulong>(ids);
        trace1 = MemoryMarshal.Read<ulong>(ids.Slice(8));
        span = MemoryMarshal.Read<ulong>(ids.Slice(16));
    }

    /// <summary>
    /// Decodes the ids' hex strings (what <see cref="ActivityTraceId"/> and
    /// <see cref="ActivitySpanId"/> hold) into the record's byte order, with vector instructions:
    /// their own <c>CopyTo</c> decodes one character pair at a time, which made it the costliest
    /// step of an Activity switch (docs/benchmarks.md). Returns false where vectors are not
    /// accelerated or the strings are not 32 and 16 characters; the caller then uses CopyTo.
    /// </summary>
    private static bool TryDecodeIds(ActivityTraceId traceId, ActivitySpanId spanId, out ulong trace0, out ulong trace1, out ulong span)
    {
        // ToHexString returns the string the id holds (all zeros for default): no allocation.
        string traceHex = traceId.ToHexString();
        string spanHex = spanId.ToHexString();
        if (!Vector128.IsHardwareAccelerated || !BitConverter.IsLittleEndian || traceHex.Length != 32 || spanHex.Length != 16)
        {
            trace0 = trace1 = span = 0;
            return false;
        }

        ReadOnlySpan<ushort> t = MemoryMarshal.Cast<char, ushort>(traceHex.AsSpan());
        ReadOnlySpan<ushort> s = MemoryMarshal.Cast<char, ushort>(spanHex.AsSpan());
        Vector128<ulong> traceBytes = Vector128.Narrow(
            HexPairs(Vector128.Create(t.Slice(0, 8)), Vector128.Create(t.Slice(8, 8))),
            HexPairs(Vector128.Create(t.Slice(16, 8)), Vector128.Create(t.Slice(24, 8)))).AsUInt64();
        Vector128<ulong> spanBytes = Vector128.Narrow(
            HexPairs(Vector128.Create(s.Slice(0, 8)), Vector128.Create(s.Slice(8, 8))),
            Vector128<ushort>.Zero).AsUInt64();
        trace0 = traceBytes.GetElement(0);
        trace1 = traceBytes.GetElement(1);
        span = spanBytes.GetElement(0);
        return true;
    }

    /// <summary>
    /// Sixteen hex characters (UTF-16) to eight byte values, one per 16-bit lane. A digit's value
    /// is its low four bits, plus 9 for a letter (bit 6 set: 'a'-'f' and 'A'-'F').
    /// </summary>
    private static Vector128<ushort> HexPairs(Vector128<ushort> low, Vector128<ushort> high)
    {
        Vector128<ushort> lowBits = Vector128.Create((ushort)0x0F);
        Vector128<ushort> one = Vector128.Create((ushort)1);
        Vector128<ushort> lowValues = (low & lowBits) + (((low >>> 6) & one) * 9);
        Vector128<ushort> highValues = (high & lowBits) + (((high >>> 6) & one) * 9);

        // Lane i of `pairs` holds character 2i in its low byte and character 2i+1 in its high byte.
        Vector128<ushort> pairs = Vector128.Narrow(lowValues, highValues).AsUInt16();
        return ((pairs & Vector128.Create((ushort)0xFF)) << 4) | (pairs >>> 8);
    }

    /// <summary>
    /// Writes ids under the in-place protocol.
    /// </summary>
    /// <param name="rec">A record only the calling thread writes: the thread's attached record,
    /// or a detached one.</param>
    /// <param name="trace0">Trace id bytes 0..8 as they lie in memory.</param>
    /// <param name="trace1">Trace id bytes 8..16 as they lie in memory.</param>
    /// <param name="span">Span id bytes as they lie in memory.</param>
    /// <param name="flags">Trace flags.</param>
    /// <param name="clearAttributes">Also empty the attributes, in the same window (a constant
    /// at every call site, so the JIT drops the test).</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void WriteIds(ThreadContextRecord* rec, ulong trace0, ulong trace1, ulong span, byte flags, bool clearAttributes = false)
    {
        // Safety: `rec` points to a live 640-byte record that only this thread writes (caller's
        // contract). Records start 64-byte aligned, so the 8-byte stores are aligned. Each store
        // is a Volatile.Write (a release): no earlier store may move after it, so the JIT keeps
        // all of them in program order, inside the valid = 0 ... valid = 1 window. A reader
        // interrupts this thread, so program order is what it observes.
        Volatile.Write(ref rec->Valid, 0);
        Volatile.Write(ref *(ulong*)rec->TraceId, trace0);
        Volatile.Write(ref *(ulong*)(rec->TraceId + 8), trace1);
        Volatile.Write(ref *(ulong*)rec->SpanId, span);
        Volatile.Write(ref rec->TraceFlags, flags);
        if (clearAttributes)
        {
            Volatile.Write(ref rec->AttrsDataSize, 0);
        }

        Volatile.Write(ref rec->Valid, 1);
    }

    /// <summary>
    /// Encodes <paramref name="value"/> as UTF-8 into <paramref name="destination"/> (255 bytes),
    /// cutting at a character boundary. Returns true when it had to cut.
    /// </summary>
    internal static bool EncodeValue(ReadOnlySpan<char> value, Span<byte> destination, out int length)
    {
        OperationStatus status = Utf8.FromUtf16(
            value, destination, out _, out length, replaceInvalidSequences: true, isFinalBlock: true);
        return status == OperationStatus.DestinationTooSmall;
    }

    /// <summary>
    /// Replaces (or adds) one attribute entry of <paramref name="rec"/> under the protocol.
    /// </summary>
    internal static SetAttributeResult WriteAttribute(ThreadContextRecord* rec, byte keyIndex, ReadOnlySpan<byte> utf8, bool truncated)
    {
        // Safety: `rec` is a live record only this thread writes, so reading it needs no care.
        // The attribute area is 612 bytes from rec->AttrsData; indexes below stay inside `used`,
        // which is clamped to that capacity.
        var data = new Span<byte>(rec->AttrsData, NativeMethods.AttrsCapacity);
        int used = Math.Min((int)rec->AttrsDataSize, NativeMethods.AttrsCapacity);

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
        if (newSize > NativeMethods.AttrsCapacity)
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

    /// <summary>
    /// First call on a thread (or the first after a handle swap): one P/Invoke that returns the
    /// thread's attached record, attaching an empty one if there is none. Null when unsupported.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static ThreadContextRecord* EnsureRecord()
    {
        if (!s_supported)
        {
            return null;
        }

        ThreadContextRecord* rec;
        try
        {
            rec = NativeMethods.otel_thread_ctx_ensure_record();
        }
        catch (DllNotFoundException e)
        {
            throw NativeLibraryErrors.Missing(e);
        }

        t_ensureCalls++;
        if (rec == null)
        {
            throw new OutOfMemoryException(
                $"otel_thread_ctx_ensure_record could not attach a record (errno {Marshal.GetLastPInvokeError()}).");
        }

        t_record = rec;
        return rec;
    }

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    internal static void ThrowUndeclaredKey() => throw new ArgumentException(
        "default(ThreadAttributeKey) names no attribute: get keys from ProcessContext.DeclareKey.", "key");

    private static bool ComputeIsSupported()
    {
        if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture is not (Architecture.X64 or Architecture.Arm64))
        {
            return false;
        }

        // The library is built against glibc; a musl process would fail to load it.
        return !RuntimeInformation.RuntimeIdentifier.Contains("musl", StringComparison.OrdinalIgnoreCase);
    }
}
