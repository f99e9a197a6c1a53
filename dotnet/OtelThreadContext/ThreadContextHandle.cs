using System;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Threading;

namespace OtelThreadContext;

/// <summary>
/// An owned native thread-context record, for callers that swap whole records themselves (for
/// example one record per task in an async runtime): create a record, fill it, and
/// <see cref="Attach"/> it to the thread that runs the task; <see cref="Detach"/> it when the
/// task leaves the thread.
/// </summary>
/// <remarks>
/// <para>
/// <b>Ownership.</b> A handle frees its record when disposed (or collected undisposed).
/// <see cref="Attach"/> returns the record it displaced as a handle the caller now owns (the
/// same object if it was attached through this class, a new one otherwise, for example the
/// record <see cref="ThreadContext"/> attached).
/// </para>
/// <para>
/// <b>Disposing an attached handle.</b> On the thread it is attached to, disposing detaches it
/// first (the thread then has no record) and frees it. From any other thread (or the
/// finalizer), the record is not freed, because that thread may still publish it: it is freed
/// by the native library when its thread exits, or returned as a new owned handle if that
/// thread detaches or displaces it first. Do not dispose a handle on one thread while its own
/// thread attaches or detaches it.
/// </para>
/// <para>
/// <b>Thread exit.</b> A record still attached when its thread exits is freed by the native
/// library. A handle whose record was freed that way refuses every call with
/// <see cref="InvalidOperationException"/>, and disposing it does nothing.
/// </para>
/// <para>
/// <b>Mixing with <see cref="ThreadContext"/>.</b> Use one style per thread; mixing is safe (see
/// <see cref="ThreadContext"/>'s remarks).
/// </para>
/// <para>
/// Only Linux x64 (glibc or musl) and arm64 (glibc) are supported: elsewhere (<see cref="ThreadContext.IsSupported"/> is
/// false) creating a handle throws <see cref="PlatformNotSupportedException"/> and
/// <see cref="Detach"/> returns null.
/// </para>
/// </remarks>
public sealed unsafe class ThreadContextHandle : IDisposable
{
    /// <summary>
    /// The handle this class attached on the current thread, if still attached. A thread static
    /// is fresh on every new OS thread, so a later thread that reuses an exited owner's managed
    /// id is never taken for it.
    /// </summary>
    [ThreadStatic]
    private static ThreadContextHandle? t_attached;

    /// <summary>The current thread, weakly, as <see cref="RecordHandle.Owner"/> records it.</summary>
    [ThreadStatic]
    private static WeakReference<Thread>? t_self;

    private readonly RecordHandle _native;

    /// <summary>The record's stable address (valid until the native handle is freed).</summary>
    private readonly ThreadContextRecord* _record;

    private ThreadContextHandle(nint ctx)
    {
        _native = new RecordHandle(ctx);
        ThreadContextRecord* record;
        NativeStatus status = NativeMethods.otel_thread_ctx_record(_native, &record);
        Debug.Assert(status == NativeStatus.Ok, "a live handle has a record");
        _record = record;
    }

    /// <summary>Creates a valid record with no active span (zero ids), attached to no thread.</summary>
    /// <exception cref="PlatformNotSupportedException"><see cref="ThreadContext.IsSupported"/> is false.</exception>
    /// <exception cref="DllNotFoundException">The native library could not be loaded.</exception>
    public ThreadContextHandle()
        : this(CreateNative(ReadOnlySpan<byte>.Empty, ReadOnlySpan<byte>.Empty, 0))
    {
    }

    /// <summary>True while this handle is attached, through this class, to the calling thread.</summary>
    public bool IsAttachedToCurrentThread => t_attached == this && !_native.IsClosed;

    /// <summary>The native handle (for tests and P/Invokes).</summary>
    internal RecordHandle Native => _native;

    /// <summary>Creates a valid record holding the given span, attached to no thread.</summary>
    /// <param name="traceId">The W3C trace id.</param>
    /// <param name="spanId">The W3C span id.</param>
    /// <param name="flags">The W3C trace flags.</param>
    /// <returns>The new handle, which the caller owns.</returns>
    /// <exception cref="PlatformNotSupportedException"><see cref="ThreadContext.IsSupported"/> is false.</exception>
    /// <exception cref="DllNotFoundException">The native library could not be loaded.</exception>
    public static ThreadContextHandle Create(ActivityTraceId traceId, ActivitySpanId spanId, ActivityTraceFlags flags)
    {
        Span<byte> ids = stackalloc byte[24];
        traceId.CopyTo(ids.Slice(0, 16));
        spanId.CopyTo(ids.Slice(16));
        return Create(ids.Slice(0, 16), ids.Slice(16), (byte)flags);
    }

