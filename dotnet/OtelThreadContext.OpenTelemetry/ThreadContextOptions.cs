using System.Collections.Generic;

namespace OtelThreadContext.OpenTelemetry;

/// <summary>
/// Options of <c>TracerProviderBuilder.AddThreadContext</c>: which Activity tags become thread
/// attributes, and what goes into the process context beside the provider's Resource.
/// </summary>
public sealed class ThreadContextOptions
{
    /// <summary>
    /// Activity tag names whose values each thread's record carries while that Activity is the
    /// thread's current one, for example <c>http.route</c>. Each name becomes a key of
    /// <c>threadlocal.attribute_key_map</c> (declared with <see cref="ProcessContext.DeclareKey"/>),
    /// under the same name. String tags are written as they are, other values in their invariant
    /// text form; a tag the Activity lacks writes nothing.
    /// </summary>
    public IList<string> ActivityTags { get; } = new List<string>();

    /// <summary>
    /// Whether the provider publishes the process context from its Resource (default true). Turn
    /// it off when the application publishes its own with <see cref="ProcessContext.Publish"/>;
    /// tracking still runs.
    /// </summary>
    public bool PublishProcessContext { get; set; } = true;

    /// <summary>
    /// Process-context attributes beside the Resource (OTEP 4719 <c>ProcessContext.attributes</c>,
    /// for example <c>otel.instrumentations</c>); see
    /// <see cref="ProcessContextOptions.ContextAttributes"/> for the values taken.
    /// </summary>
    public IDictionary<string, object> ContextAttributes { get; } = new Dictionary<string, object>();
}
