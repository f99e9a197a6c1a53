//! `otel_process_ctx_*`, the process context's C API. Strings are NUL-terminated UTF-8; a
//! failure is an [`OtelThreadCtxStatus`] and leaves the published context as it was.

use super::payload::{self, any_value::Value, AnyValue, KeyValue};
use crate::status::{c_array, guard, OtelThreadCtxStatus};
use std::ffi::CStr;
use std::os::raw::c_char;
use OtelThreadCtxStatus as Status;

/// Borrows a C string as UTF-8. Safety: `s` is NULL or a NUL-terminated string outliving 'a.
unsafe fn c_str<'a>(s: *const c_char) -> Result<&'a str, Status> {
    if s.is_null() {
        return Err(Status::NullArgument);
    }
    // Safety: non-null and NUL-terminated per the caller's contract.
    unsafe { CStr::from_ptr(s) }.to_str().map_err(|_| Status::InvalidUtf8)
}

/// Publishes this process's context (OTEP 4719: a mapping named OTEL_CTX, where profilers find
/// it), or replaces the one it published; readers see the old or the new one, never a mix. It
/// holds the typed `resource` attributes (strings, booleans, int64s, doubles, flat arrays:
/// `service.name`, ...), the caller's own context `attributes` (OTEP 4719
/// `ProcessContext.attributes`; distinct, non-empty keys, none `threadlocal.*`) and the key map:
/// `attribute_keys[i]` names key index `i` of `otel_thread_ctx_set_attribute` (at most 256,
/// non-empty, distinct). Everything is copied.
///
/// Defaults: `telemetry.sdk.name` and `telemetry.sdk.version` are this library's where the
/// resource has no such key; nothing else is added (a caller names `telemetry.sdk.language`).
///
/// There is one key map per process, which only grows: `attribute_keys` must agree with it
/// wherever both name an index (`KEY_MAP_CHANGED`), and may be shorter, or empty, to keep it as
/// it is (keys declared with `otel_process_ctx_declare_key` included).
///
/// On error nothing changes: `NULL_ARGUMENT`, `INVALID_UTF8`, `INVALID_VALUE` (unknown kind,
/// nested array), `EMPTY_RESOURCE_KEY`, `DUPLICATE_RESOURCE_KEY`, `INVALID_CONTEXT_ATTRIBUTE`,
/// `EMPTY_ATTRIBUTE_KEY`, `DUPLICATE_ATTRIBUTE_KEY`, `TOO_MANY_ATTRIBUTE_KEYS`,
/// `KEY_MAP_CHANGED`, `PAYLOAD_TOO_LARGE`; `OTHER_CONTEXT_PUBLISHED` if another OTEL_CTX
/// mapping is in the process (one per process); `MAPPING_FAILED`, with `errno` saying why. A
/// forked child inherits no context: its first publish maps one of its own.
///
/// # Safety
/// Each array is NULL with count 0 or has `count` readable elements; every key is NULL or
/// NUL-terminated; a STRING value's `pointer` is NULL with `length` 0 or has `length` readable
/// bytes, an ARRAY's `length` readable `OtelProcessCtxValue`s.
#[no_mangle]
pub unsafe extern "C" fn otel_process_ctx_publish(
    resource: *const OtelProcessCtxKeyValue,
    resource_count: usize,
    attributes: *const OtelProcessCtxKeyValue,
    attribute_count: usize,
    attribute_keys: *const *const c_char,
    attribute_key_count: usize,
) -> OtelThreadCtxStatus {
    guard(|| {
        // Safety (this block): forwarded caller contract.
        let (resource, attributes, keys) = unsafe {
            (
                read_key_values(resource, resource_count)?,
                read_key_values(attributes, attribute_count)?,
                c_array(attribute_keys, attribute_key_count)?
                    .iter()
                    .map(|&k| c_str(k))
                    .collect::<Result<Vec<_>, _>>()?,
            )
        };
        super::publish(resource, attributes, &keys).map(|()| Status::Ok)
    })
}

/// Stores in `*index` the key index of `key` (NUL-terminated UTF-8) in the process's one
/// attribute key map, appending it if it is not there: whoever published the context (or will),
/// the index names this key for every writer in the process. A published context is published
/// again with the longer key map. `NULL_ARGUMENT`, `INVALID_UTF8`, `EMPTY_ATTRIBUTE_KEY`,
/// `TOO_MANY_ATTRIBUTE_KEYS` (256 already), `PAYLOAD_TOO_LARGE`; nothing changes on error.
///
/// # Safety
/// `key` is NULL or NUL-terminated; `index` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn otel_process_ctx_declare_key(key: *const c_char, index: *mut u8) -> OtelThreadCtxStatus {
    guard(|| {
        // Safety: NULL or NUL-terminated (caller).
        let key = unsafe { c_str(key)? };
        // Safety: NULL or writable (caller).
        let index = unsafe { index.as_mut() }.ok_or(Status::NullArgument)?;
        super::declare_key(key).map(|i| *index = i).map(|()| Status::Ok)
    })
}

