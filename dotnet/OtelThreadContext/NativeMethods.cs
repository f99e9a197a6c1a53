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
    InvalidValue = -15,
    InvalidContextAttribute = -16,
}

/// <summary>Mirror of <c>OtelProcessCtxAttribute</c>: NUL-terminated UTF-8 key and value.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct NativeProcessAttribute
{
    public byte* Key;
    public byte* Value;
}

/// <summary>
/// P/Invoke declarations for every function of <c>include/otel_thread_ctx.h</c>, one for one,
/// with blittable signatures only (pointers, <see cref="byte"/>, <see cref="nuint"/>, the
/// <c>int32_t</c> status enums), so the source-generated stubs add no marshalling.
/// Tests parse the committed header and fail when a C function lacks a declaration here, when
/// parameter or return sizes differ, or when the built library does not export an entry point.
/// </summary>
/// <remarks>
/// <c>OtelThreadCtx *</c> handles are <see cref="nint"/>; <c>OtelThreadCtxRecord *</c> is
/// <see cref="ThreadContextRecord"/>*; <c>const uint8_t (*)[16]</c> is <see cref="byte"/>*.
/// Functions that report errors through <c>errno</c> use <c>SetLastError = true</c>.
/// Only <see cref="otel_thread_ctx_update"/> is <see cref="SuppressGCTransitionAttribute"/>:
/// once a record is attached it is a short, lock-free in-place write. Every path that can
/// attach (allocate, take the registry lock, set up TLS) keeps the GC transition.
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

    [LibraryImport(LibraryName, SetLastError = true)]
    internal static partial nint otel_thread_ctx_new(byte* trace_id, byte* span_id, byte trace_flags);

    [LibraryImport(LibraryName)]
    internal static partial NativeStatus otel_thread_ctx_free(nint ctx);

    [LibraryImport(LibraryName, SetLastError = true)]
    internal static partial nint otel_thread_ctx_attach(nint ctx);

    [LibraryImport(LibraryName)]
    internal static partial nint otel_thread_ctx_detach();

    [LibraryImport(LibraryName)]
    internal static partial nint otel_thread_ctx_current();

    [LibraryImport(LibraryName)]
    [SuppressGCTransition]
    internal static partial NativeStatus otel_thread_ctx_update(byte* trace_id, byte* span_id, byte trace_flags);

    [LibraryImport(LibraryName)]
    internal static partial NativeStatus otel_thread_ctx_clear();

    [LibraryImport(LibraryName, SetLastError = true)]
    internal static partial ThreadContextRecord* otel_thread_ctx_record(nint ctx);

    [LibraryImport(LibraryName, SetLastError = true)]
    internal static partial ThreadContextRecord* otel_thread_ctx_ensure_record();

    [LibraryImport(LibraryName)]
    internal static partial NativeStatus otel_thread_ctx_set_attribute(nint ctx, byte key_index, byte* value, nuint value_len);

    [LibraryImport(LibraryName)]
    internal static partial NativeStatus otel_thread_ctx_clear_attributes(nint ctx);

    [LibraryImport(LibraryName)]
    internal static partial NativeStatus otel_thread_ctx_read_current(ThreadContextRecord* @out);

    [LibraryImport(LibraryName)]
    internal static partial nuint otel_thread_ctx_live_records();

    [LibraryImport(LibraryName)]
    internal static partial NativeStatus otel_thread_ctx_self_check(byte* msg, nuint msg_len);

    [LibraryImport(LibraryName)]
    internal static partial byte* otel_thread_ctx_version();

    [LibraryImport(LibraryName, SetLastError = true)]
    internal static partial NativeProcessStatus otel_process_ctx_publish(
        NativeProcessAttribute* resource_attributes, nuint resource_attribute_count, byte** attribute_keys, nuint attribute_key_count);

    [LibraryImport(LibraryName, SetLastError = true)]
    internal static partial NativeProcessStatus otel_process_ctx_update(
        NativeProcessAttribute* resource_attributes, nuint resource_attribute_count, byte** attribute_keys, nuint attribute_key_count);

    [LibraryImport(LibraryName)]
    internal static partial NativeProcessStatus otel_process_ctx_unpublish();

    [LibraryImport(LibraryName)]
    internal static partial NativeProcessStatus otel_process_ctx_read_payload(byte* buffer, nuint capacity, nuint* payload_size);
}
