using System;
using System.Collections;
using System.Collections.Generic;
using System.Globalization;
using System.Text;

namespace OtelThreadContext;

/// <summary>
/// Typed attribute values of the process context: the checks that turn a caller's
/// <see cref="object"/> into one of the kinds the payload carries (OTLP AnyValue: string, bool,
/// int64, double, and flat arrays of them), and the encoding into the native structs.
/// </summary>
internal static unsafe class ProcessContextValues
{
    /// <summary>UTF-8 that throws on lone surrogates instead of replacing them.</summary>
    private static readonly UTF8Encoding s_strictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>
    /// The value as the payload carries it: <see cref="string"/>, <see cref="bool"/>,
    /// <see cref="long"/> (every integer type that fits), <see cref="double"/> (and
    /// <see cref="float"/>), or an <c>object?[]</c> of those (null elements become empty
    /// AnyValues); throws <see cref="ArgumentException"/> naming <paramref name="what"/> for
    /// anything else (null, other types, arrays inside arrays, lone surrogates).
    /// </summary>
    internal static object Normalize(object? value, string what, string paramName)
    {
        object? scalar = NormalizeScalar(value, what, paramName);
        if (scalar is not null)
        {
            return scalar;
        }

        if (value is null)
        {
            throw new ArgumentException($"{what} is null.", paramName);
        }

        if (value is IEnumerable items and (Array or IList))
        {
            var list = new List<object?>();
            int i = 0;
            foreach (object? item in items)
            {
                if (item is null)
                {
                    list.Add(null);
                }
                else
                {
                    list.Add(NormalizeScalar(item, $"{what}[{i}]", paramName)
                        ?? throw new ArgumentException(
                            $"{what}[{i}] is a {item.GetType()}: array elements must be strings, booleans, integers or floating-point numbers (no arrays inside arrays).",
                            paramName));
                }

                i++;
            }

            return list.ToArray();
        }

        throw new ArgumentException(
            $"{what} is a {value.GetType()}: the process context takes strings, booleans, integers, floating-point numbers and arrays of them.",
            paramName);
    }

    private static object? NormalizeScalar(object? value, string what, string paramName)
    {
        switch (value)
        {
            case string s:
                CheckUtf16(s, what, paramName);
                return s;
            case bool b:
                return b;
            case long or int or short or sbyte or byte or ushort or uint:
                return Convert.ToInt64(value, CultureInfo.InvariantCulture);
            case ulong u:
                return u <= long.MaxValue
                    ? (long)u
                    : throw new ArgumentException($"{what} = {u} does not fit a signed 64-bit integer.", paramName);
            case double d:
                return d;
            case float f:
                return (double)f;
            default:
                return null;
        }
    }

    /// <summary>Refuses text that has no UTF-8 form (a lone surrogate).</summary>
    internal static void CheckUtf16(string text, string what, string paramName)
    {
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
    /// Lays out <paramref name="resource"/>, <paramref name="attributes"/> and
    /// <paramref name="keys"/> as the native structs (all strings in one managed buffer, all
    /// structs in managed arrays), pins them for the duration of <paramref name="call"/> only and
    /// returns its status. The library copies what it keeps, so nothing native is allocated here.
    /// </summary>
    internal static NativeProcessStatus Call(
        IReadOnlyList<KeyValuePair<string, object>> resource,
        IReadOnlyList<KeyValuePair<string, object>> attributes,
        IReadOnlyList<string> keys,
        Func<nint, nuint, nint, nuint, nint, nuint, NativeProcessStatus> call)
    {
        int textBytes = 0;
        int elements = 0;
        void Measure(IReadOnlyList<KeyValuePair<string, object>> list)
        {
            foreach (KeyValuePair<string, object> kv in list)
            {
                textBytes += s_strictUtf8.GetByteCount(kv.Key) + 1;
                if (kv.Value is string s)
                {
                    textBytes += s_strictUtf8.GetByteCount(s);
                }
                else if (kv.Value is object?[] items)
                {
                    elements += items.Length;
                    foreach (object? item in items)
                    {
                        if (item is string e)
                        {
                            textBytes += s_strictUtf8.GetByteCount(e);
                        }
                    }
                }
            }
        }

        Measure(resource);
        Measure(attributes);
        foreach (string k in keys)
        {
            textBytes += s_strictUtf8.GetByteCount(k) + 1;
        }

        // Zero-filled, so every key is followed by its NUL terminator.
        byte[] text = new byte[textBytes];
        var resourceStructs = new NativeProcessKeyValue[resource.Count];
        var attributeStructs = new NativeProcessKeyValue[attributes.Count];
        var elementStructs = new NativeProcessValue[elements];
        var keyPointers = new nint[keys.Count];
        fixed (byte* textFixed = text)
        fixed (NativeProcessKeyValue* resourceStart = resourceStructs)
        fixed (NativeProcessKeyValue* attributesStart = attributeStructs)
        fixed (NativeProcessValue* elementsFixed = elementStructs)
        fixed (nint* keysStart = keyPointers)
        {
            // Plain copies of the pinned addresses, which local functions may use.
            byte* textStart = textFixed;
            NativeProcessValue* elementsStart = elementsFixed;
            // Safety: every write below stays inside `text` and the pinned arrays, sized above
            // from the same values and encoder; the pointers handed to the native call stay valid
            // until the `fixed` block ends, after the call returns.
            int pos = 0;
            int element = 0;

            byte* PutText(string s, bool nul)
            {
                byte* at = textStart + pos;
                pos += s_strictUtf8.GetBytes(s, new Span<byte>(at, textBytes - pos)) + (nul ? 1 : 0);
                return at;
            }

            NativeProcessValue Scalar(object? v) => v switch
            {
                null => new NativeProcessValue { Kind = NativeProcessValue.Empty },
                string s => new NativeProcessValue
                {
                    Kind = NativeProcessValue.String,
                    Length = (nuint)s_strictUtf8.GetByteCount(s),
                    Pointer = PutText(s, nul: false),
                },
                bool b => new NativeProcessValue { Kind = NativeProcessValue.Bool, IntValue = b ? 1 : 0 },
                long l => new NativeProcessValue { Kind = NativeProcessValue.Int, IntValue = l },
                double d => new NativeProcessValue { Kind = NativeProcessValue.Double, DoubleValue = d },
                _ => throw new InvalidOperationException($"unnormalized value {v.GetType()}"),
            };

            void Fill(IReadOnlyList<KeyValuePair<string, object>> list, NativeProcessKeyValue* into)
            {
                for (int i = 0; i < list.Count; i++)
                {
                    into[i].Key = PutText(list[i].Key, nul: true);
                    if (list[i].Value is object?[] items)
                    {
                        NativeProcessValue* first = elementsStart + element;
                        foreach (object? item in items)
                        {
                            elementsStart[element++] = Scalar(item);
                        }

                        into[i].Value = new NativeProcessValue
                        {
                            Kind = NativeProcessValue.Array,
                            Pointer = items.Length == 0 ? null : first,
                            Length = (nuint)items.Length,
                        };
                    }
                    else
                    {
                        into[i].Value = Scalar(list[i].Value);
                    }
                }
            }

            Fill(resource, resourceStart);
            Fill(attributes, attributesStart);
            for (int i = 0; i < keys.Count; i++)
            {
                keysStart[i] = (nint)PutText(keys[i], nul: true);
            }

            return call(
                (nint)resourceStart, (nuint)resource.Count, (nint)attributesStart, (nuint)attributes.Count, (nint)keysStart, (nuint)keys.Count);
        }
    }
}
