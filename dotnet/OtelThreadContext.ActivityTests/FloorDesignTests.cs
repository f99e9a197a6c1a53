using System;
using System.Diagnostics;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Xunit;

// The tests block on purpose: the flows under test are driven from the test's own thread.
#pragma warning disable xUnit1031

namespace OtelThreadContext.ActivityTests;

/// <summary>
/// The tracker's floor is a notifying <see cref="AsyncLocal{T}"/> assigned at every change of
/// <see cref="Activity.Current"/> (two per span). A design that assigns it less often leaves two
/// execution contexts with the same local value and different spans, and the runtime says nothing
/// when a thread switches directly from one to the other. These tests drive such switches on one
/// thread (continuations that run inline), deterministically, against the tracker and against the
/// cheaper designs (<see cref="Floor"/>), which each fail a case the tracker passes.
/// </summary>
public sealed class FloorDesignTests : IDisposable
{
    private const string SourceName = "OtelThreadContext.ActivityTests.Floor";
    private static readonly ActivitySource Source = new(SourceName);

    private readonly ITestOutputHelper _output;
    private readonly ActivityListener _listener;

    public FloorDesignTests(ITestOutputHelper output)
    {
        _output = output;
        _listener = Listening.To(SourceName, (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded);
    }

    /// <summary>Ways to keep a notifying local in step with Activity.Current.</summary>
    public enum Design
    {
        /// <summary>The tracker's: the local is assigned the new Activity at every change.</summary>
        PerChange,

        /// <summary>Assigned when a span starts (or Activity.Current is set); a stop writes the
        /// parent directly. Half the assignments.</summary>
        PerStart,

        /// <summary>Assigned once per flow, a holder object; later changes write directly.</summary>
        PerFlow,
    }

    public void Dispose() => _listener.Dispose();

    /// <summary>Work started inside a span that outlives it, on one thread: the work resumed by
    /// the span's flow after the stop, the flow resumed by the work's completion, and a context
    /// captured inside the span run after it. Four checks per iteration see the span or its
    /// absence across such a switch.</summary>
    private static void WorkThatOutlivesItsSpan(Checker c, int iterations)
    {
        for (int i = 0; i < iterations; i++)
        {
            // Without RunContinuationsAsynchronously: SetResult runs the awaiting code inline.
            var resumeWork = new TaskCompletionSource();
            var finishWork = new TaskCompletionSource();
            async Task Work()
            {
                c.Check("work started inside its span");
                await resumeWork.Task;
                c.Check("work resumed by its span's flow after the span stopped");
                await finishWork.Task;
                c.Check("work resumed from outside");
            }

            async Task Flow()
            {
                Task work;
                ExecutionContext captured;
                using (c.Started(Source.StartActivity("outlived")))
                {
                    work = Work();
                    captured = ExecutionContext.Capture()!;
                }

                c.Check("span stopped");
                resumeWork.SetResult();
                c.Check("flow after resuming the work");
                ExecutionContext.Run(captured, static s => ((Checker)s!).Check("context captured inside the span, run after it"), c);
                c.Check("flow after running the captured context");
                await work;
                c.Check("flow resumed by the work's completion");
            }

            Task flow = Flow();
            c.Check("outside, both waiting");
            finishWork.SetResult();
            c.Check("outside, after both completed");
            flow.GetAwaiter().GetResult();
        }
    }

    /// <summary>Sibling flows of one request (each with a child span), interleaved on one
    /// thread: the request resumes the first, which resumes the second.</summary>
    private static void SiblingFlowsOfOneRequest(Checker c, int iterations)
    {
        for (int i = 0; i < iterations; i++)
        {
            var first = new TaskCompletionSource();
            var second = new TaskCompletionSource();
            async Task Sibling(string name, Task resumed, TaskCompletionSource? next)
            {
                using (c.Started(Source.StartActivity(name)))
                {
                    c.Check(name + " started");
                    await resumed;
                    c.Check(name + " resumed");
                    next?.SetResult();
                    c.Check(name + " after resuming its sibling");
                }
            }

            using (c.Started(Source.StartActivity("request")))
            {
                Task a = Sibling("a", first.Task, second);
                Task b = Sibling("b", second.Task, null);
                c.Check("request, siblings waiting");
                first.SetResult();
                c.Check("request after its siblings ran");
                Task.WhenAll(a, b).GetAwaiter().GetResult();
            }

            c.Check("request stopped");
        }
    }

    private static Checker Run(Design? design, Action<Checker, int> scenario, int iterations)
    {
        var c = new Checker();
        Records.OnNewThread(() =>
        {
            using IDisposable follower = design is { } d ? new Floor(d) : ActivityThreadContext.Enable();
            scenario(c, iterations);
        });
        return c;
    }

    [Fact]
    public void WorkThatOutlivesItsSpan_EverySwitchShowsTheRightSpan()
    {
        Checker c = Run(null, WorkThatOutlivesItsSpan, 10);
        _output.WriteLine($"tracker, work that outlives its span: {c.Report()}");
        Assert.True(c.Mismatches == 0, c.Report());
        Assert.Equal(100, c.Checks);
    }

    [Fact]
    public void SiblingFlowsInterleavedOnOneThread_EachShowsItsOwnSpan()
    {
        Checker c = Run(null, SiblingFlowsOfOneRequest, 10);
        _output.WriteLine($"tracker, sibling flows on one thread: {c.Report()}");
        Assert.True(c.Mismatches == 0, c.Report());
        Assert.Equal(90, c.Checks);
    }

    /// <summary>The tracker's mechanism, rebuilt here, passes both cases: so the failures of the
    /// cheaper designs come from the assignments they skip, not from the rebuild.</summary>
    [Fact]
    public void PerChange_PassesBothCases()
    {
        Assert.Equal(0, Run(Design.PerChange, WorkThatOutlivesItsSpan, 10).Mismatches);
        Assert.Equal(0, Run(Design.PerChange, SiblingFlowsOfOneRequest, 10).Mismatches);
    }

    /// <summary>Assigning at starts only: the span's flow after the stop and everything captured
    /// inside the span hold the same value, so switching between them shows the wrong span (the
    /// stopped one, or none while it runs).</summary>
    [Fact]
    public void PerStart_MisattributesWorkThatOutlivesItsSpan()
    {
        Checker outlived = Run(Design.PerStart, WorkThatOutlivesItsSpan, 10);
        Checker siblings = Run(Design.PerStart, SiblingFlowsOfOneRequest, 10);
        _output.WriteLine($"PerStart, work that outlives its span: {outlived.Report()}");
        _output.WriteLine($"PerStart, sibling flows on one thread: {siblings.Report()}");
        Assert.Equal(30, outlived.Mismatches);
        Assert.Equal(0, siblings.Mismatches);
    }

    /// <summary>A holder per flow: every flow forked from the request shares it, so switching
    /// between siblings, or between the request and its work, goes unnoticed.</summary>
    [Fact]
    public void PerFlow_MisattributesSiblingsAndWorkThatOutlivesItsSpan()
    {
        Checker outlived = Run(Design.PerFlow, WorkThatOutlivesItsSpan, 10);
        Checker siblings = Run(Design.PerFlow, SiblingFlowsOfOneRequest, 10);
        _output.WriteLine($"PerFlow, work that outlives its span: {outlived.Report()}");
        _output.WriteLine($"PerFlow, sibling flows on one thread: {siblings.Report()}");
        Assert.Equal(30, outlived.Mismatches);
        Assert.Equal(30, siblings.Mismatches);
    }

    /// <summary>What each design allocates per span started and stopped on one thread, over the
    /// span alone: the tracker's assignments at start and stop, one at start, or none after the
    /// first (each later change still copies a larger context).</summary>
    [Fact]
    public void BytesPerSpan_FallWithEveryAssignmentSkipped()
    {
        long Bytes(Design? design)
        {
            long result = 0;
            Records.OnNewThread(() =>
            {
                using IDisposable? follower = design is { } d ? new Floor(d) : null;
                for (int i = 0; i < 200; i++)
                {
                    Source.StartActivity("warm")!.Dispose();
                }

                long before = GC.GetAllocatedBytesForCurrentThread();
                for (int i = 0; i < 2_000; i++)
                {
                    Source.StartActivity("span")!.Dispose();
                }

                result = (GC.GetAllocatedBytesForCurrentThread() - before) / 2_000;
            });
            return result;
        }

        long none = Bytes(null);
        long[] added = Enum.GetValues<Design>().Select(d => Bytes(d) - none).ToArray();
        _output.WriteLine($"bytes per span: {none} B without a floor; added: " +
            string.Join(", ", Enum.GetValues<Design>().Select((d, i) => $"{d} {added[i]} B")));
        Assert.True(added[0] > added[1] && added[1] > added[2] && added[2] > 0, string.Join(", ", added));
    }

    /// <summary>A follower of one <see cref="Design"/>: the tracker's record writes (ids and flags),
    /// driven by <see cref="Activity.CurrentChanged"/> and a notifying local whose handler writes
    /// the Activity.Current it finds.</summary>
    private sealed class Floor : IDisposable
    {
        private readonly Design _design;
        private readonly AsyncLocal<object?> _local;
        private volatile bool _on = true;

        public Floor(Design design)
        {
            _design = design;
            _local = new AsyncLocal<object?>(_ => Publish());
            Activity.CurrentChanged += OnCurrentChanged;
            Publish();
        }

        public void Dispose()
        {
            _on = false;
            Activity.CurrentChanged -= OnCurrentChanged;
        }

        private void OnCurrentChanged(object? sender, ActivityChangedEventArgs e)
        {
            object? value = _design switch
            {
                Design.PerChange => e.Current,
                Design.PerStart => e.Previous is { IsStopped: true } ? _local.Value : e.Current,
                _ => _local.Value ?? new object(),
            };
            if (ReferenceEquals(value, _local.Value))
            {
                Publish();
            }
            else
            {
                // The local's handler publishes.
                _local.Value = value;
            }
        }

        private void Publish()
        {
            if (!_on)
            {
                return;
            }

            Activity? a = Activity.Current;
            if (a is null)
            {
                ThreadContext.Clear();
            }
            else
            {
                ThreadContext.Set(a.TraceId, a.SpanId, a.ActivityTraceFlags);
            }
        }
    }
}
