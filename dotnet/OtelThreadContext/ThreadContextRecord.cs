using System.Runtime.InteropServices;

namespace OtelThreadContext;

/// <summary>Mirror of the native <c>OtelThreadCtxRecord</c> (OTEP 4947); a test checks size and
/// offsets against the header.</summary>
[StructLayout(LayoutKind.Explicit, Size = NativeMethods.RecordSize)]
internal unsafe struct ThreadContextRecord
{
    /// <summary>W3C trace id bytes; all zero means no active trace.</summary>
    [FieldOffset(0)]
    public fixed byte TraceId[16];

    [FieldOffset(16)]
    public fixed byte SpanId[8];

    /// <summary>1 when the record is consistent; anything else means "being updated".</summary>
    [FieldOffset(24)]
    public byte Valid;

    [FieldOffset(25)]
    public byte TraceFlags;

    [FieldOffset(26)]
    public ushort AttrsDataSize;

    /// <summary>Entries <c>[key u8][len u8][len bytes of UTF-8]</c>.</summary>
    [FieldOffset(NativeMethods.HeaderSize)]
    public fixed byte AttrsData[NativeMethods.AttrsCapacity];
}
