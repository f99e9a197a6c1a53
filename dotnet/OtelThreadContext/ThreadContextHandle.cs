using System;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Threading;

namespace OtelThreadContext;

/// <summary>
/// An owned native thread-context record, for callers that swap whole records themselves (one
/// per task, for example): create and fill it, <see cref="Attach"/> it to the thread that runs the
/// task, <see cref="Detach"/> it when the task leaves.
/// </summary>
/// <remarks>
/// Disposing frees the record, detaching it first on its own thread. Disposed on another thread,
/// an attached record is left to its thread (freed at its exit, or handed back by a detach there);
/// a handle whose thread exited while attached refuses every call. Elsewhere than
/// <see cref="ThreadContext.IsSupported"/>, creating one throws <see cref="PlatformNotSupportedException"/>.
/// </remarks>
public sealed unsafe class ThreadContextHandle : IDisposable
{
    /// <summary>The handle this class attached on the current thread, if still attached (fresh on
    /// every OS thread, so never taken for an exited owner).</summary>
    [ThreadStatic]
    private static ThreadContextHandle? t_attached;

    /// <summary>The current thread, weakly, as <see cref="RecordHandle.Owner"/> records it.</summary>
    [ThreadStatic]
    private static WeakReference<Thread>? t_self;

    /// <summary>The native handle (for tests and P/Invokes).</summary>
    internal RecordHandle Native { get; }

    /// <summary>The record's stable address (valid until the native handle is freed).</summary>
    private readonly OtelThreadCtxRecord* _record;

    private ThreadContextHandle(nint ctx)
    {
        Native = new RecordHandle(ctx);
        OtelThreadCtxRecord* record;
        OtelThreadCtxStatus status = NativeMethods.otel_thread_ctx_record(Native, &record);
        Debug.Assert(status == OtelThreadCtxStatus.Ok, "a live handle has a record");
        _record = record;
    }

    /// <summary>Creates a valid record with no active span (zero ids), attached to no thread.</summary>
    /// <exception cref="PlatformNotSupportedException"><see cref="ThreadContext.IsSupported"/> is false.</exception>
    public ThreadContextHandle()
        : this(CreateNative(new byte[16], new byte[8], 0))
    {
    }

    /// <summary>True while this handle is attached, through this class, to the calling thread.</summary>
    public bool IsAttachedToCurrentThread => t_attached == this && !Native.IsClosed;

    /// <summary>Creates a valid record holding the given span, attached to no thread.</summary>
    /// <exception cref="PlatformNotSupportedException"><see cref="ThreadContext.IsSupported"/> is false.</exception>
    public static ThreadContextHandle Create(ActivityTraceId traceId, ActivitySpanId spanId, ActivityTraceFlags flags)
    {
        Span<byte> ids = stackalloc byte[24];
        traceId.CopyTo(ids.Slice(0, 16));
        spanId.CopyTo(ids.Slice(16));
        return Create(ids.Slice(0, 16), ids.Slice(16), (byte)flags);
    }

    /// <summary>Creates a valid record holding raw W3C ids (16 and 8 bytes), attached to no thread.</summary>
    /// <exception cref="ArgumentException">An id has the wrong length.</exception>
    public static ThreadContextHandle Create(ReadOnlySpan<byte> traceId, ReadOnlySpan<byte> spanId, byte traceFlags)
    {
        IdDecoding.CheckLengths(traceId, spanId);
        return new ThreadContextHandle(CreateNative(traceId, spanId, traceFlags));
    }

