//! otel-thread-ctx publishes each thread's current span in the layout of OpenTelemetry's
//! thread-context specification (OTEP 4947), where an out-of-process reader such as the
//! OpenTelemetry eBPF profiler finds it through the TLS symbol `otel_thread_ctx_v1`.
//!
//! Data flow: a writer (C through [`ffi`], or .NET writing in place at the address
//! [`ffi::otel_thread_ctx_record`] returns) fills a [`record::OtelThreadCtxRecord`]; the
//! thread's TLS slot ([`tls`]) points at it; a reader stops the thread and follows the slot.
//!
//! Layers (a module imports only from those below it): `status`; `record`, `tls`; `fork_safe`,
//! `handle`; `process_context`; `self_check`; the C API files (`ffi`, `process_context::ffi`).

#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64"),
    any(target_env = "gnu", target_env = "musl")
)))]
compile_error!(
    "otel-thread-ctx supports Linux on x86_64 and aarch64, each with glibc or musl, only: the TLS \
     slot is defined with TLSDESC assembly for those."
);

pub mod ffi;
mod fork_safe;
mod handle;
pub mod process_context;
pub mod record;
mod self_check;
mod status;
#[cfg(feature = "test-hooks")]
pub mod test_hooks;
mod tls;
