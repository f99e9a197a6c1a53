using System;
using System.Collections.Generic;
using System.Collections.ObjectModel;
using System.ComponentModel;
using System.IO;
using System.Runtime.InteropServices;
using System.Text;

namespace OtelThreadContext;

/// <summary>
/// Publishes this process's context (OpenTelemetry OTEP 4719) where an out-of-process profiler
/// finds it: the service's resource attributes and the thread attribute key map
/// (<c>threadlocal.attribute_key_map</c>) that names the key indexes thread records use.
/// </summary>
/// <remarks>
/// <para>
/// Declare every thread attribute once with <see cref="DeclareKey"/> and keep the returned
/// <see cref="ThreadAttributeKey"/>; <see cref="ThreadContext.SetAttribute(ThreadAttributeKey, ReadOnlySpan{char})"/>
/// writes its index without a lookup. The key map is process-wide and append-only: a name keeps
/// its index for the process's lifetime, and keys declared after <see cref="Publish"/> are
/// added to the published context at once. Publish before threads set attributes: a profiler
/// names thread attributes only once it has found the process context.
/// </para>
/// <para>
/// One context per process. The native library places it in a mapping named <c>OTEL_CTX</c>
/// (<c>/memfd:OTEL_CTX (deleted)</c> or <c>[anon:OTEL_CTX]</c> in <c>/proc/PID/maps</c>);
/// updates follow the spec's protocol, so a reader sees the old or the new context, never a mix.
/// </para>
/// <para>
/// Calls are rare and serialized by a lock. On platforms where
/// <see cref="ThreadContext.IsSupported"/> is false, <see cref="Publish"/>, <see cref="Update"/>
/// and <see cref="Unpublish"/> check their arguments and do nothing else
/// (<see cref="IsPublished"/> stays false), and <see cref="DeclareKey"/> still hands out
/// indexes, so the same code runs everywhere.
/// </para>
/// </remarks>
public static unsafe class ProcessContext
{
    /// <summary>Most keys the map can hold: a record's key index is one byte.</summary>
    internal const int MaxKeys = 256;

    internal const string TelemetrySdkLanguage = "dotnet";

    private static readonly object s_lock = new();

    /// <summary>UTF-8 that throws on lone surrogates instead of replacing them.</summary>
    private static readonly UTF8Encoding s_strictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>The <c>service.instance.id</c> published when none is given, fixed per process.</summary>
    private static readonly string s_defaultInstanceId = Guid.NewGuid().ToString();

    private static readonly List<ThreadAttributeKey> s_keys = new();
    private static readonly Dictionary<string, ThreadAttributeKey> s_keysByName = new(StringComparer.Ordinal);
    private static volatile ReadOnlyCollection<ThreadAttributeKey> s_keysView = new(Array.Empty<ThreadAttributeKey>());

    private static volatile bool s_published;

    /// <summary>The resource attributes last published, reused when a key is declared.</summary>
    private static List<KeyValuePair<string, string>>? s_resource;

    /// <summary>Every declared key, in index order (a snapshot; later declarations do not
    /// change a list already returned).</summary>
    public static IReadOnlyList<ThreadAttributeKey> Keys => s_keysView;

    /// <summary>True between a successful <see cref="Publish"/> and <see cref="Unpublish"/>
    /// (always false where <see cref="ThreadContext.IsSupported"/> is false).</summary>
    public static bool IsPublished => s_published;