    /// <summary>Creates a valid record holding the given raw W3C ids, attached to no thread.</summary>
    /// <param name="traceId">Exactly 16 bytes, in W3C order.</param>
    /// <param name="spanId">Exactly 8 bytes, in W3C order.</param>
    /// <param name="traceFlags">The W3C trace-flags byte.</param>
    /// <returns>The new handle, which the caller owns.</returns>
    /// <exception cref="ArgumentException">An id has the wrong length.</exception>
    /// <exception cref="PlatformNotSupportedException"><see cref="ThreadContext.IsSupported"/> is false.</exception>
    /// <exception cref="DllNotFoundException">The native library could not be loaded.</exception>
    public static ThreadContextHandle Create(ReadOnlySpan<byte> traceId, ReadOnlySpan<byte> spanId, byte traceFlags)
    {
        IdDecoding.CheckLengths(traceId, spanId);
        return new ThreadContextHandle(CreateNative(traceId, spanId, traceFlags));
    }

    /// <summary>
    /// Publishes this handle's record as the calling thread's context.
    /// </summary>
    /// <returns>The handle that was attached to this thread before, now owned by the caller (dispose
    /// it, or attach it again later), or null if the thread had none or this handle was already
    /// attached here.</returns>
    /// <exception cref="ObjectDisposedException">The handle was disposed.</exception>
    /// <exception cref="InvalidOperationException">The handle is attached to another thread, or the
    /// thread it was attached to has exited (the native library freed the record then).</exception>
    public ThreadContextHandle? Attach()
    {
        ObjectDisposedException.ThrowIf(_native.IsClosed, this);
        if (t_attached == this)
        {
            return null;
        }

        // Claimed here first, so a handle attached elsewhere, or orphaned by its thread's exit
        // (its address may belong to a new record by now), never reaches the native library.
        WeakReference<Thread>? owner = Interlocked.CompareExchange(ref _native.Owner, t_self ??= new(Thread.CurrentThread), null);
        if (owner != null)
        {
            throw NotWritableHere(owner);
        }

        nint previous;
        NativeStatus status;
        try
        {
            status = NativeMethods.otel_thread_ctx_attach(_native, &previous);
        }
        catch
        {
            Volatile.Write(ref _native.Owner, null);
            throw;
        }

        if (status != NativeStatus.Ok)
        {
            Volatile.Write(ref _native.Owner, null);
            throw status == NativeStatus.AttachedElsewhere
                ? new InvalidOperationException("The record is attached to another thread; detach it there first.")
                : new InvalidOperationException($"otel_thread_ctx_attach refused the handle ({status}).");
        }

        ThreadContext.ForgetThreadRecord();
        ThreadContextHandle? displaced = TakeOwnership(previous);
        t_attached = this;
        return displaced;
    }

    /// <summary>
    /// Empties the calling thread's slot: the thread then publishes no context.
    /// </summary>
    /// <returns>The handle that was attached, now owned by the caller, or null if none was (or the
    /// platform is not supported).</returns>
    public static ThreadContextHandle? Detach()
    {
        if (!ThreadContext.IsSupported)
        {
            return null;
        }

        nint previous = NativeMethods.otel_thread_ctx_detach();
        ThreadContext.ForgetThreadRecord();
        return TakeOwnership(previous);
    }

    /// <summary>
    /// Writes new ids into this handle's record in place, under the valid-flag protocol;
    /// attributes are kept. Allowed while the handle is detached or attached to the calling
    /// thread.
    /// </summary>
    /// <param name="traceId">The W3C trace id.</param>
    /// <param name="spanId">The W3C span id.</param>
    /// <param name="flags">The W3C trace flags.</param>
    /// <exception cref="ObjectDisposedException">The handle was disposed.</exception>
    /// <exception cref="InvalidOperationException">The handle is attached to another thread, or the
    /// thread it was attached to has exited (the native library freed the record then).</exception>
    public void Update(ActivityTraceId traceId, ActivitySpanId spanId, ActivityTraceFlags flags)
    {
        IdDecoding.Decode(traceId, spanId, out ulong trace0, out ulong trace1, out ulong span);
        using Lease lease = new(this);
        RecordWriter.WriteIds(lease.Record, trace0, trace1, span, (byte)flags);
    }

