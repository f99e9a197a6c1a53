using System;
using System.Collections.Generic;
using System.Linq;
using System.Runtime.InteropServices;
using OtelThreadContext.TestShared;
using Xunit;

namespace OtelThreadContext.Tests;

/// <summary>The process context is process-global: its tests never run alongside each other.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ProcessContextCollection
{
    public const string Name = "ProcessContext";
}

/// <summary>
/// <see cref="ProcessContext"/> publishes what a profiler reads: checked by reading the mapping
/// with the otel-ctx-dump inspector (see <see cref="ProcessContextReader"/>).
/// </summary>
/// <remarks>The key map is process-wide and only grows, so tests declare names of their own.</remarks>
[Collection(ProcessContextCollection.Name)]
public sealed unsafe class ProcessContextTests : IDisposable
{
    public ProcessContextTests()
    {
        Assert.False(ProcessContext.IsPublished, "an earlier test left the process context published");
        Assert.Empty(ProcessContextReader.FindMappings());
    }

    public void Dispose() => ProcessContext.Unpublish();

    [Fact]
    public void DeclareKeyAppendsToTheKeyMapNativeCodePublished()
    {
        KeyMap.Forget();
        nint service = Marshal.StringToCoTaskMemUTF8("service.name"), name = Marshal.StringToCoTaskMemUTF8("native");
        nint tenant = Marshal.StringToCoTaskMemUTF8("tenant.id");
        try
        {
            OtelProcessCtxKeyValue resource = new()
            {
                Key = (byte*)service,
                Value = new() { Kind = NativeMethods.OTEL_PROCESS_CTX_VALUE_STRING, Pointer = (void*)name, Length = 6 },
            };
            byte* key = (byte*)tenant;
            Assert.Equal(OtelThreadCtxStatus.Ok, NativeMethods.otel_process_ctx_publish(&resource, 1, null, 0, &key, 1));

            // Index 1, after the native publisher's key: never its index 0.
            ThreadAttributeKey route = ProcessContext.DeclareKey("http.route");
            Assert.Equal(1, route.Index);
            Assert.Equal(["tenant.id", "http.route"], ProcessContextReader.KeyMap(ProcessContextReader.Read().Decoded));
            Native.OnNewThread(() =>
            {
                Assert.Equal(SetAttributeResult.Stored, ThreadContext.SetAttribute(route, "/admin/delete"));
                Assert.Equal([((byte)1, "/admin/delete")], Native.Attributes(Native.ReadCurrent()));
            });
        }
        finally
        {
            Assert.Equal(OtelThreadCtxStatus.Ok, NativeMethods.otel_process_ctx_unpublish());
            KeyMap.Forget(); // tenant.id is no key of this copy's: later tests compare the map with Keys
            Marshal.FreeCoTaskMem(service);
            Marshal.FreeCoTaskMem(name);
            Marshal.FreeCoTaskMem(tenant);
        }
    }

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
        Assert.Equal(Native.ReadPayload()!.Length, (int)s.Header.PayloadSize);

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

