using System;
using System.Buffers.Binary;
using System.Diagnostics;
using System.IO;
using System.Runtime.InteropServices;
using System.Threading;
using Xunit;

namespace OtelThreadContext.Tests;

/// <summary>
/// The managed writer keeps the valid-flag protocol under the JIT and real interruption: native
/// code outside the shipped library (tests/support/sampler.c) samples the writer thread's record
/// through the otel_thread_ctx_v1 slot from a timer signal aimed at that thread, while C# calls
/// ThreadContext.Set in a tight loop.
/// </summary>
public sealed unsafe class SignalStressTests : IDisposable
{
    private const int SIGPROF = 27; // x86-64 and arm64 Linux; the .NET runtime installs no handler for it
    private const ulong Mul = 0x9E3779B97F4A7C15UL; // must match sampler.c
    private const ulong Xor = 0xA5A5A5A5A5A5A5A5UL;
    private static readonly long MinWrites = 1_000_000 / TestPlatform.StressDivisor;
    private static readonly ulong MinSamples = 10_000 / (ulong)TestPlatform.StressDivisor;

    [StructLayout(LayoutKind.Sequential)]
    private struct SamplerCounts
    {
        public ulong Samples;
        public ulong NullSlot;
        public ulong NotValid;
        public ulong Empty;
        public ulong Consistent;
        public ulong Inconsistent;
        public fixed byte FirstBad[28];
    }

    private readonly ITestOutputHelper _output;
    private readonly TestSupport.TempDir _dir = new("otel-sampler-");
    private readonly nint _lib;
    private readonly delegate* unmanaged<int, nint, int> _start;
    private readonly delegate* unmanaged<SamplerCounts*, int> _stop;
    private readonly delegate* unmanaged<ulong> _samples;
    private readonly delegate* unmanaged<void*> _slot;
    private readonly delegate* unmanaged<byte*, int> _classify;

    public SignalStressTests(ITestOutputHelper output)
    {
        _output = output;
        string src = Path.Combine(TestSupport.RepoRoot, "tests", "support", "sampler.c");
        string so = Path.Combine(_dir.Path, "libsampler.so");
        string libDir = AppContext.BaseDirectory.TrimEnd('/');
        var (rc, log) = TestSupport.Run(TestPlatform.CCompiler, new[]
        {
            "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", TestPlatform.TlsDescDialect,
            "-I", Path.Combine(TestSupport.RepoRoot, "include"), src,
            "-L", libDir, "-lotel_thread_ctx", "-Wl,-rpath," + libDir, "-o", so,
        });
        Assert.True(rc == 0, "building the sampler failed:\n" + log);

        // The sampler reaches the slot through a TLSDESC relocation, as the spec recommends.
        var (rrc, relocs) = TestSupport.Run("readelf", new[] { "-rW", so });
        Assert.Equal(0, rrc);
        Assert.Matches(TestPlatform.TlsDescRelocation + @"\s+0+\s+otel_thread_ctx_v1", relocs);

        _lib = NativeLibrary.Load(so);
        _start = (delegate* unmanaged<int, nint, int>)NativeLibrary.GetExport(_lib, "sampler_start");
        _stop = (delegate* unmanaged<SamplerCounts*, int>)NativeLibrary.GetExport(_lib, "sampler_stop");
        _samples = (delegate* unmanaged<ulong>)NativeLibrary.GetExport(_lib, "sampler_samples");
        _slot = (delegate* unmanaged<void*>)NativeLibrary.GetExport(_lib, "sampler_slot");
        _classify = (delegate* unmanaged<byte*, int>)NativeLibrary.GetExport(_lib, "sampler_classify");
    }

    public void Dispose()
    {
        // The library stays loaded (its handler was removed by sampler_stop); only files go.
        _dir.Dispose();
    }

    private static void Encode(ulong n, Span<byte> trace, Span<byte> span)
    {
        BinaryPrimitives.WriteUInt64BigEndian(trace, n);
        BinaryPrimitives.WriteUInt64BigEndian(trace.Slice(8), n * Mul);
        BinaryPrimitives.WriteUInt64BigEndian(span, n ^ Xor);
    }

    [Fact]
    public void TheSamplersCheckRejectsATornRecord()
    {
        // Guards the checker: without this, "zero inconsistent samples" could mean a blind check.
        byte* hdr = stackalloc byte[28];
        var h = new Span<byte>(hdr, 28);
        h.Clear();
        Assert.Equal(0, _classify(hdr));
        Encode(12345, h.Slice(0, 16), h.Slice(16, 8));
        hdr[24] = 1;
        hdr[25] = 12345 & 1;
        Assert.Equal(1, _classify(hdr));
        hdr[20] ^= 0x10; // span from another update
        Assert.Equal(-1, _classify(hdr));
        hdr[20] ^= 0x10;
        hdr[25] ^= 1; // flags from another update
        Assert.Equal(-1, _classify(hdr));
        hdr[25] ^= 1;
        BinaryPrimitives.WriteUInt64BigEndian(h, 12347); // first half of the trace id from another update
        Assert.Equal(-1, _classify(hdr));
    }

