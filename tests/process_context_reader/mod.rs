//! A reader of the process context written from OTEP 4719 alone, the way a profiler reads it:
//! find the mapping by name in /proc/PID/maps, copy the header and the payload through
//! /proc/PID/mem, and decode the payload with message types declared here from the spec's
//! field numbers (independently of the library's own).

#![allow(dead_code)]

use std::os::unix::fs::FileExt;

/// The names the spec lists for the mapping in /proc/PID/maps.
pub const MAPPING_NAMES: [&str; 3] = ["[anon_shmem:OTEL_CTX]", "[anon:OTEL_CTX]", "/memfd:OTEL_CTX (deleted)"];

/// One OTEL_CTX mapping as /proc/self/maps lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub start: u64,
    pub end: u64,
    pub perms: String,
    pub name: String,
}

/// Every mapping of this process named as the spec says.
pub fn find_mappings() -> Vec<Found> {
    find_mappings_of("self")
}

/// Every mapping of process `pid` ("self" or a number) named as the spec says.
pub fn find_mappings_of(pid: &str) -> Vec<Found> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("read /proc/PID/maps");
    maps.lines()
        .filter_map(|line| {
            let name = MAPPING_NAMES.iter().find(|n| line.ends_with(*n))?;
            let mut fields = line.split_whitespace();
            let (start, end) = fields.next()?.split_once('-')?;
            Some(Found {
                start: u64::from_str_radix(start, 16).ok()?,
                end: u64::from_str_radix(end, 16).ok()?,
                perms: fields.next()?.to_owned(),
                name: (*name).to_owned(),
            })
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

/// The 32-byte header, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub signature: [u8; 8],
    pub version: u32,
    pub payload_size: u32,
    pub published_at_ns: u64,
    pub payload: u64,
}

/// Copies `len` bytes at `addr` of this process through /proc/self/mem, as a profiler would.
pub fn read_mem(addr: u64, len: usize) -> Vec<u8> {
    read_mem_of("self", addr, len)
}

/// Copies `len` bytes at `addr` of process `pid` through /proc/PID/mem.
pub fn read_mem_of(pid: &str, addr: u64, len: usize) -> Vec<u8> {
    let mem = std::fs::File::open(format!("/proc/{pid}/mem")).expect("open /proc/PID/mem");
    let mut buf = vec![0u8; len];
    mem.read_exact_at(&mut buf, addr).expect("read /proc/self/mem");
    buf
}

pub fn read_header(addr: u64) -> Header {
    read_header_of("self", addr)
}

pub fn read_header_of(pid: &str, addr: u64) -> Header {
    let b = read_mem_of(pid, addr, 32);
    Header {
        signature: b[0..8].try_into().unwrap(),
        version: u32::from_ne_bytes(b[8..12].try_into().unwrap()),
        payload_size: u32::from_ne_bytes(b[12..16].try_into().unwrap()),
        published_at_ns: u64::from_ne_bytes(b[16..24].try_into().unwrap()),
        payload: u64::from_ne_bytes(b[24..32].try_into().unwrap()),
    }
}

/// Header and payload bytes, checked as a reader checks them (signature, version, size limit,
/// non-zero timestamp, the timestamp unchanged after copying the payload).
pub fn read_context(addr: u64) -> (Header, Vec<u8>) {
    read_context_of("self", addr)
}

/// [`read_context`] for process `pid`.
pub fn read_context_of(pid: &str, addr: u64) -> (Header, Vec<u8>) {
    let h = read_header_of(pid, addr);
    assert_eq!(&h.signature, b"OTEL_CTX");
    assert_eq!(h.version, 2);
    assert!(h.payload_size > 0 && h.payload_size <= 64 * 1024, "{h:?}");
    assert_ne!(h.published_at_ns, 0, "not published: {h:?}");
    let payload = read_mem_of(pid, h.payload, h.payload_size as usize);
    assert_eq!(read_header_of(pid, addr), h, "header changed while reading");
    (h, payload)
}

pub fn boottime_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // Safety: `ts` is a valid, writable timespec.
    assert_eq!(unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) }, 0);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// opentelemetry.proto.processcontext.v1development.ProcessContext
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProcessContext {
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
    #[prost(message, repeated, tag = "2")]
    pub attributes: Vec<KeyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Resource {
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<KeyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValue {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<AnyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct AnyValue {
    #[prost(oneof = "Value", tags = "1, 2, 3, 4, 5, 7")]
    pub value: Option<Value>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Value {
    #[prost(string, tag = "1")]
    String(String),
    #[prost(bool, tag = "2")]
    Bool(bool),
    #[prost(int64, tag = "3")]
    Int(i64),
    #[prost(double, tag = "4")]
    Double(f64),
    #[prost(message, tag = "5")]
    Array(ArrayValue),
    #[prost(bytes = "vec", tag = "7")]
    Bytes(Vec<u8>),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ArrayValue {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<AnyValue>,
}

/// What a profiler takes from the payload.
#[derive(Debug, PartialEq, Eq)]
pub struct Decoded {
    pub resource: Vec<(String, String)>,
    pub schema_version: Option<String>,
    pub key_map: Option<Vec<String>>,
}

fn as_string(v: &Option<AnyValue>) -> Option<String> {
    match v.as_ref()?.value.as_ref()? {
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

pub fn decode(payload: &[u8]) -> Decoded {
    use prost::Message;
    let msg = ProcessContext::decode(payload).expect("payload is a ProcessContext message");
    let resource = msg
        .resource
        .map(|r| {
            r.attributes
                .iter()
                .map(|kv| (kv.key.clone(), as_string(&kv.value).expect("string resource attribute")))
                .collect()
        })
        .unwrap_or_default();
    let mut schema_version = None;
    let mut key_map = None;
    for kv in &msg.attributes {
        match kv.key.as_str() {
            "threadlocal.schema_version" => schema_version = as_string(&kv.value),
            "threadlocal.attribute_key_map" => {
                let Some(Value::Array(arr)) = kv.value.as_ref().and_then(|v| v.value.clone()) else {
                    panic!("key map is not an array: {kv:?}");
                };
                key_map = Some(
                    arr.values
                        .into_iter()
                        .map(|v| as_string(&Some(v)).expect("key map entries are strings"))
                        .collect(),
                );
            }
            _ => {}
        }
    }
    Decoded {
        resource,
        schema_version,
        key_map,
    }
}

/// The decoded resource attribute named `key`.
pub fn resource_value<'a>(d: &'a Decoded, key: &str) -> Option<&'a str> {
    d.resource.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// The key map alone, for payloads whose resource is not all strings.
pub fn decode_keys_only(payload: &[u8]) -> Option<Vec<String>> {
    use prost::Message;
    let msg = ProcessContext::decode(payload).expect("payload is a ProcessContext message");
    let kv = msg
        .attributes
        .iter()
        .find(|kv| kv.key == "threadlocal.attribute_key_map")?;
    let Some(Value::Array(arr)) = kv.value.as_ref().and_then(|v| v.value.clone()) else {
        panic!("key map is not an array: {kv:?}");
    };
    Some(
        arr.values
            .into_iter()
            .map(|v| as_string(&Some(v)).expect("string key"))
            .collect(),
    )
}
