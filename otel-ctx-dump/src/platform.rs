//! What differs between the platforms a reader meets, in one place: the CPU architecture
//! (relocation types, where static TLS sits relative to the thread pointer) and the C library
//! (the DTV's layout). ELF files are examined with the [`Arch`] their `e_machine` names.

use object::elf;

/// Where the main executable's static TLS block sits relative to the thread pointer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsLayout {
    /// TLS variant II (x86-64): blocks end at the thread pointer, offsets are negative.
    BelowThreadPointer,
    /// TLS variant I (AArch64): the thread pointer points at a TCB of `tcb_size` bytes and the
    /// executable's block follows it, keeping its alignment; offsets are positive.
    AboveThreadPointer { tcb_size: u64 },
}

/// An architecture: its `e_machine`, the relocation types that reach a TLS symbol in each
/// access model, and its static TLS layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arch {
    pub e_machine: u16,
    pub tlsdesc: u32,
    pub initial_exec: u32,
    pub general_dynamic: u32,
    pub tls_layout: TlsLayout,
}

pub const X86_64: Arch = Arch {
    e_machine: elf::EM_X86_64,
    tlsdesc: elf::R_X86_64_TLSDESC,
    initial_exec: elf::R_X86_64_TPOFF64,
    general_dynamic: elf::R_X86_64_DTPMOD64,
    tls_layout: TlsLayout::BelowThreadPointer,
};

/// AArch64: general-dynamic is `-mtls-dialect=trad`; the TCB is the psABI's 16 bytes.
pub const AARCH64: Arch = Arch {
    e_machine: elf::EM_AARCH64,
    tlsdesc: elf::R_AARCH64_TLSDESC,
    initial_exec: elf::R_AARCH64_TLS_TPREL,
    general_dynamic: elf::R_AARCH64_TLS_DTPMOD,
    tls_layout: TlsLayout::AboveThreadPointer { tcb_size: 16 },
};

impl Arch {
    pub fn for_machine(e_machine: u16) -> Option<&'static Arch> {
        [&X86_64, &AARCH64].into_iter().find(|a| a.e_machine == e_machine)
    }
}

/// How a C library lays out a thread's dynamic thread vector (DTV): where its pointer is from
/// the thread pointer, the size of an entry (whose first word is the module's block), and where
/// the number of entries is from the DTV's start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DtvLayout {
    pub pointer_offset: i64,
    pub entry_size: u64,
    pub count_offset: i64,
    /// glibc's entry 0 is the generation the DTV is up to date with, and a dynamic TLSDESC
    /// argument is (module, offset, generation); musl's DTV has none (`dlopen` gives every thread
    /// a larger DTV at once) and its argument is (module, offset, next argument).
    pub generation: bool,
}

/// An architecture and a C library: everything layout-specific a read needs. `dtv` is `None`
/// where the C library's DTV is not implemented (static TLS is still read).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Platform {
    pub arch: &'static Arch,
    pub dtv: Option<DtvLayout>,
}

const fn platform(
    arch: &'static Arch,
    pointer_offset: i64,
    entry_size: u64,
    count_offset: i64,
    generation: bool,
) -> Platform {
    let dtv = DtvLayout {
        pointer_offset,
        entry_size,
        count_offset,
        generation,
    };
    Platform { arch, dtv: Some(dtv) }
}

/// glibc x86-64: `tcbhead_t` is `tcb` (self pointer), then `dtv`; an entry is the block pointer
/// and its `to_free` companion; entry -1 holds the number of entries.
pub const LINUX_X86_64_GLIBC: Platform = platform(&X86_64, 8, 16, -16, true);
/// glibc AArch64: the thread pointer points at `tcbhead_t`, whose first word is `dtv`.
pub const LINUX_AARCH64_GLIBC: Platform = platform(&AARCH64, 0, 16, -16, true);
/// musl x86-64: the thread pointer points at `struct pthread`, whose second word (after `self`)
/// is `uintptr_t *dtv`, one word per entry (DTP_OFFSET is 0 on x86-64); word 0 counts the modules.
pub const LINUX_X86_64_MUSL: Platform = platform(&X86_64, 8, 8, 0, false);
/// musl AArch64 (TLS above the thread pointer): `struct pthread` ends just below the thread
/// pointer and its last word is `dtv` (its `__tlsdesc_dynamic` loads `[tp, #-8]`); entries and
/// word 0 as on x86-64 (DTP_OFFSET is 0 on AArch64 too).
pub const LINUX_AARCH64_MUSL: Platform = platform(&AARCH64, -8, 8, 0, false);

