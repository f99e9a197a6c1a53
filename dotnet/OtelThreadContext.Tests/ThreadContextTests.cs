using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Text;
using System.Threading;
using Xunit;

namespace OtelThreadContext.Tests;

/// <summary>What ThreadContext writes is what the native library (and so a reader) sees.</summary>
public sealed unsafe class ThreadContextTests
{
    private static readonly ActivityTraceId W3cTrace = ActivityTraceId.CreateFromString("0af7651916cd43dd8448eb211c80319c");
    private static readonly ActivitySpanId W3cSpan = ActivitySpanId.CreateFromString("b7ad6b7169203331");

    private static byte[] Bytes(ActivityTraceId id)
    {
        var b = new byte[16];
        id.CopyTo(b);
        return b;
    }

    private static byte[] Bytes(ActivitySpanId id)
    {
        var b = new byte[8];
        id.CopyTo(b);
        return b;
    }

    [Fact]
    public void IsSupportedOnThisMachine() => Assert.True(ThreadContext.IsSupported);

    [Fact]
    public void TheWholeW3cTraceFlagsBytePassesThrough() => Native.OnNewThread(() =>
    {
        // Sampled (bit 0) and random trace id (bit 1), as W3C Trace Context level 2 writes them.
        ThreadContext.Set(W3cTrace, W3cSpan, (ActivityTraceFlags)0x03);
        Assert.Equal(0x03, Native.ReadCurrent().TraceFlags);
        ThreadContext.Set(Bytes(W3cTrace), Bytes(W3cSpan), 0x03);
        Assert.Equal(0x03, Native.ReadCurrent().TraceFlags);
        ThreadContext.Clear();
        Assert.Equal(0, Native.ReadCurrent().Valid);
        ThreadContext.Set(1UL, 2UL, 3UL, 0x03);
        Assert.Equal((1, 0x03), (Native.ReadCurrent().Valid, Native.ReadCurrent().TraceFlags));
    });

    [Fact]
    public void SetWithActivityIdsIsWhatReadCurrentSees() => Native.OnNewThread(() =>
    {
        ActivityTraceId trace = ActivityTraceId.CreateRandom();
        ActivitySpanId span = ActivitySpanId.CreateRandom();
        ThreadContext.Set(trace, span, ActivityTraceFlags.Recorded);

        OtelThreadCtxRecord r = Native.ReadCurrent();
        Assert.Equal(1, r.Valid);
        Assert.Equal(Bytes(trace), Native.TraceId(r));
        Assert.Equal(Bytes(span), Native.SpanId(r));
        Assert.Equal(1, r.TraceFlags);

        ThreadContext.Set(W3cTrace, W3cSpan, ActivityTraceFlags.None);
        r = Native.ReadCurrent();
        Assert.Equal(Convert.FromHexString("0af7651916cd43dd8448eb211c80319c"), Native.TraceId(r));
        Assert.Equal(Convert.FromHexString("b7ad6b7169203331"), Native.SpanId(r));
        Assert.Equal(0, r.TraceFlags);
        Assert.Equal(1, r.Valid);
    });

    [Fact]
    public void SetWithRawBytesAndWithNumbersUsesW3cByteOrder() => Native.OnNewThread(() =>
    {
        byte[] trace = Convert.FromHexString("4bf92f3577b34da6a3ce929d0e0e4736");
        byte[] span = Convert.FromHexString("00f067aa0ba902b7");
        ThreadContext.Set(trace, span, 3);
        OtelThreadCtxRecord r = Native.ReadCurrent();
        Assert.Equal(trace, Native.TraceId(r));
        Assert.Equal(span, Native.SpanId(r));
        Assert.Equal(3, r.TraceFlags);

        ThreadContext.Set(0x0af7651916cd43ddUL, 0x8448eb211c80319cUL, 0xb7ad6b7169203331UL, 1);
        r = Native.ReadCurrent();
        Assert.Equal(Bytes(W3cTrace), Native.TraceId(r));
        Assert.Equal(Bytes(W3cSpan), Native.SpanId(r));
        Assert.Equal(1, r.TraceFlags);

        Assert.Throws<ArgumentException>(() => ThreadContext.Set(new byte[15], new byte[8], 0));
        Assert.Throws<ArgumentException>(() => ThreadContext.Set(new byte[16], new byte[9], 0));
    });

