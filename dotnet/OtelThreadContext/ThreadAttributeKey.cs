using System;
using System.Runtime.CompilerServices;

namespace OtelThreadContext;

/// <summary>A thread attribute's name and its index in <c>threadlocal.attribute_key_map</c>, from
/// <see cref="ProcessContext.DeclareKey"/>; setters write the index, so there is no lookup by name.</summary>
/// <remarks><c>default(ThreadAttributeKey)</c> is not a declared key: its name is empty and the
/// setters refuse it.</remarks>
public readonly struct ThreadAttributeKey : IEquatable<ThreadAttributeKey>
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

    /// <summary>Compares name and index.</summary>
    public static bool operator ==(ThreadAttributeKey left, ThreadAttributeKey right) => left.Equals(right);

    /// <summary>Compares name and index.</summary>
    public static bool operator !=(ThreadAttributeKey left, ThreadAttributeKey right) => !left.Equals(right);

    /// <summary>Compares name (ordinal) and index.</summary>
    public bool Equals(ThreadAttributeKey other) =>
        Index == other.Index && string.Equals(_name, other._name, StringComparison.Ordinal);

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is ThreadAttributeKey other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Index, _name is null ? 0 : StringComparer.Ordinal.GetHashCode(_name));

    /// <summary>The name and index, for example <c>http_route#0</c>.</summary>
    public override string ToString() => $"{Name}#{Index}";

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static byte ThrowUndeclared() => throw new ArgumentException(
        "default(ThreadAttributeKey) names no attribute: get keys from ProcessContext.DeclareKey.", "key");
}
