//! Stopping one thread just long enough to read its thread pointer and TLS.
//!
//! `PTRACE_SEIZE` + `PTRACE_INTERRUPT`, wait for the stop (`__WALL`: the target's threads are
//! not our children), `PTRACE_GETREGS` for `fs_base`, then `PTRACE_DETACH` in the guard's `Drop`.
//! A signal the target received while stopped is handed back on detach.
//!
//! Some threads cannot reach the stop: a thread blocked in `vfork` waits (killable, not
//! interruptible) until its child exits or execs, and a pending interrupt would stop it then,
//! with nobody left to detach it. So every ptrace call runs on a short-lived tracer thread
//! ([`with_tracer`]): a thread that does not stop within a bounded wait is reported as not
//! stopped and left seized, and when the tracer thread exits the kernel detaches it and drops the
//! pending interrupt. The thread is released on every path: detach, tracer-thread exit, or our
//! process's exit (killed included). The tracer thread blocks the termination signals (SIGINT,
//! SIGTERM, SIGHUP, SIGQUIT), so the program's handlers run on another thread.

use std::cell::{Cell, RefCell};
use std::io;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

/// How long one thread may take to reach the stop.
pub const STOP_TIMEOUT: Duration = Duration::from_millis(500);
/// How long all the threads of one pass may take together, so a process with many blocked
/// threads is still read in bounded time.
pub const STOP_BUDGET: Duration = Duration::from_secs(2);
/// What a thread still gets once the budget is spent (a running thread stops in microseconds).
const MIN_STOP_WAIT: Duration = Duration::from_millis(10);
/// How long to wait for the kernel to finish detaching a dead tracer thread's tracees.
const RELEASE_WAIT: Duration = Duration::from_millis(500);

/// Why a thread could not be stopped.
#[derive(Debug)]
pub enum StopError {
    /// The thread exited (or never existed).
    Gone,
    /// Not allowed to trace it (other user, no CAP_SYS_PTRACE, Yama, or already traced).
    PermissionDenied,
    /// It did not reach the stop within the wait (blocked in the kernel, e.g. in vfork).
    NotStopped(Duration),
    Other(io::Error),
}

impl std::fmt::Display for StopError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopError::Gone => write!(f, "thread exited"),
            StopError::PermissionDenied => write!(f, "permission denied (ptrace)"),
            StopError::NotStopped(waited) => write!(f, "thread did not stop within {} ms", waited.as_millis()),
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

/// The tracer thread's state: what is left of the wait budget, and the threads still seized
/// that never stopped.
pub struct Tracer {
    tid: i32,
    budget: Cell<Duration>,
    unstopped: RefCell<Vec<i32>>,
    /// ptrace requests must come from the tracing thread: keep this on it.
    _one_thread: PhantomData<*const ()>,
}

/// Runs `f` on a new tracer thread and returns its result once every thread it seized is
/// released: detached where it stopped, detached by the kernel (with its pending interrupt
/// dropped) where it never did.
pub fn with_tracer<R: Send>(f: impl FnOnce(&Tracer) -> R + Send) -> R {
    let (result, unstopped, tracer_tid) = std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("otel-ctx-tracer".into())
            .spawn_scoped(scope, || {
                let set = termination_signals();
                // Safety: `set` is a valid sigset_t; the old mask is not needed (the thread ends).
                unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
                let tracer = Tracer {
                    // Safety: gettid has no preconditions.
                    tid: unsafe { libc::gettid() },
                    budget: Cell::new(STOP_BUDGET),
                    unstopped: RefCell::new(Vec::new()),
                    _one_thread: PhantomData,
                };
                let result = f(&tracer);
                tracer.release_stopped();
                let unstopped = tracer.unstopped.take();
                (result, unstopped, tracer.tid)
            })
            .expect("spawn the tracer thread");
        worker.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
    });
    // join returns when the thread's stack is free; the kernel detaches its tracees a moment
    // later, in the thread's exit. Wait for that, so a next pass can seize them again.
    let deadline = Instant::now() + RELEASE_WAIT;
    for tid in unstopped {
        while tracer_pid(tid) == Some(tracer_tid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    result
}

/// `TracerPid` of any thread, through /proc/TID (which works for every thread id).
fn tracer_pid(tid: i32) -> Option<i32> {
    std::fs::read_to_string(format!("/proc/{tid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("TracerPid:")?.trim().parse().ok())
}

impl Tracer {
    /// Seizes and stops thread `tid`, waiting at most [`STOP_TIMEOUT`] (less once the pass's
    /// [`STOP_BUDGET`] is spent).
    pub fn stop(&self, tid: i32) -> Result<StoppedThread<'_>, StopError> {
        let mut guard = StoppedThread {
            tracer: self,
            tid,
            seized: false,
            stopped: false,
            pending_signal: 0,
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
        let wait = self.budget.get().min(STOP_TIMEOUT).max(MIN_STOP_WAIT);
        let start = Instant::now();
        let r = guard.wait_for_stop(wait);
        self.budget.set(self.budget.get().saturating_sub(start.elapsed()));
        match r {
            Ok(true) => Ok(guard),
            Ok(false) => Err(StopError::NotStopped(wait)),
            Err(e) => Err(e),
        }
    }

    /// Detaches the threads that stopped after their wait ran out (their vfork ended meanwhile).
    fn release_stopped(&self) {
        let tids = self.unstopped.take();
        for tid in tids {
            let mut t = StoppedThread {
                tracer: self,
                tid,
                seized: true,
                stopped: false,
                pending_signal: 0,
            };
            let _ = t.wait_for_stop(Duration::ZERO);
            // Dropping `t` detaches it if it stopped, or puts it back on the list.
        }
    }
}

/// A thread seized and stopped; detached when dropped.
pub struct StoppedThread<'a> {
    tracer: &'a Tracer,
    tid: i32,
    /// Still attached (false once it exited under us).
    seized: bool,
    /// In a ptrace stop (detaching needs that).
    stopped: bool,
    /// A signal reported instead of our interrupt, re-injected on detach.
    pending_signal: i32,
}

impl StoppedThread<'_> {
    /// Waits up to `timeout` for the thread's stop: Ok(true) once stopped, Ok(false) if not yet.
    fn wait_for_stop(&mut self, timeout: Duration) -> Result<bool, StopError> {
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
                    return Ok(true);
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
                return Ok(false);
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
}

impl Drop for StoppedThread<'_> {
    fn drop(&mut self) {
        if !self.seized {
            return;
        }
        if !self.stopped && !matches!(self.wait_for_stop(Duration::ZERO), Ok(true)) {
            if self.seized {
                // PTRACE_DETACH needs a stopped tracee: leave it to the tracer thread's exit.
                self.tracer.unstopped.borrow_mut().push(self.tid);
            }
            return;
        }
        match ptrace(libc::PTRACE_DETACH, self.tid, 0, self.pending_signal as usize) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
            Err(e) => eprintln!("otel-ctx-dump: warning: detaching thread {}: {e}", self.tid),
        }
    }
}
