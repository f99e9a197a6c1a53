//! Run-time proof that the loaded module publishes the slot the way readers look for it.
//! It reads the module's own ELF file the way the eBPF profiler does, then asks the dynamic
//! linker where `otel_thread_ctx_v1` lives for this thread and compares with our TLSDESC access.
//!
//! The module is the cdylib, or the main executable when the static library (or the rlib) is
//! linked into it. There the slot is in the executable's TLS block, which glibc always places at
//! a fixed thread-pointer offset, and the linker has relaxed our TLSDESC sequence: GNU ld to
//! initial-exec (a GOT entry with an `R_X86_64_TPOFF64` relocation), LLD to local-exec (no
//! relocation). Readers handle both in an executable.
//!
//! On AArch64 the same holds with `R_AARCH64_TLSDESC` and `R_AARCH64_TLS_TPREL64` (object names it
//! `R_AARCH64_TLS_TPREL`), `tpidr_el0` as the thread pointer, and TLS variant I: static TLS sits at
//! a positive offset from the thread pointer, after the 16-byte TCB (negative on x86-64).

use object::elf;
use object::read::elf::{FileHeader, ProgramHeader, Rela, SectionHeader, Sym};
use object::{elf::FileHeader64, Endianness};
use std::ffi::{CStr, CString};
#[cfg(target_env = "gnu")]
use std::os::raw::c_char;

const SYMBOL: &str = "otel_thread_ctx_v1";
/// Largest PT_TLS that still leaves room in glibc's static-TLS surplus for other libraries.
pub(crate) const MAX_TLS_SEGMENT: u64 = 128;

pub(crate) fn run() -> Result<String, String> {
    if crate::handle::thread_exit::key().is_none() {
        return Err(
            "no pthread key could be created (the process has used all PTHREAD_KEYS_MAX of them), so \
             the library could not free a thread's record when the thread exits: it refuses to attach \
             records (status NO_THREAD_KEY)"
                .into(),
        );
    }
    let module = this_module()?;
    let path = module.path.clone();
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
            if module.executable {
                format!(
                    "{path}: {SYMBOL} is not in .dynsym, so readers cannot find it. The library is linked \
                     statically into this executable, which must export the slot: link it with \
                     -Wl,--export-dynamic-symbol={SYMBOL} (README, Platform support)."
                )
            } else {
                format!(
                    "{path}: {SYMBOL} is not in .dynsym, so readers cannot find it. The cdylib must be \
                     linked with LLD and native/otel_thread_ctx.ver (see build.rs)."
                )
            }
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

    // Dynamic relocations referencing the slot: (type, GOT offset).
    let mut relocations = Vec::new();
    for section in sections.iter() {
        if section.sh_type(endian) != elf::SHT_RELA || section.sh_link(endian) as usize != dynsym.section().0 {
            continue;
        }
        let relas: &[elf::Rela64<Endianness>] = section.data_as_array(endian, data).map_err(not_elf)?;
        for rela in relas {
            if rela.r_sym(endian, false) as usize == index {
                relocations.push((rela.r_type(endian, false), rela.r_offset(endian)));
            }
        }
    }
    let allowed: &[u32] = if module.executable {
        &[arch::TLSDESC, arch::TPREL]
    } else {
        &[arch::TLSDESC]
    };
    if let Some((other, _)) = relocations.iter().find(|(t, _)| !allowed.contains(t)) {
        return Err(if module.executable {
            format!(
                "{path}: {SYMBOL} is reached through relocation type {other}; readers support only \
                 TLSDESC ({}), initial-exec ({}) or local-exec (none) for the slot in an executable",
                arch::TLSDESC,
                arch::TPREL
            )
        } else {
            format!(
                "{path}: {SYMBOL} is reached through relocation type {other}; readers support only \
                 TLSDESC ({}) for this library",
                arch::TLSDESC
            )
        });
    }
    let count = |kind| relocations.iter().filter(|(t, _)| *t == kind).count();
    let (tlsdesc, tpoff) = (count(arch::TLSDESC), count(arch::TPREL));
    let descriptor = relocations
        .iter()
        .find(|(t, _)| *t == arch::TLSDESC)
        .map(|&(_, offset)| offset as usize);
    if descriptor.is_none() && !module.executable {
        return Err(format!(
            "{path}: no {} relocation references {SYMBOL}",
            arch::TLSDESC_NAME
        ));
    }

    let tls_size = header
        .program_headers(endian, data)
        .map_err(not_elf)?
        .iter()
        .find(|ph| ph.p_type(endian) == elf::PT_TLS)
        .map(|ph| ph.p_memsz(endian))
        .ok_or_else(|| format!("{path}: no PT_TLS segment"))?;
    // Only a library loaded with dlopen competes for the surplus; an executable's TLS is
    // always static.
    if tls_size > MAX_TLS_SEGMENT && !module.executable {
        return Err(format!(
            "{path}: PT_TLS is {tls_size} bytes, over {MAX_TLS_SEGMENT}; glibc may then be unable to \
             place it in static TLS when the library is loaded with dlopen"
        ));
    }

    let resolved = resolve_slot(&module)?;
    let ours = crate::tls::slot() as *const _ as usize;
    if resolved != ours {
        return Err(format!(
            "the dynamic linker resolves {SYMBOL} to {resolved:#x} but this library writes {ours:#x}: \
             another module in the process defines the same symbol first"
        ));
    }
    let placement = match descriptor {
        Some(descriptor) => placement(module.bias + descriptor),
        None => executable_placement(&module, &relocations, ours)?,
    };
    let access = match (tlsdesc, tpoff) {
        (0, 0) => "local-exec (no relocation)".to_string(),
        (0, n) => format!("initial-exec ({n} {} relocation(s))", arch::TPREL_NAME),
        (n, 0) => format!("{n} TLSDESC relocation(s)"),
        (n, m) => format!("{n} TLSDESC and {m} {} relocation(s)", arch::TPREL_NAME),
    };
    let module_kind = if module.executable {
        " (the main executable: the library is linked statically)"
    } else {
        ""
    };
    Ok(format!(
        "ok: {path}{module_kind} exports {SYMBOL} (TLS, GLOBAL, 8 bytes) reached by {access}; PT_TLS \
         {tls_size} bytes; {placement}; this thread's slot is at {ours:#x}"
    ))
}

