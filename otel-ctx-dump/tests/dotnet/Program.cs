// Several threads publish a span and two attributes through OtelThreadContext.ThreadContext,
// print "tid OS_TID trace HEX span HEX flags N attr0 V attr1 V", then wait; "ready" follows, and
// the process exits when stdin closes.
using System;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Threading;
using OtelThreadContext;

internal static class Program
{
    [DllImport("libc", EntryPoint = "gettid")]
    private static extern int GetTid();

    private static int Main()
    {
        const int threads = 4;
        using var published = new CountdownEvent(threads);
        using var release = new ManualResetEventSlim();
        var printLock = new object();
        for (int i = 0; i < threads; i++)
        {
            int index = i;
            var t = new Thread(() =>
            {
                ActivityTraceId trace = ActivityTraceId.CreateRandom();
                ActivitySpanId span = ActivitySpanId.CreateRandom();
                ActivityTraceFlags flags = index % 2 == 0 ? ActivityTraceFlags.Recorded : ActivityTraceFlags.None;
                ThreadContext.Set(trace, span, flags);
                ThreadContext.SetAttribute(0, "/dotnet/" + index);
                ThreadContext.SetAttribute(1, "worker-" + index);
                lock (printLock)
                {
                    Console.WriteLine($"tid {GetTid()} trace {trace.ToHexString()} span {span.ToHexString()} flags {(int)flags} attr0 /dotnet/{index} attr1 worker-{index}");
                }
                published.Signal();
                release.Wait();
                ThreadContext.Clear();
            }) { Name = "worker-" + index, IsBackground = true };
            t.Start();
        }
        published.Wait();
        Console.WriteLine("ready");
        Console.Out.Flush();
        while (Console.ReadLine() != null)
        {
        }
        release.Set();
        return 0;
    }
}
