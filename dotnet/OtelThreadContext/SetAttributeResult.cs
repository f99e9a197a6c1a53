namespace OtelThreadContext;

/// <summary>Outcome of setting one attribute of a thread-context record.</summary>
public enum SetAttributeResult
{
    /// <summary>The value was stored whole.</summary>
    Stored = 0,

    /// <summary>The value was longer than 255 bytes of UTF-8 and was stored cut at a character boundary.</summary>
    Truncated = 1,

    /// <summary>The entry does not fit in the record's 612 attribute bytes; nothing changed.</summary>
    NoSpace = 2,

    /// <summary><see cref="ThreadContext.IsSupported"/> is false; nothing was done.</summary>
    NotSupported = 3,
}