/// Where glibc placed the module's TLS, read from the live TLSDESC descriptor at `descriptor`
/// as a reader does: a small argument is a fixed thread-pointer offset (static TLS), a pointer
/// means the per-thread DTV lookup (dynamic TLS).
fn placement(descriptor: usize) -> String {
    let descriptor = descriptor as *const i64;
    // Safety: the dynamic linker filled this GOT descriptor (two words) when it relocated us;
    // RELRO may make it read-only, which reading respects.
    let argument = unsafe { descriptor.add(1).read_volatile() };
    if (i64::from(i32::MIN)..=i64::from(u32::MAX)).contains(&argument) {
        format!("static TLS at thread-pointer offset {argument}")
    } else {
        "dynamic TLS (DTV lookup)".to_string()
    }
}

/// The slot's place in the main executable's TLS block, which glibc puts at the same offset from
/// every thread's thread pointer. A reader adds an initial-exec GOT entry (`R_X86_64_TPOFF64`,
/// `R_AARCH64_TLS_TPREL64`) to the thread pointer, so each such entry must hold the offset of this
/// thread's slot.
fn executable_placement(module: &Module, relocations: &[(u32, u64)], ours: usize) -> Result<String, String> {
    let offset = ours.wrapping_sub(arch::thread_pointer()) as i64;
    for &(_, got) in relocations.iter().filter(|(t, _)| *t == arch::TPREL) {
        let entry = (module.bias + got as usize) as *const i64;
        // Safety: the dynamic linker filled this GOT entry (one word) when it relocated the
        // executable; RELRO may make it read-only, which reading respects.
        let value = unsafe { entry.read_volatile() };
        if value != offset {
            return Err(format!(
                "{}: the {} GOT entry of {SYMBOL} holds thread-pointer offset {value}, but this \
                 thread's slot is at offset {offset}",
                module.path,
                arch::TPREL_NAME
            ));
        }
    }
    Ok(format!("static TLS at thread-pointer offset {offset}"))
}

