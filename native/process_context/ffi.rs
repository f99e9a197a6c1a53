//! `otel_process_ctx_*`, the process context's C API. Strings are NUL-terminated UTF-8; a
//! failure is an [`OtelProcessCtxStatus`] and leaves the published context as it was.

use super::payload::{self, any_value::Value, AnyValue, KeyValue};
use super::{PayloadError, ProcessCtxError};
use crate::ffi::{c_array, guard};
use std::ffi::CStr;
use std::os::raw::c_char;
use std::panic::UnwindSafe;
use OtelProcessCtxStatus as Status;

/// Result of a process context call. Negative values are errors; nothing published was changed
/// when one is returned.
#[repr(i32)]
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum OtelProcessCtxStatus {
    /// Done.
    Ok = 0,
    /// A required pointer was NULL: an array with a non-zero count, a key or value, or an output.
    NullArgument = -1,
    /// A key or value is not valid UTF-8.
    InvalidUtf8 = -2,
    /// A resource attribute has an empty key.
    EmptyResourceKey = -3,
    /// Two resource attributes have the same key.
    DuplicateResourceKey = -4,
    /// An attribute key map entry is empty.
    EmptyAttributeKey = -5,
    /// The attribute key map names the same key twice.
    DuplicateAttributeKey = -6,
    /// The attribute key map has more than 256 entries (a record's key index is one byte).
    TooManyAttributeKeys = -7,
    /// The key map names an index differently from the process's key map, which only grows
    /// (records name attributes by index).
    KeyMapChanged = -8,
    /// The encoded payload is larger than the 64 KiB readers accept.
    PayloadTooLarge = -9,
    /// This process already published a context (one per process): use `otel_process_ctx_update`.
    AlreadyPublished = -10,
    /// This process has no published context (a forked child has none until it publishes).
    NotPublished = -11,
    /// The OTEL_CTX mapping could not be made, or named (readers need the name); `errno` says why.
    MappingFailed = -12,
    /// The buffer is smaller than the payload; the needed size was stored.
    BufferTooSmall = -13,
    /// An internal error was caught before it could cross the API (a bug: please report it).
    Internal = -14,
    /// A typed value the payload cannot carry: an unknown kind, or an array inside an array.
    InvalidValue = -15,
    /// A context attribute's key is empty, repeated, or has the reserved `threadlocal.` prefix.
    InvalidContextAttribute = -16,
    /// Another OTEL_CTX mapping is in this process (another library published a process context):
    /// there must be one per process, so nothing was published.
    OtherContextPublished = -17,
    /// A schema version name is empty, longer than 64 bytes, or not printable ASCII.
    InvalidSchemaVersion = -18,
}

/// One resource attribute: NUL-terminated UTF-8 key and value.
#[repr(C)]
pub struct OtelProcessCtxAttribute {
    /// For example "service.name".
    pub key: *const c_char,
    /// For example "checkout".
    pub value: *const c_char,
}

impl From<ProcessCtxError> for OtelProcessCtxStatus {
    fn from(e: ProcessCtxError) -> Self {
        match e {
            ProcessCtxError::Payload(p) => match p {
                PayloadError::EmptyResourceKey => Self::EmptyResourceKey,
                PayloadError::DuplicateResourceKey(_) => Self::DuplicateResourceKey,
                PayloadError::EmptyAttributeKey(_) => Self::EmptyAttributeKey,
                PayloadError::DuplicateAttributeKey(_) => Self::DuplicateAttributeKey,
                PayloadError::TooManyAttributeKeys(_) => Self::TooManyAttributeKeys,
                PayloadError::KeyMapChanged(_) => Self::KeyMapChanged,
                PayloadError::TooLarge(_) => Self::PayloadTooLarge,
                PayloadError::InvalidContextAttribute(_) => Self::InvalidContextAttribute,
                PayloadError::InvalidSchemaVersion => Self::InvalidSchemaVersion,
            },
            ProcessCtxError::AlreadyPublished => Self::AlreadyPublished,
            ProcessCtxError::NotPublished => Self::NotPublished,
            ProcessCtxError::OtherContextPublished(_) => Self::OtherContextPublished,
            ProcessCtxError::Mapping(io) => {
                // Safety: the C library's errno location is valid for the calling thread.
                unsafe { *libc::__errno_location() = io.raw_os_error().unwrap_or(libc::EIO) };
                Self::MappingFailed
            }
        }
    }
}

/// Borrows a C string as UTF-8. Safety: `s` is NULL or a NUL-terminated string outliving 'a.
unsafe fn c_str<'a>(s: *const c_char) -> Result<&'a str, Status> {
    if s.is_null() {
        return Err(Status::NullArgument);
    }
    // Safety: non-null and NUL-terminated per the caller's contract.
    unsafe { CStr::from_ptr(s) }.to_str().map_err(|_| Status::InvalidUtf8)
}

