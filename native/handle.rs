//! Owned records: allocation, the registry of live handles (so bad pointers and double frees are
//! refused), attaching to the TLS slot, and clean-up at thread exit.

use crate::ffi::OtelThreadCtxStatus as Status;
use crate::fork_safe::ForkSafeMutex;
use crate::record::OtelThreadCtxRecord;
use crate::tls;
use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::MutexGuard;

/// Opaque to C: a record plus what the library needs to track its ownership.
/// The record is the first field, so a handle's address is its record's address.
#[repr(C, align(64))]
pub struct OtelThreadCtx {
    record: OtelThreadCtxRecord,
    /// Set while some thread's slot points at this record.
    attached: AtomicBool,
}

/// Addresses of handles allocated and not yet freed. Held across `fork` (see fork_safe).
pub(crate) static LIVE: ForkSafeMutex<BTreeSet<usize>> = ForkSafeMutex::new(BTreeSet::new());

impl OtelThreadCtx {
    /// Allocates a valid record holding the given ids.
    pub(crate) fn allocate(trace_id: &[u8; 16], span_id: &[u8; 8], flags: u8) -> Result<*mut OtelThreadCtx, Status> {
        let layout = Layout::new::<OtelThreadCtx>();
        // Safety: the layout has non-zero size. All-zero bytes are a valid OtelThreadCtx
        // (plain bytes and a false AtomicBool).
        let ptr = unsafe { alloc_zeroed(layout) }.cast::<OtelThreadCtx>();
        if ptr.is_null() {
            return Err(Status::OutOfMemory);
        }
        // Safety: `ptr` is freshly allocated, so only this thread writes it.
        unsafe { OtelThreadCtxRecord::write_ids(ptr.cast(), trace_id, span_id, flags) };
        LIVE.lock().insert(ptr as usize);
        Ok(ptr)
    }

    /// The registry, locked, if `h` is a live handle of this library.
    pub(crate) fn live(h: *mut OtelThreadCtx) -> Result<MutexGuard<'static, BTreeSet<usize>>, Status> {
        match LIVE.lock() {
            _ if h.is_null() => Err(Status::NullArgument),
            live if live.contains(&(h as usize)) => Ok(live),
            _ => Err(Status::InvalidHandle),
        }
    }

    /// Frees `h` unless it is unknown or attached.
    pub(crate) fn free(h: *mut OtelThreadCtx) -> Result<(), Status> {
        let mut live = Self::live(h)?;
        // Safety: `h` is in the registry, so it is a live allocation of ours.
        if unsafe { (*h).attached.load(Ordering::Acquire) } {
            return Err(Status::HandleAttached);
        }
        live.remove(&(h as usize));
        // Safety: removed from the registry under the lock, so no one else frees it; it was
        // allocated with this layout.
        unsafe { dealloc(h.cast(), Layout::new::<OtelThreadCtx>()) };
        Ok(())
    }

    /// The handle whose record the calling thread's slot points at, if any.
    pub(crate) fn current() -> *mut OtelThreadCtx {
        tls::slot().load(Ordering::Relaxed).cast()
    }

    /// Whether the calling thread may write `h`'s record (it is detached, or attached here).
    pub(crate) fn writable_here(h: *mut OtelThreadCtx) -> Result<(), Status> {
        drop(Self::live(h)?);
        // Safety: a live handle.
        if h != Self::current() && unsafe { (*h).attached.load(Ordering::Acquire) } {
            return Err(Status::AttachedElsewhere);
        }
        Ok(())
    }

    /// Publishes `h` in the calling thread's slot; returns the handle it displaced (now owned
    /// by the caller) or null.
    pub(crate) fn attach(h: *mut OtelThreadCtx) -> Result<*mut OtelThreadCtx, Status> {
        let prev = Self::current();
        {
            // Held while claiming, so a concurrent free cannot release `h` in between.
            let _live = Self::live(h)?;
            if prev == h {
                return Ok(core::ptr::null_mut());
            }
            // Before claiming, so a record is never attached where the thread's exit would not
            // free it.
            thread_exit::arm()?;
            // Safety: live handle (checked under the lock); the flag makes attaching one record
            // to two threads fail instead of letting two threads write it.
            let claimed = unsafe { &(*h).attached }.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire);
            if claimed.is_err() {
                return Err(Status::AttachedElsewhere);
            }
        }
        // The record must be complete before the slot makes it visible to a reader.
        core::sync::atomic::compiler_fence(Ordering::SeqCst);
        tls::slot().store(h.cast(), Ordering::Relaxed);
        if !prev.is_null() {
            // Safety: `prev` was attached here, so it is live and ours to release.
            unsafe { (*prev).attached.store(false, Ordering::Release) };
        }
        Ok(prev)
    }

    /// Empties the calling thread's slot; returns the handle that was attached (now owned by
    /// the caller) or null.
    pub(crate) fn detach() -> *mut OtelThreadCtx {
        let prev: *mut OtelThreadCtx = tls::slot().swap(core::ptr::null_mut(), Ordering::Relaxed).cast();
        core::sync::atomic::compiler_fence(Ordering::SeqCst);
        if !prev.is_null() {
            // Safety: a non-null slot always holds a live attached handle of ours.
            unsafe { (*prev).attached.store(false, Ordering::Release) };
        }
        prev
    }

    /// The calling thread's attached record, attaching a fresh empty one if there is none.
    #[inline]
    pub(crate) fn current_or_attach() -> Result<*mut OtelThreadCtxRecord, Status> {
        let rec = tls::slot().load(Ordering::Relaxed);
        if !rec.is_null() {
            return Ok(rec);
        }
        Self::attach_fresh()
    }

    #[cold]
    fn attach_fresh() -> Result<*mut OtelThreadCtxRecord, Status> {
        // Refused before allocating anything when the record could not be freed at thread exit.
        thread_exit::arm()?;
        let h = Self::allocate(&[0; 16], &[0; 8], 0)?;
        Self::attach(h).inspect_err(|_| _ = Self::free(h))?;
        Ok(h.cast())
    }
}

