//! Run-time proof that the loaded module publishes the slot the way readers look for it: it reads
//! the module's own ELF file as the eBPF profiler does, then asks the dynamic linker where
//! `otel_thread_ctx_v1` lives for this thread and compares with our TLSDESC access. Last, it
//! reads every other loaded module's `.dynsym`: profilers keep one slot per process, so no other
//! module may define the name (a second slot) or reference it (an undefined entry that readers
//! matching the name misread).
//!
//! The module is the cdylib, or the main executable when the static library (or the rlib) is
//! linked into it. There the linker has relaxed TLSDESC to initial-exec (GNU ld: a GOT entry with
//! a TPREL relocation) or local-exec (LLD: none); readers handle both, since an executable's TLS
//! sits at a fixed thread-pointer offset (negative on x86-64, past the 16-byte TCB on AArch64).

use arch::{thread_pointer, TLSDESC, TPREL, TPREL_NAME};
use object::elf::{self, FileHeader64};
use object::read::elf::{FileHeader, ProgramHeader, Rela, SectionHeader, Sym};
use object::Endianness;
use std::ffi::{CStr, CString};
use std::ptr::null;

const SYMBOL: &str = "otel_thread_ctx_v1";
/// Largest PT_TLS that still leaves room in glibc's static-TLS surplus for other libraries.
const MAX_TLS_SEGMENT: u64 = 128;

