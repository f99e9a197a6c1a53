//! Reading a live process the way the eBPF profiler does (FACTS section 4): find the modules
//! that export the slot, resolve how each reaches it, then stop each thread briefly to follow its
//! thread pointer to the record. Also reads the process context.

use crate::elf::{self, AccessModel, TlsExport};
use crate::maps::{self, Mapping, Memory, ProcessMemory};
use crate::process_context::{self as pc, Header, ProcessContext};
use crate::ptrace::{self, StopError, Tracer};
use crate::record::{self, Record, RecordHeader};
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

/// Why a process could not be inspected at all.
#[derive(Debug)]
pub enum InspectError {
    NoSuchProcess,
    /// Every thread has exited; the parent has not reaped the process yet.
    Zombie {
        parent: i32,
    },
    /// A kernel thread: no user space to read.
    KernelThread,
    /// The reader lacks the rights: the text says which operation failed.
    PermissionDenied(String),
    Io(String),
}

impl fmt::Display for InspectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InspectError::NoSuchProcess => write!(f, "no such process"),
            InspectError::Zombie { parent } => write!(
                f,
                "the process is a zombie: it has exited and its parent {parent} has not reaped it yet; nothing is left to read"
            ),
            InspectError::KernelThread => write!(f, "this is a kernel thread: it has no user space to read"),
            InspectError::PermissionDenied(what) => write!(f, "permission denied: {what}"),
            InspectError::Io(e) => write!(f, "{e}"),
        }
    }
}

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
#[derive(Clone, Debug)]
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

/// What one thread's slot in one module holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SlotRead {
    /// The thread has no TLS block for the module yet (dynamic TLS not allocated).
    NoSlot(String),
    /// The slot is NULL.
    NoContext,
    Record {
        addr: u64,
        record: Record,
    },
    Error(String),
}

/// Who holds a thread as its tracer (a thread has one tracer at a time).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TracerInfo {
    /// The tracing thread, as `TracerPid` in /proc/PID/task/TID/status gives it.
    pub tid: i32,
    /// Its process.
    pub pid: i32,
    /// Its process's name (comm).
    pub name: String,
}

/// Why a thread was not read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ThreadProblem {
    /// The thread has exited (a zombie, e.g. a main thread that called pthread_exit).
    Exited,
    /// ptrace refused, for lack of rights.
    PermissionDenied,
    /// Another tracer holds the thread.
    TracedBy(TracerInfo),
    /// The thread did not reach the ptrace stop in time (blocked in the kernel, e.g. a thread
    /// in vfork): not read. `state` is its state letter then (`D` for a vfork wait).
    NotStopped {
        waited_ms: u64,
        state: Option<char>,
    },
    /// Not read: the reader was interrupted first.
    Interrupted,
    Other(String),
}

impl ThreadProblem {
    /// A word for scripts (the JSON `reason`).
    pub fn reason(&self) -> &'static str {
        match self {
            ThreadProblem::Exited => "exited",
            ThreadProblem::PermissionDenied => "permission_denied",
            ThreadProblem::TracedBy(_) => "traced",
            ThreadProblem::NotStopped { .. } => "not_stopped",
            ThreadProblem::Interrupted => "interrupted",
            ThreadProblem::Other(_) => "error",
        }
    }

    /// Not allowed to trace the thread, whatever the reason.
    pub fn is_denied(&self) -> bool {
        matches!(self, ThreadProblem::PermissionDenied | ThreadProblem::TracedBy(_))
    }
}

impl fmt::Display for ThreadProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ThreadProblem::Exited => write!(f, "thread has exited"),
            ThreadProblem::PermissionDenied => write!(f, "permission denied stopping the thread (ptrace)"),
            ThreadProblem::TracedBy(t) if t.tid == t.pid => {
                write!(f, "already traced by process {} ({})", t.pid, t.name)
            }
            ThreadProblem::TracedBy(t) => {
                write!(f, "already traced by process {} ({}), thread {}", t.pid, t.name, t.tid)
            }
            ThreadProblem::NotStopped { waited_ms, state } => {
                write!(f, "not read: it did not stop within {waited_ms} ms")?;
                match state {
                    Some('D') => write!(f, " (state D: blocked in the kernel, e.g. in vfork)"),
                    Some(s) => write!(f, " (state {s})"),
                    None => Ok(()),
                }
            }
            ThreadProblem::Interrupted => write!(f, "not read: interrupted"),
            ThreadProblem::Other(e) => write!(f, "{e}"),
        }
    }
}

