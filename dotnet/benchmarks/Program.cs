using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Exporters;
using BenchmarkDotNet.Exporters.Csv;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Perfolizer.Horology;
using Perfolizer.Metrology;

namespace OtelThreadContext.Benchmarks;

/// <summary>
/// Entry point. Options of its own: <c>--smoke</c> (one invocation per benchmark: proves they
/// run, measures nothing), <c>--artifacts DIR</c>, <c>--request-rounds ROUNDS REQUESTS</c>
/// (first the interleaved request comparison of <see cref="AspNetCoreRequestBenchmarks"/>) and
/// <c>--socket-rounds ROUNDS REQUESTS</c> (then the one over sockets, <see cref="SocketRequestBenchmarks"/>).
/// Other arguments go to BenchmarkDotNet
/// (e.g. <c>--filter *Write*</c>); without <c>--filter</c> every benchmark runs.
/// </summary>
public static class Program
{
    /// <summary>Runs the benchmarks; returns non-zero when one failed or produced no result.</summary>
    /// <param name="args">Command-line arguments.</param>
    /// <returns>The process exit code.</returns>
    public static int Main(string[] args)
    {
        var rest = new List<string>(args);
        bool smoke = rest.Remove("--smoke");
        string artifacts = "BenchmarkDotNet.Artifacts";
        int at = rest.IndexOf("--artifacts");
        if (at >= 0 && at + 1 < rest.Count)
        {
            artifacts = rest[at + 1];
            rest.RemoveRange(at, 2);
        }

        // The interleaved request comparison (AspNetCoreRequestBenchmarks.RunInterleaved): rounds
        // and requests per round; one small round in smoke mode.
        int roundsAt = rest.IndexOf("--request-rounds");
        if (roundsAt >= 0 && roundsAt + 2 < rest.Count)
        {
            int rounds = int.Parse(rest[roundsAt + 1], CultureInfo.InvariantCulture);
            int perRound = int.Parse(rest[roundsAt + 2], CultureInfo.InvariantCulture);
            rest.RemoveRange(roundsAt, 3);
            AspNetCoreRequestBenchmarks.RunInterleaved(
                smoke ? 1 : rounds, smoke ? AspNetCoreRequestBenchmarks.Requests : perRound, System.IO.Path.Combine(artifacts, "requests-interleaved.csv"));
        }

        // The same over Kestrel and loopback sockets: rounds and requests per mode and round.
        int socketAt = rest.IndexOf("--socket-rounds");
        if (socketAt >= 0 && socketAt + 2 < rest.Count)
        {
            int rounds = int.Parse(rest[socketAt + 1], CultureInfo.InvariantCulture);
            int perRound = int.Parse(rest[socketAt + 2], CultureInfo.InvariantCulture);
            rest.RemoveRange(socketAt, 3);
            SocketRequestBenchmarks.Run(smoke ? 1 : rounds, smoke ? 4 * SocketRequestBenchmarks.Clients : perRound, artifacts);
        }

        if (!rest.Contains("--filter"))
        {
            rest.AddRange(["--filter", "*"]);
        }

        IEnumerable<Summary> summaries = BenchmarkSwitcher
            .FromAssembly(typeof(Program).Assembly)
            .Run([.. rest], CreateConfig(smoke, artifacts));
        bool failed = !summaries.Any() || summaries.Any(s => s.HasCriticalValidationErrors || s.Reports.Any(r => !r.Success));
        return failed ? 1 : 0;
    }

    private static ManualConfig CreateConfig(bool smoke, string artifacts)
    {
        // In-process, and three launches (each on a fresh thread) because figures shift between
        // launches on the shared VM: see docs/benchmarks.md ("How it runs").
        Job job = smoke
            ? Job.Dry
            : Job.Default
                .WithLaunchCount(3)
                .WithWarmupCount(5)
                .WithIterationCount(10)
                .WithIterationTime(TimeInterval.FromMilliseconds(250));
        job = job.WithToolchain(InProcessEmitToolchain.Instance).WithId(smoke ? "Smoke" : "Bench");

        SummaryStyle style = SummaryStyle.Default
            .WithTimeUnit(TimeUnit.Nanosecond)
            .WithSizeUnit(SizeUnit.B);

        return ManualConfig.CreateEmpty()
            .AddJob(job)
            .AddColumnProvider(DefaultColumnProviders.Instance)
            .AddColumn(StatisticColumn.Median)
            .AddDiagnoser(MemoryDiagnoser.Default)
            .AddLogger(BenchmarkDotNet.Loggers.ConsoleLogger.Default)
            .AddExporter(MarkdownExporter.GitHub)
            .AddExporter(new CsvExporter(
                CsvSeparator.Comma,
                new SummaryStyle(CultureInfo.InvariantCulture, printUnitsInHeader: true, SizeUnit.B, TimeUnit.Nanosecond, printUnitsInContent: false)))
            .AddValidator(DefaultConfig.Instance.GetValidators().ToArray())
            .AddAnalyser(DefaultConfig.Instance.GetAnalysers().ToArray())
            .WithSummaryStyle(style)
            .WithArtifactsPath(artifacts);
    }
}
