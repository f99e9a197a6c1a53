using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Diagnostics;
using System.Diagnostics.Tracing;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using System.Threading;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using OtelThreadContext.Tests;
using OtelThreadContext.TestShared;
using Xunit;

// The process context and the tracker are process-wide: one test at a time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace OtelThreadContext.OpenTelemetry.Tests;

/// <summary>
/// <c>AddThreadContext</c>: the process context a profiler reads back from the mapping is the
/// provider's <c>GetResource()</c>, attribute by attribute with types; tracking runs while the
/// provider lives; two publishers and bad input have their documented outcomes.
/// </summary>
public sealed unsafe partial class AddThreadContextTests : IDisposable
{
    private const string SourceName = "OtelThreadContext.OpenTelemetry.Tests";
    private static readonly ActivitySource s_source = new(SourceName);
    private readonly LogListener _log = new();

    public AddThreadContextTests()
    {
        Assert.False(ProcessContext.IsPublished, "an earlier test left the process context published");
        Assert.Empty(ProcessContextReader.FindMappings());
        Assert.False(ActivityThreadContext.IsEnabled, "an earlier test left tracking on");
    }

    public void Dispose()
    {
        _log.Dispose();
        ProcessContext.Unpublish();
    }

    private static void WaitForPublished()
    {
        var sw = Stopwatch.StartNew();
        while (!ProcessContext.IsPublished && sw.Elapsed < TimeSpan.FromSeconds(10))
        {
            Thread.Sleep(1);
        }

        Assert.True(ProcessContext.IsPublished, "the provider did not publish within 10 s");
    }

    /// <summary>What the exporters send, in the reader's CLR form (arrays as object?[]).</summary>
    private static List<KeyValuePair<string, object?>> Expected(Resource resource) =>
        resource.Attributes.Select(kv => new KeyValuePair<string, object?>(kv.Key, kv.Value switch
        {
            Array a => a.Cast<object?>().Select(e => e is int i ? (long)i : e).ToArray(),
            int i => (long)i,
            var v => v,
        })).ToList();

    private static ResourceBuilder TypedResource(string service) => ResourceBuilder.CreateDefault()
        .AddService(service, serviceVersion: "1.2.3")
        .AddAttributes(new Dictionary<string, object>
        {
            ["deployment.environment.name"] = "test",
            ["flag"] = true,
            ["count"] = 42L,
            ["ratio"] = 0.25,
            ["tags"] = new[] { "a", "b" },
            ["ints"] = new long[] { 1, -2 },
            ["doubles"] = new[] { 0.5, 1.5 },
            ["bools"] = new[] { false, true },
        });

    [Fact]
    public void TheBuiltProviderPublishesItsResourceAndTracksUntilDisposed()
    {
        TracerProvider provider = Sdk.CreateTracerProviderBuilder()
            .SetResourceBuilder(TypedResource("typed-service"))
            .AddSource(SourceName)
            .AddThreadContext(o => o.ActivityTags.Add("test.route"))
            .Build()!;
        WaitForPublished();

        ProcessContextReader.Snapshot s = ProcessContextReader.Read();
        List<KeyValuePair<string, object?>> published = ProcessContextReader.Typed(s.Decoded.Resource.Attributes);
        List<KeyValuePair<string, object?>> expected = Expected(provider.GetResource());
        Assert.Equal(expected, published);
        string instanceId = Assert.IsType<string>(published.Single(kv => kv.Key == "service.instance.id").Value);
        Assert.True(Guid.TryParse(instanceId, out _), instanceId);
        Assert.Equal("opentelemetry", published.Single(kv => kv.Key == "telemetry.sdk.name").Value);
        Assert.Contains("test.route", ProcessContextReader.KeyMap(s.Decoded));
        Assert.Contains(_log.Events, e => e.EventId == 1);

        // Tracking is on: this thread's record shows the span and its route tag.
        Assert.True(ActivityThreadContext.IsEnabled);
        using (Activity a = s_source.StartActivity("request", ActivityKind.Server, default(ActivityContext),
                   [new("test.route", "/orders/{id}")])!)
        {
            (ulong span, List<(byte Key, string Value)> attrs) = ReadCurrent();
            Assert.Equal(SpanOf(a), span);
            int index = ProcessContextReader.KeyMap(s.Decoded).IndexOf("test.route");
            Assert.Contains(((byte)index, "/orders/{id}"), attrs);
        }

        provider.Dispose();
        Assert.False(ProcessContext.IsPublished);
        Assert.Empty(ProcessContextReader.FindMappings());
        Assert.False(ActivityThreadContext.IsEnabled);
        Assert.Contains(_log.Events, e => e.EventId == 6);
    }

