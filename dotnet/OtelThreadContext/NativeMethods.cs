using System.Runtime.InteropServices;

namespace OtelThreadContext;

/// <summary>
/// The native library's C API. Its declarations (every function of <c>include/otel_thread_ctx.h</c>,
/// the status enums, the structs and constants) are generated from the Rust sources into
/// <c>NativeMethods.g.cs</c> by <c>scripts/dev.sh gen</c>; this part names the library and adds
/// the overloads that take a <see cref="RecordHandle"/> where the caller owns a handle.
/// </summary>
/// <remarks>Calls returning <see cref="OtelProcessCtxStatus"/> leave the OS error in <c>errno</c> with
/// <c>MAPPING_FAILED</c> (hence <c>SetLastError</c>). None skips the GC transition: every call may
/// attach, allocate or take a lock.</remarks>
internal static unsafe partial class NativeMethods
{
    /// <summary>Name given to the loader; it probes <c>libotel_thread_ctx.so</c>.</summary>
    internal const string LibraryName = "otel_thread_ctx";

    /// <summary>The file the loader looks for on Linux.</summary>
    internal const string LibraryFileName = "libotel_thread_ctx.so";

    /// <summary><c>otel_thread_ctx_attach</c> with a handle kept alive (and refused once disposed)
    /// for the call, as a <see cref="SafeHandle"/> parameter of a P/Invoke is.</summary>
    internal static OtelThreadCtxStatus otel_thread_ctx_attach(RecordHandle ctx, nint* displaced)
    {
        bool added = false;
        try
        {
            ctx.DangerousAddRef(ref added);
            return otel_thread_ctx_attach(ctx.DangerousGetHandle(), displaced);
        }
        finally
        {
            if (added)
            {
                ctx.DangerousRelease();
            }
        }
    }

    /// <summary><c>otel_thread_ctx_record</c> with a handle kept alive for the call.</summary>
    internal static OtelThreadCtxStatus otel_thread_ctx_record(RecordHandle ctx, OtelThreadCtxRecord** @out)
    {
        bool added = false;
        try
        {
            ctx.DangerousAddRef(ref added);
            return otel_thread_ctx_record(ctx.DangerousGetHandle(), @out);
        }
        finally
        {
            if (added)
            {
                ctx.DangerousRelease();
            }
        }
    }
}
