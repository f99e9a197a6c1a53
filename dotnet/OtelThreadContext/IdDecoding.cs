using System;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace OtelThreadContext;

/// <summary>Turns the ids callers hold into the three 8-byte words a record stores.</summary>
internal static class IdDecoding
{
    /// <summary>W3C id bytes (16 and 8, big-endian order) as they lie in the record.</summary>
    internal static void Decode(ReadOnlySpan<byte> traceId, ReadOnlySpan<byte> spanId, out ulong trace0, out ulong trace1, out ulong span)
    {
        trace0 = MemoryMarshal.Read<ulong>(traceId);
        trace1 = MemoryMarshal.Read<ulong>(traceId.Slice(8));
        span = MemoryMarshal.Read<ulong>(spanId);
    }

    /// <summary>An id word given as a big-endian number, as it lies in the record.</summary>
    internal static ulong FromBigEndian(ulong value) => BitConverter.IsLittleEndian ? BinaryPrimitives.ReverseEndianness(value) : value;

    /// <summary>The CopyTo fallback, out of line: its stackalloc would stop the JIT inlining callers.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void CopyIds(ActivityTraceId traceId, ActivitySpanId spanId, out ulong trace0, out ulong trace1, out ulong span)
    {
        Span<byte> ids = stackalloc byte[24];
        traceId.CopyTo(ids.Slice(0, 16));
        spanId.CopyTo(ids.Slice(16));
        Decode(ids.Slice(0, 16), ids.Slice(16), out trace0, out trace1, out span);
    }

    /// <summary>The ids as they lie in the record, decoded from their hex strings with vectors (their own
    /// <c>CopyTo</c> goes a pair at a time, the costliest step of an Activity switch); by CopyTo where vectors are
    /// not accelerated or the lengths are off.</summary>
    internal static void Decode(ActivityTraceId traceId, ActivitySpanId spanId, out ulong trace0, out ulong trace1, out ulong span)
    {
        // ToHexString returns the string the id holds (all zeros for default): no allocation.
        string traceHex = traceId.ToHexString();
        string spanHex = spanId.ToHexString();
        if (!Vector128.IsHardwareAccelerated || !BitConverter.IsLittleEndian || traceHex.Length != 32 || spanHex.Length != 16)
        {
            CopyIds(traceId, spanId, out trace0, out trace1, out span);
            return;
        }

        ReadOnlySpan<ushort> t = MemoryMarshal.Cast<char, ushort>(traceHex.AsSpan());
        ReadOnlySpan<ushort> s = MemoryMarshal.Cast<char, ushort>(spanHex.AsSpan());
        Vector128<ulong> traceBytes = Vector128.Narrow(
            HexPairs(Vector128.Create(t.Slice(0, 8)), Vector128.Create(t.Slice(8, 8))),
            HexPairs(Vector128.Create(t.Slice(16, 8)), Vector128.Create(t.Slice(24, 8)))).AsUInt64();
        Vector128<ulong> spanBytes = Vector128.Narrow(
            HexPairs(Vector128.Create(s.Slice(0, 8)), Vector128.Create(s.Slice(8, 8))),
            Vector128<ushort>.Zero).AsUInt64();
        trace0 = traceBytes.GetElement(0);
        trace1 = traceBytes.GetElement(1);
        span = spanBytes.GetElement(0);
    }

    /// <summary>Sixteen hex characters (UTF-16) to eight byte values, one per 16-bit lane. A digit's value
    /// is its low four bits, plus 9 for a letter (bit 6 set: 'a'-'f' and 'A'-'F').</summary>
    private static Vector128<ushort> HexPairs(Vector128<ushort> low, Vector128<ushort> high)
    {
        Vector128<ushort> lowBits = Vector128.Create((ushort)0x0F);
        Vector128<ushort> one = Vector128.Create((ushort)1);
        Vector128<ushort> lowValues = (low & lowBits) + (((low >>> 6) & one) * 9);
        Vector128<ushort> highValues = (high & lowBits) + (((high >>> 6) & one) * 9);

        // Lane i of `pairs` holds character 2i in its low byte and character 2i+1 in its high byte.
        Vector128<ushort> pairs = Vector128.Narrow(lowValues, highValues).AsUInt16();
        return ((pairs & Vector128.Create((ushort)0xFF)) << 4) | (pairs >>> 8);
    }
}
