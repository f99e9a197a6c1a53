using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;

namespace OtelThreadContext.Tests;

/// <summary>
/// What the bindings must agree with, parsed from the text of include/otel_thread_ctx.h:
/// function prototypes, #define constants and the status enum.
/// </summary>
internal sealed partial class CHeader
{
    public sealed record Function(string Name, string ReturnType, IReadOnlyList<string> Parameters);

    public IReadOnlyList<Function> Functions { get; }

    public IReadOnlyDictionary<string, long> Defines { get; }

    public IReadOnlyDictionary<string, long> StatusValues { get; }

    public IReadOnlyDictionary<string, long> ProcessStatusValues { get; }

    public CHeader(string text)
    {
        Defines = DefineRegex().Matches(text)
            .ToDictionary(m => m.Groups[1].Value, m => long.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture));

        StatusValues = EnumValues(text, "OtelThreadCtxStatus");
        ProcessStatusValues = EnumValues(text, "OtelProcessCtxStatus");

        int start = text.IndexOf("extern \"C\" {", StringComparison.Ordinal);
        int end = text.IndexOf("} // extern \"C\"", StringComparison.Ordinal);
        if (start < 0 || end < start)
        {
            throw new FormatException("extern \"C\" block not found");
        }

        int bodyStart = start + "extern \"C\" {".Length;
        string body = StripComments(text[bodyStart..end]);
        body = string.Join('\n', body.Split('\n').Where(l => !l.TrimStart().StartsWith('#')));
        var functions = new List<Function>();
        foreach (string decl in body.Split(';').Select(d => Regex.Replace(d, @"\s+", " ").Trim()).Where(d => d.Length > 0))
        {
            Match name = FunctionNameRegex().Match(decl);
            if (!name.Success || !decl.EndsWith(')'))
            {
                throw new FormatException($"not a function prototype: {decl}");
            }

            string returnType = decl.Substring(0, name.Index).Trim();
            string parameters = decl.Substring(name.Index + name.Length, decl.Length - name.Index - name.Length - 1).Trim();
            List<string> list = parameters is "" or "void" ? new List<string>() : SplitTopLevel(parameters);
            functions.Add(new Function(name.Groups[1].Value, returnType, list));
        }

