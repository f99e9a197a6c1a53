using System;
using System.Collections.Generic;
using System.Linq;
using Xunit;

namespace OtelThreadContext.Tests;

/// <summary>
/// Typed resource values (<see cref="ProcessContextOptions.FromResource"/>), process-context
/// attributes (<see cref="ProcessContextOptions.ContextAttributes"/>) and
/// <see cref="ProcessContext.PublishScoped"/>, read back from the mapping as a profiler reads it.
/// </summary>
[Collection(ProcessContextCollection.Name)]
public sealed class ProcessContextTypedTests : IDisposable
{
    public ProcessContextTypedTests()
    {
        Assert.False(ProcessContext.IsPublished, "an earlier test left the process context published");
        Assert.Empty(ProcessContextReader.FindMappings());
    }

    public void Dispose() => ProcessContext.Unpublish();

    private static readonly KeyValuePair<string, object>[] s_resource =
    [
        new("service.name", "checkout"),
        new("service.instance.id", "5f0c7a0e-1b2c-4d3e-8f9a-0b1c2d3e4f5a"),
        new("telemetry.sdk.name", "opentelemetry"),
        new("telemetry.sdk.language", "dotnet"),
        new("telemetry.sdk.version", "1.20.1"),
        new("flag", true),
        new("count", 42L),
        new("small", 7),
        new("ratio", 0.5),
        new("tags", new[] { "a", "b" }),
        new("ints", new long[] { 1, -2 }),
        new("doubles", new[] { 1.5 }),
        new("bools", new[] { true, false }),
        new("holes", new string?[] { "x", null }),
        new("empty", Array.Empty<string>()),
    ];

    [Fact]
    public void FromResourcePublishesExactlyTheResourceWithTypes()
    {
        ThreadAttributeKey key = ProcessContext.DeclareKey("typed.route");
        ProcessContext.Publish(ProcessContextOptions.FromResource(s_resource));

        ProcessContextReader.Snapshot s = ProcessContextReader.Read();
        var expected = s_resource.Select(kv => new KeyValuePair<string, object?>(kv.Key, kv.Value switch
        {
            int i => (long)i,
            string?[] a => a.Cast<object?>().ToArray(),
            long[] a => a.Cast<object?>().ToArray(),
            double[] a => a.Cast<object?>().ToArray(),
            bool[] a => a.Cast<object?>().ToArray(),
            var v => v,
        })).ToList();
        Assert.Equal(expected, ProcessContextReader.Typed(s.Decoded.Resource.Attributes));
        Assert.Equal(
            new[] { "threadlocal.schema_version", "threadlocal.attribute_key_map" },
            s.Decoded.Attributes.Select(a => a.Key));
        Assert.Contains(key.Name, ProcessContextReader.KeyMap(s.Decoded));

        // Declaring a key later republishes the same exact resource.
        ProcessContext.DeclareKey("typed.later");
        ProcessContextReader.Snapshot after = ProcessContextReader.Read();
        Assert.Equal(expected, ProcessContextReader.Typed(after.Decoded.Resource.Attributes));
        Assert.Contains("typed.later", ProcessContextReader.KeyMap(after.Decoded));
    }

    [Fact]
    public void ContextAttributesFollowTheLibrarysOwn()
    {
        ProcessContext.Publish(new ProcessContextOptions
        {
            ServiceName = "checkout",
            ServiceInstanceId = "i-1",
            ContextAttributes = new Dictionary<string, object>
            {
                ["otel.instrumentations"] = new[] { "aspnetcore", "http" },
                ["custom.flag"] = true,
            },
        });

        ProcessContextReader.Snapshot s = ProcessContextReader.Read();
        List<KeyValuePair<string, object?>> attrs = ProcessContextReader.Typed(s.Decoded.Attributes);
        Assert.Equal(
            new[] { "threadlocal.schema_version", "threadlocal.attribute_key_map", "otel.instrumentations", "custom.flag" },
            attrs.Select(a => a.Key));
        Assert.Equal(new object?[] { "aspnetcore", "http" }, attrs[2].Value);
        Assert.Equal(true, attrs[3].Value);

        // The ordinary options keep their string resource and the library's SDK defaults.
        Dictionary<string, string> resource = ProcessContextReader.Resource(s.Decoded);
        Assert.Equal("otel-thread-ctx", resource["telemetry.sdk.name"]);
        Assert.Equal("i-1", resource["service.instance.id"]);
    }

