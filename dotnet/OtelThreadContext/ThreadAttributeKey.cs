using System;
using System.Runtime.CompilerServices;

namespace OtelThreadContext;

/// <summary>A thread attribute's name and its index in <c>threadlocal.attribute_key_map</c>, from
/// <see cref="ProcessContext.DeclareKey"/>; setters write the index, so there is no lookup by name.</summary>
/// <remarks><c>default(ThreadAttributeKey)</c> is not a declared key: its name is empty and the
/// setters refuse it. Keys compare by name (ordinal) and index.</remarks>
public readonly record struct ThreadAttributeKey
{
    private readonly string? _name;

    internal ThreadAttributeKey(string name, byte index)
    {
        _name = name;
        Index = index;
    }

    /// <summary>The attribute's name, as published in the key map (empty for <c>default</c>).</summary>
    public string Name => _name ?? string.Empty;

    /// <summary>The attribute's position in the key map: the key index written into records.</summary>
    public byte Index { get; }

    /// <summary><see cref="Index"/>, or <see cref="ArgumentException"/> for <c>default(ThreadAttributeKey)</c>.</summary>
    internal byte DeclaredIndex => _name is null ? ThrowUndeclared() : Index;

    /// <summary>The name and index, for example <c>http_route#0</c>.</summary>
    public override string ToString() => $"{Name}#{Index}";

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static byte ThrowUndeclared() => throw new ArgumentException(
        "default(ThreadAttributeKey) names no attribute: get keys from ProcessContext.DeclareKey.", "key");
}
