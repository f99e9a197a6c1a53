using System;
using System.Diagnostics;
using System.Linq;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Runtime.Loader;
using Xunit;

namespace OtelThreadContext.Tests;

/// <summary>Another copy of this assembly in the same process (a plugin's, in its own load context) shares the
/// thread's one slot: what it does there never leaves this copy writing through a freed record.</summary>
public sealed unsafe class SharedProcessTests
{
    /// <summary>The size of the native allocation behind a record; malloc reuses a freed one's memory for it.</summary>
    private const int HandleBytes = 704;

    private static string Ids(OtelThreadCtxRecord r) => Convert.ToHexStringLower(Native.TraceId(r)) + "-" + Convert.ToHexStringLower(Native.SpanId(r));

    private static string Ids(ActivityTraceId trace, ActivitySpanId span) => trace.ToHexString() + "-" + span.ToHexString();

    [Fact]
    public void APluginCopySwappingTheRecordLeavesThisCopyPublishingAndFreedMemoryUntouched() => Native.OnNewThread(() =>
    {
        ThreadContext.Set(ActivityTraceId.CreateRandom(), ActivitySpanId.CreateRandom(), ActivityTraceFlags.Recorded);

        var plugin = new AssemblyLoadContext("plugin", isCollectible: true);
        try
        {
            Assembly copy = plugin.LoadFromAssemblyPath(typeof(ThreadContext).Assembly.Location);
            Assert.NotSame(typeof(ThreadContext).Assembly, copy);
            Type handleType = copy.GetType("OtelThreadContext.ThreadContextHandle", throwOnError: true)!;
            var pluginHandle = (IDisposable)Activator.CreateInstance(handleType)!;

            // The plugin attaches a record of its own and disposes what it displaced: the thread's own record,
            // which it is not given.
            object? displaced = handleType.GetMethod("Attach")!.Invoke(pluginHandle, null);
            (displaced as IDisposable)?.Dispose();
            Assert.Null(displaced);

            nint[] buffers = Enumerable.Range(0, 8).Select(_ => Marshal.AllocHGlobal(HandleBytes)).ToArray();
            foreach (nint b in buffers)
            {
                new Span<byte>((void*)b, HandleBytes).Fill(0xAB);
            }

            // This copy's next span goes where the slot points (the plugin's record) and nowhere else.
            ActivityTraceId traceB = ActivityTraceId.CreateRandom();
            ActivitySpanId spanB = ActivitySpanId.CreateRandom();
            ThreadContext.Set(traceB, spanB, ActivityTraceFlags.Recorded);
            Assert.Equal(Ids(traceB, spanB), Ids(Native.ReadCurrent()));
            foreach (nint b in buffers)
            {
                Assert.True(new Span<byte>((void*)b, HandleBytes).IndexOfAnyExcept((byte)0xAB) < 0, "a malloc'd buffer was written");
                Marshal.FreeHGlobal(b);
            }

            // Once the plugin detaches and frees its record, this copy's next span re-attaches the thread's own.
            var detached = (IDisposable?)handleType.GetMethod("Detach", BindingFlags.Public | BindingFlags.Static)!.Invoke(null, null);
            Assert.NotNull(detached);
            detached!.Dispose();
            pluginHandle.Dispose();
            ActivityTraceId traceC = ActivityTraceId.CreateRandom();
            ActivitySpanId spanC = ActivitySpanId.CreateRandom();
            ThreadContext.Set(traceC, spanC, ActivityTraceFlags.Recorded);
            Assert.Equal(Ids(traceC, spanC), Ids(Native.ReadCurrent()));
            Assert.NotEqual(0, NativeMethods.otel_thread_ctx_current());
        }
        finally
        {
            plugin.Unload();
        }
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