    /// <summary>Publishes this handle's record as the calling thread's context.</summary>
    /// <returns>The handle attached here before, now owned by the caller, or null if there was
    /// none, it was this one, or it was the thread's own record (<see cref="ThreadContext"/>'s, which stays the thread's).</returns>
    /// <exception cref="ObjectDisposedException">The handle was disposed.</exception>
    /// <exception cref="InvalidOperationException">Attached to another thread, or its thread exited.</exception>
    public ThreadContextHandle? Attach()
    {
        ObjectDisposedException.ThrowIf(Native.IsClosed, this);
        if (t_attached == this)
        {
            return null;
        }

        // Claimed here first, so a handle attached elsewhere, or orphaned by its thread's exit
        // (its address may belong to a new record by now), never reaches the native library.
        WeakReference<Thread>? owner = Interlocked.CompareExchange(ref Native.Owner, t_self ??= new(Thread.CurrentThread), null);
        if (owner != null)
        {
            throw NotWritableHere(owner);
        }

        nint previous;
        OtelThreadCtxStatus status;
        try
        {
            status = NativeMethods.otel_thread_ctx_attach(Native, &previous);
        }
        catch
        {
            Volatile.Write(ref Native.Owner, null);
            throw;
        }

        if (status != OtelThreadCtxStatus.Ok)
        {
            Volatile.Write(ref Native.Owner, null);
            throw status == OtelThreadCtxStatus.AttachedElsewhere
                ? new InvalidOperationException("The record is attached to another thread; detach it there first.")
                : new InvalidOperationException($"otel_thread_ctx_attach refused the handle ({status}).");
        }

        ThreadContextHandle? displaced = TakeOwnership(previous);
        t_attached = this;
        return displaced;
    }

    /// <summary>Empties the calling thread's slot: the thread then publishes no context.</summary>
    /// <returns>The handle that was attached, now owned by the caller, or null (also for the thread's own record).</returns>
    public static ThreadContextHandle? Detach()
    {
        if (!ThreadContext.IsSupported)
        {
            return null;
        }

        nint previous = NativeMethods.otel_thread_ctx_detach();
        return TakeOwnership(previous);
    }

    /// <summary>Writes new ids into the record in place; attributes are kept. Allowed while the
    /// handle is detached or attached to the calling thread.</summary>
    /// <exception cref="ObjectDisposedException">The handle was disposed.</exception>
    /// <exception cref="InvalidOperationException">Attached to another thread, or its thread exited.</exception>
    public void Update(ActivityTraceId traceId, ActivitySpanId spanId, ActivityTraceFlags flags)
    {
        IdDecoding.Decode(traceId, spanId, out ulong trace0, out ulong trace1, out ulong span);
        using Lease lease = new(this);
        RecordWriter.WriteIds(lease.Record, trace0, trace1, span, (byte)flags);
    }

    /// <summary>Sets attribute <paramref name="keyIndex"/> of this handle's record, as
    /// <see cref="ThreadContext.SetAttribute(byte, ReadOnlySpan{char})"/> does; allowed as for <see cref="Update"/>.</summary>
    /// <returns><see cref="SetAttributeResult.Stored"/>, <see cref="SetAttributeResult.Truncated"/>
    /// or <see cref="SetAttributeResult.NoSpace"/> (nothing changed).</returns>
    public SetAttributeResult SetAttribute(byte keyIndex, ReadOnlySpan<char> value)
    {
        using Lease lease = new(this);
        return RecordWriter.SetAttribute(lease.Record, keyIndex, value);
    }

    /// <inheritdoc cref="SetAttribute(byte, ReadOnlySpan{char})"/>
    public SetAttributeResult SetAttribute(byte keyIndex, string value) =>
        SetAttribute(keyIndex, (value ?? throw new ArgumentNullException(nameof(value))).AsSpan());

    /// <summary>Sets attribute <paramref name="key"/> of this handle's record; see
    /// <see cref="SetAttribute(byte, ReadOnlySpan{char})"/>.</summary>
    /// <exception cref="ArgumentException"><paramref name="key"/> is not a declared key.</exception>
    public SetAttributeResult SetAttribute(ThreadAttributeKey key, ReadOnlySpan<char> value) =>
        SetAttribute(key.DeclaredIndex, value);

    /// <inheritdoc cref="SetAttribute(ThreadAttributeKey, ReadOnlySpan{char})"/>
    public SetAttributeResult SetAttribute(ThreadAttributeKey key, string value) =>
        SetAttribute(key, (value ?? throw new ArgumentNullException(nameof(value))).AsSpan());

