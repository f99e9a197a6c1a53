//! Reading a live process the way the eBPF profiler does (FACTS section 4): find the modules
//! that export the slot, resolve how each reaches it, then stop each thread briefly to follow its
//! thread pointer to the record. Also reads the process context.
//!
//! By job: [`threads`] lists the threads and what /proc says about them; [`modules`] finds and
//! caches the modules exporting the slot and resolves it from their live GOT; [`dtv`] follows
//! one thread's pointer (static TLS or the DTV) to its record; [`context`] reads the process
//! context, retrying while a writer updates it. What differs by architecture and C library
//! comes from [`crate::platform`].

pub mod context;
pub mod dtv;
pub mod modules;
pub mod threads;

pub use context::{read_process_context, ContextStatus};
pub use dtv::{read_record, read_slot, SlotRead};
pub use modules::{resolve, Module, Resolution};
pub use threads::{task_stat, thread_ids, thread_name, thread_state, tracer_of, TaskStat, ThreadProblem, TracerInfo};

use crate::maps::{self, Mapping, Memory, ProcessMemory};
use crate::platform::{CLibrary, Platform};
use crate::ptrace::{self, StopError, Tracer};
use modules::ElfCache;
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

/// One thread's row.
#[derive(Clone, Debug, PartialEq)]
pub struct ThreadReport {
    pub tid: i32,
    pub name: String,
    /// One entry per module with a usable resolution, in module order (index into modules).
    pub reads: Vec<(usize, SlotRead)>,
    /// The thread could not be stopped or read at all.
    pub error: Option<ThreadProblem>,
}

/// Everything read from the process in one pass.
#[derive(Clone, Debug, PartialEq)]
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
    /// The C library the process maps, which decides the DTV layout.
    pub libc: CLibrary,
}

/// One row of a thread in the report (text line, JSON object, `--watch` item).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Row<'a> {
    pub tid: i32,
    pub name: &'a str,
    pub body: RowBody<'a>,
}

/// What a row says: why the thread was not read, that there was no module to read, or what one
/// module's slot holds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RowBody<'a> {
    Problem(&'a ThreadProblem),
    NoModule,
    Read(usize, &'a SlotRead),
}

impl ThreadReport {
    /// The thread's rows: one per module read, or one for the whole thread.
    pub fn rows(&self) -> Vec<Row<'_>> {
        let row = |body| Row {
            tid: self.tid,
            name: &self.name,
            body,
        };
        match &self.error {
            Some(p) => vec![row(RowBody::Problem(p))],
            None if self.reads.is_empty() => vec![row(RowBody::NoModule)],
            None => self.reads.iter().map(|(m, r)| row(RowBody::Read(*m, r))).collect(),
        }
    }
}

/// Reads one process, repeatedly if asked (it caches what it learned from ELF files).
pub struct Inspector {
    pub pid: i32,
    /// When set, the threads not read yet are skipped (the CLI's Ctrl-C flag).
    cancel: Option<&'static AtomicBool>,
    /// Chosen from the maps at each snapshot; `None` for a C library whose DTV layout is not
    /// implemented on this architecture (static TLS is still read).
    platform: Option<Platform>,
    elf_cache: ElfCache,
}

fn io_error(pid: i32, what: &str, e: io::Error) -> InspectError {
    match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ESRCH) => InspectError::NoSuchProcess,
        Some(libc::EACCES) | Some(libc::EPERM) => InspectError::PermissionDenied(format!("{what} of process {pid}")),
        _ => InspectError::Io(format!("{what} of process {pid}: {e}")),
    }
}

impl Inspector {
    pub fn new(pid: i32) -> Inspector {
        Inspector {
            pid,
            cancel: None,
            platform: Some(Platform::native()),
            elf_cache: ElfCache::default(),
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
        let libc = CLibrary::from_mapped_paths(maps.iter().map(|m| m.path.as_str()));
        self.platform = Platform::for_process(libc);
        let platform = self.platform.unwrap_or(Platform::native());
        let (modules, module_errors) = self.elf_cache.find_modules(&platform, &maps, view);

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
        let mut threads = threads;
        let keys = process_context.context();
        for (_, read) in threads.iter_mut().flat_map(|t| &mut t.reads) {
            if let SlotRead::Record { record, .. } = read {
                for a in &mut record.attributes {
                    a.key = keys.and_then(|c| c.key_name(a.key_index)).map(str::to_owned);
                }
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
            libc,
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
            let read = match (self.platform, resolution) {
                (Some(p), _) => read_slot(mem, p.dtv, tp, resolution),
                (None, Resolution::StaticOffset(_)) => read_slot(mem, Platform::native().dtv, tp, resolution),
                (None, Resolution::Dynamic { .. }) => {
                    SlotRead::Error("this C library's DTV layout is not implemented on this architecture".into())
                }
            };
            report.reads.push((i, read));
        }
        drop(stopped);
        report
    }
}
