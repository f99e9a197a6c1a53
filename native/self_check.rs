//! Run-time proof that the loaded module publishes the slot the way readers look for it.
//! It reads the module's own ELF file the way the eBPF profiler does, then asks the dynamic
//! linker where `otel_thread_ctx_v1` lives for this thread and compares with our TLSDESC access.

use object::elf;
use object::read::elf::{FileHeader, ProgramHeader, Rela, SectionHeader, Sym};
use object::{elf::FileHeader64, Endianness};
use std::ffi::{CStr, CString};

const SYMBOL: &str = "otel_thread_ctx_v1";
/// Largest PT_TLS that still leaves room in glibc's static-TLS surplus for other libraries.
pub(crate) const MAX_TLS_SEGMENT: u64 = 128;

pub(crate) fn run() -> Result<String, String> {
    let path = module_path()?;
    let data = std::fs::read(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let data = &*data;
    let not_elf = |e: object::Error| format!("{path} is not a readable 64-bit ELF file: {e}");
    let header = FileHeader64::<Endianness>::parse(data).map_err(not_elf)?;
    let endian = header.endian().map_err(not_elf)?;
    let sections = header.sections(endian, data).map_err(not_elf)?;
    let dynsym = sections.symbols(endian, data, elf::SHT_DYNSYM).map_err(not_elf)?;

    let (index, sym) = dynsym
        .iter()
        .enumerate()
        .find(|(_, s)| dynsym.symbol_name(endian, *s) == Ok(SYMBOL.as_bytes()))
        .ok_or_else(|| {
            format!(
                "{path}: {SYMBOL} is not in .dynsym, so readers cannot find it. The cdylib must be \
                 linked with LLD and native/otel_thread_ctx.ver (see build.rs)."
            )
        })?;
    if sym.st_type() != elf::STT_TLS {
        return Err(format!(
            "{path}: {SYMBOL} has symbol type {} instead of STT_TLS",
            sym.st_type()
        ));
    }
    if sym.st_bind() != elf::STB_GLOBAL {
        return Err(format!(
            "{path}: {SYMBOL} has binding {} instead of GLOBAL",
            sym.st_bind()
        ));
    }
    if sym.st_size(endian) != 8 {
        return Err(format!(
            "{path}: {SYMBOL} has size {} instead of 8",
            sym.st_size(endian)
        ));
    }
    if sym.st_shndx(endian) == elf::SHN_UNDEF {
        return Err(format!(
            "{path}: {SYMBOL} is undefined here; this module must define it"
        ));
    }

    let mut tlsdesc = 0;
    let mut descriptor = None;
    for section in sections.iter() {
        if section.sh_type(endian) != elf::SHT_RELA || section.sh_link(endian) as usize != dynsym.section().0 {
            continue;
        }
        let relas: &[elf::Rela64<Endianness>] = section.data_as_array(endian, data).map_err(not_elf)?;
        for rela in relas {
            if rela.r_sym(endian, false) as usize != index {
                continue;
            }
            match rela.r_type(endian, false) {
                elf::R_X86_64_TLSDESC => {
                    tlsdesc += 1;
                    descriptor = Some(rela.r_offset(endian));
                }
                other => {
                    return Err(format!(
                        "{path}: {SYMBOL} is reached through relocation type {other}; readers support \
                         only TLSDESC (36) for this library"
                    ))
                }
            }
        }
    }
    if tlsdesc == 0 {
        return Err(format!("{path}: no R_X86_64_TLSDESC relocation references {SYMBOL}"));
    }

    let tls_size = header
        .program_headers(endian, data)
        .map_err(not_elf)?
        .iter()
        .find(|ph| ph.p_type(endian) == elf::PT_TLS)
        .map(|ph| ph.p_memsz(endian))
        .ok_or_else(|| format!("{path}: no PT_TLS segment"))?;
    if tls_size > MAX_TLS_SEGMENT {
        return Err(format!(
            "{path}: PT_TLS is {tls_size} bytes, over {MAX_TLS_SEGMENT}; glibc may then be unable to \
             place it in static TLS when the library is loaded with dlopen"
        ));
    }

    let resolved = resolve_slot(&path)?;
    let ours = crate::tls::slot() as *const _ as usize;
    if resolved != ours {
        return Err(format!(
            "the dynamic linker resolves {SYMBOL} to {resolved:#x} but this library writes {ours:#x}: \
             another module in the process defines the same symbol first"
        ));
    }
    let placement = match descriptor.map(placement) {
        Some(Ok(p)) => p,
        Some(Err(e)) => return Err(e),
        None => unreachable!("tlsdesc > 0"),
    };
    Ok(format!(
        "ok: {path} exports {SYMBOL} (TLS, GLOBAL, 8 bytes) reached by {tlsdesc} TLSDESC relocation(s); \
         PT_TLS {tls_size} bytes; {placement}; this thread's slot is at {ours:#x}"
    ))
}

/// Where glibc placed the module's TLS, read from the live TLSDESC descriptor as a reader does:
/// a small argument is a fixed thread-pointer offset (static TLS), a pointer means the
/// per-thread DTV lookup (dynamic TLS).
fn placement(descriptor_offset: u64) -> Result<String, String> {
    let info = module_info()?;
    let descriptor = (info.dli_fbase as usize + descriptor_offset as usize) as *const i64;
    // Safety: the dynamic linker filled this GOT descriptor (two words) when it relocated us;
    // RELRO may make it read-only, which reading respects.
    let argument = unsafe { descriptor.add(1).read_volatile() };
    Ok(if (i64::from(i32::MIN)..=i64::from(u32::MAX)).contains(&argument) {
        format!("static TLS at thread-pointer offset {argument}")
    } else {
        "dynamic TLS (DTV lookup)".to_string()
    })
}

/// What the dynamic linker knows of the module holding this code.
fn module_info() -> Result<libc::Dl_info, String> {
    // Safety: Dl_info is plain pointers and integers, for which all-zero is valid.
    let mut info: libc::Dl_info = unsafe { core::mem::zeroed() };
    let here = crate::ffi::otel_thread_ctx_version as *const libc::c_void;
    // Safety: `here` is an address inside this module; `info` is a valid out pointer.
    if unsafe { libc::dladdr(here, &mut info) } == 0 || info.dli_fname.is_null() {
        return Err("dladdr could not find the module holding this library".into());
    }
    Ok(info)
}

/// Path of the ELF file this code was loaded from.
fn module_path() -> Result<String, String> {
    let info = module_info()?;
    // Safety: dladdr returned a NUL-terminated string owned by the dynamic linker.
    let name = unsafe { CStr::from_ptr(info.dli_fname) }.to_string_lossy().into_owned();
    if name.is_empty() || !name.contains('/') {
        // The main executable is reported by its argv[0]-style name; use its real path.
        return std::fs::read_link("/proc/self/exe")
            .map(|p| p.to_string_lossy().into_owned())
            .map_err(|e| format!("cannot resolve /proc/self/exe: {e}"));
    }
    Ok(name)
}

/// Address the dynamic linker gives `otel_thread_ctx_v1` for the calling thread.
fn resolve_slot(path: &str) -> Result<usize, String> {
    let cpath = CString::new(path).map_err(|_| format!("{path} contains a NUL byte"))?;
    // Safety: RTLD_NOLOAD only looks the module up; the handle is closed below.
    let handle = unsafe { libc::dlopen(cpath.as_ptr(), libc::RTLD_LAZY | libc::RTLD_NOLOAD) };
    if handle.is_null() {
        return Err(format!(
            "{path} is not loaded as a shared object (is the library linked statically?)"
        ));
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
