using System.Diagnostics.Tracing;

namespace OtelThreadContext.OpenTelemetry;

/// <summary>What <c>AddThreadContext</c> did, as an <see cref="EventSource"/> like OpenTelemetry .NET's
/// own diagnostics: read it with dotnet-trace, an EventListener or OpenTelemetry's self-diagnostics.</summary>
[EventSource(Name = "OtelThreadContext-OpenTelemetry")]
internal sealed class ThreadContextEventSource : EventSource
{
    public static readonly ThreadContextEventSource Log = new();

    [Event(1, Level = EventLevel.Informational, Message = "Published the process context from the TracerProvider's Resource: service.name '{0}', {1} attributes.")]
    public void Published(string serviceName, int attributeCount) => WriteEvent(1, serviceName, attributeCount);

    [Event(3, Level = EventLevel.Warning, Message = "The process context is already published by another component (a manual ProcessContext.Publish or another TracerProvider); this provider leaves it as it is and does not publish its Resource. Thread tracking runs.")]
    public void AlreadyPublished() => WriteEvent(3);

    [Event(4, Level = EventLevel.Error, Message = "The process context could not be published from the TracerProvider's Resource; nothing is published and the provider works on. {0}")]
    public void PublishFailed(string reason) => WriteEvent(4, reason);

    [Event(5, Level = EventLevel.Error, Message = "Thread attribute for Activity tag '{0}' could not be declared and is not written: {1}")]
    public void TagKeyFailed(string tag, string reason) => WriteEvent(5, tag, reason);

    [Event(7, Level = EventLevel.Error, Message = "Activity tracking could not be turned on; the provider works on without it. {0}")]
    public void TrackingFailed(string reason) => WriteEvent(7, reason);

    [Event(8, Level = EventLevel.Error, Message = "Readers cannot find this process's thread records as they should; spans are written but a profiler may not see them, or may read another module's slot. {0}")]
    public void SelfCheckFailed(string reason) => WriteEvent(8, reason);

    [Event(6, Level = EventLevel.Informational, Message = "Unpublished the process context at TracerProvider shutdown.")]
    public void Unpublished() => WriteEvent(6);
}