    /// <summary>
    /// Sets attribute <paramref name="keyIndex"/> of this handle's record, replacing an earlier
    /// value for that key, by the same rules as <see cref="ThreadContext.SetAttribute(byte, ReadOnlySpan{char})"/>.
    /// </summary>
    /// <param name="keyIndex">Index of the attribute's name in the process context's key map.</param>
    /// <param name="value">The value, stored as UTF-8 (at most 255 bytes); invalid UTF-16 (a lone
    /// surrogate) is stored as U+FFFD.</param>
    /// <returns><see cref="SetAttributeResult.Stored"/>, <see cref="SetAttributeResult.Truncated"/>
    /// or <see cref="SetAttributeResult.NoSpace"/> (nothing changed).</returns>
    /// <exception cref="ObjectDisposedException">The handle was disposed.</exception>
    /// <exception cref="InvalidOperationException">The handle is attached to another thread, or the
    /// thread it was attached to has exited (the native library freed the record then).</exception>
    public SetAttributeResult SetAttribute(byte keyIndex, ReadOnlySpan<char> value)
    {
        using Lease lease = new(this);
        return RecordWriter.SetAttribute(lease.Record, keyIndex, value);
    }

    /// <summary>
    /// Sets attribute <paramref name="keyIndex"/> of this handle's record to
    /// <paramref name="value"/>; see <see cref="SetAttribute(byte, ReadOnlySpan{char})"/>.
    /// </summary>
    /// <param name="keyIndex">Index of the attribute's name in the process context's key map.</param>
    /// <param name="value">The value, stored as UTF-8 (at most 255 bytes); invalid UTF-16 (a lone
    /// surrogate) is stored as U+FFFD.</param>
    /// <returns>As <see cref="SetAttribute(byte, ReadOnlySpan{char})"/>.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="value"/> is null.</exception>
    /// <exception cref="ObjectDisposedException">The handle was disposed.</exception>
    /// <exception cref="InvalidOperationException">The handle is attached to another thread, or the
    /// thread it was attached to has exited (the native library freed the record then).</exception>
    public SetAttributeResult SetAttribute(byte keyIndex, string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        return SetAttribute(keyIndex, value.AsSpan());
    }

    /// <summary>
    /// Sets attribute <paramref name="key"/> of this handle's record to <paramref name="value"/>:
    /// writes <see cref="ThreadAttributeKey.Index"/>, resolved when the key was declared, so there
    /// is no lookup by name. Otherwise as <see cref="SetAttribute(byte, ReadOnlySpan{char})"/>.
    /// </summary>
    /// <param name="key">A key from <see cref="ProcessContext.DeclareKey"/>.</param>
    /// <param name="value">The value, stored as UTF-8 (at most 255 bytes); invalid UTF-16 (a lone
    /// surrogate) is stored as U+FFFD.</param>
    /// <returns>As <see cref="SetAttribute(byte, ReadOnlySpan{char})"/>.</returns>
    /// <exception cref="ArgumentException"><paramref name="key"/> is
    /// <c>default(ThreadAttributeKey)</c>, not a declared key.</exception>
    /// <exception cref="ObjectDisposedException">The handle was disposed.</exception>
    /// <exception cref="InvalidOperationException">The handle is attached to another thread, or the
    /// thread it was attached to has exited (the native library freed the record then).</exception>
    public SetAttributeResult SetAttribute(ThreadAttributeKey key, ReadOnlySpan<char> value)
    {
        if (!key.IsDeclared)
        {
            ThreadContext.ThrowUndeclaredKey();
        }

        return SetAttribute(key.Index, value);
    }

    /// <summary>
    /// Sets attribute <paramref name="key"/> of this handle's record to <paramref name="value"/>;
    /// see <see cref="SetAttribute(ThreadAttributeKey, ReadOnlySpan{char})"/>.
    /// </summary>
    /// <param name="key">A key from <see cref="ProcessContext.DeclareKey"/>.</param>
    /// <param name="value">The value, stored as UTF-8 (at most 255 bytes); invalid UTF-16 (a lone
    /// surrogate) is stored as U+FFFD.</param>
    /// <returns>As <see cref="SetAttribute(byte, ReadOnlySpan{char})"/>.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="value"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="key"/> is not a declared key.</exception>
    /// <exception cref="ObjectDisposedException">The handle was disposed.</exception>
    /// <exception cref="InvalidOperationException">The handle is attached to another thread, or the
    /// thread it was attached to has exited (the native library freed the record then).</exception>
    public SetAttributeResult SetAttribute(ThreadAttributeKey key, string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        return SetAttribute(key, value.AsSpan());
    }