/// One thread's row.
#[derive(Clone, Debug)]
pub struct ThreadReport {
    pub tid: i32,
    pub name: String,
    /// One entry per module with a usable resolution, in module order (index into modules).
    pub reads: Vec<(usize, SlotRead)>,
    /// The thread could not be stopped or read at all.
    pub error: Option<ThreadProblem>,
}

/// The process context, as found.
#[derive(Clone, Debug)]
pub enum ContextStatus {
    Absent,
    Invalid {
        mapping: String,
        addr: u64,
        error: String,
    },
    Present {
        mapping: String,
        addr: u64,
        header: Header,
        context: ProcessContext,
    },
}

impl ContextStatus {
    pub fn context(&self) -> Option<&ProcessContext> {
        match self {
            ContextStatus::Present { context, .. } => Some(context),
            _ => None,
        }
    }
}

/// Everything read from the process in one pass.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub pid: i32,
    pub command: String,
    pub process_context: ContextStatus,
    pub modules: Vec<Module>,
    /// ELF files that could not be examined.
    pub module_errors: Vec<String>,
    pub threads: Vec<ThreadReport>,
    /// Threads not read because `--thread` asked for another one; 0 without a filter.
    pub threads_skipped: usize,
}

impl Snapshot {
    /// The key name of an attribute index, when the process context has a usable key map.
    pub fn key_name(&self, i: u8) -> Option<&str> {
        self.process_context.context()?.key_name(i)
    }
}

type FileKey = (String, u64, String);

/// Reads one process, repeatedly if asked (it caches what it learned from ELF files).
pub struct Inspector {
    pub pid: i32,
    /// When set, the threads not read yet are skipped (the CLI's Ctrl-C flag).
    cancel: Option<&'static AtomicBool>,
    elf_cache: HashMap<FileKey, Result<Option<TlsExport>, String>>,
}

fn io_error(pid: i32, what: &str, e: io::Error) -> InspectError {
    match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ESRCH) => InspectError::NoSuchProcess,
        Some(libc::EACCES) | Some(libc::EPERM) => InspectError::PermissionDenied(format!("{what} of process {pid}")),
        _ => InspectError::Io(format!("{what} of process {pid}: {e}")),
    }
}

/// A thread's name, from `/proc/PID/task/TID/comm`.
pub fn thread_name(pid: i32, tid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm"))
        .map(|s| s.trim_end().to_owned())
        .unwrap_or_default()
}

/// The fields of `/proc/PID/task/TID/stat` the inspector uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskStat {
    /// `R`, `S`, `D`, `t`, `Z`, ...
    pub state: char,
    pub ppid: i32,
    /// `PF_*` flags.
    pub flags: u64,
}

/// The kernel's flag for kernel threads.
const PF_KTHREAD: u64 = 0x0020_0000;

impl TaskStat {
    /// Parses a stat line. The name is in parentheses and may contain anything (spaces, ')'),
    /// so fields are counted from the last ')'.
    pub fn parse(stat: &str) -> Option<TaskStat> {
        let mut f = stat[stat.rfind(')')? + 1..].split_whitespace();
        let state = f.next()?.chars().next()?;
        let ppid = f.next()?.parse().ok()?;
        let flags = f.nth(4)?.parse().ok()?;
        Some(TaskStat { state, ppid, flags })
    }

    pub fn is_kernel_thread(&self) -> bool {
        self.flags & PF_KTHREAD != 0
    }
}

/// A thread's `/proc/PID/task/TID/stat`.
pub fn task_stat(pid: i32, tid: i32) -> Option<TaskStat> {
    TaskStat::parse(&std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).ok()?)
}