    [Fact]
    public void SignalHandlerSamplesNeverSeeATornManagedWrite()
    {
        // Activity ids allocate (hex strings): build a table up front so the loop does not.
        const int TableSize = 4096;
        var traces = new ActivityTraceId[TableSize];
        var spans = new ActivitySpanId[TableSize];
        var flags = new ActivityTraceFlags[TableSize];
        Span<byte> t = stackalloc byte[16];
        Span<byte> s = stackalloc byte[8];
        for (int i = 0; i < TableSize; i++)
        {
            ulong n = 0x1000_0000UL + ((ulong)i * 7919);
            Encode(n, t, s);
            traces[i] = ActivityTraceId.CreateFromBytes(t);
            spans[i] = ActivitySpanId.CreateFromBytes(s);
            flags[i] = (ActivityTraceFlags)(n & 1);
        }

        SamplerCounts counts = default;
        long writes = 0;
        int startRc = 0, stopRc = 0;
        bool sameSlot = false;
        byte[] firstBad = Array.Empty<byte>();
        TimeSpan elapsed = default;
        Native.OnNewThread(() =>
        {
            Span<byte> trace = stackalloc byte[16];
            Span<byte> span = stackalloc byte[8];
            Encode(1, trace, span);
            ThreadContext.Set(trace, span, 1);

            // The slot the sampler reads is the record ThreadContext writes.
            sameSlot = _slot() == Native.CurrentRecord();
            startRc = _start(SIGPROF, TestPlatform.SamplerPeriodNs);
            if (startRc != 0)
            {
                return;
            }

            var clock = Stopwatch.StartNew();
            ulong n = 2;
            try
            {
                while (true)
                {
                    // Rotate through the three id overloads, all in the tight loop.
                    for (int k = 0; k < 1024; k++, n++)
                    {
                        switch (n % 3)
                        {
                            case 0:
                                ThreadContext.Set(n, n * Mul, n ^ Xor, (byte)(n & 1));
                                break;
                            case 1:
                                Encode(n, trace, span);
                                ThreadContext.Set(trace, span, (byte)(n & 1));
                                break;
                            default:
                                int i = (int)(n % TableSize);
                                ThreadContext.Set(traces[i], spans[i], flags[i]);
                                break;
                        }
                    }

                    writes += 1024;
                    if ((writes >= MinWrites && _samples() >= MinSamples) || clock.Elapsed > TimeSpan.FromSeconds(120))
                    {
                        break;
                    }
                }
            }
            finally
            {
                elapsed = clock.Elapsed;
                SamplerCounts c;
                stopRc = _stop(&c);
                counts = c;
                firstBad = new ReadOnlySpan<byte>(c.FirstBad, 28).ToArray();
            }
        });

        string report =
            $"managed writes: {writes:N0} in {elapsed.TotalSeconds:F2}s; signal samples: {counts.Samples:N0} " +
            $"(valid and consistent {counts.Consistent:N0}, caught mid-update (valid=0) {counts.NotValid:N0}, " +
            $"empty {counts.Empty:N0}, null slot {counts.NullSlot:N0}, valid but torn {counts.Inconsistent:N0})";
        _output.WriteLine(report);
        Console.WriteLine("[signal stress] " + report);

        Assert.True(sameSlot, "sampler's otel_thread_ctx_v1 is not the record ThreadContext writes (two copies of the slot?)");
        Assert.Equal(0, startRc);
        Assert.Equal(0, stopRc);
        Assert.True(writes >= MinWrites, $"only {writes} writes");
        Assert.True(counts.Samples >= MinSamples, $"only {counts.Samples} samples in {elapsed}");
        Assert.Equal(0UL, counts.NullSlot);
        Assert.Equal(0UL, counts.Empty);
        Assert.True(counts.Consistent > MinSamples / 2, "too few samples saw a valid record");
        Assert.True(
            counts.Inconsistent == 0,
            $"{counts.Inconsistent} samples had valid == 1 with mismatched fields; first: {Convert.ToHexString(firstBad)}");
        Assert.Equal(counts.Samples, counts.NullSlot + counts.NotValid + counts.Empty + counts.Consistent + counts.Inconsistent);
    }
}