        Assert.Equal("tlsdesc_v1_dev", ProcessContextReader.Attribute(s.Decoded, "threadlocal.schema_version").GetString());
        List<string> keyMap = ProcessContextReader.KeyMap(s.Decoded);
        Assert.Equal("http_route", keyMap[route.Index]);
        Assert.Equal("http_method", keyMap[method.Index]);
    }

    [Fact]
    public void AttributeKeyIndexesInRecordsNameTheDeclaredKeysInThePublishedMap() => Native.OnNewThread(() =>
    {
        ThreadAttributeKey userId = ProcessContext.DeclareKey("records.user_id");
        ThreadAttributeKey route = ProcessContext.DeclareKey("records.http_route");
        ThreadAttributeKey method = ProcessContext.DeclareKey("records.http_method");
        ProcessContext.Publish(new ProcessContextOptions { ServiceName = "records" });

        ThreadContext.Set(0x0af7651916cd43ddUL, 0x8448eb211c80319cUL, 0xb7ad6b7169203331UL, 1);
        Assert.Equal(SetAttributeResult.Stored, ThreadContext.SetAttribute(route, "/orders/{id}"));
        Assert.Equal(SetAttributeResult.Stored, ThreadContext.SetAttribute(method, "GET".AsSpan()));
        Assert.Equal(SetAttributeResult.Stored, ThreadContext.SetAttribute(userId, "u-42"));
        Assert.Equal(SetAttributeResult.Stored, ThreadContext.SetAttribute(route, "/orders/{id}/items"));

        // The reader's side: the record as the TLS slot points at it, and the key map as the
        // inspector reads it from the mapping.
        List<(byte Key, string Value)> entries = Native.Attributes(Native.ReadCurrent());
        List<string> keyMap = ProcessContextReader.KeyMap(ProcessContextReader.Read().Decoded);
        var named = entries.ToDictionary(e => keyMap[e.Key], e => e.Value);

        Assert.Equal(3, entries.Count);
        Assert.Equal(
            new Dictionary<string, string>
            {
                ["records.http_route"] = "/orders/{id}/items",
                ["records.http_method"] = "GET",
                ["records.user_id"] = "u-42",
            },
            named);
    });

    [Fact]
    public void DeclaringAKeyAfterPublishAppendsItToThePublishedMap()
    {
        ThreadAttributeKey first = ProcessContext.DeclareKey("append.first");
        ProcessContext.Publish(new ProcessContextOptions { ServiceName = "append" });
        ProcessContextReader.Snapshot before = ProcessContextReader.Read();
        List<string> mapBefore = ProcessContextReader.KeyMap(before.Decoded);

        ThreadAttributeKey added = ProcessContext.DeclareKey("append.added");
        ProcessContextReader.Snapshot after = ProcessContextReader.Read();
        List<string> mapAfter = ProcessContextReader.KeyMap(after.Decoded);

        Assert.Equal(mapBefore.Count, added.Index);
        Assert.Equal(mapBefore.Append("append.added"), mapAfter);
        Assert.Equal("append.first", mapAfter[first.Index]);
        Assert.True(
            after.Header.PublishedAtNs > before.Header.PublishedAtNs,
            $"timestamp {after.Header.PublishedAtNs} is not after {before.Header.PublishedAtNs}");
        Assert.Equal(before.Mapping.Name, after.Mapping.Name);
        Assert.Equal(ProcessContextReader.Resource(before.Decoded), ProcessContextReader.Resource(after.Decoded));

        // Declaring a known name again returns its key and publishes nothing.
        Assert.Equal(first, ProcessContext.DeclareKey("append.first"));
        Assert.Equal(added, ProcessContext.DeclareKey("append.added"));
        ProcessContextReader.Snapshot again = ProcessContextReader.Read();
        Assert.Equal(after.Header.PublishedAtNs, again.Header.PublishedAtNs);
        Assert.Equal(after.Payload, again.Payload);
    }

    [Fact]
    public void KeysDeclaredWhileUnpublishedAppearWhenPublished()
    {
        ThreadAttributeKey k = ProcessContext.DeclareKey("unpublished.key");
        Assert.Null(Native.ReadPayload());

        ProcessContext.Publish(new ProcessContextOptions { ServiceName = "late" });
        List<string> keyMap = ProcessContextReader.KeyMap(ProcessContextReader.Read().Decoded);
        Assert.Equal("unpublished.key", keyMap[k.Index]);
    }

    [Fact]
    public void PublishingAgainReplacesTheResourceKeepsTheKeysAndBumpsTheTimestamp()
    {
        ProcessContext.DeclareKey("update.key");
        ProcessContext.Publish(new ProcessContextOptions { ServiceName = "svc", ServiceVersion = "1" });
        ProcessContextReader.Snapshot before = ProcessContextReader.Read();

        ProcessContext.Publish(new ProcessContextOptions { ServiceName = "svc", ServiceVersion = "2", DeploymentEnvironmentName = "staging" });
        ProcessContextReader.Snapshot after = ProcessContextReader.Read();

        Dictionary<string, string> resource = ProcessContextReader.Resource(after.Decoded);
        Assert.Equal("2", resource["service.version"]);
        Assert.Equal("staging", resource["deployment.environment.name"]);
        Assert.Equal("dotnet", resource["telemetry.sdk.language"]);
        Assert.Equal(ProcessContextReader.Resource(before.Decoded)["service.instance.id"], resource["service.instance.id"]);
        Assert.Equal(ProcessContextReader.KeyMap(before.Decoded), ProcessContextReader.KeyMap(after.Decoded));
        Assert.True(after.Header.PublishedAtNs > before.Header.PublishedAtNs);
        Assert.Equal(before.Mapping.Name, after.Mapping.Name);
    }

    [Fact]
    public void RefusedPublishesAndDeclarationsLeaveThePublishedContextIntact()
    {
        ProcessContext.DeclareKey("refused.key");
        ProcessContext.Publish(new ProcessContextOptions
        {
            ServiceName = "big",
            ResourceAttributes = new Dictionary<string, string> { ["filler"] = new string('f', 63 * 1024) },
        });
        ProcessContextReader.Snapshot before = ProcessContextReader.Read();

        // Refused by the native library: the payload would pass 64 KiB.
        var tooLarge = new ProcessContextOptions
        {
            ServiceName = "big",
            ResourceAttributes = new Dictionary<string, string> { ["filler"] = new string('f', 65 * 1024) },
        };
        ArgumentException e = Assert.Throws<ArgumentException>(() => ProcessContext.Publish(tooLarge));
        Assert.Contains("64 KiB", e.Message, StringComparison.Ordinal);
        Assert.Contains("OTEL_THREAD_CTX_STATUS_PAYLOAD_TOO_LARGE", e.Message, StringComparison.Ordinal);

        // A key that would push the payload past 64 KiB is not declared at all.
        string longName = "refused." + new string('k', 2048);
        e = Assert.Throws<ArgumentException>(() => ProcessContext.DeclareKey(longName));
        Assert.Contains("PAYLOAD_TOO_LARGE", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(longName, ProcessContextReader.KeyMap(ProcessContextReader.Read().Decoded));

        // Refused by the native library too: a key given twice with two values.
        Assert.Throws<ArgumentException>(() => ProcessContext.Publish(new ProcessContextOptions
        {
            ServiceName = "big",
            ResourceAttributes = new Dictionary<string, string> { ["service.name"] = "other" },
        }));

        ProcessContextReader.Snapshot after = ProcessContextReader.Read();
        Assert.Equal(before.Header, after.Header);
        Assert.Equal(before.Payload, after.Payload);
        Assert.Equal((int)before.Header.PayloadSize, Native.ReadPayload()!.Length);
        Assert.True(ProcessContext.IsPublished);
    }

    [Fact]
    public void PublishingTwiceReplacesTheFirstContextInItsMapping()
    {
        ProcessContext.Publish(new ProcessContextOptions { ServiceName = "first" });
        ProcessContextReader.Snapshot before = ProcessContextReader.Read();

        ProcessContext.Publish(new ProcessContextOptions { ServiceName = "second" });

        ProcessContextReader.Snapshot after = ProcessContextReader.Read();
        Assert.Equal(before.Mapping.Start, after.Mapping.Start);
        Assert.Equal("second", ProcessContextReader.Resource(after.Decoded)["service.name"]);
        Assert.True(ProcessContext.IsPublished);
    }

    [Fact]
    public void AnotherLibrarysContextMappingRefusesPublishingUntilItIsGone()
    {
        using (var other = new ForeignProcessContext())
        {
            ProcessContextReader.Mapping foreign = Assert.Single(ProcessContextReader.FindMappings());
            Assert.Equal(other.Address, foreign.Start);

            InvalidOperationException e = Assert.Throws<InvalidOperationException>(
                () => ProcessContext.Publish(new ProcessContextOptions { ServiceName = "second" }));
            Assert.Contains("OTEL_THREAD_CTX_STATUS_OTHER_CONTEXT_PUBLISHED", e.Message, StringComparison.Ordinal);
            Assert.Contains("one process context per process", e.Message, StringComparison.Ordinal);
            Assert.False(ProcessContext.IsPublished);
            Assert.Equal(foreign, Assert.Single(ProcessContextReader.FindMappings()));
        }

        // Control: with the other mapping gone, the same publish works.
        Assert.Empty(ProcessContextReader.FindMappings());
        ProcessContext.Publish(new ProcessContextOptions { ServiceName = "second" });
        Assert.True(ProcessContext.IsPublished);
        Assert.Equal("second", ProcessContextReader.Resource(ProcessContextReader.Read().Decoded)["service.name"]);
    }

    [Fact]
    public void UnpublishRemovesTheMapping()
    {
        ProcessContext.Publish(new ProcessContextOptions { ServiceName = "gone" });
        Assert.Single(ProcessContextReader.FindMappings());

        ProcessContext.Unpublish();
        Assert.False(ProcessContext.IsPublished);
        Assert.Empty(ProcessContextReader.FindMappings());
        Assert.Null(Native.ReadPayload());

        ProcessContext.Unpublish(); // nothing published: nothing to do

        // Declared keys survive and are published again with their indexes.
        ThreadAttributeKey k = ProcessContext.DeclareKey("unpublish.key");
        ProcessContext.Publish(new ProcessContextOptions { ServiceName = "back" });
        Assert.Equal("unpublish.key", ProcessContextReader.KeyMap(ProcessContextReader.Read().Decoded)[k.Index]);
    }

    [Fact]
    public void DefaultInstanceIdIsOneGuidForTheProcess()
    {
        ProcessContext.Publish(new ProcessContextOptions { ServiceName = "ids" });
        string id = ProcessContextReader.Resource(ProcessContextReader.Read().Decoded)["service.instance.id"];
        Assert.True(Guid.TryParse(id, out _), id);

        ProcessContext.Unpublish();
        ProcessContext.Publish(new ProcessContextOptions { ServiceName = "ids" });
        Assert.Equal(id, ProcessContextReader.Resource(ProcessContextReader.Read().Decoded)["service.instance.id"]);

        // Given in ResourceAttributes instead of the property: that one is published.
        ProcessContext.Publish(new ProcessContextOptions
        {
            ServiceName = "ids",
            ResourceAttributes = new Dictionary<string, string> { ["service.instance.id"] = "explicit" },
        });
        Assert.Equal("explicit", ProcessContextReader.Resource(ProcessContextReader.Read().Decoded)["service.instance.id"]);
    }

    [Fact]
    public void ResourceAttributesMayRepeatButNotContradictThePackagesOwn()
    {
        // telemetry.sdk.name/version may be given (an SDK's resource); language must stay dotnet.
        ProcessContext.Publish(new ProcessContextOptions
        {
            ServiceName = "sdk",
            ResourceAttributes = new Dictionary<string, string>
            {
                ["telemetry.sdk.language"] = "dotnet",
                ["telemetry.sdk.name"] = "opentelemetry",
                ["telemetry.sdk.version"] = "1.14.0",
            },
        });
        Dictionary<string, string> resource = ProcessContextReader.Resource(ProcessContextReader.Read().Decoded);
        Assert.Equal("opentelemetry", resource["telemetry.sdk.name"]);
        Assert.Equal("1.14.0", resource["telemetry.sdk.version"]);
        Assert.Equal("dotnet", resource["telemetry.sdk.language"]);

        ArgumentException e = Assert.Throws<ArgumentException>(() => ProcessContext.Publish(new ProcessContextOptions
        {
            ServiceName = "sdk",
            ResourceAttributes = new Dictionary<string, string> { ["telemetry.sdk.language"] = "java" },
        }));
        Assert.Contains("DUPLICATE_RESOURCE_KEY", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void BadArgumentsAreRefusedWithTheReason()
    {
        Assert.Throws<ArgumentNullException>(() => ProcessContext.DeclareKey(null!));
        Assert.Throws<ArgumentException>(() => ProcessContext.DeclareKey(string.Empty));
        Assert.Contains("NUL", Assert.Throws<ArgumentException>(() => ProcessContext.DeclareKey("a\0b")).Message, StringComparison.Ordinal);

        Assert.Throws<ArgumentNullException>(() => ProcessContext.Publish(null!));
        Assert.Throws<ArgumentException>(() => ProcessContext.Publish(new ProcessContextOptions { ServiceName = string.Empty }));
        Assert.Throws<ArgumentException>(() => ProcessContext.Publish(new ProcessContextOptions
        {
            ServiceName = "x",
            ResourceAttributes = new Dictionary<string, string> { [string.Empty] = "v" },
        }));
        Assert.False(ProcessContext.IsPublished);
        Assert.Empty(ProcessContextReader.FindMappings());

        Assert.Throws<ArgumentException>(() => ThreadContext.SetAttribute(default(ThreadAttributeKey), "v"));
    }

    [Fact]
    public void KeysCompareByNameAndIndex()
    {
        ThreadAttributeKey a = ProcessContext.DeclareKey("equality.a");
        ThreadAttributeKey b = ProcessContext.DeclareKey("equality.b");
        Assert.True(a == ProcessContext.DeclareKey("equality.a"));
        Assert.True(a != b);
        Assert.False(a.Equals(default));
        Assert.Equal(string.Empty, default(ThreadAttributeKey).Name);
        Assert.Equal($"equality.a#{a.Index}", a.ToString());
        Assert.Equal(a.GetHashCode(), ProcessContext.DeclareKey("equality.a").GetHashCode());
    }

    [Fact]
    public void EveryNativeRefusalMapsToAnExceptionNamingItsStatus()
    {
        string header = System.IO.File.ReadAllText(TestSupport.HeaderPath);
        foreach (OtelThreadCtxStatus status in Enum.GetValues<OtelThreadCtxStatus>().Where(s => s != OtelThreadCtxStatus.Ok))
        {
            Exception e = ProcessContext.ToException(status, 12, "Testing");
            string name = System.Text.RegularExpressions.Regex.Match(header, $@"\b(OTEL_THREAD_CTX_STATUS_\w+) = {(int)status},").Groups[1].Value;
            Assert.NotEqual(string.Empty, name);
            if (status == OtelThreadCtxStatus.MappingFailed)
            {
                var io = Assert.IsType<System.IO.IOException>(e);
                var inner = Assert.IsType<System.ComponentModel.Win32Exception>(io.InnerException);
                Assert.Equal(12, inner.NativeErrorCode);
                Assert.Contains(System.Runtime.InteropServices.Marshal.GetPInvokeErrorMessage(12), io.Message, StringComparison.Ordinal);
                Assert.Contains("errno 12", io.Message, StringComparison.Ordinal);
                continue;
            }

            Assert.Contains(name, e.Message, StringComparison.Ordinal);
            bool badInput = status is OtelThreadCtxStatus.InvalidUtf8 or OtelThreadCtxStatus.EmptyResourceKey
                or OtelThreadCtxStatus.DuplicateResourceKey or OtelThreadCtxStatus.EmptyAttributeKey
                or OtelThreadCtxStatus.DuplicateAttributeKey or OtelThreadCtxStatus.PayloadTooLarge
                or OtelThreadCtxStatus.InvalidValue or OtelThreadCtxStatus.InvalidContextAttribute
                or OtelThreadCtxStatus.InvalidSchemaVersion;
            Assert.IsType(badInput ? typeof(ArgumentException) : typeof(InvalidOperationException), e);
        }
    }
}
