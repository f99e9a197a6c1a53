using System;
using System.Diagnostics;
using System.Threading;
using System.Threading.Tasks;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;

namespace OtelThreadContext.Benchmarks;

/// <summary>
/// What <see cref="ActivityThreadContext"/> adds to code that creates spans: an Activity started
/// and stopped, and async flows whose awaits resume on thread-pool threads, each measured with
/// tracking off (the baseline of its category) and on.
/// </summary>
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
[CategoriesColumn]
public class ActivityBenchmarks
{
    private const string StartStop = "StartStop";
    private const string Async = "AsyncFlow";

    /// <summary>Flows run at once per invocation: keeps the pool's threads busy, so a flow's time
    /// is its work, not the latency of waking a parked thread for each await.</summary>
    private const int ConcurrentFlows = 64;

    private const string SourceName = "OtelThreadContext.Benchmarks";

    private static readonly ActivitySource Source = new(SourceName);

    private readonly Task[] _flows = new Task[ConcurrentFlows];
    private ActivityListener? _listener;
    private IDisposable? _tracking;
    private EventHandler<ActivityChangedEventArgs>? _keepLocalInStep;

    /// <summary>Listens to the benchmark's source (so spans are created), tracking off.</summary>
    [GlobalSetup(Targets = [nameof(ActivityStartStop), nameof(AsyncFlow)])]
    public void SetupUntracked() => Listen();

    /// <summary>Listens to the benchmark's source and turns tracking on.</summary>
    [GlobalSetup(Targets = [nameof(ActivityStartStopTracked), nameof(AsyncFlowTracked)])]
    public void SetupTracked()
    {
        Listen();

        // Also the first write on this thread: the record is attached here, not in a measurement.
        _tracking = ActivityThreadContext.Enable();
    }

    /// <summary>
    /// Listens, and keeps a notifying <see cref="AsyncLocal{T}"/> equal to
    /// <see cref="Activity.Current"/> from <see cref="Activity.CurrentChanged"/>, as the tracker
    /// does, with a change handler that writes nothing: the tracker's mechanism without the writes.
    /// </summary>
    [GlobalSetup(Target = nameof(ActivityStartStopLocalOnly))]
    public void SetupLocalOnly()
    {
        Listen();
        AsyncLocal<Activity?> local = new(static _ => { });
        _keepLocalInStep = (_, e) =>
        {
            if (!ReferenceEquals(local.Value, e.Current))
            {
                local.Value = e.Current;
            }
        };
        Activity.CurrentChanged += _keepLocalInStep;
    }

    /// <summary>Turns tracking off and stops listening, so the next benchmark starts clean.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        if (_keepLocalInStep is not null)
        {
            Activity.CurrentChanged -= _keepLocalInStep;
            _keepLocalInStep = null;
        }

        _tracking?.Dispose();
        _tracking = null;
        _listener?.Dispose();
        _listener = null;
        if (ActivityThreadContext.IsEnabled)
        {
            throw new InvalidOperationException("Activity tracking is still on after its handle was disposed.");
        }
    }

    /// <summary>Starts and stops one Activity, tracking off.</summary>
    [Benchmark(Baseline = true)]
    [BenchmarkCategory(StartStop)]
    public void ActivityStartStop() => StartAndStop();

    /// <summary>Starts and stops one Activity with tracking on: two record writes.</summary>
    [Benchmark]
    [BenchmarkCategory(StartStop)]
    public void ActivityStartStopTracked() => StartAndStop();

    /// <summary>
    /// Starts and stops one Activity while a notifying AsyncLocal follows Activity.Current (the
    /// tracker's mechanism, no record writes): separates that cost from the writes'.
    /// </summary>
    [Benchmark]
    [BenchmarkCategory(StartStop)]
    public void ActivityStartStopLocalOnly() => StartAndStop();

    /// <summary>
    /// A request span with a child span and three awaits that resume on the pool, tracking off;
    /// 64 such flows run at once and the time is per flow.
    /// </summary>
    [Benchmark(Baseline = true, OperationsPerInvoke = ConcurrentFlows)]
    [BenchmarkCategory(Async)]
    public Task AsyncFlow() => Flows();

    /// <summary>The same flow with tracking on: every span change and every context switch writes a record.</summary>
    [Benchmark(OperationsPerInvoke = ConcurrentFlows)]
    [BenchmarkCategory(Async)]
    public Task AsyncFlowTracked() => Flows();

    private static void StartAndStop()
    {
        using Activity? activity = Source.StartActivity("operation");
    }

    private Task Flows()
    {
        for (int i = 0; i < _flows.Length; i++)
        {
            _flows[i] = Flow();
        }

        return Task.WhenAll(_flows);
    }

    private static async Task Flow()
    {
        using (Source.StartActivity("request"))
        {
            await Task.Yield();
            using (Source.StartActivity("query"))
            {
                await Task.Yield();
            }

            await Task.Yield();
        }
    }

    private void Listen()
    {
        _listener = new ActivityListener
        {
            // By name: comparing with the static Source here would run its initializer inside
            // this callback (re-entrantly, seeing null) when the listener comes first.
            ShouldListenTo = source => source.Name == SourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
        };
        ActivitySource.AddActivityListener(_listener);
        using Activity? probe = Source.StartActivity("probe");
        if (probe is null)
        {
            throw new InvalidOperationException("The benchmark's source creates no Activity: the listener is not listening to it.");
        }
    }
}
