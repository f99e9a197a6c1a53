using System.Runtime.InteropServices;

namespace OtelThreadContext;

/// <summary>
/// Mirror of the native <c>OtelThreadCtxRecord</c>: one thread's published context, byte for byte
/// what an out-of-process reader parses (OTEP 4947). Size and offsets are checked by a test
/// against the header's constants.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = NativeMethods.RecordSize)]
internal unsafe struct ThreadContextRecord
{
    internal const int TraceIdOffset = 0;
    internal const int SpanIdOffset = 16;
    internal const int ValidOffset = 24;
    internal const int TraceFlagsOffset = 25;
    internal const int AttrsDataSizeOffset = 26;
    internal const int AttrsDataOffset = NativeMethods.HeaderSize;

    /// <summary>W3C trace id bytes; all zero means no active trace.</summary>
    [FieldOffset(TraceIdOffset)]
    public fixed byte TraceId[16];

    /// <summary>W3C span id bytes.</summary>
    [FieldOffset(SpanIdOffset)]
    public fixed byte SpanId[8];

    /// <summary>1 when the record is consistent; anything else means "being updated".</summary>
    [FieldOffset(ValidOffset)]
    public byte Valid;

    /// <summary>W3C trace-flags byte (bit 0 = sampled).</summary>
    [FieldOffset(TraceFlagsOffset)]
    public byte TraceFlags;

    /// <summary>Bytes of <see cref="AttrsData"/> in use.</summary>
    [FieldOffset(AttrsDataSizeOffset)]
    public ushort AttrsDataSize;

    /// <summary>Entries <c>[key u8][len u8][len bytes of UTF-8]</c>.</summary>
    [FieldOffset(AttrsDataOffset)]
    public fixed byte AttrsData[NativeMethods.AttrsCapacity];
}
