// The .NET sample service: an ASP.NET Core minimal API traced with the OpenTelemetry SDK, whose
// threads publish the span they run for an out-of-process profiler.
//
//   OtelSampleService [--port N] [--spans FILE] [--resource FILE] [--load SECONDS] [--concurrency N]
//
// It listens on 127.0.0.1 only (port 0: any free port) and prints "listening URL pid PID" when it
// serves. Every exported span is logged to FILE (default: stdout); --resource writes the Resource
// the spans are exported with, as JSON. With --load it also drives
// itself over loopback with N concurrent clients for SECONDS (bounded), then stops, flushes the
// exporter and prints a summary; without it, it serves until Ctrl-C / SIGTERM.
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Net;
using System.Net.Http;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenTelemetry;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using OtelSampleService;

const string ServiceName = "otel-thread-ctx-dotnet-sample";
var options = SampleOptions.Parse(args);
var source = new ActivitySource("OtelSampleService");

// An ordinary OpenTelemetry setup, plus one line: AddThreadContext publishes the provider's own
// Resource as the process context (the same service.instance.id the spans carry) and keeps every
// thread's record equal to its Activity.Current, with the route and method tags as attributes.
// The exporter logs each span it exports, and the Resource it exports them with.
TextWriter spanLog = options.SpansFile is null ? Console.Out : new StreamWriter(options.SpansFile, append: false);
var exporter = new SpanFileExporter(spanLog, options.ResourceFile);
var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = Array.Empty<string>() });
builder.Logging.ClearProviders();
builder.Logging.AddSimpleConsole().SetMinimumLevel(LogLevel.Warning);
builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, options.Port));
builder.Services.AddOpenTelemetry()
    .ConfigureResource(r => r
        .AddService(ServiceName)
        .AddAttributes(new Dictionary<string, object>
        {
            ["deployment.environment.name"] = "example",
            ["sample.concurrency"] = (long)options.Concurrency,
            ["sample.routes"] = new[] { "/orders/{id}", "/search" },
        }))
    .WithTracing(t => t
        .AddSource(source.Name)
        .AddAspNetCoreInstrumentation()
        .AddThreadContext(o =>
        {
            o.ActivityTags.Add("http.route");
            o.ActivityTags.Add("http.request.method");
        })
        // A queue large enough that no span of the bounded load is dropped: the demo's check
        // looks up every span it reads in the exported log.
        .AddProcessor(new BatchActivityExportProcessor(
            exporter, maxQueueSize: 1 << 16, scheduledDelayMilliseconds: 200, maxExportBatchSize: 4096)));

var app = builder.Build();

// Handlers that move between threads while their span is current: a yield, a timer, work handed
// to the pool with Task.Run, and some CPU work in between (what a profiler would sample).
app.MapGet("/orders/{id:int}", async (int id) =>
{
    using Activity? span = source.StartActivity("load order", ActivityKind.Internal, default(ActivityContext),
        new ActivityTagsCollection { ["http.route"] = "/orders/{id}", ["order.id"] = id });
    Work.Spin(TimeSpan.FromMilliseconds(1));
    await Task.Yield();
    Work.Spin(TimeSpan.FromMilliseconds(1));
    await Task.Delay(2);
    int lines = await Task.Run(() => (int)(Work.Spin(TimeSpan.FromMilliseconds(2)) % 7) + (id % 5));
    Work.Spin(TimeSpan.FromMilliseconds(1));
    return Results.Text($"order {id}: {lines} lines\n");
});

app.MapGet("/search", async (string? q) =>
{
    using Activity? span = source.StartActivity("search", ActivityKind.Internal, default(ActivityContext),
        new ActivityTagsCollection { ["http.route"] = "/search" });
    int hits = 0;
    for (int i = 0; i < 3; i++)
    {
        hits += await Task.Run(async () =>
        {
            await Task.Yield();
            return (int)(Work.Spin(TimeSpan.FromMilliseconds(1)) % 3);
        });
        await Task.Delay(1);
    }

    return Results.Text($"search {q}: {hits} hits\n");
});

await app.StartAsync();
string url = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
Console.WriteLine($"listening {url} pid {Environment.ProcessId}");

if (options.LoadSeconds > 0)
{
    (long ok, long failed) = await Load.RunAsync(url, options.Concurrency, TimeSpan.FromSeconds(options.LoadSeconds));
    await app.StopAsync();
    await app.DisposeAsync();
    spanLog.Flush();
    Console.WriteLine($"load done: {ok} requests ok, {failed} failed, {exporter.Exported} spans exported");
    if (options.SpansFile is not null)
    {
        spanLog.Dispose();
    }

    return failed == 0 && ok > 0 ? 0 : 1;
}

await app.WaitForShutdownAsync();
await app.DisposeAsync();
spanLog.Flush();
return 0;

namespace OtelSampleService
{
    internal sealed record SampleOptions(int Port, string? SpansFile, string? ResourceFile, int LoadSeconds, int Concurrency)
    {
        public static SampleOptions Parse(string[] args)
        {
            var o = new SampleOptions(0, null, null, 0, 8);
            for (int i = 0; i < args.Length; i++)
            {
                string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
                o = args[i] switch
                {
                    "--port" => o with { Port = int.Parse(Next()) },
                    "--spans" => o with { SpansFile = Next() },
                    "--resource" => o with { ResourceFile = Next() },
                    "--load" => o with { LoadSeconds = Math.Clamp(int.Parse(Next()), 1, 120) },
                    "--concurrency" => o with { Concurrency = Math.Clamp(int.Parse(Next()), 1, 64) },
                    _ => throw new ArgumentException($"unknown argument {args[i]}"),
                };
            }

            return o;
        }
    }

    internal static class Work
    {
        /// <summary>Busy for about <paramref name="duration"/>; returns a value so it is not optimised away.</summary>
        public static long Spin(TimeSpan duration)
        {
            long x = 0;
            var sw = Stopwatch.StartNew();
            while (sw.Elapsed < duration)
            {
                x = unchecked((x * 31) + sw.ElapsedTicks);
            }

            return x & 0xffff;
        }
    }

    internal static class Load
    {
        /// <summary>Concurrent clients on loopback, until <paramref name="duration"/> has passed.</summary>
        public static async Task<(long Ok, long Failed)> RunAsync(string baseUrl, int concurrency, TimeSpan duration)
        {
            using var client = new HttpClient { BaseAddress = new Uri(baseUrl), Timeout = TimeSpan.FromSeconds(10) };
            long ok = 0;
            long failed = 0;
            var until = Stopwatch.StartNew();
            async Task Client(int n)
            {
                for (int i = 0; until.Elapsed < duration; i++)
                {
                    string path = i % 3 == 2 ? $"/search?q=c{n}-{i}" : $"/orders/{(n * 1000) + i}";
                    try
                    {
                        using HttpResponseMessage r = await client.GetAsync(path);
                        Interlocked.Increment(ref r.IsSuccessStatusCode ? ref ok : ref failed);
                    }
                    catch (HttpRequestException)
                    {
                        Interlocked.Increment(ref failed);
                    }
                }
            }

            await Task.WhenAll(Enumerable.Range(0, concurrency).Select(Client));
            return (ok, failed);
        }
    }
}
