//! With every pthread key of the process taken, the library cannot free a record at thread exit:
//! attaching is refused with `NO_THREAD_KEY` (nothing leaks) and the self-check says why. Alone
//! in its test binary: it uses up the process's keys before the library's first call.

use otel_thread_ctx::ffi::*;
use otel_thread_ctx::test_hooks::otel_thread_ctx_live_records;
use std::ptr::null_mut;

#[test]
fn without_a_pthread_key_attaching_is_refused_and_the_self_check_says_why() {
    let mut taken = 0;
    loop {
        let mut key: libc::pthread_key_t = 0;
        // Safety: valid out pointer, no destructor.
        if unsafe { libc::pthread_key_create(&mut key, None) } != 0 {
            break;
        }
        taken += 1;
    }
    assert!(taken > 0 && taken <= 1024, "{taken} keys");

    let before = otel_thread_ctx_live_records();
    let threads: Vec<_> = (0..100)
        .map(|_| std::thread::spawn(|| unsafe { otel_thread_ctx_update(&[1; 16], &[2; 8], 1) }))
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), OtelThreadCtxStatus::NoThreadKey);
    }
    assert_eq!(otel_thread_ctx_live_records(), before, "no record was left to leak");

    // The other attaching paths refuse the same way.
    std::thread::spawn(|| {
        let mut rec = null_mut();
        assert_eq!(
            unsafe { otel_thread_ctx_ensure_record(&mut rec) },
            OtelThreadCtxStatus::NoThreadKey
        );
        let (mut h, mut displaced) = (null_mut(), null_mut());
        assert_eq!(
            unsafe { otel_thread_ctx_new(&[1; 16], &[2; 8], 1, &mut h) },
            OtelThreadCtxStatus::Ok
        );
        assert_eq!(
            unsafe { otel_thread_ctx_attach(h, &mut displaced) },
            OtelThreadCtxStatus::NoThreadKey
        );
        assert!(otel_thread_ctx_current().is_null());
        assert_eq!(unsafe { otel_thread_ctx_free(h) }, OtelThreadCtxStatus::Ok);
    })
    .join()
    .unwrap();

    let mut msg = [0u8; 1024];
    let status = unsafe { otel_thread_ctx_self_check(msg.as_mut_ptr().cast(), msg.len()) };
    let text = std::ffi::CStr::from_bytes_until_nul(&msg)
        .unwrap()
        .to_string_lossy()
        .into_owned();
    println!("self-check: {text}");
    assert_eq!(status, OtelThreadCtxStatus::SelfCheckFailed, "{text}");
    assert!(text.contains("pthread key"), "{text}");
}
