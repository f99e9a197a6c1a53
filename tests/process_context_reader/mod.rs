//! The process context as a profiler reads it, through otel-ctx-dump's library (an independent
//! reader that shares no code with this crate): find the mapping by the names readers accept in
//! /proc/PID/maps, copy and check the header and the payload (process_vm_readv), and decode the
//! payload with the inspector's own protobuf schema. This file only adapts it to the tests.

#![allow(dead_code)]

use otel_ctx_dump::maps::{self, Memory, ProcessMemory};
use otel_ctx_dump::process_context::{self as pc, Header, Value};

/// One OTEL_CTX mapping as /proc/PID/maps lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub start: u64,
    pub end: u64,
    pub perms: String,
    pub name: String,
}

fn pid_of(pid: &str) -> i32 {
    if pid == "self" {
        std::process::id() as i32
    } else {
        pid.parse().expect("a pid")
    }
}

/// Every mapping of this process named as readers expect.
pub fn find_mappings() -> Vec<Found> {
    find_mappings_of("self")
}

/// Every mapping of process `pid` ("self" or a number) named as readers expect (executable
/// ones included, so a test can see that it is not).
pub fn find_mappings_of(pid: &str) -> Vec<Found> {
    maps::read(pid_of(pid))
        .expect("read /proc/PID/maps")
        .into_iter()
        .filter(|m| pc::CONTEXT_MAPPING_NAMES.contains(&m.path.as_str()))
        .map(|m| Found {
            start: m.start,
            end: m.end,
            perms: m.perms,
            name: m.path,
        })
        .collect()
}

/// The only OTEL_CTX mapping; panics if there is none or several.
pub fn the_mapping() -> Found {
    the_mapping_of("self")
}

/// The only OTEL_CTX mapping of process `pid`; panics if there is none or several.
pub fn the_mapping_of(pid: &str) -> Found {
    let found = find_mappings_of(pid);
    assert_eq!(found.len(), 1, "expected one OTEL_CTX mapping, found {found:?}");
    found.into_iter().next().unwrap()
}

fn header_bytes(pid: &str, addr: u64) -> [u8; pc::HEADER_SIZE] {
    let mut b = [0u8; pc::HEADER_SIZE];
    ProcessMemory { pid: pid_of(pid) }
        .read(addr, &mut b)
        .expect("read the header");
    b
}

/// The header at `addr`, checked as readers check it (signature, version, size limit, non-zero
/// timestamp, payload pointer).
pub fn read_header(addr: u64) -> Header {
    read_header_of("self", addr)
}

pub fn read_header_of(pid: &str, addr: u64) -> Header {
    Header::parse(&header_bytes(pid, addr)).unwrap_or_else(|e| panic!("header at {addr:#x}: {e}"))
}

/// Header and payload bytes; the header must be unchanged after the payload is copied.
pub fn read_context(addr: u64) -> (Header, Vec<u8>) {
    read_context_of("self", addr)
}

/// [`read_context`] for process `pid`.
pub fn read_context_of(pid: &str, addr: u64) -> (Header, Vec<u8>) {
    let h = read_header_of(pid, addr);
    let mut payload = vec![0u8; h.payload_size as usize];
    ProcessMemory { pid: pid_of(pid) }
        .read(h.payload_ptr, &mut payload)
        .expect("read the payload");
    assert_eq!(read_header_of(pid, addr), h, "header changed while reading");
    (h, payload)
}

pub fn boottime_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // Safety: `ts` is a valid, writable timespec.
    assert_eq!(unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) }, 0);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// What a profiler takes from the payload (this library publishes strings only).
#[derive(Debug, PartialEq, Eq)]
pub struct Decoded {
    pub resource: Vec<(String, String)>,
    pub schema_version: Option<String>,
    pub key_map: Option<Vec<String>>,
}

pub fn decode(payload: &[u8]) -> Decoded {
    let c = pc::decode_payload(payload).unwrap_or_else(|e| panic!("{e}"));
    let string = |v: &Value| match v {
        Value::Str(s) => s.clone(),
        other => panic!("not a string: {other}"),
    };
    Decoded {
        resource: c.resource.iter().map(|(k, v)| (k.clone(), string(v))).collect(),
        schema_version: c.schema_version,
        key_map: c
            .key_map
            .map(|m| m.into_iter().map(|k| k.expect("key map entries are strings")).collect()),
    }
}

/// The decoded resource attribute named `key`.
pub fn resource_value<'a>(d: &'a Decoded, key: &str) -> Option<&'a str> {
    d.resource.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}
