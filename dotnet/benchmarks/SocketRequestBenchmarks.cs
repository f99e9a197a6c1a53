using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Net;
using System.Net.Http;
using System.Runtime.InteropServices;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using OpenTelemetry.Trace;

namespace OtelThreadContext.Benchmarks;

/// <summary>
/// What <c>AddThreadContext</c> adds to a request a user would serve: Kestrel on 127.0.0.1, an
/// <see cref="HttpClient"/> keeping its connections alive, <see cref="Clients"/> concurrent clients,
/// the sample service's two handlers (both hop threads), traced by the OpenTelemetry SDK with
/// ASP.NET Core instrumentation. Four services take turns in every round, the order rotating from
/// round to round: <see cref="Mode.Off"/> twice (the second, <see cref="Mode.OffControl"/>, is the
/// A/A control: its ratio to the first is the method's own bias), the tracker's notifying local
/// alone (<see cref="Mode.Floor"/>) and <c>AddThreadContext</c>. Not a BenchmarkDotNet class: it
/// runs before BenchmarkDotNet (<c>--socket-rounds</c>) and writes a table of the same shape.
/// </summary>
public static class SocketRequestBenchmarks
{
    /// <summary>Concurrent clients, each with its own keep-alive connection.</summary>
    public const int Clients = 4;

    /// <summary>Requests each service serves before it is measured (JIT, connections, pools).</summary>
    private const int WarmupRequests = 1024;

    /// <summary>The services compared in every round.</summary>
    public enum Mode
    {
        /// <summary>The SDK and ASP.NET Core instrumentation alone (the baseline).</summary>
        Off,

        /// <summary>The same again: the A/A control.</summary>
        OffControl,

        /// <summary>Off, plus a notifying <see cref="AsyncLocal{T}"/> kept equal to
        /// <see cref="Activity.Current"/> as the tracker keeps it, with nothing written.</summary>
        Floor,

        /// <summary>Off, plus <c>AddThreadContext(o =&gt; o.ActivityTags.Add("http.route"))</c>.</summary>
        ThreadContext,
    }

    /// <summary>Runs <paramref name="rounds"/> rounds of every mode, <paramref name="requestsPerRound"/>
    /// measured requests each; writes the rounds to <c>requests-sockets.csv</c> and the summary as
    /// BenchmarkDotNet-like <c>results/*SocketRequestBenchmarks-report.csv</c> and <c>-report-github.md</c>
    /// under <paramref name="artifacts"/>.</summary>
    /// <param name="rounds">Rounds; a multiple of four puts every mode at every position equally often.</param>
    /// <param name="requestsPerRound">Measured requests per mode and round (all clients together).</param>
    /// <param name="artifacts">BenchmarkDotNet's artifacts folder.</param>
    public static void Run(int rounds, int requestsPerRound, string artifacts)
    {
        Mode[] modes = Enum.GetValues<Mode>();
        var ns = modes.ToDictionary(m => m, _ => new List<double>());
        var bytes = modes.ToDictionary(m => m, _ => new List<double>());
        var lines = new List<string> { "round,mode,ns_per_request,bytes_per_request" };
        int perClient = Math.Max(1, requestsPerRound / Clients);
        for (int round = 0; round < rounds; round++)
        {
            for (int i = 0; i < modes.Length; i++)
            {
                Mode mode = modes[(i + round) % modes.Length];
                (double n, double b) = Measure(mode, perClient);
                ns[mode].Add(n);
                bytes[mode].Add(b);
                lines.Add(string.Create(CultureInfo.InvariantCulture, $"{round + 1},{mode},{n:F1},{b:F1}"));
            }
        }

        Directory.CreateDirectory(Path.Combine(artifacts, "results"));
        File.WriteAllLines(Path.Combine(artifacts, "requests-sockets.csv"), lines);
        WriteSummary(modes, ns, bytes, rounds, perClient * Clients, artifacts);
    }

    /// <summary>Starts the service of <paramref name="mode"/>, warms it up, and measures
    /// <paramref name="perClient"/> requests from each client: wall time and bytes allocated by the
    /// whole process (server and clients), per request.</summary>
    private static (double Ns, double Bytes) Measure(Mode mode, int perClient)
    {
        using var service = new Service(mode);
        service.Load(WarmupRequests / Clients).GetAwaiter().GetResult();
        if (mode == Mode.ThreadContext && !ProcessContext.IsPublished)
        {
            throw new InvalidOperationException("AddThreadContext did not publish the process context");
        }

        long allocated = GC.GetTotalAllocatedBytes(precise: true);
        var sw = Stopwatch.StartNew();
        service.Load(perClient).GetAwaiter().GetResult();
        sw.Stop();
        long allocatedBytes = GC.GetTotalAllocatedBytes(precise: true) - allocated;
        int requests = perClient * Clients;
        return (sw.Elapsed.TotalNanoseconds / requests, allocatedBytes / (double)requests);
    }

