using System;
using System.Diagnostics;
using System.Threading;
using Xunit;

namespace OtelThreadContext.Tests;

/// <summary>ThreadContextHandle: swapping whole records, ownership, and mixing with ThreadContext.</summary>
public sealed unsafe class HandleTests
{
    private static long SettledLiveRecords()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        return Native.LiveRecords();
    }

    private static byte[] Trace(ulong n)
    {
        var b = new byte[16];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(b.AsSpan(8), n);
        return b;
    }

    private static byte[] Span(ulong n)
    {
        var b = new byte[8];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(b, n);
        return b;
    }

    [Fact]
    public void AttachSwapsRecordsAndThreadContextFollowsTheAttachedOne()
    {
        long baseline = SettledLiveRecords();
        Native.OnNewThread(() =>
        {
            ThreadContext.Set(Trace(1), Span(1), 1);

            using ThreadContextHandle mine = ThreadContextHandle.Create(Trace(2), Span(2), 1);
            OtelThreadCtxRecord* own = Native.CurrentRecord();

            // The thread's own record (ThreadContext's) stays the thread's: nothing comes back.
            Assert.Null(mine.Attach());
            Assert.True(mine.IsAttachedToCurrentThread);
            Assert.Equal(Trace(2), Native.TraceId(Native.ReadCurrent()));

            // ThreadContext writes where the slot points: the attached handle's record.
            ThreadContext.Set(Trace(3), Span(3), 0);
            Assert.Equal(Trace(3), Native.TraceId(Native.ReadCurrent()));
            Assert.Equal(Trace(3), Native.TraceId(*Native.RecordOf(mine.Native)));
            Assert.Equal(Trace(1), Native.TraceId(*own));

            // Detach hands back the same object; the thread then publishes nothing.
            ThreadContextHandle? detached = ThreadContextHandle.Detach();
            Assert.Same(mine, detached);
            Assert.False(mine.IsAttachedToCurrentThread);
            Assert.Equal(0, NativeMethods.otel_thread_ctx_current());

            // ThreadContext's next write attaches the thread's own record again.
            ThreadContext.Set(Trace(4), Span(4), 1);
            Assert.Equal(Trace(4), Native.TraceId(Native.ReadCurrent()));
            Assert.True(Native.CurrentRecord() == own);
            Assert.Null(ThreadContextHandle.Detach());
        });
        Assert.Equal(baseline, SettledLiveRecords());
    }

    [Fact]
    public void UpdateWritesADetachedRecordThatAttachPublishes() => Native.OnNewThread(() =>
    {
        using var h = new ThreadContextHandle();
        Assert.Equal(new byte[16], Native.TraceId(*Native.RecordOf(h.Native)));
        var trace = ActivityTraceId.CreateRandom();
        var span = ActivitySpanId.CreateRandom();
        h.Update(trace, span, ActivityTraceFlags.Recorded);
        Assert.Equal(SetAttributeResult.Stored, h.SetAttribute(4, "task-17"));
        Assert.Null(h.Attach());
        OtelThreadCtxRecord r = Native.ReadCurrent();
        byte[] expected = new byte[16];
        trace.CopyTo(expected);
        Assert.Equal(expected, Native.TraceId(r));
        Assert.Equal(1, r.TraceFlags);
        Assert.Equal(1, r.Valid);
        Assert.Equal(((byte)4, "task-17"), Assert.Single(Native.Attributes(r)));
        h.ClearAttributes();
        Assert.Equal(0, Native.ReadCurrent().AttrsDataSize);
        Assert.Same(h, ThreadContextHandle.Detach());
    });

    [Fact]
    public void ADeclaredKeysIndexIsTheKeyWrittenIntoTheRecord()
    {
        ThreadAttributeKey task = ProcessContext.DeclareKey("handle.task_id");
        ThreadAttributeKey tenant = ProcessContext.DeclareKey("handle.tenant");
        using var h = new ThreadContextHandle();

        Assert.Equal(SetAttributeResult.Stored, h.SetAttribute(task, "task-17"));
        Assert.Equal(SetAttributeResult.Stored, h.SetAttribute(tenant, "acme".AsSpan()));

        Assert.Equal(
            [(task.Index, "task-17"), (tenant.Index, "acme")],
            Native.Attributes(*Native.RecordOf(h.Native)));
    }

    [Fact]
    public void TheDefaultKeyIsRefusedAsThreadContextRefusesItAndNothingIsWritten()
    {
        string expected = Assert.Throws<ArgumentException>(() => ThreadContext.SetAttribute(default(ThreadAttributeKey), "v")).Message;
        using var h = new ThreadContextHandle();

        ArgumentException fromString = Assert.Throws<ArgumentException>(() => h.SetAttribute(default(ThreadAttributeKey), "v"));
        ArgumentException fromSpan = Assert.Throws<ArgumentException>(() => h.SetAttribute(default(ThreadAttributeKey), "v".AsSpan()));

        Assert.Equal(expected, fromString.Message);
        Assert.Equal(expected, fromSpan.Message);
        Assert.Equal("key", fromSpan.ParamName);
        Assert.Equal(0, Native.RecordOf(h.Native)->AttrsDataSize);
    }

    [Fact]
    public void ALoneSurrogateInAnAttributeValueIsStoredAsTheReplacementCharacter()
    {
        using var h = new ThreadContextHandle();

        Assert.Equal(SetAttributeResult.Stored, h.SetAttribute(3, "a\ud800b"));

        OtelThreadCtxRecord* r = Native.RecordOf(h.Native);
        Assert.Equal(new byte[] { 3, 5, (byte)'a', 0xEF, 0xBF, 0xBD, (byte)'b' }, new ReadOnlySpan<byte>(r->AttrsData, r->AttrsDataSize).ToArray());
    }

    [Fact]
    public void ANullStringValueIsRefused()
    {
        ThreadAttributeKey task = ProcessContext.DeclareKey("handle.task_id");
        using var h = new ThreadContextHandle();

        Assert.Equal("value", Assert.Throws<ArgumentNullException>(() => h.SetAttribute(4, (string)null!)).ParamName);
        Assert.Equal("value", Assert.Throws<ArgumentNullException>(() => h.SetAttribute(task, (string)null!)).ParamName);
        Assert.Equal(0, Native.RecordOf(h.Native)->AttrsDataSize);
    }

    [Fact]
    public void AHandleAttachedToAnotherThreadCannotBeAttachedOrWrittenHere()
    {
        using var h = ThreadContextHandle.Create(Trace(5), Span(5), 1);
        using var attached = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        Exception? ownerFailure = null;
        var owner = new Thread(() =>
        {
            try
            {
                h.Attach()?.Dispose();
                attached.Set();
                release.Wait();
                Assert.Same(h, ThreadContextHandle.Detach());
            }
            catch (Exception e)
            {
                ownerFailure = e;
                attached.Set();
            }
        });
        owner.Start();
        attached.Wait();
        try
        {
            Native.OnNewThread(() =>
            {
                Assert.Throws<InvalidOperationException>(() => h.Attach());
                Assert.Throws<InvalidOperationException>(() => h.Update(default, default, ActivityTraceFlags.None));
                Assert.Throws<InvalidOperationException>(() => h.SetAttribute(0, "x"));
                Assert.Throws<InvalidOperationException>(() => h.ClearAttributes());
                Assert.Equal(0, NativeMethods.otel_thread_ctx_current());
            });
        }
        finally
        {
            release.Set();
            owner.Join();
        }

        Assert.Null(ownerFailure);
    }

    [Fact]
    public void DisposingOnTheAttachedThreadDetachesAndFrees()
    {
        long baseline = SettledLiveRecords();
        Native.OnNewThread(() =>
        {
            var h = ThreadContextHandle.Create(Trace(6), Span(6), 1);
            Assert.Null(h.Attach());
            Assert.Equal(baseline + 1, Native.LiveRecords());
            h.Dispose();
            Assert.Equal(0, NativeMethods.otel_thread_ctx_current());
            Assert.Equal(baseline, Native.LiveRecords());
            Assert.Throws<ObjectDisposedException>(() => h.Attach());
        });
        Assert.Equal(baseline, SettledLiveRecords());
    }

    [Fact]
    public void ARecordLeftAttachedAtThreadExitIsFreedOnceNotTwice()
    {
        long baseline = SettledLiveRecords();
        var h = ThreadContextHandle.Create(Trace(7), Span(7), 1);
        Native.OnNewThread(() => Assert.Null(h.Attach()));

        // The thread's exit freed the record (native pthread key destructor). Allocate new records,
        // which may reuse that address, then dispose the stale handle: it must not free them.
        var others = new ThreadContextHandle[8];
        for (int i = 0; i < others.Length; i++)
        {
            others[i] = ThreadContextHandle.Create(Trace(8), Span(8), 0);
        }

        Stopwatch wait = Stopwatch.StartNew();
        while (Native.LiveRecords() != baseline + others.Length && wait.Elapsed < TimeSpan.FromSeconds(5))
        {
            Thread.Sleep(10);
        }

        Assert.Equal(baseline + others.Length, Native.LiveRecords());
        h.Dispose();
        Assert.Equal(baseline + others.Length, Native.LiveRecords());
        foreach (var o in others)
        {
            Assert.True(Native.RecordOf(o.Native) != null, "a live record was freed");
            o.Dispose();
        }

        Assert.Equal(baseline, SettledLiveRecords());
    }
    [Fact]
    public void AHandleWhoseThreadExitedRefusesEveryCallEvenWhereTheManagedThreadIdIsReused()
    {
        long baseline = SettledLiveRecords();
        var h = ThreadContextHandle.Create(Trace(9), Span(9), 1);
        int ownerId = 0;
        Native.OnNewThread(() =>
        {
            ownerId = Environment.CurrentManagedThreadId;
            Assert.Null(h.Attach());
        });

        // The owner's exit freed the record. New records may reuse its address: a stray write
        // through the stale handle would land in one of them (or in freed memory).
        Stopwatch wait = Stopwatch.StartNew();
        while (Native.LiveRecords() != baseline && wait.Elapsed < TimeSpan.FromSeconds(5))
        {
            Thread.Sleep(10);
        }

        Assert.Equal(baseline, Native.LiveRecords());
        var others = new ThreadContextHandle[8];
        for (int i = 0; i < others.Length; i++)
        {
            others[i] = ThreadContextHandle.Create(Trace(8), Span(8), 0);
        }

        // The runtime hands an exited thread's managed id to a later thread once the old Thread
        // object is collected (a runtime thread, such as the tiered-compilation worker, may hold
        // it for a while first), always the smallest free id. Other exited threads may have left
        // smaller ids free, so start a batch of threads that live at once and take successive ids.
        bool reused = false;
        Exception? failure = null;
        for (wait.Restart(); !reused && wait.Elapsed < TimeSpan.FromSeconds(20); Thread.Sleep(10))
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            using var release = new ManualResetEventSlim();
            var batch = new Thread[64];
            for (int i = 0; i < batch.Length; i++)
            {
                batch[i] = new Thread(() =>
                {
                    if (Environment.CurrentManagedThreadId == ownerId)
                    {
                        reused = true;
                        try
                        {
                            AssertRefusesEveryCall(h);
                        }
                        catch (Exception e)
                        {
                            failure = e;
                        }
                    }

                    release.Wait();
                });
                batch[i].Start();
            }

            release.Set();
            foreach (var t in batch)
            {
                t.Join();
            }
        }

        Assert.Null(failure);

        Assert.True(reused, $"no new thread got the exited thread's managed id {ownerId}");
        AssertRefusesEveryCall(h);
        foreach (var o in others)
        {
            OtelThreadCtxRecord* r = Native.RecordOf(o.Native);
            Assert.Equal(Trace(8), Native.TraceId(*r));
            Assert.Equal(0, r->AttrsDataSize);
        }

        h.Dispose();
        Assert.Equal(baseline + others.Length, Native.LiveRecords());
        foreach (var o in others)
        {
            o.Dispose();
        }

        Assert.Equal(baseline, SettledLiveRecords());

        static void AssertRefusesEveryCall(ThreadContextHandle h)
        {
            Assert.False(h.IsAttachedToCurrentThread);
            string message = Assert.Throws<InvalidOperationException>(() => h.Update(default, default, ActivityTraceFlags.Recorded)).Message;
            Assert.Contains("exited", message);
            Assert.Throws<InvalidOperationException>(() => h.SetAttribute(0, "x"));
            Assert.Throws<InvalidOperationException>(() => h.ClearAttributes());
            Assert.Throws<InvalidOperationException>(() => h.Attach());
            Assert.Equal(0, NativeMethods.otel_thread_ctx_current());
        }
    }
}