    [Fact]
    public void ClearPublishesNoSpanAndNoAttributes() => Native.OnNewThread(() =>
    {
        ThreadContext.Set(W3cTrace, W3cSpan, ActivityTraceFlags.Recorded);
        Assert.Equal(SetAttributeResult.Stored, ThreadContext.SetAttribute(0, "GET"));
        ThreadContext.Clear();

        // OTEP 4947's "no active span" for a record that stays attached: valid = 0.
        OtelThreadCtxRecord r = Native.ReadCurrent();
        Assert.Equal(0, r.Valid);
        Assert.Equal(new byte[16], Native.TraceId(r));
        Assert.Equal(new byte[8], Native.SpanId(r));
        Assert.Equal(0, r.TraceFlags);
        Assert.Equal(0, r.AttrsDataSize);
    });

    [Fact]
    public void ASwitchFromActivityTrackingWritesTheIdsAndDropsEveryAttribute() => Native.OnNewThread(() =>
    {
        ThreadContext.Set(W3cTrace, W3cSpan, ActivityTraceFlags.None);
        Assert.Equal(SetAttributeResult.Stored, ThreadContext.SetAttribute(0, "GET"));
        Assert.Equal(SetAttributeResult.Stored, ThreadContext.SetAttribute(1, "/orders"));
        ActivityTraceId trace = ActivityTraceId.CreateRandom();
        ActivitySpanId span = ActivitySpanId.CreateRandom();

        ThreadContext.SetActivityIds(trace, span, ActivityTraceFlags.Recorded, clearAttributes: true);

        OtelThreadCtxRecord r = Native.ReadCurrent();
        Assert.Equal(1, r.Valid);
        Assert.Equal(Bytes(trace), Native.TraceId(r));
        Assert.Equal(Bytes(span), Native.SpanId(r));
        Assert.Equal(1, r.TraceFlags);
        Assert.Equal(0, r.AttrsDataSize);
    });

    [Fact]
    public void ALoneSurrogateInAnAttributeValueIsStoredAsTheReplacementCharacter() => Native.OnNewThread(() =>
    {
        Assert.Equal(SetAttributeResult.Stored, ThreadContext.SetAttribute(3, "a\ud800b"));

        OtelThreadCtxRecord r = Native.ReadCurrent();
        Assert.Equal(new byte[] { 3, 5, (byte)'a', 0xEF, 0xBF, 0xBD, (byte)'b' }, new ReadOnlySpan<byte>(r.AttrsData, r.AttrsDataSize).ToArray());
    });

    [Fact]
    public void TheDefaultKeyIsRefusedAndNothingIsWritten() => Native.OnNewThread(() =>
    {
        ThreadContext.ClearAttributes();

        ArgumentException fromString = Assert.Throws<ArgumentException>(() => ThreadContext.SetAttribute(default(ThreadAttributeKey), "v"));
        ArgumentException fromSpan = Assert.Throws<ArgumentException>(() => ThreadContext.SetAttribute(default(ThreadAttributeKey), "v".AsSpan()));

        Assert.Equal("key", fromString.ParamName);
        Assert.Equal("key", fromSpan.ParamName);
        Assert.Equal(0, Native.ReadCurrent().AttrsDataSize);
    });

    [Fact]
    public void ANullStringValueIsStoredAsAnEmptyValue() => Native.OnNewThread(() =>
    {
        ThreadAttributeKey task = ProcessContext.DeclareKey("thread.task_id");
        ThreadContext.ClearAttributes();

        Assert.Equal(SetAttributeResult.Stored, ThreadContext.SetAttribute(task, (string)null!));
        Assert.Equal(new List<(byte, string)> { (task.Index, "") }, Native.Attributes(Native.ReadCurrent()));
    });