        Functions = functions;
    }

    /// <summary>Size in bytes of a C type as it appears in a prototype (with or without a name).</summary>
    public static int CTypeSize(string declaration)
    {
        if (declaration.Contains('*'))
        {
            return IntPtr.Size;
        }

        string[] words = declaration.Replace("const ", " ").Replace("struct ", " ")
            .Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return words[0] switch
        {
            "void" => 0,
            "uint8_t" or "int8_t" or "char" => 1,
            "uint16_t" or "int16_t" => 2,
            "uint32_t" or "int32_t" or "OtelThreadCtxStatus" or "OtelProcessCtxStatus" => 4,
            "uint64_t" or "int64_t" or "size_t" or "uintptr_t" => 8,
            _ => throw new FormatException($"unknown C type in '{declaration}': add it to CTypeSize"),
        };
    }

    /// <summary>Size of a C# P/Invoke parameter or return type; only blittable kinds are accepted.</summary>
    public static int ManagedTypeSize(Type t)
    {
        if (t == typeof(void))
        {
            return 0;
        }

        // A SafeHandle is passed as its handle value (the marshaller adds only a reference count).
        if (t.IsPointer || t == typeof(nint) || t == typeof(nuint) || typeof(SafeHandle).IsAssignableFrom(t))
        {
            return IntPtr.Size;
        }

        if (t.IsEnum)
        {
            return Marshal.SizeOf(Enum.GetUnderlyingType(t));
        }

        if (t.IsPrimitive && t != typeof(bool) && t != typeof(char))
        {
            return Marshal.SizeOf(t);
        }

        throw new FormatException($"{t} is not a blittable P/Invoke type (use pointers, integers or int enums)");
    }

    /// <summary>The P/Invoke declarations of header functions, by entry point: the package's
    /// (<c>NativeMethods</c>) and the tests' (<c>TestNativeMethods</c>, without its test hooks).</summary>
    public static IReadOnlyDictionary<string, MethodInfo> Declarations() =>
        DeclarationsOf(typeof(NativeMethods))
            .Concat(DeclarationsOf(typeof(TestNativeMethods)).Where(kv => !TestNativeMethods.TestHooks.Contains(kv.Key)))
            .ToDictionary(kv => kv.Key, kv => kv.Value);

    /// <summary>The P/Invoke declarations of one class, by entry point.</summary>
    public static IReadOnlyDictionary<string, MethodInfo> DeclarationsOf(Type type) =>
        type.GetMethods(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly)
            .Select(m => (Method: m, Import: m.GetCustomAttribute<LibraryImportAttribute>()))
            .Where(x => x.Import != null)
            .ToDictionary(x => x.Import!.EntryPoint ?? x.Method.Name, x => x.Method);

    /// <summary>Every way the declarations disagree with the header; empty when they agree.</summary>
    public List<string> Compare(IReadOnlyDictionary<string, MethodInfo> declarations)
    {
        var problems = new List<string>();
        foreach (Function f in Functions)
        {
            if (!declarations.TryGetValue(f.Name, out MethodInfo? m))
            {
                problems.Add($"{f.Name}: in the header, no C# declaration");
                continue;
            }

            try
            {
                if (CTypeSize(f.ReturnType) != ManagedTypeSize(m.ReturnType))
                {
                    problems.Add($"{f.Name}: return {f.ReturnType} ({CTypeSize(f.ReturnType)} bytes) vs {m.ReturnType} ({ManagedTypeSize(m.ReturnType)} bytes)");
                }

                ParameterInfo[] ps = m.GetParameters();
                if (ps.Length != f.Parameters.Count)
                {
                    problems.Add($"{f.Name}: {f.Parameters.Count} parameters in C, {ps.Length} in C#");
                    continue;
                }

                for (int i = 0; i < ps.Length; i++)
                {
                    int c = CTypeSize(f.Parameters[i]);
                    int cs = ManagedTypeSize(ps[i].ParameterType);
                    if (c != cs)
                    {
                        problems.Add($"{f.Name}: parameter {i} '{f.Parameters[i]}' is {c} bytes, C# {ps[i].ParameterType} is {cs}");
                    }
                }
            }
            catch (FormatException e)
            {
                problems.Add($"{f.Name}: {e.Message}");
            }
        }

        foreach (string name in declarations.Keys.Except(Functions.Select(f => f.Name)))
        {
            problems.Add($"{name}: declared in C#, not in the header");
        }

        return problems;
    }

    private static Dictionary<string, long> EnumValues(string text, string name)
    {
        Match body = Regex.Match(text, @"enum " + name + @"\b[^{]*\{(.*?)\};", RegexOptions.Singleline);
        if (!body.Success)
        {
            throw new FormatException($"enum {name} not found");
        }

        return EnumValueRegex().Matches(StripComments(body.Groups[1].Value))
            .ToDictionary(m => m.Groups[1].Value, m => long.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture));
    }

    private static string StripComments(string s) =>
        Regex.Replace(Regex.Replace(s, @"/\*.*?\*/", " ", RegexOptions.Singleline), @"//[^\n]*", " ");

    private static List<string> SplitTopLevel(string s)
    {
        var parts = new List<string>();
        int depth = 0, startAt = 0;
        for (int i = 0; i < s.Length; i++)
        {
            switch (s[i])
            {
                case '(' or '[': depth++; break;
                case ')' or ']': depth--; break;
                case ',' when depth == 0:
                    parts.Add(s[startAt..i].Trim());
                    startAt = i + 1;
                    break;
            }
        }

        parts.Add(s[startAt..].Trim());
        return parts;
    }

    [GeneratedRegex(@"^#define\s+(OTEL_\w+)\s+(-?\d+)\s*$", RegexOptions.Multiline)]
    private static partial Regex DefineRegex();

    [GeneratedRegex(@"(OTEL_\w+_STATUS_\w+)\s*=\s*(-?\d+)")]
    private static partial Regex EnumValueRegex();

    [GeneratedRegex(@"\b(otel_\w+)\s*\(")]
    private static partial Regex FunctionNameRegex();
}
