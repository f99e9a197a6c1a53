using System;
using System.Buffers;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text.Unicode;
using System.Threading;

namespace OtelThreadContext;

/// <summary>Publishes the calling thread's current span (ids, flags, attributes) in its OTEP 4947 record for
/// an out-of-process profiler; after a thread's first call, writes are managed code only (no P/Invoke, no allocation).</summary>
/// <remarks>Where <see cref="IsSupported"/> is false every method is a no-op and the native library
/// is never loaded.</remarks>
public static unsafe class ThreadContext
{
    private static readonly bool s_supported = IsSupportedPlatform(
        OperatingSystem.IsLinux(), RuntimeInformation.ProcessArchitecture, RuntimeInformation.RuntimeIdentifier);

    /// <summary>Offsets, in the native handle a record starts, of its "attached to a slot" byte and its owner
    /// thread word (native/handle.rs pins both).</summary>
    private const int AttachedOffset = 640, OwnerOffset = 648;

    /// <summary>This thread's own native record, or null before its first call. Safety: the native library frees it
    /// only at this thread's exit, whoever detaches it, and only this thread writes it, as the writers
    /// require. Every copy of this assembly in the process finds the same one.</summary>
    [ThreadStatic]
    private static OtelThreadCtxRecord* t_record;

    /// <summary>True on Linux x64 and arm64, each with glibc or musl, the platforms the
    /// native library is built for.</summary>
    public static bool IsSupported => s_supported;

    /// <summary>Publishes the ids and flags as the current thread's span; attributes are kept.</summary>
    /// <exception cref="DllNotFoundException">The native library could not be loaded.</exception>
    public static void Set(ActivityTraceId traceId, ActivitySpanId spanId, ActivityTraceFlags flags) =>
        SetActivityIds(traceId, spanId, flags, clearAttributes: false);

    /// <summary>Writes Activity ids; with <paramref name="clearAttributes"/> (tracking's write at a
    /// span switch) no attributes either, in the same window.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void SetActivityIds(ActivityTraceId traceId, ActivitySpanId spanId, ActivityTraceFlags flags, bool clearAttributes)
    {
        IdDecoding.Decode(traceId, spanId, out ulong trace0, out ulong trace1, out ulong span);
        WriteIds(trace0, trace1, span, (byte)flags, clearAttributes);
    }

    /// <summary>Publishes raw W3C id bytes (16 and 8, in hex-string order) as the current thread's
    /// span; attributes are kept.</summary>
    /// <exception cref="ArgumentException">An id has the wrong length.</exception>
    public static void Set(ReadOnlySpan<byte> traceId, ReadOnlySpan<byte> spanId, byte traceFlags)
    {
        if (traceId.Length != 16 || spanId.Length != 8)
        {
            throw new ArgumentException(
                $"A trace id is 16 bytes and a span id 8, not {traceId.Length} and {spanId.Length}.",
                traceId.Length != 16 ? nameof(traceId) : nameof(spanId));
        }

        IdDecoding.Decode(traceId, spanId, out ulong trace0, out ulong trace1, out ulong span);
        WriteIds(trace0, trace1, span, traceFlags);
    }

    /// <summary>Publishes ids given as the numbers their W3C hex reads as (trace id
    /// <c>0af7...319c</c> is high <c>0x0af7...</c>, low <c>...319c</c>); attributes are kept.</summary>
    public static void Set(ulong traceIdHigh, ulong traceIdLow, ulong spanId, byte traceFlags) => WriteIds(
        IdDecoding.FromBigEndian(traceIdHigh), IdDecoding.FromBigEndian(traceIdLow), IdDecoding.FromBigEndian(spanId), traceFlags);

    /// <summary>Publishes "no active span": zero ids and flags, no attributes, <c>valid = 0</c> (OTEP 4947's way
    /// for a record that stays attached).</summary>
    public static void Clear() => WriteIds(0, 0, 0, 0, clearAttributes: true, valid: 0);

