using System;
using System.Collections.Generic;
using System.ComponentModel;
using System.IO;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;

namespace OtelThreadContext;

/// <summary>Publishes this process's context (OTEP 4719) where an out-of-process profiler finds it: the
/// resource attributes and the thread attribute key map (<c>threadlocal.attribute_key_map</c>).</summary>
/// <remarks>One per process. The native library checks keys and sizes; where <see cref="ThreadContext.IsSupported"/>
/// is false nothing is published, only the value types are checked, and <see cref="DeclareKey"/> returns index 0.</remarks>
public static unsafe class ProcessContext
{
    private static readonly object s_lock = new();

    /// <summary>The <c>service.instance.id</c> published when none is given, fixed per process.</summary>
    private static readonly string s_defaultInstanceId = Guid.NewGuid().ToString();

    private static volatile bool s_published;

    /// <summary>Counts publishes, so a <see cref="PublishScoped"/> handle unpublishes only its own.</summary>
    private static long s_generation;

    /// <summary>True between a successful <see cref="Publish"/> and <see cref="Unpublish"/>.</summary>
    public static bool IsPublished => s_published;

    /// <summary>Returns the key for <paramref name="name"/>: its index in the process's one append-only key map,
    /// kept by the native library for every writer in the process (C code, other copies of this assembly),
    /// appended if new; a published context, whoever published it, is published again to show it.</summary>
    /// <returns>The key, whose <see cref="ThreadAttributeKey.Index"/> is the name's position in the map.</returns>
    /// <exception cref="ArgumentException">The name is empty or contains a NUL character, or the context
    /// would grow past 64 KiB.</exception>
    /// <exception cref="InvalidOperationException">The process's key map already holds 256 keys.</exception>
    /// <exception cref="DllNotFoundException">The native library could not be loaded.</exception>
    public static ThreadAttributeKey DeclareKey(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        ProcessContextValues.CheckText(name, "The attribute key name", nameof(name));
        byte index = 0;
        if (ThreadContext.IsSupported)
        {
            Check(NativeLibraryErrors.Call(() => ProcessContextValues.DeclareKey(name, out index)), 0, $"Declaring attribute key \"{name}\"");
        }

        return new ThreadAttributeKey(name, index);
    }

    /// <summary>Publishes the resource attributes of <paramref name="options"/>, <c>telemetry.sdk.language =
    /// "dotnet"</c> and the declared keys, or replaces the context published before: a profiler sees the old or the
    /// new one.</summary>
    /// <exception cref="ArgumentException">An attribute is invalid or the context is past 64 KiB (the message
    /// names the problem); the published context, if any, stays.</exception>
    /// <exception cref="InvalidOperationException">Another library's <c>OTEL_CTX</c> mapping is in the process
    /// (one process context per process).</exception>
    /// <exception cref="IOException">The <c>OTEL_CTX</c> mapping could not be made (OS error inside).</exception>
    /// <exception cref="DllNotFoundException">The native library could not be loaded.</exception>
    public static void Publish(ProcessContextOptions options) => Send(options);

    /// <summary>Publishes like <see cref="Publish"/>; disposing the handle unpublishes this context
    /// unless it was already unpublished or replaced since.</summary>
    /// <exception cref="InvalidOperationException">Another library published a context.</exception>
    public static IDisposable PublishScoped(ProcessContextOptions options) => new Publication(Send(options));

    /// <summary>Publishes or replaces; returns the publish's generation (0 where unsupported).</summary>
    private static long Send(ProcessContextOptions options)
    {
        (List<KeyValuePair<string, object>> resource, List<KeyValuePair<string, object>> attributes) = BuildResource(options);
        if (!ThreadContext.IsSupported)
        {
            return 0;
        }

        lock (s_lock)
        {
            int errno = 0;
            Check(NativeLibraryErrors.Call(() => ProcessContextValues.Publish(resource, attributes, out errno)), errno, "Publishing the process context");
            s_published = true;
            return ++s_generation;
        }
    }

    /// <remarks>A second Dispose finds its context unpublished (Unpublish does nothing) or replaced.</remarks>
    private sealed class Publication(long generation) : IDisposable
    {
        public void Dispose()
        {
            lock (s_lock)
            {
                if (s_generation == generation)
                {
                    Unpublish();
                }
            }
        }
    }

