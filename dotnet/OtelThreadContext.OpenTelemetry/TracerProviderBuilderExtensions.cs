using System;
using OtelThreadContext.OpenTelemetry;

namespace OpenTelemetry.Trace;

/// <summary>Adds OtelThreadContext to an OpenTelemetry .NET <see cref="TracerProviderBuilder"/>.</summary>
public static class ThreadContextTracerProviderBuilderExtensions
{
    /// <summary>
    /// For the built provider's lifetime: publishes the process context (OTEP 4719) from the
    /// provider's Resource, exactly as exported, and keeps each thread's record (OTEP 4947) equal to
    /// its <see cref="System.Diagnostics.Activity.Current"/>. Disposing the provider undoes both.
    /// </summary>
    /// <remarks>A context already published is left as it is. Bad input never fails the build: it is
    /// logged to the <c>OtelThreadContext-OpenTelemetry</c> EventSource.</remarks>
    /// <param name="builder">The builder.</param>
    /// <param name="configure">Sets <see cref="ThreadContextOptions"/>; called once, here.</param>
    /// <returns>The builder.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="builder"/> is null.</exception>
    public static TracerProviderBuilder AddThreadContext(this TracerProviderBuilder builder, Action<ThreadContextOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var options = new ThreadContextOptions();
        configure?.Invoke(options);

        // The factory runs while the provider is built: a builder never built starts nothing.
        return builder.AddProcessor(_ => new ThreadContextProcessor(options));
    }
}
