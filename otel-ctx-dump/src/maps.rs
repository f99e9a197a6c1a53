//! `/proc/PID/maps` parsing and reading another process's memory.

use std::fmt::Display;
use std::io;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    pub perms: String,
    pub offset: u64,
    pub dev: String,
    pub inode: u64,
    /// Path or pseudo-name (`[heap]`, `[anon:NAME]`, `/memfd:NAME (deleted)`); may be empty.
    pub path: String,
}

/// Parses a maps file, skipping lines not in the kernel's format. Five fields, one space apart,
/// then padding and the path, which may itself contain spaces.
pub fn parse(text: &str) -> Vec<Mapping> {
    let line = |line: &str| {
        let mut f = line.splitn(6, ' ');
        let (start, end) = f.next()?.split_once('-')?;
        let m = Mapping {
            start: u64::from_str_radix(start, 16).ok()?,
            end: u64::from_str_radix(end, 16).ok()?,
            perms: f.next()?.to_owned(),
            offset: u64::from_str_radix(f.next()?, 16).ok()?,
            dev: f.next()?.to_owned(),
            inode: f.next()?.parse().ok()?,
            path: f.next().unwrap_or("").trim_start_matches(' ').to_owned(),
        };
        (m.perms.len() == 4 && m.start <= m.end).then_some(m)
    };
    text.lines().filter_map(line).collect()
}

/// Reads `/proc/{path}/maps`: `PID`, or `PID/task/TID` (one thread's view of the same address
/// space, readable while the main thread is a zombie).
pub fn read(path: impl Display) -> io::Result<Vec<Mapping>> {
    Ok(parse(&std::fs::read_to_string(format!("/proc/{path}/maps"))?))
}

/// Another process's memory (or, in tests, a fake of it).
pub trait Memory {
    /// Fills `buf` from `addr`, entirely or not at all.
    fn read(&self, addr: u64, buf: &mut [u8]) -> io::Result<()>;

    fn read_u64(&self, addr: u64) -> io::Result<u64> {
        let mut b = [0u8; 8];
        self.read(addr, &mut b)?;
        Ok(u64::from_ne_bytes(b))
    }

    /// Reads up to `len` bytes: the longest readable prefix, page by page (a record near the end
    /// of a mapping).
    fn read_prefix(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut buf = vec![0u8; len];
        let mut done = 0;
        while done < len {
            let at = addr + done as u64;
            let n = ((4096 - at % 4096) as usize).min(len - done);
            if self.read(at, &mut buf[done..done + n]).is_err() {
                break;
            }
            done += n;
        }
        buf.truncate(done);
        buf
    }
}

/// The memory of a live process, through `process_vm_readv`.
#[derive(Clone, Copy, Debug)]
pub struct ProcessMemory {
    pub pid: i32,
}

impl Memory for ProcessMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> io::Result<()> {
        let local = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let remote = libc::iovec {
            iov_base: addr as *mut libc::c_void,
            iov_len: buf.len(),
        };
        // Safety: `local` describes `buf`, which is valid for writes of its length for the whole
        // call; `remote` is only dereferenced by the kernel, in the other process.
        let n = unsafe { libc::process_vm_readv(self.pid, &local, 1, &remote, 1, 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n as usize != buf.len() {
            let e = format!("read {n} of {} bytes at {addr:#x}", buf.len());
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, e));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Memory made of byte regions at fixed addresses, for the unit tests.
    impl Memory for Vec<(u64, Vec<u8>)> {
        fn read(&self, addr: u64, buf: &mut [u8]) -> io::Result<()> {
            for (start, bytes) in self {
                if addr >= *start && addr + buf.len() as u64 <= start + bytes.len() as u64 {
                    let o = (addr - start) as usize;
                    buf.copy_from_slice(&bytes[o..o + buf.len()]);
                    return Ok(());
                }
            }
            Err(io::Error::from_raw_os_error(libc::EFAULT))
        }
    }

    #[test]
    fn parses_kernel_lines() {
        let text = "\
55d0c0a00000-55d0c0a01000 r--p 00000000 08:01 1234                       /usr/bin/sample
7f1e2c000000-7f1e2c001000 rw-p 00000000 00:01 77                         /memfd:OTEL_CTX (deleted)
7f1e2c100000-7f1e2c101000 rw-p 00000000 00:00 0                          [anon:OTEL_CTX]
7ffd1000-7ffd2000 rw-p 00000000 00:00 0 
garbage
";
        let m = parse(text);
        assert_eq!(m.len(), 4);
        assert_eq!(m[0].start, 0x55d0c0a00000);
        assert_eq!(m[0].path, "/usr/bin/sample");
        assert_eq!(m[0].inode, 1234);
        assert_eq!(m[1].path, "/memfd:OTEL_CTX (deleted)");
        assert_eq!(m[2].path, "[anon:OTEL_CTX]");
        assert_eq!(m[3].path, "");
        assert_eq!(m[3].perms, "rw-p");
    }

    #[test]
    fn reads_own_memory_and_fails_on_unmapped() {
        let data = *b"hello, memory";
        let mem = ProcessMemory {
            pid: std::process::id() as i32,
        };
        let mut out = [0u8; 13];
        mem.read(data.as_ptr() as u64, &mut out).unwrap();
        assert_eq!(&out, &data);
        assert!(mem.read(8, &mut out).is_err());
    }
}
