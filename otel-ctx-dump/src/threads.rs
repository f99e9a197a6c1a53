//! The process's threads and what /proc says about each: ids, names, states, tracers, and why
//! a thread was not read.

use std::fmt;
use std::io;

/// Why a thread was not read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ThreadProblem {
    /// The thread has exited (a zombie, e.g. a main thread that called pthread_exit).
    Exited,
    /// ptrace refused, for lack of rights.
    PermissionDenied,
    /// Another tracer holds the thread: its thread, process and process name.
    TracedBy {
        tid: i32,
        pid: i32,
        name: String,
    },
    /// The thread did not stop in time (blocked in the kernel, e.g. in vfork); `state`: its state.
    NotStopped {
        waited_ms: u64,
        state: Option<char>,
    },
    /// The reader was interrupted first.
    Interrupted,
    Other(String),
}

impl ThreadProblem {
    /// Not allowed to trace the thread, whatever the reason.
    pub fn is_denied(&self) -> bool {
        matches!(self, ThreadProblem::PermissionDenied | ThreadProblem::TracedBy { .. })
    }

    /// A word for scripts (the JSON `reason`) and the message.
    pub fn describe(&self) -> (&'static str, String) {
        match self {
            ThreadProblem::Exited => ("exited", "thread has exited".into()),
            ThreadProblem::PermissionDenied => {
                let detail = "permission denied stopping the thread (ptrace)";
                ("permission_denied", detail.into())
            }
            ThreadProblem::TracedBy { tid, pid, name } => {
                let thread = (tid != pid).then(|| format!(", thread {tid}"));
                let detail = format!("already traced by process {pid} ({name}){}", thread.unwrap_or_default());
                ("traced", detail)
            }
            ThreadProblem::NotStopped { waited_ms, state } => {
                let state = match state {
                    Some('D') => " (state D: blocked in the kernel, e.g. in vfork)".into(),
                    Some(s) => format!(" (state {s})"),
                    None => String::new(),
                };
                let detail = format!("not read: it did not stop within {waited_ms} ms{state}");
                ("not_stopped", detail)
            }
            ThreadProblem::Interrupted => ("interrupted", "not read: interrupted".into()),
            ThreadProblem::Other(e) => ("error", e.clone()),
        }
    }
}

/// `/proc/{path}/comm` (`PID` or `PID/task/TID`): a process's or thread's name.
pub fn comm(path: impl fmt::Display) -> Option<String> {
    let name = std::fs::read_to_string(format!("/proc/{path}/comm")).ok()?;
    Some(name.trim_end().to_owned())
}

/// A number field (`TracerPid`, `Tgid`) of `/proc/{path}/status`.
pub fn status_field(path: impl fmt::Display, field: &str) -> Option<i32> {
    let status = std::fs::read_to_string(format!("/proc/{path}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':')?.trim().parse().ok())
}

/// The fields of `/proc/PID/task/TID/stat` the inspector uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskStat {
    /// `R`, `S`, `D`, `t`, `Z`, ...
    pub state: char,
    pub ppid: i32,
    /// `PF_*` flags.
    pub flags: u64,
    /// When it started, in clock ticks after boot: with the pid, names one process for good.
    pub start_time: u64,
}

impl TaskStat {
    /// Parses a stat line. The name is in parentheses and may contain anything (spaces, ')'),
    /// so fields are counted from the last ')'.
    pub fn parse(stat: &str) -> Option<TaskStat> {
        let mut f = stat[stat.rfind(')')? + 1..].split_whitespace();
        let state = f.next()?.chars().next()?;
        let ppid = f.next()?.parse().ok()?;
        let flags = f.nth(4)?.parse().ok()?;
        let start_time = f.nth(12)?.parse().ok()?;
        Some(TaskStat {
            state,
            ppid,
            flags,
            start_time,
        })
    }

    pub fn is_kernel_thread(&self) -> bool {
        const PF_KTHREAD: u64 = 0x0020_0000;
        self.flags & PF_KTHREAD != 0
    }
}

pub fn task_stat(pid: i32, tid: i32) -> Option<TaskStat> {
    TaskStat::parse(&std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).ok()?)
}

