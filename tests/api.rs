//! The C API's contract, exercised in process through the rlib.

mod common;

use otel_thread_ctx::ffi::*;
use otel_thread_ctx::record::{OtelThreadCtxRecord, OTEL_THREAD_CTX_RECORD_SIZE};
use otel_thread_ctx::test_hooks::*;
use std::ptr::null_mut;

const TRACE: [u8; 16] = [
    0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36,
];
const SPAN: [u8; 8] = [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7];

fn read_current() -> Option<Box<OtelThreadCtxRecord>> {
    // Safety: all-zero bytes are a valid record; read_current overwrites it.
    let mut rec: Box<OtelThreadCtxRecord> = Box::new(unsafe { std::mem::zeroed() });
    match unsafe { otel_thread_ctx_read_current(&mut *rec) } {
        OtelThreadCtxStatus::Ok => Some(rec),
        OtelThreadCtxStatus::NoContext => None,
        other => panic!("read_current failed: {other:?}"),
    }
}

/// `otel_thread_ctx_new`, which must succeed.
fn new(trace: &[u8; 16], span: &[u8; 8], flags: u8) -> *mut OtelThreadCtx {
    let mut h = null_mut();
    assert_eq!(
        unsafe { otel_thread_ctx_new(trace, span, flags, &mut h) },
        OtelThreadCtxStatus::Ok
    );
    assert!(!h.is_null());
    h
}

/// `otel_thread_ctx_attach`: the displaced handle, or the status (the out-parameter must then
/// be NULL).
fn attach(h: *mut OtelThreadCtx) -> Result<*mut OtelThreadCtx, OtelThreadCtxStatus> {
    let mut displaced = std::ptr::dangling_mut::<OtelThreadCtx>();
    match unsafe { otel_thread_ctx_attach(h, &mut displaced) } {
        OtelThreadCtxStatus::Ok => Ok(displaced),
        status => {
            assert!(displaced.is_null(), "{status:?} leaves *displaced NULL");
            Err(status)
        }
    }
}

/// `otel_thread_ctx_record`: the address, or the status (the out-parameter must then be NULL).
fn record(h: *mut OtelThreadCtx) -> Result<*mut OtelThreadCtxRecord, OtelThreadCtxStatus> {
    let mut rec = std::ptr::dangling_mut::<OtelThreadCtxRecord>();
    match unsafe { otel_thread_ctx_record(h, &mut rec) } {
        OtelThreadCtxStatus::Ok => Ok(rec),
        status => {
            assert!(rec.is_null(), "{status:?} leaves *out NULL");
            Err(status)
        }
    }
}

/// `otel_thread_ctx_ensure_record`, which must succeed.
fn ensure_record() -> *mut OtelThreadCtxRecord {
    let mut rec = null_mut();
    assert_eq!(
        unsafe { otel_thread_ctx_ensure_record(&mut rec) },
        OtelThreadCtxStatus::Ok
    );
    assert!(!rec.is_null());
    rec
}

/// Runs `f` on a fresh thread, so each test starts with an empty slot and leaves none behind.
fn on_new_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(f).join().expect("test thread panicked")
}

#[test]
fn thread_without_context_reads_no_context() {
    on_new_thread(|| assert!(read_current().is_none()));
}

#[test]
fn update_attaches_a_record_that_read_current_sees() {
    on_new_thread(|| {
        assert_eq!(
            unsafe { otel_thread_ctx_update(&TRACE, &SPAN, 1) },
            OtelThreadCtxStatus::Ok
        );
        let rec = read_current().expect("attached");
        assert_eq!(
            (rec.trace_id, rec.span_id, rec.trace_flags, rec.valid),
            (TRACE, SPAN, 1, 1)
        );
        assert_eq!(rec.attrs_data_size, 0);
    });
}

#[test]
fn update_rewrites_the_same_record_in_place() {
    on_new_thread(|| {
        let first = ensure_record();
        assert!(!first.is_null());
        for n in 0..100u64 {
            let (t, s, f) = common::ids_for(n);
            assert_eq!(unsafe { otel_thread_ctx_update(&t, &s, f) }, OtelThreadCtxStatus::Ok);
            assert_eq!(ensure_record(), first);
        }
        let rec = read_current().unwrap();
        assert_eq!((rec.trace_id, rec.span_id, rec.trace_flags), common::ids_for(99));
    });
}