    /// <summary>Removes the published context, if any; declared keys keep their indexes.</summary>
    public static void Unpublish()
    {
        lock (s_lock)
        {
            if (IsPublished)
            {
                OtelThreadCtxStatus status = NativeMethods.otel_process_ctx_unpublish();
                s_published = false;
                Check(status == OtelThreadCtxStatus.NotPublished ? OtelThreadCtxStatus.Ok : status, 0, "Unpublishing the process context");
            }
        }
    }

    private static void Check(OtelThreadCtxStatus status, int errno, string operation)
    {
        if (status != OtelThreadCtxStatus.Ok)
        {
            throw ToException(status, errno, operation);
        }
    }

    /// <summary>The exception for a refused native call, naming the status (the header documents each): bad input
    /// is an <see cref="ArgumentException"/>, a failed mapping an <see cref="IOException"/>, anything else an
    /// <see cref="InvalidOperationException"/>.</summary>
    internal static Exception ToException(OtelThreadCtxStatus status, int errno, string operation)
    {
        string message = $"{operation} failed ({status.CName()})";
        return status switch
        {
            OtelThreadCtxStatus.MappingFailed => new IOException(
                $"{message}: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno}).", new Win32Exception(errno)),
            OtelThreadCtxStatus.OtherContextPublished => new InvalidOperationException(
                $"{message}: another library published a process context, and there is one process context per process."),
            OtelThreadCtxStatus.TooManyAttributeKeys => new InvalidOperationException($"{message}: the key map holds 256 keys."),
            OtelThreadCtxStatus.PayloadTooLarge => new ArgumentException($"{message}: the context would pass 64 KiB."),
            OtelThreadCtxStatus.InvalidUtf8 or OtelThreadCtxStatus.EmptyResourceKey or OtelThreadCtxStatus.DuplicateResourceKey
                or OtelThreadCtxStatus.EmptyAttributeKey or OtelThreadCtxStatus.DuplicateAttributeKey
                or OtelThreadCtxStatus.InvalidValue or OtelThreadCtxStatus.InvalidContextAttribute
                or OtelThreadCtxStatus.InvalidSchemaVersion => new ArgumentException(message + "."),
            _ => new InvalidOperationException(message + "."),
        };
    }

    /// <summary>The header's name for <paramref name="status"/>, e.g. <c>OTEL_THREAD_CTX_STATUS_INVALID_UTF8</c>.</summary>
    internal static string CName(this OtelThreadCtxStatus status) => Enum.IsDefined(status)
        ? "OTEL_THREAD_CTX_STATUS_" + Regex.Replace(status.ToString(), "(?<=.)(?=[A-Z])", "_").ToUpperInvariant()
        : $"status {(int)status}";

    /// <summary>The resource and context attributes to publish, copied: the typed options,
    /// <c>telemetry.sdk.language</c>, then <see cref="ProcessContextOptions.ResourceAttributes"/> (or the exact
    /// resource). The native library adds <c>telemetry.sdk.name</c> and <c>version</c> where not given.</summary>
    internal static (List<KeyValuePair<string, object>> Resource, List<KeyValuePair<string, object>> Attributes) BuildResource(
        ProcessContextOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        List<KeyValuePair<string, object>> contextAttributes = ProcessContextValues.CheckAttributes(
            options.ContextAttributes ?? new Dictionary<string, object>(), "ProcessContextOptions.ContextAttributes", nameof(options));
        if (options.ExactResource is { } exact)
        {
            return (exact, contextAttributes);
        }

        if (string.IsNullOrEmpty(options.ServiceName))
        {
            throw new ArgumentException("ProcessContextOptions.ServiceName must not be empty.", nameof(options));
        }

        var list = new List<KeyValuePair<string, object>>();
        void Add(string key, string? value)
        {
            // A key given twice with one value is published once; with two, the native library refuses it.
            if (value is not null && !list.Contains(new(key, value)))
            {
                list.Add(new(key, value));
            }
        }

        Add("service.name", options.ServiceName);
        Add("service.instance.id", options.ServiceInstanceId);
        Add("deployment.environment.name", options.DeploymentEnvironmentName);
        Add("service.version", options.ServiceVersion);
        Add("telemetry.sdk.language", "dotnet");
        foreach ((string key, string value) in options.ResourceAttributes ?? new Dictionary<string, string>())
        {
            Add(key, value);
        }

        if (!list.Exists(kv => kv.Key == "service.instance.id"))
        {
            list.Insert(1, new("service.instance.id", s_defaultInstanceId));
        }

        return (ProcessContextValues.CheckAttributes(list, "The resource", nameof(options)), contextAttributes);
    }
}
