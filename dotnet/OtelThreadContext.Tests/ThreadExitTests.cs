using System;
using System.Diagnostics;
using System.Threading;
using Xunit;

namespace OtelThreadContext.Tests;

/// <summary>Records ThreadContext attaches are freed when their threads exit.</summary>
public sealed class ThreadExitTests(ITestOutputHelper output)
{
    [Fact]
    public void TenThousandThreadsThatSetAndExitLeaveNoRecordBehind()
    {
        const int Threads = 10_000;
        const int Batch = 16;
        GC.Collect();
        GC.WaitForPendingFinalizers();
        long baseline = Native.LiveRecords();
        long peak = baseline;
        int failures = 0;

        var clock = Stopwatch.StartNew();
        var batch = new Thread[Batch];
        for (int started = 0; started < Threads; started += Batch)
        {
            for (int j = 0; j < Batch; j++)
            {
                ulong id = (ulong)(started + j + 1);
                batch[j] = new Thread(() =>
                {
                    ThreadContext.Set(id, id, id, 1);
                    ThreadContext.SetAttribute(0, "worker");
                    if (Native.ReadCurrent().Valid != 1)
                    {
                        Interlocked.Increment(ref failures);
                    }

                    long live = Native.LiveRecords();
                    long seen;
                    while ((seen = Interlocked.Read(ref peak)) < live && Interlocked.CompareExchange(ref peak, live, seen) != seen)
                    {
                    }
                });
                batch[j].Start();
            }

            foreach (Thread t in batch)
            {
                t.Join();
            }
        }

        TimeSpan joined = clock.Elapsed;

        // Join returns when the managed thread is done; the OS thread runs its pthread key
        // destructors (which free the records) as it exits, which can be a moment later.
        long after = Native.LiveRecords();
        while (after != baseline && clock.Elapsed < joined + TimeSpan.FromSeconds(10))
        {
            Thread.Sleep(20);
            after = Native.LiveRecords();
        }

        output.WriteLine($"{Threads} threads in {joined.TotalSeconds:F1}s; live records: baseline {baseline}, peak {peak}, after join {after} (settled {(clock.Elapsed - joined).TotalMilliseconds:F0} ms after the last join)");
        Assert.Equal(0, failures);
        Assert.True(peak > baseline, "threads never had a record attached");
        Assert.Equal(baseline, after);
    }
}
