using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using OpenTelemetry;
using OpenTelemetry.Trace;
using Xunit;

// The tests block on purpose: the test thread waits outside the async flows under test, which
// run on the thread pool without a synchronization context.
#pragma warning disable xUnit1031

namespace OtelThreadContext.ActivityTests;

/// <summary>Spans created through the OpenTelemetry SDK (a TracerProvider and its
/// ActivitySource) show up in thread records with their exact ids and sampled flag.</summary>
public sealed class OpenTelemetrySdkTests
{
    private const string SourceName = "OtelThreadContext.ActivityTests.Sdk";
    private readonly ITestOutputHelper _output;

    public OpenTelemetrySdkTests(ITestOutputHelper output) => _output = output;

    /// <summary>Samples spans whose name starts with "sampled"; records the others without
    /// sampling them (they keep the parent's flags).</summary>
    private sealed class ByNameSampler : Sampler
    {
        public override SamplingResult ShouldSample(in SamplingParameters parameters) =>
            new(parameters.Name.StartsWith("sampled", StringComparison.Ordinal)
                ? SamplingDecision.RecordAndSample
                : SamplingDecision.RecordOnly);
    }

    /// <summary>Every span the SDK ends, as the SDK saw it.</summary>
    private sealed class Collector : BaseProcessor<Activity>
    {
        public ConcurrentDictionary<ulong, (Ids Ids, string Name)> Ended { get; } = new();

        public override void OnEnd(Activity data)
        {
            Ids ids = Ids.Of(data);
            Ended[ids.Span] = (ids, data.DisplayName);
        }
    }

    [Fact]
    public void SpansFromATracerProviderAppearWithTheirExactIdsAndSampledFlag()
    {
        var collector = new Collector();
        using TracerProvider provider = Sdk.CreateTracerProviderBuilder()
            .AddSource(SourceName)
            .SetSampler(new ByNameSampler())
            .AddProcessor(collector)
            .Build()!;
        using var source = new ActivitySource(SourceName);
        using IDisposable tracking = ActivityThreadContext.Enable();

        // Remote parents, as incoming traceparent headers give them: one sampled, one not.
        var traceId = ActivityTraceId.CreateFromString("4bf92f3577b34da6a3ce929d0e0e4736");
        var sampledParent = new ActivityContext(
            traceId, ActivitySpanId.CreateFromString("00f067aa0ba902b7"), ActivityTraceFlags.Recorded, isRemote: true);
        var unsampledParent = new ActivityContext(
            traceId, ActivitySpanId.CreateFromString("00f067aa0ba902b8"), ActivityTraceFlags.None, isRemote: true);
        var seen = new ConcurrentQueue<(Ids Record, Ids Current)>();
        var checker = new Checker();

        void Observe(string where)
        {
            checker.Check(where);
            Activity? current = Activity.Current;
            if (current is not null)
            {
                seen.Enqueue((Records.ReadCurrent().Ids, Ids.Of(current)));
            }
        }

        async Task Request(int i)
        {
            await Task.Yield();
            // Even requests continue a sampled trace; odd ones an unsampled one, recorded only.
            using Activity? server = i % 2 == 0
                ? source.StartActivity("sampled request", ActivityKind.Server, sampledParent)
                : source.StartActivity("unsampled request", ActivityKind.Server, unsampledParent);
            Assert.NotNull(server);
            Observe("request started");
            await Task.Delay(1);
            Observe("request resumed");
            using (Activity? unsampled = source.StartActivity("unsampled work"))
            {
                Assert.NotNull(unsampled);
                Observe("unsampled child started");
                await Task.Run(() => Observe("unsampled child in Task.Run"));
                Observe("unsampled child resumed");
            }

            using (Activity? sampled = source.StartActivity("sampled work"))
            {
                await Task.Yield();
                Observe("sampled child resumed");
            }

            Observe("request resumed after children");
        }

        ThreadPool.GetMinThreads(out int minWorkers, out int minIo);
        ThreadPool.SetMinThreads(Math.Max(minWorkers, 8), minIo);
        try
        {
            Task.WaitAll(Enumerable.Range(0, 50).Select(i => Task.Run(() => Request(i))).ToArray());
        }
        finally
        {
            ThreadPool.SetMinThreads(minWorkers, minIo);
        }

        provider.ForceFlush();
        foreach (ulong span in collector.Ended.Keys)
        {
            checker.Spans.TryAdd(span, 0);
        }

        _output.WriteLine($"OpenTelemetry SDK: {checker.Report()}; {seen.Count} records observed inside spans, {collector.Ended.Count} spans ended");

        Assert.True(checker.Mismatches == 0, checker.Report());
        Assert.Equal(150, collector.Ended.Count);
        Assert.True(seen.Count >= 300);
        var flagsSeen = new HashSet<byte>();
        foreach ((Ids record, Ids current) in seen)
        {
            Assert.True(collector.Ended.TryGetValue(record.Span, out var ended), $"record {record} is no span the SDK ended");
            Assert.Equal(ended.Ids, record);
            Assert.Equal(current, record);
            if (ended.Name.StartsWith("sampled", StringComparison.Ordinal))
            {
                Assert.Equal(1, record.Flags);
            }
            else if (ended.Name == "unsampled request")
            {
                Assert.Equal(0, record.Flags);
            }

            flagsSeen.Add(record.Flags);
        }

        // Every span continues the remote trace.
        Assert.All(collector.Ended.Values, e => Assert.Equal("4bf92f3577b34da6a3ce929d0e0e4736", e.Ids.ToString().Substring(0, 32)));
        Assert.Equal(new HashSet<byte> { 0, 1 }, flagsSeen);
        checker.AssertNoThreadKeepsASpan();
    }
}
