using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Threading;

namespace OtelThreadContext;

/// <summary>
/// Keeps every thread's record equal to the <see cref="Activity.Current"/> visible on that
/// thread, so an out-of-process profiler sees the right span on every thread while async code
/// moves between threads. Opt in with one call:
/// <code>
/// using IDisposable tracking = ActivityThreadContext.Enable();
/// </code>
/// </summary>
/// <remarks>
/// <para>
/// A record is rewritten on its own thread when a span starts or stops
/// (<see cref="Activity.CurrentChanged"/>) and when the runtime switches the thread to another
/// <see cref="ExecutionContext"/> (await continuations, <c>Task.Run</c>, timers, a thread going
/// back to the pool), which that event misses: an <see cref="AsyncLocal{T}"/> kept equal to
/// <see cref="Activity.Current"/> gets its change handler called there. No current Activity, or
/// one whose ids are not W3C, is published as <see cref="ThreadContext.Clear"/>.
/// </para>
/// <para>
/// While tracking is on, the tracker owns the records' attributes: each switch replaces them
/// with those configured through <see cref="ActivityThreadContextOptions"/>.
/// <see cref="Enable()"/> is reference-counted; after the last handle is disposed nothing is
/// written (records keep what they held). A flow whose <see cref="ExecutionContext"/> was
/// captured before <see cref="Enable()"/> is published from its next span change. Where
/// <see cref="ThreadContext.IsSupported"/> is false, tracking never turns on.
/// </para>
/// </remarks>
public static class ActivityThreadContext
{
    private static readonly object s_gate = new();

    /// <summary>Undisposed handles (guarded by <see cref="s_gate"/>).</summary>
    private static readonly List<Handle> s_handles = new();

    /// <summary>
    /// Created on the first <see cref="Enable()"/> and kept for the process's lifetime: the
    /// runtime keeps calling a notifying local's handler, so it must outlive tracking (the handler
    /// checks <see cref="s_enabled"/>).
    /// </summary>
    private static AsyncLocal<Activity?>? s_flow;

    private static volatile bool s_enabled;

    /// <summary>The attributes of every undisposed handle, replaced as a whole.</summary>
    private static volatile AttributeRule[] s_attributes = Array.Empty<AttributeRule>();

    private static readonly EventHandler<ActivityChangedEventArgs> s_onCurrentChanged = OnCurrentChanged;

    /// <summary>True while at least one handle returned by <see cref="Enable()"/> is undisposed
    /// (never on platforms where <see cref="ThreadContext.IsSupported"/> is false).</summary>
    public static bool IsEnabled => s_enabled;

    /// <summary>
    /// Turns tracking on (or keeps it on): from now on every thread's record follows the
    /// <see cref="Activity.Current"/> visible on it. The calling thread's record is written at
    /// once.
    /// </summary>
    /// <returns>A handle; disposing it turns tracking off when no other handle is undisposed.</returns>
    /// <exception cref="DllNotFoundException">The native library could not be loaded (thrown here
    /// rather than later on some other thread).</exception>
    public static IDisposable Enable() => Enable(null);

    /// <summary>
    /// Turns tracking on (or keeps it on) and adds the attributes of
    /// <paramref name="options"/> to those written at every switch, until the returned handle is
    /// disposed. See <see cref="Enable()"/>.
    /// </summary>
    /// <param name="options">Attributes to write from each thread's current Activity; null for none.
    /// The options are copied: later changes to them have no effect on this handle.</param>
    /// <returns>A handle; disposing it removes its attributes and turns tracking off when no other
    /// handle is undisposed.</returns>
    /// <exception cref="DllNotFoundException">The native library could not be loaded.</exception>
    public static IDisposable Enable(ActivityThreadContextOptions? options)
    {
        if (!ThreadContext.IsSupported)
        {
            return new Handle(Array.Empty<AttributeRule>());
        }

        var handle = new Handle(options?.Snapshot() ?? Array.Empty<AttributeRule>());
        lock (s_gate)
        {
            s_handles.Add(handle);
            s_attributes = Collect();
            if (!s_enabled)
            {
                AsyncLocal<Activity?> flow = s_flow ??= new AsyncLocal<Activity?>(OnFlowChanged);
                Activity.CurrentChanged += s_onCurrentChanged;
                s_enabled = true;

                // Bring the calling thread in step now; this is also the first write on this
                // thread, so a missing native library is reported to the caller.
                try
                {
                    flow.Value = Activity.Current;
                    Publish(Activity.Current);
                }
                catch
                {
                    Activity.CurrentChanged -= s_onCurrentChanged;
                    s_enabled = false;
                    s_handles.Remove(handle);
                    s_attributes = Collect();
                    throw;
                }
            }
        }

        return handle;
    }

    private static void Release(Handle handle)
    {
        lock (s_gate)
        {
            if (!s_handles.Remove(handle))
            {
                return;
            }

            s_attributes = Collect();
            if (s_handles.Count == 0 && s_enabled)
            {
                s_enabled = false;
                Activity.CurrentChanged -= s_onCurrentChanged;
            }
        }
    }