pub(crate) fn run() -> Result<String, String> {
    crate::handle::thread_exit::key().ok_or(
        "no pthread key is left (PTHREAD_KEYS_MAX), so the library could not free a thread's record \
         at its exit: it refuses to attach records (status NO_THREAD_KEY)",
    )?;
    let modules = loaded_modules();
    let module = modules
        .iter()
        .find(|m| m.ours && !m.path.is_empty())
        .ok_or("the dynamic linker does not list the module holding this library under a path")?;
    let (path, exe) = (&module.path, module.executable);
    let data = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let data = &*data;
    let not_elf = |e: object::Error| format!("{path} is not a readable 64-bit ELF file: {e}");
    let header = FileHeader64::<Endianness>::parse(data).map_err(not_elf)?;
    let endian = header.endian().map_err(not_elf)?;
    let sections = header.sections(endian, data).map_err(not_elf)?;
    let dynsym = sections.symbols(endian, data, elf::SHT_DYNSYM).map_err(not_elf)?;
    if dynsym.is_empty() {
        return Err(format!(
            "{path} has no dynamic symbol table (a fully static executable, linked with -static), so \
             readers cannot find the slot; link the executable dynamically"
        ));
    }
    let (index, sym) = dynsym
        .iter()
        .enumerate()
        .find(|(_, s)| dynsym.symbol_name(endian, *s) == Ok(SYMBOL.as_bytes()))
        .ok_or_else(|| {
            let fix = match exe {
                true => {
                    "The library is linked statically into this executable, which must export the slot: \
                         link it with -Wl,--export-dynamic-symbol=otel_thread_ctx_v1 \
                         (docs/PLATFORMS.md, Linking the static library)."
                }
                false => "The cdylib must be linked with LLD and native/otel_thread_ctx.ver (see build.rs).",
            };
            format!("{path}: {SYMBOL} is not in .dynsym, so readers cannot find it. {fix}")
        })?;
    let found = (sym.st_type(), sym.st_bind(), sym.st_size(endian));
    if found != (elf::STT_TLS, elf::STB_GLOBAL, 8) || sym.st_shndx(endian) == elf::SHN_UNDEF {
        return Err(format!(
            "{path}: {SYMBOL} must be a defined TLS symbol, GLOBAL, of 8 bytes (type {}, binding {}, size {})",
            found.0, found.1, found.2
        ));
    }

    // Dynamic relocations referencing the slot: (type, GOT offset).
    let mut relocations = Vec::new();
    for section in sections.iter() {
        if section.sh_type(endian) != elf::SHT_RELA || section.sh_link(endian) as usize != dynsym.section().0 {
            continue;
        }
        let relas: &[elf::Rela64<Endianness>] = section.data_as_array(endian, data).map_err(not_elf)?;
        let ours = relas.iter().filter(|r| r.r_sym(endian, false) as usize == index);
        relocations.extend(ours.map(|r| (r.r_type(endian, false), r.r_offset(endian) as usize)));
    }
    let allowed = |t: u32| t == TLSDESC || (exe && t == TPREL);
    if let Some((other, _)) = relocations.iter().find(|(t, _)| !allowed(*t)) {
        return Err(format!(
            "{path}: {SYMBOL} is reached through relocation type {other}; readers support only TLSDESC \
             ({TLSDESC}), and in an executable initial-exec ({TPREL}) or local-exec (none)"
        ));
    }
    let count = |kind| relocations.iter().filter(|(t, _)| *t == kind).count();
    let descriptor = relocations.iter().find(|r| r.0 == TLSDESC).map(|r| r.1);
    if descriptor.is_none() && !exe {
        return Err(format!("{path}: no TLSDESC relocation references {SYMBOL}"));
    }

    let tls_size = header
        .program_headers(endian, data)
        .map_err(not_elf)?
        .iter()
        .find(|ph| ph.p_type(endian) == elf::PT_TLS)
        .map(|ph| ph.p_memsz(endian))
        .ok_or_else(|| format!("{path}: no PT_TLS segment"))?;
    // Only a library loaded with dlopen competes for the surplus; an executable's TLS is static.
    if tls_size > MAX_TLS_SEGMENT && !exe {
        return Err(format!(
            "{path}: PT_TLS is {tls_size} bytes, over {MAX_TLS_SEGMENT}; glibc may then be unable to \
             place it in static TLS when the library is loaded with dlopen"
        ));
    }

    let resolved = resolve_slot(module)?;
    let ours = crate::tls::slot() as *const _ as usize;
    if resolved != ours {
        return Err(format!(
            "the dynamic linker resolves {SYMBOL} to {resolved:#x} but this library writes {ours:#x}: \
             another module in the process defines the same symbol first"
        ));
    }
    let offset = check_tprel_entries(module, &relocations, ours)?;
    let placement = match descriptor {
        Some(at) => descriptor_placement(module.bias + at),
        None => format!("static TLS at thread-pointer offset {offset}"),
    };
    let access = match (count(TLSDESC), count(TPREL)) {
        (0, 0) => "local-exec (no relocation)".to_string(),
        (0, n) => format!("initial-exec ({n} {TPREL_NAME} relocation(s))"),
        (n, 0) => format!("{n} TLSDESC relocation(s)"),
        (n, m) => format!("{n} TLSDESC and {m} {TPREL_NAME} relocation(s)"),
    };
    let module_kind = match exe {
        true => " (the main executable: the library is linked statically)",
        false => "",
    };
    let summary = format!(
        "{path}{module_kind} exports {SYMBOL} (TLS, GLOBAL, 8 bytes) reached by {access}; PT_TLS \
         {tls_size} bytes; {placement}; this thread's slot is at {ours:#x}"
    );
    match other_modules(&modules).as_slice() {
        [] => Ok(format!("ok: {summary}")),
        others => Err(format!(
            "{}. Readers keep one slot per process: no other module may define or reference {SYMBOL}. \
             This library's own slot is fine: {summary}",
            others.join("; ")
        )),
    }
}

/// Every other loaded module whose `.dynsym` names the slot, read from its file as readers read
/// it: one that defines its own (a second slot; a profiler follows one of the two) or one that
/// references it (an undefined entry, which readers matching the name in each module without
/// skipping undefined entries take for the slot). Modules without a readable ELF file (the vDSO,
/// a deleted file) are skipped: readers cannot see their symbols either.
fn other_modules(modules: &[Module]) -> Vec<String> {
    let mut found = Vec::new();
    for Module { path, .. } in modules.iter().filter(|m| !m.ours && !m.path.is_empty()) {
        let Ok(file) = std::fs::File::open(path) else { continue };
        found.push(match slot_entry(&object::read::ReadCache::new(file)) {
            Ok(Some(true)) => format!("{path} defines its own {SYMBOL}, a second slot that profilers may read instead"),
            Ok(Some(false)) => format!(
                "{path} references {SYMBOL} (an undefined entry in its .dynsym, which readers matching \
                 the name can take for the slot); reach the record through the API instead \
                 (otel_thread_ctx_ensure_record, otel_thread_ctx_current)"
            ),
            _ => continue,
        });
    }
    found
}

