//! The `otel_thread_ctx_v1` TLS slot, defined and reached the way the spec requires.
//!
//! Stable Rust cannot choose the TLS access model of a `thread_local!`, and the spec needs
//! TLSDESC (local-dynamic is unsupported by readers). So the slot is defined in assembly in
//! `.tbss`, and every access goes through one `asm!` block holding exactly the TLSDESC sequence
//! a C compiler emits with `-mtls-dialect=gnu2`; linkers only relax that exact sequence.

use crate::record::OtelThreadCtxRecord;
use core::sync::atomic::AtomicPtr;

core::arch::global_asm!(
    ".pushsection .tbss,\"awT\",@nobits",
    ".p2align 3",
    ".globl otel_thread_ctx_v1",
    ".type otel_thread_ctx_v1,@tls_object",
    ".size otel_thread_ctx_v1,8",
    "otel_thread_ctx_v1:",
    ".zero 8",
    ".popsection",
    options(att_syntax)
);

/// The calling thread's slot. Readers treat it like a signal handler would, so it is accessed
/// atomically (relaxed) with compiler fences around the record writes it publishes.
#[inline(always)]
pub(crate) fn slot() -> &'static AtomicPtr<OtelThreadCtxRecord> {
    let addr: *const AtomicPtr<OtelThreadCtxRecord>;
    // Safety: the TLSDESC resolver called here preserves every register except rax and the
    // flags (the asm's only outputs/clobbers), and may use the stack, which is why `nostack` is
    // absent. It reads only the GOT descriptor and %fs, which no Rust code writes, so the block
    // is a pure function of the calling thread.
    unsafe {
        core::arch::asm!(
            "lea otel_thread_ctx_v1@tlsdesc(%rip), %rax",
            "call *otel_thread_ctx_v1@tlscall(%rax)",
            "add %fs:0, %rax",
            out("rax") addr,
            options(att_syntax, pure, nomem),
        );
    }
    // Safety: the slot is 8 bytes, 8-aligned, lives as long as the thread, and AtomicPtr has
    // the layout of a pointer. The `'static` is per thread: callers never send it elsewhere.
    unsafe { &*addr }
}
