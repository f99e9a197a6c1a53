//! Finding `otel_thread_ctx_v1` in an ELF file's bytes and how the module reaches it: `.dynsym`,
//! `PT_TLS`, `PT_LOAD`, and the dynamic relocations that tell the access model (none: local-exec).

use object::elf;
use object::read::elf::{FileHeader, ProgramHeader, Rela, SectionHeader, Sym};
use object::read::{ReadCache, ReadRef};
use object::Endianness;
use std::cell::Cell;
use std::fmt;
use std::io::{Read, Seek};

use crate::platform::{Arch, TlsLayout};

pub const SYMBOL: &str = "otel_thread_ctx_v1";

/// How a module's code reaches the slot, from its dynamic relocations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessModel {
    TlsDesc,
    GeneralDynamic,
    InitialExec,
    /// No dynamic relocation: the executable's own code uses a fixed thread-pointer offset.
    LocalExec,
    /// No relocation names the slot, but the module asks for its own TLS block and adds a
    /// link-time offset: readers do not support it (OTEP 4947).
    LocalDynamic,
}

impl fmt::Display for AccessModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AccessModel::TlsDesc => "TLSDESC",
            AccessModel::GeneralDynamic => "general-dynamic",
            AccessModel::InitialExec => "initial-exec",
            AccessModel::LocalExec => "local-exec",
            AccessModel::LocalDynamic => "local-dynamic",
        })
    }
}

/// A dynamic relocation that resolves the slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlsReloc {
    pub r_type: u32,
    pub model: AccessModel,
    /// Where the GOT entry (or TLSDESC descriptor) is, relative to the load bias.
    pub r_offset: u64,
    /// False for a relocation without a symbol whose addend names the slot's offset.
    pub by_symbol: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadSegment {
    pub vaddr: u64,
    pub offset: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlsSegment {
    pub vaddr: u64,
    pub memsz: u64,
    pub align: u64,
}

/// What a module says about the slot it defines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsExport {
    /// The file's architecture (from `e_machine`).
    pub arch: &'static Arch,
    /// Offset of the slot inside the module's TLS block.
    pub st_value: u64,
    pub st_size: u64,
    pub global: bool,
    pub tls: Option<TlsSegment>,
    pub loads: Vec<LoadSegment>,
    pub relocs: Vec<TlsReloc>,
    /// The module has relocations for its own TLS block without a symbol (local-dynamic).
    pub module_id_relocs: bool,
}

impl TlsExport {
    /// The access model readers should follow: TLSDESC first, then initial-exec, then
    /// general-dynamic; without a relocation for the slot, local-dynamic if the module reaches
    /// its own TLS block, else local-exec.
    pub fn access_model(&self) -> AccessModel {
        use AccessModel::*;
        let has = |m: &AccessModel| self.relocs.iter().any(|r| r.model == *m);
        let none = if self.module_id_relocs { LocalDynamic } else { LocalExec };
        [TlsDesc, InitialExec, GeneralDynamic]
            .into_iter()
            .find(has)
            .unwrap_or(none)
    }

    /// The relocation of an access model: one naming the symbol first, else one matched by addend.
    pub fn reloc(&self, model: AccessModel) -> Option<TlsReloc> {
        self.relocs
            .iter()
            .filter(|r| r.model == model)
            .min_by_key(|r| !r.by_symbol)
            .copied()
    }

    /// Load bias from one mapping of the file: `map_start` is where file offset `map_offset`
    /// is mapped. `None` if no loadable segment covers that offset.
    pub fn load_bias(&self, map_start: u64, map_offset: u64) -> Option<u64> {
        const PAGE: u64 = 4096;
        self.loads
            .iter()
            .find(|l| l.offset & !(PAGE - 1) == map_offset)
            .map(|l| map_start.wrapping_sub(l.vaddr & !(PAGE - 1)))
    }