/// A thread's state letter from `/proc/PID/task/TID/stat` (`R`, `S`, `t`, `Z`, ...).
pub fn thread_state(pid: i32, tid: i32) -> Option<char> {
    task_stat(pid, tid).map(|s| s.state)
}

/// The thread's tracer, from `TracerPid` in `/proc/PID/task/TID/status` (None: not traced).
pub fn tracer_of(pid: i32, tid: i32) -> Option<TracerInfo> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<i32>().ok())
    };
    let tracer = field("TracerPid:").filter(|&t| t > 0)?;
    // TracerPid names the tracing thread; its Tgid is the process.
    let tracer_status = std::fs::read_to_string(format!("/proc/{tracer}/status")).unwrap_or_default();
    let tgid = tracer_status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:")?.trim().parse().ok())
        .unwrap_or(tracer);
    let name = std::fs::read_to_string(format!("/proc/{tgid}/comm"))
        .map(|s| s.trim_end().to_owned())
        .unwrap_or_else(|_| "?".into());
    Some(TracerInfo {
        tid: tracer,
        pid: tgid,
        name,
    })
}

/// The process's thread ids, sorted.
pub fn thread_ids(pid: i32) -> io::Result<Vec<i32>> {
    let mut tids: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/task"))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    tids.sort_unstable();
    Ok(tids)
}

impl Inspector {
    pub fn new(pid: i32) -> Inspector {
        Inspector {
            pid,
            cancel: None,
            elf_cache: HashMap::new(),
        }
    }

    /// Stops reading threads once `flag` is set (they are reported as not read).
    pub fn cancel_on(&mut self, flag: &'static AtomicBool) {
        self.cancel = Some(flag);
    }

    /// The address space as some live task of the process sees it: `/proc/PID/maps` and the
    /// task to read memory through. A main thread that called `pthread_exit` stays a zombie
    /// whose maps read empty (and its memory unreadable) while the other threads run on: then
    /// the first live thread's view is used. Returns (maps, task id).
    fn address_space(&self) -> Result<(Vec<Mapping>, i32), InspectError> {
        let pid = self.pid;
        let maps = maps::read(pid).map_err(|e| io_error(pid, "reading /proc/PID/maps", e))?;
        if !maps.is_empty() {
            return Ok((maps, pid));
        }
        for tid in thread_ids(pid).unwrap_or_default() {
            if tid == pid || matches!(thread_state(pid, tid), Some('Z') | Some('X') | None) {
                continue;
            }
            if let Ok(m) = maps::read_task(pid, tid) {
                if !m.is_empty() {
                    return Ok((m, tid));
                }
            }
        }
        Ok((maps, pid))
    }

