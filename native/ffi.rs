//! The C API. One error convention: every call that can fail returns an
//! [`OtelThreadCtxStatus`] and hands its result back through an out-parameter (set to NULL on
//! failure when it is not NULL itself). Only calls that cannot fail return a value directly
//! (`otel_thread_ctx_current`, `otel_thread_ctx_detach`, `otel_thread_ctx_version`). Every
//! function checks its pointers and catches panics so none crosses into C.
//!
//! Ownership: `otel_thread_ctx_new` returns a handle the caller owns. Attaching moves it into
//! the calling thread's slot; detaching (or being displaced by another attach) gives it back.
//! A record still attached when its thread exits is unpublished and freed by the library. A
//! record the library could not free at thread exit is never attached: calls that would attach
//! one then fail with `THREAD_EXITING` (from a pthread key destructor that runs after the
//! library's clean-up on an exiting thread) or `NO_THREAD_KEY` (no pthread key left).

use crate::handle::HandleError;
pub use crate::handle::OtelThreadCtx;
use crate::record::{AttrError, OtelThreadCtxRecord, Truncated};
use std::os::raw::c_char;
use std::panic::{catch_unwind, UnwindSafe};

/// Result of an API call. Negative values are errors; nothing was changed when one is returned.
#[repr(i32)]
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum OtelThreadCtxStatus {
    /// Done.
    Ok = 0,
    /// Done, but the attribute value was cut to 255 bytes at a UTF-8 character boundary.
    Truncated = 1,
    /// The calling thread has no attached record.
    NoContext = 2,
    /// A required pointer argument was NULL.
    NullArgument = -1,
    /// The handle is not a live handle of this library (never created, or already freed).
    InvalidHandle = -2,
    /// The handle is attached to a thread; detach it before freeing it.
    HandleAttached = -3,
    /// The handle is attached to another thread; only that thread may write or attach it.
    AttachedElsewhere = -4,
    /// The attribute entry does not fit in the record's remaining attribute bytes.
    NoSpace = -5,
    /// The attribute value is not valid UTF-8.
    InvalidUtf8 = -6,
    /// Memory could not be allocated.
    OutOfMemory = -7,
    /// The loaded library does not publish the TLS slot as readers need; see the message.
    SelfCheckFailed = -8,
    /// An internal error was caught before it could cross the API (a bug: please report it).
    Internal = -9,
    /// The calling thread is exiting: the library's thread-exit clean-up has already run on it
    /// (this call comes from a later pthread key destructor), so a record attached now could
    /// never be freed. Nothing was attached or allocated.
    ThreadExiting = -10,
    /// The process has no pthread key left (all PTHREAD_KEYS_MAX are taken), so the library
    /// could not free a record at thread exit. Nothing was attached or allocated; the
    /// self-check reports it too.
    NoThreadKey = -11,
}

impl From<HandleError> for OtelThreadCtxStatus {
    fn from(e: HandleError) -> Self {
        match e {
            HandleError::Unknown => Self::InvalidHandle,
            HandleError::Attached => Self::HandleAttached,
            HandleError::AttachedElsewhere => Self::AttachedElsewhere,
            HandleError::Alloc => Self::OutOfMemory,
            HandleError::ThreadExiting => Self::ThreadExiting,
            HandleError::NoThreadKey => Self::NoThreadKey,
        }
    }
}

impl From<AttrError> for OtelThreadCtxStatus {
    fn from(e: AttrError) -> Self {
        match e {
            AttrError::InvalidUtf8 => Self::InvalidUtf8,
            AttrError::NoSpace => Self::NoSpace,
        }
    }
}

/// Runs `f`, turning a panic into `fallback`.
fn guard<T>(fallback: T, f: impl FnOnce() -> T + UnwindSafe) -> T {
    catch_unwind(f).unwrap_or(fallback)
}

/// Stores `value` through an out-parameter the caller checked to be non-NULL.
///
/// # Safety
/// `out` is non-NULL and points to a writable `T`.
unsafe fn put<T>(out: *mut T, value: T) {
    // Safety: the caller's contract.
    unsafe { out.write(value) };
}

