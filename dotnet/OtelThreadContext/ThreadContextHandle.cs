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
/// <b>Ownership.</b> A handle frees its record when disposed (or finalized). Attaching a handle
/// publishes its record in the calling thread's <c>otel_thread_ctx_v1</c> slot; the record that
/// was attached before is returned as a handle the caller now owns (the same object if it was
/// attached through this class, a new one otherwise, for example the record that
/// <see cref="ThreadContext"/> attached).
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
/// <b>Mixing with <see cref="ThreadContext"/>.</b> Use one style per thread: in-place writes
/// through <see cref="ThreadContext"/>, or handle swaps. Whenever this class attaches or
/// detaches on a thread it makes <see cref="ThreadContext"/> forget that thread's cached record
/// address, so the in-place writer never writes a record the thread no longer has attached; its
/// next call writes whatever record is attached then (this handle's, after
/// <see cref="Attach"/>).
/// </para>
/// <para>
/// Only Linux x64 and arm64 with glibc are supported: elsewhere (<see cref="ThreadContext.IsSupported"/> is
/// false) creating a handle throws <see cref="PlatformNotSupportedException"/> and
/// <see cref="Detach"/> returns null.
/// </para>
/// </remarks>
public sealed unsafe class ThreadContextHandle : SafeHandle
{
    private const int EINVAL = 22;
    private const int EBUSY = 16;

    /// <summary>The handle this class attached on the current thread, if still attached.</summary>
    [ThreadStatic]
    private static ThreadContextHandle? t_attached;

    /// <summary>The record's stable address (valid until the handle is freed).</summary>
    private readonly ThreadContextRecord* _record;

    /// <summary>Managed id of the thread this handle is attached to through this class, or 0.</summary>
    private int _attachedThreadId;

    private ThreadContextHandle(nint ctx)
        : base(0, ownsHandle: true)
    {
        SetHandle(ctx);
        _record = NativeMethods.otel_thread_ctx_record(ctx);
        Debug.Assert(_record != null, "a live handle has a record");
    }

    /// <summary>Creates a valid record with no active span (zero ids), attached to no thread.</summary>
    /// <exception cref="PlatformNotSupportedException"><see cref="ThreadContext.IsSupported"/> is false.</exception>
    /// <exception cref="DllNotFoundException">The native library could not be loaded.</exception>
    public ThreadContextHandle()
        : this(CreateNative(ReadOnlySpan<byte>.Empty, ReadOnlySpan<byte>.Empty, 0))
    {
    }

    /// <inheritdoc />
    public override bool IsInvalid => handle == 0;

    /// <summary>True while this handle is attached, through this class, to the calling thread.</summary>
    public bool IsAttachedToCurrentThread => t_attached == this && !IsClosed;

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
        if (traceId.Length != 16)
        {
            throw new ArgumentException("A trace id is 16 bytes.", nameof(traceId));
        }

        if (spanId.Length != 8)
        {
            throw new ArgumentException("A span id is 8 bytes.", nameof(spanId));
        }

