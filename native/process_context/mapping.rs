//! The mapping a profiler discovers by name in `/proc/PID/maps` and the 32-byte header at its
//! start (OTEP 4719 version 2), with the publish, update and retract orderings readers rely on.
//!
//! A reader copies the header, then the payload, then the header again, and trusts the payload
//! only if `monotonic_published_at_ns` was non-zero and unchanged: so the timestamp is written
//! last when publishing, zeroed first when changing anything, and each step is fenced.

use core::mem::{offset_of, size_of};
use core::ptr::{addr_of_mut, NonNull};
use core::sync::atomic::{fence, Ordering};
use std::io;

/// Signature at offset 0, no NUL.
const SIGNATURE: [u8; 8] = *b"OTEL_CTX";
/// Header layout version this module writes.
const VERSION: u32 = 2;
/// The name readers look for, as memfd name and VMA name.
const NAME: &[u8; 9] = b"OTEL_CTX\0";
/// `MFD_NOEXEC_SEAL` (Linux 6.3); the libc crate version in use does not define it.
const MFD_NOEXEC_SEAL: libc::c_uint = 0x0008;

/// The header at the start of the mapping, byte for byte as readers parse it.
#[repr(C)]
pub struct Header {
    pub signature: [u8; 8],
    pub version: u32,
    pub payload_size: u32,
    pub monotonic_published_at_ns: u64,
    pub payload: u64,
}

const _: () = {
    assert!(offset_of!(Header, signature) == 0);
    assert!(offset_of!(Header, version) == 8);
    assert!(offset_of!(Header, payload_size) == 12);
    assert!(offset_of!(Header, monotonic_published_at_ns) == 16);
    assert!(offset_of!(Header, payload) == 24);
    assert!(size_of::<Header>() == 32);
};

/// How the mapping was made; decides which name shows in `/proc/PID/maps`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backing {
    /// A private mapping of a `memfd` named OTEL_CTX: `/memfd:OTEL_CTX (deleted)`.
    Memfd,
    /// A private anonymous mapping, discoverable only through its VMA name `[anon:OTEL_CTX]`.
    Anonymous,
}

/// One header mapping, owned. Dropping it unmaps it.
pub struct Mapping {
    header: NonNull<Header>,
    len: usize,
    backing: Backing,
}

// Safety: the mapping is plain memory owned by this value; all access goes through `&mut self`
// (the module keeps it behind a mutex).
unsafe impl Send for Mapping {}

fn page_size() -> usize {
    // Safety: sysconf has no memory-safety preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as usize
    } else {
        4096
    }
}

/// CLOCK_BOOTTIME in nanoseconds: the clock the spec names, which keeps counting across suspend.
pub fn boottime_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // Safety: `ts` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    if rc != 0 {
        return 1;
    }
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// Maps `len` bytes of a fresh memfd named OTEL_CTX, or None when memfd is unavailable.
fn map_memfd(len: usize) -> Option<*mut libc::c_void> {
    let base = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // Safety: NAME is a NUL-terminated string; the flags are plain integers.
    let mut fd = unsafe { libc::memfd_create(NAME.as_ptr().cast(), base | MFD_NOEXEC_SEAL) };
    if fd < 0 {
        // Kernels before 6.3 reject MFD_NOEXEC_SEAL with EINVAL.
        // Safety: as above.
        fd = unsafe { libc::memfd_create(NAME.as_ptr().cast(), base) };
    }
    if fd < 0 {
        return None;
    }
    // Safety: `fd` is a memfd this function owns; ftruncate and mmap only use it as a number.
    let addr = unsafe {
        if libc::ftruncate(fd, len as libc::off_t) != 0 {
            libc::MAP_FAILED
        } else {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE,
                fd,
                0,
            )
        }
    };
    // Safety: the mapping, if made, keeps the file alive; the descriptor is no longer needed.
    unsafe { libc::close(fd) };
    (addr != libc::MAP_FAILED).then_some(addr)
}

fn map_anonymous(len: usize) -> Option<*mut libc::c_void> {
    // Safety: a new private anonymous mapping; no existing memory is affected.
    let addr = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    (addr != libc::MAP_FAILED).then_some(addr)
}

