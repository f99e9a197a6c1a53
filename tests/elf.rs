//! ELF properties of the built cdylib, checked the way an out-of-process reader sees the file.

mod common;

use object::elf;
use object::read::elf::{FileHeader, ProgramHeader, Rela, SectionHeader, Sym};
use object::{elf::FileHeader64, Endianness};
use std::process::Command;

const SYMBOL: &[u8] = b"otel_thread_ctx_v1";
/// The one relocation type a reader accepts against the slot in a shared library.
#[cfg(target_arch = "x86_64")]
const TLSDESC: u32 = elf::R_X86_64_TLSDESC;
#[cfg(target_arch = "aarch64")]
const TLSDESC: u32 = elf::R_AARCH64_TLSDESC;

struct Elf {
    data: Vec<u8>,
}

impl Elf {
    fn load(path: &std::path::Path) -> Self {
        Elf {
            data: std::fs::read(path).unwrap(),
        }
    }
    fn header(&self) -> &FileHeader64<Endianness> {
        FileHeader64::<Endianness>::parse(&*self.data).unwrap()
    }
    fn endian(&self) -> Endianness {
        self.header().endian().unwrap()
    }
    fn sections(&self) -> object::read::elf::SectionTable<'_, FileHeader64<Endianness>> {
        self.header().sections(self.endian(), &*self.data).unwrap()
    }
    /// (index, symbol) of `name` in the given symbol table type.
    fn symbol(&self, table: u32, name: &[u8]) -> Option<(usize, elf::Sym64<Endianness>)> {
        let sections = self.sections();
        let syms = sections.symbols(self.endian(), &*self.data, table).unwrap();
        syms.iter()
            .enumerate()
            .find(|(_, s)| syms.symbol_name(self.endian(), *s) == Ok(name))
            .map(|(i, s)| (i, *s))
    }
    /// Every RELA entry in sections linked to the symbol table of type `table`, with its
    /// section's index.
    fn relas(&self, table: u32) -> Vec<elf::Rela64<Endianness>> {
        let e = self.endian();
        let sections = self.sections();
        let symtab = sections.symbols(e, &*self.data, table).unwrap().section().0;
        sections
            .iter()
            .filter(|s| s.sh_type(e) == elf::SHT_RELA && s.sh_link(e) as usize == symtab)
            .flat_map(|s| {
                s.data_as_array::<elf::Rela64<Endianness>, _>(e, &*self.data)
                    .unwrap()
                    .to_vec()
            })
            .collect()
    }
    /// (type, offset) of every dynamic relocation against the slot.
    fn slot_relocations(&self) -> Vec<(u32, u64)> {
        let e = self.endian();
        let (index, _) = self.symbol(elf::SHT_DYNSYM, SYMBOL).unwrap();
        self.relas(elf::SHT_DYNSYM)
            .iter()
            .filter(|r| r.r_sym(e, false) as usize == index)
            .map(|r| (r.r_type(e, false), r.r_offset(e)))
            .collect()
    }

    /// Addresses of the slot's TLSDESC descriptors in the GOT.
    fn slot_descriptors(&self) -> Vec<u64> {
        self.slot_relocations()
            .into_iter()
            .filter(|&(kind, _)| kind == TLSDESC)
            .map(|(_, offset)| offset)
            .collect()
    }

    /// (virtual address, bytes) of the section called `name`.
    fn section(&self, name: &[u8]) -> (u64, &[u8]) {
        let e = self.endian();
        let sections = self.sections();
        let (_, s) = sections.section_by_name(e, name).unwrap();
        (s.sh_addr(e), s.data(e, &*self.data).unwrap())
    }
}

#[test]
fn slot_is_exported_as_8_byte_global_tls_symbol() {
    let so = Elf::load(&common::cdylib_path());
    let e = so.endian();
    let (_, sym) = so
        .symbol(elf::SHT_DYNSYM, SYMBOL)
        .expect("otel_thread_ctx_v1 in .dynsym");
    assert_eq!(sym.st_type(), elf::STT_TLS);
    assert_eq!(sym.st_bind(), elf::STB_GLOBAL);
    assert_eq!(sym.st_size(e), 8);
    assert_ne!(sym.st_shndx(e), elf::SHN_UNDEF, "defined by the library");
}