    private static void WriteSummary(
        Mode[] modes, Dictionary<Mode, List<double>> ns, Dictionary<Mode, List<double>> bytes, int rounds, int requests, string artifacts)
    {
        const string Name = "OtelThreadContext.Benchmarks.SocketRequestBenchmarks";
        var csv = new List<string> { "Method,Rounds,Requests,Mean [ns],StdDev [ns],Median [ns],Ratio,Ratio min,Ratio max,Allocated [B],Alloc Ratio" };
        // BenchmarkDotNet's GitHub export: the environment in a code block, then the table.
        var md = new List<string>
        {
            "```",
            $"{RuntimeInformation.FrameworkDescription}, {RuntimeInformation.OSDescription}, {Environment.ProcessorCount} CPUs",
            $"Kestrel on 127.0.0.1, {Clients} keep-alive HttpClient connections; {rounds} rounds, services in rotating order; Ratio: median of per-round ratios to Off",
            "```",
            "",
            "| Method | Rounds | Requests | Mean | StdDev | Median | Ratio | Ratio min | Ratio max | Allocated | Alloc Ratio |",
            "|------- |-------:|---------:|-----:|-------:|-------:|------:|----------:|----------:|----------:|------------:|",
        };
        double baseBytes = Median(bytes[Mode.Off]);
        foreach (Mode mode in modes)
        {
            // Ratios per round (both services measured within seconds of each other), then their median.
            double[] ratios = ns[mode].Zip(ns[Mode.Off], (m, o) => m / o).ToArray();
            double mean = ns[mode].Average();
            double sd = Math.Sqrt(ns[mode].Sum(v => (v - mean) * (v - mean)) / Math.Max(1, ns[mode].Count - 1));
            double b = Median(bytes[mode]);
            FormattableString row = $"{mode},{rounds},{requests},{mean:F1},{sd:F1},{Median(ns[mode]):F1},{Median(ratios):F3},{ratios.Min():F3},{ratios.Max():F3},{b:F0},{b / baseBytes:F3}";
            csv.Add(row.ToString(CultureInfo.InvariantCulture));
            FormattableString line = $"| {mode} | {rounds} | {requests} | {mean:N1} ns | {sd:N1} ns | {Median(ns[mode]):N1} ns | {Median(ratios):F3} | {ratios.Min():F3} | {ratios.Max():F3} | {b:F0} B | {b / baseBytes:F3} |";
            md.Add(line.ToString(CultureInfo.InvariantCulture));
        }

        File.WriteAllLines(Path.Combine(artifacts, "results", Name + "-report.csv"), csv);
        File.WriteAllLines(Path.Combine(artifacts, "results", Name + "-report-github.md"), md);
        Console.WriteLine($"socket requests: {rounds} rounds x {requests} requests per mode, {Clients} clients");
        md.ForEach(Console.WriteLine);
    }

    private static double Median(IEnumerable<double> values)
    {
        double[] v = values.OrderBy(x => x).ToArray();
        return v.Length == 0 ? double.NaN : v.Length % 2 == 1 ? v[v.Length / 2] : (v[(v.Length / 2) - 1] + v[v.Length / 2]) / 2;
    }

    /// <summary>One service on a free loopback port and a keep-alive client for it.</summary>
    private sealed class Service : IDisposable
    {
        private readonly WebApplication _app;
        private readonly HttpClient _client;
        private readonly EventHandler<ActivityChangedEventArgs>? _floor;

        public Service(Mode mode)
        {
            WebApplicationBuilder builder = WebApplication.CreateBuilder();
            builder.Logging.ClearProviders();
            builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
            builder.Services.AddOpenTelemetry().WithTracing(t =>
            {
                t.AddAspNetCoreInstrumentation();
                if (mode == Mode.ThreadContext)
                {
                    t.AddThreadContext(o => o.ActivityTags.Add("http.route"));
                }
            });
            _app = builder.Build();

            // The sample service's handlers (samples/dotnet) without their spin loops and timers,
            // so the request's time is the pipeline's own work, where an overhead shows most.
            _app.MapGet("/orders/{id:int}", async (int id) =>
            {
                await Task.Yield();
                int lines = await Task.Run(() => (id % 7) + 1);
                return Results.Text($"order {id}: {lines} lines\n");
            });
            _app.MapGet("/search", async (string? q) =>
            {
                int hits = 0;
                for (int i = 0; i < 3; i++)
                {
                    hits += await Task.Run(async () =>
                    {
                        await Task.Yield();
                        return i % 3;
                    });
                }

                return Results.Text($"search {q}: {hits} hits\n");
            });
            _app.StartAsync().GetAwaiter().GetResult();
            string url = _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            _client = new HttpClient(new SocketsHttpHandler
            {
                UseProxy = false,
                MaxConnectionsPerServer = Clients,
                PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5),
            })
            { BaseAddress = new Uri(url) };

            if (mode == Mode.Floor)
            {
                // The tracker's mechanism without its writes (ActivityBenchmarks.SetupLocalOnly).
                AsyncLocal<Activity?> local = new(static _ => { });
                _floor = (_, e) =>
                {
                    if (!ReferenceEquals(local.Value, e.Current))
                    {
                        local.Value = e.Current;
                    }
                };
                Activity.CurrentChanged += _floor;
            }
        }

        /// <summary>Every client sends <paramref name="perClient"/> requests, one at a time,
        /// alternating the two routes.</summary>
        public Task Load(int perClient) => Task.WhenAll(Enumerable.Range(0, Clients).Select(c => Task.Run(() => Client(c, perClient))));

        public void Dispose()
        {
            if (_floor is not null)
            {
                Activity.CurrentChanged -= _floor;
            }

            _client.Dispose();
            _app.StopAsync().GetAwaiter().GetResult();
            ((IDisposable)_app).Dispose();
            if (ActivityThreadContext.IsEnabled)
            {
                throw new InvalidOperationException("Activity tracking is still on after the service stopped.");
            }
        }

        private async Task Client(int client, int perClient)
        {
            for (int i = 0; i < perClient; i++)
            {
                string path = i % 2 == 0 ? $"/orders/{client + i}" : "/search?q=x";
                using HttpResponseMessage r = await _client.GetAsync(path, HttpCompletionOption.ResponseContentRead).ConfigureAwait(false);
                if (!r.IsSuccessStatusCode)
                {
                    throw new InvalidOperationException($"GET {path} failed: {r.StatusCode}");
                }
            }
        }
    }
}
