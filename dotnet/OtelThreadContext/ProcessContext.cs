using System;
using System.Collections.Generic;
using System.Collections.ObjectModel;
using System.ComponentModel;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;
using System.Threading;

namespace OtelThreadContext;

/// <summary>Publishes this process's context (OTEP 4719) where an out-of-process profiler finds it: the
/// resource attributes and the thread attribute key map (<c>threadlocal.attribute_key_map</c>).</summary>
/// <remarks>One per process. Where <see cref="ThreadContext.IsSupported"/> is false, arguments
/// are checked, nothing is published and <see cref="DeclareKey"/> still hands out indexes.</remarks>
public static unsafe class ProcessContext
{
    /// <summary>Most keys the map can hold: a record's key index is one byte.</summary>
    internal const int MaxKeys = 256;

    private static readonly object s_lock = new();

    /// <summary>The <c>service.instance.id</c> published when none is given, fixed per process.</summary>
    private static readonly string s_defaultInstanceId = Guid.NewGuid().ToString();

    private static readonly List<ThreadAttributeKey> s_keys = new();
    private static volatile ReadOnlyCollection<ThreadAttributeKey> s_keysView = new(Array.Empty<ThreadAttributeKey>());

    /// <summary>What is published (null when nothing is), sent again when a key is declared.</summary>
    private static volatile Content? s_resource;

    /// <summary>Counts publishes, so a <see cref="PublishScoped"/> handle unpublishes only its own.</summary>
    private static long s_generation;

    /// <summary>Every declared key, in index order (a snapshot).</summary>
    public static IReadOnlyList<ThreadAttributeKey> Keys => s_keysView;

    /// <summary>True between a successful <see cref="Publish"/> and <see cref="Unpublish"/>.</summary>
    public static bool IsPublished => s_resource != null;

    /// <summary>Returns the key for <paramref name="name"/>: its index in the process's one append-only key map,
    /// kept by the native library for every writer in the process (C code, other copies of this assembly),
    /// appended if new; a published context, whoever published it, is published again to show it.</summary>
    /// <returns>The key, whose <see cref="ThreadAttributeKey.Index"/> is the name's position in the map.</returns>
    /// <exception cref="ArgumentException">The name is empty or not valid text, or the context
    /// would grow past 64 KiB.</exception>
    /// <exception cref="InvalidOperationException">The process's key map already holds 256 keys.</exception>
    /// <exception cref="DllNotFoundException">The native library could not be loaded.</exception>
    public static ThreadAttributeKey DeclareKey(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (name.Length == 0)
        {
            throw new ArgumentException("An attribute key name must not be empty.", nameof(name));
        }

        ProcessContextValues.CheckText(name, "The attribute key name", nameof(name));
        lock (s_lock)
        {
            int found = s_keys.FindIndex(k => k.Name == name);
            if (found >= 0)
            {
                return s_keys[found];
            }

            if (!ThreadContext.IsSupported && s_keys.Count >= MaxKeys)
            {
                throw KeyMapFull(name);
            }

            var key = new ThreadAttributeKey(name, ThreadContext.IsSupported ? DeclareNative(name) : (byte)s_keys.Count);
            s_keys.Add(key);
            s_keysView = new ReadOnlyCollection<ThreadAttributeKey>([.. s_keys.OrderBy(k => k.Index)]);
            return key;
        }
    }

    private static byte DeclareNative(string name)
    {
        byte[] key = new byte[Encoding.UTF8.GetByteCount(name) + 1];
        Encoding.UTF8.GetBytes(name, key);
        byte index;
        OtelProcessCtxStatus status;
        try
        {
            fixed (byte* k = key)
            {
                status = NativeMethods.otel_process_ctx_declare_key(k, &index);
            }
        }
        catch (DllNotFoundException e)
        {
            throw NativeLibraryErrors.Missing(e);
        }

        return status switch
        {
            OtelProcessCtxStatus.Ok => index,
            OtelProcessCtxStatus.TooManyAttributeKeys => throw KeyMapFull(name),
            _ => throw ToException(status, 0, $"Declaring attribute key \"{name}\""),
        };
    }

    /// <summary>Chooses the <c>threadlocal.schema_version</c> name the process writes, for readers that know OTEP
    /// 4947's pending rename (<c>tls_v1</c>): by default <c>tlsdesc_v1_dev</c>, the only name readers accept today,
    /// or the <c>OTEL_THREAD_CTX_SCHEMA_VERSION</c> environment variable. A published context is published again.</summary>
    /// <exception cref="ArgumentException">The name is empty, over 64 bytes, or not printable ASCII.</exception>
    /// <exception cref="DllNotFoundException">The native library could not be loaded.</exception>
    public static void SetSchemaVersion(string version)
    {
        ArgumentNullException.ThrowIfNull(version);
        if (!ThreadContext.IsSupported)
        {
            return;
        }

        byte[] text = new byte[Encoding.UTF8.GetByteCount(version) + 1];
        Encoding.UTF8.GetBytes(version, text);
        OtelProcessCtxStatus status;
        lock (s_lock)
        {
            try
            {
                fixed (byte* v = text)
                {
                    status = NativeMethods.otel_process_ctx_set_schema_version(v);
                }
            }
            catch (DllNotFoundException e)
            {
                throw NativeLibraryErrors.Missing(e);
            }
        }

        if (status != OtelProcessCtxStatus.Ok)
        {
            throw ToException(status, 0, $"Choosing schema version \"{version}\"");
        }
    }

