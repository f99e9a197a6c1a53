//! The mapping a profiler discovers by name in `/proc/PID/maps` and the 32-byte header at its
//! start (OTEP 4719 version 2). A reader copies the header, the payload, then the header again,
//! and trusts the payload only if `monotonic_published_at_ns` was non-zero and unchanged: so the
//! timestamp is zeroed first and written last, each step fenced.

use core::mem::{offset_of, size_of};
use core::ptr::{addr_of_mut, null_mut, NonNull};
use core::sync::atomic::{fence, Ordering};
use std::io;

/// The name readers look for, as memfd name and VMA name.
const NAME: &[u8; 9] = b"OTEL_CTX\0";
/// `MFD_NOEXEC_SEAL` (Linux 6.3); the libc crate version in use does not define it.
const MFD_NOEXEC_SEAL: libc::c_uint = 0x0008;

/// The names under which readers find a process context in `/proc/PID/maps`.
const MAPS_NAMES: [&str; 4] = [
    "/memfd:OTEL_CTX (deleted)",
    "/memfd:OTEL_CTX",
    "[anon_shmem:OTEL_CTX]",
    "[anon:OTEL_CTX]",
];

/// Whether `/proc/self/maps` lists a process context readers would find (a non-executable
/// mapping under one of [`MAPS_NAMES`]) that does not start at `own`; false when the file
/// cannot be read (then nothing can be checked).
pub fn other_context(own: Option<usize>) -> bool {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    find_context(&maps, own).is_some()
}

/// [`other_context`] over the text of a maps file. A line that does not parse, whatever its
/// name, is not a match.
fn find_context(maps: &str, own: Option<usize>) -> Option<&str> {
    let context = |line: &str| -> Option<bool> {
        // "start-end perms offset dev inode", then the name after any number of spaces.
        let (mut rest, mut fields) = (line, [""; 5]);
        for field in &mut fields {
            (*field, rest) = rest.trim_start_matches(' ').split_once(' ')?;
        }
        let start = usize::from_str_radix(fields[0].split_once('-')?.0, 16).ok()?;
        let name = rest.trim_start_matches(' ');
        Some(MAPS_NAMES.contains(&name) && fields[1].len() == 4 && !fields[1].contains('x') && Some(start) != own)
    };
    maps.lines().find(|line| context(line) == Some(true))
}

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

/// One header mapping, owned. Dropping it unmaps it.
pub struct Mapping {
    header: NonNull<Header>,
    len: usize,
    /// A private mapping of a memfd named OTEL_CTX (`/memfd:OTEL_CTX (deleted)` in
    /// `/proc/PID/maps`), not an anonymous one, found only by its VMA name `[anon:OTEL_CTX]`.
    pub memfd: bool,
}

// Safety: the mapping is plain memory owned by this value; all access goes through `&mut self`
// (the module keeps it behind a mutex).
unsafe impl Send for Mapping {}

/// CLOCK_BOOTTIME in nanoseconds: the clock the spec names, which keeps counting across suspend.
pub fn boottime_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // Safety: `ts` is a valid, writable timespec (left zero if the call fails).
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32).as_nanos() as u64
}

/// A new private read-write mapping of `len` bytes, of `fd` or (with MAP_ANONYMOUS) of nothing.
fn map(len: usize, flags: libc::c_int, fd: libc::c_int) -> Option<*mut libc::c_void> {
    let prot = libc::PROT_READ | libc::PROT_WRITE;
    // Safety: a new mapping at an address the kernel picks; no existing memory is affected.
    let addr = unsafe { libc::mmap(null_mut(), len, prot, libc::MAP_PRIVATE | flags, fd, 0) };
    (addr != libc::MAP_FAILED).then_some(addr)
}

/// Maps `len` bytes of a fresh memfd named OTEL_CTX, or None when memfd is unavailable.
fn map_memfd(len: usize) -> Option<*mut libc::c_void> {
    let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // Safety: NAME is NUL-terminated.
    let create = |seal| unsafe { libc::memfd_create(NAME.as_ptr().cast(), flags | seal) };
    // Kernels before 6.3 reject MFD_NOEXEC_SEAL (EINVAL): then without it.
    let fd = [MFD_NOEXEC_SEAL, 0].into_iter().map(create).find(|&fd| fd >= 0)?;
    // Safety: `fd` is a memfd this function owns.
    let sized = unsafe { libc::ftruncate(fd, len as libc::off_t) } == 0;
    let addr = if sized { map(len, 0, fd) } else { None };
    // Safety: the mapping, if made, keeps the file alive; the descriptor is no longer needed.
    unsafe { libc::close(fd) };
    addr
}