/// Creates a record holding the given ids and flags, marked valid, attached to no thread, and
/// stores its handle in `*out`: the caller owns it, to attach it or release it with
/// `otel_thread_ctx_free`.
///
/// `NULL_ARGUMENT` if a pointer is NULL, `OUT_OF_MEMORY`; on error `*out` is set to NULL.
///
/// # Safety
/// `trace_id` and `span_id` are NULL or point to 16 and 8 readable bytes; `out` is NULL or
/// points to a writable handle pointer.
#[no_mangle]
pub unsafe extern "C" fn otel_thread_ctx_new(
    trace_id: *const [u8; 16],
    span_id: *const [u8; 8],
    trace_flags: u8,
    out: *mut *mut OtelThreadCtx,
) -> OtelThreadCtxStatus {
    if out.is_null() {
        return OtelThreadCtxStatus::NullArgument;
    }
    // Safety: `out` is non-NULL and writable (caller).
    unsafe { put(out, core::ptr::null_mut()) };
    if trace_id.is_null() || span_id.is_null() {
        return OtelThreadCtxStatus::NullArgument;
    }
    // Safety: non-null, and the caller promises they point to enough bytes.
    let (trace_id, span_id) = unsafe { (*trace_id, *span_id) };
    guard(OtelThreadCtxStatus::Internal, || {
        match OtelThreadCtx::allocate(&trace_id, &span_id, trace_flags) {
            Some(h) => {
                // Safety: checked above.
                unsafe { put(out, h) };
                OtelThreadCtxStatus::Ok
            }
            None => OtelThreadCtxStatus::OutOfMemory,
        }
    })
}

/// Releases a handle the caller owns.
///
/// Refused with `HANDLE_ATTACHED` while it is attached to a thread (detach it first), with
/// `INVALID_HANDLE` if it was already freed or never created here, `NULL_ARGUMENT` for NULL.
///
/// # Safety
/// `ctx` is any pointer value; it is only dereferenced if it is a live handle of this library.
#[no_mangle]
pub unsafe extern "C" fn otel_thread_ctx_free(ctx: *mut OtelThreadCtx) -> OtelThreadCtxStatus {
    if ctx.is_null() {
        return OtelThreadCtxStatus::NullArgument;
    }
    guard(OtelThreadCtxStatus::Internal, || match OtelThreadCtx::free(ctx) {
        Ok(()) => OtelThreadCtxStatus::Ok,
        Err(e) => e.into(),
    })
}

/// Publishes `ctx` in the calling thread's `otel_thread_ctx_v1` slot, and stores in
/// `*displaced` the handle it displaced (now owned by the caller again) or NULL.
///
/// Attaching the handle that is already attached here changes nothing (`*displaced` = NULL).
/// On error nothing changes and `*displaced` is NULL: `NULL_ARGUMENT`, `INVALID_HANDLE` (not a
/// live handle), `ATTACHED_ELSEWHERE` (attached to another thread), `THREAD_EXITING` and
/// `NO_THREAD_KEY` (the library could not free it at thread exit), `OUT_OF_MEMORY`.
///
/// # Safety
/// `ctx` is any pointer value; it is only dereferenced if it is a live handle of this library.
/// `displaced` is NULL or points to a writable handle pointer.
#[no_mangle]
pub unsafe extern "C" fn otel_thread_ctx_attach(
    ctx: *mut OtelThreadCtx,
    displaced: *mut *mut OtelThreadCtx,
) -> OtelThreadCtxStatus {
    if displaced.is_null() {
        return OtelThreadCtxStatus::NullArgument;
    }
    // Safety: non-NULL and writable (caller).
    unsafe { put(displaced, core::ptr::null_mut()) };
    if ctx.is_null() {
        return OtelThreadCtxStatus::NullArgument;
    }
    guard(OtelThreadCtxStatus::Internal, || match OtelThreadCtx::attach(ctx) {
        Ok(prev) => {
            // Safety: checked above.
            unsafe { put(displaced, prev) };
            OtelThreadCtxStatus::Ok
        }
        Err(e) => e.into(),
    })
}

/// Empties the calling thread's slot. Returns the handle that was attached, now owned by the
/// caller, or NULL if none was. Cannot fail (a slot swap and a flag store), so it returns the
/// handle directly.
#[no_mangle]
pub extern "C" fn otel_thread_ctx_detach() -> *mut OtelThreadCtx {
    OtelThreadCtx::detach()
}

/// The handle attached to the calling thread, or NULL. The library keeps ownership: do not free
/// it without detaching it first. Cannot fail (one thread-local load).
#[no_mangle]
pub extern "C" fn otel_thread_ctx_current() -> *mut OtelThreadCtx {
    OtelThreadCtx::current()
}

