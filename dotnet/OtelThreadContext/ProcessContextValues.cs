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
    /// <summary>Refuses text the library cannot take NUL-terminated (keys and names).</summary>
    internal static void CheckText(string text, string what, string paramName)
    {
        if (text.Contains('\0', StringComparison.Ordinal))
        {
            throw new ArgumentException($"{what} contains a NUL character.", paramName);
        }
    }

    /// <summary>Typed attributes, copied, their keys checked and their values as <see cref="Normalize"/> makes
    /// them; the keys' rules (not empty, given once, ...) are the native library's.</summary>
    internal static List<KeyValuePair<string, object>> CheckAttributes(
        IEnumerable<KeyValuePair<string, object>> given, string what, string paramName) => given.Select(kv =>
        {
            string item = $"{what}[\"{kv.Key}\"]";
            CheckText(kv.Key ?? throw new ArgumentException($"{what} has a null key.", paramName), item + " (the key)", paramName);
            return new KeyValuePair<string, object>(kv.Key, Normalize(kv.Value, item, paramName));
        }).ToList();

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

    private static object? NormalizeScalar(object? value, string what, string paramName) => value switch
    {
        string or bool or double => value,
        long or int or short or sbyte or byte or ushort or uint => Convert.ToInt64(value, CultureInfo.InvariantCulture),
        ulong u => u <= long.MaxValue
            ? (long)u
            : throw new ArgumentException($"{what} = {u} does not fit a signed 64-bit integer.", paramName),
        float f => (double)f,
        _ => null,
    };

    /// <summary><paramref name="text"/> as NUL-terminated UTF-8 (a lone surrogate becomes U+FFFD).</summary>
    private static byte[] Utf8z(string text) => Encoding.UTF8.GetBytes(text + "\0");

    /// <summary>Calls <c>otel_process_ctx_declare_key</c>.</summary>
    internal static OtelThreadCtxStatus DeclareKey(string name, out byte index)
    {
        index = 0;
        fixed (byte* k = Utf8z(name))
        fixed (byte* i = &index)
        {
            return NativeMethods.otel_process_ctx_declare_key(k, i);
        }
    }

    /// <summary>Calls <c>otel_process_ctx_publish</c> with the native structs and an empty key map (which keeps
    /// the process's, holding the declared keys), pinned for the call only (the library copies what it keeps);
    /// <paramref name="errno"/> is the OS error.</summary>
    internal static OtelThreadCtxStatus Publish(
        List<KeyValuePair<string, object>> resource, List<KeyValuePair<string, object>> attributes, out int errno)
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

            OtelProcessCtxValue Value(object? v) => v switch
            {
                null => new() { Kind = NativeMethods.OTEL_PROCESS_CTX_VALUE_EMPTY },
                string s => new() { Kind = NativeMethods.OTEL_PROCESS_CTX_VALUE_STRING, Pointer = Pin(Utf8z(s)), Length = (nuint)Encoding.UTF8.GetByteCount(s) },
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
                list.ConvertAll(kv => new OtelProcessCtxKeyValue { Key = (byte*)Pin(Utf8z(kv.Key)), Value = Value(kv.Value) }).ToArray());

            OtelThreadCtxStatus status = NativeMethods.otel_process_ctx_publish(
                Pairs(resource), (nuint)resource.Count, Pairs(attributes), (nuint)attributes.Count, null, 0);
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
