//! Functions only tests call, exported when the crate is built with the `test-hooks` feature
//! (never in the shipped library, nor in its header).

use crate::tls;

/// Whether sixteen 128-bit values held in registers across the calling thread's first access to
/// the slot survive it: returns how many came back changed (0 = all intact).
///
/// On the first access in a thread where the library's TLS is in dynamic (DTV) placement, glibc
/// before 2.40 runs `__tls_get_addr` inside the TLSDESC resolver without saving the vector
/// registers (bug 31372), and that allocates and clears the thread's TLS block, which clobbers
/// some. With all sixteen values live, an optimized build keeps them in xmm0..xmm15 across the
/// access unless the access declares those registers clobbered: then a clobbered one comes back
/// changed. Call it first thing on a new thread, from a release build.
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
