using System;
using System.Runtime.InteropServices;
using System.Threading;
using BenchmarkDotNet.Attributes;

namespace OtelThreadContext.Benchmarks;

/// <summary>
/// One span switch on a thread whose record is already attached: the same 16 + 8 + 1 bytes
/// written by each candidate. Ratios are against <see cref="RawStores"/>, the floor.
/// </summary>
/// <remarks>
/// The first <see cref="ThreadContext"/> call on a thread attaches a record (one P/Invoke that
/// may allocate). <see cref="Setup"/> makes that call, so it is never inside a measured
/// invocation; <see cref="Cleanup"/> fails the run if the benchmark thread was not the thread
/// that attached (the measured calls would then have included an attach).
/// </remarks>
public unsafe class WriteBenchmarks
{
    // Record layout (include/otel_thread_ctx.h): trace id 0..16, span id 16..24, valid 24, flags 25.
    private const int SpanIdOffset = 16;
    private const int ValidOffset = 24;
    private const int TraceFlagsOffset = 25;
    private const int RecordSize = 640;

    /// <summary>The full-fence writer's cached record, looked up like ThreadContext's.</summary>
    [ThreadStatic]
    private static byte* t_fenceRecord;

    /// <summary>The plain-store target, found through a thread-static like ThreadContext's record.</summary>
    [ThreadStatic]
    private static byte* t_rawTarget;

    private byte* _ids;
    private byte* _rawTarget;
    private byte* _record;
    private byte _flags;
    private System.Diagnostics.ActivityTraceId _traceId;
    private System.Diagnostics.ActivitySpanId _spanId;
    private int _setupThread;

    /// <summary>Allocates the inputs and attaches this thread's record (outside any measurement).</summary>
    [GlobalSetup]
    public void Setup()
    {
        if (!ThreadContext.IsSupported)
        {
            throw new PlatformNotSupportedException("The benchmarks need Linux x64 with glibc.");
        }

        _ids = (byte*)NativeMemory.AlignedAlloc(64, 64);
        ReadOnlySpan<byte> ids =
        [
            0x0a, 0xf7, 0x65, 0x19, 0x16, 0xcd, 0x43, 0xdd, 0x84, 0x48, 0xeb, 0x21, 0x1c, 0x80, 0x31, 0x9c,
            0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x31,
        ];
        ids.CopyTo(new Span<byte>(_ids, 24));
        _flags = 1;
        _traceId = System.Diagnostics.ActivityTraceId.CreateFromBytes(ids.Slice(0, 16));
        _spanId = System.Diagnostics.ActivitySpanId.CreateFromBytes(ids.Slice(16, 8));
        _rawTarget = (byte*)NativeMemory.AlignedAlloc(RecordSize, 64);
        NativeMemory.Clear(_rawTarget, RecordSize);

        // First call on this thread: attaches the record and caches its address.
        ThreadContext.Set(new ReadOnlySpan<byte>(_ids, 16), new ReadOnlySpan<byte>(_ids + SpanIdOffset, 8), _flags);
        byte* record;
        if (NativeBindings.EnsureRecord(&record) != 0 || record == null)
        {
            throw new InvalidOperationException("otel_thread_ctx_ensure_record failed.");
        }

        _record = record;
        t_fenceRecord = _record;
        t_rawTarget = _rawTarget;
        _setupThread = Environment.CurrentManagedThreadId;
    }

    /// <summary>Whether the calling thread's record is still <paramref name="expected"/>.</summary>
    private static bool RecordIsStill(byte* expected)
    {
        byte* record;
        return NativeBindings.EnsureRecord(&record) == 0 && record == expected;
    }

    /// <summary>Checks that the measured calls ran on the thread <see cref="Setup"/> attached.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        if (Environment.CurrentManagedThreadId != _setupThread || !RecordIsStill(_record))
        {
            throw new InvalidOperationException(
                $"Benchmark thread {Environment.CurrentManagedThreadId} is not the setup thread {_setupThread}: " +
                "the measured calls included the first-call attach.");
        }