    [Fact]
    public void AttributesAreStoredReplacedAndCleared() => Native.OnNewThread(() =>
    {
        ThreadContext.Set(W3cTrace, W3cSpan, ActivityTraceFlags.Recorded);
        Assert.Equal(SetAttributeResult.Stored, ThreadContext.SetAttribute(0, "GET"));
        Assert.Equal(SetAttributeResult.Stored, ThreadContext.SetAttribute(1, "/users/{id}".AsSpan()));
        Assert.Equal(SetAttributeResult.Stored, ThreadContext.SetAttribute(2, "ünïcødé ✓"));
        OtelThreadCtxRecord r = Native.ReadCurrent();
        Assert.Equal(new[] { ((byte)0, "GET"), ((byte)1, "/users/{id}"), ((byte)2, "ünïcødé ✓") }, Native.Attributes(r));
        Assert.Equal(2 + 3 + 2 + 11 + 2 + System.Text.Encoding.UTF8.GetByteCount("ünïcødé ✓"), r.AttrsDataSize);

        // Replacing a key keeps one entry for it; ids are untouched by attribute writes.
        Assert.Equal(SetAttributeResult.Stored, ThreadContext.SetAttribute(0, "POST"));
        r = Native.ReadCurrent();
        Assert.Equal(new[] { ((byte)1, "/users/{id}"), ((byte)2, "ünïcødé ✓"), ((byte)0, "POST") }, Native.Attributes(r));
        Assert.Equal(Bytes(W3cTrace), Native.TraceId(r));

        // Set keeps attributes.
        ThreadContext.Set(ActivityTraceId.CreateRandom(), ActivitySpanId.CreateRandom(), ActivityTraceFlags.None);
        Assert.Equal(3, Native.Attributes(Native.ReadCurrent()).Count);

        // An empty value is an entry too.
        Assert.Equal(SetAttributeResult.Stored, ThreadContext.SetAttribute(7, string.Empty));
        Assert.Contains(((byte)7, string.Empty), Native.Attributes(Native.ReadCurrent()));

        ThreadContext.ClearAttributes();
        r = Native.ReadCurrent();
        Assert.Equal(0, r.AttrsDataSize);
        Assert.Equal(1, r.Valid);
        Assert.NotEqual(new byte[16], Native.TraceId(r));
    });

    [Fact]
    public void LongValuesAreCutAtACharacterBoundaryAndReported() => Native.OnNewThread(() =>
    {
        ThreadContext.ClearAttributes();
        Assert.Equal(SetAttributeResult.Truncated, ThreadContext.SetAttribute(0, new string('a', 300)));
        Assert.Equal(new string('a', 255), Native.Attributes(Native.ReadCurrent()).Single().Value);

        // 254 ASCII bytes then a 2-byte character: the character does not fit and is dropped whole.
        Assert.Equal(SetAttributeResult.Truncated, ThreadContext.SetAttribute(0, new string('a', 254) + "é"));
        Assert.Equal(new string('a', 254), Native.Attributes(Native.ReadCurrent()).Single().Value);

        // A surrogate pair (4 UTF-8 bytes) straddling the limit is not split either.
        Assert.Equal(SetAttributeResult.Truncated, ThreadContext.SetAttribute(0, new string('a', 253) + "😀"));
        Assert.Equal(new string('a', 253), Native.Attributes(Native.ReadCurrent()).Single().Value);

        // Exactly 255 bytes is not a truncation.
        Assert.Equal(SetAttributeResult.Stored, ThreadContext.SetAttribute(0, new string('b', 253) + "é"));
        Assert.Equal(new string('b', 253) + "é", Native.Attributes(Native.ReadCurrent()).Single().Value);
    });

