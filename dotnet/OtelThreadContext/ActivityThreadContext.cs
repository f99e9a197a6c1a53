using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Threading;

namespace OtelThreadContext;

/// <summary>Keeps every thread's record equal to the <see cref="Activity.Current"/> visible on that thread,
/// across span starts and stops and async switches: <c>using IDisposable t = ActivityThreadContext.Enable();</c></summary>
/// <remarks>No Activity, or a non-W3C one, is written as <see cref="ThreadContext.Clear"/>. While on,
/// the tracker owns the records' attributes.</remarks>
public static class ActivityThreadContext
{
    private static readonly object s_gate = new();

    /// <summary>Undisposed handles (guarded by <see cref="s_gate"/>).</summary>
    private static readonly List<Handle> s_handles = new();

    /// <summary>Kept equal to <see cref="Activity.Current"/>; never replaced, as the runtime keeps
    /// calling its handler (which checks <see cref="s_enabled"/>).</summary>
    /// <remarks>Assigned at every change, a span's start and its stop: two contexts whose spans differ
    /// must hold different values, or a switch between them is not reported (assigning at starts only
    /// misses work that outlives its span: FloorDesignTests in the Activity tests).</remarks>
    private static readonly AsyncLocal<Activity?> s_flow = new(OnFlowChanged);

    private static volatile bool s_enabled;

    /// <summary>The attributes of every undisposed handle, replaced as a whole.</summary>
    private static volatile AttributeRule[] s_attributes = Array.Empty<AttributeRule>();

    /// <summary>True while a handle returned by <see cref="Enable"/> is undisposed (never where
    /// <see cref="ThreadContext.IsSupported"/> is false).</summary>
    public static bool IsEnabled => s_enabled;

    /// <summary>Turns tracking on (reference-counted); the calling thread's record is written at once, and
    /// the attributes of <paramref name="options"/> (copied) at every switch until the handle is disposed.</summary>
    /// <param name="options">Attributes to write from each thread's current Activity; null for none.</param>
    /// <returns>A handle; disposing the last one stops every write (records keep what they held).</returns>
    /// <exception cref="DllNotFoundException">The native library could not be loaded.</exception>
    public static IDisposable Enable(ActivityThreadContextOptions? options = null)
    {
        if (!ThreadContext.IsSupported)
        {
            return new Handle(Array.Empty<AttributeRule>());
        }

        var handle = new Handle(options?.Snapshot() ?? Array.Empty<AttributeRule>());
        lock (s_gate)
        {
            bool first = !s_enabled;
            s_handles.Add(handle);
            Apply();
            if (first)
            {
                // The calling thread now: a missing native library is reported to the caller.
                try
                {
                    s_flow.Value = Activity.Current;
                    Publish(Activity.Current);
                }
                catch
                {
                    s_handles.Remove(handle);
                    Apply();
                    throw;
                }
            }
        }

        return handle;
    }

    /// <summary>Brings attributes and the event subscription in line with the undisposed handles.
    /// Caller holds <see cref="s_gate"/>.</summary>
    private static void Apply()
    {
        s_attributes = s_handles.SelectMany(h => h.Attributes).ToArray();
        bool enable = s_handles.Count > 0;
        if (enable && !s_enabled)
        {
            Activity.CurrentChanged += OnCurrentChanged;
        }
        else if (!enable && s_enabled)
        {
            Activity.CurrentChanged -= OnCurrentChanged;
        }

        s_enabled = enable;
    }

    /// <summary><see cref="Activity.Current"/> changed on this thread: keep the local equal to it;
    /// assigning a different value calls <see cref="OnFlowChanged"/> here, which writes the record.</summary>
    private static void OnCurrentChanged(object? sender, ActivityChangedEventArgs e) =>
        // Equal already (enabled while this span was current): no notification will come, so write directly.
        TryPublish(e.Current, assign: !ReferenceEquals(s_flow.Value, e.Current));

    /// <summary>The local changed on this thread: assigned by <see cref="OnCurrentChanged"/>, or the
    /// runtime switched the thread to another execution context (already entered).</summary>
    private static void OnFlowChanged(AsyncLocalValueChangedArgs<Activity?> args) =>
        TryPublish(args.ThreadContextChanged ? Activity.Current : args.CurrentValue, assign: false);

    /// <summary>While enabled, assigns the local (<paramref name="assign"/>) or calls <see cref="Publish"/>, never
    /// throwing: an exception escaping a change handler terminates the process, and none may fail the code that
    /// started or stopped a span.</summary>
    private static void TryPublish(Activity? activity, bool assign)
    {
        if (!s_enabled)
        {
            return;
        }

        try
        {
            if (assign)
            {
                s_flow.Value = activity;
            }
            else
            {
                Publish(activity);
            }
        }
        catch (Exception)
        {
        }
    }

    /// <summary>Writes <paramref name="activity"/> (or "no span") into the calling thread's record.</summary>
    private static void Publish(Activity? activity)
    {
        if (activity is null || activity.IdFormat != ActivityIdFormat.W3C)
        {
            ThreadContext.Clear();
            return;
        }

        ThreadContext.SetActivityIds(activity.TraceId, activity.SpanId, activity.ActivityTraceFlags, clearAttributes: true);

        // Each attribute looks the record up again: a callback may swap handles on this thread.
        foreach (AttributeRule rule in s_attributes)
        {
            string? value;
            try
            {
                value = rule.Value(activity);
            }
            catch (Exception)
            {
                continue;
            }

            if (value is not null)
            {
                ThreadContext.SetAttribute(rule.KeyIndex, value.AsSpan());
            }
        }
    }

    /// <summary>One attribute written at every switch.</summary>
    internal readonly record struct AttributeRule(byte KeyIndex, Func<Activity, string?> Value);

    private sealed class Handle(AttributeRule[] attributes) : IDisposable
    {
        public AttributeRule[] Attributes => attributes;

        public void Dispose()
        {
            lock (s_gate)
            {
                if (s_handles.Remove(this))
                {
                    Apply();
                }
            }
        }
    }
}

/// <summary>Attributes <see cref="ActivityThreadContext.Enable"/>
/// computes from each thread's current <see cref="Activity"/> at every switch.</summary>
public sealed class ActivityThreadContextOptions
{
    private readonly List<ActivityThreadContext.AttributeRule> _attributes = new();

    /// <summary>Writes the declared attribute <paramref name="key"/> with what <paramref name="value"/> returns
    /// (nothing for null or a throw); it runs at every switch, so keep it cheap.</summary>
    /// <exception cref="ArgumentException"><paramref name="key"/> is <c>default</c>, not a declared key.</exception>
    /// <exception cref="ArgumentNullException"><paramref name="value"/> is null.</exception>
    public ActivityThreadContextOptions AddAttribute(ThreadAttributeKey key, Func<Activity, string?> value)
    {
        ArgumentNullException.ThrowIfNull(value);
        _attributes.Add(new ActivityThreadContext.AttributeRule(key.DeclaredIndex, value));
        return this;
    }

    internal ActivityThreadContext.AttributeRule[] Snapshot() => _attributes.ToArray();
}
