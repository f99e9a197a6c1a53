using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using Microsoft.Win32.SafeHandles;
using OtelThreadContext.Tests.Proto;
using Xunit;
using ProtoContext = OtelThreadContext.Tests.Proto.ProcessContext;

namespace OtelThreadContext.Tests;

/// <summary>
/// Reads this process's context the way an out-of-process profiler does (OTEP 4719): find the
/// <c>OTEL_CTX</c> mapping in <c>/proc/self/maps</c>, read its 32-byte header through
/// <c>/proc/self/mem</c>, follow the payload pointer, and decode the payload with the classes
/// protoc generated from <c>Protos/process_context.proto</c>. Shares no code with the library.
/// </summary>
internal static unsafe class ProcessContextReader
{
    /// <summary>The names the spec lets the mapping have in <c>/proc/PID/maps</c>.</summary>
    public static readonly string[] MappingNames = ["/memfd:OTEL_CTX (deleted)", "[anon:OTEL_CTX]", "[anon_shmem:OTEL_CTX]"];

    public sealed record Mapping(ulong Start, ulong End, string Permissions, string Name);

    public sealed record Header(string Signature, uint Version, uint PayloadSize, ulong PublishedAtNs, ulong PayloadAddress);

    public sealed record Snapshot(Mapping Mapping, Header Header, byte[] Payload, ProtoContext Decoded);

    /// <summary>Every mapping of this process named as the spec names the context's.</summary>
    public static List<Mapping> FindMappings()
    {
        var found = new List<Mapping>();
        foreach (string line in File.ReadAllLines("/proc/self/maps"))
        {
            // start-end perms offset dev inode [pathname, which may contain spaces]
            string[] f = line.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries);
            if (f.Length < 6)
            {
                continue;
            }

            string name = f[5].Trim();
            if (!MappingNames.Contains(name))
            {
                continue;
            }

            string[] range = f[0].Split('-');
            found.Add(new Mapping(Convert.ToUInt64(range[0], 16), Convert.ToUInt64(range[1], 16), f[1], name));
        }

        return found;
    }

    /// <summary>Reads <paramref name="length"/> bytes at <paramref name="address"/> through
    /// <c>/proc/self/mem</c>, as a profiler reads another process.</summary>
    public static byte[] ReadMemory(ulong address, int length)
    {
        using SafeFileHandle mem = File.OpenHandle("/proc/self/mem", FileMode.Open, FileAccess.Read);
        byte[] buffer = new byte[length];
        int total = 0;
        while (total < length)
        {
            int n = RandomAccess.Read(mem, buffer.AsSpan(total), checked((long)address + total));
            Assert.True(n > 0, $"/proc/self/mem: short read at 0x{address + (ulong)total:x}");
            total += n;
        }

        return buffer;
    }

    public static Header ParseHeader(ReadOnlySpan<byte> h) => new(
        Encoding.ASCII.GetString(h.Slice(0, 8)),
        BinaryPrimitives.ReadUInt32LittleEndian(h.Slice(8)),
        BinaryPrimitives.ReadUInt32LittleEndian(h.Slice(12)),
        BinaryPrimitives.ReadUInt64LittleEndian(h.Slice(16)),
        BinaryPrimitives.ReadUInt64LittleEndian(h.Slice(24)));

    /// <summary>The published context as a reader finds it; fails the test unless there is
    /// exactly one well-formed, published context.</summary>
    public static Snapshot Read()
    {
        List<Mapping> mappings = FindMappings();
        Mapping m = Assert.Single(mappings);
        Assert.True(m.End - m.Start >= 32, $"mapping {m} is smaller than the header");
        Assert.DoesNotContain('x', m.Permissions);
        Assert.StartsWith("r", m.Permissions, StringComparison.Ordinal);

        Header header = ParseHeader(ReadMemory(m.Start, 32));
        Assert.Equal("OTEL_CTX", header.Signature);
        Assert.Equal(2u, header.Version);
        Assert.NotEqual(0ul, header.PublishedAtNs);
        Assert.InRange(header.PayloadSize, 1u, 64u * 1024);
        Assert.NotEqual(0ul, header.PayloadAddress);

        byte[] payload = ReadMemory(header.PayloadAddress, (int)header.PayloadSize);
        return new Snapshot(m, header, payload, ProtoContext.Parser.ParseFrom(payload));
    }

    /// <summary>The payload as <c>otel_process_ctx_read_payload</c> copies it, or null when
    /// nothing is published.</summary>
    public static byte[]? ReadPayloadNative()
    {
        nuint size = 0;
        NativeProcessStatus status = TestNativeMethods.otel_process_ctx_read_payload(null, 0, &size);
        if (status == NativeProcessStatus.NotPublished)
        {
            Assert.Equal(0u, (uint)size);
            return null;
        }

        Assert.Equal(NativeProcessStatus.BufferTooSmall, status);
        byte[] buffer = new byte[(int)size];
        fixed (byte* p = buffer)
        {
            nuint copied = 0;
            Assert.Equal(NativeProcessStatus.Ok, TestNativeMethods.otel_process_ctx_read_payload(p, size, &copied));
            Assert.Equal(size, copied);
        }

        return buffer;
    }

    /// <summary>Resource attributes by key; each must be a string and appear once.</summary>
    public static Dictionary<string, string> Resource(ProtoContext ctx)
    {
        Assert.NotNull(ctx.Resource);
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (KeyValue kv in ctx.Resource.Attributes)
        {
            Assert.Equal(AnyValue.ValueOneofCase.StringValue, kv.Value.ValueCase);
            Assert.True(map.TryAdd(kv.Key, kv.Value.StringValue), $"resource attribute {kv.Key} appears twice");
        }

        return map;
    }

    /// <summary>The <c>ProcessContext.attributes</c> entry named <paramref name="key"/>.</summary>
    public static AnyValue Attribute(ProtoContext ctx, string key) =>
        Assert.Single(ctx.Attributes, kv => kv.Key == key).Value;

    /// <summary><c>threadlocal.attribute_key_map</c> as the list of names it is.</summary>
    public static List<string> KeyMap(ProtoContext ctx)
    {
        AnyValue map = Attribute(ctx, "threadlocal.attribute_key_map");
        Assert.Equal(AnyValue.ValueOneofCase.ArrayValue, map.ValueCase);
        return map.ArrayValue.Values.Select(v =>
        {
            Assert.Equal(AnyValue.ValueOneofCase.StringValue, v.ValueCase);
            return v.StringValue;
        }).ToList();
    }
}
