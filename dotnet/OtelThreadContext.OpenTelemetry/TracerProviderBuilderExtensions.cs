using System;
using OtelThreadContext.OpenTelemetry;

namespace OpenTelemetry.Trace;

/// <summary>Adds OtelThreadContext to an OpenTelemetry .NET <see cref="TracerProviderBuilder"/>.</summary>
public static class ThreadContextTracerProviderBuilderExtensions
{
    /// <summary>
    /// For the built provider's lifetime: publishes the process context (OTEP 4719) from the
    /// provider's own Resource (<c>TracerProvider.GetResource()</c>: every attribute with its type,
    /// exactly what the exporters send) and keeps each thread's record (OTEP 4947) equal to its
    /// <see cref="System.Diagnostics.Activity.Current"/>. Disposing the provider stops tracking
    /// and unpublishes.
    /// </summary>
    /// <remarks>
    /// <para>The context is published as soon as the provider is built (within milliseconds of
    /// <c>Build()</c>, and always before the provider records its first span).</para>
    /// <para>One process context per process: if one is already published (by
    /// <c>ProcessContext.Publish</c> or another provider), this provider leaves it and logs a
    /// warning; the first publisher keeps it. A <c>ProcessContext.Publish</c> after this
    /// provider's throws <see cref="InvalidOperationException"/>.</para>
    /// <para>Bad input never fails the build: a Resource attribute of a type the context cannot
    /// carry is left out (warning), and a context that cannot be published at all (past 64 KiB,
    /// text with no UTF-8 form, no mapping) is not published (error). Both are logged to the
    /// <c>OtelThreadContext-OpenTelemetry</c> EventSource.</para>
    /// </remarks>
    /// <param name="builder">The builder, from <c>Sdk.CreateTracerProviderBuilder()</c> or
    /// <c>services.AddOpenTelemetry().WithTracing(...)</c>.</param>
    /// <param name="configure">Sets <see cref="ThreadContextOptions"/>; called once, here.</param>
    /// <returns>The builder, for chaining.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="builder"/> is null.</exception>
    public static TracerProviderBuilder AddThreadContext(this TracerProviderBuilder builder, Action<ThreadContextOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var options = new ThreadContextOptions();
        configure?.Invoke(options);

        // The factory runs while the provider is being built, so the processor's wait for its
        // provider is short and a builder that is never built starts nothing.
        return builder.AddProcessor(_ => new ThreadContextProcessor(options));
    }
}
