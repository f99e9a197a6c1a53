using System;
using System.Collections;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Runtime.InteropServices;
using System.Text;

namespace OtelThreadContext;

/// <summary>The checks on process-context text and typed values (OTLP AnyValue: string, bool, int64,
/// double, flat arrays of them), and their encoding into the native structs.</summary>
internal static unsafe class ProcessContextValues
{
    /// <summary>UTF-8 that throws on lone surrogates instead of replacing them.</summary>
    private static readonly UTF8Encoding s_strictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>Refuses text with no UTF-8 form (a lone surrogate) and, unless
    /// <paramref name="allowNul"/>, text the library cannot take NUL-terminated.</summary>
    internal static void CheckText(string text, string what, string paramName, bool allowNul = false)
    {
        if (!allowNul && text.Contains('\0', StringComparison.Ordinal))
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

    /// <summary>Typed attributes, checked and copied: keys not empty, given once, valid text, not starting
    /// with <paramref name="reservedPrefix"/>; values as <see cref="Normalize"/> makes them.</summary>
    internal static List<KeyValuePair<string, object>> CheckAttributes(
        IEnumerable<KeyValuePair<string, object>> given, string what, string paramName, string? reservedPrefix = null)
    {
        var list = new List<KeyValuePair<string, object>>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (KeyValuePair<string, object> kv in given)
        {
            if (string.IsNullOrEmpty(kv.Key))
            {
                throw new ArgumentException($"{what} has an empty key.", paramName);
            }

            string item = $"{what}[\"{kv.Key}\"]";
            if (reservedPrefix is not null && kv.Key.StartsWith(reservedPrefix, StringComparison.Ordinal))
            {
                throw new ArgumentException(
                    $"{item}: keys starting with \"{reservedPrefix}\" are written by the library itself.", paramName);
            }

            CheckText(kv.Key, item + " (the key)", paramName);
            if (!seen.Add(kv.Key))
            {
                throw new ArgumentException($"{item} is given twice.", paramName);
            }

            list.Add(new(kv.Key, Normalize(kv.Value, item, paramName)));
        }

        return list;
    }

    /// <summary>The value as the payload carries it: string, bool, long (every integer type that fits),
    /// double (and float), or an <c>object?[]</c> of those (null elements become empty values).</summary>
    internal static object Normalize(object? value, string what, string paramName) =>
        NormalizeScalar(value, what, paramName) ?? value switch
        {
            null => throw new ArgumentException($"{what} is null.", paramName),
            IList items => items.Cast<object?>().Select((item, i) => item is null ? null : NormalizeScalar(item, $"{what}[{i}]", paramName)
                ?? throw new ArgumentException(
                    $"{what}[{i}] is a {item.GetType()}: array elements must be strings, booleans, integers or floating-point numbers (no arrays inside arrays).",
                    paramName)).ToArray(),
            _ => throw new ArgumentException(
                $"{what} is a {value.GetType()}: the process context takes strings, booleans, integers, floating-point numbers and arrays of them.",
                paramName),
        };

    private static object? NormalizeScalar(object? value, string what, string paramName)
    {
        switch (value)
        {
            case string s:
                CheckText(s, what, paramName, allowNul: true);
                return s;
            case bool or double:
                return value;
            case long or int or short or sbyte or byte or ushort or uint:
                return Convert.ToInt64(value, CultureInfo.InvariantCulture);
            case ulong u:
                return u <= long.MaxValue
                    ? (long)u
                    : throw new ArgumentException($"{what} = {u} does not fit a signed 64-bit integer.", paramName);
            case float f:
                return (double)f;
            default:
                return null;
        }
    }

    /// <summary>Calls <c>otel_process_ctx_publish_typed</c> (or <c>_update_typed</c>) with the native structs,
    /// pinned for the call only (the library copies what it keeps); <paramref name="errno"/> is the OS error.</summary>
    internal static OtelProcessCtxStatus Call(
        bool update,
        List<KeyValuePair<string, object>> resource,
        List<KeyValuePair<string, object>> attributes,
        List<string> keys,
        out int errno)
    {
        var pins = new List<GCHandle>();
        try
        {
            void* Pin(object array)
            {
                GCHandle pin = GCHandle.Alloc(array, GCHandleType.Pinned);
                pins.Add(pin);
                return (void*)pin.AddrOfPinnedObject();
            }

            byte* Text(string s, bool nul)
            {
                byte[] bytes = new byte[s_strictUtf8.GetByteCount(s) + (nul ? 1 : 0)];
                s_strictUtf8.GetBytes(s, bytes);
                return (byte*)Pin(bytes);
            }

            OtelProcessCtxValue Value(object? v) => v switch
            {
                null => new() { Kind = NativeMethods.OTEL_PROCESS_CTX_VALUE_EMPTY },
                string s => new() { Kind = NativeMethods.OTEL_PROCESS_CTX_VALUE_STRING, Pointer = Text(s, nul: false), Length = (nuint)s_strictUtf8.GetByteCount(s) },
                bool b => new() { Kind = NativeMethods.OTEL_PROCESS_CTX_VALUE_BOOL, IntValue = b ? 1 : 0 },
                long l => new() { Kind = NativeMethods.OTEL_PROCESS_CTX_VALUE_INT, IntValue = l },
                double d => new() { Kind = NativeMethods.OTEL_PROCESS_CTX_VALUE_DOUBLE, DoubleValue = d },
                object?[] items => new()
                {
                    Kind = NativeMethods.OTEL_PROCESS_CTX_VALUE_ARRAY,
                    Pointer = items.Length == 0 ? null : Pin(Array.ConvertAll(items, Value)),
                    Length = (nuint)items.Length,
                },
                _ => throw new InvalidOperationException($"unnormalized value {v.GetType()}"),
            };

            OtelProcessCtxKeyValue* Pairs(List<KeyValuePair<string, object>> list) => (OtelProcessCtxKeyValue*)Pin(
                list.ConvertAll(kv => new OtelProcessCtxKeyValue { Key = Text(kv.Key, nul: true), Value = Value(kv.Value) }).ToArray());

            OtelProcessCtxKeyValue* r = Pairs(resource);
            OtelProcessCtxKeyValue* a = Pairs(attributes);
            byte** k = (byte**)Pin(keys.ConvertAll(key => (nint)Text(key, nul: true)).ToArray());
            OtelProcessCtxStatus status = update
                ? NativeMethods.otel_process_ctx_update_typed(r, (nuint)resource.Count, a, (nuint)attributes.Count, k, (nuint)keys.Count)
                : NativeMethods.otel_process_ctx_publish_typed(r, (nuint)resource.Count, a, (nuint)attributes.Count, k, (nuint)keys.Count);
            errno = Marshal.GetLastPInvokeError();
            return status;
        }
        finally
        {
            foreach (GCHandle pin in pins)
            {
                pin.Free();
            }
        }
    }
}