impl Mapping {
    /// Makes a zeroed (so not yet published) header mapping that a forked child does not
    /// inherit: a memfd mapping when `prefer_memfd` and the kernel allows it, else anonymous.
    pub fn create(prefer_memfd: bool) -> io::Result<Mapping> {
        let len = page_size();
        let (addr, backing) = match prefer_memfd.then(|| map_memfd(len)).flatten() {
            Some(a) => (a, Backing::Memfd),
            None => (
                map_anonymous(len).ok_or_else(io::Error::last_os_error)?,
                Backing::Anonymous,
            ),
        };
        let header = NonNull::new(addr.cast::<Header>()).expect("mmap does not return NULL on success");
        let mapping = Mapping { header, len, backing };
        // Safety: `addr`/`len` is the mapping just made.
        if unsafe { libc::madvise(addr, len, libc::MADV_DONTFORK) } != 0 {
            // Without it a child would inherit a context describing its parent.
            return Err(io::Error::last_os_error());
        }
        Ok(mapping)
    }

    /// Address of the header (the start of the mapping).
    pub fn address(&self) -> usize {
        self.header.as_ptr() as usize
    }

    /// How the mapping was made.
    pub fn backing(&self) -> Backing {
        self.backing
    }

    /// Names the mapping OTEL_CTX (`PR_SET_VMA_ANON_NAME`, Linux 5.17). Profilers also watch
    /// this prctl to notice updates, so it is issued on every publish and update. Since Linux 6.2
    /// the kernel also names a memfd mapping (it counts as anonymous shared memory), which then
    /// shows as `[anon_shmem:OTEL_CTX]` instead of `/memfd:OTEL_CTX (deleted)`; a kernel built
    /// without `CONFIG_ANON_VMA_NAME` refuses every name with EINVAL.
    pub fn name(&self) -> io::Result<()> {
        // Safety: names this module's own mapping; the kernel copies the NUL-terminated name.
        let rc = unsafe {
            libc::prctl(
                libc::PR_SET_VMA,
                libc::PR_SET_VMA_ANON_NAME as libc::c_ulong,
                self.header.as_ptr() as libc::c_ulong,
                self.len as libc::c_ulong,
                NAME.as_ptr() as libc::c_ulong,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// First publication: every field, a full fence, then the timestamp.
    ///
    /// # Safety
    /// `payload` points to `payload_size` bytes that stay valid until the payload is replaced
    /// or the context retracted.
    pub unsafe fn publish(&mut self, payload: *const u8, payload_size: u32, timestamp: u64) {
        let h = self.header.as_ptr();
        // Safety: `h` is the start of this live, writable mapping, large enough for a Header.
        // Volatile, because the only reader is another process the compiler cannot see.
        unsafe {
            addr_of_mut!((*h).signature).write_volatile(SIGNATURE);
            addr_of_mut!((*h).version).write_volatile(VERSION);
            addr_of_mut!((*h).payload_size).write_volatile(payload_size);
            addr_of_mut!((*h).payload).write_volatile(payload as u64);
            fence(Ordering::SeqCst);
            addr_of_mut!((*h).monotonic_published_at_ns).write_volatile(timestamp);
        }
    }

    /// Update: timestamp 0, fence, new pointer and size, fence, the new (larger) timestamp.
    ///
    /// # Safety
    /// As for [`Mapping::publish`].
    pub unsafe fn replace_payload(&mut self, payload: *const u8, payload_size: u32, timestamp: u64) {
        let h = self.header.as_ptr();
        // Safety: as in `publish`.
        unsafe {
            addr_of_mut!((*h).monotonic_published_at_ns).write_volatile(0);
            fence(Ordering::SeqCst);
            addr_of_mut!((*h).payload).write_volatile(payload as u64);
            addr_of_mut!((*h).payload_size).write_volatile(payload_size);
            fence(Ordering::SeqCst);
            addr_of_mut!((*h).monotonic_published_at_ns).write_volatile(timestamp);
        }
    }

    /// Gives up a mapping this process does not have: after fork, MADV_DONTFORK left the child
    /// without it, and unmapping its address could hit something mapped there since.
    pub fn abandon(self) {
        core::mem::forget(self);
    }
}

impl Drop for Mapping {
    /// Marks the context unpublished for a reader mid-copy, then unmaps it.
    fn drop(&mut self) {
        let h = self.header.as_ptr();
        // Safety: the mapping is live and owned by `self`; nothing uses it after this.
        unsafe {
            addr_of_mut!((*h).monotonic_published_at_ns).write_volatile(0);
            fence(Ordering::SeqCst);
            libc::munmap(h.cast(), self.len);
        }
    }
}