    /// <summary>
    /// Returns the key for <paramref name="name"/>, appending the name to the process-wide key
    /// map if it is new. A name keeps its index for the process's lifetime; declaring it again
    /// returns the same key. If a context is published, it is updated so readers see the new key.
    /// </summary>
    /// <param name="name">The attribute's name, for example <c>http_route</c>: not empty,
    /// well-formed UTF-16, no NUL characters.</param>
    /// <returns>The key, whose <see cref="ThreadAttributeKey.Index"/> is the name's position in
    /// <c>threadlocal.attribute_key_map</c>.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="name"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="name"/> is empty or not valid text, or
    /// the published context would grow past the 64 KiB readers accept; the key is not
    /// declared.</exception>
    /// <exception cref="InvalidOperationException">256 keys are already declared.</exception>
    /// <exception cref="IOException">Updating the published context failed to map memory (the
    /// message gives the OS error); the key is not declared and the old context stays.</exception>
    public static ThreadAttributeKey DeclareKey(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (name.Length == 0)
        {
            throw new ArgumentException("An attribute key name must not be empty.", nameof(name));
        }

        CheckText(name, nameof(name), "The attribute key name");

        lock (s_lock)
        {
            if (s_keysByName.TryGetValue(name, out ThreadAttributeKey existing))
            {
                return existing;
            }

            if (s_keys.Count >= MaxKeys)
            {
                throw new InvalidOperationException(
                    $"Cannot declare attribute key \"{name}\": the key map already holds {MaxKeys} keys, the most a " +
                    "thread record's one-byte key index can name.");
            }

            var key = new ThreadAttributeKey(name, (byte)s_keys.Count);
            if (s_published)
            {
                var names = new List<string>(s_keys.Count + 1);
                foreach (ThreadAttributeKey k in s_keys)
                {
                    names.Add(k.Name);
                }

                names.Add(name);
                NativeProcessStatus status = CallNative(update: true, s_resource!, names, out int errno);
                if (status == NativeProcessStatus.NotPublished)
                {
                    // Native code unpublished behind this class's back: nothing to update.
                    s_published = false;
                    s_resource = null;
                }
                else if (status != NativeProcessStatus.Ok)
                {
                    throw ToException(status, errno, $"Declaring attribute key \"{name}\"");
                }
            }

            s_keys.Add(key);
            s_keysByName.Add(name, key);
            s_keysView = new ReadOnlyCollection<ThreadAttributeKey>(s_keys.ToArray());
            return key;
        }
    }

    /// <summary>
    /// Publishes the process context: the resource attributes of <paramref name="options"/>,
    /// <c>telemetry.sdk.language = "dotnet"</c>, and the keys declared so far (keys declared
    /// later are added as they are declared).
    /// </summary>
    /// <param name="options">The service's resource attributes.</param>
    /// <exception cref="ArgumentNullException"><paramref name="options"/> is null.</exception>
    /// <exception cref="ArgumentException">An attribute is invalid (empty
    /// <see cref="ProcessContextOptions.ServiceName"/> or key, conflicting values, invalid text,
    /// more than 64 KiB encoded); the message gives the reason. Checked on every platform.</exception>
    /// <exception cref="InvalidOperationException">A context is already published: use
    /// <see cref="Update"/>.</exception>
    /// <exception cref="IOException">The <c>OTEL_CTX</c> mapping could not be made or named; the
    /// message gives the OS error, the inner <see cref="Win32Exception"/> its errno.</exception>
    /// <exception cref="DllNotFoundException">The native library could not be loaded.</exception>
    public static void Publish(ProcessContextOptions options)
    {
        List<KeyValuePair<string, string>> resource = BuildResource(options);
        if (!ThreadContext.IsSupported)
        {
            return;
        }

        lock (s_lock)
        {
            if (s_published)
            {
                throw new InvalidOperationException(
                    "The process context is already published (one per process): use ProcessContext.Update to change it.");
            }

            NativeProcessStatus status = CallNative(update: false, resource, KeyNames(), out int errno);
            if (status != NativeProcessStatus.Ok)
            {
                throw ToException(status, errno, "Publishing the process context");
            }

            s_resource = resource;
            s_published = true;
        }
    }

    /// <summary>
    /// Replaces the published resource attributes with those of <paramref name="options"/>
    /// (the key map stays). Readers see the old or the new context, never a mix; a refused
    /// update leaves the old context published.
    /// </summary>
    /// <param name="options">The service's resource attributes.</param>
    /// <exception cref="ArgumentNullException"><paramref name="options"/> is null.</exception>
    /// <exception cref="ArgumentException">As for <see cref="Publish"/>.</exception>
    /// <exception cref="InvalidOperationException">No context is published.</exception>
    /// <exception cref="IOException">The new payload could not be mapped (OS error in the
    /// message).</exception>
    public static void Update(ProcessContextOptions options)
    {
        List<KeyValuePair<string, string>> resource = BuildResource(options);
        if (!ThreadContext.IsSupported)
        {
            return;
        }

        lock (s_lock)
        {
            if (!s_published)
            {
                throw new InvalidOperationException("No process context is published: call ProcessContext.Publish first.");
            }

            NativeProcessStatus status = CallNative(update: true, resource, KeyNames(), out int errno);
            if (status == NativeProcessStatus.NotPublished)
            {
                s_published = false;
                s_resource = null;
            }

            if (status != NativeProcessStatus.Ok)
            {
                throw ToException(status, errno, "Updating the process context");
            }

            s_resource = resource;
        }
    }

