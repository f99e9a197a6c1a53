//! otel-ctx-dump (see the README): reads a live process's process context (OTEP 4719) and span
//! contexts (OTEP 4947) as the eBPF profiler does, sharing no code with the writer.
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
