using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Threading;
using Xunit;

namespace OtelThreadContext.ActivityTests;

/// <summary>
/// Compares, at check points inside async flows, the calling thread's record with the
/// <see cref="Activity.Current"/> visible there; remembers which threads (and records) the flows
/// ran on, and which spans they used.
/// </summary>
internal sealed class Checker
{
    private long _checks;
    private long _mismatches;
    private long _resumes;
    private long _moved;

    public long Checks => Interlocked.Read(ref _checks);

    public long Mismatches => Interlocked.Read(ref _mismatches);

    /// <summary>Awaits that resumed on another thread than the one they started on.</summary>
    public long MovedThread => Interlocked.Read(ref _moved);

    public void Resumed(bool movedThread)
    {
        Interlocked.Increment(ref _resumes);
        if (movedThread)
        {
            Interlocked.Increment(ref _moved);
        }
    }

    /// <summary>The first few mismatches, described.</summary>
    public ConcurrentQueue<string> Failures { get; } = new();

    /// <summary>Every thread a check ran on, with the address of its record.</summary>
    public ConcurrentDictionary<Thread, nint> Threads { get; } = new();

    /// <summary>Span ids (as they lie in records) of every span the flows started.</summary>
    public ConcurrentDictionary<ulong, byte> Spans { get; } = new();

    public Activity? Started(Activity? activity)
    {
        Assert.NotNull(activity);
        Spans.TryAdd(Ids.Of(activity).Span, 0);
        return activity;
    }

    public void Check(string where)
    {
        Activity? current = Activity.Current;
        Seen seen = Records.ReadCurrent();
        Interlocked.Increment(ref _checks);
        Threads[Thread.CurrentThread] = Records.CurrentRecordAddress();
        if (!seen.Shows(current))
        {
            Interlocked.Increment(ref _mismatches);
            if (Failures.Count < 10)
            {
                Failures.Enqueue($"{where} on thread {Environment.CurrentManagedThreadId}: Activity.Current is {Ids.Of(current)}, the record shows {seen}");
            }
        }
    }

    public string Report() =>
        $"checks {Checks}, mismatches {Mismatches}, threads {Threads.Count}, spans {Spans.Count}, awaits {Interlocked.Read(ref _resumes)} ({MovedThread} resumed on another thread)"
        + string.Concat(Failures.Select(f => "\n  " + f));

    /// <summary>
    /// After the flows completed: no thread they ran on still shows one of their spans. Each
    /// thread's record is read by address from here. That is sound because the threads are alive
    /// and keep their records: thread-pool threads never retire in this test process
    /// (<c>System.Threading.ThreadPool.ThreadTimeoutMs</c> = -1, checked here), the current thread
    /// is read through its own slot, and other threads are not read. A thread
    /// finishing the flow's last continuation may still be on its way back to the pool when the
    /// flow is seen complete, so each thread gets up to five seconds to let go; a thread that keeps
    /// the span after that would keep it for good.
    /// </summary>
    /// <returns>(threads read, threads showing no span at all, threads not read).</returns>
    public (int Read, int Cleared, int Skipped) AssertNoThreadKeepsASpan()
    {
        Assert.Equal("-1", AppContext.GetData("System.Threading.ThreadPool.ThreadTimeoutMs")?.ToString());
        var deadline = Stopwatch.StartNew();
        int read = 0;
        int cleared = 0;
        int skipped = 0;
        var stale = new List<string>();
        foreach ((Thread thread, nint address) in Threads)
        {
            while (true)
            {
                Seen seen;
                if (thread == Thread.CurrentThread)
                {
                    seen = Records.ReadCurrent();
                }
                else if (address != 0 && thread.IsThreadPoolThread)
                {
                    seen = Records.ReadAt(address);
                }
                else
                {
                    // No record, or not a pool thread: one a test started, which may have exited
                    // and freed its record; it is not read.
                    skipped++;
                    break;
                }

                // Zero ids are "no span" (written with valid = 0); other ids with valid != 1 are mid-write.
                bool holds = seen.Ids != Ids.None && (seen.Valid != 1 || Spans.ContainsKey(seen.Ids.Span));
                if (!holds)
                {
                    read++;
                    cleared += seen.Ids == Ids.None ? 1 : 0;
                    break;
                }

                if (deadline.Elapsed > TimeSpan.FromSeconds(5))
                {
                    stale.Add($"thread {thread.ManagedThreadId} ({(thread.IsThreadPoolThread ? "pool" : "other")}) still shows {seen}");
                    break;
                }

                Thread.Sleep(5);
            }
        }

        Assert.True(stale.Count == 0, string.Join("\n", stale));
        return (read, cleared, skipped);
    }
}
