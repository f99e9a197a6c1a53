using System.Collections.Generic;

namespace OtelThreadContext.OpenTelemetry;

/// <summary>Options of <c>TracerProviderBuilder.AddThreadContext</c>.</summary>
public sealed class ThreadContextOptions
{
    /// <summary>Activity tags (for example <c>http.route</c>) each thread's record carries from its
    /// current Activity, as thread attributes of the same name (non-strings in invariant text).</summary>
    public IList<string> ActivityTags { get; } = new List<string>();

    /// <summary>Whether the provider publishes the process context from its Resource (default true);
    /// off when the application publishes its own with <see cref="ProcessContext.Publish"/>.</summary>
    public bool PublishProcessContext { get; set; } = true;

    /// <summary>Process-context attributes beside the Resource; see
    /// <see cref="ProcessContextOptions.ContextAttributes"/>.</summary>
    public IDictionary<string, object> ContextAttributes { get; } = new Dictionary<string, object>();
}
