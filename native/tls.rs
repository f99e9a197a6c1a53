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
    // Safety: the TLSDESC ABI promises that the resolver called here preserves every register
    // but rax and the flags. glibc before 2.40 breaks that promise (bug 31372): on a thread's
    // first access to dynamic (DTV) TLS, `_dl_tlsdesc_dynamic` calls `__tls_get_addr`, which
    // clobbers the vector registers (it allocates and clears the TLS block). So the block
    // declares every register the C ABI lets a call clobber (`clobber_abi("C")`): the compiler
    // keeps nothing live in them across it. It may use the stack (a call), which is why `nostack`
    // is absent. It reads only the GOT descriptor and %fs, which no Rust code writes (the TLS
    // block it may allocate is glibc's), so it is a pure function of the calling thread.
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
    // Safety: the slot is 8 bytes, 8-aligned, lives as long as the thread, and AtomicPtr has
    // the layout of a pointer. The `'static` is per thread: callers never send it elsewhere.
    unsafe { &*addr }
}