/// Borrows a C array; `NULL_ARGUMENT` for NULL with a non-zero `len`. Safety: as on
/// [`c_array`].
unsafe fn array<'a, T>(ptr: *const T, len: usize) -> Result<&'a [T], Status> {
    // Safety: forwarded caller contract.
    unsafe { c_array(ptr, len) }.ok_or(Status::NullArgument)
}

/// Borrows a C array of C strings (the key map). Safety: as on `otel_process_ctx_publish`.
unsafe fn c_strs<'a>(ptr: *const *const c_char, len: usize) -> Result<Vec<&'a str>, Status> {
    // Safety: forwarded caller contract.
    unsafe { array(ptr, len)?.iter().map(|&s| c_str(s)).collect() }
}

/// The encoded payload's parts, borrowed from the caller: resource, context attributes, key map.
type Args<'a> = (Vec<KeyValue>, Vec<KeyValue>, Vec<&'a str>);

/// The one path of the four publish and update calls: reads the arguments, encodes them and
/// publishes (`update` false) or replaces the context; every failure, a panic too, is a status.
fn store<'a>(update: bool, read: impl FnOnce() -> Result<Args<'a>, Status> + UnwindSafe) -> Status {
    guard(Status::Internal, || {
        let (resource, attributes, keys) = read()?;
        super::store(resource, attributes, &keys, update)?;
        Ok(Status::Ok)
    })
}

/// Copies string resource attributes, adding this library's SDK name and version if not given.
/// Safety: as on `otel_process_ctx_publish`.
unsafe fn string_resource(ptr: *const OtelProcessCtxAttribute, len: usize) -> Result<Vec<KeyValue>, Status> {
    // Safety: forwarded caller contract.
    let pairs = unsafe { array(ptr, len)? }
        .iter()
        .map(|a| unsafe { Ok((c_str(a.key)?, c_str(a.value)?)) });
    Ok(payload::string_resource(&pairs.collect::<Result<Vec<_>, Status>>()?))
}

/// Publishes this process's context (OTEP 4719; a mapping named OTEL_CTX, where profilers find
/// it): string `resource_attributes` (`service.name`, ...; `telemetry.sdk.name`/`version`
/// default to this library's) and the key map, `attribute_keys[i]` naming key index `i` of
/// `otel_thread_ctx_set_attribute` (at most 256, non-empty, distinct). There is one key map per
/// process, which only grows: `attribute_keys` must agree with it wherever both name an index
/// (`KEY_MAP_CHANGED`), and may be shorter, or empty, to keep it as it is (keys declared with
/// `otel_process_ctx_declare_key` included). Everything is copied. `ALREADY_PUBLISHED` if this
/// process has one (a forked child inherits none); `OTHER_CONTEXT_PUBLISHED` if another
/// OTEL_CTX mapping is in the process (one per process).
///
/// # Safety
/// Each array is NULL with count 0 or has `count` readable elements; every key and value is
/// NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn otel_process_ctx_publish(
    resource_attributes: *const OtelProcessCtxAttribute,
    resource_attribute_count: usize,
    attribute_keys: *const *const c_char,
    attribute_key_count: usize,
) -> OtelProcessCtxStatus {
    // Safety: forwarded caller contract.
    store(false, || unsafe {
        let resource = string_resource(resource_attributes, resource_attribute_count)?;
        Ok((resource, Vec::new(), c_strs(attribute_keys, attribute_key_count)?))
    })
}

