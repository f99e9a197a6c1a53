//! A record still attached when its thread exits is unpublished and freed. Alone in its test
//! binary because it counts records process-wide.

use otel_thread_ctx::ffi::*;
use otel_thread_ctx::test_hooks::otel_thread_ctx_live_records;

#[test]
fn ten_thousand_threads_that_attach_and_exit_leave_no_record_behind() {
    let before = otel_thread_ctx_live_records();
    for batch in 0..100u64 {
        let threads: Vec<_> = (0..100u64)
            .map(|i| {
                std::thread::spawn(move || {
                    let n = batch * 100 + i;
                    let trace = [(n % 251) as u8 + 1; 16];
                    assert_eq!(
                        unsafe { otel_thread_ctx_update(&trace, &[1; 8], 1) },
                        OtelThreadCtxStatus::Ok
                    );
                    if n % 2 == 0 {
                        // Half of them also attach a handle of their own, displacing the thread's
                        // own record, which stays the thread's: both are freed at its exit.
                        let (mut h, mut displaced) = (std::ptr::null_mut(), std::ptr::null_mut());
                        assert_eq!(
                            unsafe { otel_thread_ctx_new(&trace, &[2; 8], 1, &mut h) },
                            OtelThreadCtxStatus::Ok
                        );
                        assert_eq!(
                            unsafe { otel_thread_ctx_attach(h, &mut displaced) },
                            OtelThreadCtxStatus::Ok
                        );
                        assert!(displaced.is_null());
                        if n % 4 == 0 {
                            // A quarter exit with the own record detached and nothing attached.
                            assert_eq!(otel_thread_ctx_detach(), h);
                            assert_eq!(unsafe { otel_thread_ctx_free(h) }, OtelThreadCtxStatus::Ok);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }
    assert_eq!(otel_thread_ctx_live_records(), before);
}