    [Fact]
    public void AFullRecordRefusesAnEntryAndStaysUnchanged() => Native.OnNewThread(() =>
    {
        ThreadContext.Set(W3cTrace, W3cSpan, ActivityTraceFlags.Recorded);
        ThreadContext.ClearAttributes();
        string value = new string('x', 200);

        // 3 entries of 202 bytes = 606 of 612.
        for (byte k = 0; k < 3; k++)
        {
            Assert.Equal(SetAttributeResult.Stored, ThreadContext.SetAttribute(k, value));
        }

        OtelThreadCtxRecord before = Native.ReadCurrent();
        Assert.Equal(606, before.AttrsDataSize);
        Assert.Equal(SetAttributeResult.NoSpace, ThreadContext.SetAttribute(3, "12345"));
        OtelThreadCtxRecord after = Native.ReadCurrent();
        Assert.Equal(Native.Attributes(before), Native.Attributes(after));
        Assert.Equal(1, after.Valid);

        // 4 more bytes fit exactly (2 + 4 = 6), and replacing an entry frees its space first.
        Assert.Equal(SetAttributeResult.Stored, ThreadContext.SetAttribute(3, "1234"));
        Assert.Equal(612, Native.ReadCurrent().AttrsDataSize);
        Assert.Equal(SetAttributeResult.Stored, ThreadContext.SetAttribute(0, new string('y', 200)));
        Assert.Equal(new byte[] { 1, 2, 3, 0 }, Native.Attributes(Native.ReadCurrent()).Select(a => a.Key));
    });

    [Fact]
    public void ManagedAttributeWritesMatchTheNativeLibrarysEncoding() => Native.OnNewThread(() =>
    {
        // The C API's setter (Rust) and the package's writer (C#) implement the same entry rules:
        // the same sequence through each must give the same results and the same bytes.
        var steps = new (byte Key, string Value)[]
        {
            (0, "GET"), (1, "/a"), (0, "POST"), (2, new string('z', 260)), (1, "é"), (3, new string('é', 200)),
            (4, new string('q', 255)), (5, new string('r', 100)), (5, "s"),
        };
        nint ctx = Native.NewRecord(new byte[16], new byte[8], 0);
        ThreadContext.ClearAttributes();
        var results = new List<SetAttributeResult>();
        foreach (var (key, value) in steps)
        {
            SetAttributeResult managed = ThreadContext.SetAttribute(key, value);
            results.Add(managed);
            byte[] utf8 = Encoding.UTF8.GetBytes(value);
            OtelThreadCtxStatus status;
            fixed (byte* p = utf8)
            {
                status = NativeMethods.otel_thread_ctx_set_attribute(ctx, key, p, (nuint)utf8.Length);
            }

            SetAttributeResult native = status switch
            {
                OtelThreadCtxStatus.Ok => SetAttributeResult.Stored,
                OtelThreadCtxStatus.Truncated => SetAttributeResult.Truncated,
                OtelThreadCtxStatus.NoSpace => SetAttributeResult.NoSpace,
                _ => throw new InvalidOperationException(status.ToString()),
            };
            Assert.Equal(native, managed);
        }

        Assert.Contains(SetAttributeResult.Truncated, results);
        Assert.Contains(SetAttributeResult.NoSpace, results);
        OtelThreadCtxRecord* nativeRecord = Native.RecordOf(ctx);
        OtelThreadCtxRecord mine = Native.ReadCurrent();
        Assert.Equal(nativeRecord->AttrsDataSize, mine.AttrsDataSize);
        Assert.Equal(
            new ReadOnlySpan<byte>(nativeRecord->AttrsData, nativeRecord->AttrsDataSize).ToArray(),
            new ReadOnlySpan<byte>(mine.AttrsData, mine.AttrsDataSize).ToArray());
        Assert.Equal(OtelThreadCtxStatus.Ok, NativeMethods.otel_thread_ctx_free(ctx));
    });

