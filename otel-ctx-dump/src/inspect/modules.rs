//! The modules exporting the slot: found from the mappings, examined once per file (cached), and
//! resolved from their live GOT to where the slot is for every thread.

use crate::elf::{self, AccessModel, Examined, FileData, SymbolEntry, TlsExport, TlsSegment};
use crate::maps::{Mapping, Memory, ProcessMemory};
use crate::platform::{Arch, Platform};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};

/// Where a module's slot is, for every thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// slot = thread pointer + offset (static TLS).
    StaticOffset(i64),
    /// slot = DTV[module_id] + offset. `generation` is the descriptor's, when it has one.
    Dynamic {
        module_id: u64,
        offset: u64,
        generation: Option<u64>,
    },
}

impl fmt::Display for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Resolution::StaticOffset(o) if o < 0 => write!(f, "static TLS, slot at tp-{:#x}", o.unsigned_abs()),
            Resolution::StaticOffset(o) => write!(f, "static TLS, slot at tp+{o:#x}"),
            Resolution::Dynamic { module_id, offset, .. } => {
                write!(f, "dynamic TLS, slot at DTV[{module_id}]+{offset:#x}")
            }
        }
    }
}

/// A module that defines `otel_thread_ctx_v1`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    /// Path as `/proc/PID/maps` shows it.
    pub path: String,
    pub load_bias: u64,
    pub export: TlsExport,
    pub model: AccessModel,
    pub is_main_executable: bool,
    pub resolution: Result<Resolution, String>,
}

impl Module {
    /// Facts worth a warning: the spec wants a GLOBAL, 8-byte symbol.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.export.st_size != 8 {
            w.push(format!("symbol size is {} (spec: 8)", self.export.st_size));
        }
        if !self.export.global {
            w.push("symbol binding is not GLOBAL".into());
        }
        if self.model == AccessModel::LocalExec && !self.is_main_executable {
            w.push("no dynamic relocation reaches the slot in this shared object".into());
        }
        w
    }
}

/// What was learned from each mapped file (by device, inode and path), kept across snapshots:
/// files do not change under a mapping, and a replaced file has another device/inode.
#[derive(Default)]
pub struct ElfCache(HashMap<(String, u64, String), Result<Examined, String>>);

/// What [`ElfCache::find_modules`] found.
pub struct Found {
    /// The modules exporting the slot, resolved.
    pub modules: Vec<Module>,
    /// The files that could not be examined, and why.
    pub errors: Vec<String>,
    /// Every `.dynsym` entry named like the slot, by file path (definitions and references).
    pub entries: Vec<(String, SymbolEntry)>,
}

impl ElfCache {
    /// The modules among `maps`. `view` is a live task of the process (see
    /// `Inspector::address_space`).
    pub fn find_modules(&mut self, platform: &Platform, maps: &[Mapping], view: i32) -> Found {
        let mem = ProcessMemory { pid: view };
        let exe = std::fs::read_link(format!("/proc/{view}/exe")).ok();
        let exe = exe.map(|p| p.to_string_lossy().trim_end_matches(" (deleted)").to_owned());
        let mut entries = Vec::new();
        let mut module = |m: &Mapping| -> Result<Option<Module>, String> {
            let key = (m.dev.clone(), m.inode, m.path.clone());
            let cached = self
                .0
                .entry(key)
                .or_insert_with(|| examine_file(platform.arch, view, m));
            let examined = cached.clone()?;
            entries.extend(examined.entries.iter().map(|e| (m.path.clone(), *e)));
            let Some(export) = examined.export else {
                return Ok(None);
            };
            // The bias comes from the file's first mapping of a loadable segment.
            let same_file = |o: &&Mapping| o.dev == m.dev && o.inode == m.inode && o.path == m.path;
            let load_bias = maps
                .iter()
                .filter(same_file)
                .find_map(|o| export.load_bias(o.start, o.offset))
                .ok_or("no mapping matches a loadable segment")?;
            let mut module = Module {
                path: m.path.clone(),
                load_bias,
                model: export.access_model(),
                export,
                is_main_executable: exe.as_deref() == Some(m.path.trim_end_matches(" (deleted)")),
                resolution: Err(String::new()),
            };
            module.resolution = resolve(platform, &mem, &module);
            Ok(Some(module))
        };
        let mut seen = HashSet::new();
        let (mut modules, mut errors) = (Vec::new(), Vec::new());
        for m in maps.iter().filter(|m| m.inode != 0 && m.path.starts_with('/')) {
            if seen.insert((&m.dev, m.inode, &m.path)) {
                match module(m) {
                    Ok(found) => modules.extend(found),
                    Err(e) => errors.push(format!("{}: {e}", m.path)),
                }
            }
        }
        Found {
            modules,
            errors,
            entries,
        }
    }
}