    public static TheoryData<string, object, string> BadContextAttributes => new()
    {
        { "", 1, "INVALID_CONTEXT_ATTRIBUTE" },
        { "threadlocal.mine", 1, "INVALID_CONTEXT_ATTRIBUTE" },
        { "nested", new object[] { new[] { 1 } }, "arrays inside arrays" },
        { "type", new Uri("http://x"), "System.Uri" },
        { "big", ulong.MaxValue, "does not fit" },
    };

    [Theory]
    [MemberData(nameof(BadContextAttributes))]
    public void BadContextAttributesAreRefused(string key, object value, string reason)
    {
        var e = Assert.Throws<ArgumentException>(() => ProcessContext.Publish(new ProcessContextOptions
        {
            ServiceName = "s",
            ContextAttributes = new Dictionary<string, object> { [key] = value },
        }));
        Assert.Contains(reason, e.Message, StringComparison.Ordinal);
        Assert.False(ProcessContext.IsPublished);
        Assert.Empty(ProcessContextReader.FindMappings());
    }

    [Fact]
    public void ALoneSurrogateIsPublishedAsTheReplacementCharacter()
    {
        ProcessContext.Publish(new ProcessContextOptions
        {
            ServiceName = "s",
            ContextAttributes = new Dictionary<string, object> { ["surrogate"] = "a\ud800" },
        });
        Assert.Equal("a\ufffd", ProcessContextReader.Attribute(ProcessContextReader.Read().Decoded, "surrogate").GetString());
    }

    [Fact]
    public void FromResourceRefusesBadResources()
    {
        Assert.Contains("service.name", Assert.Throws<ArgumentException>(
            () => ProcessContextOptions.FromResource([new("service.name", 1L)])).Message, StringComparison.Ordinal);
        Assert.Contains("DUPLICATE_RESOURCE_KEY", Assert.Throws<ArgumentException>(() => ProcessContext.Publish(
            ProcessContextOptions.FromResource([new("service.name", "a"), new("service.name", "a")]))).Message, StringComparison.Ordinal);
        Assert.Contains("System.Object", Assert.Throws<ArgumentException>(
            () => ProcessContextOptions.FromResource([new("service.name", "a"), new("o", new object())])).Message, StringComparison.Ordinal);

        // Past 64 KiB: refused by the native library, nothing published.
        var big = ProcessContextOptions.FromResource([new("service.name", "a"), new("big", new string('x', 70_000))]);
        Assert.Throws<ArgumentException>(() => ProcessContext.Publish(big));
        Assert.False(ProcessContext.IsPublished);
    }

    [Fact]
    public void PublishScopedUnpublishesOnlyItsOwnContext()
    {
        IDisposable first = ProcessContext.PublishScoped(new ProcessContextOptions { ServiceName = "one" });
        Assert.True(ProcessContext.IsPublished);
        first.Dispose();
        Assert.False(ProcessContext.IsPublished);
        Assert.Empty(ProcessContextReader.FindMappings());

        // A handle whose context was replaced by a publish leaves the newer one alone.
        IDisposable replaced = ProcessContext.PublishScoped(new ProcessContextOptions { ServiceName = "one" });
        IDisposable second = ProcessContext.PublishScoped(new ProcessContextOptions { ServiceName = "two" });
        replaced.Dispose();
        Assert.Equal("two", ProcessContextReader.Resource(ProcessContextReader.Read().Decoded)["service.name"]);
        second.Dispose();
        Assert.False(ProcessContext.IsPublished);

        // Nor does one whose context was unpublished and published again.
        IDisposable stale = ProcessContext.PublishScoped(new ProcessContextOptions { ServiceName = "old" });
        ProcessContext.Unpublish();
        ProcessContext.Publish(new ProcessContextOptions { ServiceName = "new" });
        stale.Dispose();
        stale.Dispose();
        Assert.True(ProcessContext.IsPublished);
        Assert.Equal("new", ProcessContextReader.Resource(ProcessContextReader.Read().Decoded)["service.name"]);
    }
}
