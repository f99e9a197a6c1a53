//! Locks that a `fork` never leaves held in the child.
//!
//! A child process starts with one thread, the one that forked, and a copy of every lock as it
//! was: a lock another thread held at that instant stays held forever there, and the child's
//! first library call would hang on it. So every lock of the library is a [`ForkSafeMutex`]: a
//! `pthread_atfork` handler takes all of them before the fork (waiting for whoever holds them,
//! which never waits for anything but the lock's own short critical section) and releases them
//! afterwards, in the parent and in the child.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Mutex, MutexGuard};

extern "C" {
    // glibc's, not in the libc crate version used: `pthread_once_t` is an `int`.
    fn pthread_once(control: *mut libc::c_int, init: extern "C" fn()) -> libc::c_int;
}

/// Runs `init` once per process, even when a fork interrupts a first call in progress (glibc's
/// `pthread_once` then runs it again in the child), unlike `std::sync::Once`, whose copy would
/// stay "running" forever in the child.
pub(crate) fn once(control: &AtomicI32, init: extern "C" fn()) {
    // Safety: `control` is a process-lifetime `pthread_once_t` (an int, 0 = PTHREAD_ONCE_INIT)
    // used only with pthread_once; `init` does not unwind (it is extern "C").
    unsafe { pthread_once(control.as_ptr(), init) };
}

/// A mutex that the library's fork handlers hold across every `fork`.
pub(crate) struct ForkSafeMutex<T: 'static> {
    mutex: Mutex<T>,
    /// The guard taken by [`prepare`], released by [`release`]. Touched only by the forking
    /// thread while it holds the mutex (and, in the child, by its only thread).
    held: UnsafeCell<Option<MutexGuard<'static, T>>>,
}

// Safety: `held` is accessed only by the thread that owns `mutex` (see the field), so sharing
// the struct is as safe as sharing the Mutex itself.
unsafe impl<T: Send> Sync for ForkSafeMutex<T> {}

impl<T: 'static> ForkSafeMutex<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self {
            mutex: Mutex::new(value),
            held: UnsafeCell::new(None),
        }
    }

    /// Locks it. A panic while holding it cannot leave its data half-updated in a way the
    /// library's users depend on, so poison is ignored.
    pub(crate) fn lock(&'static self) -> MutexGuard<'static, T> {
        register();
        self.mutex.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Before a fork: takes the lock and keeps it.
    fn hold(&'static self) {
        let guard = self.mutex.lock().unwrap_or_else(|e| e.into_inner());
        // Safety: we own the mutex now, so no other thread touches `held`.
        unsafe { *self.held.get() = Some(guard) };
    }

    /// After a fork, in the parent or the child: releases what [`Self::hold`] took. In the child
    /// the forking thread is the only thread and still owns the lock, so unlocking it is sound.
    fn release(&'static self) {
        // Safety: only the thread that ran `hold` (or its copy in the child) gets here, and it
        // owns the mutex.
        drop(unsafe { (*self.held.get()).take() });
    }
}

static REGISTERED: AtomicBool = AtomicBool::new(false);
static ONCE: AtomicI32 = AtomicI32::new(0);

/// Installs the fork handlers, before the first lock is taken.
#[inline]
fn register() {
    if !REGISTERED.load(Ordering::Acquire) {
        once(&ONCE, install);
    }
}

extern "C" fn install() {
    // Safety: the handlers are extern "C" fns of this module, which stays loaded (the cdylib is
    // linked with -z nodelete). glibc runs prepare handlers before taking its own locks.
    let rc = unsafe { libc::pthread_atfork(Some(prepare), Some(release), Some(release)) };
    // On failure (out of memory) a fork can still copy a held lock; nothing else to do.
    let _ = rc;
    REGISTERED.store(true, Ordering::Release);
}

/// Takes every lock of the library. No code path holds two of them, so any order is safe.
extern "C" fn prepare() {
    crate::handle::LIVE.hold();
    crate::process_context::STATE.hold();
}

extern "C" fn release() {
    crate::process_context::STATE.release();
    crate::handle::LIVE.release();
}
