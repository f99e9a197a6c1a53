//! Owned records: allocation, the registry of live handles (so bad pointers and double frees are
//! refused), attaching to the TLS slot, and clean-up at thread exit.
//!
//! Ownership rule: a record made by `new` belongs to its caller until attached, and to the slot
//! while attached. A thread's *own* record, the one `update` and `ensure_record` attach when the
//! slot is empty, belongs to that thread for its whole life: it is made once, attached again
//! whenever the slot is empty, never handed to a caller by `attach` or `detach`, refused by
//! `free`, written and attached only by that thread, and freed only at the thread's exit. So the
//! address `ensure_record` returns stays valid until then, whoever detaches it.

use crate::fork_safe::{ForkSafeMutex, Locked};
use crate::record::OtelThreadCtxRecord;
use crate::status::OtelThreadCtxStatus as Status;
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
    /// Set while some thread's slot points at this record. Only the thread whose slot it is
    /// changes it; the .NET writer reads it (offset 640) to tell whether its cached own record
    /// is still the one published.
    attached: AtomicBool,
    /// For a thread's own record, the address of that thread's slot (unique among live threads);
    /// 0 for a record made by `new`. Set at allocation, never changed. The .NET writer reads it
    /// (offset 648): it caches only its thread's own record.
    owner: usize,
}

/// Addresses of handles allocated and not yet freed. Held across `fork` (see fork_safe).
pub(crate) static LIVE: ForkSafeMutex<BTreeSet<usize>> = ForkSafeMutex::new(BTreeSet::new());

impl Locked for BTreeSet<usize> {
    fn mutex() -> &'static ForkSafeMutex<Self> {
        &LIVE
    }
}

