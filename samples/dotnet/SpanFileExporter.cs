using System;
using System.Diagnostics;
using System.IO;
using OpenTelemetry;

namespace OtelSampleService;

/// <summary>
/// Logs every span the service exports, one line each:
/// <c>TRACE_ID SPAN_ID FLAGS START END KIND NAME</c> (ids in lowercase hex, flags as two hex
/// digits, start and end in seconds since the Unix epoch).
/// scripts/demo.sh compares what otel-ctx-dump reads from the running service with these lines.
/// </summary>
internal sealed class SpanFileExporter : BaseExporter<Activity>
{
    private readonly TextWriter _writer;
    private long _exported;

    public SpanFileExporter(TextWriter writer) => _writer = writer;

    /// <summary>Spans written so far.</summary>
    public long Exported => System.Threading.Interlocked.Read(ref _exported);

    public override ExportResult Export(in Batch<Activity> batch)
    {
        lock (_writer)
        {
            foreach (Activity span in batch)
            {
                double start = (span.StartTimeUtc - DateTime.UnixEpoch).TotalSeconds;
                double end = start + span.Duration.TotalSeconds;
                _writer.WriteLine(FormattableString.Invariant(
                    $"{span.TraceId} {span.SpanId} {(byte)span.ActivityTraceFlags:x2} {start:F6} {end:F6} {span.Kind} {span.DisplayName}"));
                _exported++;
            }

            _writer.Flush();
        }

        return ExportResult.Success;
    }

    protected override bool OnShutdown(int timeoutMilliseconds)
    {
        lock (_writer)
        {
            _writer.Flush();
        }

        return true;
    }
}
