//! What differs between the platforms a reader meets, in one place: the CPU architecture
//! (relocation types, where static TLS sits relative to the thread pointer) and the C library
//! (the DTV's layout). Only x86-64 with glibc is implemented. Another architecture (AArch64:
//! `R_AARCH64_TLSDESC`/`TLS_TPREL64`/`TLS_DTPMOD64`, variant I with a 16-byte TCB, DTV pointer at
//! tp+0, thread pointer `tpidr_el0` read in [`crate::ptrace`]) or C library (musl: 8-byte DTV
//! entries, no generation check) is one more constant here and a match arm where the layout is
//! used, not a change to the reading logic.

/// The dynamic relocation types that reach a TLS symbol, one per access model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlsRelocTypes {
    /// TLSDESC: a two-word descriptor in the GOT.
    pub tlsdesc: u32,
    /// Initial-exec: a GOT word holding the thread-pointer offset.
    pub initial_exec: u32,
    /// General-dynamic: a GOT pair (module id, offset), the module id's relocation.
    pub general_dynamic: u32,
}

/// Where the main executable's static TLS block sits relative to the thread pointer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsLayout {
    /// TLS variant II (x86-64): blocks end at the thread pointer, offsets are negative.
    BelowThreadPointer,
}

/// An architecture the reader understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arch {
    pub name: &'static str,
    /// `e_machine` of its ELF files.
    pub e_machine: u16,
    pub relocs: TlsRelocTypes,
    pub tls_layout: TlsLayout,
}

pub const X86_64: Arch = Arch {
    name: "x86-64",
    e_machine: object::elf::EM_X86_64,
    relocs: TlsRelocTypes {
        tlsdesc: object::elf::R_X86_64_TLSDESC,
        initial_exec: object::elf::R_X86_64_TPOFF64,
        general_dynamic: object::elf::R_X86_64_DTPMOD64,
    },
    tls_layout: TlsLayout::BelowThreadPointer,
};

/// How a C library lays out a thread's dynamic thread vector (DTV).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DtvLayout {
    pub name: &'static str,
    /// Where the DTV pointer is, from the thread pointer.
    pub dtv_pointer_offset: i64,
    /// Bytes per entry; entry `i` holds module `i`'s block address in its first word.
    pub entry_size: u64,
    /// glibc: entry -1 holds the number of entries and entry 0 the generation the DTV is up to
    /// date with, so a reader can tell "not allocated yet" from garbage.
    pub counted_and_generation: bool,
}

pub const GLIBC_X86_64_DTV: DtvLayout = DtvLayout {
    name: "glibc x86-64",
    dtv_pointer_offset: 8,
    entry_size: 16,
    counted_and_generation: true,
};

/// An architecture and a C library: everything layout-specific a read needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Platform {
    pub arch: &'static Arch,
    pub dtv: &'static DtvLayout,
}

/// The only platform implemented (the crate refuses to build elsewhere, see lib.rs).
pub const LINUX_X86_64_GLIBC: Platform = Platform {
    arch: &X86_64,
    dtv: &GLIBC_X86_64_DTV,
};