#[test]
fn ensure_record_returns_the_attached_handles_record() {
    on_new_thread(|| {
        let h = new(&TRACE, &SPAN, 1);
        attach(h).unwrap();
        assert_eq!(ensure_record(), record(h).unwrap());
        assert_eq!(otel_thread_ctx_detach(), h);
        assert_eq!(unsafe { otel_thread_ctx_free(h) }, OtelThreadCtxStatus::Ok);
    });
}

#[test]
fn each_thread_sees_only_its_own_values() {
    let threads: Vec<_> = (0..8u64)
        .map(|n| {
            std::thread::spawn(move || {
                let (t, s, f) = common::ids_for(n + 1000);
                unsafe { otel_thread_ctx_update(&t, &s, f) };
                std::thread::sleep(std::time::Duration::from_millis(20));
                let rec = read_current().unwrap();
                (rec.trace_id, rec.span_id, rec.trace_flags) == common::ids_for(n + 1000)
            })
        })
        .collect();
    for t in threads {
        assert!(t.join().unwrap());
    }
}

#[test]
fn new_record_is_valid_and_holds_the_given_ids() {
    let h = new(&TRACE, &SPAN, 1);
    assert!(!h.is_null());
    let rec = unsafe { &*record(h).unwrap() };
    assert_eq!(
        (rec.trace_id, rec.span_id, rec.trace_flags, rec.valid),
        (TRACE, SPAN, 1, 1)
    );
    assert_eq!(record(h).unwrap() as usize % 8, 0, "record is 8-byte aligned");
    assert_eq!(unsafe { otel_thread_ctx_free(h) }, OtelThreadCtxStatus::Ok);
}

/// One status per meaning across the C API: the thread and the process calls say "a NULL
/// argument" and "not valid UTF-8" with one number each (once they used two).
#[test]
fn thread_and_process_calls_share_one_status_per_meaning() {
    use otel_thread_ctx::process_context::ffi::{otel_process_ctx_declare_key, otel_process_ctx_publish};
    use std::ptr::null as none;
    let h = new(&TRACE, &SPAN, 0);
    let mut index = 0;
    // Safety: the NULL pointers are refused before any use; the rest are live for the calls.
    let (null, utf8) = unsafe {
        (
            [
                otel_thread_ctx_update(none(), &SPAN, 0),
                otel_process_ctx_publish(none(), 1, none(), 0, none(), 0),
                otel_process_ctx_declare_key(none(), &mut index),
            ],
            [
                otel_thread_ctx_set_attribute(h, 0, [0xff].as_ptr(), 1),
                otel_process_ctx_declare_key(c"\xff".as_ptr(), &mut index),
            ],
        )
    };
    assert_eq!(null, [OtelThreadCtxStatus::NullArgument; 3]);
    assert_eq!(OtelThreadCtxStatus::NullArgument as i32, -1);
    assert_eq!(utf8, [OtelThreadCtxStatus::InvalidUtf8; 2]);
    assert_eq!(unsafe { otel_thread_ctx_free(h) }, OtelThreadCtxStatus::Ok);
}

#[test]
fn attach_then_detach_round_trips_the_handle() {
    on_new_thread(|| {
        let h = new(&TRACE, &SPAN, 1);
        assert_eq!(attach(h), Ok(null_mut()));
        assert_eq!(otel_thread_ctx_current(), h);
        assert_eq!(read_current().unwrap().trace_id, TRACE);
        assert_eq!(otel_thread_ctx_detach(), h);
        assert!(read_current().is_none());
        assert!(otel_thread_ctx_detach().is_null());
        assert_eq!(unsafe { otel_thread_ctx_free(h) }, OtelThreadCtxStatus::Ok);
    });
}

