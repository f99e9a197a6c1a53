//! A record attached after the library's thread-exit clean-up has run on a thread (from another
//! pthread key's destructor, in a later destructor round) could never be freed: glibc runs at
//! most PTHREAD_DESTRUCTOR_ITERATIONS (4) rounds. The library refuses such an attach with
//! `THREAD_EXITING` instead of leaking it. Alone in its test binary because it counts records
//! process-wide.

use otel_thread_ctx::ffi::*;
use otel_thread_ctx::test_hooks::otel_thread_ctx_live_records;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

static OTHER_KEY: AtomicI64 = AtomicI64::new(-1);
static CALLS: AtomicUsize = AtomicUsize::new(0);
static OK: AtomicUsize = AtomicUsize::new(0);
static REFUSED: AtomicUsize = AtomicUsize::new(0);

/// Another library's destructor that publishes a span every round and re-arms itself, so it
/// runs in every round up to the last one, after the otel library's clean-up in each.
extern "C" fn publish_while_exiting(_: *mut libc::c_void) {
    CALLS.fetch_add(1, Ordering::Relaxed);
    // Safety: valid pointers to local arrays.
    let status = unsafe { otel_thread_ctx_update(&[3; 16], &[4; 8], 1) };
    match status {
        OtelThreadCtxStatus::Ok => OK.fetch_add(1, Ordering::Relaxed),
        OtelThreadCtxStatus::ThreadExiting => REFUSED.fetch_add(1, Ordering::Relaxed),
        other => panic!("unexpected status {other:?}"),
    };
    let key = OTHER_KEY.load(Ordering::Relaxed) as libc::pthread_key_t;
    // Safety: a key created by this test; any non-null value re-arms it.
    unsafe { libc::pthread_setspecific(key, std::ptr::dangling::<libc::c_void>()) };
}

#[test]
fn records_attached_during_the_last_destructor_rounds_are_refused_not_leaked() {
    // The library's key first: destructors run in key order, so the other key's destructor runs
    // after the library's in each round, as in the case that leaked.
    std::thread::spawn(|| unsafe { otel_thread_ctx_update(&[1; 16], &[2; 8], 1) })
        .join()
        .unwrap();
    let mut key: libc::pthread_key_t = 0;
    // Safety: valid out pointer and an extern "C" destructor.
    assert_eq!(
        unsafe { libc::pthread_key_create(&mut key, Some(publish_while_exiting)) },
        0
    );
    OTHER_KEY.store(i64::from(key), Ordering::Relaxed);

    let before = otel_thread_ctx_live_records();
    const THREADS: usize = 100;
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            std::thread::spawn(move || {
                // Safety: valid pointers; the key was created above.
                unsafe {
                    assert_eq!(otel_thread_ctx_update(&[5; 16], &[6; 8], 1), OtelThreadCtxStatus::Ok);
                    libc::pthread_setspecific(key, std::ptr::dangling::<libc::c_void>());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let (calls, ok, refused) = (
        CALLS.load(Ordering::Relaxed),
        OK.load(Ordering::Relaxed),
        REFUSED.load(Ordering::Relaxed),
    );
    println!("destructor calls {calls}: {ok} attached, {refused} refused");
    assert_eq!(calls, THREADS * 4, "glibc runs 4 destructor rounds");
    assert_eq!(otel_thread_ctx_live_records(), before, "no record outlives its thread");
    assert_eq!(refused, calls, "every attach after the clean-up is refused");
}