impl Mapping {
    /// Makes a zeroed (so not yet published) header mapping that a forked child does not
    /// inherit: a memfd mapping when `prefer_memfd` and the kernel allows it, else anonymous.
    pub fn create(prefer_memfd: bool) -> io::Result<Mapping> {
        // Safety: sysconf has no memory-safety preconditions.
        let len = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
        let from_memfd = prefer_memfd.then(|| map_memfd(len)).flatten();
        let memfd = from_memfd.is_some();
        let addr = from_memfd
            .or_else(|| map(len, libc::MAP_ANONYMOUS, -1))
            .ok_or_else(io::Error::last_os_error)?;
        let header = NonNull::new(addr.cast::<Header>()).expect("mmap does not return NULL on success");
        let mapping = Mapping { header, len, memfd };
        // Safety: `addr`/`len` is the mapping just made. Without it a child would inherit a
        // context describing its parent.
        if unsafe { libc::madvise(addr, len, libc::MADV_DONTFORK) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(mapping)
    }

    /// Address of the header (the start of the mapping).
    pub fn address(&self) -> usize {
        self.header.as_ptr() as usize
    }

    /// Names the mapping OTEL_CTX (`PR_SET_VMA_ANON_NAME`, Linux 5.17), on every publish and
    /// update since profilers watch this prctl. Since Linux 6.2 it names a memfd mapping too
    /// (`[anon_shmem:OTEL_CTX]`); a kernel without `CONFIG_ANON_VMA_NAME` refuses (EINVAL).
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
        (rc == 0).then_some(()).ok_or_else(io::Error::last_os_error)
    }

    /// Publishes or replaces the payload: timestamp 0, fence, every other field, fence, then
    /// the new (non-zero, larger) timestamp.
    ///
    /// # Safety
    /// `payload` points to `payload_size` bytes that stay valid until the payload is replaced
    /// or the context retracted.
    pub unsafe fn publish(&mut self, payload: *const u8, payload_size: u32, timestamp: u64) {
        let h = self.header.as_ptr();
        // Safety: `h` is the start of this live, writable mapping, large enough for a Header.
        // Volatile, because the only reader is another process the compiler cannot see.
        unsafe {
            addr_of_mut!((*h).monotonic_published_at_ns).write_volatile(0);
            fence(Ordering::SeqCst);
            addr_of_mut!((*h).signature).write_volatile(*b"OTEL_CTX");
            addr_of_mut!((*h).version).write_volatile(2);
            addr_of_mut!((*h).payload).write_volatile(payload as u64);
            addr_of_mut!((*h).payload_size).write_volatile(payload_size);
            fence(Ordering::SeqCst);
            addr_of_mut!((*h).monotonic_published_at_ns).write_volatile(timestamp);
        }
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

#[cfg(test)]
mod tests {
    use super::find_context;

    const OTHER: &str =
        "7f0000001000-7f0000002000 rw-p 00000000 00:01 42                         /memfd:OTEL_CTX (deleted)";

    #[test]
    fn finds_each_name_readers_accept_but_not_its_own() {
        let names = [
            "/memfd:OTEL_CTX (deleted)",
            "/memfd:OTEL_CTX",
            "[anon_shmem:OTEL_CTX]",
            "[anon:OTEL_CTX]",
        ];
        for name in names {
            let line = format!("7f0000001000-7f0000002000 rw-p 00000000 00:00 0       {name}");
            let maps = format!("55d0-55e0 r--p 00000000 08:01 7 /usr/bin/cat\n{line}\n");
            assert_eq!(find_context(&maps, None), Some(line.as_str()));
            assert_eq!(find_context(&maps, Some(0x7f00_0000_1000)), None, "{name}: our own");
            assert_eq!(find_context(&maps, Some(0x7f00_0000_2000)), Some(line.as_str()));
        }
    }

    #[test]
    fn other_names_and_malformed_lines_are_not_a_context() {
        let maps = [
            "7f0000001000-7f0000002000 rw-p 00000000 00:00 0 [anon:OTEL_CTX2]",
            "7f0000001000-7f0000002000 rw-p 00000000 00:00 0 /tmp/memfd:OTEL_CTX",
            "7f0000001000-7f0000002000 r-xp 00000000 00:00 0 [anon:OTEL_CTX]",
            "7f0000001000-7f0000002000 rw-p 00000000 00:00 [anon:OTEL_CTX]",
            "zz-7f0000002000 rw-p 00000000 00:00 0 [anon:OTEL_CTX]",
            "7f0000001000 rw-p 00000000 00:00 0 [anon:OTEL_CTX]",
            "[anon:OTEL_CTX]",
            "",
            "7f0000001000-7f0000002000 rw-p 00000000 00:00 0 /memfd:OTEL_CTX (deleted) \u{0}",
        ];
        for line in maps {
            assert_eq!(find_context(line, None), None, "{line:?}");
        }
        // Control: the well-formed line after all of them is found.
        let all = format!("{}\n{OTHER}", maps.join("\n"));
        assert_eq!(find_context(&all, None), Some(OTHER));
    }
}
