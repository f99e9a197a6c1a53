using System;
using System.Collections.Generic;

namespace OtelThreadContext;

/// <summary>
/// The resource attributes <see cref="ProcessContext.Publish"/> and
/// <see cref="ProcessContext.Update"/> publish in the process context (OTEP 4719). The package
/// adds <c>telemetry.sdk.language = "dotnet"</c>; the native library adds
/// <c>telemetry.sdk.name</c> and <c>telemetry.sdk.version</c> (its own) unless
/// <see cref="ResourceAttributes"/> gives them.
/// </summary>
public sealed class ProcessContextOptions
{
    /// <summary>The <c>service.name</c> resource attribute; required and not empty.</summary>
    public required string ServiceName { get; init; }

    /// <summary>The <c>service.instance.id</c> resource attribute. When null (and
    /// <see cref="ResourceAttributes"/> does not give it), a random GUID string chosen once per
    /// process is published, the same for every publish and update.</summary>
    public string? ServiceInstanceId { get; init; }

    /// <summary>The <c>deployment.environment.name</c> resource attribute; not published when
    /// null.</summary>
    public string? DeploymentEnvironmentName { get; init; }

    /// <summary>The <c>service.version</c> resource attribute; not published when null.</summary>
    public string? ServiceVersion { get; init; }

    /// <summary>
    /// Further resource attributes, published after the ones above. A key that one of the
    /// properties above also sets must carry the same value; <c>telemetry.sdk.language</c>, if
    /// present, must be <c>dotnet</c>. Keys must not be empty; keys and values must be
    /// well-formed UTF-16 without NUL characters. The dictionary is copied when published.
    /// </summary>
    public IReadOnlyDictionary<string, string>? ResourceAttributes { get; init; }

    /// <summary>
    /// Process-context attributes beside the resource (OTEP 4719 <c>ProcessContext.attributes</c>,
    /// for example <c>otel.instrumentations</c>), published after the library's own
    /// <c>threadlocal.*</c> entries. Values: <see cref="string"/>, <see cref="bool"/>, integers
    /// (as int64), <see cref="double"/>/<see cref="float"/>, or arrays of those. Keys must not be
    /// empty nor start with <c>threadlocal.</c>; text must be well-formed UTF-16 (keys also
    /// without NUL characters). Checked on every platform; copied when published.
    /// </summary>
    public IReadOnlyDictionary<string, object>? ContextAttributes { get; init; }

    /// <summary>The resource published exactly as given, or null for the properties above.</summary>
    internal List<KeyValuePair<string, object>>? ExactResource { get; private init; }

    /// <summary>
    /// Options that publish exactly <paramref name="resourceAttributes"/>, in order and with their
    /// types, as the resource: nothing is added (no <c>telemetry.sdk.*</c> defaults, no
    /// <c>service.instance.id</c>), so the process context carries the very resource an
    /// OpenTelemetry SDK exports. The typed properties above are not used; set
    /// <see cref="ContextAttributes"/> with an object initializer if needed.
    /// </summary>
    /// <param name="resourceAttributes">The attributes: non-empty distinct keys without NUL
    /// characters, values as for <see cref="ContextAttributes"/>; a <c>service.name</c> string is
    /// required. Copied and checked here.</param>
    /// <param name="contextAttributes">Optional <see cref="ContextAttributes"/>.</param>
    /// <returns>The options.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="resourceAttributes"/> is null.</exception>
    /// <exception cref="ArgumentException">An attribute is invalid (the message names it) or
    /// <c>service.name</c> is missing, empty or not a string.</exception>
    public static ProcessContextOptions FromResource(
        IEnumerable<KeyValuePair<string, object>> resourceAttributes,
        IReadOnlyDictionary<string, object>? contextAttributes = null)
    {
        ArgumentNullException.ThrowIfNull(resourceAttributes);
        var list = new List<KeyValuePair<string, object>>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (KeyValuePair<string, object> kv in resourceAttributes)
        {
            if (string.IsNullOrEmpty(kv.Key))
            {
                throw new ArgumentException("A resource attribute has an empty key.", nameof(resourceAttributes));
            }

            string what = $"Resource attribute \"{kv.Key}\"";
            if (kv.Key.Contains('\0', StringComparison.Ordinal))
            {
                throw new ArgumentException($"{what}: the key contains a NUL character.", nameof(resourceAttributes));
            }

            ProcessContextValues.CheckUtf16(kv.Key, what + " (the key)", nameof(resourceAttributes));
            if (!seen.Add(kv.Key))
            {
                throw new ArgumentException($"{what} is given twice.", nameof(resourceAttributes));
            }

            list.Add(new(kv.Key, ProcessContextValues.Normalize(kv.Value, what, nameof(resourceAttributes))));
        }

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
