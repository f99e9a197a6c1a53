using System;
using System.Collections.Generic;
using System.Runtime.ExceptionServices;
using System.Text;
using System.Threading;

namespace OtelThreadContext.TestShared;

/// <summary>
/// Helpers both test projects need, compiled into each of them (linked from this folder): a
/// reader's parse of a record's attribute entries, and a way to run code on a fresh thread.
/// </summary>
internal static class RecordTestHelpers
{
    /// <summary>The attribute entries in <paramref name="attrsData"/> (a record's attribute
    /// bytes, already cut to its size), in order, parsed as a reader would: a key byte, a length
    /// byte, that many UTF-8 bytes; a tail that is not a whole entry is ignored.</summary>
    public static List<(byte Key, string Value)> ParseAttributes(ReadOnlySpan<byte> attrsData)
    {
        var list = new List<(byte, string)>();
        for (int i = 0; i + 2 <= attrsData.Length && i + 2 + attrsData[i + 1] <= attrsData.Length; i += 2 + attrsData[i + 1])
        {
            list.Add((attrsData[i], Encoding.UTF8.GetString(attrsData.Slice(i + 2, attrsData[i + 1]))));
        }

        return list;
    }

    /// <summary>Runs <paramref name="body"/> on a new thread (which has no record yet), waits
    /// for it to end and rethrows what it threw.</summary>
    public static void OnNewThread(Action body)
    {
        ExceptionDispatchInfo? failure = null;
        var t = new Thread(() =>
        {
            try
            {
                body();
            }
            catch (Exception e)
            {
                failure = ExceptionDispatchInfo.Capture(e);
            }
        });
        t.Start();
        t.Join();
        failure?.Throw();
    }
}
