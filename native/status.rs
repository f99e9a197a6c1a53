//! The bottom layer: the one status every C API call returns, and the helpers that turn Rust
//! results and panics into it. Imports nothing from the crate.

use std::panic::{catch_unwind, AssertUnwindSafe, UnwindSafe};
use OtelThreadCtxStatus as Status;

/// Result of an API call, thread or process context. Negative values are errors; nothing was
/// changed when one is returned. The numbers are stable: a meaning keeps its number, new ones
/// take the next.
#[repr(i32)]
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum OtelThreadCtxStatus {
    /// Done.
    Ok = 0,
    /// Done, but the attribute value was cut to 255 bytes at a UTF-8 character boundary.
    Truncated = 1,
    /// The calling thread has no attached record.
    NoContext = 2,
    /// A required pointer was NULL: an argument, an out-parameter, a key or value, or an array
    /// with a non-zero count.
    NullArgument = -1,
    /// The handle is not a live handle of this library (never created, or already freed).
    InvalidHandle = -2,
    /// The handle is attached to a thread; detach it before freeing it.
    HandleAttached = -3,
    /// The handle is attached to another thread; only that thread may write or attach it.
    AttachedElsewhere = -4,
    /// The attribute entry does not fit in the record's remaining attribute bytes.
    NoSpace = -5,
    /// A value, key or name is not valid UTF-8.
    InvalidUtf8 = -6,
    /// Memory could not be allocated.
    OutOfMemory = -7,
    /// The loaded library does not publish the TLS slot as readers need; see the message.
    SelfCheckFailed = -8,
    /// An internal error was caught before it could cross the API (a bug: please report it).
    Internal = -9,
    /// The calling thread is exiting, past the library's clean-up: a record attached now would leak.
    ThreadExiting = -10,
    /// No pthread key is left (PTHREAD_KEYS_MAX) for freeing records at thread exit.
    NoThreadKey = -11,
    /// The handle is a thread's own record (attached by `update` or `ensure_record`): only that
    /// thread may attach or write it, and the library frees it when the thread exits.
    OwnedByThread = -12,
    /// A resource attribute has an empty key.
    EmptyResourceKey = -13,
    /// Two resource attributes have the same key.
    DuplicateResourceKey = -14,
    /// An attribute key map entry (or a declared key) is empty.
    EmptyAttributeKey = -15,
    /// The attribute key map names the same key twice.
    DuplicateAttributeKey = -16,
    /// The attribute key map would have more than 256 keys (a record's key index is one byte).
    TooManyAttributeKeys = -17,
    /// The key map names an index differently from the process's key map, which only grows
    /// (records name attributes by index).
    KeyMapChanged = -18,
    /// The encoded process context is larger than the 64 KiB readers accept.
    PayloadTooLarge = -19,
    /// This process has no published context (a forked child has none until it publishes).
    NotPublished = -20,
    /// The OTEL_CTX mapping could not be made, or named (readers need the name); errno says why.
    MappingFailed = -21,
    /// The buffer is smaller than the payload; the needed size was stored.
    BufferTooSmall = -22,
    /// A typed value the process context cannot carry: an unknown kind, or an array in an array.
    InvalidValue = -23,
    /// A process context attribute's key is empty, repeated, or has the reserved `threadlocal.`
    /// prefix.
    InvalidContextAttribute = -24,
    /// Another OTEL_CTX mapping is in this process (another library published a process context):
    /// there must be one per process, so nothing was published.
    OtherContextPublished = -25,
    /// A schema version name is empty, longer than 64 bytes, or not printable ASCII.
    InvalidSchemaVersion = -26,
}

/// Runs `f` (whose errors are statuses too), turning a panic into `INTERNAL`.
pub(crate) fn guard(f: impl FnOnce() -> Result<Status, Status> + UnwindSafe) -> Status {
    catch_unwind(f)
        .unwrap_or(Err(Status::Internal))
        .unwrap_or_else(|status| status)
}

/// Runs `f` like [`guard`] and stores its result in the out-parameter, NULL on any failure;
/// `NULL_ARGUMENT` without one.
pub(crate) fn give<T>(out: Option<&mut *mut T>, f: impl FnOnce() -> Result<*mut T, Status> + UnwindSafe) -> Status {
    let Some(out) = out else {
        return Status::NullArgument;
    };
    *out = core::ptr::null_mut();
    // Only a result `f` returned is stored: the write of a plain pointer cannot panic.
    guard(AssertUnwindSafe(|| f().map(|ptr| *out = ptr).map(|()| Status::Ok)))
}

/// Borrows a C array; `NULL_ARGUMENT` for NULL with a non-zero `len`. Safety: `ptr` is NULL or
/// has `len` readable elements outliving 'a.
pub(crate) unsafe fn c_array<'a, T>(ptr: *const T, len: usize) -> Result<&'a [T], Status> {
    match (ptr.is_null(), len) {
        (_, 0) => Ok(&[]),
        (true, _) => Err(Status::NullArgument),
        // Safety: non-null and `len` readable elements per the caller's contract.
        (false, _) => Ok(unsafe { std::slice::from_raw_parts(ptr, len) }),
    }
}

#[cfg(test)]
mod tests {
    use super::Status;

    /// The numbers are the ABI: each meaning keeps its number. (The compiler refuses two
    /// variants with one number, so one number is one meaning.)
    #[test]
    fn status_numbers_are_stable() {
        let numbers = [
            (Status::Ok, 0),
            (Status::Truncated, 1),
            (Status::NoContext, 2),
            (Status::NullArgument, -1),
            (Status::InvalidHandle, -2),
            (Status::HandleAttached, -3),
            (Status::AttachedElsewhere, -4),
            (Status::NoSpace, -5),
            (Status::InvalidUtf8, -6),
            (Status::OutOfMemory, -7),
            (Status::SelfCheckFailed, -8),
            (Status::Internal, -9),
            (Status::ThreadExiting, -10),
            (Status::NoThreadKey, -11),
            (Status::OwnedByThread, -12),
            (Status::EmptyResourceKey, -13),
            (Status::DuplicateResourceKey, -14),
            (Status::EmptyAttributeKey, -15),
            (Status::DuplicateAttributeKey, -16),
            (Status::TooManyAttributeKeys, -17),
            (Status::KeyMapChanged, -18),
            (Status::PayloadTooLarge, -19),
            (Status::NotPublished, -20),
            (Status::MappingFailed, -21),
            (Status::BufferTooSmall, -22),
            (Status::InvalidValue, -23),
            (Status::InvalidContextAttribute, -24),
            (Status::OtherContextPublished, -25),
            (Status::InvalidSchemaVersion, -26),
        ];
        for (status, number) in numbers {
            assert_eq!(status as i32, number, "{status:?}");
        }
    }

    #[test]
    fn a_panic_is_internal_and_an_error_is_itself() {
        assert_eq!(super::guard(|| panic!("bug")), Status::Internal);
        assert_eq!(super::guard(|| Err(Status::NoSpace)), Status::NoSpace);
        assert_eq!(super::guard(|| Ok(Status::Truncated)), Status::Truncated);
    }
}