    /// <summary>
    /// Removes the published context (its mapping is unmapped). Does nothing if none is
    /// published. Declared keys stay declared, with their indexes, for a later
    /// <see cref="Publish"/>.
    /// </summary>
    public static void Unpublish()
    {
        if (!ThreadContext.IsSupported)
        {
            return;
        }

        lock (s_lock)
        {
            if (!s_published)
            {
                return;
            }

            NativeProcessStatus status = NativeMethods.otel_process_ctx_unpublish();
            s_published = false;
            s_resource = null;
            if (status != NativeProcessStatus.Ok && status != NativeProcessStatus.NotPublished)
            {
                throw ToException(status, 0, "Unpublishing the process context");
            }
        }
    }

    /// <summary>The exception for a refused native call.</summary>
    internal static Exception ToException(NativeProcessStatus status, int errno, string operation)
    {
        string reason = status switch
        {
            NativeProcessStatus.InvalidUtf8 => "a key or value is not valid UTF-8",
            NativeProcessStatus.EmptyResourceKey => "a resource attribute has an empty key",
            NativeProcessStatus.DuplicateResourceKey => "two resource attributes have the same key",
            NativeProcessStatus.EmptyAttributeKey => "an attribute key map entry is empty",
            NativeProcessStatus.DuplicateAttributeKey => "the attribute key map names the same key twice",
            NativeProcessStatus.TooManyAttributeKeys => $"the attribute key map has more than {MaxKeys} entries",
            NativeProcessStatus.KeyMapChanged => "the published attribute key map would lose or rename an index (it is append-only)",
            NativeProcessStatus.PayloadTooLarge => "the encoded context is larger than the 64 KiB readers accept",
            NativeProcessStatus.AlreadyPublished => "a process context is already published (one per process)",
            NativeProcessStatus.NotPublished => "no process context is published",
            NativeProcessStatus.MappingFailed => "the OTEL_CTX mapping could not be made or named",
            _ => $"the native library reported {status} ({(int)status})",
        };
        string message = $"{operation} failed: {reason} ({status.CName()}).";
        switch (status)
        {
            case NativeProcessStatus.InvalidUtf8:
            case NativeProcessStatus.EmptyResourceKey:
            case NativeProcessStatus.DuplicateResourceKey:
            case NativeProcessStatus.EmptyAttributeKey:
            case NativeProcessStatus.DuplicateAttributeKey:
            case NativeProcessStatus.TooManyAttributeKeys:
            case NativeProcessStatus.PayloadTooLarge:
                return new ArgumentException(message);
            case NativeProcessStatus.MappingFailed:
                return new IOException(
                    $"{operation} failed: the OTEL_CTX mapping could not be made or named: " +
                    $"{Marshal.GetPInvokeErrorMessage(errno)} (errno {errno}).",
                    new Win32Exception(errno));
            default:
                return new InvalidOperationException(message);
        }
    }

    /// <summary>The declared names in index order. Caller holds the lock.</summary>
    private static List<string> KeyNames()
    {
        var names = new List<string>(s_keys.Count);
        foreach (ThreadAttributeKey k in s_keys)
        {
            names.Add(k.Name);
        }

        return names;
    }

    /// <summary>
    /// The resource attributes to publish: the typed options, <c>telemetry.sdk.language</c>,
    /// then <see cref="ProcessContextOptions.ResourceAttributes"/>; a copy, checked.
    /// </summary>
    internal static List<KeyValuePair<string, string>> BuildResource(ProcessContextOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (string.IsNullOrEmpty(options.ServiceName))
        {
            throw new ArgumentException("ProcessContextOptions.ServiceName must not be empty.", nameof(options));
        }

        var list = new List<KeyValuePair<string, string>>();
        var origin = new Dictionary<string, (int Index, string Source)>(StringComparer.Ordinal);

        void AddTyped(string key, string? value, string source)
        {
            if (value is null)
            {
                return;
            }

            CheckText(value, nameof(options), source);
            origin.Add(key, (list.Count, source));
            list.Add(new(key, value));
        }

        AddTyped("service.name", options.ServiceName, "ProcessContextOptions.ServiceName");
        AddTyped("service.instance.id", options.ServiceInstanceId, "ProcessContextOptions.ServiceInstanceId");
        AddTyped("deployment.environment.name", options.DeploymentEnvironmentName, "ProcessContextOptions.DeploymentEnvironmentName");
        AddTyped("service.version", options.ServiceVersion, "ProcessContextOptions.ServiceVersion");
        AddTyped("telemetry.sdk.language", TelemetrySdkLanguage, "the OtelThreadContext package");

        if (options.ResourceAttributes is { } extra)
        {
            foreach (KeyValuePair<string, string> kv in extra)
            {
                if (string.IsNullOrEmpty(kv.Key))
                {
                    throw new ArgumentException("ProcessContextOptions.ResourceAttributes has an empty key.", nameof(options));
                }

                string source = $"ProcessContextOptions.ResourceAttributes[\"{kv.Key}\"]";
                if (kv.Value is null)
                {
                    throw new ArgumentException($"{source} is null.", nameof(options));
                }

                CheckText(kv.Key, nameof(options), source + " (the key)");
                CheckText(kv.Value, nameof(options), source);
                if (origin.TryGetValue(kv.Key, out var first))
                {
                    string firstValue = list[first.Index].Value;
                    if (!string.Equals(firstValue, kv.Value, StringComparison.Ordinal))
                    {
                        throw new ArgumentException(
                            $"{source} = \"{kv.Value}\" conflicts with {first.Source} = \"{firstValue}\".", nameof(options));
                    }

                    continue;
                }

                origin.Add(kv.Key, (list.Count, source));
                list.Add(kv);
            }
        }

        if (!origin.ContainsKey("service.instance.id"))
        {
            list.Insert(1, new("service.instance.id", s_defaultInstanceId));
        }

        return list;
    }

