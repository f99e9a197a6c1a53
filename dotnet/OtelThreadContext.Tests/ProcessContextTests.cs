using System;
using System.Collections.Generic;
using System.Linq;
using Xunit;
using ProtoContext = OtelThreadContext.Tests.Proto.ProcessContext;

namespace OtelThreadContext.Tests;

/// <summary>The process context is process-global: its tests never run alongside each other.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ProcessContextCollection
{
    public const string Name = "ProcessContext";
}

/// <summary>
/// <see cref="ProcessContext"/> publishes what a profiler reads: checked by reading the mapping
/// through /proc/self/maps and /proc/self/mem and decoding it with Google.Protobuf.
/// </summary>
/// <remarks>The key map is process-wide and only grows, so tests declare names of their own and
/// compare the published map with <see cref="ProcessContext.Keys"/>.</remarks>
[Collection(ProcessContextCollection.Name)]
public sealed unsafe class ProcessContextTests : IDisposable
{
    public ProcessContextTests()
    {
        Assert.False(ProcessContext.IsPublished, "an earlier test left the process context published");
        Assert.Empty(ProcessContextReader.FindMappings());
    }

    public void Dispose() => ProcessContext.Unpublish();

    private static List<string> DeclaredNames() => ProcessContext.Keys.Select(k => k.Name).ToList();

    [Fact]
    public void PublishedPayloadIsWhatAReaderFindsAndDecodes()
    {
        ThreadAttributeKey route = ProcessContext.DeclareKey("http_route");
        ThreadAttributeKey method = ProcessContext.DeclareKey("http_method");
        Assert.Equal(route.Index + 1, method.Index);

        ProcessContext.Publish(new ProcessContextOptions
        {
            ServiceName = "checkout",
            ServiceInstanceId = "instance-7",
            DeploymentEnvironmentName = "production",
            ServiceVersion = "1.2.3",
            ResourceAttributes = new Dictionary<string, string> { ["host.name"] = "node-1", ["service.name"] = "checkout" },
        });
        Assert.True(ProcessContext.IsPublished);

        ProcessContextReader.Snapshot s = ProcessContextReader.Read();
        Assert.Contains(s.Mapping.Name, ProcessContextReader.MappingNames);
        Assert.Equal(ProcessContextReader.ReadPayloadNative(), s.Payload);

        Dictionary<string, string> resource = ProcessContextReader.Resource(s.Decoded);
        Assert.Equal("checkout", resource["service.name"]);
        Assert.Equal("instance-7", resource["service.instance.id"]);
        Assert.Equal("production", resource["deployment.environment.name"]);
        Assert.Equal("1.2.3", resource["service.version"]);
        Assert.Equal("node-1", resource["host.name"]);
        Assert.Equal("dotnet", resource["telemetry.sdk.language"]);
        Assert.False(string.IsNullOrEmpty(resource["telemetry.sdk.name"]));
        string nativeVersion = System.Runtime.InteropServices.Marshal.PtrToStringUTF8((nint)NativeMethods.otel_thread_ctx_version())!;
        Assert.Equal(nativeVersion, resource["telemetry.sdk.version"]);
        Assert.Equal(8, resource.Count);

        Assert.Equal("tlsdesc_v1_dev", ProcessContextReader.Attribute(s.Decoded, "threadlocal.schema_version").StringValue);
        List<string> keyMap = ProcessContextReader.KeyMap(s.Decoded);
        Assert.Equal(DeclaredNames(), keyMap);
        Assert.Equal("http_route", keyMap[route.Index]);
        Assert.Equal("http_method", keyMap[method.Index]);
    }
}
