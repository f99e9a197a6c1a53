//! The ownership rule for a thread's own record (the one `update` and `ensure_record` attach):
//! it belongs to its thread until the thread exits, whoever detaches it, so an address taken
//! with `ensure_record` never dangles while the thread runs.

mod common;

use otel_thread_ctx::ffi::*;
use otel_thread_ctx::record::OtelThreadCtxRecord;
use otel_thread_ctx::test_hooks::*;
use std::ptr::null_mut;

const TRACE: [u8; 16] = [7; 16];
const SPAN: [u8; 8] = [9; 8];
/// An allocation of the size (and alignment class) of a record's handle, which malloc would
/// hand out from a freed handle's memory.
const HANDLE_BYTES: usize = 704;

fn on_new_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(f).join().expect("test thread panicked")
}

fn ensure_record() -> *mut OtelThreadCtxRecord {
    let mut rec = null_mut();
    assert_eq!(
        unsafe { otel_thread_ctx_ensure_record(&mut rec) },
        OtelThreadCtxStatus::Ok
    );
    rec
}

fn new_handle() -> *mut OtelThreadCtx {
    let mut h = null_mut();
    assert_eq!(
        unsafe { otel_thread_ctx_new(&TRACE, &SPAN, 1, &mut h) },
        OtelThreadCtxStatus::Ok
    );
    h
}

fn current_ids() -> Option<([u8; 16], [u8; 8], u8)> {
    let mut rec = Box::new(core::mem::MaybeUninit::<OtelThreadCtxRecord>::uninit());
    let status = unsafe { otel_thread_ctx_read_current(rec.as_mut_ptr()) };
    // Safety: filled when Ok.
    (status == OtelThreadCtxStatus::Ok).then(|| {
        let rec = unsafe { rec.assume_init_ref() };
        (rec.trace_id, rec.span_id, rec.trace_flags)
    })
}

/// The C sequence that freed the record under a cached address: ensure_record, detach, free,
/// malloc of the same size, then a write through the address.
#[test]
fn detach_and_free_leave_the_ensure_record_address_valid() {
    on_new_thread(|| {
        let rec = ensure_record();
        let own = otel_thread_ctx_current();
        assert!(
            otel_thread_ctx_detach().is_null(),
            "the own record is not handed to the caller"
        );
        assert_eq!(unsafe { otel_thread_ctx_free(own) }, OtelThreadCtxStatus::OwnedByThread);
        let buffers: Vec<*mut u8> = (0..8)
            .map(|_| {
                let b = unsafe { libc::malloc(HANDLE_BYTES) }.cast::<u8>();
                unsafe { b.write_bytes(0xAB, HANDLE_BYTES) };
                b
            })
            .collect();
        // The address is still the thread's record: writing there touches no one's buffer,
        // and `update` publishes it again.
        unsafe { (*rec).trace_flags = 0 };
        assert_eq!(
            unsafe { otel_thread_ctx_update(&TRACE, &SPAN, 1) },
            OtelThreadCtxStatus::Ok
        );
        assert_eq!(ensure_record(), rec);
        assert_eq!(current_ids(), Some((TRACE, SPAN, 1)));
        for b in buffers {
            let bytes = unsafe { std::slice::from_raw_parts(b, HANDLE_BYTES) };
            assert!(bytes.iter().all(|&x| x == 0xAB), "a malloc'd buffer was written");
            unsafe { libc::free(b.cast()) };
        }
    });
}

#[test]
fn attach_hands_back_null_in_place_of_the_own_record() {
    on_new_thread(|| {
        let rec = ensure_record();
        let h = new_handle();
        let mut displaced = h; // anything non-null, to see it overwritten
        assert_eq!(
            unsafe { otel_thread_ctx_attach(h, &mut displaced) },
            OtelThreadCtxStatus::Ok
        );
        assert!(displaced.is_null());
        // Control: a handle made by `new` is handed back, and freed by its owner.
        assert_eq!(otel_thread_ctx_detach(), h);
        assert_eq!(unsafe { otel_thread_ctx_free(h) }, OtelThreadCtxStatus::Ok);
        assert_eq!(ensure_record(), rec, "the same own record is attached again");
    });
}

#[test]
fn the_own_record_attached_again_holds_no_span() {
    on_new_thread(|| {
        assert_eq!(
            unsafe { otel_thread_ctx_update(&TRACE, &SPAN, 1) },
            OtelThreadCtxStatus::Ok
        );
        let h = new_handle();
        let mut displaced = null_mut();
        assert_eq!(
            unsafe { otel_thread_ctx_attach(h, &mut displaced) },
            OtelThreadCtxStatus::Ok
        );
        assert_eq!(otel_thread_ctx_detach(), h);
        ensure_record();
        assert_eq!(current_ids(), Some(([0; 16], [0; 8], 0)));
        assert_eq!(unsafe { otel_thread_ctx_free(h) }, OtelThreadCtxStatus::Ok);
    });
}

#[test]
fn another_thread_cannot_attach_write_or_free_a_threads_own_record() {
    on_new_thread(|| {
        ensure_record();
        let own = otel_thread_ctx_current() as usize;
        assert!(otel_thread_ctx_detach().is_null());
        let statuses = on_new_thread(move || {
            let own = own as *mut OtelThreadCtx;
            let mut displaced = null_mut();
            [
                unsafe { otel_thread_ctx_attach(own, &mut displaced) },
                unsafe { otel_thread_ctx_set_attribute(own, 0, b"x".as_ptr(), 1) },
                unsafe { otel_thread_ctx_clear_attributes(own) },
                unsafe { otel_thread_ctx_free(own) },
            ]
        });
        assert_eq!(statuses, [OtelThreadCtxStatus::OwnedByThread; 4]);
        // Control: its own thread may write it while detached.
        let own = own as *mut OtelThreadCtx;
        assert_eq!(
            unsafe { otel_thread_ctx_set_attribute(own, 0, b"x".as_ptr(), 1) },
            OtelThreadCtxStatus::Ok
        );
    });
}