    /// <summary>Refuses text the native library cannot take as a NUL-terminated UTF-8 string.</summary>
    private static void CheckText(string text, string paramName, string what)
    {
        if (text.Contains('\0', StringComparison.Ordinal))
        {
            throw new ArgumentException($"{what} contains a NUL character.", paramName);
        }

        try
        {
            s_strictUtf8.GetByteCount(text);
        }
        catch (EncoderFallbackException e)
        {
            throw new ArgumentException($"{what} is not well-formed UTF-16 (a lone surrogate), so it has no UTF-8 form.", paramName, e);
        }
    }

    /// <summary>
    /// Calls <c>otel_process_ctx_publish</c> or <c>_update</c> with NUL-terminated UTF-8 copies of
    /// <paramref name="resource"/> and <paramref name="keys"/>.
    /// </summary>
    /// <remarks>
    /// All strings are encoded into one managed buffer and the pointer arrays are managed arrays,
    /// all pinned for the duration of the call only: the library copies what it keeps, and no
    /// native memory is allocated here, so nothing can leak if the call throws.
    /// </remarks>
    private static NativeProcessStatus CallNative(
        bool update, List<KeyValuePair<string, string>> resource, List<string> keys, out int errno)
    {
        int total = 0;
        foreach (KeyValuePair<string, string> kv in resource)
        {
            total += s_strictUtf8.GetByteCount(kv.Key) + 1 + s_strictUtf8.GetByteCount(kv.Value) + 1;
        }

        foreach (string k in keys)
        {
            total += s_strictUtf8.GetByteCount(k) + 1;
        }

        // Zero-filled, so every string is followed by its NUL terminator.
        byte[] text = new byte[total];
        var attributes = new NativeProcessAttribute[resource.Count];
        var keyPointers = new nint[keys.Count];
        try
        {
            fixed (byte* textStart = text)
            fixed (NativeProcessAttribute* attributesStart = attributes)
            fixed (nint* keysStart = keyPointers)
            {
                // Safety: every write below stays inside `text` (sized above from the same
                // strings and encoder) and the two pinned arrays; the pointers handed to the
                // native call stay valid until the `fixed` block ends, after the call returns.
                int pos = 0;
                for (int i = 0; i < resource.Count; i++)
                {
                    attributesStart[i].Key = textStart + pos;
                    pos += s_strictUtf8.GetBytes(resource[i].Key, new Span<byte>(textStart + pos, total - pos)) + 1;
                    attributesStart[i].Value = textStart + pos;
                    pos += s_strictUtf8.GetBytes(resource[i].Value, new Span<byte>(textStart + pos, total - pos)) + 1;
                }

                for (int i = 0; i < keys.Count; i++)
                {
                    keysStart[i] = (nint)(textStart + pos);
                    pos += s_strictUtf8.GetBytes(keys[i], new Span<byte>(textStart + pos, total - pos)) + 1;
                }

                NativeProcessStatus status = update
                    ? NativeMethods.otel_process_ctx_update(attributesStart, (nuint)resource.Count, (byte**)keysStart, (nuint)keys.Count)
                    : NativeMethods.otel_process_ctx_publish(attributesStart, (nuint)resource.Count, (byte**)keysStart, (nuint)keys.Count);
                errno = Marshal.GetLastPInvokeError();
                return status;
            }
        }
        catch (DllNotFoundException e)
        {
            throw NativeLibraryErrors.Missing(e);
        }
    }
}
