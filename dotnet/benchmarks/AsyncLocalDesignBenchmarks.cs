using System;
using System.Diagnostics;
using System.Threading;
using BenchmarkDotNet.Attributes;

namespace OtelThreadContext.Benchmarks;

/// <summary>
/// Design experiments for the share of Activity tracking that is the notifying
/// <see cref="AsyncLocal{T}"/> (docs/benchmarks.md, "Cutting the AsyncLocal share"): one Activity
/// started and stopped under each way of following <see cref="Activity.Current"/>; none writes a
/// record, so each measures the mechanism alone against the same start/stop with nothing.
/// </summary>
public class AsyncLocalDesignBenchmarks
{
    private const string SourceName = "OtelThreadContext.Benchmarks.AsyncLocalDesign";
    private static readonly ActivitySource Source = new(SourceName);

    private ActivityListener? _listener;
    private EventHandler<ActivityChangedEventArgs>? _handler;

    /// <summary>Nothing follows Activity.Current.</summary>
    [GlobalSetup(Target = nameof(Nothing))]
    public void SetupNothing() => Listen();

    /// <summary>An empty <see cref="Activity.CurrentChanged"/> handler: the event's own cost.</summary>
    [GlobalSetup(Target = nameof(EventOnly))]
    public void SetupEventOnly() => Follow(static (_, _) => { });

    /// <summary>Today's design: a notifying local assigned the new Activity at every change.</summary>
    [GlobalSetup(Target = nameof(NotifyingLocalPerChange))]
    public void SetupNotifying()
    {
        AsyncLocal<Activity?> local = new(static _ => { });
        Follow((_, e) =>
        {
            if (!ReferenceEquals(local.Value, e.Current))
            {
                local.Value = e.Current;
            }
        });
    }

    /// <summary>A local without a change handler assigned at every change: what the notification
    /// itself adds over a plain ExecutionContext copy.</summary>
    [GlobalSetup(Target = nameof(PlainLocalPerChange))]
    public void SetupPlain()
    {
        AsyncLocal<Activity?> local = new();
        Follow((_, e) =>
        {
            if (!ReferenceEquals(local.Value, e.Current))
            {
                local.Value = e.Current;
            }
        });
    }

    /// <summary>
    /// The notifying local assigned when a span starts, not when it stops (the stop would write the
    /// parent directly): half today's assignments. Not correct: the flow after the stop and work
    /// captured inside the span hold the same value, so a switch between them goes unnoticed
    /// (FloorDesignTests in the Activity tests: work that outlives its span).
    /// </summary>
    [GlobalSetup(Target = nameof(NotifyingLocalPerStart))]
    public void SetupPerStart()
    {
        AsyncLocal<Activity?> local = new(static _ => { });
        Follow((_, e) =>
        {
            if (e.Previous is not { IsStopped: true } && !ReferenceEquals(local.Value, e.Current))
            {
                local.Value = e.Current;
            }
        });
    }

    /// <summary>
    /// A notifying local assigned only when a span starts on a flow with none (a root span),
    /// holding a mutable box the handler updates for child spans and stops: no ExecutionContext
    /// copy per nested change. Not correct: flows forked from one context share the box, so a
    /// switch between them goes unnoticed, even with a handler that reads Activity.Current
    /// (FloorDesignTests: sibling flows of one request, and work that outlives its span).
    /// </summary>
    [GlobalSetup(Target = nameof(BoxPerRootSpan))]
    public void SetupBox()
    {
        AsyncLocal<StrongBox?> local = new(static _ => { });
        Follow((_, e) =>
        {
            StrongBox? box = local.Value;
            if (box is null)
            {
                local.Value = new StrongBox { Activity = e.Current };
            }
            else
            {
                box.Activity = e.Current;
            }
        });
    }

    /// <summary>Stops listening and following.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        if (_handler is not null)
        {
            Activity.CurrentChanged -= _handler;
            _handler = null;
        }

        _listener?.Dispose();
        _listener = null;
    }

    /// <summary>Start/stop with nothing following Activity.Current.</summary>
    [Benchmark(Baseline = true)]
    public void Nothing() => StartAndStop();

    /// <summary>Start/stop with an empty CurrentChanged handler.</summary>
    [Benchmark]
    public void EventOnly() => StartAndStop();

    /// <summary>Start/stop with today's notifying local, assigned at each change.</summary>
    [Benchmark]
    public void NotifyingLocalPerChange() => StartAndStop();

    /// <summary>Start/stop with a non-notifying local, assigned at each change.</summary>
    [Benchmark]
    public void PlainLocalPerChange() => StartAndStop();

    /// <summary>Start/stop with the notifying local assigned at the start only.</summary>
    [Benchmark]
    public void NotifyingLocalPerStart() => StartAndStop();

    /// <summary>Start/stop with a boxed notifying local set once per flow.</summary>
    [Benchmark]
    public void BoxPerRootSpan() => StartAndStop();

    private static void StartAndStop()
    {
        using Activity? activity = Source.StartActivity("operation");
    }

    private void Listen()
    {
        _listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == SourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
        };
        ActivitySource.AddActivityListener(_listener);
    }

    private void Follow(EventHandler<ActivityChangedEventArgs> handler)
    {
        Listen();
        _handler = handler;
        Activity.CurrentChanged += handler;
    }

    private sealed class StrongBox
    {
        public Activity? Activity;
    }
}