    private static InvalidOperationException KeyMapFull(string name) => new(
        $"Cannot declare attribute key \"{name}\": the process's key map already holds {MaxKeys} keys, the most a " +
        "thread record's one-byte key index can name.");

    /// <summary>Publishes the resource attributes of <paramref name="options"/>,
    /// <c>telemetry.sdk.language = "dotnet"</c> and the declared keys.</summary>
    /// <exception cref="ArgumentException">An attribute is invalid or the context is past 64 KiB.</exception>
    /// <exception cref="InvalidOperationException">A context is already published: use <see cref="Update"/>;
    /// or another library's <c>OTEL_CTX</c> mapping is in the process (one process context per process).</exception>
    /// <exception cref="IOException">The <c>OTEL_CTX</c> mapping could not be made (OS error inside).</exception>
    /// <exception cref="DllNotFoundException">The native library could not be loaded.</exception>
    public static void Publish(ProcessContextOptions options) => Send(options, update: false);

    /// <summary>Publishes like <see cref="Publish"/>; disposing the handle unpublishes this context
    /// unless it was already unpublished.</summary>
    /// <exception cref="InvalidOperationException">A context is already published, here or by another library.</exception>
    public static IDisposable PublishScoped(ProcessContextOptions options) => new Publication(Send(options, update: false));

    /// <summary>Replaces the published resource attributes (the key map stays); readers see the
    /// old or the new context, and a refused update leaves the old one.</summary>
    /// <exception cref="ArgumentException">As for <see cref="Publish"/>.</exception>
    /// <exception cref="InvalidOperationException">No context is published.</exception>
    /// <exception cref="IOException">The new payload could not be mapped.</exception>
    public static void Update(ProcessContextOptions options) => Send(options, update: true);

    /// <summary>Publishes or updates; returns a publish's generation (0 for an update or where unsupported).</summary>
    private static long Send(ProcessContextOptions options, bool update)
    {
        Content resource = BuildResource(options);
        if (!ThreadContext.IsSupported)
        {
            return 0;
        }

        lock (s_lock)
        {
            if (IsPublished != update)
            {
                throw new InvalidOperationException(update
                    ? "No process context is published: call ProcessContext.Publish first."
                    : "The process context is already published (one per process): use ProcessContext.Update to change it.");
            }

            CallNative(update, resource, update ? "Updating the process context" : "Publishing the process context");
            s_resource = resource;
            return update ? 0 : ++s_generation;
        }
    }

    private sealed class Publication(long generation) : IDisposable
    {
        private long _generation = generation;

        public void Dispose()
        {
            long generation = Interlocked.Exchange(ref _generation, 0);
            lock (s_lock)
            {
                if (generation != 0 && IsPublished && s_generation == generation)
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
            if (!IsPublished)
            {
                return;
            }

            OtelProcessCtxStatus status = NativeMethods.otel_process_ctx_unpublish();
            s_resource = null;
            if (status != OtelProcessCtxStatus.Ok && status != OtelProcessCtxStatus.NotPublished)
            {
                throw ToException(status, 0, "Unpublishing the process context");
            }
        }
    }

    /// <summary>The exception for a refused native call: bad input is an
    /// <see cref="ArgumentException"/>, a failed mapping an <see cref="IOException"/>.</summary>
    internal static Exception ToException(OtelProcessCtxStatus status, int errno, string operation)
    {
        string message = $"{operation} failed ({status.CName()})";
        return status switch
        {
            OtelProcessCtxStatus.MappingFailed => new IOException(
                $"{message}: the OTEL_CTX mapping could not be made or named: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno}).",
                new Win32Exception(errno)),
            OtelProcessCtxStatus.PayloadTooLarge => new ArgumentException(message + ": the context is larger than the 64 KiB readers accept."),
            OtelProcessCtxStatus.OtherContextPublished => new InvalidOperationException(
                $"{message}: another OTEL_CTX mapping is already in this process (another library published a process " +
                "context). There is one process context per process, so this one was not published."),
            OtelProcessCtxStatus.InvalidUtf8 or OtelProcessCtxStatus.EmptyResourceKey or OtelProcessCtxStatus.DuplicateResourceKey
                or OtelProcessCtxStatus.EmptyAttributeKey or OtelProcessCtxStatus.DuplicateAttributeKey
                or OtelProcessCtxStatus.TooManyAttributeKeys or OtelProcessCtxStatus.InvalidValue
                or OtelProcessCtxStatus.InvalidContextAttribute or OtelProcessCtxStatus.InvalidSchemaVersion => new ArgumentException(message + "."),
            _ => new InvalidOperationException(message + "."),
        };
    }