    [Fact]
    public void WritesAfterNativeCodeDetachedTheThreadsRecordPublishItAgain() => Native.OnNewThread(() =>
    {
        ThreadContext.Set(W3cTrace, W3cSpan, ActivityTraceFlags.Recorded);
        nint own = NativeMethods.otel_thread_ctx_current();
        Assert.NotEqual(0, own);
        OtelThreadCtxRecord* record = Native.RecordOf(own);

        // Unpublish the record behind ThreadContext's back: it stays the thread's (not handed over), and the
        // next write attaches it again instead of writing an unpublished copy.
        Assert.Equal(0, NativeMethods.otel_thread_ctx_detach());
        for (int i = 0; i < 1000; i++)
        {
            ThreadContext.SetAttribute(0, "v");
            ThreadContext.ClearAttributes();
            ThreadContext.Clear();
            ThreadContext.Set((ulong)i, (ulong)i, (ulong)i, 1);
        }

        Assert.Equal(own, NativeMethods.otel_thread_ctx_current());
        Assert.Equal(999, (int)System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(new ReadOnlySpan<byte>(record->SpanId, 8)));
    });

    [Fact]
    public void CallsAfterTheFirstAllocateNothing() => Native.OnNewThread(() =>
    {
        ActivityTraceId trace = ActivityTraceId.CreateRandom();
        ActivitySpanId span = ActivitySpanId.CreateRandom();
        byte[] traceBytes = Bytes(trace);
        byte[] spanBytes = Bytes(span);
        string value = "/orders/{id}/items";
        string longValue = new string('q', 400);

        void Calls()
        {
            ThreadContext.Set(trace, span, ActivityTraceFlags.Recorded);
            ThreadContext.Set(traceBytes, spanBytes, 1);
            ThreadContext.Set(1UL, 2UL, 3UL, 1);
            ThreadContext.SetAttribute(0, value);
            ThreadContext.SetAttribute(1, value.AsSpan(1));
            ThreadContext.SetAttribute(2, longValue);
            ThreadContext.ClearAttributes();
            ThreadContext.Clear();
        }

        Calls();
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 10_000; i++)
        {
            Calls();
        }

        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(0, allocated);

        // The probe itself sees allocations (so a zero above means something).
        before = GC.GetAllocatedBytesForCurrentThread();
        GC.KeepAlive(new byte[64]);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before >= 64);
    });

    [Fact]
    public void EachThreadSeesOnlyItsOwnValues()
    {
        const int Threads = 8;
        var ready = new Barrier(Threads);
        var errors = new List<string>();
        var addresses = new nint[Threads];
        var threads = Enumerable.Range(0, Threads).Select(i => new Thread(() =>
        {
            try
            {
                ThreadContext.Set((ulong)i + 1, 0xabcdUL * (ulong)(i + 1), 0x1000UL + (ulong)i, (byte)(i & 1));
                ThreadContext.SetAttribute(0, $"thread-{i}");
                addresses[i] = (nint)Native.CurrentRecord();
                ready.SignalAndWait();

                // Everyone has written; each still reads its own.
                OtelThreadCtxRecord r = Native.ReadCurrent();
                byte[] expectedTrace = new byte[16];
                System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(expectedTrace, (ulong)i + 1);
                System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(expectedTrace.AsSpan(8), 0xabcdUL * (ulong)(i + 1));
                byte[] expectedSpan = new byte[8];
                System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(expectedSpan, 0x1000UL + (ulong)i);
                if (!Native.TraceId(r).SequenceEqual(expectedTrace) || !Native.SpanId(r).SequenceEqual(expectedSpan) ||
                    r.TraceFlags != (i & 1) || Native.Attributes(r).Single() != ((byte)0, $"thread-{i}"))
                {
                    lock (errors)
                    {
                        errors.Add($"thread {i} read {Convert.ToHexString(Native.TraceId(r))}/{Convert.ToHexString(Native.SpanId(r))}");
                    }
                }

                ready.SignalAndWait();
            }
            catch (Exception e)
            {
                lock (errors)
                {
                    errors.Add($"thread {i}: {e}");
                }
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        Assert.Empty(errors);
        Assert.Equal(Threads, addresses.Distinct().Count());
        Assert.DoesNotContain((nint)0, addresses);
    }
}
