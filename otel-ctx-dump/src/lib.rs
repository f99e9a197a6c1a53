//! otel-ctx-dump: reads a live process's OpenTelemetry process context (OTEP 4719) and every
//! thread's span context (OTEP 4947) from outside, the way the OpenTelemetry eBPF profiler does.
//! It shares no code with the writer (the otel-thread-ctx crate), which makes it an independent
//! end-to-end check.
//!
//! [`inspect`] reads a process: the mappings ([`maps`]), the modules exporting the slot ([`elf`]),
//! each thread's pointer ([`ptrace`]) and [`record`], and the [`process_context`]; layouts that
//! differ by architecture or C library live in [`platform`]. [`output`] renders text, [`json`] JSON.

// ptrace reads the registers of same-architecture tracees only: a build reads processes of its
// own architecture (ELF files of every architecture in `platform` can be examined).
#[cfg(not(all(any(target_arch = "x86_64", target_arch = "aarch64"), target_os = "linux")))]
compile_error!("otel-ctx-dump reads x86-64 and AArch64 Linux processes only.");

pub mod cli;
pub mod elf;
pub mod inspect;
pub mod json;
pub mod maps;
pub mod output;
pub mod platform;
pub mod process_context;
pub mod ptrace;
pub mod record;
