//! Stopping one thread just long enough to read its thread pointer: seize, interrupt, a `__WALL`
//! wait (the target's threads are not our children), the register, detach when the guard drops.
//!
//! A thread blocked in `vfork` cannot stop until its child exits or execs, and would then stop
//! with nobody left to detach it. So ptrace runs on a short-lived tracer thread ([`with_tracer`]):
//! the kernel detaches (dropping the interrupt) what it left seized when it exits. That thread
//! blocks [`TERMINATION_SIGNALS`], so the program's handlers run on another one.

use crate::threads::{status_field, ThreadProblem};
use std::cell::{Cell, RefCell};
use std::io;
use std::time::{Duration, Instant};

pub const TERMINATION_SIGNALS: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

/// The type of `ptrace`'s request: glibc declares an enum (unsigned), musl an `int`.
#[cfg(target_env = "gnu")]
type Request = libc::c_uint;
#[cfg(not(target_env = "gnu"))]
type Request = libc::c_int;

fn ptrace(req: Request, tid: i32, addr: usize, data: usize) -> io::Result<libc::c_long> {
    // Safety: the requests used here take a tid and no pointer, or (GETREGS, GETREGSET) a pointer
    // to a user_regs_struct or an iovec describing a buffer that the caller owns.
    let r = unsafe { libc::ptrace(req, tid, addr as *mut libc::c_void, data as *mut libc::c_void) };
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn problem(e: io::Error) -> ThreadProblem {
    match e.raw_os_error() {
        Some(libc::ESRCH) => ThreadProblem::Exited,
        Some(libc::EPERM | libc::EACCES) => ThreadProblem::PermissionDenied,
        _ => ThreadProblem::Other(e.to_string()),
    }
}

/// The tracer thread's state: the wait budget left, and the seized threads that never stopped
/// (`Cell`s keep a `&Tracer` on the tracer thread, where ptrace requests must come from).
pub struct Tracer {
    budget: Cell<Duration>,
    unstopped: RefCell<Vec<i32>>,
}

/// Runs `f` on a new tracer thread and returns its result once every thread it seized is
/// released: detached where it stopped, detached by the kernel where it never did.
pub fn with_tracer<R: Send>(f: impl FnOnce(&Tracer) -> R + Send) -> R {
    let (result, unstopped, tracer_tid) = std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("otel-ctx-tracer".into())
            .spawn_scoped(scope, || {
                // Safety: the set is initialised by sigemptyset before use; the old mask is not needed;
                // gettid has no preconditions.
                let tid = unsafe {
                    let mut set: libc::sigset_t = std::mem::zeroed();
                    libc::sigemptyset(&mut set);
                    for s in TERMINATION_SIGNALS {
                        libc::sigaddset(&mut set, s);
                    }
                    libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
                    libc::gettid()
                };
                let tracer = Tracer {
                    budget: Cell::new(Duration::from_secs(2)),
                    unstopped: RefCell::new(Vec::new()),
                };
                let result = f(&tracer);
                // Detach the threads that stopped after their wait ran out (their vfork ended);
                // dropping the others puts them back on the list.
                for tid in tracer.unstopped.take() {
                    let _ = tracer.seized(tid).wait_for_stop(Duration::ZERO);
                }
                (result, tracer.unstopped.take(), tid)
            });
        let worker = worker.expect("spawn the tracer thread");
        worker.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
    });
    // join returns when the thread's stack is free; the kernel detaches its tracees a moment
    // later, in the thread's exit. Wait for that, so a next pass can seize them again.
    let deadline = Instant::now() + Duration::from_millis(500);
    for tid in unstopped {
        while status_field(tid, "TracerPid") == Some(tracer_tid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    result
}

impl Tracer {
    fn seized(&self, tid: i32) -> StoppedThread<'_> {
        StoppedThread {
            tracer: self,
            tid,
            seized: true,
            stopped: false,
            pending_signal: 0,
        }
    }

    /// Seizes and stops thread `tid`, waiting at most 500 ms, less once the pass's 2 s are spent
    /// (many blocked threads are still read in bounded time) but at least 10 ms (a running thread
    /// stops in microseconds). `NotStopped` leaves its `state` for the caller to fill in.
    pub fn stop(&self, tid: i32) -> Result<StoppedThread<'_>, ThreadProblem> {
        ptrace(libc::PTRACE_SEIZE, tid, 0, 0).map_err(problem)?;
        let mut guard = self.seized(tid);
        ptrace(libc::PTRACE_INTERRUPT, tid, 0, 0).map_err(problem)?;
        let wait = self
            .budget
            .get()
            .clamp(Duration::from_millis(10), Duration::from_millis(500));
        let start = Instant::now();
        let stopped = guard.wait_for_stop(wait);
        self.budget.set(self.budget.get().saturating_sub(start.elapsed()));
        if !stopped? {
            let waited_ms = wait.as_millis() as u64;
            return Err(ThreadProblem::NotStopped { waited_ms, state: None });
        }
        Ok(guard)
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
    fn wait_for_stop(&mut self, timeout: Duration) -> Result<bool, ThreadProblem> {
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_micros(20);
        loop {
            let mut status = 0;
            // Safety: `status` is a valid out-parameter.
            let r = unsafe { libc::waitpid(self.tid, &mut status, libc::__WALL | libc::WNOHANG) };
            let errno = io::Error::last_os_error();
            if r == self.tid && libc::WIFSTOPPED(status) {
                self.stopped = true;
                // A signal-delivery stop rather than our interrupt's: hand the signal back.
                if (status >> 16) & 0xff != libc::PTRACE_EVENT_STOP {
                    self.pending_signal = libc::WSTOPSIG(status);
                }
                return Ok(true);
            }
            let exited = r == self.tid && (libc::WIFEXITED(status) || libc::WIFSIGNALED(status));
            if exited || r == -1 && errno.raw_os_error() == Some(libc::ECHILD) {
                self.seized = false;
                return Err(ThreadProblem::Exited);
            }
            if r == -1 && errno.raw_os_error() != Some(libc::EINTR) {
                return Err(ThreadProblem::Other(errno.to_string()));
            }
            if r == 0 {
                if Instant::now() >= deadline {
                    return Ok(false);
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(5));
            }
        }
    }

    /// The thread pointer (x86-64 `fs_base`).
    #[cfg(target_arch = "x86_64")]
    pub fn thread_pointer(&self) -> io::Result<u64> {
        // Safety: user_regs_struct is plain integers; zero is a valid value.
        let mut regs: libc::user_regs_struct = unsafe { std::mem::zeroed() };
        ptrace(libc::PTRACE_GETREGS, self.tid, 0, &mut regs as *mut _ as usize)?;
        Ok(regs.fs_base)
    }

    /// The thread pointer (AArch64 `tpidr_el0`): the first word of the `NT_ARM_TLS` register
    /// set (kernels with SME append `tpidr2_el0`, hence room for two).
    #[cfg(target_arch = "aarch64")]
    pub fn thread_pointer(&self) -> io::Result<u64> {
        const NT_ARM_TLS: usize = 0x401;
        let mut words = [0u64; 2];
        let mut iov = libc::iovec {
            iov_base: words.as_mut_ptr().cast(),
            iov_len: std::mem::size_of_val(&words),
        };
        let iov_ptr = &mut iov as *mut _ as usize;
        ptrace(libc::PTRACE_GETREGSET, self.tid, NT_ARM_TLS, iov_ptr)?;
        if iov.iov_len < 8 {
            return Err(io::Error::other("NT_ARM_TLS register set shorter than tpidr_el0"));
        }
        Ok(words[0])
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
