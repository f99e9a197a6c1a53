//! Locks that a `fork` never leaves held in the child (whose copy of a lock another thread held
//! would stay held forever): `pthread_atfork` handlers take each [`ForkSafeMutex`] before the
//! fork and release it afterwards, in the parent and in the child.

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

/// A lock's value type names its one lock (each lock holds a type of its own), so that the fork
/// handlers, plain C functions, can reach it: the owning module implements this.
pub(crate) trait Locked: Sized + 'static {
    fn mutex() -> &'static ForkSafeMutex<Self>;

    /// In a forked child, with the lock held, before it is released.
    fn in_child(&mut self) {}
}

/// A mutex that fork handlers of its own hold across every `fork`.
pub(crate) struct ForkSafeMutex<T: 'static> {
    mutex: Mutex<T>,
    /// The guard taken before a fork, released after it, only by the forking thread.
    held: UnsafeCell<Option<MutexGuard<'static, T>>>,
    /// Whether the fork handlers are installed (`pthread_once` control).
    installed: AtomicI32,
}

// Safety: `held` is accessed only by the thread that owns `mutex` (see the field), so sharing
// the struct is as safe as sharing the Mutex itself.
unsafe impl<T: Send> Sync for ForkSafeMutex<T> {}

impl<T: Locked> ForkSafeMutex<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self {
            mutex: Mutex::new(value),
            held: UnsafeCell::new(None),
            installed: AtomicI32::new(0),
        }
    }

    /// Locks it, ignoring poison: no critical section leaves its data inconsistent on a panic.
    pub(crate) fn lock(&'static self) -> MutexGuard<'static, T> {
        once(&self.installed, install::<T>);
        self.mutex.lock().unwrap_or_else(|e| e.into_inner())
    }
}

extern "C" fn install<T: Locked>() {
    // Safety: the handlers are extern "C" fns of this library, which stays loaded (the cdylib is
    // linked with -z nodelete). glibc runs prepare handlers before taking its own locks. No code
    // path holds two locks, so the order among the locks' handlers does not matter.
    // On failure (out of memory) a fork can still copy a held lock; nothing else to do.
    unsafe { libc::pthread_atfork(Some(prepare::<T>), Some(release::<T, false>), Some(release::<T, true>)) };
}

/// Before a fork: takes the lock and keeps it.
extern "C" fn prepare<T: Locked>() {
    let guard = T::mutex().mutex.lock().unwrap_or_else(|e| e.into_inner());
    // Safety: we own the mutex now, so no other thread touches `held`.
    unsafe { *T::mutex().held.get() = Some(guard) };
}

/// After a fork, in the parent or the child (`CHILD`, whose only thread is the forking one):
/// releases what [`prepare`] took, in the child after running [`Locked::in_child`] on the value.
extern "C" fn release<T: Locked, const CHILD: bool>() {
    // Safety: only the thread that ran `prepare` (or its copy in the child) gets here, and it
    // owns the mutex; the guard gives the only access to the value.
    if let Some(mut guard) = unsafe { (*T::mutex().held.get()).take() } {
        if CHILD {
            guard.in_child();
        }
    }
}
