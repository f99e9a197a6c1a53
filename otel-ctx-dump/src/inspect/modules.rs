//! The modules exporting the slot: found from the mappings, examined once per file (cached), and
//! resolved from their live GOT to where the slot is for every thread.

use crate::elf::{self, AccessModel, TlsExport};
use crate::maps::{Mapping, Memory, ProcessMemory};
use crate::platform::Platform;
use std::collections::HashMap;
use std::fmt;

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

type FileKey = (String, u64, String);

/// What was learned from each mapped file, kept across snapshots (files do not change under a
/// mapping; a replaced file has another device/inode).
#[derive(Default)]
pub struct ElfCache(HashMap<FileKey, Result<Option<TlsExport>, String>>);

impl ElfCache {
    /// The modules exporting the slot among `maps`, resolved, and the files that could not be
    /// examined. `view` is a live task of the process (see `Inspector::address_space`).
    pub fn find_modules(&mut self, platform: &Platform, maps: &[Mapping], view: i32) -> (Vec<Module>, Vec<String>) {
        let mem = ProcessMemory { pid: view };
        let exe = std::fs::read_link(format!("/proc/{view}/exe"))
            .ok()
            .map(|p| p.to_string_lossy().trim_end_matches(" (deleted)").to_owned());
        let mut seen: Vec<FileKey> = Vec::new();
        let mut modules = Vec::new();
        let mut errors = Vec::new();
        for m in maps {
            if m.inode == 0 || !m.path.starts_with('/') {
                continue;
            }
            let key: FileKey = (m.dev.clone(), m.inode, m.path.clone());
            if seen.contains(&key) {
                continue;
            }
            seen.push(key.clone());
            let export = self
                .0
                .entry(key)
                .or_insert_with(|| examine_file(platform, view, m))
                .clone();
            let export = match export {
                Ok(Some(e)) => e,
                Ok(None) => continue,
                Err(e) => {
                    errors.push(format!("{}: {e}", m.path));
                    continue;
                }
            };
            // The bias comes from the file's first mapping of a loadable segment.
            let Some(load_bias) = maps
                .iter()
                .filter(|o| o.dev == m.dev && o.inode == m.inode && o.path == m.path)
                .find_map(|o| export.load_bias(o.start, o.offset))
            else {
                errors.push(format!("{}: no mapping matches a loadable segment", m.path));
                continue;
            };
            let model = export.access_model();
            let is_main_executable = exe.as_deref() == Some(m.path.trim_end_matches(" (deleted)"));
            let mut module = Module {
                path: m.path.clone(),
                load_bias,
                export,
                model,
                is_main_executable,
                resolution: Err(String::new()),
            };
            module.resolution = resolve(platform, &mem, &module);
            modules.push(module);
        }
        (modules, errors)
    }
}

/// Reads one mapped file's bytes (through /proc/PID/map_files, which also works for deleted
/// files and other mount namespaces) and looks for the export. `pid` may be any live task of
/// the process: /proc/TID/ works for every thread.
fn examine_file(platform: &Platform, pid: i32, m: &Mapping) -> Result<Option<TlsExport>, String> {
    use std::io::Read;
    let candidates = [
        format!("/proc/{pid}/map_files/{:x}-{:x}", m.start, m.end),
        format!("/proc/{pid}/root{}", m.path),
        m.path.clone(),
    ];
    let mut last_err = None;
    for path in &candidates {
        let mut f = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) => {
                last_err = Some(e);
                continue;
            }
        };
        let mut magic = [0u8; 4];
        if f.read_exact(&mut magic).is_err() || !elf::is_elf(&magic) {
            return Ok(None);
        }
        // Reads only the parts the lookup needs (runtimes map many large files).
        let cache = object::read::ReadCache::new(f);
        return elf::find_export_for(&cache, platform.arch).map_err(|e| e.to_string());
    }
    match last_err {
        // Mapped files that vanished or that we may not open are not ours to report, unless
        // nothing else explains a missing module: keep the reason.
        Some(e) => Err(format!("cannot open: {e}")),
        None => Ok(None),
    }
}

/// Works out where the module's slot is, from its live GOT.
pub fn resolve(platform: &Platform, mem: &dyn Memory, m: &Module) -> Result<Resolution, String> {
    let read = |addr: u64| mem.read_u64(addr).map_err(|e| format!("reading GOT at {addr:#x}: {e}"));
    match m.model {
        AccessModel::TlsDesc => {
            let r = m.export.reloc(m.model).ok_or("no TLSDESC relocation")?;
            let desc = m.load_bias.wrapping_add(r.r_offset);
            let resolver = read(desc)?;
            let arg = read(desc + 8)?;
            if resolver == 0 {
                return Err(format!("TLSDESC descriptor at {desc:#x} is not relocated yet"));
            }
            if (arg as i64) <= 0xffff_ffff {
                return Ok(Resolution::StaticOffset(arg as i64));
            }
            let module_id = read(arg)?;
            let offset = read(arg + 8)?;
            let generation = read(arg + 16)?;
            check_dynamic(module_id, offset, m)?;
            Ok(Resolution::Dynamic {
                module_id,
                offset,
                generation: Some(generation),
            })
        }
        AccessModel::InitialExec => {
            let r = m.export.reloc(m.model).ok_or("no TPOFF64 relocation")?;
            Ok(Resolution::StaticOffset(
                read(m.load_bias.wrapping_add(r.r_offset))? as i64
            ))
        }
        AccessModel::GeneralDynamic => {
            let r = m.export.reloc(m.model).ok_or("no DTPMOD64 relocation")?;
            let got = m.load_bias.wrapping_add(r.r_offset);
            let module_id = read(got)?;
            let offset = read(got + 8)?;
            if module_id == 0 {
                return Err(format!("GOT entry at {got:#x} has no module id yet"));
            }
            check_dynamic(module_id, offset, m)?;
            Ok(Resolution::Dynamic {
                module_id,
                offset,
                generation: None,
            })
        }
        AccessModel::LocalExec => {
            if !m.is_main_executable {
                return Err("no relocation reaches the slot and this is not the main executable".into());
            }
            m.export
                .local_exec_tp_offset(platform.arch.tls_layout)
                .map(Resolution::StaticOffset)
                .ok_or_else(|| "no PT_TLS segment".into())
        }
    }
}

fn check_dynamic(module_id: u64, offset: u64, m: &Module) -> Result<(), String> {
    if module_id == 0 || module_id > 1 << 20 {
        return Err(format!("implausible TLS module id {module_id}"));
    }
    if let Some(tls) = m.export.tls {
        if offset.checked_add(8).is_none_or(|end| end > tls.memsz) {
            return Err(format!(
                "TLS offset {offset:#x} is outside the module's {}-byte TLS block",
                tls.memsz
            ));
        }
    }
    Ok(())
}