    /// <summary>Removes every attribute from this handle's record.</summary>
    /// <exception cref="ObjectDisposedException">The handle was disposed.</exception>
    /// <exception cref="InvalidOperationException">The handle is attached to another thread, or the
    /// thread it was attached to has exited (the native library freed the record then).</exception>
    public void ClearAttributes()
    {
        using Lease lease = new(this);
        RecordWriter.ClearAttributes(lease.Record);
    }

    /// <summary>
    /// Frees the record, detaching it first when it is attached to the calling thread; see the
    /// remarks for a handle attached to another thread. Calling it again does nothing.
    /// </summary>
    public void Dispose() => _native.Dispose();

    /// <summary>
    /// <see cref="RecordHandle"/>'s release: true (and the record unpublished) when
    /// <paramref name="native"/> is attached to the calling thread through this class.
    /// </summary>
    internal static bool DetachIfAttachedHere(RecordHandle native)
    {
        if (t_attached?._native != native)
        {
            return false;
        }

        NativeMethods.otel_thread_ctx_detach();
        ThreadContext.ForgetThreadRecord();
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
            Volatile.Write(ref known._native.Owner, null);
        }

        if (previous == 0)
        {
            return null;
        }

        if (known != null && known._native.DangerousGetHandle() == previous && !known._native.IsClosed)
        {
            return known;
        }

        // A record attached by other means (e.g. ThreadContext's), or one whose handle object was
        // disposed while attached elsewhere (and so did not free it): a new owner.
        return new ThreadContextHandle(previous);
    }

    private static nint CreateNative(scoped ReadOnlySpan<byte> traceId, scoped ReadOnlySpan<byte> spanId, byte traceFlags)
    {
        if (!ThreadContext.IsSupported)
        {
            throw new PlatformNotSupportedException("Thread context records are supported on Linux x64 and arm64 with glibc only.");
        }

        Span<byte> zeros = stackalloc byte[24];
        if (traceId.IsEmpty)
        {
            traceId = zeros.Slice(0, 16);
            spanId = zeros.Slice(16);
        }

        nint ctx;
        NativeStatus status;
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

        if (status != NativeStatus.Ok)
        {
            throw status == NativeStatus.NullArgument
                ? new ArgumentException("otel_thread_ctx_new refused the ids.")
                : new OutOfMemoryException($"otel_thread_ctx_new failed ({status}).");
        }

        return ctx;
    }

    private static InvalidOperationException NotWritableHere(WeakReference<Thread> owner) =>
        owner.TryGetTarget(out Thread? thread) && thread.IsAlive
            ? new InvalidOperationException("The record is attached to another thread; only that thread may write it.")
            : new InvalidOperationException(
                "The thread this handle was attached to has exited, and the native library freed the record at that exit: " +
                "the handle can no longer be used. Detach a handle before its thread exits to keep it.");

    /// <summary>
    /// A managed write's hold on the record: keeps it allocated (a dispose waits for the release)
    /// and admits only a thread that may write it (detached, or attached here through this class).
    /// </summary>
    private readonly ref struct Lease
    {
        private readonly RecordHandle _native;

        internal Lease(ThreadContextHandle handle)
        {
            bool added = false;
            handle._native.DangerousAddRef(ref added);
            WeakReference<Thread>? owner = Volatile.Read(ref handle._native.Owner);
            if (owner != null && t_attached != handle)
            {
                handle._native.DangerousRelease();
                throw NotWritableHere(owner);
            }

            _native = handle._native;
            Record = handle._record;
        }

        /// <summary>
        /// Safety: live until <see cref="Dispose"/> (the reference count holds the native handle)
        /// and written only by this thread (checked above), as <see cref="RecordWriter"/> requires.
        /// </summary>
        internal ThreadContextRecord* Record { get; }

        public void Dispose() => _native.DangerousRelease();
    }
}