#[test]
fn slot_is_reached_only_through_tlsdesc_relocations() {
    let so = Elf::load(&common::cdylib_path());
    let kinds: Vec<u32> = so.slot_relocations().into_iter().map(|(kind, _)| kind).collect();
    assert!(!kinds.is_empty(), "at least one relocation references the slot");
    assert!(kinds.iter().all(|&k| k == TLSDESC), "relocation types {kinds:?}");
}

#[test]
fn tls_segment_fits_in_glibcs_static_tls_surplus() {
    let so = Elf::load(&common::cdylib_path());
    let e = so.endian();
    let tls: Vec<u64> = so
        .header()
        .program_headers(e, &*so.data)
        .unwrap()
        .iter()
        .filter(|ph| ph.p_type(e) == elf::PT_TLS)
        .map(|ph| ph.p_memsz(e))
        .collect();
    assert_eq!(tls.len(), 1);
    println!("PT_TLS memsz: {} bytes", tls[0]);
    assert!(tls[0] <= 128, "PT_TLS is {} bytes", tls[0]);
}

/// Compiles `&otel_thread_ctx_v1` with the target's gcc in the TLSDESC dialect (`flag`); returns
/// the object file, in a folder the caller removes.
fn gcc_slot_object(flag: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("otel-elf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("slot.c");
    std::fs::write(
        &src,
        "extern __thread void *otel_thread_ctx_v1;\nvoid **slot(void) { return &otel_thread_ctx_v1; }\n",
    )
    .unwrap();
    let obj = dir.join("slot.o");
    let status = Command::new(common::c_compiler())
        .args(["-O2", "-fPIC", flag, "-c"])
        .arg(&src)
        .arg("-o")
        .arg(&obj)
        .status()
        .expect("gcc runs");
    assert!(status.success());
    (dir, obj)
}

/// The access sequence gcc emits for `&otel_thread_ctx_v1` with -mtls-dialect=gnu2: the
/// `lea sym@tlsdesc(%rip)` opcode bytes (without its displacement) and the `call *(%rax)` bytes.
#[cfg(target_arch = "x86_64")]
fn gcc_tlsdesc_sequence() -> (Vec<u8>, Vec<u8>) {
    let (dir, obj) = gcc_slot_object("-mtls-dialect=gnu2");
    let o = Elf::load(&obj);
    let e = o.endian();
    let (_, text) = o.section(b".text");
    let relas = o.relas(elf::SHT_SYMTAB);
    let at = |kind| {
        relas
            .iter()
            .find(|r| r.r_type(e, false) == kind)
            .map(|r| r.r_offset(e) as usize)
            .unwrap()
    };
    let lea_disp = at(elf::R_X86_64_GOTPC32_TLSDESC);
    let call = at(elf::R_X86_64_TLSDESC_CALL);
    std::fs::remove_dir_all(&dir).ok();
    (text[lea_disp - 3..lea_disp].to_vec(), text[call..call + 2].to_vec())
}

#[cfg(target_arch = "x86_64")]
#[test]
fn tlsdesc_access_bytes_match_what_gcc_emits() {
    let (lea, call) = gcc_tlsdesc_sequence();
    assert_eq!(lea, [0x48, 0x8d, 0x05], "gcc's lea rax, [rip+disp32]");
    assert_eq!(call, [0xff, 0x10], "gcc's call *(%rax)");

    let so = Elf::load(&common::cdylib_path());
    let descriptors = so.slot_descriptors();
    let (text_addr, text) = so.section(b".text");
    // Every instruction that loads a descriptor's address must be gcc's lea, followed by gcc's
    // call: that is the sequence linkers recognise and relax.
    let mut sequences = 0;
    for i in 0..text.len().saturating_sub(9) {
        if text[i..i + 3] != lea[..] {
            continue;
        }
        let disp = i32::from_le_bytes(text[i + 3..i + 7].try_into().unwrap()) as i64;
        let target = (text_addr + i as u64 + 7).wrapping_add_signed(disp);
        if descriptors.contains(&target) {
            assert_eq!(
                &text[i + 7..i + 9],
                &call[..],
                "lea of the descriptor at {:#x} not followed by the call",
                i
            );
            sequences += 1;
        }
    }
    println!("TLSDESC access sequences in .text: {sequences}");
    assert!(sequences >= 1);
}

/// AArch64 instruction forms with their immediates masked out: (mask, value).
#[cfg(target_arch = "aarch64")]
mod a64 {
    /// `adrp x0, page`
    pub const ADRP_X0: (u32, u32) = (0x9f00_001f, 0x9000_0000);
    /// `ldr xN, [x0, #imm]` (gcc picks the scratch register N; N in bits 0-4)
    pub const LDR_X0: (u32, u32) = (0xffc0_03e0, 0xf940_0000);
    /// `add x0, x0, #imm` (unshifted)
    pub const ADD_X0_X0: (u32, u32) = (0xffc0_03ff, 0x9100_0000);
    /// `blr xN` (N in bits 5-9)
    pub const BLR: (u32, u32) = (0xffff_fc1f, 0xd63f_0000);

    pub fn is(insn: u32, (mask, value): (u32, u32)) -> bool {
        insn & mask == value
    }
    /// Whether `blr` calls the register `ldr` loaded.
    pub fn same_register(ldr: u32, blr: u32) -> bool {
        ldr & 0x1f == (blr >> 5) & 0x1f
    }
    /// The page an `adrp` at `pc` computes.
    pub fn adrp_target(insn: u32, pc: u64) -> u64 {
        let imm = (((insn >> 5) & 0x7_ffff) << 2 | (insn >> 29) & 3) as u64;
        let offset = ((imm << 31) as i64 >> 31) << 12; // sign-extend 21 bits, times the page
        (pc & !0xfff).wrapping_add_signed(offset)
    }
    /// The 12-bit immediate of `ldr`/`add`, in bytes.
    pub fn imm12(insn: u32, scale: u64) -> u64 {
        u64::from((insn >> 10) & 0xfff) * scale
    }
}

/// gcc's AArch64 TLSDESC sequence for `&otel_thread_ctx_v1` is adrp x0 / ldr xN / add x0 /
/// blr xN, one instruction after the other (N a scratch register; the asm uses x1), each carrying its TLSDESC relocation; the
/// library's every access to a descriptor of the slot is that same sequence.
#[cfg(target_arch = "aarch64")]
#[test]
fn tlsdesc_access_instructions_match_what_gcc_emits() {
    let (dir, obj) = gcc_slot_object("-mtls-dialect=desc");
    let o = Elf::load(&obj);
    let e = o.endian();
    let (_, text) = o.section(b".text");
    let insn = |at: usize| u32::from_le_bytes(text[at..at + 4].try_into().unwrap());
    let relas = o.relas(elf::SHT_SYMTAB);
    let at = |kind| {
        relas
            .iter()
            .find(|r| r.r_type(e, false) == kind)
            .map(|r| r.r_offset(e) as usize)
            .unwrap_or_else(|| panic!("gcc emitted no relocation {kind}"))
    };
    let adrp = at(elf::R_AARCH64_TLSDESC_ADR_PAGE21);
    assert_eq!(at(elf::R_AARCH64_TLSDESC_LD64_LO12), adrp + 4);
    assert_eq!(at(elf::R_AARCH64_TLSDESC_ADD_LO12), adrp + 8);
    assert_eq!(at(elf::R_AARCH64_TLSDESC_CALL), adrp + 12);
    assert!(a64::is(insn(adrp), a64::ADRP_X0), "gcc's adrp x0: {:#x}", insn(adrp));
    assert!(a64::is(insn(adrp + 4), a64::LDR_X0), "gcc's ldr xN, [x0]");
    assert!(a64::is(insn(adrp + 8), a64::ADD_X0_X0), "gcc's add x0, x0");
    assert!(a64::is(insn(adrp + 12), a64::BLR), "gcc's blr xN");
    assert!(a64::same_register(insn(adrp + 4), insn(adrp + 12)));
    std::fs::remove_dir_all(&dir).ok();

    let so = Elf::load(&common::cdylib_path());
    let descriptors = so.slot_descriptors();
    let (text_addr, text) = so.section(b".text");
    let insn = |at: usize| u32::from_le_bytes(text[at..at + 4].try_into().unwrap());
    let mut sequences = 0;
    for i in (0..text.len().saturating_sub(16)).step_by(4) {
        let pc = text_addr + i as u64;
        if !a64::is(insn(i), a64::ADRP_X0) {
            continue;
        }
        let page = a64::adrp_target(insn(i), pc);
        // Every adrp x0 that the next instruction turns into a descriptor's address must be
        // followed by the rest of gcc's sequence.
        let (ldr, add) = (insn(i + 4), insn(i + 8));
        if a64::is(ldr, a64::LDR_X0) && descriptors.contains(&(page + a64::imm12(ldr, 8))) {
            assert!(a64::is(add, a64::ADD_X0_X0), "add x0 after the ldr at {pc:#x}");
            assert_eq!(page + a64::imm12(add, 1), page + a64::imm12(ldr, 8), "at {pc:#x}");
            let blr = insn(i + 12);
            assert!(
                a64::is(blr, a64::BLR) && a64::same_register(ldr, blr),
                "blr of the loaded register after the add at {pc:#x}"
            );
            sequences += 1;
        } else if a64::is(add, a64::ADD_X0_X0) || a64::is(ldr, a64::ADD_X0_X0) {
            let target = |a| page + a64::imm12(a, 1);
            assert!(
                !descriptors.contains(&target(add)) && !descriptors.contains(&target(ldr)),
                "a descriptor of the slot is reached at {pc:#x} without gcc's sequence"
            );
        }
    }
    println!("TLSDESC access sequences in .text: {sequences}");
    assert!(sequences >= 1);
}

#[test]
fn self_check_of_the_loaded_library_passes() {
    let path = std::ffi::CString::new(common::cdylib_path().to_str().unwrap()).unwrap();
    // Safety: loading our own library; the symbols are looked up with their C signatures.
    unsafe {
        let lib = libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
        assert!(!lib.is_null());
        let f = libc::dlsym(lib, c"otel_thread_ctx_self_check".as_ptr());
        assert!(!f.is_null());
        let check: extern "C" fn(*mut libc::c_char, usize) -> i32 = std::mem::transmute(f);
        let mut msg = [0 as libc::c_char; 512];
        let status = check(msg.as_mut_ptr(), msg.len());
        let text = std::ffi::CStr::from_ptr(msg.as_ptr()).to_string_lossy().into_owned();
        println!("{text}");
        assert_eq!(status, 0, "{text}");
        assert!(text.starts_with("ok:"));
    }
}

#[test]
fn self_check_reports_failure_in_words_when_the_slot_is_not_exported() {
    // Linked statically into this test binary, the slot is not in any .dynsym.
    let mut msg = [0 as libc::c_char; 512];
    // Safety: valid buffer and length.
    let status = unsafe { otel_thread_ctx::ffi::otel_thread_ctx_self_check(msg.as_mut_ptr(), msg.len()) };
    // Safety: self_check NUL-terminates within the buffer.
    let text = unsafe { std::ffi::CStr::from_ptr(msg.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    assert_eq!(
        status,
        otel_thread_ctx::ffi::OtelThreadCtxStatus::SelfCheckFailed,
        "{text}"
    );
    assert!(text.contains("otel_thread_ctx_v1"), "{text}");
}

#[test]
fn self_check_message_is_cut_to_the_buffer_and_nul_terminated() {
    let mut msg = [0x7f as libc::c_char; 16];
    // Safety: buffer of 8 bytes declared, 16 available: the tail must stay untouched.
    unsafe { otel_thread_ctx::ffi::otel_thread_ctx_self_check(msg.as_mut_ptr(), 8) };
    assert_eq!(msg[7], 0);
    assert!(msg[8..].iter().all(|&b| b == 0x7f));
}
