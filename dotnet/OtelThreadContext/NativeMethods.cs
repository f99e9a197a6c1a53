using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace OtelThreadContext;

/// <summary>
/// Status codes of the native API (<c>OtelThreadCtxStatus</c> in <c>include/otel_thread_ctx.h</c>,
/// an <c>int32_t</c>). Negative values are errors; nothing was changed when one is returned.
/// A test compares every member with the header.
/// </summary>
internal enum NativeStatus
{
    Ok = 0,
    Truncated = 1,
    NoContext = 2,
    NullArgument = -1,
    InvalidHandle = -2,
    HandleAttached = -3,
    AttachedElsewhere = -4,
    NoSpace = -5,
    InvalidUtf8 = -6,
    OutOfMemory = -7,
    SelfCheckFailed = -8,
    Internal = -9,
    ThreadExiting = -10,
    NoThreadKey = -11,
}

/// <summary>
/// Status codes of the process-context calls (<c>OtelProcessCtxStatus</c>, an <c>int32_t</c>).
/// A test compares every member with the header.
/// </summary>
internal enum NativeProcessStatus
{
    Ok = 0,
    NullArgument = -1,
    InvalidUtf8 = -2,
    EmptyResourceKey = -3,
    DuplicateResourceKey = -4,
    EmptyAttributeKey = -5,
    DuplicateAttributeKey = -6,
    TooManyAttributeKeys = -7,
    KeyMapChanged = -8,
    PayloadTooLarge = -9,
    AlreadyPublished = -10,
    NotPublished = -11,
    MappingFailed = -12,
    BufferTooSmall = -13,
    Internal = -14,
}

/// <summary>Mirror of <c>OtelProcessCtxAttribute</c>: NUL-terminated UTF-8 key and value.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct NativeProcessAttribute
{
    public byte* Key;
    public byte* Value;
}

/// <summary>
/// P/Invoke declarations for the functions of <c>include/otel_thread_ctx.h</c> this package calls,
/// and no others, with blittable signatures (pointers, <see cref="byte"/>, <see cref="nuint"/>,
/// the <c>int32_t</c> status enums) and <see cref="RecordHandle"/>, whose stubs only add a
/// reference count.
/// Tests parse the committed header and fail when a declaration here differs from it in parameter
/// or return sizes, when one is not called by the package, or when the built library does not
/// export it.
/// </summary>
/// <remarks>
/// <c>OtelThreadCtx *</c> handles are <see cref="RecordHandle"/> where the caller owns one (the
/// marshaller holds a reference for the call), else <see cref="nint"/>; <c>OtelThreadCtxRecord *</c> is
/// <see cref="ThreadContextRecord"/>*; <c>const uint8_t (*)[16]</c> is <see cref="byte"/>*.
/// Every call that can fail returns a status and passes its result through an out-pointer; none
/// reports through <c>errno</c>, except that publish and update leave the OS error there with
/// <c>MAPPING_FAILED</c> (hence their <c>SetLastError</c>). Every call here may attach, allocate or
/// take the registry lock, so all keep the GC transition.
/// </remarks>
internal static unsafe partial class NativeMethods
{
    /// <summary>Name given to the loader; it probes <c>libotel_thread_ctx.so</c>.</summary>
    internal const string LibraryName = "otel_thread_ctx";

    /// <summary>The file the loader looks for on Linux.</summary>
    internal const string LibraryFileName = "libotel_thread_ctx.so";

    internal const int RecordSize = 640;
    internal const int HeaderSize = 28;
    internal const int AttrsCapacity = 612;
    internal const int MaxValueLen = 255;

    [LibraryImport(LibraryName)]
    internal static partial NativeStatus otel_thread_ctx_new(byte* trace_id, byte* span_id, byte trace_flags, nint* @out);

    [LibraryImport(LibraryName)]
    internal static partial NativeStatus otel_thread_ctx_free(nint ctx);

    [LibraryImport(LibraryName)]
    internal static partial NativeStatus otel_thread_ctx_attach(RecordHandle ctx, nint* displaced);

    [LibraryImport(LibraryName)]
    internal static partial nint otel_thread_ctx_detach();

    [LibraryImport(LibraryName)]
    internal static partial NativeStatus otel_thread_ctx_record(RecordHandle ctx, ThreadContextRecord** @out);

    [LibraryImport(LibraryName)]
    internal static partial NativeStatus otel_thread_ctx_ensure_record(ThreadContextRecord** @out);

    [LibraryImport(LibraryName, SetLastError = true)]
    internal static partial NativeProcessStatus otel_process_ctx_publish(
        NativeProcessAttribute* resource_attributes, nuint resource_attribute_count, byte** attribute_keys, nuint attribute_key_count);

    [LibraryImport(LibraryName, SetLastError = true)]
    internal static partial NativeProcessStatus otel_process_ctx_update(
        NativeProcessAttribute* resource_attributes, nuint resource_attribute_count, byte** attribute_keys, nuint attribute_key_count);

    [LibraryImport(LibraryName)]
    internal static partial NativeProcessStatus otel_process_ctx_unpublish();
}