impl OtelThreadCtx {
    /// Allocates a valid record holding the given ids; `owner` as the field says (0: the caller's).
    pub(crate) fn allocate(trace: &[u8; 16], span: &[u8; 8], flags: u8, owner: usize) -> Result<*mut Self, Status> {
        let layout = Layout::new::<OtelThreadCtx>();
        // Safety: the layout has non-zero size. All-zero bytes are a valid OtelThreadCtx
        // (plain bytes and a false AtomicBool).
        let ptr = unsafe { alloc_zeroed(layout) }.cast::<OtelThreadCtx>();
        if ptr.is_null() {
            return Err(Status::OutOfMemory);
        }
        // Safety: `ptr` is freshly allocated, so only this thread writes it.
        unsafe {
            OtelThreadCtxRecord::write_ids(ptr.cast(), trace, span, flags);
            (*ptr).owner = owner;
        }
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

    /// The calling thread's identity as an owner: its slot's address.
    fn this_thread() -> usize {
        tls::slot() as *const _ as usize
    }

    /// Frees `h` unless it is unknown or attached; a thread's own record only at its exit.
    pub(crate) fn release(h: *mut OtelThreadCtx, thread_exit: bool) -> Result<(), Status> {
        let mut live = Self::live(h)?;
        // Safety: `h` is in the registry, so it is a live allocation of ours.
        let (attached, owner) = unsafe { ((*h).attached.load(Ordering::Acquire), (*h).owner) };
        if owner != 0 && !thread_exit {
            return Err(Status::OwnedByThread);
        }
        if attached {
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

    /// Whether the calling thread may write `h`'s record: it is attached here, or it is detached
    /// and not another thread's own record. The record attached here is live and only this
    /// thread could free it, so that case takes no lock (async-signal-safe).
    pub(crate) fn writable_here(h: *mut OtelThreadCtx) -> Result<(), Status> {
        if !h.is_null() && h == Self::current() {
            return Ok(());
        }
        drop(Self::live(h)?);
        // Safety: a live handle.
        let (attached, owner) = unsafe { ((*h).attached.load(Ordering::Acquire), (*h).owner) };
        match () {
            _ if attached => Err(Status::AttachedElsewhere),
            _ if owner != 0 && owner != Self::this_thread() => Err(Status::OwnedByThread),
            _ => Ok(()),
        }
    }

    /// Publishes `h` in the calling thread's slot; returns the handle it displaced (now owned
    /// by the caller) or null, also when it displaced the thread's own record (still the thread's).
    pub(crate) fn attach(h: *mut OtelThreadCtx) -> Result<*mut OtelThreadCtx, Status> {
        let prev = Self::current();
        {
            // Held while claiming, so a concurrent free cannot release `h` in between.
            let _live = Self::live(h)?;
            if prev == h {
                return Ok(core::ptr::null_mut());
            }
            // Safety: live handle (checked under the lock).
            let owner = unsafe { (*h).owner };
            if owner != 0 && owner != Self::this_thread() {
                return Err(Status::OwnedByThread);
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
        Ok(Self::handed_over(prev))
    }

    /// Empties the calling thread's slot; returns the handle that was attached (now owned by
    /// the caller) or null, also when it was the thread's own record (still the thread's).
    pub(crate) fn detach() -> *mut OtelThreadCtx {
        let prev = tls::slot().swap(core::ptr::null_mut(), Ordering::Relaxed).cast();
        core::sync::atomic::compiler_fence(Ordering::SeqCst);
        Self::handed_over(prev)
    }

    /// Marks `prev`, just taken out of this thread's slot, detached; returns it unless it is
    /// the thread's own record, which no caller may own.
    fn handed_over(prev: *mut OtelThreadCtx) -> *mut OtelThreadCtx {
        // Safety: if not null, it was in this thread's slot, so it is a live handle attached here.
        match unsafe { prev.as_ref() }.inspect(|h| h.attached.store(false, Ordering::Release)) {
            Some(h) if h.owner != 0 => core::ptr::null_mut(),
            _ => prev,
        }
    }

    /// The calling thread's attached record, attaching its own record (empty) if none is.
    #[inline]
    pub(crate) fn current_or_attach() -> Result<*mut OtelThreadCtxRecord, Status> {
        match tls::slot().load(Ordering::Relaxed) {
            rec if rec.is_null() => Self::attach_fresh(),
            rec => Ok(rec),
        }
    }

    /// Attaches the thread's own record, made on first use, always empty ("no span": `valid = 0`)
    /// when attached (it may hold the span of before its detach).
    #[cold]
    fn attach_fresh() -> Result<*mut OtelThreadCtxRecord, Status> {
        // Refused before allocating anything when the record could not be freed at thread exit.
        let h = match thread_exit::arm()? {
            Some(h) => h,
            None => {
                let h = Self::allocate(&[0; 16], &[0; 8], 0, Self::this_thread())?;
                thread_exit::set_own_record(h).inspect_err(|_| _ = Self::release(h, true))?;
                h
            }
        };
        // Safety: the thread's own record is live until its exit and detached (the slot is
        // empty, or it was just allocated), so only this thread writes it.
        unsafe { OtelThreadCtxRecord::clear(h.cast()) };
        Self::attach(h)?;
        Ok(h.cast())
    }
}

const _: () = {
    assert!(core::mem::offset_of!(OtelThreadCtx, record) == 0);
    // The .NET writer reads these two fields at these offsets.
    assert!(core::mem::offset_of!(OtelThreadCtx, attached) == 640);
    assert!(core::mem::offset_of!(OtelThreadCtx, owner) == 648);
};

/// Frees a thread's records when it exits, from a pthread key destructor (unlike a
/// `thread_local!` with `Drop`, it adds nothing to the library's small TLS segment; it does not
/// run for the main thread): the record still attached, and the thread's own record. The key's
/// value is the own record's address once there is one ([`ARMED`] before). Another key's
/// destructor running after ours may attach a record again, which would leak: so ours leaves
/// [`EXITING`] in the key, which refuses every later attach on the thread (`ThreadExiting`) and
/// makes glibc call us again in each remaining round.
pub(crate) mod thread_exit {
    use super::{OtelThreadCtx, Status};
    use core::sync::atomic::{AtomicI32, AtomicI64, Ordering};

    /// The key, or -1 when none could be created. Made under `pthread_once`, which a fork in
    /// the middle of it cannot leave stuck in the child (std's `OnceLock` can).
    static KEY: AtomicI64 = AtomicI64::new(-1);
    static KEY_ONCE: AtomicI32 = AtomicI32::new(0);

    /// Key values besides an own record's address (any non-null one makes the destructor run):
    /// "a record may be attached", and "the clean-up has run, the thread is exiting".
    static ARMED: u8 = 0;
    static EXITING: u8 = 0;

    extern "C" fn create_key() {
        let mut key: libc::pthread_key_t = 0;
        // Safety: `key` is a valid out pointer; the destructor is an extern "C" fn.
        if unsafe { libc::pthread_key_create(&mut key, Some(on_thread_exit)) } == 0 {
            KEY.store(i64::from(key), Ordering::Release);
        }
    }

    /// glibc has already cleared the key's value when it calls this with `value`.
    extern "C" fn on_thread_exit(value: *mut libc::c_void) {
        // Never unwind into libc. Detach first, then free what detach hands over (NULL, as for
        // the own record, is refused): a reader never sees freed memory. The own record, attached
        // or not, goes last.
        let _ = std::panic::catch_unwind(|| {
            let _ = OtelThreadCtx::release(OtelThreadCtx::detach(), true);
            own_record_in(value.cast_const()).map(|h| OtelThreadCtx::release(h, true))
        });
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

    /// The own record a key value names, if it names one.
    fn own_record_in(value: *const libc::c_void) -> Option<*mut OtelThreadCtx> {
        let markers = [(&raw const ARMED).cast(), (&raw const EXITING).cast()];
        (!value.is_null() && !markers.contains(&value)).then_some(value.cast_mut().cast())
    }

    /// Remembers `h` as the calling thread's own record, to be freed at its exit. Call [`arm`]
    /// first.
    pub(super) fn set_own_record(h: *mut OtelThreadCtx) -> Result<(), Status> {
        let key = key().ok_or(Status::NoThreadKey)?;
        // Safety: `key` was created by pthread_key_create; `arm` already stored a value, so this
        // allocates nothing and cannot fail in glibc or musl, but is checked anyway.
        match unsafe { libc::pthread_setspecific(key, h.cast_const().cast()) } {
            0 => Ok(()),
            _ => Err(Status::OutOfMemory),
        }
    }

    /// Makes sure the calling thread's exit frees what is attached to it, or says why it cannot:
    /// no key, the clean-up already ran on this exiting thread, or no memory for the key value.
    /// Returns the thread's own record, if it has one yet.
    pub(super) fn arm() -> Result<Option<*mut OtelThreadCtx>, Status> {
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
        Ok(own_record_in(value))
    }
}
