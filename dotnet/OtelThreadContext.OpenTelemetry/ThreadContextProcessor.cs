using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using OpenTelemetry;

namespace OtelThreadContext.OpenTelemetry;

/// <summary><c>AddThreadContext</c>'s part of the provider: tracking from construction to shutdown, and
/// the process context published from the provider's Resource once the provider has one.</summary>
/// <remarks>The SDK sets <see cref="BaseProcessor{T}.ParentProvider"/> at the end of the build, with no
/// "built" callback: the first of a short poll for it and the first <see cref="OnStart"/> publishes.</remarks>
internal sealed class ThreadContextProcessor : BaseProcessor<Activity>
{
    /// <summary>How long the poll waits for a parent provider (a build that threw never sets one).</summary>
    private static readonly TimeSpan s_waitLimit = TimeSpan.FromMinutes(1);

    private readonly Dictionary<string, object> _contextAttributes;
    private readonly object _lock = new();
    private IDisposable? _tracking;
    private IDisposable? _publication;

    /// <summary>Published, failed or stopped: nothing left to publish. Set under the lock.</summary>
    private volatile bool _settled;

    public ThreadContextProcessor(ThreadContextOptions options)
    {
        _settled = !options.PublishProcessContext;
        _contextAttributes = new Dictionary<string, object>(options.ContextAttributes, StringComparer.Ordinal);

        var tracking = new ActivityThreadContextOptions();
        foreach (string tag in options.ActivityTags)
        {
            try
            {
                ThreadAttributeKey key = ProcessContext.DeclareKey(tag);
                tracking.AddAttribute(key, a => a.GetTagItem(tag) is { } v ? Convert.ToString(v, CultureInfo.InvariantCulture) : null);
            }
            catch (Exception e) when (e is ArgumentException or InvalidOperationException or IOException)
            {
                ThreadContextEventSource.Log.TagKeyFailed(tag ?? "(null)", e.Message);
            }
        }

        try
        {
            _tracking = ActivityThreadContext.Enable(tracking);
            if (ThreadContext.IsSupported && !ThreadContext.SelfCheck(out string problem))
            {
                ThreadContextEventSource.Log.SelfCheckFailed(problem);
            }
        }
        catch (Exception e)
        {
            // A missing native library, for example: the provider is built without tracking.
            ThreadContextEventSource.Log.TrackingFailed($"{e.GetType().Name}: {e.Message}");
        }

        if (!_settled)
        {
            using (ExecutionContext.SuppressFlow())
            {
                _ = Task.Run(WaitForProviderAsync);
            }
        }
    }

    public override void OnStart(Activity data)
    {
        // Publishes, or waits for the publish under way on another thread.
        if (!_settled)
        {
            TryPublish();
        }
    }

    protected override bool OnShutdown(int timeoutMilliseconds)
    {
        Stop();
        return true;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            Stop();
        }

        base.Dispose(disposing);
    }

    private async Task WaitForProviderAsync()
    {
        var waited = Stopwatch.StartNew();
        int delay = 1;
        while (ParentProvider is null && !_settled && waited.Elapsed < s_waitLimit)
        {
            await Task.Delay(delay).ConfigureAwait(false);
            delay = Math.Min(delay * 2, 50);
        }

        TryPublish();
    }

    private void Stop()
    {
        lock (_lock)
        {
            _settled = true;
            _tracking?.Dispose();
            _tracking = null;
            if (_publication is not null)
            {
                try
                {
                    _publication.Dispose();
                    ThreadContextEventSource.Log.Unpublished();
                }
                catch (Exception e)
                {
                    ThreadContextEventSource.Log.PublishFailed("Unpublishing failed: " + e.Message);
                }

                _publication = null;
            }
        }
    }

    /// <summary>Publishes the provider's Resource once; never throws.</summary>
    private void TryPublish()
    {
        if (ParentProvider is not { } provider)
        {
            return;
        }

        lock (_lock)
        {
            if (_settled)
            {
                return;
            }

            try
            {
                // The SDK's Resource holds only values the process context carries (strings, booleans, longs,
                // doubles and arrays of them); anything else fails the publish below, and it is logged.
                var attributes = provider.GetResource().Attributes.ToList();
                ProcessContextOptions options = ProcessContextOptions.FromResource(attributes, _contextAttributes);
                if (ProcessContext.IsPublished)
                {
                    ThreadContextEventSource.Log.AlreadyPublished();
                }
                else
                {
                    _publication = ProcessContext.PublishScoped(options);
                    ThreadContextEventSource.Log.Published(options.ServiceName, attributes.Count);
                }
            }
            catch (Exception e)
            {
                // Bad input or no mapping: logged; the app goes on without a process context.
                ThreadContextEventSource.Log.PublishFailed($"{e.GetType().Name}: {e.Message}");
            }

            _settled = true;
        }
    }
}