    /// Thread-pointer offset of the slot for local-exec in the main executable, whose block is
    /// the first of the static TLS area: on x86-64 (variant II) right below the thread pointer,
    /// on AArch64 (variant I) right after the TCB. Either way the block keeps its alignment
    /// relative to `p_vaddr` (the thread pointer is aligned to every module's alignment).
    pub fn local_exec_tp_offset(&self) -> Option<i64> {
        let tls = self.tls?;
        let align = Some(tls.align.max(1)).filter(|a| a.is_power_of_two())?;
        match self.arch.tls_layout {
            TlsLayout::BelowThreadPointer => {
                let firstbyte = tls.vaddr.wrapping_neg() & (align - 1);
                let off = (tls.memsz.checked_sub(firstbyte)?).checked_next_multiple_of(align)? + firstbyte;
                Some(self.st_value as i64 - off as i64)
            }
            TlsLayout::AboveThreadPointer { tcb_size } => {
                // The first offset past the TCB congruent to p_vaddr modulo the alignment.
                let start = tcb_size + (tls.vaddr.wrapping_sub(tcb_size) & (align - 1));
                Some((start + self.st_value) as i64)
            }
        }
    }
}

/// One `.dynsym` entry named `otel_thread_ctx_v1`, whatever it is: the checker names every
/// module that defines or references the slot, not only the one a reader would pick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SymbolEntry {
    /// False for a reference (`SHN_UNDEF`), e.g. an executable's `extern __thread`.
    pub defined: bool,
    pub st_type: u8,
    pub st_bind: u8,
    pub st_size: u64,
}

impl fmt::Display for SymbolEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.defined { "defines" } else { "references" };
        let kind = match self.st_type {
            elf::STT_TLS => "STT_TLS".to_owned(),
            elf::STT_OBJECT => "STT_OBJECT".to_owned(),
            elf::STT_NOTYPE => "STT_NOTYPE".to_owned(),
            elf::STT_FUNC => "STT_FUNC".to_owned(),
            t => format!("type {t}"),
        };
        let bind = match self.st_bind {
            elf::STB_GLOBAL => "GLOBAL".to_owned(),
            elf::STB_WEAK => "WEAK".to_owned(),
            elf::STB_LOCAL => "LOCAL".to_owned(),
            b => format!("binding {b}"),
        };
        write!(f, "{what} it: {kind}, {bind}, size {}", self.st_size)
    }
}

/// What one ELF file says about the slot: the definition a reader would use, and every entry of
/// that name in `.dynsym`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Examined {
    pub export: Option<TlsExport>,
    pub entries: Vec<SymbolEntry>,
}

/// Most bytes one file's examination reads, in all: `.dynsym`, `.dynstr` and the relocations of a
/// large library fit many times over; a file whose headers claim more is refused.
pub const READ_BUDGET: u64 = 256 << 20;

/// An ELF file read on demand through a cache, never past its real size (a section header may
/// claim a terabyte) and never more than [`READ_BUDGET`] bytes in all: `&FileData` is a [`ReadRef`].
pub struct FileData<R: Read + Seek> {
    cache: ReadCache<R>,
    len: u64,
    budget: Cell<u64>,
}

impl<R: Read + Seek> FileData<R> {
    /// `len` is the file's real size (`fstat`).
    pub fn new(read: R, len: u64) -> FileData<R> {
        FileData {
            cache: ReadCache::new(read),
            len,
            budget: Cell::new(READ_BUDGET),
        }
    }

    fn charge(&self, n: u64) -> Result<(), ()> {
        let left = self.budget.get().checked_sub(n).ok_or(())?;
        self.budget.set(left);
        Ok(())
    }
}

impl<'a, R: Read + Seek> ReadRef<'a> for &'a FileData<R> {
    fn len(self) -> Result<u64, ()> {
        Ok(self.len)
    }

    /// Checks `offset + size` against the file's size before anything is allocated.
    fn read_bytes_at(self, offset: u64, size: u64) -> Result<&'a [u8], ()> {
        if offset.checked_add(size).is_none_or(|end| end > self.len) {
            return Err(());
        }
        self.charge(size)?;
        (&self.cache).read_bytes_at(offset, size)
    }

    /// A string: the cache reads up to 4 KiB for it, in 256-byte steps.
    fn read_bytes_at_until(self, range: std::ops::Range<u64>, delimiter: u8) -> Result<&'a [u8], ()> {
        // object's cache subtracts the range's ends: a reversed range would overflow there.
        if self.budget.get() < 4096 || range.start > range.end || range.end > self.len {
            return Err(());
        }
        let s = (&self.cache).read_bytes_at_until(range, delimiter)?;
        self.charge((s.len() as u64 + 1).next_multiple_of(256))?;
        Ok(s)
    }
}

