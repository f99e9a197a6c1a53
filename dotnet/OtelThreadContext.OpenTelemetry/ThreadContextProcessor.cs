using System;
using System.Collections;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Threading;
using System.Threading.Tasks;
using OpenTelemetry;
using OpenTelemetry.Resources;

namespace OtelThreadContext.OpenTelemetry;

/// <summary>
/// The provider's part of <c>AddThreadContext</c>: tracking from construction (inside the
/// provider's build) to shutdown, and the process context published from the provider's
/// Resource once the provider has one.
/// </summary>
/// <remarks>
/// The SDK gives a processor no call when its provider is finished; it sets
/// <see cref="BaseProcessor{T}.ParentProvider"/> after building the Resource, at the end of the
/// build. So the context is published by whichever comes first: a short poll for the parent
/// started here (typically done within milliseconds of <c>Build()</c>), or the first
/// <see cref="OnStart"/> (so no span is recorded before its process context exists).
/// </remarks>
internal sealed class ThreadContextProcessor : BaseProcessor<Activity>
{
    /// <summary>How long the poll waits for a parent provider (a build that threw never sets one).</summary>
    private static readonly TimeSpan s_waitLimit = TimeSpan.FromMinutes(1);

    private readonly bool _publish;
    private readonly Dictionary<string, object> _contextAttributes;
    private readonly object _lock = new();
    private IDisposable? _tracking;
    private IDisposable? _publication;
    private int _publishStarted;
    private volatile bool _publishDone;
    private bool _stopped;

    public ThreadContextProcessor(ThreadContextOptions options)
    {
        _publish = options.PublishProcessContext;
        _contextAttributes = new Dictionary<string, object>(options.ContextAttributes, StringComparer.Ordinal);

        var tracking = new ActivityThreadContextOptions();
        foreach (string tag in options.ActivityTags)
        {
            try
            {
                ThreadAttributeKey key = ProcessContext.DeclareKey(tag);
                tracking.AddAttribute(key, a => TagText(a.GetTagItem(tag)));
            }
            catch (Exception e) when (e is ArgumentException or InvalidOperationException or IOException)
            {
                ThreadContextEventSource.Log.TagKeyFailed(tag ?? "(null)", e.Message);
            }
        }

        try
        {
            _tracking = ActivityThreadContext.Enable(tracking);
        }
        catch (Exception e)
        {
            // A missing native library, for example: the provider is built without tracking.
            ThreadContextEventSource.Log.TrackingFailed($"{e.GetType().Name}: {e.Message}");
        }

        if (_publish)
        {
            using (ExecutionContext.SuppressFlow())
            {
                _ = Task.Run(WaitForProviderAsync);
            }
        }
    }

    /// <summary>True once a publish was attempted (successful or not); for tests.</summary>
    internal bool PublishAttempted => Volatile.Read(ref _publishStarted) != 0;

    public override void OnStart(Activity data)
    {
        // Until the context is published, a span start publishes it (or waits for the publish
        // under way on another thread), so no span is recorded before its process context.
        if (_publish && !_publishDone)
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

    private static string? TagText(object? value) => value switch
    {
        null => null,
        string s => s,
        _ => Convert.ToString(value, CultureInfo.InvariantCulture),
    };

    private async Task WaitForProviderAsync()
    {
        var waited = Stopwatch.StartNew();
        int delay = 1;
        while (ParentProvider is null && Volatile.Read(ref _publishStarted) == 0)
        {
            if (waited.Elapsed > s_waitLimit)
            {
                return;
            }

            await Task.Delay(delay).ConfigureAwait(false);
            delay = Math.Min(delay * 2, 50);
        }

        TryPublish();
    }

    private void Stop()
    {
        lock (_lock)
        {
            if (_stopped)
            {
                return;
            }

            _stopped = true;
            _publishStarted = 1;
            _publishDone = true;
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
            if (_stopped || Interlocked.Exchange(ref _publishStarted, 1) != 0)
            {
                return;
            }

            try
            {
                Publish(provider);
            }
            finally
            {
                _publishDone = true;
            }
        }
    }

    /// <summary>The publish itself; the caller holds the lock. Never throws.</summary>
    private void Publish(BaseProvider provider)
    {
        try
        {
            Resource resource = provider.GetResource();
            var attributes = new List<KeyValuePair<string, object>>();
            foreach (KeyValuePair<string, object> kv in resource.Attributes)
            {
                if (IsSupported(kv.Value))
                {
                    attributes.Add(kv);
                }
                else
                {
                    ThreadContextEventSource.Log.AttributeSkipped(kv.Key, kv.Value?.GetType().ToString() ?? "null");
                }
            }

            ProcessContextOptions options = ProcessContextOptions.FromResource(
                attributes, _contextAttributes.Count == 0 ? null : _contextAttributes);
            if (ProcessContext.IsPublished)
            {
                ThreadContextEventSource.Log.AlreadyPublished();
                return;
            }

            _publication = ProcessContext.PublishScoped(options);
            ThreadContextEventSource.Log.Published(options.ServiceName, attributes.Count);
        }
        catch (InvalidOperationException) when (ProcessContext.IsPublished)
        {
            ThreadContextEventSource.Log.AlreadyPublished();
        }
        catch (Exception e)
        {
            // Bad input (a payload past 64 KiB, text with no UTF-8 form, no service.name) or
            // no mapping: logged; the provider and the app go on without a process context.
            ThreadContextEventSource.Log.PublishFailed($"{e.GetType().Name}: {e.Message}");
        }
    }

    /// <summary>The value kinds the process context carries; others are skipped with a warning.</summary>
    internal static bool IsSupported(object? value) => value switch
    {
        string or bool or long or int or short or sbyte or byte or ushort or uint or double or float => true,
        ulong u => u <= long.MaxValue,
        Array a => IsSupportedArray(a),
        _ => false,
    };

    private static bool IsSupportedArray(IEnumerable items)
    {
        foreach (object? item in items)
        {
            if (item is not null && (item is Array || !IsSupported(item)))
            {
                return false;
            }
        }

        return true;
    }
}