/// Replaces the published context; readers see the old or the new one, never a mix. The key map
/// merges as for `otel_process_ctx_publish`; on error nothing changes. `NOT_PUBLISHED` if this
/// process has none (a forked child whose parent published gets a fresh mapping of its own, or
/// `OTHER_CONTEXT_PUBLISHED` as a publish does).
///
/// # Safety
/// As for `otel_process_ctx_publish`.
#[no_mangle]
pub unsafe extern "C" fn otel_process_ctx_update(
    resource_attributes: *const OtelProcessCtxAttribute,
    resource_attribute_count: usize,
    attribute_keys: *const *const c_char,
    attribute_key_count: usize,
) -> OtelProcessCtxStatus {
    // Safety: forwarded caller contract.
    store(true, || unsafe {
        let resource = string_resource(resource_attributes, resource_attribute_count)?;
        Ok((resource, Vec::new(), c_strs(attribute_keys, attribute_key_count)?))
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
pub unsafe extern "C" fn otel_process_ctx_declare_key(key: *const c_char, index: *mut u8) -> OtelProcessCtxStatus {
    guard(Status::Internal, || {
        // Safety: NULL or NUL-terminated (caller).
        let key = unsafe { c_str(key)? };
        // Safety: NULL or writable (caller).
        let index = unsafe { index.as_mut() }.ok_or(Status::NullArgument)?;
        *index = super::declare_key(key)?;
        Ok(Status::Ok)
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
pub unsafe extern "C" fn otel_process_ctx_set_schema_version(version: *const c_char) -> OtelProcessCtxStatus {
    guard(Status::Internal, || {
        // Safety: NULL or NUL-terminated (caller).
        super::set_schema_version(unsafe { c_str(version)? })?;
        Ok(Status::Ok)
    })
}

/// Removes the published context (its mapping is unmapped). `NOT_PUBLISHED` if this process
/// has none.
#[no_mangle]
pub extern "C" fn otel_process_ctx_unpublish() -> OtelProcessCtxStatus {
    guard(Status::Internal, || {
        super::unpublish().map(|()| Status::Ok).map_err(Into::into)
    })
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
/// as its kind says (see `otel_process_ctx_publish_typed`).
unsafe fn read_value(v: &OtelProcessCtxValue, in_array: bool) -> Result<AnyValue, Status> {
    let value = match v.kind {
        OTEL_PROCESS_CTX_VALUE_STRING => {
            // Safety: `length` readable bytes at `pointer`, per the caller's contract.
            let bytes = unsafe { array(v.pointer.cast::<u8>(), v.length)? };
            let text = std::str::from_utf8(bytes).map_err(|_| Status::InvalidUtf8)?;
            Some(Value::StringValue(text.to_owned()))
        }
        OTEL_PROCESS_CTX_VALUE_BOOL => Some(Value::BoolValue(v.int_value != 0)),
        OTEL_PROCESS_CTX_VALUE_INT => Some(Value::IntValue(v.int_value)),
        OTEL_PROCESS_CTX_VALUE_DOUBLE => Some(Value::DoubleValue(v.double_value)),
        OTEL_PROCESS_CTX_VALUE_EMPTY => None,
        OTEL_PROCESS_CTX_VALUE_ARRAY if !in_array => {
            // Safety: `length` readable values at `pointer`, per the caller's contract.
            let items = unsafe { array(v.pointer.cast::<OtelProcessCtxValue>(), v.length)? };
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

/// Copies a C array of typed attributes. Safety: as on `otel_process_ctx_publish_typed`.
unsafe fn read_key_values(ptr: *const OtelProcessCtxKeyValue, len: usize) -> Result<Vec<KeyValue>, Status> {
    // Safety (this block): forwarded caller contract.
    unsafe {
        array(ptr, len)?
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

/// Publishes this process's context with typed `resource` attributes (strings, booleans,
/// int64s, doubles, flat arrays) exactly as given (no SDK defaults: an SDK can publish the
/// Resource its exporters send), the caller's own context `attributes` (OTEP 4719
/// `ProcessContext.attributes`; distinct, non-empty keys, none `threadlocal.*`) and the key map.
/// Errors as `otel_process_ctx_publish`, plus `INVALID_VALUE` (unknown kind, nested array) and
/// `INVALID_CONTEXT_ATTRIBUTE`.
///
/// # Safety
/// As for `otel_process_ctx_publish`; a STRING value's `pointer` is NULL with `length` 0 or has
/// `length` readable bytes, an ARRAY's `length` readable `OtelProcessCtxValue`s.
#[no_mangle]
pub unsafe extern "C" fn otel_process_ctx_publish_typed(
    resource: *const OtelProcessCtxKeyValue,
    resource_count: usize,
    attributes: *const OtelProcessCtxKeyValue,
    attribute_count: usize,
    attribute_keys: *const *const c_char,
    attribute_key_count: usize,
) -> OtelProcessCtxStatus {
    // Safety: forwarded caller contract.
    store(false, || unsafe {
        let resource = read_key_values(resource, resource_count)?;
        let attributes = read_key_values(attributes, attribute_count)?;
        Ok((resource, attributes, c_strs(attribute_keys, attribute_key_count)?))
    })
}

/// Replaces the published context with typed values: the rules of `otel_process_ctx_update`,
/// the payload of `otel_process_ctx_publish_typed`.
///
/// # Safety
/// As for `otel_process_ctx_publish_typed`.
#[no_mangle]
pub unsafe extern "C" fn otel_process_ctx_update_typed(
    resource: *const OtelProcessCtxKeyValue,
    resource_count: usize,
    attributes: *const OtelProcessCtxKeyValue,
    attribute_count: usize,
    attribute_keys: *const *const c_char,
    attribute_key_count: usize,
) -> OtelProcessCtxStatus {
    // Safety: forwarded caller contract.
    store(true, || unsafe {
        let resource = read_key_values(resource, resource_count)?;
        let attributes = read_key_values(attributes, attribute_count)?;
        Ok((resource, attributes, c_strs(attribute_keys, attribute_key_count)?))
    })
}