/// What differs between architectures: relocation types and the thread pointer.
#[cfg(target_arch = "x86_64")]
mod arch {
    pub(super) const TLSDESC: u32 = object::elf::R_X86_64_TLSDESC;
    pub(super) const TLSDESC_NAME: &str = "R_X86_64_TLSDESC";
    /// Initial-exec: a GOT entry holding the (negative) thread-pointer offset.
    pub(super) const TPREL: u32 = object::elf::R_X86_64_TPOFF64;
    pub(super) const TPREL_NAME: &str = "R_X86_64_TPOFF64";

    /// The calling thread's thread pointer: glibc keeps the TCB's own address at `%fs:0`.
    pub(super) fn thread_pointer() -> usize {
        let tp: usize;
        // Safety: on x86-64 glibc every thread's %fs:0 holds its thread pointer; reading it has
        // no side effect and touches no register but the output.
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

/// What differs between architectures: relocation types and the thread pointer.
#[cfg(target_arch = "aarch64")]
mod arch {
    pub(super) const TLSDESC: u32 = object::elf::R_AARCH64_TLSDESC;
    pub(super) const TLSDESC_NAME: &str = "R_AARCH64_TLSDESC";
    /// Initial-exec: a GOT entry holding the (positive) thread-pointer offset.
    pub(super) const TPREL: u32 = object::elf::R_AARCH64_TLS_TPREL;
    pub(super) const TPREL_NAME: &str = "R_AARCH64_TLS_TPREL64";

    /// The calling thread's thread pointer, `tpidr_el0` (it points at the 16-byte TCB).
    pub(super) fn thread_pointer() -> usize {
        let tp: usize;
        // Safety: reading tpidr_el0 is allowed at EL0, has no side effect and touches no
        // register but the output.
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

/// glibc's `RTLD_DL_LINKMAP` request of `dladdr1` (the libc crate does not define it).
#[cfg(target_env = "gnu")]
const RTLD_DL_LINKMAP: libc::c_int = 2;

/// The first two fields of glibc's public `struct link_map` (`<link.h>`).
#[cfg(target_env = "gnu")]
#[repr(C)]
struct LinkMap {
    /// Load bias: run-time address minus the ELF file's virtual address.
    l_addr: usize,
    /// Path of the file; empty for the main executable.
    l_name: *const c_char,
}

/// The module holding this code, as the dynamic linker knows it.
struct Module {
    /// Its ELF file.
    path: String,
    /// Run-time address minus the file's virtual address.
    bias: usize,
    /// The main executable: the library was linked statically (staticlib or rlib).
    executable: bool,
}

#[cfg(target_env = "gnu")]
fn this_module() -> Result<Module, String> {
    // Safety: Dl_info is plain pointers and integers, for which all-zero is valid.
    let mut info: libc::Dl_info = unsafe { core::mem::zeroed() };
    let mut map: *mut LinkMap = core::ptr::null_mut();
    let here = crate::ffi::otel_thread_ctx_version as *const libc::c_void;
    // Safety: `here` is an address inside this module; `info` and `map` are valid out pointers,
    // and with RTLD_DL_LINKMAP glibc stores the module's `struct link_map *` in `map`.
    let found = unsafe { libc::dladdr1(here, &mut info, (&raw mut map).cast(), RTLD_DL_LINKMAP) };
    if found == 0 || map.is_null() {
        return Err(
            "the dynamic linker does not know the module holding this library: in a fully static \
             executable (linked with -static) there is no dynamic symbol table, so readers cannot find \
             the slot; link the executable dynamically"
                .into(),
        );
    }
    // Safety: `map` is the dynamic linker's link_map for this module, alive while the module is
    // loaded (we run in it); it starts with `l_addr` and `l_name`, a NUL-terminated string.
    let (bias, name) = unsafe { ((*map).l_addr, CStr::from_ptr((*map).l_name)) };
    let name = name.to_string_lossy().into_owned();
    if !name.is_empty() {
        return Ok(Module {
            path: name,
            bias,
            executable: false,
        });
    }
    // glibc names the main executable "": read it through its real path.
    let path = std::fs::read_link("/proc/self/exe")
        .map(|p| p.to_string_lossy().into_owned())
        .map_err(|e| format!("cannot resolve /proc/self/exe: {e}"))?;
    Ok(Module {
        path,
        bias,
        executable: true,
    })
}

/// musl has no `dladdr1`: `dl_iterate_phdr` gives each loaded module's load bias, name and
/// program headers. The module holding this code is the one with a `PT_LOAD` segment around it;
/// it is the main executable when its program headers are the ones the kernel passed in
/// `AT_PHDR`.
#[cfg(target_env = "musl")]
fn this_module() -> Result<Module, String> {
    /// What the callback looks for and what it found.
    struct Search {
        here: usize,
        found: Option<(usize, String, bool)>,
    }
    extern "C" fn visit(info: *mut libc::dl_phdr_info, _size: libc::size_t, data: *mut libc::c_void) -> libc::c_int {
        // Safety: musl passes a valid module description and our `data` for each call, one
        // call at a time, on this thread.
        let (info, search) = unsafe { (&*info, &mut *data.cast::<Search>()) };
        let bias = info.dlpi_addr as usize;
        // Safety: `dlpi_phdr` points at the module's `dlpi_phnum` mapped program headers.
        let phdrs = unsafe { core::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) };
        let holds = phdrs.iter().any(|ph| {
            let start = bias.wrapping_add(ph.p_vaddr as usize);
            ph.p_type == libc::PT_LOAD && (start..start + ph.p_memsz as usize).contains(&search.here)
        });
        if !holds {
            return 0;
        }
        // Safety: getauxval has no preconditions.
        let executable = unsafe { libc::getauxval(libc::AT_PHDR) } as usize == info.dlpi_phdr as usize;
        let name = if info.dlpi_name.is_null() {
            String::new()
        } else {
            // Safety: a non-null `dlpi_name` is a NUL-terminated string owned by the loader.
            unsafe { CStr::from_ptr(info.dlpi_name) }.to_string_lossy().into_owned()
        };
        search.found = Some((bias, name, executable));
        1
    }
    let mut search = Search {
        here: crate::ffi::otel_thread_ctx_version as *const () as usize,
        found: None,
    };
    // Safety: `visit` matches the callback type and only uses `search` during this call.
    unsafe { libc::dl_iterate_phdr(Some(visit), (&raw mut search).cast()) };
    let (bias, name, executable) = search
        .found
        .ok_or_else(|| "the dynamic linker does not list the module holding this library".to_string())?;
    let path = if executable || name.is_empty() {
        std::fs::read_link("/proc/self/exe")
            .map(|p| p.to_string_lossy().into_owned())
            .map_err(|e| format!("cannot resolve /proc/self/exe: {e}"))?
    } else {
        name
    };
    Ok(Module { path, bias, executable })
}

/// Address the dynamic linker gives `otel_thread_ctx_v1` for the calling thread, looked up in
/// the module: the main program (`dlopen(NULL)`) or the loaded library.
fn resolve_slot(module: &Module) -> Result<usize, String> {
    let path = &module.path;
    let handle = if module.executable {
        // Safety: a NULL file name returns the main program's handle; it is closed below.
        unsafe { libc::dlopen(core::ptr::null(), libc::RTLD_LAZY) }
    } else {
        let cpath = CString::new(path.as_str()).map_err(|_| format!("{path} contains a NUL byte"))?;
        // Safety: RTLD_NOLOAD only looks the module up; the handle is closed below.
        unsafe { libc::dlopen(cpath.as_ptr(), libc::RTLD_LAZY | libc::RTLD_NOLOAD) }
    };
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
