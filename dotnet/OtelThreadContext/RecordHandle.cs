using System;
using System.Runtime.InteropServices;
using System.Threading;

namespace OtelThreadContext;

/// <summary>Owns one native <c>OtelThreadCtx</c> for <see cref="ThreadContextHandle"/>; the marshaller
/// keeps it alive (and refuses it once disposed) for each P/Invoke that takes it.</summary>
internal sealed class RecordHandle : SafeHandle
{
    /// <summary>The thread the record is attached to through <see cref="ThreadContextHandle"/>, or
    /// null; weak, so an exited thread's object can be reclaimed.</summary>
    internal WeakReference<Thread>? Owner;

    /// <summary>Wraps <paramref name="ctx"/>; with <paramref name="ownsHandle"/> false it is never freed.</summary>
    internal RecordHandle(nint ctx, bool ownsHandle = true)
        : base(0, ownsHandle) => SetHandle(ctx);

    /// <inheritdoc />
    public override bool IsInvalid => handle == 0;

    /// <inheritdoc />
    protected override bool ReleaseHandle()
    {
        if (Volatile.Read(ref Owner) != null && !ThreadContextHandle.DetachIfAttachedHere(this))
        {
            // Still published by another thread (or freed at that thread's exit): freeing it here
            // could free memory a reader is about to use. Left to that thread's exit or detach.
            return true;
        }

        return NativeMethods.otel_thread_ctx_free(handle) == OtelThreadCtxStatus.Ok;
    }
}
