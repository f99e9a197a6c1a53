//! The calls the header names async-signal-safe are: a signal handler that writes the thread's
//! attached record with them must not deadlock when it interrupts the same thread inside the
//! library's handle registry lock (taken here by a loop of `new`/`free`).

use otel_thread_ctx::ffi::*;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

static HANDLED: AtomicU64 = AtomicU64::new(0);
const SIGNALS: u64 = 2_000;
static FAILED: AtomicBool = AtomicBool::new(false);

extern "C" fn write_from_handler(_: libc::c_int) {
    let h = otel_thread_ctx_current();
    let mut rec = std::ptr::null_mut();
    // Safety: the ids and the value are valid for the lengths given.
    let ok = unsafe {
        otel_thread_ctx_update(&[3; 16], &[4; 8], 1) == OtelThreadCtxStatus::Ok
            && otel_thread_ctx_set_attribute(h, 0, b"GET".as_ptr(), 3) == OtelThreadCtxStatus::Ok
            && otel_thread_ctx_clear_attributes(h) == OtelThreadCtxStatus::Ok
            && otel_thread_ctx_ensure_record(&mut rec) == OtelThreadCtxStatus::Ok
            && otel_thread_ctx_clear() == OtelThreadCtxStatus::Ok
    };
    if !ok {
        FAILED.store(true, Ordering::Relaxed);
    }
    HANDLED.fetch_add(1, Ordering::Relaxed);
}

#[test]
fn a_prepared_thread_writes_from_a_signal_handler_while_holding_the_registry_lock() {
    // Safety: installs an extern "C" handler for SIGUSR1, which only this test sends.
    unsafe {
        let mut action: libc::sigaction = core::mem::zeroed();
        action.sa_sigaction = write_from_handler as extern "C" fn(libc::c_int) as usize;
        action.sa_flags = libc::SA_RESTART;
        assert_eq!(libc::sigaction(libc::SIGUSR1, &action, std::ptr::null_mut()), 0);
    }
    let done = std::sync::Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel();
    let worker = {
        let done = done.clone();
        std::thread::spawn(move || {
            // The preparation the header asks for, outside any handler.
            let mut rec = std::ptr::null_mut();
            assert_eq!(
                unsafe { otel_thread_ctx_ensure_record(&mut rec) },
                OtelThreadCtxStatus::Ok
            );
            tx.send(unsafe { libc::pthread_self() }).unwrap();
            while !done.load(Ordering::Relaxed) {
                let mut h = std::ptr::null_mut();
                // Safety: valid ids and out pointer; `h` is ours to free.
                unsafe {
                    assert_eq!(
                        otel_thread_ctx_new(&[1; 16], &[2; 8], 1, &mut h),
                        OtelThreadCtxStatus::Ok
                    );
                    assert_eq!(otel_thread_ctx_free(h), OtelThreadCtxStatus::Ok);
                }
            }
        })
    };
    let thread = rx.recv().unwrap();
    // Signals until 2,000 were handled (pending ones merge), or none was for 10 s: a deadlocked
    // worker stops handling them.
    let (mut last, mut last_change) = (0, Instant::now());
    while last < SIGNALS && last_change.elapsed() < Duration::from_secs(10) {
        // Safety: `thread` is the worker, alive until `done` is set.
        assert_eq!(unsafe { libc::pthread_kill(thread, libc::SIGUSR1) }, 0);
        std::thread::sleep(Duration::from_micros(50));
        let handled = HANDLED.load(Ordering::Relaxed);
        if handled != last {
            (last, last_change) = (handled, Instant::now());
        }
    }
    assert!(
        last >= SIGNALS,
        "the worker stopped handling signals after {last}: deadlocked in a handler"
    );
    done.store(true, Ordering::Relaxed);
    worker.join().unwrap();
    assert!(!FAILED.load(Ordering::Relaxed), "a call from the handler failed");
}