/// A thread's state letter (`R`, `S`, `t`, `Z`, ...).
pub fn thread_state(pid: i32, tid: i32) -> Option<char> {
    task_stat(pid, tid).map(|s| s.state)
}

/// `TracedBy` the thread's tracer, if it has one.
pub fn tracer_of(pid: i32, tid: i32) -> Option<ThreadProblem> {
    let tid = status_field(format_args!("{pid}/task/{tid}"), "TracerPid").filter(|&t| t > 0)?;
    // TracerPid names the tracing thread; its Tgid is the process.
    let pid = status_field(tid, "Tgid").unwrap_or(tid);
    let name = comm(pid).unwrap_or_else(|| "?".into());
    Some(ThreadProblem::TracedBy { tid, pid, name })
}

/// One process, held so that a later pid reuse is not taken for it: a pidfd (Linux 5.3+), or
/// else the pid and its start time.
#[derive(Debug)]
pub struct ProcessHandle {
    pub pid: i32,
    pidfd: Option<std::os::fd::OwnedFd>,
    start_time: Option<u64>,
}

impl ProcessHandle {
    pub fn open(pid: i32) -> io::Result<ProcessHandle> {
        use std::os::fd::FromRawFd;
        let start_time = task_stat(pid, pid).map(|s| s.start_time);
        // Safety: pidfd_open takes a pid and flags, no pointer.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        let e = io::Error::last_os_error();
        if fd < 0 && e.raw_os_error() == Some(libc::ESRCH) {
            return Err(e);
        }
        // Safety: a descriptor pidfd_open returned is open and owned by nothing else.
        let pidfd = (fd >= 0).then(|| unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) });
        Ok(ProcessHandle { pid, pidfd, start_time })
    }

    /// Has the process exited (or been reaped, its pid perhaps reused)? A zombie has exited.
    pub fn exited(&self) -> bool {
        use std::os::fd::AsRawFd;
        if let Some(fd) = &self.pidfd {
            let mut p = libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // Safety: one valid pollfd, no wait. A pidfd polls readable once the process exits.
            return unsafe { libc::poll(&mut p, 1, 0) } != 0;
        }
        task_stat(self.pid, self.pid).map(|s| s.start_time) != self.start_time || self.start_time.is_none()
    }
}

/// The process's thread ids, sorted.
pub fn thread_ids(pid: i32) -> io::Result<Vec<i32>> {
    let mut tids: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/task"))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    tids.sort_unstable();
    Ok(tids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_hostile_names() {
        let kthreadd = "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 25";
        let s = TaskStat::parse(kthreadd).unwrap();
        assert_eq!((s.state, s.ppid, s.start_time), ('S', 0, 25));
        assert!(s.is_kernel_thread());
        let user = "77 (a) Z 1 (x) Z 12 77 77 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 31337 0";
        let s = TaskStat::parse(user).unwrap();
        assert_eq!((s.state, s.ppid, s.start_time), ('Z', 12, 31337));
        assert!(!s.is_kernel_thread());
        assert_eq!(TaskStat::parse("1 (x"), None);
    }

    #[test]
    fn a_process_handle_sees_its_process_exit_not_a_successor() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let handle = ProcessHandle::open(child.id() as i32).unwrap();
        assert!(!handle.exited(), "control: a live process");
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(handle.exited());
        // Without a pidfd, the start time tells a successor with the same pid.
        let by_start = ProcessHandle {
            pid: std::process::id() as i32,
            pidfd: None,
            start_time: task_stat(std::process::id() as i32, std::process::id() as i32).map(|s| s.start_time + 1),
        };
        assert!(by_start.exited());
    }
}
