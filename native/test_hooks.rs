//! Functions only tests call, exported when the crate is built with the `test-hooks` feature
//! (never in the shipped library, nor in its header: cbindgen.toml excludes them). They look at
//! the library from inside, as no user needs to: a profiler reads records and the process
//! context from outside.

use crate::record::{OtelThreadCtxRecord, OTEL_THREAD_CTX_RECORD_SIZE};
use crate::status::OtelThreadCtxStatus;
use crate::tls;
use std::panic::catch_unwind;

/// Copies the record the calling thread's `otel_thread_ctx_v1` slot points at into `*out`,
/// exactly as an out-of-process reader would find it. `NO_CONTEXT` if the slot is empty. Only
/// loads the slot and copies: async-signal-safe, for samplers in signal handlers.
///
/// # Safety
/// `out` is NULL or points to `OTEL_THREAD_CTX_RECORD_SIZE` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn otel_thread_ctx_read_current(out: *mut OtelThreadCtxRecord) -> OtelThreadCtxStatus {
    if out.is_null() {
        return OtelThreadCtxStatus::NullArgument;
    }
    let rec = tls::slot().load(core::sync::atomic::Ordering::Relaxed);
    if rec.is_null() {
        return OtelThreadCtxStatus::NoContext;
    }
    // Safety: a non-null slot points to a live record; `out` has room for one (caller).
    unsafe { core::ptr::copy_nonoverlapping(rec.cast::<u8>(), out.cast::<u8>(), OTEL_THREAD_CTX_RECORD_SIZE) };
    OtelThreadCtxStatus::Ok
}

/// How many records are allocated and not yet freed, across all threads (for leak checks).
#[no_mangle]
pub extern "C" fn otel_thread_ctx_live_records() -> usize {
    catch_unwind(|| crate::handle::LIVE.lock().len()).unwrap_or(0)
}

/// Copies the published payload (the protobuf ProcessContext message) into `buffer`.
/// `*payload_size` receives its size; `BUFFER_TOO_SMALL` (nothing copied) if `capacity` is less.
/// `NOT_PUBLISHED` (size 0) if this process has none. `buffer` may be NULL when `capacity` is 0,
/// to ask for the size.
///
/// # Safety
/// `buffer` is NULL with `capacity` 0 or points to `capacity` writable bytes; `payload_size`
/// is NULL or points to a writable size_t.
#[no_mangle]
pub unsafe extern "C" fn otel_process_ctx_read_payload(
    buffer: *mut u8,
    capacity: usize,
    payload_size: *mut usize,
) -> OtelThreadCtxStatus {
    if payload_size.is_null() || (buffer.is_null() && capacity != 0) {
        return OtelThreadCtxStatus::NullArgument;
    }
    catch_unwind(|| {
        let Some(bytes) = crate::process_context::published_payload() else {
            // Safety: checked non-null; writable per the caller's contract.
            unsafe { *payload_size = 0 };
            return OtelThreadCtxStatus::NotPublished;
        };
        // Safety: as above.
        unsafe { *payload_size = bytes.len() };
        if bytes.len() > capacity {
            return OtelThreadCtxStatus::BufferTooSmall;
        }
        // Safety: `buffer` has `capacity` ≥ len writable bytes and cannot overlap our copy.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), buffer, bytes.len()) };
        OtelThreadCtxStatus::Ok
    })
    .unwrap_or(OtelThreadCtxStatus::Internal)
}

/// Whether sixteen 128-bit values held in registers across the calling thread's first access to
/// the slot survive it: returns how many came back changed (0 = all intact).
///
/// On the first access in a thread where the library's TLS is in dynamic (DTV) placement, glibc
/// before 2.40 runs `__tls_get_addr` inside the TLSDESC resolver without saving the vector
/// registers (bug 31372), and that allocates and clears the thread's TLS block, which clobbers
/// some. With all sixteen values live, an optimized build keeps them in xmm0..xmm15 across the
/// access unless the access declares those registers clobbered: then a clobbered one comes back
/// changed. Call it first thing on a new thread, from a release build.
#[cfg(target_arch = "x86_64")]
#[no_mangle]
pub extern "C" fn otel_thread_ctx_test_vector_probe(seed: u64) -> u32 {
    use core::arch::x86_64::{__m128i, _mm_cmpeq_epi8, _mm_movemask_epi8, _mm_set_epi64x};
    let s = core::hint::black_box(seed);
    let values: [__m128i; 16] = core::array::from_fn(|i| {
        let i = i as u64;
        // Safety: SSE2 is part of the x86-64 baseline.
        unsafe { _mm_set_epi64x((s ^ i) as i64, s.wrapping_mul(i + 3) as i64) }
    });
    // A copy in memory the compiler cannot tie back to `values`, to compare with afterwards.
    let saved = core::hint::black_box(values);
    core::hint::black_box(tls::slot());
    let mut changed = 0;
    for (now, before) in values.iter().zip(saved.iter()) {
        // Safety: SSE2 is part of the x86-64 baseline.
        if unsafe { _mm_movemask_epi8(_mm_cmpeq_epi8(*now, *before)) } != 0xffff {
            changed += 1;
        }
    }
    changed
}

/// The same probe on AArch64: sixteen 128-bit NEON values (v0-v7 and v16-v31 are caller-saved
/// there, v8-v15 only in their low halves) live across the first access to the slot.
#[cfg(target_arch = "aarch64")]
#[no_mangle]
pub extern "C" fn otel_thread_ctx_test_vector_probe(seed: u64) -> u32 {
    use core::arch::aarch64::{uint64x2_t, vandq_u64, vceqq_u64, vcombine_u64, vcreate_u64, vgetq_lane_u64};
    let s = core::hint::black_box(seed);
    let values: [uint64x2_t; 16] = core::array::from_fn(|i| {
        let i = i as u64;
        // Safety: NEON is part of the AArch64 baseline.
        unsafe { vcombine_u64(vcreate_u64(s ^ i), vcreate_u64(s.wrapping_mul(i + 3))) }
    });
    // A copy in memory the compiler cannot tie back to `values`, to compare with afterwards.
    let saved = core::hint::black_box(values);
    core::hint::black_box(tls::slot());
    let mut changed = 0;
    for (now, before) in values.iter().zip(saved.iter()) {
        // Safety: NEON is part of the AArch64 baseline.
        let same = unsafe {
            let eq = vceqq_u64(*now, *before);
            vgetq_lane_u64::<0>(vandq_u64(eq, eq)) == u64::MAX && vgetq_lane_u64::<1>(eq) == u64::MAX
        };
        if !same {
            changed += 1;
        }
    }
    changed
}

/// Unpublishes the process context, if published, and forgets the process's attribute key map,
/// which outlives a publication, and its schema version choice, so that tests in one binary
/// start afresh.
#[no_mangle]
pub extern "C" fn otel_process_ctx_forget_key_map() {
    let _ = catch_unwind(crate::process_context::forget_key_map);
}
