namespace OtelThreadContext;

/// <summary>The header's names for native status codes, quoted in exception messages so they can
/// be looked up in <c>include/otel_thread_ctx.h</c>. A test compares them with the header.</summary>
internal static class NativeStatusNames
{
    /// <summary>The <c>OTEL_PROCESS_CTX_STATUS_*</c> constant for <paramref name="status"/>.</summary>
    internal static string CName(this NativeProcessStatus status) => status switch
    {
        NativeProcessStatus.Ok => "OTEL_PROCESS_CTX_STATUS_OK",
        NativeProcessStatus.NullArgument => "OTEL_PROCESS_CTX_STATUS_NULL_ARGUMENT",
        NativeProcessStatus.InvalidUtf8 => "OTEL_PROCESS_CTX_STATUS_INVALID_UTF8",
        NativeProcessStatus.EmptyResourceKey => "OTEL_PROCESS_CTX_STATUS_EMPTY_RESOURCE_KEY",
        NativeProcessStatus.DuplicateResourceKey => "OTEL_PROCESS_CTX_STATUS_DUPLICATE_RESOURCE_KEY",
        NativeProcessStatus.EmptyAttributeKey => "OTEL_PROCESS_CTX_STATUS_EMPTY_ATTRIBUTE_KEY",
        NativeProcessStatus.DuplicateAttributeKey => "OTEL_PROCESS_CTX_STATUS_DUPLICATE_ATTRIBUTE_KEY",
        NativeProcessStatus.TooManyAttributeKeys => "OTEL_PROCESS_CTX_STATUS_TOO_MANY_ATTRIBUTE_KEYS",
        NativeProcessStatus.KeyMapChanged => "OTEL_PROCESS_CTX_STATUS_KEY_MAP_CHANGED",
        NativeProcessStatus.PayloadTooLarge => "OTEL_PROCESS_CTX_STATUS_PAYLOAD_TOO_LARGE",
        NativeProcessStatus.AlreadyPublished => "OTEL_PROCESS_CTX_STATUS_ALREADY_PUBLISHED",
        NativeProcessStatus.NotPublished => "OTEL_PROCESS_CTX_STATUS_NOT_PUBLISHED",
        NativeProcessStatus.MappingFailed => "OTEL_PROCESS_CTX_STATUS_MAPPING_FAILED",
        NativeProcessStatus.BufferTooSmall => "OTEL_PROCESS_CTX_STATUS_BUFFER_TOO_SMALL",
        NativeProcessStatus.Internal => "OTEL_PROCESS_CTX_STATUS_INTERNAL",
        _ => $"process status {(int)status}",
    };
}
