using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace OtelThreadContext;

/// <summary><c>OtelThreadCtxStatus</c> (an <c>int32_t</c>): negative values are errors, after
/// which nothing was changed. A test compares every member with the header.</summary>
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
    OwnedByThread = -12,
}

/// <summary><c>OtelProcessCtxStatus</c> (an <c>int32_t</c>); a test compares every member with the header.</summary>
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
    OtherContextPublished = -17,
    InvalidSchemaVersion = -18,
}

/// <summary>Mirror of <c>OtelProcessCtxValue</c>: one typed value (an OTLP AnyValue).</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct NativeProcessValue
{
    public NativeValueKind Kind;
    public long IntValue;
    public double DoubleValue;
    public void* Pointer;
    public nuint Length;
}

/// <summary>The <c>OTEL_PROCESS_CTX_VALUE_*</c> kinds: which fields of a value count.</summary>
internal enum NativeValueKind : uint { String, Bool, Int, Double, Array, Empty }

/// <summary>Mirror of <c>OtelProcessCtxKeyValue</c>: a NUL-terminated UTF-8 key and its value.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct NativeProcessKeyValue
{
    public byte* Key;
    public NativeProcessValue Value;
}

/// <summary>
/// The functions of <c>include/otel_thread_ctx.h</c> this package calls, and no others, with
/// blittable signatures; <see cref="RecordHandle"/> where the caller owns a handle (the marshaller
/// holds a reference for the call). Tests check them against the header and the built library.
/// </summary>
/// <remarks>Publish and update leave the OS error in <c>errno</c> with <c>MAPPING_FAILED</c> (hence
/// <c>SetLastError</c>). Every call may attach, allocate or take a lock, so all keep the GC transition.</remarks>
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

    [LibraryImport(LibraryName)]
    internal static partial byte* otel_thread_ctx_version();

    [LibraryImport(LibraryName, SetLastError = true)]
    internal static partial NativeProcessStatus otel_process_ctx_publish_typed(
        NativeProcessKeyValue* resource, nuint resource_count, NativeProcessKeyValue* attributes, nuint attribute_count,
        byte** attribute_keys, nuint attribute_key_count);

    [LibraryImport(LibraryName, SetLastError = true)]
    internal static partial NativeProcessStatus otel_process_ctx_update_typed(
        NativeProcessKeyValue* resource, nuint resource_count, NativeProcessKeyValue* attributes, nuint attribute_count,
        byte** attribute_keys, nuint attribute_key_count);

    [LibraryImport(LibraryName)]
    internal static partial NativeProcessStatus otel_process_ctx_unpublish();

    [LibraryImport(LibraryName)]
    internal static partial NativeProcessStatus otel_process_ctx_declare_key(byte* key, byte* index);

    [LibraryImport(LibraryName)]
    internal static partial NativeProcessStatus otel_process_ctx_set_schema_version(byte* version);

    [LibraryImport(LibraryName)]
    internal static partial NativeStatus otel_thread_ctx_self_check(byte* msg, nuint msg_len);
}
