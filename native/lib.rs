//! otel-thread-ctx publishes each thread's current span in the layout of OpenTelemetry's
//! thread-context specification (OTEP 4947), where an out-of-process reader such as the
//! OpenTelemetry eBPF profiler finds it through the TLS symbol `otel_thread_ctx_v1`.
//!
//! Data flow: a writer (C through [`ffi`], or .NET writing in place at the address
//! [`ffi::otel_thread_ctx_record`] returns) fills a [`record::OtelThreadCtxRecord`]; the
//! thread's TLS slot ([`tls`]) points at it; a reader stops the thread and follows the slot.

#[cfg(not(all(
    target_arch = "x86_64",
    target_os = "linux",
    any(target_env = "gnu", target_env = "musl")
)))]
compile_error!(
    "otel-thread-ctx supports x86_64 Linux with glibc or musl only: the TLS slot is defined with \
     x86-64 TLSDESC assembly. Other targets are not implemented yet."
);

pub mod ffi;
mod handle;
pub mod process_context;
pub mod record;
mod self_check;
mod tls;
