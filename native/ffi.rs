//! The thread context's C API (errors and out-parameters as the header's preamble, cbindgen.toml,
//! says). Every call checks its pointers and catches panics.

pub use crate::handle::OtelThreadCtx;
use crate::record::OtelThreadCtxRecord;
pub use crate::status::OtelThreadCtxStatus;
use crate::status::{c_array, give, guard};
use std::os::raw::c_char;
use std::panic::catch_unwind;
use OtelThreadCtxStatus as Status;

/// Borrows the ids; `NULL_ARGUMENT` if either is NULL. Safety: each is NULL or readable.
unsafe fn ids<'a>(trace: *const [u8; 16], span: *const [u8; 8]) -> Result<(&'a [u8; 16], &'a [u8; 8]), Status> {
    // Safety: NULL or readable (caller).
    unsafe { trace.as_ref().zip(span.as_ref()) }.ok_or(Status::NullArgument)
}

/// Creates a valid record holding the given ids and flags, attached to no thread, and stores
/// its handle, owned by the caller, in `*out`. `NULL_ARGUMENT`, `OUT_OF_MEMORY`.
///
/// # Safety
/// Each pointer is NULL or valid: 16 and 8 readable bytes, a writable handle pointer.
#[no_mangle]
pub unsafe extern "C" fn otel_thread_ctx_new(
    trace_id: *const [u8; 16],
    span_id: *const [u8; 8],
    trace_flags: u8,
    out: *mut *mut OtelThreadCtx,
) -> OtelThreadCtxStatus {
    // Safety: `out` is NULL or writable (caller).
    give(unsafe { out.as_mut() }, || {
        // Safety: each is NULL or readable (caller).
        let (trace_id, span_id) = unsafe { ids(trace_id, span_id)? };
        OtelThreadCtx::allocate(trace_id, span_id, trace_flags, 0)
    })
}

/// Releases a handle the caller owns: `HANDLE_ATTACHED` while it is attached to a thread
/// (detach it first), `OWNED_BY_THREAD` for a thread's own record (freed at that thread's exit),
/// `INVALID_HANDLE` if freed already or never created, `NULL_ARGUMENT`.
///
/// # Safety
/// `ctx` may be any pointer value; it is only dereferenced if it is a live handle.
#[no_mangle]
pub unsafe extern "C" fn otel_thread_ctx_free(ctx: *mut OtelThreadCtx) -> OtelThreadCtxStatus {
    guard(|| OtelThreadCtx::release(ctx, false).map(|()| Status::Ok))
}

/// Publishes `ctx` in the calling thread's `otel_thread_ctx_v1` slot and stores in
/// `*displaced` the handle it displaced (the caller's again) or NULL (also when it displaced the
/// thread's own record, which stays the thread's); attaching the handle already attached here
/// changes nothing. `NULL_ARGUMENT`, `INVALID_HANDLE`, `ATTACHED_ELSEWHERE`, `OWNED_BY_THREAD`
/// (another thread's own record), `THREAD_EXITING`, `NO_THREAD_KEY`, `OUT_OF_MEMORY`.
///
/// # Safety
/// `ctx` may be any pointer value; `displaced` is NULL or a writable handle pointer.
#[no_mangle]
pub unsafe extern "C" fn otel_thread_ctx_attach(
    ctx: *mut OtelThreadCtx,
    displaced: *mut *mut OtelThreadCtx,
) -> OtelThreadCtxStatus {
    // Safety: `displaced` is NULL or writable (caller).
    give(unsafe { displaced.as_mut() }, || OtelThreadCtx::attach(ctx))
}

/// Empties the calling thread's slot; returns the handle that was attached, now owned by the
/// caller, or NULL (also when it was the thread's own record, which stays the thread's). Cannot
/// fail. Async-signal-safe.
#[no_mangle]
pub extern "C" fn otel_thread_ctx_detach() -> *mut OtelThreadCtx {
    OtelThreadCtx::detach()
}

/// The handle attached to the calling thread, or NULL. The library keeps ownership: detach it
/// before freeing it. Cannot fail. Async-signal-safe.
#[no_mangle]
pub extern "C" fn otel_thread_ctx_current() -> *mut OtelThreadCtx {
    OtelThreadCtx::current()
}

/// Writes new ids and flags into the record attached to the calling thread, in place
/// (attributes are kept); if none is, first attaches the thread's own record (made on first use,
/// freed by the library at thread exit). All-zero ids mean "no active span". `NULL_ARGUMENT`,
/// `OUT_OF_MEMORY`, `THREAD_EXITING`, `NO_THREAD_KEY`. Async-signal-safe once a record is
/// attached (see the header's preamble): only attaching one allocates and locks.
///
/// # Safety
/// `trace_id` and `span_id` are NULL or point to 16 and 8 readable bytes.
#[no_mangle]
pub unsafe extern "C" fn otel_thread_ctx_update(
    trace_id: *const [u8; 16],
    span_id: *const [u8; 8],
    trace_flags: u8,
) -> OtelThreadCtxStatus {
    guard(|| {
        // Safety: each is NULL or readable (caller).
        let (trace_id, span_id) = unsafe { ids(trace_id, span_id)? };
        let rec = OtelThreadCtx::current_or_attach()?;
        // Safety: `rec` is this thread's attached record.
        unsafe { OtelThreadCtxRecord::write_ids(rec, trace_id, span_id, trace_flags) };
        Ok(Status::Ok)
    })
}

