using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Net.Http;
using System.Threading.Tasks;
using BenchmarkDotNet.Attributes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using OpenTelemetry.Trace;

namespace OtelThreadContext.Benchmarks;

/// <summary>
/// The tracker's cost where users feel it: a whole ASP.NET Core request, in process
/// (<see cref="TestServer"/>, no sockets), traced by the OpenTelemetry SDK with ASP.NET Core
/// instrumentation, to a handler that awaits and resumes on the thread pool; without and with
/// <c>AddThreadContext</c>. Each invocation is <see cref="Requests"/> requests from
/// <see cref="Clients"/> concurrent clients, so figures are per request.
/// </summary>
public class AspNetCoreRequestBenchmarks
{
    /// <summary>Concurrent clients per invocation.</summary>
    public const int Clients = 4;

    /// <summary>Requests per invocation (all clients together).</summary>
    public const int Requests = 256;

    private readonly Task[] _clients = new Task[Clients];
    private WebApplication? _app;
    private HttpClient? _client;

    /// <summary>The service traced by the SDK, without thread context.</summary>
    [GlobalSetup(Target = nameof(Request))]
    public void SetupPlain() => Start(threadContext: false);

    /// <summary>The same service with <c>AddThreadContext</c>.</summary>
    [GlobalSetup(Target = nameof(RequestThreadContext))]
    public void SetupThreadContext() => Start(threadContext: true);

    /// <summary>Stops the service and its TracerProvider (which unpublishes and stops tracking).</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _client?.Dispose();
        _app?.StopAsync().GetAwaiter().GetResult();
        (_app as IDisposable)?.Dispose();
        _app = null;
    }

    /// <summary>Requests through the SDK-traced pipeline, no thread context.</summary>
    /// <returns>When all requests are done.</returns>
    [Benchmark(Baseline = true, OperationsPerInvoke = Requests)]
    public Task Request() => Run();

    /// <summary>The same requests with <c>AddThreadContext</c>: process context published,
    /// every switch of <c>Activity.Current</c> written to the thread's record.</summary>
    /// <returns>When all requests are done.</returns>
    [Benchmark(OperationsPerInvoke = Requests)]
    public Task RequestThreadContext() => Run();

    private Task Run()
    {
        for (int i = 0; i < Clients; i++)
        {
            _clients[i] = Client(_client!);
        }

        return Task.WhenAll(_clients);
    }

    private static async Task Client(HttpClient client)
    {
        for (int i = 0; i < Requests / Clients; i++)
        {
            using HttpResponseMessage r = await client.GetAsync("/orders/7").ConfigureAwait(false);
            if (!r.IsSuccessStatusCode)
            {
                throw new InvalidOperationException($"request failed: {r.StatusCode}");
            }
        }
    }

    private void Start(bool threadContext)
    {
        WebApplicationBuilder builder = WebApplication.CreateBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseTestServer();
        builder.Services.AddOpenTelemetry()
            .WithTracing(t =>
            {
                t.AddAspNetCoreInstrumentation();
                if (threadContext)
                {
                    t.AddThreadContext(o => o.ActivityTags.Add("http.route"));
                }
            });
        WebApplication app = builder.Build();
        app.MapGet("/orders/{id:int}", async (int id) =>
        {
            await Task.Yield();
            return Results.Text("ok");
        });
        app.StartAsync().GetAwaiter().GetResult();
        _app = app;
        _client = app.GetTestClient();

        // Warm the path once; with thread context, the provider has published by now.
        Run().GetAwaiter().GetResult();
        if (threadContext && !ProcessContext.IsPublished)
        {
            throw new InvalidOperationException("AddThreadContext did not publish the process context");
        }
    }

    /// <summary>
    /// The same comparison interleaved, as BenchmarkDotNet's sequential cases cannot be: in each
    /// round the service is started without and with <c>AddThreadContext</c> (alternating which
    /// goes first) and serves <paramref name="requestsPerRound"/> requests; time and allocated
    /// bytes per request are taken per round, so a change in the machine's load hits both modes
    /// alike. Writes one CSV line per round and mode to <paramref name="csvPath"/> and prints a
    /// summary: medians per mode and the median of the per-round ratios.
    /// </summary>
    /// <param name="rounds">Rounds (each runs both modes).</param>
    /// <param name="requestsPerRound">Requests per mode and round (a multiple of <see cref="Requests"/>).</param>
    /// <param name="csvPath">Where the per-round figures go.</param>
    public static void RunInterleaved(int rounds, int requestsPerRound, string csvPath)
    {
        int invocations = Math.Max(1, requestsPerRound / Requests);
        var lines = new List<string> { "round,mode,ns_per_request,bytes_per_request" };
        var ns = new Dictionary<bool, List<double>> { [false] = new(), [true] = new() };
        var bytes = new Dictionary<bool, List<double>> { [false] = new(), [true] = new() };
        for (int round = 0; round < rounds; round++)
        {
            foreach (bool threadContext in round % 2 == 0 ? new[] { false, true } : new[] { true, false })
            {
                var b = new AspNetCoreRequestBenchmarks();
                b.Start(threadContext);
                long allocated = GC.GetTotalAllocatedBytes(precise: true);
                var sw = Stopwatch.StartNew();
                for (int i = 0; i < invocations; i++)
                {
                    b.Run().GetAwaiter().GetResult();
                }

                sw.Stop();
                double perRequestBytes = (GC.GetTotalAllocatedBytes(precise: true) - allocated) / (double)(invocations * Requests);
                b.Cleanup();
                double perRequestNs = sw.Elapsed.TotalNanoseconds / (invocations * Requests);
                ns[threadContext].Add(perRequestNs);
                bytes[threadContext].Add(perRequestBytes);
                string mode = threadContext ? "RequestThreadContext" : "Request";
                lines.Add(string.Create(CultureInfo.InvariantCulture, $"{round},{mode},{perRequestNs:F1},{perRequestBytes:F1}"));
            }
        }

        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(csvPath))!);
        File.WriteAllLines(csvPath, lines);
        double[] ratios = ns[true].Zip(ns[false], (t, p) => t / p).ToArray();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"interleaved requests: {rounds} rounds x {invocations * Requests} requests per mode; median per request: " +
            $"{Median(ns[false]):F0} ns / {Median(bytes[false]):F0} B without, {Median(ns[true]):F0} ns / {Median(bytes[true]):F0} B with AddThreadContext; " +
            $"median per-round ratio {Median(ratios):F3} ({csvPath})"));
    }

    private static double Median(IEnumerable<double> values)
    {
        double[] v = values.OrderBy(x => x).ToArray();
        return v.Length == 0 ? double.NaN : v.Length % 2 == 1 ? v[v.Length / 2] : (v[(v.Length / 2) - 1] + v[v.Length / 2]) / 2;
    }
}