#[test]
fn attach_returns_the_displaced_handle_to_the_caller() {
    on_new_thread(|| {
        let a = new(&TRACE, &SPAN, 1);
        let b = new(&[7; 16], &[8; 8], 0);
        attach(a).unwrap();
        assert_eq!(attach(b), Ok(a));
        assert_eq!(read_current().unwrap().trace_id, [7; 16]);
        assert_eq!(
            unsafe { otel_thread_ctx_free(a) },
            OtelThreadCtxStatus::Ok,
            "displaced handle is free-able"
        );
        assert_eq!(otel_thread_ctx_detach(), b);
        assert_eq!(unsafe { otel_thread_ctx_free(b) }, OtelThreadCtxStatus::Ok);
    });
}

#[test]
fn attaching_the_already_attached_handle_changes_nothing() {
    on_new_thread(|| {
        let h = new(&TRACE, &SPAN, 1);
        attach(h).unwrap();
        assert_eq!(attach(h), Ok(null_mut()));
        assert_eq!(otel_thread_ctx_current(), h);
        assert_eq!(otel_thread_ctx_detach(), h);
        unsafe { otel_thread_ctx_free(h) };
    });
}

#[test]
fn handle_attached_to_another_thread_cannot_be_attached_written_or_freed() {
    let h = new(&TRACE, &SPAN, 1) as usize;
    let (attached_tx, attached_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let owner = std::thread::spawn(move || {
        attach(h as *mut _).unwrap();
        attached_tx.send(()).unwrap();
        done_rx.recv().unwrap();
        assert_eq!(otel_thread_ctx_detach() as usize, h);
    });
    attached_rx.recv().unwrap();
    let h = h as *mut _;
    assert_eq!(attach(h), Err(OtelThreadCtxStatus::AttachedElsewhere));
    assert!(otel_thread_ctx_current().is_null(), "nothing was attached here");
    assert_eq!(
        unsafe { otel_thread_ctx_set_attribute(h, 0, b"x".as_ptr(), 1) },
        OtelThreadCtxStatus::AttachedElsewhere
    );
    assert_eq!(
        unsafe { otel_thread_ctx_clear_attributes(h) },
        OtelThreadCtxStatus::AttachedElsewhere
    );
    assert_eq!(unsafe { otel_thread_ctx_free(h) }, OtelThreadCtxStatus::HandleAttached);
    done_tx.send(()).unwrap();
    owner.join().unwrap();
    assert_eq!(unsafe { otel_thread_ctx_free(h) }, OtelThreadCtxStatus::Ok);
}

#[test]
fn freeing_an_attached_handle_is_refused() {
    on_new_thread(|| {
        let h = new(&TRACE, &SPAN, 1);
        attach(h).unwrap();
        assert_eq!(unsafe { otel_thread_ctx_free(h) }, OtelThreadCtxStatus::HandleAttached);
        assert_eq!(read_current().unwrap().trace_id, TRACE, "still published");
        otel_thread_ctx_detach();
        assert_eq!(unsafe { otel_thread_ctx_free(h) }, OtelThreadCtxStatus::Ok);
    });
}

#[test]
fn double_free_is_refused() {
    let h = new(&TRACE, &SPAN, 1);
    assert_eq!(unsafe { otel_thread_ctx_free(h) }, OtelThreadCtxStatus::Ok);
    assert_eq!(unsafe { otel_thread_ctx_free(h) }, OtelThreadCtxStatus::InvalidHandle);
}

#[test]
fn unknown_pointers_are_refused_everywhere() {
    let mut not_a_handle = [0u64; 128];
    let bogus = not_a_handle.as_mut_ptr().cast();
    assert_eq!(
        unsafe { otel_thread_ctx_free(bogus) },
        OtelThreadCtxStatus::InvalidHandle
    );
    assert_eq!(attach(bogus), Err(OtelThreadCtxStatus::InvalidHandle));
    assert_eq!(record(bogus), Err(OtelThreadCtxStatus::InvalidHandle));
    assert_eq!(
        unsafe { otel_thread_ctx_set_attribute(bogus, 0, b"x".as_ptr(), 1) },
        OtelThreadCtxStatus::InvalidHandle
    );
    assert_eq!(
        unsafe { otel_thread_ctx_clear_attributes(bogus) },
        OtelThreadCtxStatus::InvalidHandle
    );
    assert_eq!(
        not_a_handle, [0u64; 128],
        "nothing was written through the bogus pointer"
    );
}

#[test]
fn null_arguments_are_refused() {
    let mut h = std::ptr::dangling_mut::<OtelThreadCtx>();
    assert_eq!(
        unsafe { otel_thread_ctx_new(std::ptr::null(), &SPAN, 0, &mut h) },
        OtelThreadCtxStatus::NullArgument
    );
    assert!(h.is_null(), "*out is NULL on error");
    assert_eq!(
        unsafe { otel_thread_ctx_new(&TRACE, std::ptr::null(), 0, &mut h) },
        OtelThreadCtxStatus::NullArgument
    );
    assert_eq!(
        unsafe { otel_thread_ctx_new(&TRACE, &SPAN, 0, null_mut()) },
        OtelThreadCtxStatus::NullArgument
    );
    assert_eq!(
        unsafe { otel_thread_ctx_free(null_mut()) },
        OtelThreadCtxStatus::NullArgument
    );
    assert_eq!(attach(null_mut()), Err(OtelThreadCtxStatus::NullArgument));
    assert_eq!(record(null_mut()), Err(OtelThreadCtxStatus::NullArgument));
    assert_eq!(
        unsafe { otel_thread_ctx_ensure_record(null_mut()) },
        OtelThreadCtxStatus::NullArgument
    );
    assert_eq!(
        unsafe { otel_thread_ctx_update(std::ptr::null(), &SPAN, 0) },
        OtelThreadCtxStatus::NullArgument
    );
    assert_eq!(
        unsafe { otel_thread_ctx_update(&TRACE, std::ptr::null(), 0) },
        OtelThreadCtxStatus::NullArgument
    );
    assert_eq!(
        unsafe { otel_thread_ctx_read_current(null_mut()) },
        OtelThreadCtxStatus::NullArgument
    );
    assert_eq!(
        unsafe { otel_thread_ctx_set_attribute(null_mut(), 0, b"x".as_ptr(), 1) },
        OtelThreadCtxStatus::NullArgument
    );
    assert_eq!(
        unsafe { otel_thread_ctx_clear_attributes(null_mut()) },
        OtelThreadCtxStatus::NullArgument
    );
    let h = new(&TRACE, &SPAN, 0);
    // The out-parameters are checked before anything changes: the handle stays detached.
    assert_eq!(
        unsafe { otel_thread_ctx_attach(h, null_mut()) },
        OtelThreadCtxStatus::NullArgument
    );
    assert_eq!(
        unsafe { otel_thread_ctx_record(h, null_mut()) },
        OtelThreadCtxStatus::NullArgument
    );
    assert_eq!(
        unsafe { otel_thread_ctx_set_attribute(h, 0, std::ptr::null(), 3) },
        OtelThreadCtxStatus::NullArgument
    );
    assert_eq!(
        unsafe { otel_thread_ctx_set_attribute(h, 0, std::ptr::null(), 0) },
        OtelThreadCtxStatus::Ok
    );
    assert_eq!(unsafe { otel_thread_ctx_free(h) }, OtelThreadCtxStatus::Ok);
}

#[test]
fn attributes_set_on_the_attached_record_are_visible_to_readers() {
    on_new_thread(|| {
        unsafe { otel_thread_ctx_update(&TRACE, &SPAN, 1) };
        let h = otel_thread_ctx_current();
        assert_eq!(
            unsafe { otel_thread_ctx_set_attribute(h, 1, b"GET".as_ptr(), 3) },
            OtelThreadCtxStatus::Ok
        );
        assert_eq!(
            unsafe { otel_thread_ctx_set_attribute(h, 0, b"/a".as_ptr(), 2) },
            OtelThreadCtxStatus::Ok
        );
        let rec = read_current().unwrap();
        assert_eq!(
            &rec.attrs_data[..usize::from(rec.attrs_data_size)],
            &[1, 3, b'G', b'E', b'T', 0, 2, b'/', b'a']
        );
        assert_eq!(unsafe { otel_thread_ctx_clear_attributes(h) }, OtelThreadCtxStatus::Ok);
        assert_eq!(read_current().unwrap().attrs_data_size, 0);
        assert_eq!(
            read_current().unwrap().trace_id,
            TRACE,
            "ids survive clearing attributes"
        );
    });
}

#[test]
fn oversized_attribute_is_reported_truncated_and_unfitting_one_refused() {
    on_new_thread(|| {
        ensure_record();
        let h = otel_thread_ctx_current();
        let long = vec![b'v'; 300];
        assert_eq!(
            unsafe { otel_thread_ctx_set_attribute(h, 0, long.as_ptr(), 300) },
            OtelThreadCtxStatus::Truncated
        );
        assert_eq!(
            unsafe { otel_thread_ctx_set_attribute(h, 1, long.as_ptr(), 255) },
            OtelThreadCtxStatus::Ok
        );
        assert_eq!(
            unsafe { otel_thread_ctx_set_attribute(h, 2, long.as_ptr(), 100) },
            OtelThreadCtxStatus::NoSpace
        );
        assert_eq!(read_current().unwrap().attrs_data_size, 2 * 257);
        assert_eq!(
            unsafe { otel_thread_ctx_set_attribute(h, 3, [0xc3u8, 0x28].as_ptr(), 2) },
            OtelThreadCtxStatus::InvalidUtf8
        );
    });
}

#[test]
fn clear_leaves_the_record_attached_with_valid_0_and_nothing_else() {
    on_new_thread(|| {
        assert_eq!(otel_thread_ctx_clear(), OtelThreadCtxStatus::NoContext);
        unsafe { otel_thread_ctx_update(&TRACE, &SPAN, 1) };
        unsafe { otel_thread_ctx_set_attribute(otel_thread_ctx_current(), 0, b"x".as_ptr(), 1) };
        assert_eq!(otel_thread_ctx_clear(), OtelThreadCtxStatus::Ok);
        let rec = read_current().unwrap();
        assert_eq!(
            (
                rec.trace_id,
                rec.span_id,
                rec.trace_flags,
                rec.attrs_data_size,
                rec.valid
            ),
            ([0; 16], [0; 8], 0, 0, 0),
            "no span: valid 0, the rest zeroed"
        );
    });
}

#[test]
fn read_current_copies_exactly_one_record() {
    on_new_thread(|| {
        unsafe { otel_thread_ctx_update(&TRACE, &SPAN, 1) };
        let mut buf = vec![0xeeu8; OTEL_THREAD_CTX_RECORD_SIZE + 16];
        let status = unsafe { otel_thread_ctx_read_current(buf.as_mut_ptr().cast()) };
        assert_eq!(status, OtelThreadCtxStatus::Ok);
        assert_eq!(&buf[..16], &TRACE);
        assert_eq!(&buf[OTEL_THREAD_CTX_RECORD_SIZE..], &[0xee; 16]);
    });
}

#[test]
fn version_is_the_crate_version() {
    let v = unsafe { std::ffi::CStr::from_ptr(otel_thread_ctx_version()) };
    assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
}

#[test]
fn a_detached_handle_outlives_its_thread_until_freed() {
    let h = std::thread::spawn(|| {
        let h = new(&[3; 16], &[4; 8], 1);
        attach(h).unwrap();
        otel_thread_ctx_detach() as usize
    })
    .join()
    .unwrap() as *mut _;
    let rec = unsafe { &*record(h).unwrap() };
    assert_eq!(rec.trace_id, [3; 16]);
    assert_eq!(unsafe { otel_thread_ctx_free(h) }, OtelThreadCtxStatus::Ok);
}

#[test]
fn the_whole_w3c_trace_flags_byte_passes_through() {
    on_new_thread(|| {
        // Sampled (bit 0) and random trace id (bit 1), as W3C Trace Context level 2 writes them.
        assert_eq!(
            unsafe { otel_thread_ctx_update(&TRACE, &SPAN, 0x03) },
            OtelThreadCtxStatus::Ok
        );
        assert_eq!(read_current().unwrap().trace_flags, 0x03);
        let mut h = null_mut();
        assert_eq!(
            unsafe { otel_thread_ctx_new(&TRACE, &SPAN, 0xff, &mut h) },
            OtelThreadCtxStatus::Ok
        );
        assert_eq!(unsafe { (*record(h).unwrap()).trace_flags }, 0xff);
        assert_eq!(unsafe { otel_thread_ctx_free(h) }, OtelThreadCtxStatus::Ok);
    });
}
