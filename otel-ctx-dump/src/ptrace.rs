//! Stopping one thread just long enough to read its thread pointer and TLS.
//!
//! `PTRACE_SEIZE` + `PTRACE_INTERRUPT`, wait for the stop (`__WALL`: the target's threads are
//! not our children), `PTRACE_GETREGS` for `fs_base`, then `PTRACE_DETACH` in the guard's `Drop`,
//! so a thread is released on every path, panics included. While a thread is seized the
//! termination signals (SIGINT, SIGTERM, SIGHUP, SIGQUIT) are blocked in the calling thread, so
//! Ctrl-C takes effect only after the detach; and if the reader is killed outright, the kernel
//! detaches its tracees. A signal the target received while stopped is handed back on detach.

use std::io;
use std::time::{Duration, Instant};

/// How long to wait for a thread to stop before giving up on it.
const STOP_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a thread could not be stopped.
#[derive(Debug)]
pub enum StopError {
    /// The thread exited (or never existed).
    Gone,
    /// Not allowed to trace it (other user, no CAP_SYS_PTRACE, Yama, or already traced).
    PermissionDenied,
    /// It did not stop in time (e.g. in uninterruptible sleep).
    Timeout,
    Other(io::Error),
}

impl std::fmt::Display for StopError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopError::Gone => write!(f, "thread exited"),
            StopError::PermissionDenied => write!(f, "permission denied (ptrace)"),
            StopError::Timeout => write!(f, "thread did not stop within {}s", STOP_TIMEOUT.as_secs()),
            StopError::Other(e) => write!(f, "{e}"),
        }
    }
}

fn termination_signals() -> libc::sigset_t {
    // Safety: sigemptyset initialises the set it is given; the zeroed value is only a placeholder.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // Safety: `set` is a valid sigset_t; the signal numbers are valid.
    unsafe {
        libc::sigemptyset(&mut set);
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
            libc::sigaddset(&mut set, s);
        }
    }
    set
}

/// A thread seized and stopped; detached when dropped.
pub struct StoppedThread {
    tid: i32,
    /// Still attached (false once it exited under us).
    seized: bool,
    /// In a ptrace stop (detaching needs that).
    stopped: bool,
    /// A signal reported instead of our interrupt, re-injected on detach.
    pending_signal: i32,
    old_mask: libc::sigset_t,
}

fn ptrace(req: libc::c_uint, tid: i32, addr: usize, data: usize) -> io::Result<libc::c_long> {
    // Safety: the requests used here (SEIZE, INTERRUPT, GETREGS, DETACH) take a tid and either
    // no pointer or, for GETREGS, a pointer to a user_regs_struct the caller owns.
    let r = unsafe { libc::ptrace(req, tid, addr as *mut libc::c_void, data as *mut libc::c_void) };
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

impl StoppedThread {
    /// Seizes and stops thread `tid`.
    pub fn stop(tid: i32) -> Result<StoppedThread, StopError> {
        let set = termination_signals();
        // Safety: a zeroed sigset_t is a valid out-parameter for pthread_sigmask.
        let mut old_mask: libc::sigset_t = unsafe { std::mem::zeroed() };
        // Safety: both pointers refer to live sigset_t values.
        unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old_mask) };
        // From here on the guard restores the mask, whatever happens.
        let mut guard = StoppedThread {
            tid,
            seized: false,
            stopped: false,
            pending_signal: 0,
            old_mask,
        };
        if let Err(e) = ptrace(libc::PTRACE_SEIZE, tid, 0, 0) {
            return Err(match e.raw_os_error() {
                Some(libc::ESRCH) => StopError::Gone,
                Some(libc::EPERM) | Some(libc::EACCES) => StopError::PermissionDenied,
                _ => StopError::Other(e),
            });
        }
        guard.seized = true;
        if let Err(e) = ptrace(libc::PTRACE_INTERRUPT, tid, 0, 0) {
            return Err(if e.raw_os_error() == Some(libc::ESRCH) {
                StopError::Gone
            } else {
                StopError::Other(e)
            });
        }
        guard.wait_for_stop(STOP_TIMEOUT)?;
        Ok(guard)
    }

    fn wait_for_stop(&mut self, timeout: Duration) -> Result<(), StopError> {
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_micros(20);
        loop {
            let mut status = 0;
            // Safety: `status` is a valid out-parameter.
            let r = unsafe { libc::waitpid(self.tid, &mut status, libc::__WALL | libc::WNOHANG) };
            if r == self.tid {
                if libc::WIFSTOPPED(status) {
                    self.stopped = true;
                    let event = (status >> 16) & 0xff;
                    if event != libc::PTRACE_EVENT_STOP {
                        // A signal-delivery stop: the signal is handed back when we detach.
                        self.pending_signal = libc::WSTOPSIG(status);
                    }
                    return Ok(());
                }
                if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
                    self.seized = false;
                    return Err(StopError::Gone);
                }
                continue;
            }
            if r == -1 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::ECHILD) => {
                        self.seized = false;
                        return Err(StopError::Gone);
                    }
                    _ => return Err(StopError::Other(e)),
                }
            }
            if Instant::now() >= deadline {
                return Err(StopError::Timeout);
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(5));
        }
    }

    pub fn tid(&self) -> i32 {
        self.tid
    }

    /// The thread pointer (x86-64 `fs_base`).
    pub fn thread_pointer(&self) -> io::Result<u64> {
        // Safety: user_regs_struct is plain integers; zero is a valid value.
        let mut regs: libc::user_regs_struct = unsafe { std::mem::zeroed() };
        ptrace(libc::PTRACE_GETREGS, self.tid, 0, &mut regs as *mut _ as usize)?;
        Ok(regs.fs_base)
    }

    fn detach(&mut self) {
        if !self.seized {
            return;
        }
        if !self.stopped {
            // Our interrupt is still pending; the thread must reach the stop before it can be
            // detached. Wait a while longer rather than leave it to stop later with nobody there.
            let _ = self.wait_for_stop(Duration::from_secs(10));
        }
        if self.seized {
            match ptrace(libc::PTRACE_DETACH, self.tid, 0, self.pending_signal as usize) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                Err(e) => eprintln!("otel-ctx-dump: warning: detaching thread {}: {e}", self.tid),
            }
            self.seized = false;
        }
    }
}

impl Drop for StoppedThread {
    fn drop(&mut self) {
        self.detach();
        // Safety: restores the mask saved in `stop`, a valid sigset_t.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old_mask, std::ptr::null_mut()) };
    }
}
