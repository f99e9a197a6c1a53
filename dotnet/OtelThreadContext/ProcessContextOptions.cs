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
}