/// Examines a 64-bit ELF file of a known architecture (of `only`, if given) for the slot; an
/// empty answer if it is not such a file. `data` may be a `&`[`FileData`]: only the headers
/// and sections needed are read.
pub fn examine<'data, R: ReadRef<'data>>(data: R, only: Option<&Arch>) -> Result<Examined, String> {
    if data.read_bytes_at(0, 5).ok() != Some(&[0x7f, b'E', b'L', b'F', elf::ELFCLASS64][..]) {
        return Ok(Examined::default());
    }
    let err = |what: &'static str| move |e: object::read::Error| format!("{what}: {e}");
    let header = elf::FileHeader64::<Endianness>::parse(data).map_err(err("ELF header"))?;
    let endian = header.endian().map_err(err("ELF endianness"))?;
    let arch = match Arch::for_machine(header.e_machine(endian)) {
        Some(arch) if only.is_none_or(|a| a == arch) => arch,
        _ => return Ok(Examined::default()),
    };
    let sections = header.sections(endian, data).map_err(err("section headers"))?;
    let dynsym = sections
        .symbols(endian, data, elf::SHT_DYNSYM)
        .map_err(err(".dynsym"))?;
    let mut entries = Vec::new();
    let mut found = None;
    for (i, sym) in dynsym.iter().enumerate() {
        if sym.name(endian, dynsym.strings()).ok() != Some(SYMBOL.as_bytes()) {
            continue;
        }
        let entry = SymbolEntry {
            defined: sym.st_shndx(endian) != elf::SHN_UNDEF,
            st_type: sym.st_type(),
            st_bind: sym.st_bind(),
            st_size: sym.st_size(endian),
        };
        if found.is_none() && entry.defined && entry.st_type == elf::STT_TLS {
            found = Some((i, sym));
        }
        entries.push(entry);
    }
    let Some((sym_index, sym)) = found else {
        return Ok(Examined { export: None, entries });
    };
    let st_value = sym.st_value(endian);

    let mut tls = None;
    let mut loads = Vec::new();
    for ph in header.program_headers(endian, data).map_err(err("program headers"))? {
        let vaddr = ph.p_vaddr(endian);
        match ph.p_type(endian) {
            elf::PT_TLS => {
                let (memsz, align) = (ph.p_memsz(endian), ph.p_align(endian));
                tls = Some(TlsSegment { vaddr, memsz, align })
            }
            elf::PT_LOAD => loads.push(LoadSegment {
                vaddr,
                offset: ph.p_offset(endian),
            }),
            _ => {}
        }
    }

    let mut relocs = Vec::new();
    let mut module_id_relocs = false;
    for section in sections.iter() {
        if section.sh_type(endian) != elf::SHT_RELA || section.sh_link(endian) as usize != dynsym.section().0 {
            continue;
        }
        let Ok(relas) = section.data_as_array::<elf::Rela64<Endianness>, _>(endian, data) else {
            continue;
        };
        for rela in relas {
            let r_type = rela.r_type(endian, false);
            let r_sym = rela.r_sym(endian, false) as usize;
            // The local-dynamic sequence asks for the module's own block (no symbol) and adds a
            // link-time offset: a module id in a GOT entry, or a TLSDESC for the module's base
            // (one whose addend is the slot's offset is also the slot's own, below).
            module_id_relocs |= r_sym == 0 && (r_type == arch.general_dynamic || r_type == arch.tlsdesc);
            let model = match r_type {
                t if t == arch.tlsdesc => AccessModel::TlsDesc,
                t if t == arch.initial_exec => AccessModel::InitialExec,
                t if t == arch.general_dynamic => AccessModel::GeneralDynamic,
                _ => continue,
            };
            let by_symbol = r_sym == sym_index;
            // Without a symbol, TLSDESC and TPOFF64 carry the TLS offset in the addend.
            let by_addend =
                r_sym == 0 && model != AccessModel::GeneralDynamic && rela.r_addend(endian) as u64 == st_value;
            if by_symbol || by_addend {
                relocs.push(TlsReloc {
                    r_type,
                    model,
                    r_offset: rela.r_offset(endian),
                    by_symbol,
                });
            }
        }
    }
    let export = TlsExport {
        arch,
        st_value,
        st_size: sym.st_size(endian),
        global: sym.st_bind() == elf::STB_GLOBAL,
        tls,
        loads,
        relocs,
        module_id_relocs,
    };
    Ok(Examined {
        export: Some(export),
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform;

    #[test]
    fn non_elf_and_foreign_bytes_are_not_exports() {
        assert!(examine(&b""[..], None).unwrap().export.is_none());
        let mut fake = [0u8; 64];
        fake[..4].copy_from_slice(b"\x7fELF");
        fake[4] = elf::ELFCLASS64;
        assert!(examine(&fake[..], None).is_err());
    }

    /// Found by tests/decoders_property.rs: a string table whose end lies before its start made
    /// object's cache subtract with overflow (a panic in a debug build).
    #[test]
    fn string_ranges_outside_the_file_are_refused() {
        let bytes = &FileData::new(std::io::Cursor::new(vec![b'x', 0, 0, 0]), 4);
        let (start, end) = (3, 1);
        assert!(bytes.read_bytes_at_until(start..end, 0).is_err());
        assert!(bytes.read_bytes_at_until(0..5, 0).is_err());
        assert!(bytes.read_bytes_at(2, 3).is_err());
        // Control: in range.
        assert_eq!(bytes.read_bytes_at_until(0..4, 0), Ok(&b"x"[..]));
        assert_eq!(bytes.read_bytes_at(1, 3), Ok(&[0u8, 0, 0][..]));
    }

    #[test]
    fn local_exec_offset_follows_glibc_layout() {
        let e = TlsExport {
            arch: &platform::X86_64,
            st_value: 8,
            st_size: 8,
            global: true,
            tls: Some(TlsSegment {
                vaddr: 0x3de0,
                memsz: 20,
                align: 16,
            }),
            loads: vec![],
            relocs: vec![],
            module_id_relocs: false,
        };
        // Block of 20 bytes rounded to 32, slot 8 bytes in: tp - 32 + 8.
        assert_eq!(e.local_exec_tp_offset(), Some(-24));
    }

    #[test]
    fn local_exec_offset_follows_variant_one() {
        let mut e = TlsExport {
            arch: &platform::AARCH64,
            st_value: 8,
            st_size: 8,
            global: true,
            tls: Some(TlsSegment {
                vaddr: 0x41fd80,
                memsz: 20,
                align: 8,
            }),
            loads: vec![],
            relocs: vec![],
            module_id_relocs: false,
        };
        // After the 16-byte TCB, 8 bytes into the block.
        assert_eq!(e.local_exec_tp_offset(), Some(16 + 8));
        // A 64-byte aligned block starts at the next multiple of 64 past the TCB.
        e.tls = Some(TlsSegment {
            vaddr: 0x420000,
            memsz: 20,
            align: 64,
        });
        assert_eq!(e.local_exec_tp_offset(), Some(64 + 8));
        // A block whose p_vaddr is 16 past an alignment boundary keeps that phase.
        e.tls = Some(TlsSegment {
            vaddr: 0x420010,
            memsz: 20,
            align: 64,
        });
        assert_eq!(e.local_exec_tp_offset(), Some(16 + 8));
    }

    #[test]
    fn load_bias_from_a_mapping() {
        let e = TlsExport {
            arch: &platform::X86_64,
            st_value: 0,
            st_size: 8,
            global: true,
            tls: None,
            loads: vec![
                LoadSegment { vaddr: 0, offset: 0 },
                LoadSegment {
                    vaddr: 0x2000,
                    offset: 0x1000,
                },
            ],
            relocs: vec![],
            module_id_relocs: false,
        };
        assert_eq!(e.load_bias(0x7f0000001000, 0x1000), Some(0x7f0000001000 - 0x2000));
        assert_eq!(e.load_bias(0x7f0000000000, 0), Some(0x7f0000000000));
        assert_eq!(e.load_bias(0x7f0000000000, 0x5000), None);
    }
}
