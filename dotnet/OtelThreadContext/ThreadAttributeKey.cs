using System;

namespace OtelThreadContext;

/// <summary>
/// A thread attribute's name and its index in the process context's
/// <c>threadlocal.attribute_key_map</c>, handed out by <see cref="ProcessContext.DeclareKey"/>.
/// <see cref="ThreadContext.SetAttribute(ThreadAttributeKey, ReadOnlySpan{char})"/> and
/// <see cref="ThreadContextHandle.SetAttribute(ThreadAttributeKey, ReadOnlySpan{char})"/> write the
/// index into a record, so setting an attribute does no lookup by name.
/// </summary>
/// <remarks>
/// Keys compare equal when both name and index are equal. The index of a declared name never
/// changes for the process's lifetime. <c>default(ThreadAttributeKey)</c> is not a declared key:
/// its <see cref="Name"/> is empty and the attribute setters refuse it.
/// </remarks>
public readonly struct ThreadAttributeKey : IEquatable<ThreadAttributeKey>
{
    private readonly string? _name;

    internal ThreadAttributeKey(string name, byte index)
    {
        _name = name;
        Index = index;
    }

    /// <summary>The attribute's name, as published in <c>threadlocal.attribute_key_map</c>
    /// (empty for <c>default(ThreadAttributeKey)</c>).</summary>
    public string Name => _name ?? string.Empty;

    /// <summary>The attribute's position in <c>threadlocal.attribute_key_map</c>: the key index
    /// written into thread records.</summary>
    public byte Index { get; }

    /// <summary>True for keys returned by <see cref="ProcessContext.DeclareKey"/>; false for
    /// <c>default(ThreadAttributeKey)</c>.</summary>
    internal bool IsDeclared => _name is not null;

    /// <summary>Compares two keys by name and index.</summary>
    /// <param name="left">A key.</param>
    /// <param name="right">Another key.</param>
    /// <returns>True when name and index are equal.</returns>
    public static bool operator ==(ThreadAttributeKey left, ThreadAttributeKey right) => left.Equals(right);

    /// <summary>Compares two keys by name and index.</summary>
    /// <param name="left">A key.</param>
    /// <param name="right">Another key.</param>
    /// <returns>True when name or index differ.</returns>
    public static bool operator !=(ThreadAttributeKey left, ThreadAttributeKey right) => !left.Equals(right);

    /// <summary>Compares name (ordinal) and index.</summary>
    /// <param name="other">The key to compare with.</param>
    /// <returns>True when name and index are equal.</returns>
    public bool Equals(ThreadAttributeKey other) =>
        Index == other.Index && string.Equals(_name, other._name, StringComparison.Ordinal);

    /// <summary>Compares with another object.</summary>
    /// <param name="obj">The object to compare with.</param>
    /// <returns>True when <paramref name="obj"/> is an equal <see cref="ThreadAttributeKey"/>.</returns>
    public override bool Equals(object? obj) => obj is ThreadAttributeKey other && Equals(other);

    /// <summary>A hash of name and index.</summary>
    /// <returns>The hash code.</returns>
    public override int GetHashCode() => HashCode.Combine(Index, _name is null ? 0 : StringComparer.Ordinal.GetHashCode(_name));

    /// <summary>The name and index, for example <c>http_route#0</c>.</summary>
    /// <returns>A description of the key.</returns>
    public override string ToString() => $"{Name}#{Index}";
}
