using System;
using System.Collections.Generic;

namespace OtelThreadContext;

/// <summary>The resource attributes <see cref="ProcessContext.Publish"/> publishes; the package adds
/// <c>telemetry.sdk.language</c>, the native library <c>telemetry.sdk.name</c>/<c>version</c> unless given.</summary>
public sealed class ProcessContextOptions
{
    /// <summary>The <c>service.name</c> resource attribute; required and not empty.</summary>
    public required string ServiceName { get; init; }

    /// <summary>The <c>service.instance.id</c>; when null (and not in <see cref="ResourceAttributes"/>),
    /// a random GUID chosen once per process.</summary>
    public string? ServiceInstanceId { get; init; }

    /// <summary>The <c>deployment.environment.name</c> resource attribute; left out when null.</summary>
    public string? DeploymentEnvironmentName { get; init; }

    /// <summary>The <c>service.version</c> resource attribute; left out when null.</summary>
    public string? ServiceVersion { get; init; }

    /// <summary>Further resource attributes, after the ones above; a key they also set must carry
    /// the same value. Keys must not contain NUL characters; a lone surrogate is published as U+FFFD.</summary>
    public IReadOnlyDictionary<string, string>? ResourceAttributes { get; init; }

    /// <summary>Process-context attributes beside the resource (for example <c>otel.instrumentations</c>):
    /// strings, booleans, integers, floating-point numbers or arrays of them; no <c>threadlocal.</c> keys.</summary>
    public IReadOnlyDictionary<string, object>? ContextAttributes { get; init; }

    /// <summary>The resource published exactly as given, or null for the properties above.</summary>
    internal List<KeyValuePair<string, object>>? ExactResource { get; private init; }

    /// <summary>
    /// Options that publish <paramref name="resourceAttributes"/> (copied here; with a <c>service.name</c>
    /// string), in order and typed: the very resource an OpenTelemetry SDK exports, to which the native
    /// library adds only a missing <c>telemetry.sdk.name</c> or <c>version</c>; <paramref name="contextAttributes"/>
    /// as <see cref="ContextAttributes"/>.
    /// </summary>
    /// <exception cref="ArgumentException">A value has a type the process context cannot carry (the message
    /// names it) or there is no <c>service.name</c> string; the keys are checked when published.</exception>
    public static ProcessContextOptions FromResource(
        IEnumerable<KeyValuePair<string, object>> resourceAttributes,
        IReadOnlyDictionary<string, object>? contextAttributes = null)
    {
        ArgumentNullException.ThrowIfNull(resourceAttributes);
        List<KeyValuePair<string, object>> list = ProcessContextValues.CheckAttributes(
            resourceAttributes, "The resource", nameof(resourceAttributes));
        string? serviceName = list.Find(kv => kv.Key == "service.name").Value as string;
        if (string.IsNullOrEmpty(serviceName))
        {
            throw new ArgumentException("The resource has no service.name string.", nameof(resourceAttributes));
        }

        return new ProcessContextOptions
        {
            ServiceName = serviceName,
            ExactResource = list,
            ContextAttributes = contextAttributes,
        };
    }
}