    [Fact]
    public void NoSpanIsRecordedBeforeItsProcessContext()
    {
        var seen = new List<bool>();
        using TracerProvider provider = Sdk.CreateTracerProviderBuilder()
            .ConfigureResource(r => r.AddService("first-span"))
            .AddSource(SourceName)
            .AddThreadContext()
            .AddProcessor(new OnStartProbe(() => seen.Add(ProcessContext.IsPublished)))
            .Build()!;

        // At once, before the processor's wait for its provider can have run.
        using (s_source.StartActivity("first"))
        {
        }

        Assert.Equal(new[] { true }, seen);
        Assert.Equal("first-span", Service());
    }

    private sealed class OnStartProbe(Action onStart) : BaseProcessor<Activity>
    {
        public override void OnStart(Activity data) => onStart();
    }

    [Fact]
    public void TheDependencyInjectionPathPublishesTheSameWay()
    {
        var services = new ServiceCollection();
        services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService("di-service").AddAttributes([new("custom", 7L)]))
            .WithTracing(t => t.AddSource(SourceName).AddThreadContext(o => o.ContextAttributes["otel.instrumentations"] = new[] { "tests" }));
        ServiceProvider sp = services.BuildServiceProvider();
        TracerProvider provider = sp.GetRequiredService<TracerProvider>();
        WaitForPublished();

        ProcessContextReader.Snapshot s = ProcessContextReader.Read();
        Assert.Equal(Expected(provider.GetResource()), ProcessContextReader.Typed(s.Decoded.Resource.Attributes));
        Assert.Equal(new object?[] { "tests" }, ProcessContextReader.FromAny(ProcessContextReader.Attribute(s.Decoded, "otel.instrumentations")));

