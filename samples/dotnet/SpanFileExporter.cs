using System;
using System.Collections;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Text.Json;
using OpenTelemetry;
using OpenTelemetry.Resources;

namespace OtelSampleService;

/// <summary>
/// Logs every span the service exports, one line each:
/// <c>TRACE_ID SPAN_ID FLAGS START END KIND NAME</c> (ids in lowercase hex, flags as two hex
/// digits, start and end in seconds since the Unix epoch).
/// scripts/demo.sh compares what otel-ctx-dump reads from the running service with these lines.
/// With a resource file, it also writes the Resource the spans are exported with (the provider's,
/// as an OTLP exporter sends it) as one JSON object, typed values kept: the demo compares it,
/// attribute by attribute, with the process context read from outside.
/// </summary>
internal sealed class SpanFileExporter : BaseExporter<Activity>
{
    private readonly TextWriter _writer;
    private readonly string? _resourceFile;
    private long _exported;
    private bool _resourceWritten;

    public SpanFileExporter(TextWriter writer, string? resourceFile = null)
    {
        _writer = writer;
        _resourceFile = resourceFile;
    }

    /// <summary>Spans written so far.</summary>
    public long Exported => System.Threading.Interlocked.Read(ref _exported);

    public override ExportResult Export(in Batch<Activity> batch)
    {
        lock (_writer)
        {
            WriteResource();
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
            WriteResource();
            _writer.Flush();
        }

        return true;
    }

    /// <summary>Writes the exported Resource once, when the exporter first has a provider.</summary>
    private void WriteResource()
    {
        if (_resourceFile is null || _resourceWritten || ParentProvider is null)
        {
            return;
        }

        Resource resource = ParentProvider.GetResource();
        using (var json = new Utf8JsonWriter(File.Create(_resourceFile)))
        {
            json.WriteStartObject();
            foreach (KeyValuePair<string, object> kv in resource.Attributes)
            {
                json.WritePropertyName(kv.Key);
                WriteValue(json, kv.Value);
            }

            json.WriteEndObject();
        }

        _resourceWritten = true;
    }

    private static void WriteValue(Utf8JsonWriter json, object? value)
    {
        switch (value)
        {
            case null: json.WriteNullValue(); break;
            case string s: json.WriteStringValue(s); break;
            case bool b: json.WriteBooleanValue(b); break;
            case long or int: json.WriteNumberValue(Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture)); break;
            case double d: json.WriteRawValue(d.ToString("R", System.Globalization.CultureInfo.InvariantCulture) + (Math.Floor(d) == d ? ".0" : string.Empty)); break;
            case IEnumerable items:
                json.WriteStartArray();
                foreach (object? item in items)
                {
                    WriteValue(json, item);
                }

                json.WriteEndArray();
                break;
            default: json.WriteStringValue(value.ToString()); break;
        }
    }
}
