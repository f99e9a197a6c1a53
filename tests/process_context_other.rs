//! Another process context in the process (OTEP 4719: "there MUST NOT be more than one"): when a
//! mapping readers would take for a process context is already there, made by another library,
//! publishing is refused with `OTHER_CONTEXT_PUBLISHED` and maps nothing; once it is gone,
//! publishing works. The foreign mappings are made here the way another writer makes them: a
//! memfd named OTEL_CTX, and an anonymous mapping named with `PR_SET_VMA_ANON_NAME`.
//!
//! One test in its own binary: the process context is one per process, so nothing else here may
//! publish concurrently.

use otel_thread_ctx::ffi::OtelThreadCtxStatus as S;
use otel_thread_ctx::process_context::ffi::{otel_process_ctx_publish, otel_process_ctx_unpublish};
use otel_thread_ctx::process_context::{self as pc, payload};
use std::ptr::null_mut;

const LEN: usize = 4096;
const NAME: &std::ffi::CStr = c"OTEL_CTX";

/// The lines of /proc/self/maps naming an OTEL_CTX mapping, as readers look for them.
fn contexts() -> Vec<String> {
    let names = [
        "/memfd:OTEL_CTX (deleted)",
        "/memfd:OTEL_CTX",
        "[anon_shmem:OTEL_CTX]",
        "[anon:OTEL_CTX]",
    ];
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|l| names.iter().any(|n| l.ends_with(&format!(" {n}"))))
        .map(str::to_owned)
        .collect()
}

/// Another writer's context mapping: a memfd named OTEL_CTX, mapped.
fn foreign_memfd() -> usize {
    // Safety: NAME is NUL-terminated.
    let fd = unsafe { libc::memfd_create(NAME.as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
    // Safety: `fd` is the memfd just made.
    assert_eq!(unsafe { libc::ftruncate(fd, LEN as libc::off_t) }, 0);
    // Safety: a new mapping at an address the kernel picks.
    let addr = unsafe {
        libc::mmap(
            null_mut(),
            LEN,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE,
            fd,
            0,
        )
    };
    assert_ne!(addr, libc::MAP_FAILED);
    // Safety: the mapping keeps the file; the descriptor is ours and no longer needed.
    unsafe { libc::close(fd) };
    addr as usize
}

/// Another writer's context mapping: anonymous, named OTEL_CTX; None if the kernel cannot name
/// it (no `CONFIG_ANON_VMA_NAME`, or older than 5.17).
fn foreign_anonymous() -> Option<usize> {
    let prot = libc::PROT_READ | libc::PROT_WRITE;
    // Safety: a new mapping at an address the kernel picks.
    let addr = unsafe { libc::mmap(null_mut(), LEN, prot, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0) };
    assert_ne!(addr, libc::MAP_FAILED);
    // Safety: names the mapping just made; the kernel copies the NUL-terminated name.
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_VMA,
            libc::PR_SET_VMA_ANON_NAME as libc::c_ulong,
            addr as libc::c_ulong,
            LEN as libc::c_ulong,
            NAME.as_ptr() as libc::c_ulong,
        )
    };
    if rc != 0 {
        unmap(addr as usize);
        return None;
    }
    Some(addr as usize)
}

fn unmap(addr: usize) {
    // Safety: unmaps a mapping this test made and no longer uses.
    assert_eq!(unsafe { libc::munmap(addr as *mut libc::c_void, LEN) }, 0);
}

fn publish_c() -> S {
    let keys = [c"http_route".as_ptr()];
    // Safety: the key array and its string are live for the call.
    unsafe { otel_process_ctx_publish(std::ptr::null(), 0, std::ptr::null(), 0, keys.as_ptr(), keys.len()) }
}

/// While `addr` (another writer's mapping) is there, neither API publishes and nothing is mapped.
fn refused_while_there(addr: usize) {
    let before = contexts();
    assert_eq!(before.len(), 1, "{before:?}");
    assert!(before[0].starts_with(&format!("{addr:x}-")), "{before:?}");

    assert_eq!(publish_c(), S::OtherContextPublished);
    let resource = vec![payload::kv(
        "service.name",
        payload::any_value::Value::StringValue("other".into()),
    )];
    assert_eq!(
        pc::publish(resource, Vec::new(), &["http_route"]),
        Err(S::OtherContextPublished)
    );
    assert_eq!(contexts(), before, "nothing new is mapped");
    assert_eq!(pc::published_address(), None);
    assert_eq!(otel_process_ctx_unpublish(), S::NotPublished);
}

/// Control: publishes (once `addr` is gone), finds exactly our own mapping, unpublishes.
fn publishes_when_alone() {
    assert!(contexts().is_empty(), "{:?}", contexts());
    assert_eq!(publish_c(), S::Ok);
    let ours = pc::published_address().expect("published");
    let found = contexts();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with(&format!("{ours:x}-")), "{found:?}");
    // Our own mapping is no obstacle to replacing it.
    assert_eq!(publish_c(), S::Ok);
    assert_eq!(otel_process_ctx_unpublish(), S::Ok);
    assert!(contexts().is_empty());
}

#[test]
fn another_context_mapping_refuses_publishing_until_it_is_gone() {
    publishes_when_alone();

    let memfd = foreign_memfd();
    refused_while_there(memfd);
    unmap(memfd);
    publishes_when_alone();

    match foreign_anonymous() {
        Some(anonymous) => {
            refused_while_there(anonymous);
            unmap(anonymous);
            publishes_when_alone();
        }
        None => eprintln!("this kernel cannot name anonymous mappings: only the memfd case ran"),
    }

    // Published first, then another writer appears: ours stays, and replacing it keeps working.
    assert_eq!(publish_c(), S::Ok);
    let memfd = foreign_memfd();
    assert_eq!(publish_c(), S::Ok);
    assert_eq!(otel_process_ctx_unpublish(), S::Ok);
    unmap(memfd);
}