/// Opens a regular file for reading, and nothing else: the target chooses what its mappings'
/// paths lead to, and a FIFO there would block `open` (a device could do worse). The open itself
/// never waits (`O_NONBLOCK`), and the type is checked again on what was opened.
pub fn open_regular(path: &str) -> io::Result<File> {
    let not_regular = |what: &str| io::Error::other(format!("not a regular file ({what})"));
    let kind = std::fs::metadata(path)?.file_type();
    if !kind.is_file() {
        let what = if kind.is_fifo() { "a FIFO" } else { "a special file" };
        return Err(not_regular(what));
    }
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    if !file.metadata()?.file_type().is_file() {
        return Err(not_regular("replaced while being opened"));
    }
    Ok(file)
}

/// Examines one mapped file, through /proc/PID/map_files if it can (deleted files, other mount
/// namespaces), reading only the parts needed (runtimes map many large files) and never past the
/// file's real size.
fn examine_file(arch: &Arch, pid: i32, m: &Mapping) -> Result<Examined, String> {
    let file = open_regular(&format!("/proc/{pid}/map_files/{:x}-{:x}", m.start, m.end))
        .or_else(|_| open_regular(&format!("/proc/{pid}/root{}", m.path)))
        .or_else(|_| open_regular(&m.path));
    // A file that cannot be opened is reported: it may be why a module is missing.
    let file = file.map_err(|e| format!("cannot open: {e}"))?;
    let len = file.metadata().map_err(|e| format!("cannot stat: {e}"))?.len();
    elf::examine(&FileData::new(file, len), Some(arch))
}

/// Works out where the module's slot is, from its live GOT (the static TLS layout is the
/// module's architecture's; a dynamic TLSDESC argument's is the C library's).
pub fn resolve(platform: &Platform, mem: &dyn Memory, m: &Module) -> Result<Resolution, String> {
    let read = |addr: u64| mem.read_u64(addr).map_err(|e| format!("reading GOT at {addr:#x}: {e}"));
    let got = m.export.reloc(m.model).map(|r| m.load_bias.wrapping_add(r.r_offset));
    match m.model {
        AccessModel::TlsDesc => {
            let desc = got.ok_or("no TLSDESC relocation")?;
            let (resolver, arg) = (read(desc)?, read(desc + 8)?);
            if resolver == 0 {
                return Err(format!("TLSDESC descriptor at {desc:#x} is not relocated yet"));
            }
            if (arg as i64) <= 0xffff_ffff {
                return Ok(Resolution::StaticOffset(arg as i64));
            }
            let (module_id, offset) = (read(arg)?, read(arg + 8)?);
            // glibc's argument has a third word, the generation; musl's links its next one.
            let has_generation = platform.dtv.is_some_and(|d| d.generation);
            let generation = has_generation.then(|| read(arg + 16)).transpose()?;
            dynamic(m, module_id, offset, generation)
        }
        AccessModel::InitialExec => Ok(Resolution::StaticOffset(
            read(got.ok_or("no TPOFF64 relocation")?)? as i64
        )),
        AccessModel::GeneralDynamic => {
            let got = got.ok_or("no DTPMOD64 relocation")?;
            let (module_id, offset) = (read(got)?, read(got + 8)?);
            if module_id == 0 {
                return Err(format!("GOT entry at {got:#x} has no module id yet"));
            }
            dynamic(m, module_id, offset, None)
        }
        AccessModel::LocalDynamic => Err("local-dynamic access: readers do not support it".into()),
        AccessModel::LocalExec if !m.is_main_executable => {
            Err("no relocation reaches the slot and this is not the main executable".into())
        }
        AccessModel::LocalExec => m
            .export
            .local_exec_tp_offset()
            .map(Resolution::StaticOffset)
            .ok_or_else(|| "no PT_TLS segment".into()),
    }
}

/// A DTV resolution, once the module id and offset are plausible.
fn dynamic(m: &Module, module_id: u64, offset: u64, generation: Option<u64>) -> Result<Resolution, String> {
    if module_id == 0 || module_id > 1 << 20 {
        return Err(format!("implausible TLS module id {module_id}"));
    }
    let fits = |tls: &TlsSegment| offset.checked_add(8).is_some_and(|end| end <= tls.memsz);
    if let Some(tls) = m.export.tls.filter(|tls| !fits(tls)) {
        let size = tls.memsz;
        return Err(format!(
            "TLS offset {offset:#x} is outside the module's {size}-byte TLS block"
        ));
    }
    Ok(Resolution::Dynamic {
        module_id,
        offset,
        generation,
    })
}
