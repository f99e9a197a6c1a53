//! Finding `otel_thread_ctx_v1` in an ELF file and how the module reaches it.
//!
//! Works on the file's bytes only (no target process): the symbol's TLS offset from `.dynsym`,
//! the module's `PT_TLS` and `PT_LOAD` segments, and the dynamic relocations that tell the access
//! model: `R_X86_64_TLSDESC` (36), `R_X86_64_DTPMOD64` (16, general-dynamic) or
//! `R_X86_64_TPOFF64` (18, initial-exec); none means local-exec in an executable. The types and
//! the machine come from a [`platform::Arch`].

use object::elf;
use object::read::elf::{FileHeader, ProgramHeader, Rela, SectionHeader, Sym};
use object::read::ReadRef;
use object::Endianness;
use std::fmt;

use crate::platform::{self, Arch, TlsLayout};

pub const SYMBOL: &str = "otel_thread_ctx_v1";
pub const R_X86_64_DTPMOD64: u32 = platform::X86_64.relocs.general_dynamic;
pub const R_X86_64_TPOFF64: u32 = platform::X86_64.relocs.initial_exec;
pub const R_X86_64_TLSDESC: u32 = platform::X86_64.relocs.tlsdesc;

/// How a module's code reaches the slot, from its dynamic relocations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessModel {
    TlsDesc,
    GeneralDynamic,
    InitialExec,
    /// No dynamic relocation: the executable's own code uses a fixed thread-pointer offset.
    LocalExec,
}

impl fmt::Display for AccessModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AccessModel::TlsDesc => "TLSDESC",
            AccessModel::GeneralDynamic => "general-dynamic",
            AccessModel::InitialExec => "initial-exec",
            AccessModel::LocalExec => "local-exec",
        })
    }
}

/// A dynamic relocation that resolves the slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlsReloc {
    pub r_type: u32,
    /// The access model this relocation type stands for on the file's architecture.
    pub model: AccessModel,
    /// Where the GOT entry (or TLSDESC descriptor) is, relative to the load bias.
    pub r_offset: u64,
    pub addend: i64,
    /// False for a relocation without a symbol whose addend names the slot's offset.
    pub by_symbol: bool,
}

/// A loadable segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadSegment {
    pub vaddr: u64,
    pub offset: u64,
    pub memsz: u64,
}

/// The module's TLS template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlsSegment {
    pub vaddr: u64,
    pub memsz: u64,
    pub align: u64,
}

/// What a module says about the slot it defines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsExport {
    /// Offset of the slot inside the module's TLS block.
    pub st_value: u64,
    pub st_size: u64,
    pub global: bool,
    pub e_type: u16,
    pub tls: Option<TlsSegment>,
    pub loads: Vec<LoadSegment>,
    pub relocs: Vec<TlsReloc>,
}

impl TlsExport {
    /// The access model readers should follow: TLSDESC first, then initial-exec, then
    /// general-dynamic; local-exec when the module has no relocation for the slot.
    pub fn access_model(&self) -> AccessModel {
        let has = |m| self.relocs.iter().any(|r| r.model == m);
        if has(AccessModel::TlsDesc) {
            AccessModel::TlsDesc
        } else if has(AccessModel::InitialExec) {
            AccessModel::InitialExec
        } else if has(AccessModel::GeneralDynamic) {
            AccessModel::GeneralDynamic
        } else {
            AccessModel::LocalExec
        }
    }