/// Writes new ids and flags into the calling thread's attached record, in place, under the
/// valid-flag protocol; attributes are kept. If no record is attached, a new one is created and
/// attached (the library frees it at thread exit); when the library could not free it there,
/// nothing is attached and `THREAD_EXITING` or `NO_THREAD_KEY` is returned. All-zero ids mean
/// "no active span".
///
/// # Safety
/// `trace_id` and `span_id` are NULL or point to 16 and 8 readable bytes.
#[no_mangle]
pub unsafe extern "C" fn otel_thread_ctx_update(
    trace_id: *const [u8; 16],
    span_id: *const [u8; 8],
    trace_flags: u8,
) -> OtelThreadCtxStatus {
    if trace_id.is_null() || span_id.is_null() {
        return OtelThreadCtxStatus::NullArgument;
    }
    guard(
        OtelThreadCtxStatus::Internal,
        || match OtelThreadCtx::current_or_attach() {
            Ok(rec) => {
                // Safety: `rec` is this thread's attached record; the id pointers are non-null and
                // readable per the caller's contract.
                unsafe { OtelThreadCtxRecord::write_ids(rec, &*trace_id, &*span_id, trace_flags) };
                OtelThreadCtxStatus::Ok
            }
            Err(e) => e.into(),
        },
    )
}

/// Clears the calling thread's attached record in place: zero ids and flags, no attributes,
/// valid. Returns `NO_CONTEXT` (and does nothing) if no record is attached.
#[no_mangle]
pub extern "C" fn otel_thread_ctx_clear() -> OtelThreadCtxStatus {
    guard(OtelThreadCtxStatus::Internal, || {
        let h = OtelThreadCtx::current();
        if h.is_null() {
            return OtelThreadCtxStatus::NoContext;
        }
        // Safety: the attached record belongs to this thread.
        unsafe { OtelThreadCtxRecord::clear(OtelThreadCtx::record_ptr(h)) };
        OtelThreadCtxStatus::Ok
    })
}

/// Stores in `*out` the stable address of `ctx`'s record, valid until the handle is freed (or,
/// for a record left attached, until its thread exits). Writers in other languages update it in
/// place there, following the protocol documented on `OtelThreadCtxRecord`, and only from the
/// thread it is attached to. `NULL_ARGUMENT`, `INVALID_HANDLE`; on error `*out` is NULL.
///
/// # Safety
/// `ctx` is any pointer value; it is only dereferenced if it is a live handle of this library.
/// `out` is NULL or points to a writable record pointer.
#[no_mangle]
pub unsafe extern "C" fn otel_thread_ctx_record(
    ctx: *mut OtelThreadCtx,
    out: *mut *mut OtelThreadCtxRecord,
) -> OtelThreadCtxStatus {
    if out.is_null() {
        return OtelThreadCtxStatus::NullArgument;
    }
    // Safety: non-NULL and writable (caller).
    unsafe { put(out, core::ptr::null_mut()) };
    if ctx.is_null() {
        return OtelThreadCtxStatus::NullArgument;
    }
    guard(OtelThreadCtxStatus::Internal, || match OtelThreadCtx::validate(ctx) {
        Ok(()) => {
            // Safety: checked above.
            unsafe { put(out, OtelThreadCtx::record_ptr(ctx)) };
            OtelThreadCtxStatus::Ok
        }
        Err(e) => e.into(),
    })
}

/// Stores in `*out` the calling thread's attached record, attaching a new empty one (no span,
/// valid) if none is attached: the one call a managed writer makes per thread before writing in
/// place. The address stays valid while the record stays attached; the library frees it at
/// thread exit. `NULL_ARGUMENT`, `OUT_OF_MEMORY`, `THREAD_EXITING`, `NO_THREAD_KEY` (nothing
/// attached: the library could not free it at thread exit); on error `*out` is NULL.
///
/// # Safety
/// `out` is NULL or points to a writable record pointer.
#[no_mangle]
pub unsafe extern "C" fn otel_thread_ctx_ensure_record(out: *mut *mut OtelThreadCtxRecord) -> OtelThreadCtxStatus {
    if out.is_null() {
        return OtelThreadCtxStatus::NullArgument;
    }
    // Safety: non-NULL and writable (caller).
    unsafe { put(out, core::ptr::null_mut()) };
    guard(
        OtelThreadCtxStatus::Internal,
        || match OtelThreadCtx::current_or_attach() {
            Ok(rec) => {
                // Safety: checked above.
                unsafe { put(out, rec) };
                OtelThreadCtxStatus::Ok
            }
            Err(e) => e.into(),
        },
    )
}