    /// Reads the process context, the modules and the threads (all, or only `only_tid`).
    pub fn snapshot(&mut self, only_tid: Option<i32>) -> Result<Snapshot, InspectError> {
        let pid = self.pid;
        let (maps, view) = self.address_space()?;
        let mem = ProcessMemory { pid: view };
        if maps.is_empty() {
            // A kernel thread or a zombie has no mappings; maps of another user's process read
            // as empty rather than failing on some kernels.
            if std::fs::metadata(format!("/proc/{pid}")).is_err() {
                return Err(InspectError::NoSuchProcess);
            }
            if let Some(stat) = task_stat(pid, pid) {
                if stat.is_kernel_thread() {
                    return Err(InspectError::KernelThread);
                }
                // `address_space` found no live thread.
                if matches!(stat.state, 'Z' | 'X') {
                    return Err(InspectError::Zombie { parent: stat.ppid });
                }
            }
        }
        // process_vm_readv needs the same rights as ptrace: check them once, up front.
        if let Some(m) = maps.iter().find(|m| m.perms.starts_with('r')) {
            let mut b = [0u8; 1];
            if let Err(e) = mem.read(m.start, &mut b) {
                if matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES)) {
                    return Err(io_error(pid, "reading the memory (process_vm_readv)", e));
                }
                if e.raw_os_error() == Some(libc::ESRCH) {
                    return Err(InspectError::NoSuchProcess);
                }
            }
        }
        let command = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|s| s.trim_end().to_owned())
            .unwrap_or_default();
        let process_context = read_process_context(&maps, &mem);
        let (modules, module_errors) = self.find_modules(&maps, view);

        let mut tids = thread_ids(pid).map_err(|e| io_error(pid, "listing /proc/PID/task", e))?;
        let all = tids.len();
        tids.retain(|&tid| only_tid.is_none_or(|t| t == tid));
        let threads_skipped = all - tids.len();
        // One tracer thread per pass: it releases whatever it could not detach when it ends.
        let this = &*self;
        let threads = ptrace::with_tracer(|tracer| {
            tids.iter()
                .map(|&tid| {
                    if this.cancel.is_some_and(|c| c.load(Ordering::SeqCst)) {
                        return ThreadReport {
                            tid,
                            name: thread_name(pid, tid),
                            reads: Vec::new(),
                            error: Some(ThreadProblem::Interrupted),
                        };
                    }
                    this.read_thread(tracer, &mem, tid, &modules)
                })
                .collect::<Vec<_>>()
        });
        if let Some(t) = only_tid {
            if threads.is_empty() {
                return Err(InspectError::Io(format!("process {pid} has no thread {t}")));
            }
        }
        Ok(Snapshot {
            pid,
            command,
            process_context,
            modules,
            module_errors,
            threads,
            threads_skipped,
        })
    }

    fn read_thread(&self, tracer: &Tracer, mem: &ProcessMemory, tid: i32, modules: &[Module]) -> ThreadReport {
        let name = thread_name(self.pid, tid);
        let mut report = ThreadReport {
            tid,
            name,
            reads: Vec::new(),
            error: None,
        };
        if matches!(thread_state(self.pid, tid), Some('Z') | Some('X')) {
            report.error = Some(ThreadProblem::Exited);
            return report;
        }
        let usable: Vec<(usize, Resolution)> = modules
            .iter()
            .enumerate()
            .filter_map(|(i, m)| m.resolution.as_ref().ok().map(|r| (i, *r)))
            .collect();
        if usable.is_empty() {
            return report;
        }
        let stopped = match tracer.stop(tid) {
            Ok(s) => s,
            Err(StopError::PermissionDenied) => {
                // A thread takes one tracer at a time: name it rather than blame the policy.
                report.error = Some(match tracer_of(self.pid, tid) {
                    Some(t) => ThreadProblem::TracedBy(t),
                    None => ThreadProblem::PermissionDenied,
                });
                return report;
            }
            Err(StopError::Gone) => {
                report.error = Some(ThreadProblem::Exited);
                return report;
            }
            Err(StopError::NotStopped(waited)) => {
                report.error = Some(ThreadProblem::NotStopped {
                    waited_ms: waited.as_millis() as u64,
                    state: thread_state(self.pid, tid),
                });
                return report;
            }
            Err(e) => {
                report.error = Some(ThreadProblem::Other(e.to_string()));
                return report;
            }
        };
        let tp = match stopped.thread_pointer() {
            Ok(tp) => tp,
            Err(e) => {
                report.error = Some(ThreadProblem::Other(format!("reading registers: {e}")));
                return report;
            }
        };
        for (i, resolution) in usable {
            report.reads.push((i, read_slot(mem, tp, resolution)));
        }
        drop(stopped);
        report
    }

    /// `view` is the task whose /proc entries describe the address space (see `address_space`).
    fn find_modules(&mut self, maps: &[Mapping], view: i32) -> (Vec<Module>, Vec<String>) {
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
                .elf_cache
                .entry(key)
                .or_insert_with(|| examine_file(view, m))
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
            module.resolution = resolve(&mem, &module);
            modules.push(module);
        }
        (modules, errors)
    }
}

