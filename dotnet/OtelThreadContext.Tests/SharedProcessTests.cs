using System;
using System.Diagnostics;
using System.Linq;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Runtime.Loader;
using Xunit;

namespace OtelThreadContext.Tests;

/// <summary>Other code in the same process shares the thread's one slot: another copy of this assembly (a plugin's,
/// in its own load context) or native code attaching records of its own. What it does there never leaves this copy
/// writing through a freed record.</summary>
public sealed unsafe class SharedProcessTests
{
    /// <summary>The size of the native allocation behind a record; malloc reuses a freed one's memory for it.</summary>
    private const int HandleBytes = 704;

    private static string Ids(OtelThreadCtxRecord r) => Convert.ToHexStringLower(Native.TraceId(r)) + "-" + Convert.ToHexStringLower(Native.SpanId(r));

    private static string Ids(ActivityTraceId trace, ActivitySpanId span) => trace.ToHexString() + "-" + span.ToHexString();

    [Fact]
    public void APluginCopyWritesTheThreadsOneRecord() => Native.OnNewThread(() =>
    {
        ThreadContext.Set(ActivityTraceId.CreateRandom(), ActivitySpanId.CreateRandom(), ActivityTraceFlags.Recorded);
        nint own = NativeMethods.otel_thread_ctx_current();

        var plugin = new AssemblyLoadContext("plugin", isCollectible: true);
        try
        {
            Assembly copy = plugin.LoadFromAssemblyPath(typeof(ThreadContext).Assembly.Location);
            Assert.NotSame(typeof(ThreadContext).Assembly, copy);
            MethodInfo set = copy.GetType("OtelThreadContext.ThreadContext", throwOnError: true)!
                .GetMethod("Set", [typeof(ulong), typeof(ulong), typeof(ulong), typeof(byte)])!;

            set.Invoke(null, [1UL, 2UL, 3UL, (byte)1]);
            Assert.Equal(own, NativeMethods.otel_thread_ctx_current());
            Assert.Equal("00000000000000010000000000000002-0000000000000003", Ids(Native.ReadCurrent()));

            ActivityTraceId trace = ActivityTraceId.CreateRandom();
            ActivitySpanId span = ActivitySpanId.CreateRandom();
            ThreadContext.Set(trace, span, ActivityTraceFlags.Recorded);
            Assert.Equal(own, NativeMethods.otel_thread_ctx_current());
            Assert.Equal(Ids(trace, span), Ids(Native.ReadCurrent()));
        }
        finally
        {
            plugin.Unload();
        }
    });

    [Fact]
    public void ARecordNativeCodeAttachesIsWrittenUntilItIsDetachedAndFreedThenTheOwnOneAgain() => Native.OnNewThread(() =>
    {
        ThreadContext.Set(ActivityTraceId.CreateRandom(), ActivitySpanId.CreateRandom(), ActivityTraceFlags.Recorded);
        nint own = NativeMethods.otel_thread_ctx_current();
        string ownIds = Ids(*Native.RecordOf(own));

        // Native code attaches a record of its own: the thread's own record is not handed to it.
        nint mine = Native.NewRecord(new byte[16], new byte[8], 0);
        nint displaced = -1;
        Assert.Equal(OtelThreadCtxStatus.Ok, NativeMethods.otel_thread_ctx_attach(mine, &displaced));
        Assert.Equal(0, displaced);

        // ThreadContext writes where the slot points, and only there.
        ActivityTraceId traceB = ActivityTraceId.CreateRandom();
        ActivitySpanId spanB = ActivitySpanId.CreateRandom();
        ThreadContext.Set(traceB, spanB, ActivityTraceFlags.Recorded);
        Assert.Equal(Ids(traceB, spanB), Ids(Native.ReadCurrent()));
        Assert.Equal(Ids(traceB, spanB), Ids(*Native.RecordOf(mine)));
        Assert.Equal(ownIds, Ids(*Native.RecordOf(own)));

        // Detached and freed, its memory reused by malloc: this copy's next span goes to the thread's own record
        // again, attached anew, and nowhere else.
        Assert.Equal(mine, NativeMethods.otel_thread_ctx_detach());
        Assert.Equal(OtelThreadCtxStatus.Ok, NativeMethods.otel_thread_ctx_free(mine));
        Assert.True(Native.RecordOf(mine) == null, "a freed record is still a live handle");
        nint[] buffers = Enumerable.Range(0, 8).Select(_ => Marshal.AllocHGlobal(HandleBytes)).ToArray();
        foreach (nint b in buffers)
        {
            new Span<byte>((void*)b, HandleBytes).Fill(0xAB);
        }

        ActivityTraceId traceC = ActivityTraceId.CreateRandom();
        ActivitySpanId spanC = ActivitySpanId.CreateRandom();
        ThreadContext.Set(traceC, spanC, ActivityTraceFlags.Recorded);
        Assert.Equal(own, NativeMethods.otel_thread_ctx_current());
        Assert.Equal(Ids(traceC, spanC), Ids(Native.ReadCurrent()));
        foreach (nint b in buffers)
        {
            Assert.True(new Span<byte>((void*)b, HandleBytes).IndexOfAnyExcept((byte)0xAB) < 0, "a malloc'd buffer was written");
            Marshal.FreeHGlobal(b);
        }

        // The own record is never handed over, by detach either.
        Assert.Equal(0, NativeMethods.otel_thread_ctx_detach());
    });

    [Fact]
    public void NativeCodeDetachingTheThreadsRecordDoesNotStopThisCopyPublishing() => Native.OnNewThread(() =>
    {
        ThreadContext.Set(ActivityTraceId.CreateRandom(), ActivitySpanId.CreateRandom(), ActivityTraceFlags.Recorded);
        nint own = NativeMethods.otel_thread_ctx_current();
        Assert.Equal(0, NativeMethods.otel_thread_ctx_detach());
        Assert.Equal(OtelThreadCtxStatus.OwnedByThread, NativeMethods.otel_thread_ctx_free(own));

        ActivityTraceId trace = ActivityTraceId.CreateRandom();
        ActivitySpanId span = ActivitySpanId.CreateRandom();
        ThreadContext.Set(trace, span, ActivityTraceFlags.Recorded);
        Assert.Equal(own, NativeMethods.otel_thread_ctx_current());
        Assert.Equal(Ids(trace, span), Ids(Native.ReadCurrent()));
    });
}