/// Sets attribute `key_index` of `ctx`'s record to `value` (`value_len` bytes of UTF-8),
/// replacing an earlier value for that key. The key index is the position of the attribute's
/// name in the process context's `threadlocal.attribute_key_map`.
///
/// Values over 255 bytes are stored cut at a character boundary and `TRUNCATED` is returned.
/// `NO_SPACE` if the entry does not fit in the record's 612 attribute bytes, `INVALID_UTF8`,
/// `NULL_ARGUMENT` (a NULL `value` is allowed only with `value_len` 0), `INVALID_HANDLE`,
/// `ATTACHED_ELSEWHERE`; on any error the record is unchanged.
///
/// # Safety
/// `value` is NULL or points to `value_len` readable bytes. `ctx` may be any pointer value.
#[no_mangle]
pub unsafe extern "C" fn otel_thread_ctx_set_attribute(
    ctx: *mut OtelThreadCtx,
    key_index: u8,
    value: *const u8,
    value_len: usize,
) -> OtelThreadCtxStatus {
    if ctx.is_null() || (value.is_null() && value_len != 0) {
        return OtelThreadCtxStatus::NullArgument;
    }
    let value: &[u8] = if value_len == 0 {
        &[]
    } else {
        // Safety: non-null and `value_len` readable bytes per the caller's contract.
        unsafe { core::slice::from_raw_parts(value, value_len) }
    };
    guard(OtelThreadCtxStatus::Internal, || {
        if let Err(e) = OtelThreadCtx::writable_here(ctx) {
            return e.into();
        }
        // Safety: live handle, detached or attached to this thread, so only we write it.
        match unsafe { OtelThreadCtxRecord::set_attribute(OtelThreadCtx::record_ptr(ctx), key_index, value) } {
            Ok(Truncated(false)) => OtelThreadCtxStatus::Ok,
            Ok(Truncated(true)) => OtelThreadCtxStatus::Truncated,
            Err(e) => e.into(),
        }
    })
}

/// Removes every attribute from `ctx`'s record, in place.
///
/// # Safety
/// `ctx` may be any pointer value; it is only dereferenced if it is a live handle.
#[no_mangle]
pub unsafe extern "C" fn otel_thread_ctx_clear_attributes(ctx: *mut OtelThreadCtx) -> OtelThreadCtxStatus {
    if ctx.is_null() {
        return OtelThreadCtxStatus::NullArgument;
    }
    guard(OtelThreadCtxStatus::Internal, || {
        if let Err(e) = OtelThreadCtx::writable_here(ctx) {
            return e.into();
        }
        // Safety: live handle, detached or attached to this thread.
        unsafe { OtelThreadCtxRecord::clear_attributes(OtelThreadCtx::record_ptr(ctx)) };
        OtelThreadCtxStatus::Ok
    })
}

/// Checks, at run time, that the loaded library exports `otel_thread_ctx_v1` the way readers
/// need (dynamic symbol, TLS, GLOBAL, 8 bytes, reached only through TLSDESC relocations, small
/// TLS segment) and that the dynamic linker resolves it to the slot this library writes.
/// Linked statically, the executable must export the slot instead; it may reach it through
/// initial-exec or local-exec, and its TLS segment may be of any size.
/// Writes a NUL-terminated explanation (cut to `msg_len` bytes) into `msg` when it is non-NULL.
///
/// # Safety
/// `msg` is NULL or points to `msg_len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn otel_thread_ctx_self_check(msg: *mut c_char, msg_len: usize) -> OtelThreadCtxStatus {
    let (status, text) = guard(
        (
            OtelThreadCtxStatus::Internal,
            String::from("internal error during self-check"),
        ),
        || match crate::self_check::run() {
            Ok(summary) => (OtelThreadCtxStatus::Ok, summary),
            Err(problem) => (OtelThreadCtxStatus::SelfCheckFailed, problem),
        },
    );
    if !msg.is_null() && msg_len > 0 {
        let n = text.len().min(msg_len - 1);
        // Safety: `msg` has `msg_len` writable bytes (caller) and we write at most that many.
        unsafe {
            core::ptr::copy_nonoverlapping(text.as_ptr(), msg.cast::<u8>(), n);
            *msg.add(n) = 0;
        }
    }
    status
}

/// The library's version, e.g. "0.1.0" (a static NUL-terminated string).
#[no_mangle]
pub extern "C" fn otel_thread_ctx_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