    /// <summary>The header's name for <paramref name="status"/>, e.g. <c>OTEL_PROCESS_CTX_STATUS_INVALID_UTF8</c>.</summary>
    internal static string CName(this OtelProcessCtxStatus status) => Enum.IsDefined(status)
        ? "OTEL_PROCESS_CTX_STATUS_" + Regex.Replace(status.ToString(), "(?<=.)(?=[A-Z])", "_").ToUpperInvariant()
        : $"process status {(int)status}";

    /// <summary>The resource to publish, checked and copied: the typed options, <c>telemetry.sdk.language</c>,
    /// then <see cref="ProcessContextOptions.ResourceAttributes"/> (or the exact resource).</summary>
    internal static Content BuildResource(ProcessContextOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        List<KeyValuePair<string, object>> contextAttributes = options.ContextAttributes is { } given
            ? ProcessContextValues.CheckAttributes(given, "ProcessContextOptions.ContextAttributes", nameof(options), "threadlocal.")
            : new();
        if (options.ExactResource is { } exact)
        {
            return new Content(exact, contextAttributes, Exact: true);
        }

        if (string.IsNullOrEmpty(options.ServiceName))
        {
            throw new ArgumentException("ProcessContextOptions.ServiceName must not be empty.", nameof(options));
        }

        var list = new List<KeyValuePair<string, object>>();
        var origin = new Dictionary<string, string>(StringComparer.Ordinal);
        void Add(string key, string? value, string source)
        {
            if (value is null)
            {
                return;
            }

            ProcessContextValues.CheckText(value, source, nameof(options));
            if (origin.TryAdd(key, source))
            {
                list.Add(new(key, value));
            }
            else if (list.Find(kv => kv.Key == key).Value is var first && !value.Equals(first))
            {
                throw new ArgumentException($"{source} = \"{value}\" conflicts with {origin[key]} = \"{first}\".", nameof(options));
            }
        }

        Add("service.name", options.ServiceName, "ProcessContextOptions.ServiceName");
        Add("service.instance.id", options.ServiceInstanceId, "ProcessContextOptions.ServiceInstanceId");
        Add("deployment.environment.name", options.DeploymentEnvironmentName, "ProcessContextOptions.DeploymentEnvironmentName");
        Add("service.version", options.ServiceVersion, "ProcessContextOptions.ServiceVersion");
        Add("telemetry.sdk.language", "dotnet", "the OtelThreadContext package");
        const string Extra = "ProcessContextOptions.ResourceAttributes";
        IEnumerable<KeyValuePair<string, object>> extra = (options.ResourceAttributes ?? new Dictionary<string, string>())
            .Select(kv => new KeyValuePair<string, object>(kv.Key, kv.Value));
        foreach ((string key, object value) in ProcessContextValues.CheckAttributes(extra, Extra, nameof(options)))
        {
            Add(key, (string)value, $"{Extra}[\"{key}\"]");
        }

        if (!origin.ContainsKey("service.instance.id"))
        {
            list.Insert(1, new("service.instance.id", s_defaultInstanceId));
        }

        return new Content(list, contextAttributes, Exact: false);
    }

    /// <summary>What one publish or update sends; an exact resource gets no SDK defaults.</summary>
    internal sealed record Content(
        List<KeyValuePair<string, object>> Resource, List<KeyValuePair<string, object>> Attributes, bool Exact);

    /// <summary>Publishes or updates <paramref name="content"/> (unless exact, with the library's
    /// <c>telemetry.sdk.name</c>/<c>version</c> where not given) and an empty key map, which keeps the process's
    /// (the declared keys are in it); caller holds the lock.</summary>
    private static void CallNative(bool update, Content content, string operation)
    {
        OtelProcessCtxStatus status;
        int errno;
        try
        {
            List<KeyValuePair<string, object>> resource = new(content.Resource);
            if (!content.Exact)
            {
                string version = Marshal.PtrToStringUTF8((nint)NativeMethods.otel_thread_ctx_version())!;
                KeyValuePair<string, object>[] defaults = [new("telemetry.sdk.name", "otel-thread-ctx"), new("telemetry.sdk.version", version)];
                resource.AddRange(defaults.Where(d => !content.Resource.Exists(kv => kv.Key == d.Key)));
            }

            status = ProcessContextValues.Call(update, resource, content.Attributes, [], out errno);
        }
        catch (DllNotFoundException e)
        {
            throw NativeLibraryErrors.Missing(e);
        }

        if (status == OtelProcessCtxStatus.NotPublished)
        {
            // Native code unpublished behind this class's back.
            s_resource = null;
        }

        if (status != OtelProcessCtxStatus.Ok)
        {
            throw ToException(status, errno, operation);
        }
    }
}