/// Whether the ELF file's `.dynsym` names the slot: Some(true) defined, Some(false) undefined.
fn slot_entry<'a, R: object::ReadRef<'a>>(data: R) -> object::Result<Option<bool>> {
    let header = FileHeader64::<Endianness>::parse(data)?;
    let endian = header.endian()?;
    let sections = header.sections(endian, data)?;
    let dynsym = sections.symbols(endian, data, elf::SHT_DYNSYM)?;
    let named = dynsym
        .iter()
        .find(|s| dynsym.symbol_name(endian, *s) == Ok(SYMBOL.as_bytes()));
    Ok(named.map(|s| s.st_shndx(endian) != elf::SHN_UNDEF))
}

/// The slot's offset from this thread's thread pointer, after checking every initial-exec GOT
/// entry of the slot holds it. An executable's TLS sits at one offset from every thread's thread
/// pointer, and a reader adds such an entry (`R_X86_64_TPOFF64`, `R_AARCH64_TLS_TPREL64`) to it.
fn check_tprel_entries(module: &Module, relocations: &[(u32, usize)], ours: usize) -> Result<i64, String> {
    let offset = ours.wrapping_sub(thread_pointer()) as i64;
    for &(_, got) in relocations.iter().filter(|(t, _)| *t == TPREL) {
        // Safety: the dynamic linker filled this GOT entry (one word) when it relocated the
        // executable; RELRO may make it read-only, which reading respects.
        let value = unsafe { ((module.bias + got) as *const i64).read_volatile() };
        if value != offset {
            return Err(format!(
                "{}: the {TPREL_NAME} GOT entry of {SYMBOL} holds thread-pointer offset {value}, but \
                 this thread's slot is at offset {offset}",
                module.path
            ));
        }
    }
    Ok(offset)
}

/// Where the module's TLS is, read from its live TLSDESC descriptor at `descriptor` as a reader
/// does: a small argument is a fixed thread-pointer offset (static TLS), a pointer means the
/// per-thread DTV lookup (dynamic TLS).
fn descriptor_placement(descriptor: usize) -> String {
    // Safety: the dynamic linker filled this GOT descriptor (two words) when it relocated us;
    // RELRO may make it read-only, which reading respects.
    match unsafe { (descriptor as *const i64).add(1).read_volatile() } {
        arg if (i64::from(i32::MIN)..=i64::from(u32::MAX)).contains(&arg) => {
            format!("static TLS at thread-pointer offset {arg}")
        }
        _ => "dynamic TLS (DTV lookup)".to_string(),
    }
}

/// What differs between architectures: relocation types (TPREL: initial-exec, a GOT entry
/// holding the thread-pointer offset) and the thread pointer.
#[cfg(target_arch = "x86_64")]
mod arch {
    pub(super) const TLSDESC: u32 = object::elf::R_X86_64_TLSDESC;
    pub(super) const TPREL: u32 = object::elf::R_X86_64_TPOFF64;
    pub(super) const TPREL_NAME: &str = "R_X86_64_TPOFF64";

    /// The calling thread's thread pointer: the C library keeps the TCB's own address at `%fs:0`.
    pub(super) fn thread_pointer() -> usize {
        let tp: usize;
        // Safety: every thread's %fs:0 holds its thread pointer; reading it has no side effect.
        unsafe {
            core::arch::asm!(
                "mov %fs:0, {}",
                out(reg) tp,
                options(att_syntax, nostack, readonly, preserves_flags),
            );
        }
        tp
    }
}

#[cfg(target_arch = "aarch64")]
mod arch {
    pub(super) const TLSDESC: u32 = object::elf::R_AARCH64_TLSDESC;
    pub(super) const TPREL: u32 = object::elf::R_AARCH64_TLS_TPREL;
    pub(super) const TPREL_NAME: &str = "R_AARCH64_TLS_TPREL64";

