using System.Runtime.InteropServices;

namespace OtelThreadContext;

/// <summary>Mirror of <c>OtelProcessCtxValue</c>: one typed value (an OTLP AnyValue).</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct NativeProcessValue
{
    public const uint String = 0;
    public const uint Bool = 1;
    public const uint Int = 2;
    public const uint Double = 3;
    public const uint Array = 4;
    public const uint Empty = 5;

    public uint Kind;
    public long IntValue;
    public double DoubleValue;
    public void* Pointer;
    public nuint Length;
}

/// <summary>Mirror of <c>OtelProcessCtxKeyValue</c>: a NUL-terminated UTF-8 key and its value.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct NativeProcessKeyValue
{
    public byte* Key;
    public NativeProcessValue Value;
}

/// <summary>The typed process-context calls (kept apart from the original declarations).</summary>
internal static unsafe partial class NativeMethods
{
    [LibraryImport(LibraryName, SetLastError = true)]
    internal static partial NativeProcessStatus otel_process_ctx_publish_typed(
        NativeProcessKeyValue* resource, nuint resource_count, NativeProcessKeyValue* attributes, nuint attribute_count,
        byte** attribute_keys, nuint attribute_key_count);

    [LibraryImport(LibraryName, SetLastError = true)]
    internal static partial NativeProcessStatus otel_process_ctx_update_typed(
        NativeProcessKeyValue* resource, nuint resource_count, NativeProcessKeyValue* attributes, nuint attribute_count,
        byte** attribute_keys, nuint attribute_key_count);
}
