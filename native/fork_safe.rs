//! Locks that a `fork` never leaves held in the child (whose copy of a lock another thread held
//! would stay held forever): a `pthread_atfork` handler takes every [`ForkSafeMutex`] before the
//! fork and releases them afterwards, in the parent and in the child.

use core::cell::UnsafeCell;
use core::sync::atomic::AtomicI32;
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
    /// The guard taken by [`prepare`], released by [`release`], only by the forking thread.
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

    /// Locks it, ignoring poison: no critical section leaves its data inconsistent on a panic.
    pub(crate) fn lock(&'static self) -> MutexGuard<'static, T> {
        once(&INSTALLED, install);
        self.mutex.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Before a fork: takes the lock and keeps it.
    fn hold(&'static self) {
        let guard = self.mutex.lock().unwrap_or_else(|e| e.into_inner());
        // Safety: we own the mutex now, so no other thread touches `held`.
        unsafe { *self.held.get() = Some(guard) };
    }

    /// In the child of a fork, before [`Self::release`]: runs `f` on the value the lock holds.
    fn with_held(&'static self, f: impl FnOnce(&mut T)) {
        // Safety: as for `release`; the guard gives the only access to the value.
        if let Some(guard) = unsafe { (*self.held.get()).as_mut() } {
            f(guard);
        }
    }

    /// After a fork, in the parent or the child (whose only thread is the forking one, owning
    /// the lock): releases what [`Self::hold`] took.
    fn release(&'static self) {
        // Safety: only the thread that ran `hold` (or its copy in the child) gets here, and it
        // owns the mutex.
        drop(unsafe { (*self.held.get()).take() });
    }
}

/// Whether the fork handlers are installed (`pthread_once` control).
static INSTALLED: AtomicI32 = AtomicI32::new(0);

extern "C" fn install() {
    // Safety: the handlers are extern "C" fns of this module, which stays loaded (the cdylib is
    // linked with -z nodelete). glibc runs prepare handlers before taking its own locks.
    // On failure (out of memory) a fork can still copy a held lock; nothing else to do.
    unsafe { libc::pthread_atfork(Some(prepare), Some(release), Some(release_in_child)) };
}

/// Takes every lock of the library. No code path holds two of them, so any order is safe.
extern "C" fn prepare() {
    crate::handle::LIVE.hold();
    crate::process_context::STATE.hold();
}

/// In the child: what the parent published is the parent's (decided here, not by comparing
/// pids, which a child in a new PID namespace can share with its parent).
extern "C" fn release_in_child() {
    crate::process_context::STATE.with_held(crate::process_context::forked);
    release();
}

extern "C" fn release() {
    crate::process_context::STATE.release();
    crate::handle::LIVE.release();
}