/// Clears the calling thread's record in place: zero ids and flags, no attributes, and
/// `valid = 0`, OTEP 4947's "no active span" for a record that stays attached.
/// `NO_CONTEXT` (nothing done) if no record is attached. Async-signal-safe.
#[no_mangle]
pub extern "C" fn otel_thread_ctx_clear() -> OtelThreadCtxStatus {
    guard(|| {
        let h = OtelThreadCtx::current();
        if h.is_null() {
            return Ok(Status::NoContext);
        }
        // Safety: the attached record belongs to this thread.
        unsafe { OtelThreadCtxRecord::clear(h.cast()) };
        Ok(Status::Ok)
    })
}

/// Stores in `*out` the address of `ctx`'s record, valid until the handle is freed (or its
/// thread exits with it attached). Other languages write it in place there, only from the
/// thread it is attached to, following the protocol on `OtelThreadCtxRecord`.
/// `NULL_ARGUMENT`, `INVALID_HANDLE`.
///
/// # Safety
/// `ctx` may be any pointer value; `out` is NULL or a writable record pointer.
#[no_mangle]
pub unsafe extern "C" fn otel_thread_ctx_record(
    ctx: *mut OtelThreadCtx,
    out: *mut *mut OtelThreadCtxRecord,
) -> OtelThreadCtxStatus {
    // Safety: `out` is NULL or writable (caller).
    give(unsafe { out.as_mut() }, || OtelThreadCtx::live(ctx).map(|_| ctx.cast()))
}

/// Stores in `*out` the record attached to the calling thread; if none is, attaches the
/// thread's own record first (made empty on first use, emptied when attached again): the one
/// call a managed writer makes per thread before writing in place. The thread's own record stays
/// valid until the thread's exit clean-up, whoever detaches it. Statuses as
/// `otel_thread_ctx_update`; async-signal-safe when a record is attached.
///
/// # Safety
/// `out` is NULL or points to a writable record pointer.
#[no_mangle]
pub unsafe extern "C" fn otel_thread_ctx_ensure_record(out: *mut *mut OtelThreadCtxRecord) -> OtelThreadCtxStatus {
    // Safety: `out` is NULL or writable (caller).
    give(unsafe { out.as_mut() }, OtelThreadCtx::current_or_attach)
}

/// Sets attribute `key_index` (a position in the process context's attribute key map) of
/// `ctx`'s record to `value_len` bytes of UTF-8 (`value` may be NULL if 0), replacing an earlier
/// value for that key. `TRUNCATED` (stored cut to 255 bytes), `NO_SPACE` (the record's 612
/// attribute bytes are full), `INVALID_UTF8`, `NULL_ARGUMENT`, `INVALID_HANDLE`, `ATTACHED_ELSEWHERE`,
/// `OWNED_BY_THREAD`. Async-signal-safe for the handle attached to the calling thread
/// (`otel_thread_ctx_current()`); any other handle is looked up under a lock.
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
    guard(|| {
        // Safety: NULL or `value_len` readable bytes (caller).
        let value = unsafe { c_array(value, value_len)? };
        OtelThreadCtx::writable_here(ctx)?;
        // Safety: a live handle, detached or attached to this thread, so only we write it.
        unsafe { OtelThreadCtxRecord::set_attribute(ctx.cast(), key_index, value) }
    })
}

/// Removes every attribute from `ctx`'s record, in place. Statuses and signal safety as for
/// setting one.
///
/// # Safety
/// `ctx` may be any pointer value; it is only dereferenced if it is a live handle.
#[no_mangle]
pub unsafe extern "C" fn otel_thread_ctx_clear_attributes(ctx: *mut OtelThreadCtx) -> OtelThreadCtxStatus {
    guard(|| {
        OtelThreadCtx::writable_here(ctx)?;
        // Safety: a live handle, detached or attached to this thread.
        unsafe { OtelThreadCtxRecord::clear_attributes(ctx.cast()) };
        Ok(Status::Ok)
    })
}

/// Checks at run time that the loaded library exports `otel_thread_ctx_v1` as readers need
/// (dynamic, TLS, GLOBAL, 8 bytes, TLSDESC access only, small TLS segment; linked statically,
/// the executable exports it and may use initial- or local-exec) and that the dynamic linker
/// resolves it to the slot this library writes, and that no other loaded module defines or
/// references `otel_thread_ctx_v1` in its `.dynsym` (one slot per process; the message names
/// the module). Writes a NUL-terminated explanation, cut to `msg_len` bytes, into `msg` unless
/// it is NULL. `OK` or `SELF_CHECK_FAILED`.
///
/// # Safety
/// `msg` is NULL or points to `msg_len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn otel_thread_ctx_self_check(msg: *mut c_char, msg_len: usize) -> OtelThreadCtxStatus {
    let (status, text) = match catch_unwind(crate::self_check::run) {
        Ok(Ok(summary)) => (OtelThreadCtxStatus::Ok, summary),
        Ok(Err(problem)) => (OtelThreadCtxStatus::SelfCheckFailed, problem),
        Err(_) => (OtelThreadCtxStatus::Internal, "internal error during self-check".into()),
    };
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