/// Chooses the `threadlocal.schema_version` the process writes: `tlsdesc_v1_dev` by default (the
/// only name readers accept today), or the `OTEL_THREAD_CTX_SCHEMA_VERSION` environment variable;
/// this call overrides both, for readers that know OTEP 4947's pending rename (`tls_v1`). A
/// published context is published again with it. `NULL_ARGUMENT`, `INVALID_UTF8`,
/// `INVALID_SCHEMA_VERSION` (empty, over 64 bytes, not printable ASCII).
///
/// # Safety
/// `version` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn otel_process_ctx_set_schema_version(version: *const c_char) -> OtelThreadCtxStatus {
    guard(|| {
        // Safety: NULL or NUL-terminated (caller).
        super::set_schema_version(unsafe { c_str(version)? }).map(|()| Status::Ok)
    })
}

/// Removes the published context (its mapping is unmapped). `NOT_PUBLISHED` if this process
/// has none.
#[no_mangle]
pub extern "C" fn otel_process_ctx_unpublish() -> OtelThreadCtxStatus {
    guard(|| super::unpublish().map(|()| Status::Ok))
}

/// `OtelProcessCtxValue.kind`: UTF-8 text at `pointer`, `length` bytes.
pub const OTEL_PROCESS_CTX_VALUE_STRING: u32 = 0;
/// `OtelProcessCtxValue.kind`: `int_value` 0 is false, anything else true.
pub const OTEL_PROCESS_CTX_VALUE_BOOL: u32 = 1;
/// `OtelProcessCtxValue.kind`: `int_value`.
pub const OTEL_PROCESS_CTX_VALUE_INT: u32 = 2;
/// `OtelProcessCtxValue.kind`: `double_value`.
pub const OTEL_PROCESS_CTX_VALUE_DOUBLE: u32 = 3;
/// `OtelProcessCtxValue.kind`: an array of the `length` values at `pointer`, none an array.
pub const OTEL_PROCESS_CTX_VALUE_ARRAY: u32 = 4;
/// `OtelProcessCtxValue.kind`: no value (OTLP's form of a null array element).
pub const OTEL_PROCESS_CTX_VALUE_EMPTY: u32 = 5;

/// One typed attribute value (an OTLP AnyValue). Which fields count depends on `kind`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct OtelProcessCtxValue {
    /// One of the `OTEL_PROCESS_CTX_VALUE_*` kinds.
    pub kind: u32,
    /// BOOL and INT.
    pub int_value: i64,
    /// DOUBLE.
    pub double_value: f64,
    /// STRING: the UTF-8 bytes (no NUL needed); ARRAY: the first `OtelProcessCtxValue`. May be
    /// NULL when `length` is 0.
    pub pointer: *const core::ffi::c_void,
    /// STRING: bytes; ARRAY: elements.
    pub length: usize,
}

/// One typed attribute: a NUL-terminated UTF-8 key and its value.
#[repr(C)]
pub struct OtelProcessCtxKeyValue {
    /// For example "service.name".
    pub key: *const c_char,
    /// The value, for example a STRING or an ARRAY of STRINGs.
    pub value: OtelProcessCtxValue,
}

/// Copies one C value into the payload's form; arrays may not nest. Safety: `v.pointer` points
/// as its kind says (see `otel_process_ctx_publish`).
unsafe fn read_value(v: &OtelProcessCtxValue, in_array: bool) -> Result<AnyValue, Status> {
    let value = match v.kind {
        OTEL_PROCESS_CTX_VALUE_STRING => {
            // Safety: `length` readable bytes at `pointer`, per the caller's contract.
            let bytes = unsafe { c_array(v.pointer.cast::<u8>(), v.length)? };
            let text = std::str::from_utf8(bytes).map_err(|_| Status::InvalidUtf8)?;
            Some(Value::StringValue(text.to_owned()))
        }
        OTEL_PROCESS_CTX_VALUE_BOOL => Some(Value::BoolValue(v.int_value != 0)),
        OTEL_PROCESS_CTX_VALUE_INT => Some(Value::IntValue(v.int_value)),
        OTEL_PROCESS_CTX_VALUE_DOUBLE => Some(Value::DoubleValue(v.double_value)),
        OTEL_PROCESS_CTX_VALUE_EMPTY => None,
        OTEL_PROCESS_CTX_VALUE_ARRAY if !in_array => {
            // Safety: `length` readable values at `pointer`, per the caller's contract.
            let items = unsafe { c_array(v.pointer.cast::<OtelProcessCtxValue>(), v.length)? };
            // Safety: forwarded caller contract, one level down.
            let values = items.iter().map(|item| unsafe { read_value(item, true) });
            Some(Value::ArrayValue(payload::ArrayValue {
                values: values.collect::<Result<_, _>>()?,
            }))
        }
        _ => return Err(Status::InvalidValue),
    };
    Ok(AnyValue { value })
}

/// Copies a C array of typed attributes. Safety: as on `otel_process_ctx_publish`.
unsafe fn read_key_values(ptr: *const OtelProcessCtxKeyValue, len: usize) -> Result<Vec<KeyValue>, Status> {
    // Safety (this block): forwarded caller contract.
    unsafe {
        c_array(ptr, len)?
            .iter()
            .map(|kv| {
                Ok(KeyValue {
                    key: c_str(kv.key)?.to_owned(),
                    value: Some(read_value(&kv.value, false)?),
                })
            })
            .collect()
    }
}