        return new ThreadContextHandle(CreateNative(traceId, spanId, traceFlags));
    }

    /// <summary>
    /// Publishes this handle's record as the calling thread's context.
    /// </summary>
    /// <returns>The handle that was attached to this thread before, now owned by the caller (dispose
    /// it, or attach it again later), or null if the thread had none or this handle was already
    /// attached here.</returns>
    /// <exception cref="ObjectDisposedException">The handle was disposed.</exception>
    /// <exception cref="InvalidOperationException">The handle is attached to another thread.</exception>
    public ThreadContextHandle? Attach()
    {
        bool added = false;
        DangerousAddRef(ref added);
        try
        {
            nint previous = NativeMethods.otel_thread_ctx_attach(handle);
            int errno = Marshal.GetLastPInvokeError();
            if (previous == 0 && errno != 0)
            {
                throw errno == EBUSY
                    ? new InvalidOperationException("The record is attached to another thread; detach it there first.")
                    : new InvalidOperationException($"otel_thread_ctx_attach refused the handle (errno {errno}).");
            }

            ThreadContext.ForgetThreadRecord();
            if (t_attached == this)
            {
                return null;
            }

            ThreadContextHandle? displaced = TakeOwnership(previous);
            t_attached = this;
            Volatile.Write(ref _attachedThreadId, Environment.CurrentManagedThreadId);
            return displaced;
        }
        finally
        {
            if (added)
            {
                DangerousRelease();
            }
        }
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
    /// <exception cref="InvalidOperationException">The handle is attached to another thread.</exception>
    public void Update(ActivityTraceId traceId, ActivitySpanId spanId, ActivityTraceFlags flags)
    {
        ThreadContext.DecodeIds(traceId, spanId, out ulong trace0, out ulong trace1, out ulong span);
        bool added = false;
        DangerousAddRef(ref added);
        try
        {
            ThrowIfAttachedElsewhere();

            // Safety: the handle is live (AddRef) and not attached to another thread, so only this
            // thread writes the record.
            ThreadContext.WriteIds(_record, trace0, trace1, span, (byte)flags);
        }
        finally
        {
            if (added)
            {
                DangerousRelease();
            }
        }
    }

    /// <summary>
    /// Sets attribute <paramref name="keyIndex"/> of this handle's record (through the native
    /// library), replacing an earlier value for that key.
    /// </summary>
    /// <param name="keyIndex">Index of the attribute's name in the process context's key map.</param>
    /// <param name="value">The value, stored as UTF-8 (at most 255 bytes); invalid UTF-16 (a lone
    /// surrogate) is stored as U+FFFD.</param>
    /// <returns><see cref="SetAttributeResult.Stored"/>, <see cref="SetAttributeResult.Truncated"/>
    /// or <see cref="SetAttributeResult.NoSpace"/> (nothing changed).</returns>
    /// <exception cref="ObjectDisposedException">The handle was disposed.</exception>
    /// <exception cref="InvalidOperationException">The handle is attached to another thread.</exception>
    public SetAttributeResult SetAttribute(byte keyIndex, ReadOnlySpan<char> value)
    {
        Span<byte> utf8 = stackalloc byte[NativeMethods.MaxValueLen];
        bool truncated = ThreadContext.EncodeValue(value, utf8, out int length);
        bool added = false;
        DangerousAddRef(ref added);
        try
        {
            NativeStatus status;
            fixed (byte* p = utf8)
            {
                status = NativeMethods.otel_thread_ctx_set_attribute(handle, keyIndex, p, (nuint)length);
            }

            return status switch
            {
                NativeStatus.Ok => truncated ? SetAttributeResult.Truncated : SetAttributeResult.Stored,
                NativeStatus.Truncated => SetAttributeResult.Truncated,
                NativeStatus.NoSpace => SetAttributeResult.NoSpace,
                _ => throw Failure("otel_thread_ctx_set_attribute", status),
            };
        }
        finally
        {
            if (added)
            {
                DangerousRelease();
            }
        }
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
    /// <exception cref="InvalidOperationException">The handle is attached to another thread.</exception>
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
    /// <exception cref="InvalidOperationException">The handle is attached to another thread.</exception>
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
    /// <exception cref="InvalidOperationException">The handle is attached to another thread.</exception>
    public SetAttributeResult SetAttribute(ThreadAttributeKey key, string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        return SetAttribute(key, value.AsSpan());
    }

    /// <summary>Removes every attribute from this handle's record.</summary>
    /// <exception cref="ObjectDisposedException">The handle was disposed.</exception>
    /// <exception cref="InvalidOperationException">The handle is attached to another thread.</exception>
    public void ClearAttributes()
    {
        bool added = false;
        DangerousAddRef(ref added);
        try
        {
            ThrowIfAttachedElsewhere();
            NativeStatus status = NativeMethods.otel_thread_ctx_clear_attributes(handle);
            if (status != NativeStatus.Ok)
            {
                throw Failure("otel_thread_ctx_clear_attributes", status);
            }
        }
        finally
        {
            if (added)
            {
                DangerousRelease();
            }
        }
    }

    /// <inheritdoc />
    protected override bool ReleaseHandle()
    {
        int attachedTo = Volatile.Read(ref _attachedThreadId);
        if (attachedTo != 0)
        {
            if (attachedTo != Environment.CurrentManagedThreadId || t_attached != this)
            {
                // Still published by another thread (or that thread has exited, and the native
                // library freed the record at its exit): freeing it here could free memory a
                // reader is about to use, or free an address already reused. Leave it to the
                // thread's exit clean-up, or to whoever detaches it there.
                return true;
            }

            // Attached to this thread: unpublish it first.
            NativeMethods.otel_thread_ctx_detach();
            ThreadContext.ForgetThreadRecord();
            t_attached = null;
            _attachedThreadId = 0;
        }

        return NativeMethods.otel_thread_ctx_free(handle) == NativeStatus.Ok;
    }

    /// <summary>Wraps a handle the native library just gave back to the caller.</summary>
    private static ThreadContextHandle? TakeOwnership(nint previous)
    {
        ThreadContextHandle? known = t_attached;
        t_attached = null;
        if (known != null)
        {
            Volatile.Write(ref known._attachedThreadId, 0);
        }

        if (previous == 0)
        {
            return null;
        }

        if (known != null && known.handle == previous && !known.IsClosed)
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
        try
        {
            fixed (byte* t = traceId)
            fixed (byte* s = spanId)
            {
                ctx = NativeMethods.otel_thread_ctx_new(t, s, traceFlags);
            }
        }
        catch (DllNotFoundException e)
        {
            throw NativeLibraryErrors.Missing(e);
        }

        if (ctx == 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            throw errno == EINVAL
                ? new ArgumentException("otel_thread_ctx_new refused the ids.")
                : new OutOfMemoryException($"otel_thread_ctx_new failed (errno {errno}).");
        }

        return ctx;
    }

    private void ThrowIfAttachedElsewhere()
    {
        int attachedTo = Volatile.Read(ref _attachedThreadId);
        if (attachedTo != 0 && attachedTo != Environment.CurrentManagedThreadId)
        {
            throw new InvalidOperationException("The record is attached to another thread; only that thread may write it.");
        }
    }

    private static Exception Failure(string function, NativeStatus status) => status switch
    {
        NativeStatus.AttachedElsewhere => new InvalidOperationException(
            "The record is attached to another thread; only that thread may write it."),
        _ => new InvalidOperationException($"{function} failed: {status}."),
    };
}