        sp.Dispose();
        Assert.False(ProcessContext.IsPublished);
        Assert.False(ActivityThreadContext.IsEnabled);
    }

    [Fact]
    public void TheFirstPublisherKeepsTheContextAndLaterOnesSayWhy()
    {
        TracerProvider first = Sdk.CreateTracerProviderBuilder()
            .ConfigureResource(r => r.AddService("first")).AddThreadContext().Build()!;
        WaitForPublished();
        TracerProvider second = Sdk.CreateTracerProviderBuilder()
            .ConfigureResource(r => r.AddService("second")).AddThreadContext().Build()!;
        WaitFor(() => _log.Events.Any(e => e.EventId == 3), "the second provider's AlreadyPublished warning");
        Assert.Equal("first", Service());

        second.Dispose();
        Assert.Equal("first", Service());
        Assert.True(ActivityThreadContext.IsEnabled, "the first provider still tracks");

        // A manual publish replaces the provider's context, which the provider then leaves alone.
        ProcessContext.Publish(new ProcessContextOptions { ServiceName = "manual" });
        Assert.Equal("manual", Service());
        first.Dispose();
        Assert.Equal("manual", Service());
        Assert.False(ActivityThreadContext.IsEnabled);
        ProcessContext.Unpublish();
    }

    [Fact]
    public void AManualContextPublishedFirstIsLeftAlone()
    {
        ProcessContext.Publish(new ProcessContextOptions { ServiceName = "manual" });
        TracerProvider provider = Sdk.CreateTracerProviderBuilder()
            .ConfigureResource(r => r.AddService("sdk")).AddThreadContext().Build()!;
        WaitFor(() => _log.Events.Any(e => e.EventId == 3), "the AlreadyPublished warning");
        Assert.Equal("manual", Service());
        provider.Dispose();
        Assert.True(ProcessContext.IsPublished, "the provider must not unpublish a context it did not publish");
        Assert.Equal("manual", Service());
    }

    [Fact]
    public void AnotherLibrarysProcessContextIsLoggedAndLeftAlone()
    {
        using var other = new ForeignProcessContext();
        var exported = new List<Activity>();
        using (TracerProvider provider = Sdk.CreateTracerProviderBuilder()
            .ConfigureResource(r => r.AddService("second"))
            .AddSource(SourceName)
            .AddThreadContext()
            .AddInMemoryExporterLike(exported)
            .Build()!)
        {
            WaitFor(() => _log.Events.Any(e => e.EventId == 4), "the PublishFailed error");
            string reason = _log.Events.First(e => e.EventId == 4).Payload![0]!.ToString()!;
            Assert.Contains("OTEL_THREAD_CTX_STATUS_OTHER_CONTEXT_PUBLISHED", reason, StringComparison.Ordinal);
            Assert.Contains("one process context per process", reason, StringComparison.Ordinal);
            Assert.False(ProcessContext.IsPublished);
            Assert.Equal(other.Address, Assert.Single(ProcessContextReader.FindMappings()).Start);
            using (Activity? a = s_source.StartActivity("still tracked"))
            {
                Assert.NotNull(a);
                Assert.Equal(SpanOf(a), ReadCurrent().Span);
            }
        }

        Assert.Single(exported);
    }

    [Fact]
    public void AnotherModulesSlotFailsTheSelfCheckAndIsLogged()
    {
        Assert.True(ThreadContext.SelfCheck(out string before), before);

        // Another tracer's library defining its own otel_thread_ctx_v1: a copy of ours under another name. It
        // stays loaded (the library is linked -z nodelete), so this test alone loads it.
        string copy = Path.Combine(Directory.CreateTempSubdirectory("otel-other-").FullName, "libanother_tracer.so");
        File.Copy(Path.Combine(AppContext.BaseDirectory, "libotel_thread_ctx.so"), copy);
        NativeLibrary.Load(copy);
        Assert.False(ThreadContext.SelfCheck(out string problem));
        Assert.Contains(copy, problem, StringComparison.Ordinal);

        using TracerProvider provider = Sdk.CreateTracerProviderBuilder()
            .AddSource(SourceName)
            .AddThreadContext(o => o.PublishProcessContext = false)
            .Build()!;
        WaitFor(() => _log.Events.Any(e => e.EventId == 8), "the SelfCheckFailed error");
        Assert.Contains(copy, _log.Events.First(e => e.EventId == 8).Payload![0]!.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void AResourceTooLargeToPublishIsLoggedAndNeverBreaksTheProvider()
    {
        var exported = new List<Activity>();
        using TracerProvider provider = Sdk.CreateTracerProviderBuilder()
            .ConfigureResource(r => r.AddService("big").AddAttributes([new("big", new string('x', 70_000))]))
            .AddSource(SourceName)
            .AddThreadContext()
            .AddInMemoryExporterLike(exported)
            .Build()!;
        WaitFor(() => _log.Events.Any(e => e.EventId == 4), "the PublishFailed error");
        Assert.False(ProcessContext.IsPublished);
        Assert.Contains("64 KiB", _log.Events.First(e => e.EventId == 4).Payload![0]!.ToString(), StringComparison.Ordinal);
        using (Activity? a = s_source.StartActivity("still works"))
        {
            Assert.NotNull(a);
            Assert.Equal(SpanOf(a), ReadCurrent().Span);
        }

        Assert.Single(exported);
    }

    private static void WaitFor(Func<bool> condition, string what)
    {
        var sw = Stopwatch.StartNew();
        while (!condition() && sw.Elapsed < TimeSpan.FromSeconds(10))
        {
            Thread.Sleep(1);
        }

        Assert.True(condition(), $"timed out waiting for {what}");
    }

    private static string Service() =>
        (string)ProcessContextReader.Typed(ProcessContextReader.Read().Decoded.Resource.Attributes)
            .Single(kv => kv.Key == "service.name").Value!;

    private static ulong SpanOf(Activity a)
    {
        Span<byte> b = stackalloc byte[8];
        a.SpanId.CopyTo(b);
        return MemoryMarshal.Read<ulong>(b);
    }

    [LibraryImport("otel_thread_ctx")]
    private static partial int otel_thread_ctx_read_current(byte* record);

    /// <summary>This thread's record as the library copies it: span id bytes and attributes.</summary>
    private static (ulong Span, List<(byte Key, string Value)> Attributes) ReadCurrent()
    {
        byte* r = stackalloc byte[640];
        Assert.Equal(0, otel_thread_ctx_read_current(r));
        var record = new ReadOnlySpan<byte>(r, 640);
        ushort size = MemoryMarshal.Read<ushort>(record.Slice(26));
        return (MemoryMarshal.Read<ulong>(record.Slice(16)), RecordTestHelpers.ParseAttributes(record.Slice(28, size)));
    }

    /// <summary>Collects the events of the package's EventSource.</summary>
    private sealed class LogListener : EventListener
    {
        public ConcurrentQueue<EventWrittenEventArgs> Events { get; } = new();

        protected override void OnEventSourceCreated(EventSource source)
        {
            if (source.Name == "OtelThreadContext-OpenTelemetry")
            {
                EnableEvents(source, EventLevel.Verbose);
            }
        }

        protected override void OnEventWritten(EventWrittenEventArgs e) => Events.Enqueue(e);
    }
}

internal static class ExportHelpers
{
    /// <summary>A processor that keeps every ended span (the SDK works on after a failed publish).</summary>
    public static TracerProviderBuilder AddInMemoryExporterLike(this TracerProviderBuilder b, List<Activity> into) =>
        b.AddProcessor(new Keep(into));

    private sealed class Keep(List<Activity> into) : BaseProcessor<Activity>
    {
        public override void OnEnd(Activity data)
        {
            lock (into)
            {
                into.Add(data);
            }
        }
    }
}
