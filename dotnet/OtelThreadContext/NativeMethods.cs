namespace OtelThreadContext;

/// <summary>
/// The native library's C API. Its declarations (every function of <c>include/otel_thread_ctx.h</c>,
/// the status enum, the structs and constants) are generated from the Rust sources into
/// <c>NativeMethods.g.cs</c> by <c>scripts/dev.sh gen</c>; this part names the library.
/// </summary>
/// <remarks><c>otel_process_ctx_publish</c> leaves the OS error in <c>errno</c> with <c>MAPPING_FAILED</c>
/// (hence its <c>SetLastError</c>). None skips the GC transition: every call may attach, allocate or take
/// a lock.</remarks>
internal static unsafe partial class NativeMethods
{
    /// <summary>Name given to the loader; it probes <c>libotel_thread_ctx.so</c>.</summary>
    internal const string LibraryName = "otel_thread_ctx";

    /// <summary>The file the loader looks for on Linux.</summary>
    internal const string LibraryFileName = "libotel_thread_ctx.so";
}
