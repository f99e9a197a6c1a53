//! otel-ctx-dump (see the README): reads a live process's process context (OTEP 4719) and span
//! contexts (OTEP 4947) as the eBPF profiler does, sharing no code with the writer.
//!
//! [`inspect`] reads a process: the mappings ([`maps`]), the modules exporting the slot ([`elf`]),
//! each thread's pointer ([`ptrace`]) and [`record`], and the [`process_context`]; layouts that
//! differ by architecture or C library live in [`platform`]; what /proc says of threads is in
//! [`threads`]. [`output`] renders text, [`json`] JSON; both make target strings inert through
//! [`escape`], and the data types serialize through [`ser`].
//!
//! Layers: a module imports only from the layers below it (`tests/layers.rs` checks).
//! 0 `platform`, `maps`, `record`, `escape`, `cli`; 1 `ser`, `elf`, `threads`, `process_context`;
//! 2 `ptrace`; 3 `inspect`; 4 `output`, `json`, `check`; then `main.rs`.

// ptrace reads the registers of same-architecture tracees only: a build reads processes of its
// own architecture (ELF files of every architecture in `platform` can be examined).
#[cfg(not(all(any(target_arch = "x86_64", target_arch = "aarch64"), target_os = "linux")))]
compile_error!("otel-ctx-dump reads x86-64 and AArch64 Linux processes only.");

pub mod check;
pub mod cli;
pub mod elf;
pub mod escape;
pub mod inspect;
pub mod json;
pub mod maps;
pub mod output;
pub mod platform;
pub mod process_context;
pub mod ptrace;
pub mod record;
pub mod ser;
pub mod threads;