/// The C library a process runs on, from the files it maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CLibrary {
    Glibc,
    Musl,
}

impl CLibrary {
    /// musl when its loader (which is also its libc) is mapped: `ld-musl-ARCH.so.1` (Alpine,
    /// and the name programs ask for), `libc.musl-ARCH.so.1`, or the file that name links to
    /// on Debian, `/usr/lib/ARCH-linux-musl/libc.so` (maps show the resolved path).
    pub fn from_mapped_paths<'a>(paths: impl IntoIterator<Item = &'a str>) -> CLibrary {
        let musl = paths.into_iter().any(|path| {
            let path = path.trim_end_matches(" (deleted)");
            let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
            (name.starts_with("ld-musl-") || name.starts_with("libc.musl-")) && name.ends_with(".so.1")
                || name == "libc.so" && dir.ends_with("-linux-musl")
        });
        if musl {
            CLibrary::Musl
        } else {
            CLibrary::Glibc
        }
    }
}

impl Platform {
    /// The platform of a process this build reads: its own architecture (see lib.rs) and the
    /// C library the process maps.
    pub fn for_process(libc: CLibrary) -> Platform {
        Platform::for_arch(cfg!(target_arch = "x86_64"), libc)
    }

    fn for_arch(x86_64: bool, libc: CLibrary) -> Platform {
        match (x86_64, libc) {
            (true, CLibrary::Glibc) => LINUX_X86_64_GLIBC,
            (true, CLibrary::Musl) => LINUX_X86_64_MUSL,
            (false, CLibrary::Glibc) => LINUX_AARCH64_GLIBC,
            (false, CLibrary::Musl) => LINUX_AARCH64_MUSL,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn architectures_by_machine() {
        assert_eq!(Arch::for_machine(62), Some(&X86_64));
        assert_eq!(Arch::for_machine(183), Some(&AARCH64));
        assert_eq!(Arch::for_machine(40), None, "32-bit Arm is not read");
        // The relocation numbers of the psABIs.
        assert_eq!((AARCH64.tlsdesc, AARCH64.initial_exec), (1031, 1030));
        assert_eq!(AARCH64.general_dynamic, 1028);
        assert_eq!((X86_64.tlsdesc, X86_64.initial_exec), (36, 18));
    }

    #[test]
    fn every_architecture_and_c_library_has_a_dtv_layout() {
        use CLibrary::*;
        for (x86_64, libc, want) in [
            (true, Glibc, LINUX_X86_64_GLIBC),
            (true, Musl, LINUX_X86_64_MUSL),
            (false, Glibc, LINUX_AARCH64_GLIBC),
            (false, Musl, LINUX_AARCH64_MUSL),
        ] {
            let p = Platform::for_arch(x86_64, libc);
            assert_eq!(p, want, "{x86_64} {libc:?}");
            assert!(p.dtv.is_some(), "{want:?}");
        }
        // musl AArch64: the DTV pointer below the thread pointer, word entries, no generation.
        let dtv = LINUX_AARCH64_MUSL.dtv.unwrap();
        assert_eq!((dtv.pointer_offset, dtv.entry_size, dtv.count_offset), (-8, 8, 0));
        assert!(!dtv.generation);
        assert_eq!(LINUX_AARCH64_MUSL.arch, &AARCH64);
    }

    #[test]
    fn c_library_from_the_maps() {
        use CLibrary::*;
        let of = |paths: &[&str]| CLibrary::from_mapped_paths(paths.iter().copied());
        assert_eq!(of(&["/usr/bin/app", "/usr/lib/x86_64-linux-gnu/libc.so.6"]), Glibc);
        assert_eq!(of(&["/usr/bin/app", "/lib/ld-musl-x86_64.so.1"]), Musl);
        assert_eq!(of(&["/lib/ld-musl-aarch64.so.1 (deleted)"]), Musl);
        assert_eq!(of(&["/usr/lib/libc.musl-x86_64.so.1"]), Musl);
        assert_eq!(of(&["/usr/bin/app", "/usr/lib/x86_64-linux-musl/libc.so"]), Musl);
        // A glibc program's own file named like musl's is not musl's loader.
        assert_eq!(of(&["/opt/x/libc.so", "/home/u/ld-musl-notes.txt"]), Glibc);
        assert_eq!(of(&[]), Glibc);
    }
}
