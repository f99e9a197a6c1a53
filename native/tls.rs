//! The `otel_thread_ctx_v1` TLS slot. Stable Rust cannot choose a `thread_local!`'s TLS access
//! model and the spec needs TLSDESC, so the slot is defined in assembly in `.tbss` and reached
//! through one `asm!` block holding exactly the TLSDESC sequence gcc emits (x86-64:
//! `-mtls-dialect=gnu2`; AArch64: `desc`, its default), the only one linkers relax.

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
    // Safety: the resolver should change only the result register (x86-64: rax and the flags;
    // AArch64: x0, with x1 and x30 written by the sequence), but glibc before 2.40 clobbers
    // vector registers on a thread's first dynamic-TLS access (bug 31372), so the block declares
    // all a C call may clobber (`clobber_abi("C")`); it may use the stack (no `nostack`). It
    // reads only the GOT descriptor and the thread pointer, which no Rust code writes: a pure
    // function of the calling thread.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        core::arch::asm!(
            "lea otel_thread_ctx_v1@tlsdesc(%rip), %rax",
            "call *otel_thread_ctx_v1@tlscall(%rax)",
            "add %fs:0, %rax",
            out("rax") addr,
            clobber_abi("C"),
            options(att_syntax, pure, nomem),
        );
    }
    // Safety: as above. The call returns the slot's offset from tpidr_el0 (TLS variant I).
    #[cfg(target_arch = "aarch64")]
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