    /// The relocation of the chosen access model.
    pub fn reloc(&self, model: AccessModel) -> Option<TlsReloc> {
        // A relocation naming the symbol is the surest; a symbol-less one matched by addend next.
        let mut candidates: Vec<&TlsReloc> = self.relocs.iter().filter(|r| r.model == model).collect();
        candidates.sort_by_key(|r| !r.by_symbol);
        candidates.first().map(|r| **r)
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

    /// Thread-pointer offset of the slot for local-exec in the main executable (glibc x86-64:
    /// the executable's block sits right below the thread pointer).
    pub fn local_exec_tp_offset(&self, layout: TlsLayout) -> Option<i64> {
        let tls = self.tls?;
        let TlsLayout::BelowThreadPointer = layout;
        let align = tls.align.max(1);
        let firstbyte = tls.vaddr.wrapping_neg() & (align - 1);
        let off = (tls.memsz.checked_sub(firstbyte)?).checked_next_multiple_of(align)? + firstbyte;
        Some(self.st_value as i64 - off as i64)
    }
}

/// Why a file could not be examined.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElfError(pub String);

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn err(what: &str, e: object::read::Error) -> ElfError {
    ElfError(format!("{what}: {e}"))
}

/// Quick check before reading a whole file.
pub fn is_elf(prefix: &[u8]) -> bool {
    prefix.starts_with(b"\x7fELF")
}

/// [`find_export_for`] x86-64.
pub fn find_export<'data, R: ReadRef<'data>>(data: R) -> Result<Option<TlsExport>, ElfError> {
    find_export_for(data, &platform::X86_64)
}

/// Looks for a defined `otel_thread_ctx_v1` TLS symbol in the file's dynamic symbol table.
/// `Ok(None)`: a 64-bit ELF for `arch` that does not define it (or is some other architecture).
///
/// `data` is the file's bytes, or a [`object::read::ReadCache`] over the open file, which reads
/// only the headers, `.dynsym` and the relocation sections instead of the whole file.
pub fn find_export_for<'data, R: ReadRef<'data>>(data: R, arch: &Arch) -> Result<Option<TlsExport>, ElfError> {
    if data.read_bytes_at(4, 1).ok() != Some(&[elf::ELFCLASS64][..]) {
        return Ok(None);
    }
    let header = elf::FileHeader64::<Endianness>::parse(data).map_err(|e| err("ELF header", e))?;
    let endian = header.endian().map_err(|e| err("ELF endianness", e))?;
    if header.e_machine(endian) != arch.e_machine {
        return Ok(None);
    }
    let sections = header.sections(endian, data).map_err(|e| err("section headers", e))?;
    let dynsym = sections
        .symbols(endian, data, elf::SHT_DYNSYM)
        .map_err(|e| err(".dynsym", e))?;
    if dynsym.is_empty() {
        return Ok(None);
    }
    let mut found = None;
    for (index, sym) in dynsym.iter().enumerate() {
        if sym.st_type() != elf::STT_TLS || sym.st_shndx(endian) == elf::SHN_UNDEF {
            continue;
        }
        if sym.name(endian, dynsym.strings()).ok() == Some(SYMBOL.as_bytes()) {
            found = Some((index, sym));
            break;
        }
    }
    let Some((sym_index, sym)) = found else { return Ok(None) };
    let st_value = sym.st_value(endian);

    let mut tls = None;
    let mut loads = Vec::new();
    for ph in header
        .program_headers(endian, data)
        .map_err(|e| err("program headers", e))?
    {
        match ph.p_type(endian) {
            elf::PT_TLS => {
                tls = Some(TlsSegment {
                    vaddr: ph.p_vaddr(endian),
                    memsz: ph.p_memsz(endian),
                    align: ph.p_align(endian),
                })
            }
            elf::PT_LOAD => loads.push(LoadSegment {
                vaddr: ph.p_vaddr(endian),
                offset: ph.p_offset(endian),
                memsz: ph.p_memsz(endian),
            }),
            _ => {}
        }
    }

    let mut relocs = Vec::new();
    for section in sections.iter() {
        if section.sh_type(endian) != elf::SHT_RELA || section.sh_link(endian) as usize != dynsym.section().0 {
            continue;
        }
        let Ok(relas) = section.data_as_array::<elf::Rela64<Endianness>, _>(endian, data) else {
            continue;
        };
        for rela in relas {
            let r_type = rela.r_type(endian, false);
            let types = &arch.relocs;
            let model = match r_type {
                t if t == types.tlsdesc => AccessModel::TlsDesc,
                t if t == types.initial_exec => AccessModel::InitialExec,
                t if t == types.general_dynamic => AccessModel::GeneralDynamic,
                _ => continue,
            };
            let r_sym = rela.r_sym(endian, false) as usize;
            let addend = rela.r_addend(endian);
            let by_symbol = r_sym == sym_index;
            // Without a symbol, TLSDESC and TPOFF64 carry the TLS offset in the addend.
            let by_addend = r_sym == 0 && model != AccessModel::GeneralDynamic && addend as u64 == st_value;
            if by_symbol || by_addend {
                relocs.push(TlsReloc {
                    r_type,
                    model,
                    r_offset: rela.r_offset(endian),
                    addend,
                    by_symbol,
                });
            }
        }
    }
    Ok(Some(TlsExport {
        st_value,
        st_size: sym.st_size(endian),
        global: sym.st_bind() == elf::STB_GLOBAL,
        e_type: header.e_type(endian),
        tls,
        loads,
        relocs,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_elf_and_foreign_bytes_are_not_exports() {
        assert!(!is_elf(b"MZ\x90\x00"));
        assert!(find_export(&b""[..]).unwrap().is_none());
        let mut fake = [0u8; 64];
        fake[..4].copy_from_slice(b"\x7fELF");
        fake[4] = elf::ELFCLASS64;
        assert!(find_export(&fake[..]).is_err());
    }

    #[test]
    fn local_exec_offset_follows_glibc_layout() {
        let e = TlsExport {
            st_value: 8,
            st_size: 8,
            global: true,
            e_type: elf::ET_DYN,
            tls: Some(TlsSegment {
                vaddr: 0x3de0,
                memsz: 20,
                align: 16,
            }),
            loads: vec![],
            relocs: vec![],
        };
        // Block of 20 bytes rounded to 32, slot 8 bytes in: tp - 32 + 8.
        assert_eq!(e.local_exec_tp_offset(TlsLayout::BelowThreadPointer), Some(-24));
    }

    #[test]
    fn load_bias_from_a_mapping() {
        let e = TlsExport {
            st_value: 0,
            st_size: 8,
            global: true,
            e_type: elf::ET_DYN,
            tls: None,
            loads: vec![
                LoadSegment {
                    vaddr: 0,
                    offset: 0,
                    memsz: 0x1000,
                },
                LoadSegment {
                    vaddr: 0x2000,
                    offset: 0x1000,
                    memsz: 0x1000,
                },
            ],
            relocs: vec![],
        };
        assert_eq!(e.load_bias(0x7f0000001000, 0x1000), Some(0x7f0000001000 - 0x2000));
        assert_eq!(e.load_bias(0x7f0000000000, 0), Some(0x7f0000000000));
        assert_eq!(e.load_bias(0x7f0000000000, 0x5000), None);
    }
}
