//! The C API of the process context: `otel_process_ctx_*`. Strings are NUL-terminated UTF-8;
//! failures are reported as an [`OtelProcessCtxStatus`] and leave the published context as it
//! was; no panic crosses into C.

use super::{PayloadError, ProcessCtxError};
use std::ffi::CStr;
use std::os::raw::c_char;
use std::panic::catch_unwind;

/// Result of a process context call. Negative values are errors; nothing published was changed
/// when one is returned.
#[repr(i32)]
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum OtelProcessCtxStatus {
    /// Done.
    Ok = 0,
    /// A required pointer was NULL: an array with a non-zero count, a key or value in it, or
    /// an output pointer.
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
    /// The update renames or drops a key index that is already published; the key map is
    /// append-only because records already written name attributes by index.
    KeyMapChanged = -8,
    /// The encoded payload is larger than the 64 KiB readers accept.
    PayloadTooLarge = -9,
    /// This process already published a context (one per process): use `otel_process_ctx_update`.
    AlreadyPublished = -10,
    /// This process has no published context (a forked child has none until it publishes).
    NotPublished = -11,
    /// The OTEL_CTX mapping could not be made, or the anonymous fallback could not be named so
    /// no reader could find it; `errno` holds the OS error.
    MappingFailed = -12,
    /// The buffer is smaller than the payload; the needed size was stored.
    BufferTooSmall = -13,
    /// An internal error was caught before it could cross the API (a bug: please report it).
    Internal = -14,
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
            },
            ProcessCtxError::AlreadyPublished => Self::AlreadyPublished,
            ProcessCtxError::NotPublished => Self::NotPublished,
            ProcessCtxError::Mapping(io) => {
                // Safety: glibc's errno location is valid for the calling thread.
                unsafe { *libc::__errno_location() = io.raw_os_error().unwrap_or(libc::EIO) };
                Self::MappingFailed
            }
        }
    }
}

fn status(r: Result<(), ProcessCtxError>) -> OtelProcessCtxStatus {
    match r {
        Ok(()) => OtelProcessCtxStatus::Ok,
        Err(e) => e.into(),
    }
}

/// Borrows a C string as UTF-8.
///
/// # Safety
/// `s` is NULL or a NUL-terminated string that outlives the returned borrow.
unsafe fn c_str<'a>(s: *const c_char) -> Result<&'a str, OtelProcessCtxStatus> {
    if s.is_null() {
        return Err(OtelProcessCtxStatus::NullArgument);
    }
    // Safety: non-null and NUL-terminated per the caller's contract.
    unsafe { CStr::from_ptr(s) }
        .to_str()
        .map_err(|_| OtelProcessCtxStatus::InvalidUtf8)
}

/// Borrows a C array; NULL is allowed only for an empty one.
///
/// # Safety
/// `ptr` is NULL or points to `len` readable elements that outlive the returned borrow.
unsafe fn c_array<'a, T>(ptr: *const T, len: usize) -> Result<&'a [T], OtelProcessCtxStatus> {
    match (ptr.is_null(), len) {
        (_, 0) => Ok(&[]),
        (true, _) => Err(OtelProcessCtxStatus::NullArgument),
        // Safety: non-null and `len` readable elements per the caller's contract.
        (false, _) => Ok(unsafe { std::slice::from_raw_parts(ptr, len) }),
    }
}

type Strings<'a> = (Vec<(&'a str, &'a str)>, Vec<&'a str>);

/// Borrows the arguments of publish/update as Rust strings.
///
/// # Safety
/// As documented on `otel_process_ctx_publish`.
unsafe fn read_args<'a>(
    resource_attributes: *const OtelProcessCtxAttribute,
    resource_attribute_count: usize,
    attribute_keys: *const *const c_char,
    attribute_key_count: usize,
) -> Result<Strings<'a>, OtelProcessCtxStatus> {
    // Safety (this block): the caller passes arrays of the given counts holding C strings,
    // all valid for the duration of the call.
    unsafe {
        let attrs = c_array(resource_attributes, resource_attribute_count)?;
        let keys = c_array(attribute_keys, attribute_key_count)?;
        let resource = attrs
            .iter()
            .map(|a| Ok((c_str(a.key)?, c_str(a.value)?)))
            .collect::<Result<Vec<_>, OtelProcessCtxStatus>>()?;
        let key_map = keys.iter().map(|&k| c_str(k)).collect::<Result<Vec<_>, _>>()?;
        Ok((resource, key_map))
    }
}

/// Runs publish or update on the borrowed arguments, turning every failure, panics included,
/// into a status.
///
/// # Safety
/// As documented on `otel_process_ctx_publish`.
unsafe fn with_args(
    resource_attributes: *const OtelProcessCtxAttribute,
    resource_attribute_count: usize,
    attribute_keys: *const *const c_char,
    attribute_key_count: usize,
    op: impl Fn(&[(&str, &str)], &[&str]) -> Result<(), ProcessCtxError> + std::panic::UnwindSafe,
) -> OtelProcessCtxStatus {
    catch_unwind(move || {
        // Safety: forwarded caller contract.
        match unsafe {
            read_args(
                resource_attributes,
                resource_attribute_count,
                attribute_keys,
                attribute_key_count,
            )
        } {
            Ok((resource, keys)) => status(op(&resource, &keys)),
            Err(s) => s,
        }
    })
    .unwrap_or(OtelProcessCtxStatus::Internal)
}

/// Publishes this process's context (OTEP 4719): a mapping named OTEL_CTX whose payload holds
/// the resource attributes and the thread attribute key map, where profilers find it.
///
/// `resource_attributes`: `service.name`, `service.instance.id`, `deployment.environment.name`,
/// `telemetry.sdk.language`, ... (`telemetry.sdk.name`/`version` default to this library's).
/// `attribute_keys[i]` names key index `i` of `otel_thread_ctx_set_attribute`; at most 256,
/// non-empty, distinct. Arrays may be NULL when their count is 0. The library copies everything.
///
/// One context per process: `ALREADY_PUBLISHED` if this process has one (use
/// `otel_process_ctx_update`). A forked child does not inherit it and may publish its own.
///
/// # Safety
/// Each array is NULL with count 0, or points to `count` readable elements; every key and value
/// is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn otel_process_ctx_publish(
    resource_attributes: *const OtelProcessCtxAttribute,
    resource_attribute_count: usize,
    attribute_keys: *const *const c_char,
    attribute_key_count: usize,
) -> OtelProcessCtxStatus {
    // Safety: forwarded caller contract.
    unsafe {
        with_args(
            resource_attributes,
            resource_attribute_count,
            attribute_keys,
            attribute_key_count,
            |resource, keys| super::publish(resource, keys),
        )
    }
}

/// Replaces the published context with these attributes and key map, under the spec's update
/// protocol (readers see the old or the new payload, never a mix). The key map is append-only:
/// `KEY_MAP_CHANGED` if an index already published is renamed or dropped. On any error the
/// published context is unchanged. `NOT_PUBLISHED` if this process has none; in a forked child
/// whose parent had published, the child gets a fresh mapping of its own.
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
    unsafe {
        with_args(
            resource_attributes,
            resource_attribute_count,
            attribute_keys,
            attribute_key_count,
            |resource, keys| super::update(resource, keys),
        )
    }
}

/// Removes the published context (its mapping is unmapped). `NOT_PUBLISHED` if this process
/// has none.
#[no_mangle]
pub extern "C" fn otel_process_ctx_unpublish() -> OtelProcessCtxStatus {
    catch_unwind(|| status(super::unpublish())).unwrap_or(OtelProcessCtxStatus::Internal)
}