    /// <summary>Removes every attribute from this handle's record; allowed as for <see cref="Update"/>.</summary>
    public void ClearAttributes()
    {
        using Lease lease = new(this);
        RecordWriter.ClearAttributes(lease.Record);
    }

    /// <summary>Frees the record (see the remarks for one attached to another thread); calling it
    /// again does nothing.</summary>
    public void Dispose() => Native.Dispose();

    /// <summary><see cref="RecordHandle"/>'s release: detaches <paramref name="native"/> if this
    /// class attached it to the calling thread (then true).</summary>
    internal static bool DetachIfAttachedHere(RecordHandle native)
    {
        if (t_attached?.Native != native)
        {
            return false;
        }

        NativeMethods.otel_thread_ctx_detach();
        t_attached = null;
        Volatile.Write(ref native.Owner, null);
        return true;
    }

    /// <summary>Wraps a handle the native library just gave back to the caller.</summary>
    private static ThreadContextHandle? TakeOwnership(nint previous)
    {
        ThreadContextHandle? known = t_attached;
        t_attached = null;
        if (known != null)
        {
            Volatile.Write(ref known.Native.Owner, null);
        }

        // Else a record attached by other means (e.g. ThreadContext's), or one whose handle object
        // was disposed while attached elsewhere (and so did not free it): a new owner.
        return previous == 0 ? null
            : known != null && known.Native.DangerousGetHandle() == previous && !known.Native.IsClosed ? known
            : new ThreadContextHandle(previous);
    }

    private static nint CreateNative(ReadOnlySpan<byte> traceId, ReadOnlySpan<byte> spanId, byte traceFlags)
    {
        if (!ThreadContext.IsSupported)
        {
            throw new PlatformNotSupportedException("Thread context records are supported on Linux x64 and arm64 (glibc or musl) only.");
        }

        nint ctx;
        OtelThreadCtxStatus status;
        try
        {
            fixed (byte* t = traceId)
            fixed (byte* s = spanId)
            {
                status = NativeMethods.otel_thread_ctx_new(t, s, traceFlags, &ctx);
            }
        }
        catch (DllNotFoundException e)
        {
            throw NativeLibraryErrors.Missing(e);
        }

        // The ids are never null (16 and 8 bytes), so allocation is what can fail.
        if (status != OtelThreadCtxStatus.Ok)
        {
            throw new OutOfMemoryException($"otel_thread_ctx_new failed ({status}).");
        }

        return ctx;
    }

    private static InvalidOperationException NotWritableHere(WeakReference<Thread> owner) =>
        owner.TryGetTarget(out Thread? thread) && thread.IsAlive
            ? new InvalidOperationException("The record is attached to another thread; only that thread may write it.")
            : new InvalidOperationException(
                "The thread this handle was attached to has exited, and the native library freed the record at that exit: " +
                "the handle can no longer be used. Detach a handle before its thread exits to keep it.");

    /// <summary>A write's hold on the record: keeps it allocated (a dispose waits for the release)
    /// and admits only a thread that may write it (detached, or attached here through this class).</summary>
    private readonly ref struct Lease
    {
        private readonly RecordHandle _native;

        internal Lease(ThreadContextHandle handle)
        {
            bool added = false;
            handle.Native.DangerousAddRef(ref added);
            WeakReference<Thread>? owner = Volatile.Read(ref handle.Native.Owner);
            if (owner != null && t_attached != handle)
            {
                handle.Native.DangerousRelease();
                throw NotWritableHere(owner);
            }

            _native = handle.Native;
            Record = handle._record;
        }

        /// <summary>Safety: live until <see cref="Dispose"/> (the reference count holds the native
        /// handle) and written only by this thread (checked above), as <see cref="RecordWriter"/> requires.</summary>
        internal OtelThreadCtxRecord* Record { get; }

        public void Dispose() => _native.DangerousRelease();
    }
}
