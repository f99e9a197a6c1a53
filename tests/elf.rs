//! ELF properties of the built cdylib, checked the way an out-of-process reader sees the file.

mod common;

use object::elf;
use object::read::elf::{FileHeader, ProgramHeader, Rela, SectionHeader, Sym};
use object::{elf::FileHeader64, Endianness};
use std::process::Command;

const SYMBOL: &[u8] = b"otel_thread_ctx_v1";

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
    let e = so.endian();
    let (index, _) = so.symbol(elf::SHT_DYNSYM, SYMBOL).unwrap();
    let kinds: Vec<u32> = so
        .relas(elf::SHT_DYNSYM)
        .iter()
        .filter(|r| r.r_sym(e, false) as usize == index)
        .map(|r| r.r_type(e, false))
        .collect();
    assert!(!kinds.is_empty(), "at least one relocation references the slot");
    assert!(
        kinds.iter().all(|&k| k == elf::R_X86_64_TLSDESC),
        "relocation types {kinds:?}"
    );
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

/// The access sequence gcc emits for `&otel_thread_ctx_v1` with -mtls-dialect=gnu2: the
/// `lea sym@tlsdesc(%rip)` opcode bytes (without its displacement) and the `call *(%rax)` bytes.
fn gcc_tlsdesc_sequence() -> (Vec<u8>, Vec<u8>) {
    let dir = std::env::temp_dir().join(format!("otel-elf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("slot.c");
    std::fs::write(
        &src,
        "extern __thread void *otel_thread_ctx_v1;\nvoid **slot(void) { return &otel_thread_ctx_v1; }\n",
    )
    .unwrap();
    let obj = dir.join("slot.o");
    let status = Command::new("gcc")
        .args(["-O2", "-fPIC", "-mtls-dialect=gnu2", "-c"])
        .arg(&src)
        .arg("-o")
        .arg(&obj)
        .status()
        .expect("gcc runs");
    assert!(status.success());
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

#[test]
fn tlsdesc_access_bytes_match_what_gcc_emits() {
    let (lea, call) = gcc_tlsdesc_sequence();
    assert_eq!(lea, [0x48, 0x8d, 0x05], "gcc's lea rax, [rip+disp32]");
    assert_eq!(call, [0xff, 0x10], "gcc's call *(%rax)");

    let so = Elf::load(&common::cdylib_path());
    let e = so.endian();
    let (index, _) = so.symbol(elf::SHT_DYNSYM, SYMBOL).unwrap();
    let descriptors: Vec<u64> = so
        .relas(elf::SHT_DYNSYM)
        .iter()
        .filter(|r| r.r_sym(e, false) as usize == index && r.r_type(e, false) == elf::R_X86_64_TLSDESC)
        .map(|r| r.r_offset(e))
        .collect();
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