        Console.WriteLine(
            $"// OtelThreadContext: setup, benchmark and cleanup ran on managed thread {_setupThread}; the record was attached in setup " +
            $"(record at page offset 0x{(nuint)_record & 0xFFF:x3}, ids at 0x{(nuint)_ids & 0xFFF:x3}).");
        // The JIT compiles a [ThreadStatic] read into a call to an absolute address; logging
        // where glibc's dynamic TLS lookup lives lets the report name that call's target.
        if (TlsGetAddr() is nint tlsGetAddr)
        {
            Console.WriteLine($"// OtelThreadContext: __tls_get_addr is at 0x{tlsGetAddr:X}.");
        }

        t_fenceRecord = null;
        t_rawTarget = null;
        NativeMemory.AlignedFree(_ids);
        NativeMemory.AlignedFree(_rawTarget);
    }

    /// <summary>glibc's <c>__tls_get_addr</c> (in the dynamic loader), or null if not found.</summary>
    private static nint? TlsGetAddr()
    {
        foreach (string library in new[] { "ld-linux-x86-64.so.2", "libc.so.6" })
        {
            if (NativeLibrary.TryLoad(library, out nint handle) && NativeLibrary.TryGetExport(handle, "__tls_get_addr", out nint address))
            {
                return address;
            }
        }

        return null;
    }

    /// <summary>The floor: the same bytes copied into native memory with plain stores, no protocol.</summary>
    [Benchmark(Baseline = true)]
    public void RawStores()
    {
        byte* src = _ids;
        byte* dst = _rawTarget;
        *(ulong*)dst = *(ulong*)src;
        *(ulong*)(dst + 8) = *(ulong*)(src + 8);
        *(ulong*)(dst + SpanIdOffset) = *(ulong*)(src + SpanIdOffset);
        dst[TraceFlagsOffset] = _flags;
    }

    /// <summary>
    /// <see cref="RawStores"/> with the target found through a [ThreadStatic] field, as every
    /// per-thread writer must: the floor for a writer that looks up the calling thread's record.
    /// </summary>
    [Benchmark]
    public void RawStoresThreadStatic()
    {
        byte* dst = t_rawTarget;
        if (dst == null)
        {
            return;
        }

        byte* src = _ids;
        *(ulong*)dst = *(ulong*)src;
        *(ulong*)(dst + 8) = *(ulong*)(src + 8);
        *(ulong*)(dst + SpanIdOffset) = *(ulong*)(src + SpanIdOffset);
        dst[TraceFlagsOffset] = _flags;
    }

    /// <summary>The package's in-place writer: cached record, valid flag, Volatile.Write ordering.</summary>
    [Benchmark]
    public void DirectWrite() =>
        ThreadContext.Set(new ReadOnlySpan<byte>(_ids, 16), new ReadOnlySpan<byte>(_ids + SpanIdOffset, 8), _flags);

    /// <summary>The same writer fed <see cref="System.Diagnostics.Activity"/> ids, as Activity tracking does.</summary>
    [Benchmark]
    public void DirectWriteActivityIds() =>
        ThreadContext.Set(_traceId, _spanId, System.Diagnostics.ActivityTraceFlags.Recorded);

    /// <summary>The native update through a normal P/Invoke (with the GC transition).</summary>
    [Benchmark]
    public int PInvokeUpdate() =>
        NativeBindings.UpdateWithGCTransition(_ids, _ids + SpanIdOffset, _flags);

    /// <summary>The native update through a P/Invoke with the GC transition suppressed.</summary>
    [Benchmark]
    public int PInvokeUpdateSuppressGCTransition() =>
        NativeBindings.UpdateSuppressGCTransition(_ids, _ids + SpanIdOffset, _flags);

    /// <summary>
    /// The same protocol with two full fences (valid = 0, fence, fields, fence, valid = 1) in place
    /// of Volatile ordering, as some tracers write their records today.
    /// </summary>
    [Benchmark]
    public void DirectWriteFullFence()
    {
        byte* rec = t_fenceRecord;
        if (rec == null)
        {
            return;
        }

        byte* src = _ids;
        rec[ValidOffset] = 0;
        Interlocked.MemoryBarrier();
        *(ulong*)rec = *(ulong*)src;
        *(ulong*)(rec + 8) = *(ulong*)(src + 8);
        *(ulong*)(rec + SpanIdOffset) = *(ulong*)(src + SpanIdOffset);
        rec[TraceFlagsOffset] = _flags;
        Interlocked.MemoryBarrier();
        rec[ValidOffset] = 1;
    }
}