    /// <summary>Sets attribute <paramref name="keyIndex"/> (a position in <c>threadlocal.attribute_key_map</c>)
    /// of the current thread's record, as UTF-8 without allocating (a lone surrogate becomes U+FFFD).</summary>
    /// <returns><see cref="SetAttributeResult.Stored"/>, <see cref="SetAttributeResult.Truncated"/> (cut to
    /// 255 bytes), <see cref="SetAttributeResult.NoSpace"/> (nothing changed) or <see cref="SetAttributeResult.NotSupported"/>.</returns>
    public static SetAttributeResult SetAttribute(byte keyIndex, ReadOnlySpan<char> value)
    {
        OtelThreadCtxRecord* rec = Record();
        if (rec == null)
        {
            return SetAttributeResult.NotSupported;
        }

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

    /// <summary>Sets attribute <paramref name="key"/>: writes its index, resolved when declared, so
    /// there is no lookup by name. Otherwise as <see cref="SetAttribute(byte, ReadOnlySpan{char})"/>.</summary>
    /// <exception cref="ArgumentException"><paramref name="key"/> is not a declared key.</exception>
    public static SetAttributeResult SetAttribute(ThreadAttributeKey key, ReadOnlySpan<char> value) =>
        SetAttribute(key.DeclaredIndex, value);

    /// <summary>Removes every attribute from the current thread's record; the ids are kept.</summary>
    public static void ClearAttributes()
    {
        OtelThreadCtxRecord* rec = Record();
        if (rec != null)
        {
            // Safety: as in WriteIds.
            Volatile.Write(ref rec->Valid, 0);
            Volatile.Write(ref rec->AttrsDataSize, 0);
            Volatile.Write(ref rec->Valid, 1);
        }
    }

    /// <summary>Checks, as a reader would, that the loaded native library publishes the slot where readers find
    /// it, and that no other module in the process defines or references <c>otel_thread_ctx_v1</c> (readers keep
    /// one slot per process).</summary>
    /// <param name="message">What was checked, or why readers cannot find the records.</param>
    /// <returns>True when readers can find this library's records; false (with the reason) otherwise,
    /// or where <see cref="IsSupported"/> is false.</returns>
    /// <exception cref="DllNotFoundException">The native library could not be loaded.</exception>
    public static bool SelfCheck(out string message)
    {
        if (!s_supported)
        {
            message = "Thread context records are not supported on this platform.";
            return false;
        }

        const int Capacity = 4096;
        byte* buffer = stackalloc byte[Capacity];
        OtelThreadCtxStatus status = NativeLibraryErrors.Call(() => NativeMethods.otel_thread_ctx_self_check(buffer, Capacity));
        message = Marshal.PtrToStringUTF8((nint)buffer) ?? string.Empty;
        return status == OtelThreadCtxStatus.Ok;
    }

    /// <summary>The record this thread's slot publishes: the cached own record while it is still attached,
    /// else <see cref="EnsureRecord"/> (after native code attached another record or detached it).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static OtelThreadCtxRecord* Record()
    {
        OtelThreadCtxRecord* rec = t_record;
        return rec != null && ((byte*)rec)[AttachedOffset] != 0 ? rec : EnsureRecord();
    }

    /// <summary>Writes ids and flags into this thread's record; also empties the attributes when
    /// <paramref name="clearAttributes"/> (a constant at every call site, so the JIT drops the test); leaves
    /// <paramref name="valid"/> last (0 only for "no span").</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void WriteIds(ulong trace0, ulong trace1, ulong span, byte flags, bool clearAttributes = false, byte valid = 1)
    {
        // A reader interrupts the writer at any instruction, so program order is what it sees. Each update
        // stores valid = 0, the fields, then valid = 1 (valid = 0 stays for OTEP 4947's "no span"); every
        // store is a Volatile.Write (a release) or follows a full barrier, so the JIT keeps them inside that window.
        OtelThreadCtxRecord* rec = Record();
        if (rec == null)
        {
            return;
        }

        // Safety: `rec` is a live 640-byte record only this thread writes (Record's contract).
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

    /// <summary>One P/Invoke that returns the record attached to this thread, attaching the thread's own record
    /// if none is. Only the own record is cached: one native code attached may be freed once detached. Null when
    /// unsupported.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static OtelThreadCtxRecord* EnsureRecord()
    {
        if (!s_supported)
        {
            return null;
        }

        (OtelThreadCtxStatus status, nint rec) = NativeLibraryErrors.Call(static () =>
        {
            OtelThreadCtxRecord* attached;
            return (NativeMethods.otel_thread_ctx_ensure_record(&attached), (nint)attached);
        });
        if (status != OtelThreadCtxStatus.Ok)
        {
            throw status == OtelThreadCtxStatus.OutOfMemory
                ? new OutOfMemoryException("otel_thread_ctx_ensure_record could not allocate a record.")
                : new InvalidOperationException($"otel_thread_ctx_ensure_record could not attach a record ({status}).");
        }

        if (*(nuint*)((byte*)rec + OwnerOffset) != 0)
        {
            t_record = (OtelThreadCtxRecord*)rec;
        }

        return (OtelThreadCtxRecord*)rec;
    }

    /// <summary>The decision behind <see cref="IsSupported"/>, for any platform: Linux on x64 or arm64, with
    /// glibc or musl (the package's four runtimes); not Android's bionic.</summary>
    internal static bool IsSupportedPlatform(bool isLinux, Architecture processArchitecture, string runtimeIdentifier) =>
        isLinux &&
        !runtimeIdentifier.Contains("bionic", StringComparison.OrdinalIgnoreCase) &&
        !runtimeIdentifier.StartsWith("android", StringComparison.OrdinalIgnoreCase) &&
        processArchitecture is Architecture.X64 or Architecture.Arm64;

    /// <summary>Whether <paramref name="runtimeIdentifier"/> names a musl runtime (<c>linux-musl-*</c>, <c>alpine*</c>).</summary>
    internal static bool IsMusl(string runtimeIdentifier) =>
        runtimeIdentifier.Contains("musl", StringComparison.OrdinalIgnoreCase) ||
        runtimeIdentifier.StartsWith("alpine", StringComparison.OrdinalIgnoreCase);
}