const _: () = assert!(core::mem::offset_of!(OtelThreadCtx, record) == 0);

/// Frees a record still attached when its thread exits, from a pthread key destructor (unlike
/// a `thread_local!` with `Drop`, it adds nothing to the library's small TLS segment; it does not
/// run for the main thread). Another key's destructor running after ours may attach a record
/// again, which would leak: so ours leaves [`EXITING`] in the key, which refuses every later
/// attach on the thread (`ThreadExiting`) and makes glibc call us again in each remaining round.
pub(crate) mod thread_exit {
    use super::{OtelThreadCtx, Status};
    use core::sync::atomic::{AtomicI32, AtomicI64, Ordering};

    /// The key, or -1 when none could be created. Made under `pthread_once`, which a fork in
    /// the middle of it cannot leave stuck in the child (std's `OnceLock` can).
    static KEY: AtomicI64 = AtomicI64::new(-1);
    static KEY_ONCE: AtomicI32 = AtomicI32::new(0);

    /// Key values (any non-null one makes the destructor run): "a record may be attached", and
    /// "the clean-up has run, the thread is exiting".
    static ARMED: u8 = 0;
    static EXITING: u8 = 0;

    extern "C" fn create_key() {
        let mut key: libc::pthread_key_t = 0;
        // Safety: `key` is a valid out pointer; the destructor is an extern "C" fn.
        if unsafe { libc::pthread_key_create(&mut key, Some(on_thread_exit)) } == 0 {
            KEY.store(i64::from(key), Ordering::Release);
        }
    }

    extern "C" fn on_thread_exit(_: *mut libc::c_void) {
        // Never unwind into libc. Unpublish first, then free (NULL is refused): a reader never
        // sees freed memory.
        let _ = std::panic::catch_unwind(|| OtelThreadCtx::free(OtelThreadCtx::detach()));
        if let Some(key) = key() {
            // Safety: `key` was created by pthread_key_create; setting a value from its own
            // destructor is allowed (glibc then runs another round, if one is left).
            unsafe { libc::pthread_setspecific(key, (&raw const EXITING).cast()) };
        }
    }

    /// The key; none when the process has no key left, and then attaching is refused.
    pub(crate) fn key() -> Option<libc::pthread_key_t> {
        crate::fork_safe::once(&KEY_ONCE, create_key);
        libc::pthread_key_t::try_from(KEY.load(Ordering::Acquire)).ok()
    }

    /// Makes sure the calling thread's exit frees what is attached to it, or says why it cannot:
    /// no key, the clean-up already ran on this exiting thread, or no memory for the key value.
    pub(super) fn arm() -> Result<(), Status> {
        let key = key().ok_or(Status::NoThreadKey)?;
        // Safety: `key` was created by pthread_key_create.
        let value = unsafe { libc::pthread_getspecific(key) }.cast_const();
        if value == (&raw const EXITING).cast() {
            return Err(Status::ThreadExiting);
        }
        // Safety: as above; the value is a static address.
        if value.is_null() && unsafe { libc::pthread_setspecific(key, (&raw const ARMED).cast()) } != 0 {
            return Err(Status::OutOfMemory);
        }
        Ok(())
    }
}
