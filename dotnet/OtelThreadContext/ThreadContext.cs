using System;
using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

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
/// instruction; each update clears the record's <c>valid</c> byte first and sets it last, so a
/// reader that sees <c>valid == 1</c> sees a whole update.
/// </para>
/// <para>
/// <b>Lifetime.</b> The record stays attached to the thread; the native library frees it when
/// the thread exits (not for the process's main thread, whose record lives until the process
/// ends).
/// </para>
/// <para>
/// <b>Platforms.</b> Linux on x64 (glibc or musl) and on arm64 (glibc) (<see cref="IsSupported"/>).
/// Elsewhere every method of this class is a no-op that returns at once (attribute setters
/// return <see cref="SetAttributeResult.NotSupported"/>) and the native library is never loaded.
/// </para>
/// <para>
/// <b>Mixing with <see cref="ThreadContextHandle"/>.</b> On one thread, either let this class
/// write the thread's record in place, or swap records with <see cref="ThreadContextHandle"/>.
/// Mixing is safe: a handle attached or detached on a thread makes this class forget the record
/// address it cached there, so its next call writes whatever record is then attached (attaching
/// a fresh one if none is). Native code attaching or detaching records behind its back is not
/// supported.
/// </para>
/// </remarks>
public static unsafe class ThreadContext
{
    private static readonly bool s_supported = ComputeIsSupported();

    /// <summary>
    /// This thread's attached record, or null before the first call on the thread (or after a
    /// handle swap). Safety: while cached it is live and only this thread writes it (it stays
    /// attached here; the library frees it only at this thread's exit), which is what every
    /// <see cref="RecordWriter"/> call below requires.
    /// </summary>
    [ThreadStatic]
    private static ThreadContextRecord* t_record;

    /// <summary>
    /// True on Linux x64 with glibc or musl (<c>linux-x64</c>, <c>linux-musl-x64</c>) and on Linux
    /// arm64 with glibc (<c>linux-arm64</c>), the platforms the native library is built for. When
    /// false, every method of <see cref="ThreadContext"/> is a no-op.
    /// </summary>
    public static bool IsSupported => s_supported;

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

        IdDecoding.Decode(traceId, spanId, out ulong trace0, out ulong trace1, out ulong span);
        RecordWriter.WriteIds(rec, trace0, trace1, span, (byte)flags, clearAttributes);
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
        IdDecoding.CheckLengths(traceId, spanId);
        ThreadContextRecord* rec = t_record;
        if (rec == null && (rec = EnsureRecord()) == null)
        {
            return;
        }

        IdDecoding.Decode(traceId, spanId, out ulong trace0, out ulong trace1, out ulong span);
        RecordWriter.WriteIds(rec, trace0, trace1, span, traceFlags);
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

        IdDecoding.Decode(traceIdHigh, traceIdLow, spanId, out ulong trace0, out ulong trace1, out ulong span);
        RecordWriter.WriteIds(rec, trace0, trace1, span, traceFlags);
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

        RecordWriter.Clear(rec);
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

        return RecordWriter.SetAttribute(rec, keyIndex, value);
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

        RecordWriter.ClearAttributes(rec);
    }

    /// <summary>
    /// Forgets the current thread's cached record address, so the next call asks the native
    /// library again. <see cref="ThreadContextHandle"/> calls it whenever it attaches or detaches
    /// a record on the current thread.
    /// </summary>
    internal static void ForgetThreadRecord() => t_record = null;

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
        NativeStatus status;
        try
        {
            status = NativeMethods.otel_thread_ctx_ensure_record(&rec);
        }
        catch (DllNotFoundException e)
        {
            throw NativeLibraryErrors.Missing(e);
        }

        if (status != NativeStatus.Ok)
        {
            throw status == NativeStatus.OutOfMemory
                ? new OutOfMemoryException("otel_thread_ctx_ensure_record could not allocate a record.")
                : new InvalidOperationException($"otel_thread_ctx_ensure_record could not attach a record ({status}).");
        }

        t_record = rec;
        return rec;
    }

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    internal static void ThrowUndeclaredKey() => throw new ArgumentException(
        "default(ThreadAttributeKey) names no attribute: get keys from ProcessContext.DeclareKey.", "key");

    private static bool ComputeIsSupported() => IsSupportedPlatform(
        OperatingSystem.IsLinux(), RuntimeInformation.ProcessArchitecture, RuntimeInformation.RuntimeIdentifier);

    /// <summary>
    /// The decision behind <see cref="IsSupported"/>, apart from the running process so tests can
    /// ask it about any platform: Linux on x64, with glibc (<c>linux-x64</c>, or a distribution's
    /// own RID such as <c>ubuntu.22.04-x64</c>) or musl (<c>linux-musl-x64</c>, <c>alpine.3.18-x64</c>),
    /// and Linux on arm64 with glibc (<c>linux-arm64</c>): the builds the package carries. Not
    /// Android's bionic, not musl on arm64, not another architecture.
    /// </summary>
    /// <param name="isLinux">Whether the operating system is Linux.</param>
    /// <param name="processArchitecture">The process's architecture.</param>
    /// <param name="runtimeIdentifier">The runtime identifier, e.g. <c>linux-musl-x64</c>.</param>
    internal static bool IsSupportedPlatform(bool isLinux, Architecture processArchitecture, string runtimeIdentifier) =>
        isLinux &&
        !runtimeIdentifier.Contains("bionic", StringComparison.OrdinalIgnoreCase) &&
        !runtimeIdentifier.StartsWith("android", StringComparison.OrdinalIgnoreCase) &&
        (processArchitecture == Architecture.X64 ||
         (processArchitecture == Architecture.Arm64 && !IsMusl(runtimeIdentifier)));

    private static bool IsMusl(string runtimeIdentifier) =>
        runtimeIdentifier.Contains("musl", StringComparison.OrdinalIgnoreCase) ||
        runtimeIdentifier.StartsWith("alpine", StringComparison.OrdinalIgnoreCase);
}
