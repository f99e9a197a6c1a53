using System.Runtime.InteropServices;

namespace OtelThreadContext.Benchmarks;

/// <summary>
/// The benchmark's own bindings to the native library, declared exactly as the package declares
/// them (same library name, blittable signature, source-generated stub), so the package's
/// <c>NativeMethods</c> stays internal. Both forms of <c>otel_thread_ctx_update</c> are here, with and
/// without <see cref="SuppressGCTransitionAttribute"/>, so they can be compared.
/// </summary>
internal static unsafe partial class NativeBindings
{
    private const string LibraryName = "otel_thread_ctx";

    /// <summary>A normal P/Invoke: the stub switches the thread to preemptive GC mode and back.</summary>
    [LibraryImport(LibraryName, EntryPoint = "otel_thread_ctx_update")]
    internal static partial int UpdateWithGCTransition(byte* traceId, byte* spanId, byte traceFlags);

    /// <summary>
    /// The same call without the GC-mode switch. For comparison only: the package suppresses no
    /// transition (its one call per thread, <c>otel_thread_ctx_ensure_record</c>, is a normal
    /// P/Invoke; every later write is in place, with no call).
    /// </summary>
    [LibraryImport(LibraryName, EntryPoint = "otel_thread_ctx_update")]
    [SuppressGCTransition]
    internal static partial int UpdateSuppressGCTransition(byte* traceId, byte* spanId, byte traceFlags);

    /// <summary>Attaches a record to the calling thread if it has none; stores its address (0 = OK).</summary>
    [LibraryImport(LibraryName, EntryPoint = "otel_thread_ctx_ensure_record")]
    internal static partial int EnsureRecord(byte** record);
}