    /// The calling thread's thread pointer, `tpidr_el0` (it points at the 16-byte TCB).
    pub(super) fn thread_pointer() -> usize {
        let tp: usize;
        // Safety: reading tpidr_el0 is allowed at EL0 and has no side effect.
        unsafe {
            core::arch::asm!(
                "mrs {}, tpidr_el0",
                out(reg) tp,
                options(nostack, nomem, preserves_flags),
            );
        }
        tp
    }
}

/// A loaded module, as the dynamic linker knows it.
struct Module {
    /// Its file ("" when unknown); the main executable's through /proc/self/exe.
    path: String,
    /// Run-time address minus the file's virtual address.
    bias: usize,
    /// The main executable: holding this code, the library was linked statically (staticlib or rlib).
    executable: bool,
    /// It holds this code (a `PT_LOAD` segment around it): the module of this library.
    ours: bool,
}

/// Every module `dl_iterate_phdr` (glibc and musl) lists; the main executable is the one whose
/// program headers are those of `AT_PHDR`.
fn loaded_modules() -> Vec<Module> {
    extern "C" fn visit(info: *mut libc::dl_phdr_info, _: libc::size_t, out: *mut libc::c_void) -> libc::c_int {
        // Safety: the loader passes a valid module description and our `out` for each call,
        // one call at a time, on this thread.
        let (info, out) = unsafe { (&*info, &mut *out.cast::<Vec<Module>>()) };
        let (bias, here) = (info.dlpi_addr as usize, loaded_modules as *const () as usize);
        // Safety: `dlpi_phdr` points at the module's `dlpi_phnum` mapped program headers.
        let phdrs = unsafe { core::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) };
        let ours = phdrs.iter().any(|ph| {
            let start = bias.wrapping_add(ph.p_vaddr as usize);
            ph.p_type == libc::PT_LOAD && (start..start + ph.p_memsz as usize).contains(&here)
        });
        // Safety: getauxval has no preconditions.
        let executable = unsafe { libc::getauxval(libc::AT_PHDR) } as usize == info.dlpi_phdr as usize;
        let path = match info.dlpi_name.is_null() {
            true => String::new(),
            // Safety: a non-null `dlpi_name` is a NUL-terminated string owned by the loader.
            false => unsafe { CStr::from_ptr(info.dlpi_name) }.to_string_lossy().into_owned(),
        };
        // glibc names the main executable "", musl by argv[0]: take the kernel's path.
        let path = match executable || (ours && path.is_empty()) {
            true => std::fs::read_link("/proc/self/exe").map_or(String::new(), |p| p.to_string_lossy().into_owned()),
            false => path,
        };
        out.push(Module {
            path,
            bias,
            executable,
            ours,
        });
        0
    }
    let mut out = Vec::new();
    // Safety: `visit` matches the callback type and only uses `out` during this call.
    unsafe { libc::dl_iterate_phdr(Some(visit), (&raw mut out).cast()) };
    out
}

/// Address the dynamic linker gives `otel_thread_ctx_v1` for the calling thread, looked up in
/// the module: the main program (`dlopen(NULL)`) or the loaded library.
fn resolve_slot(module: &Module) -> Result<usize, String> {
    let path = &module.path;
    let cpath = CString::new(path.as_str()).map_err(|_| format!("{path} contains a NUL byte"))?;
    let file = if module.executable { null() } else { cpath.as_ptr() };
    // Safety: a NUL-terminated name or NULL (the main program); RTLD_NOLOAD only looks the
    // module up. The handle is closed below.
    let handle = unsafe { libc::dlopen(file, libc::RTLD_LAZY | libc::RTLD_NOLOAD) };
    if handle.is_null() {
        return Err(format!("{path} is not loaded as a shared object"));
    }
    let name = CString::new(SYMBOL).expect("no NUL in symbol name");
    // Safety: valid handle and NUL-terminated name; for a TLS symbol dlsym returns the calling
    // thread's address.
    let addr = unsafe { libc::dlsym(handle, name.as_ptr()) } as usize;
    // Safety: handle came from dlopen above.
    unsafe { libc::dlclose(handle) };
    if addr == 0 {
        return Err(format!("dlsym cannot find {SYMBOL} in {path}"));
    }
    Ok(addr)
}
