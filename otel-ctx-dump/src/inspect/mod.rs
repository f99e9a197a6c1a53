//! Reading a live process: the modules exporting the slot ([`modules`]), each stopped thread's
//! record ([`dtv`]) and what /proc says of threads ([`crate::threads`]).

pub mod dtv;
pub mod modules;

pub use crate::elf::SymbolEntry;
pub use crate::process_context::{read_process_context, ContextStatus};
pub use crate::threads::{comm, status_field, task_stat, thread_ids, thread_state, tracer_of, TaskStat, ThreadProblem};
pub use dtv::{read_record, read_slot, SlotRead};
pub use modules::{resolve, Module, Resolution};

use crate::maps::{self, Mapping, Memory, ProcessMemory};
use crate::platform::{CLibrary, Platform};
use crate::ptrace::{self, Tracer};
use modules::{ElfCache, Found};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

/// Why a process could not be inspected at all (the CLI words and reports it).
#[derive(Debug)]
pub enum InspectError {
    NoSuchProcess,
    /// Every thread has exited; the parent (this pid) has not reaped the process yet.
    Zombie(i32),
    KernelThread,
    /// The reader lacks the rights: the text says which operation failed.
    PermissionDenied(String),
    Io(String),
}

fn io_error(pid: i32, what: &str, e: io::Error) -> InspectError {
    match e.raw_os_error() {
        Some(libc::ENOENT | libc::ESRCH) => InspectError::NoSuchProcess,
        Some(libc::EACCES | libc::EPERM) => InspectError::PermissionDenied(format!("{what} of process {pid}")),
        _ => InspectError::Io(format!("{what} of process {pid}: {e}")),
    }
}

/// One thread: a read per module with a usable resolution (by module index), or why it could
/// not be read at all.
#[derive(Clone, Debug, PartialEq)]
pub struct ThreadReport {
    pub tid: i32,
    pub name: String,
    pub reads: Vec<(usize, SlotRead)>,
    pub error: Option<ThreadProblem>,
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

#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub pid: i32,
    pub command: String,
    pub process_context: ContextStatus,
    pub modules: Vec<Module>,
    /// ELF files that could not be examined.
    pub module_errors: Vec<String>,
    pub threads: Vec<ThreadReport>,
    /// Threads not read because `--thread` asked for another one.
    pub threads_skipped: usize,
    pub libc: CLibrary,
    /// Every `.dynsym` entry named like the slot, by module path: definitions and references.
    pub symbol_entries: Vec<(String, SymbolEntry)>,
}

/// Reads one process, repeatedly if asked (it caches what it learned from ELF files).
pub struct Inspector {
    pub pid: i32,
    /// When set, the threads not read yet are skipped (the CLI's Ctrl-C flag).
    cancel: Option<&'static AtomicBool>,
    elf_cache: ElfCache,
}

impl Inspector {
    pub fn new(pid: i32) -> Inspector {
        Inspector {
            pid,
            cancel: None,
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
    /// the first live thread's view is used.
    pub fn address_space(&self) -> Result<(Vec<Mapping>, i32), InspectError> {
        let pid = self.pid;
        let maps = maps::read(pid).map_err(|e| io_error(pid, "reading /proc/PID/maps", e))?;
        if !maps.is_empty() {
            return Ok((maps, pid));
        }
        for tid in thread_ids(pid).unwrap_or_default() {
            if tid == pid || matches!(thread_state(pid, tid), Some('Z' | 'X') | None) {
                continue;
            }
            match maps::read(format_args!("{pid}/task/{tid}")) {
                Ok(m) if !m.is_empty() => return Ok((m, tid)),
                _ => {}
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
            match task_stat(pid, pid) {
                Some(stat) if stat.is_kernel_thread() => return Err(InspectError::KernelThread),
                // `address_space` found no live thread.
                Some(stat) if matches!(stat.state, 'Z' | 'X') => return Err(InspectError::Zombie(stat.ppid)),
                _ => {}
            }
        }
        // process_vm_readv needs the same rights as ptrace: check them once, up front.
        let first_readable = maps.iter().find(|m| m.perms.starts_with('r'));
        if let Some(Err(e)) = first_readable.map(|m| mem.read(m.start, &mut [0u8; 1])) {
            if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES | libc::ESRCH)) {
                return Err(io_error(pid, "reading the memory (process_vm_readv)", e));
            }
        }
        let command = comm(pid).unwrap_or_default();
        let cancel = self.cancel;
        let cancelled = || cancel.is_some_and(|c| c.load(Ordering::SeqCst));
        let process_context = read_process_context(&maps, &mem, &cancelled);
        let libc = CLibrary::from_mapped_paths(maps.iter().map(|m| m.path.as_str()));
        let platform = Platform::for_process(libc);
        let Found {
            modules,
            errors: module_errors,
            entries: symbol_entries,
        } = self.elf_cache.find_modules(&platform, &maps, view);
        let usable: Vec<(usize, Resolution)> = modules
            .iter()
            .enumerate()
            .filter_map(|(i, m)| Some((i, *m.resolution.as_ref().ok()?)))
            .collect();

        let mut tids = thread_ids(pid).map_err(|e| io_error(pid, "listing /proc/PID/task", e))?;
        let all = tids.len();
        tids.retain(|&tid| only_tid.is_none_or(|t| t == tid));
        if let (Some(t), true) = (only_tid, tids.is_empty()) {
            return Err(InspectError::Io(format!("process {pid} has no thread {t}")));
        }
        let read_slots = |tracer: &Tracer, tid: i32| {
            if cancelled() {
                return Err(ThreadProblem::Interrupted);
            }
            if matches!(thread_state(pid, tid), Some('Z' | 'X')) {
                return Err(ThreadProblem::Exited);
            }
            if usable.is_empty() {
                return Ok(Vec::new());
            }
            let stopped = tracer.stop(tid).map_err(|p| match p {
                // A thread takes one tracer at a time: name it rather than blame the policy.
                ThreadProblem::PermissionDenied => tracer_of(pid, tid).unwrap_or(p),
                ThreadProblem::NotStopped { waited_ms, .. } => ThreadProblem::NotStopped {
                    waited_ms,
                    state: thread_state(pid, tid),
                },
                p => p,
            })?;
            let tp = stopped.thread_pointer();
            let tp = tp.map_err(|e| ThreadProblem::Other(format!("reading registers: {e}")))?;
            Ok(usable
                .iter()
                .map(|&(i, r)| (i, read_slot(&mem, &platform, tp, r)))
                .collect())
        };
        // One tracer thread per pass: it releases whatever it could not detach when it ends.
        let mut threads: Vec<ThreadReport> = ptrace::with_tracer(|tracer| {
            let report = |&tid: &i32| {
                let name = comm(format_args!("{pid}/task/{tid}")).unwrap_or_default();
                let (reads, error) = read_slots(tracer, tid).map_or_else(|p| (Vec::new(), Some(p)), |r| (r, None));
                ThreadReport {
                    tid,
                    name,
                    reads,
                    error,
                }
            };
            tids.iter().map(report).collect()
        });
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
            threads_skipped: all - tids.len(),
            libc,
            symbol_entries,
        })
    }
}
