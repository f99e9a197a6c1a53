//! The `otel_thread_ctx_v1` TLS slot on AArch64, defined and reached the way the spec requires.
//!
//! The same design as the x86-64 module (`native/tls.rs`, which lib.rs swaps for this file on
//! AArch64): the slot is defined in assembly in `.tbss`, and every access is one `asm!` block
//! holding exactly the TLSDESC sequence gcc emits for AArch64 (`-mtls-dialect=desc`, its
//! default), the only form linkers relax. AArch64 TLS is variant I: the result of the call is the
//! slot's offset from `tpidr_el0`, positive, past the 16-byte TCB for static TLS.

use crate::record::OtelThreadCtxRecord;
use core::sync::atomic::AtomicPtr;

core::arch::global_asm!(
    ".pushsection .tbss,\"awT\",%nobits",
    ".p2align 3",
    ".globl otel_thread_ctx_v1",
    ".type otel_thread_ctx_v1,%tls_object",
    ".size otel_thread_ctx_v1,8",
    "otel_thread_ctx_v1:",
    ".zero 8",
    ".popsection",
);

/// The calling thread's slot. Readers treat it like a signal handler would, so it is accessed
/// atomically (relaxed) with compiler fences around the record writes it publishes.
#[inline(always)]
pub(crate) fn slot() -> &'static AtomicPtr<OtelThreadCtxRecord> {
    let addr: *const AtomicPtr<OtelThreadCtxRecord>;
    // Safety: the AArch64 TLSDESC contract lets the resolver change only x0 (the result), and
    // the call itself writes x30 and the sequence x1 (the resolver's address, then tpidr_el0); flags may change. glibc's resolvers have not
    // always kept that promise (on x86-64, glibc < 2.40's dynamic resolver clobbered vector
    // registers, bug 31372), so the block declares every register the C calling convention lets
    // a callee change (`clobber_abi("C")`: x0-x18 on Linux, x30, v0-v31, flags), which covers
    // any resolver written in or calling C; only the callee-saved registers are assumed kept.
    // The resolver may use the stack, hence no `nostack`. It reads only the GOT descriptor and tpidr_el0, which no Rust code
    // writes, so the block is a pure function of the calling thread.
    unsafe {
        core::arch::asm!(
            "adrp x0, :tlsdesc:otel_thread_ctx_v1",
            "ldr x1, [x0, #:tlsdesc_lo12:otel_thread_ctx_v1]",
            "add x0, x0, #:tlsdesc_lo12:otel_thread_ctx_v1",
            ".tlsdesccall otel_thread_ctx_v1",
            "blr x1",
            "mrs x1, tpidr_el0",
            "add x0, x1, x0",
            out("x0") addr,
            clobber_abi("C"),
            options(pure, nomem),
        );
    }
    // Safety: the slot is 8 bytes, 8-aligned, lives as long as the thread, and AtomicPtr has
    // the layout of a pointer. The `'static` is per thread: callers never send it elsewhere.
    unsafe { &*addr }
}