/// Reads one mapped file's bytes (through /proc/PID/map_files, which also works for deleted
/// files and other mount namespaces) and looks for the export. `pid` may be any live task of
/// the process: /proc/TID/ works for every thread.
fn examine_file(pid: i32, m: &Mapping) -> Result<Option<TlsExport>, String> {
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
        return elf::find_export(&cache).map_err(|e| e.to_string());
    }
    match last_err {
        // Mapped files that vanished or that we may not open are not ours to report, unless
        // nothing else explains a missing module: keep the reason.
        Some(e) => Err(format!("cannot open: {e}")),
        None => Ok(None),
    }
}

/// Works out where the module's slot is, from its live GOT.
pub fn resolve(mem: &dyn Memory, m: &Module) -> Result<Resolution, String> {
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
                .local_exec_tp_offset()
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

/// Follows one thread's pointer to the slot and the record. The thread must be stopped.
pub fn read_slot(mem: &dyn Memory, tp: u64, resolution: Resolution) -> SlotRead {
    let slot = match resolution {
        Resolution::StaticOffset(off) => tp.wrapping_add(off as u64),
        Resolution::Dynamic {
            module_id,
            offset,
            generation,
        } => {
            // glibc x86-64: the DTV pointer is at tp+8; entries are 16 bytes; entry -1 holds
            // the number of entries, entry 0 the generation the thread's DTV is up to date with.
            let dtv = match mem.read_u64(tp.wrapping_add(8)) {
                Ok(d) => d,
                Err(e) => return SlotRead::Error(format!("reading the DTV pointer: {e}")),
            };
            let len = match mem.read_u64(dtv.wrapping_sub(16)) {
                Ok(l) => l,
                Err(e) => return SlotRead::Error(format!("reading the DTV length: {e}")),
            };
            if module_id > len {
                return SlotRead::NoSlot(format!(
                    "the thread's DTV has {len} entries, module {module_id} not among them"
                ));
            }
            if let Some(g) = generation {
                match mem.read_u64(dtv) {
                    Ok(dtv_gen) if dtv_gen < g => {
                        return SlotRead::NoSlot(format!(
                            "the thread's DTV (generation {dtv_gen}) predates the module (generation {g})"
                        ))
                    }
                    Ok(_) => {}
                    Err(e) => return SlotRead::Error(format!("reading the DTV generation: {e}")),
                }
            }
            let entry = match mem.read_u64(dtv.wrapping_add(16 * module_id)) {
                Ok(e) => e,
                Err(e) => return SlotRead::Error(format!("reading DTV[{module_id}]: {e}")),
            };
            if entry == u64::MAX || entry == 0 {
                return SlotRead::NoSlot("TLS block not allocated for this thread yet".into());
            }
            entry.wrapping_add(offset)
        }
    };
    let ptr = match mem.read_u64(slot) {
        Ok(p) => p,
        Err(e) => return SlotRead::Error(format!("reading the slot at {slot:#x}: {e}")),
    };
    if ptr == 0 {
        return SlotRead::NoContext;
    }
    read_record(mem, ptr)
}

/// Copies and decodes the record at `addr`: the header, then the attribute bytes it announces
/// (bounded by the reader's limit).
pub fn read_record(mem: &dyn Memory, addr: u64) -> SlotRead {
    let mut head = [0u8; record::HEADER_SIZE];
    if let Err(e) = mem.read(addr, &mut head) {
        return SlotRead::Error(format!("reading the record at {addr:#x}: {e}"));
    }
    let header = RecordHeader::parse(&head).expect("28 bytes");
    let mut bytes = head.to_vec();
    let want = header.attrs_to_read();
    if want > 0 {
        if let Ok(attrs) = mem.read_prefix(addr + record::HEADER_SIZE as u64, want) {
            bytes.extend_from_slice(&attrs);
        }
    }
    match record::decode_record(&bytes) {
        Some(record) => SlotRead::Record { addr, record },
        None => SlotRead::Error("record header unreadable".into()),
    }
}

/// Finds and reads the process context mapping.
pub fn read_process_context(maps: &[Mapping], mem: &dyn Memory) -> ContextStatus {
    let mut status = ContextStatus::Absent;
    for m in maps.iter().filter(|m| pc::is_context_mapping(&m.path, &m.perms)) {
        status = read_context_at(mem, m);
        if matches!(status, ContextStatus::Present { .. }) {
            break;
        }
    }
    status
}

fn read_context_at(mem: &dyn Memory, m: &Mapping) -> ContextStatus {
    let invalid = |error: String| ContextStatus::Invalid {
        mapping: m.path.clone(),
        addr: m.start,
        error,
    };
    if m.end - m.start < pc::HEADER_SIZE as u64 {
        return invalid("mapping is smaller than the header".into());
    }
    // A writer may update it while we read: retry when the timestamp moves.
    let mut last = invalid("changed on every read".into());
    for _ in 0..5 {
        let mut head = [0u8; pc::HEADER_SIZE];
        if let Err(e) = mem.read(m.start, &mut head) {
            return invalid(format!("reading the header: {e}"));
        }
        let header = match Header::parse(&head) {
            Ok(h) => h,
            Err(pc::HeaderError::BeingUpdated) => {
                last = invalid(pc::HeaderError::BeingUpdated.to_string());
                std::thread::sleep(std::time::Duration::from_millis(2));
                continue;
            }
            Err(e) => return invalid(e.to_string()),
        };
        let mut payload = vec![0u8; header.payload_size as usize];
        if let Err(e) = mem.read(header.payload_ptr, &mut payload) {
            return invalid(format!(
                "reading the {}-byte payload at {:#x}: {e}",
                header.payload_size, header.payload_ptr
            ));
        }
        let mut again = [0u8; pc::HEADER_SIZE];
        if mem.read(m.start, &mut again).is_err() || again != head {
            last = invalid("changed while being read".into());
            continue;
        }
        return match pc::decode_payload(&payload) {
            Ok(context) => ContextStatus::Present {
                mapping: m.path.clone(),
                addr: m.start,
                header,
                context,
            },
            Err(e) => invalid(e.to_string()),
        };
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Memory made of byte regions at fixed addresses.
    struct FakeMemory(Vec<(u64, Vec<u8>)>);

    impl Memory for FakeMemory {
        fn read(&self, addr: u64, buf: &mut [u8]) -> io::Result<()> {
            for (start, bytes) in &self.0 {
                if addr >= *start && addr + buf.len() as u64 <= start + bytes.len() as u64 {
                    let o = (addr - start) as usize;
                    buf.copy_from_slice(&bytes[o..o + buf.len()]);
                    return Ok(());
                }
            }
            Err(io::Error::from_raw_os_error(libc::EFAULT))
        }
    }

    fn words(ws: &[u64]) -> Vec<u8> {
        ws.iter().flat_map(|w| w.to_ne_bytes()).collect()
    }

    fn record_bytes() -> Vec<u8> {
        let mut r = vec![0u8; 28];
        r[0] = 0xab;
        r[16] = 0xcd;
        r[24] = 1;
        r[25] = 1;
        r[26..28].copy_from_slice(&5u16.to_ne_bytes());
        r.extend_from_slice(b"\x01\x03GET");
        r
    }

    #[test]
    fn static_offset_slot() {
        let tp = 0x7000_0000u64;
        let mem = FakeMemory(vec![(tp - 0x40, words(&[0x9000])), (0x9000, record_bytes())]);
        match read_slot(&mem, tp, Resolution::StaticOffset(-0x40)) {
            SlotRead::Record { addr, record } => {
                assert_eq!(addr, 0x9000);
                assert_eq!(record.header.trace_id[0], 0xab);
                assert_eq!(record.attributes[0].value, "GET");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn dtv_slot_and_its_absent_cases() {
        let tp = 0x7000_0000u64;
        let dtv = 0x5000u64;
        // dtv[-1] = 3 entries, dtv[0] = generation 4, dtv[1] = block, dtv[2] = unallocated.
        let table = words(&[3, 0, 4, 0, 0x8000, 0, u64::MAX, 0, 0x8100, 0]);
        let mem = FakeMemory(vec![
            (tp + 8, words(&[dtv])),
            (dtv - 16, table),
            (0x8000, words(&[0, 0x9000])),
            (0x9000, record_bytes()),
        ]);
        let res = |module_id, generation| Resolution::Dynamic {
            module_id,
            offset: 8,
            generation,
        };
        assert!(matches!(
            read_slot(&mem, tp, res(1, Some(4))),
            SlotRead::Record { addr: 0x9000, .. }
        ));
        assert!(matches!(read_slot(&mem, tp, res(1, None)), SlotRead::Record { .. }));
        assert!(matches!(read_slot(&mem, tp, res(2, Some(4))), SlotRead::NoSlot(_)));
        assert!(matches!(read_slot(&mem, tp, res(4, Some(4))), SlotRead::NoSlot(_)));
        assert!(matches!(read_slot(&mem, tp, res(1, Some(5))), SlotRead::NoSlot(_)));
        // dtv[3] points at unmapped memory.
        assert!(matches!(read_slot(&mem, tp, res(3, Some(4))), SlotRead::Error(_)));
    }

    #[test]
    fn stat_lines_with_hostile_names() {
        let kthreadd = "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 25";
        let s = TaskStat::parse(kthreadd).unwrap();
        assert_eq!((s.state, s.ppid), ('S', 0));
        assert!(s.is_kernel_thread());
        let user = "77 (a) Z 1 (x) Z 12 77 77 0 -1 4194560 0 0";
        let s = TaskStat::parse(user).unwrap();
        assert_eq!((s.state, s.ppid), ('Z', 12));
        assert!(!s.is_kernel_thread());
        assert_eq!(TaskStat::parse("1 (x"), None);
    }

    #[test]
    fn null_slot_is_no_context() {
        let mem = FakeMemory(vec![(0x1000, words(&[0]))]);
        assert_eq!(
            read_slot(&mem, 0x1010, Resolution::StaticOffset(-0x10)),
            SlotRead::NoContext
        );
    }

    #[test]
    fn record_with_unreadable_attributes_is_a_short_read() {
        let r = record_bytes();
        let mem = FakeMemory(vec![(0x9000, r[..28].to_vec())]);
        match read_record(&mem, 0x9000) {
            SlotRead::Record { record, .. } => {
                assert!(record.attributes.is_empty());
                assert!(record.truncated.is_some());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn process_context_from_memory() {
        use prost::Message;
        let payload = pc::proto::ProcessContext {
            resource: Some(pc::proto::Resource {
                attributes: vec![pc::proto::KeyValue {
                    key: "service.name".into(),
                    value: Some(pc::proto::AnyValue {
                        value: Some(pc::proto::any_value::Value::StringValue("svc".into())),
                    }),
                }],
            }),
            attributes: vec![],
        }
        .encode_to_vec();
        let mut head = b"OTEL_CTX".to_vec();
        head.extend_from_slice(&2u32.to_ne_bytes());
        head.extend_from_slice(&(payload.len() as u32).to_ne_bytes());
        head.extend_from_slice(&77u64.to_ne_bytes());
        head.extend_from_slice(&0x20000u64.to_ne_bytes());
        let map = |path: &str| Mapping {
            start: 0x10000,
            end: 0x11000,
            perms: "rw-p".into(),
            offset: 0,
            dev: "00:01".into(),
            inode: 1,
            path: path.into(),
        };
        let mem = FakeMemory(vec![(0x10000, head.clone()), (0x20000, payload)]);
        match read_process_context(&[map("/memfd:OTEL_CTX (deleted)")], &mem) {
            ContextStatus::Present { header, context, .. } => {
                assert_eq!(header.published_at_ns, 77);
                assert_eq!(context.resource[0].1, pc::Value::Str("svc".into()));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            read_process_context(&[map("[anon:OTHER]")], &mem),
            ContextStatus::Absent
        ));
        // A payload pointer into nothing is reported, not trusted.
        let mut bad = head;
        bad[24..32].copy_from_slice(&0x30000u64.to_ne_bytes());
        let mem = FakeMemory(vec![(0x10000, bad)]);
        assert!(matches!(
            read_process_context(&[map("[anon:OTEL_CTX]")], &mem),
            ContextStatus::Invalid { .. }
        ));
    }
}