    private static AttributeRule[] Collect()
    {
        var all = new List<AttributeRule>();
        foreach (Handle h in s_handles)
        {
            all.AddRange(h.Attributes);
        }

        return all.ToArray();
    }

    /// <summary>
    /// A span started or stopped, or <see cref="Activity.Current"/> was assigned, on this thread:
    /// keep the notifying local equal to it. Assigning a different value calls
    /// <see cref="OnFlowChanged"/> at once on this thread, which writes the record.
    /// </summary>
    private static void OnCurrentChanged(object? sender, ActivityChangedEventArgs e)
    {
        AsyncLocal<Activity?>? flow = s_flow;
        if (!s_enabled || flow is null)
        {
            return;
        }

        try
        {
            if (ReferenceEquals(flow.Value, e.Current))
            {
                // No change notification will come (for example after enabling while this
                // span was already current): write directly.
                Publish(e.Current);
            }
            else
            {
                flow.Value = e.Current;
            }
        }
        catch (Exception)
        {
            // Never fail the code that started or stopped a span; the record keeps its last
            // consistent state.
        }
    }

    /// <summary>
    /// The notifying local changed on this thread: either assigned (from
    /// <see cref="OnCurrentChanged"/>), or the runtime switched this thread to another
    /// execution context (an await resuming here, a work item starting or ending). The thread's
    /// execution context is already the new one, so <see cref="Activity.Current"/> is what this
    /// thread now runs.
    /// </summary>
    private static void OnFlowChanged(AsyncLocalValueChangedArgs<Activity?> args)
    {
        if (!s_enabled)
        {
            return;
        }

        // An exception escaping a change handler terminates the process; none may escape.
        // On a context switch, Activity.Current already reads the entered context. On an
        // assignment the new value is the Activity that just became current.
        try
        {
            Publish(args.ThreadContextChanged ? Activity.Current : args.CurrentValue);
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

        if (!ThreadContext.SetWithoutAttributes(activity.TraceId, activity.SpanId, activity.ActivityTraceFlags))
        {
            return;
        }

        // Each attribute looks the record up again: a rule's callback may run any code,
        // including a handle swap on this thread.
        AttributeRule[] rules = s_attributes;
        foreach (AttributeRule rule in rules)
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

    private sealed class Handle : IDisposable
    {
        private int _disposed;

        public Handle(AttributeRule[] attributes) => Attributes = attributes;

        public AttributeRule[] Attributes { get; }

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                Release(this);
            }
        }
    }
}

/// <summary>
/// What <see cref="ActivityThreadContext.Enable(ActivityThreadContextOptions)"/> writes besides
/// trace id, span id and flags: attributes computed from each thread's current
/// <see cref="Activity"/> at every switch.
/// </summary>
public sealed class ActivityThreadContextOptions
{
    private readonly List<ActivityThreadContext.AttributeRule> _attributes = new();

    /// <summary>
    /// Writes attribute <paramref name="keyIndex"/> with the value <paramref name="value"/>
    /// returns for the thread's current Activity (nothing when it returns null or throws).
    /// It runs at every switch, on the switching thread, so keep it cheap and allocation-free,
    /// for example <c>a =&gt; a.GetTagItem("http.route") as string</c>.
    /// </summary>
    /// <param name="keyIndex">Index of the attribute's name in the process context's
    /// <c>threadlocal.attribute_key_map</c>.</param>
    /// <param name="value">Computes the value from the current Activity.</param>
    /// <returns>These options, for chaining.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="value"/> is null.</exception>
    public ActivityThreadContextOptions AddAttribute(byte keyIndex, Func<Activity, string?> value)
    {
        ArgumentNullException.ThrowIfNull(value);
        _attributes.Add(new ActivityThreadContext.AttributeRule(keyIndex, value));
        return this;
    }

    /// <summary>
    /// Writes the attribute <paramref name="key"/> (declared with
    /// <see cref="ProcessContext.DeclareKey"/>) with the value <paramref name="value"/> returns
    /// for the thread's current Activity; see <see cref="AddAttribute(byte, Func{Activity, string})"/>.
    /// </summary>
    /// <param name="key">A declared key.</param>
    /// <param name="value">Computes the value from the current Activity.</param>
    /// <returns>These options, for chaining.</returns>
    /// <exception cref="ArgumentException"><paramref name="key"/> is <c>default</c>, not a declared key.</exception>
    /// <exception cref="ArgumentNullException"><paramref name="value"/> is null.</exception>
    public ActivityThreadContextOptions AddAttribute(ThreadAttributeKey key, Func<Activity, string?> value)
    {
        if (!key.IsDeclared)
        {
            throw new ArgumentException("Not a declared key: use ProcessContext.DeclareKey.", nameof(key));
        }

        return AddAttribute(key.Index, value);
    }

    internal ActivityThreadContext.AttributeRule[] Snapshot() => _attributes.ToArray();
}
