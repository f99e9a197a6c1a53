using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Text.Json;
using Xunit;

namespace OtelThreadContext.Tests;

/// <summary>
/// Reads this process's context the way an out-of-process profiler does, with the repository's
/// inspector: <c>otel-ctx-dump --json</c> on this process, which finds the mapping in
/// <c>/proc/PID/maps</c> and reads it through process_vm_readv. Shares no code with the library.
/// </summary>
/// <remarks>The inspector is <c>target/debug/otel-ctx-dump</c> (<c>cargo build -p otel-ctx-dump</c>;
/// scripts/dev.sh test-dotnet builds it), or the path in <c>OTEL_CTX_DUMP</c>. It also reads thread records:
/// <c>--thread</c> limits that to the calling thread, which only waits for it.</remarks>
internal static partial class ProcessContextReader
{
    public sealed record Mapping(ulong Start, string Name);

    public sealed record Header(ulong PublishedAtNs, uint PayloadSize);

    public sealed record ResourceMessage(List<KeyValuePair<string, JsonElement>> Attributes);

    public sealed record Context(ResourceMessage Resource, List<KeyValuePair<string, JsonElement>> Attributes);

    /// <summary>A read of the context; <paramref name="Payload"/> is the decoded payload as JSON text, to
    /// compare two reads.</summary>
    public sealed record Snapshot(Mapping Mapping, Header Header, string Payload, Context Decoded);

    static ProcessContextReader()
    {
        // Where Yama allows only ancestors to trace (ptrace_scope 1), let the inspector, a child, read this process.
        const int PrSetPtracer = 0x59616d61;
        _ = prctl(PrSetPtracer, unchecked((nuint)(-1)));
    }

    /// <summary>The context mapping the inspector finds (valid or not), if any.</summary>
    public static List<Mapping> FindMappings()
    {
        JsonElement pc = Inspect();
        return pc.GetProperty("status").GetString() == "absent" ? [] : [MappingOf(pc)];
    }

    /// <summary>The published context as a reader finds it; fails the test unless the inspector finds a
    /// well-formed, published one.</summary>
    public static Snapshot Read()
    {
        JsonElement pc = Inspect();
        Assert.True(pc.GetProperty("status").GetString() == "present", $"the inspector found no valid process context: {pc}");
        var header = new Header(pc.GetProperty("published_at_ns").GetUInt64(), pc.GetProperty("payload_size").GetUInt32());
        Assert.NotEqual(0ul, header.PublishedAtNs);
        Assert.InRange(header.PayloadSize, 1u, 64u * 1024);

        JsonElement resource = pc.GetProperty("resource"), attributes = pc.GetProperty("attributes");
        return new Snapshot(
            MappingOf(pc),
            header,
            resource.GetRawText() + attributes.GetRawText(),
            new Context(new ResourceMessage(Entries(resource)), Entries(attributes)));
    }

    /// <summary>Resource attributes by key; each must be a string and appear once.</summary>
    public static Dictionary<string, string> Resource(Context ctx)
    {
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach ((string key, JsonElement value) in ctx.Resource.Attributes)
        {
            Assert.Equal(JsonValueKind.String, value.ValueKind);
            Assert.True(map.TryAdd(key, value.GetString()!), $"resource attribute {key} appears twice");
        }

        return map;
    }

    /// <summary>The <c>ProcessContext.attributes</c> entry named <paramref name="key"/>.</summary>
    public static JsonElement Attribute(Context ctx, string key) => Assert.Single(ctx.Attributes, kv => kv.Key == key).Value;

    /// <summary><c>threadlocal.attribute_key_map</c> as the list of names it is.</summary>
    public static List<string> KeyMap(Context ctx)
    {
        JsonElement map = Attribute(ctx, "threadlocal.attribute_key_map");
        Assert.Equal(JsonValueKind.Array, map.ValueKind);
        return map.EnumerateArray().Select(v =>
        {
            Assert.Equal(JsonValueKind.String, v.ValueKind);
            return v.GetString()!;
        }).ToList();
    }

    /// <summary>
    /// Attributes in order, each value turned back into the CLR value it stands for: string, bool, long,
    /// double, null (an empty AnyValue), or <c>object?[]</c> for an array. Fails on kinds the library never writes.
    /// </summary>
    public static List<KeyValuePair<string, object?>> Typed(IEnumerable<KeyValuePair<string, JsonElement>> attributes) =>
        attributes.Select(kv => new KeyValuePair<string, object?>(kv.Key, FromAny(kv.Value))).ToList();

    /// <summary>A value as the inspector writes it: an int without a fraction or exponent, a double with one.</summary>
    public static object? FromAny(JsonElement v) => v.ValueKind switch
    {
        JsonValueKind.Null => null,
        JsonValueKind.String => v.GetString(),
        JsonValueKind.True or JsonValueKind.False => v.GetBoolean(),
        JsonValueKind.Number when v.GetRawText().AsSpan().IndexOfAny(".eE") < 0 => v.GetInt64(),
        JsonValueKind.Number => v.GetDouble(),
        JsonValueKind.Array => v.EnumerateArray().Select(FromAny).ToArray(),
        _ => throw new Xunit.Sdk.XunitException($"unexpected value {v}"),
    };

    private static List<KeyValuePair<string, JsonElement>> Entries(JsonElement map) =>
        map.EnumerateObject().Select(p => new KeyValuePair<string, JsonElement>(p.Name, p.Value)).ToList();

    private static Mapping MappingOf(JsonElement pc) => new(
        ulong.Parse(pc.GetProperty("address").GetString()!.AsSpan(2), NumberStyles.HexNumber, CultureInfo.InvariantCulture),
        pc.GetProperty("mapping").GetString()!);

    /// <summary>The inspector's <c>process_context</c> object for this process.</summary>
    private static JsonElement Inspect()
    {
        string? path = Environment.GetEnvironmentVariable("OTEL_CTX_DUMP");
        if (string.IsNullOrEmpty(path))
        {
            path = typeof(ProcessContextReader).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
                .Single(a => a.Key == "OtelCtxDump").Value;
        }

        Assert.True(
            File.Exists(path),
            $"The inspector {path} is missing: build it with `cargo build -p otel-ctx-dump` (scripts/dev.sh test-dotnet does), " +
            "or set OTEL_CTX_DUMP to its path.");
        var psi = new ProcessStartInfo(path!) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string arg in new[] { "--json", "--thread", gettid().ToString(CultureInfo.InvariantCulture), Environment.ProcessId.ToString(CultureInfo.InvariantCulture) })
        {
            psi.ArgumentList.Add(arg);
        }

        using Process dump = Process.Start(psi)!;
        var stderr = dump.StandardError.ReadToEndAsync();
        string stdout = dump.StandardOutput.ReadToEnd();
        Assert.True(dump.WaitForExit(60_000), "the inspector did not finish in 60 s");
        Assert.True(stdout.Length > 0, $"{path} exited {dump.ExitCode} with no report: {stderr.Result}");
        using JsonDocument report = JsonDocument.Parse(stdout);
        return report.RootElement.GetProperty("process_context").Clone();
    }

    [LibraryImport("libc")]
    private static partial int prctl(int option, nuint arg2);

    [LibraryImport("libc")]
    private static partial int gettid();
}
