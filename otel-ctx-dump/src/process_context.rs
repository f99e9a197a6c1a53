//! The process context (OTEP 4719, version 2): finding its mapping, reading it while a writer may
//! update it, header checks and payload decoding. The payload is the protobuf message
//! `opentelemetry.proto.processcontext.v1development.ProcessContext`; [`proto`] is written from
//! the field numbers of that schema and of OTLP's common messages.

use crate::maps::{Mapping, Memory};
use crate::ser;
use serde::Serialize;
use std::fmt;

pub const HEADER_SIZE: usize = 32;
pub const SIGNATURE: &[u8; 8] = b"OTEL_CTX";
pub const VERSION: u32 = 2;
/// Readers reject larger payloads.
pub const MAX_PAYLOAD_SIZE: u32 = 64 * 1024;
/// The only `threadlocal.schema_version` readers accept today.
pub const SCHEMA_VERSION: &str = "tlsdesc_v1_dev";
pub const SCHEMA_VERSION_KEY: &str = "threadlocal.schema_version";
pub const KEY_MAP_KEY: &str = "threadlocal.attribute_key_map";
/// The key map has at most this many entries (key indexes are one byte).
pub const MAX_KEYS: usize = 256;

pub mod proto {
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
        #[prost(oneof = "any_value::Value", tags = "1, 2, 3, 4, 5, 6, 7")]
        pub value: Option<any_value::Value>,
    }

    pub mod any_value {
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Value {
            #[prost(string, tag = "1")]
            StringValue(String),
            #[prost(bool, tag = "2")]
            BoolValue(bool),
            #[prost(int64, tag = "3")]
            IntValue(i64),
            #[prost(double, tag = "4")]
            DoubleValue(f64),
            #[prost(message, tag = "5")]
            ArrayValue(super::ArrayValue),
            #[prost(message, tag = "6")]
            KvlistValue(super::KeyValueList),
            #[prost(bytes = "vec", tag = "7")]
            BytesValue(Vec<u8>),
        }
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ArrayValue {
        #[prost(message, repeated, tag = "1")]
        pub values: Vec<AnyValue>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KeyValueList {
        #[prost(message, repeated, tag = "1")]
        pub values: Vec<KeyValue>,
    }
}

/// A CLOCK_BOOTTIME reading in seconds, to the nanosecond.
pub fn seconds(ns: u64) -> String {
    format!("{}.{:09}s", ns / 1_000_000_000, ns % 1_000_000_000)
}

/// The header error a retry may cure: a writer is updating the context.
pub const BEING_UPDATED: &str = "published_at is 0: unpublished or being updated";

/// A header that passed the checks (JSON: the two fields a reader of the output needs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Header {
    #[serde(skip)]
    pub version: u32,
    pub published_at_ns: u64,
    pub payload_size: u32,
    #[serde(skip)]
    pub payload_ptr: u64,
}

impl Header {
    /// The fields after the signature, unchecked.
    pub fn fields(b: &[u8; HEADER_SIZE]) -> Header {
        let u32_at = |o: usize| u32::from_ne_bytes(b[o..o + 4].try_into().expect("4 bytes"));
        let u64_at = |o: usize| u64::from_ne_bytes(b[o..o + 8].try_into().expect("8 bytes"));
        Header {
            version: u32_at(8),
            payload_size: u32_at(12),
            published_at_ns: u64_at(16),
            payload_ptr: u64_at(24),
        }
    }

    /// Checks a header as readers do, saying what is wrong.
    pub fn parse(b: &[u8]) -> Result<Header, String> {
        let b: &[u8; HEADER_SIZE] = b
            .first_chunk()
            .ok_or_else(|| format!("header is {} bytes, needs {HEADER_SIZE}", b.len()))?;
        let h = Header::fields(b);
        let n = h.payload_size;
        Err(match h {
            _ if &b[..8] != SIGNATURE => format!("bad signature {:?}", String::from_utf8_lossy(&b[..8])),
            _ if h.version != VERSION => format!("unsupported version {} (expected {VERSION})", h.version),
            _ if n == 0 => "payload_size is 0".into(),
            _ if n > MAX_PAYLOAD_SIZE => {
                format!("payload_size {n} exceeds the {MAX_PAYLOAD_SIZE}-byte limit; not trusted")
            }
            _ if h.published_at_ns == 0 => BEING_UPDATED.into(),
            _ if h.payload_ptr == 0 => "payload pointer is NULL".into(),
            _ => return Ok(h),
        })
    }
}

/// An attribute value, as decoded (JSON: its natural form; bytes as hex).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value {
    Empty,
    Str(String),
    Bool(bool),
    Int(i64),
    #[serde(serialize_with = "ser::double")]
    Double(f64),
    Array(Vec<Value>),
    #[serde(serialize_with = "ser::key_values")]
    KvList(Vec<(String, Value)>),
    #[serde(serialize_with = "ser::bytes")]
    Bytes(Vec<u8>),
}

impl Value {
    fn from_proto(v: Option<proto::AnyValue>) -> Value {
        use proto::any_value::Value as V;
        match v.and_then(|v| v.value) {
            None => Value::Empty,
            Some(V::StringValue(s)) => Value::Str(s),
            Some(V::BoolValue(b)) => Value::Bool(b),
            Some(V::IntValue(i)) => Value::Int(i),
            Some(V::DoubleValue(d)) => Value::Double(d),
            Some(V::ArrayValue(a)) => Value::Array(a.values.into_iter().map(|v| Value::from_proto(Some(v))).collect()),
            Some(V::KvlistValue(l)) => Value::KvList(convert(l.values)),
            Some(V::BytesValue(b)) => Value::Bytes(b),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Empty => write!(f, "(empty)"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Double(d) => write!(f, "{d}"),
            Value::Array(items) => write!(f, "[{}]", joined(items.iter().map(ToString::to_string))),
            Value::KvList(items) => write!(f, "{{{}}}", joined(items.iter().map(|(k, v)| format!("{k:?}: {v}")))),
            Value::Bytes(b) => write!(f, "0x{}", crate::record::hex(b)),
        }
    }
}

fn joined(items: impl Iterator<Item = String>) -> String {
    items.collect::<Vec<_>>().join(", ")
}

fn convert(kvs: Vec<proto::KeyValue>) -> Vec<(String, Value)> {
    kvs.into_iter()
        .map(|kv| (kv.key, Value::from_proto(kv.value)))
        .collect()
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProcessContext {
    #[serde(serialize_with = "ser::key_values")]
    pub resource: Vec<(String, Value)>,
    /// Every entry of `ProcessContext.attributes`, the two threadlocal ones included.
    #[serde(serialize_with = "ser::key_values")]
    pub attributes: Vec<(String, Value)>,
    /// `threadlocal.schema_version`, if present and a string.
    pub schema_version: Option<String>,
    /// `threadlocal.attribute_key_map`, if present and well formed: position = key index.
    /// Entries that are not strings are `None`.
    #[serde(rename = "attribute_key_map")]
    pub key_map: Option<Vec<Option<String>>>,
    /// What is wrong with the threadlocal attributes, in words.
    pub problems: Vec<String>,
}

impl ProcessContext {
    /// The name of key index `i`, if the key map has one and the schema version is one this
    /// reader understands.
    pub fn key_name(&self, i: u8) -> Option<&str> {
        if self.schema_version.as_deref() != Some(SCHEMA_VERSION) {
            return None;
        }
        self.key_map.as_ref()?.get(usize::from(i))?.as_deref()
    }
}

/// Decodes a payload; never trusts it beyond the protobuf decoder's checks.
pub fn decode_payload(bytes: &[u8]) -> Result<ProcessContext, String> {
    if bytes.len() > MAX_PAYLOAD_SIZE as usize {
        let n = bytes.len();
        return Err(format!(
            "malformed payload: {n} bytes exceeds the {MAX_PAYLOAD_SIZE}-byte limit"
        ));
    }
    let msg =
        <proto::ProcessContext as prost::Message>::decode(bytes).map_err(|e| format!("malformed payload: {e}"))?;
    let resource = msg.resource.map(|r| convert(r.attributes)).unwrap_or_default();
    let attributes = convert(msg.attributes);
    let mut problems = Vec::new();
    let mut schema_version = None;
    let mut key_map = None;
    for (key, value) in &attributes {
        match (key.as_str(), value) {
            (SCHEMA_VERSION_KEY, Value::Str(s)) => {
                if s != SCHEMA_VERSION {
                    problems.push(format!(
                        "{SCHEMA_VERSION_KEY} is {s:?}; this reader understands {SCHEMA_VERSION:?} only, so attribute names are not used"
                    ));
                }
                schema_version = Some(s.clone());
            }
            (SCHEMA_VERSION_KEY, other) => problems.push(format!("{SCHEMA_VERSION_KEY} is not a string: {other}")),
            (KEY_MAP_KEY, Value::Array(items)) => {
                let map = items.iter().enumerate().map(|(i, item)| match item {
                    Value::Str(s) => Some(s.clone()),
                    other => {
                        problems.push(format!("{KEY_MAP_KEY}[{i}] is not a string: {other}"));
                        None
                    }
                });
                key_map = Some(map.collect());
                if items.len() > MAX_KEYS {
                    let n = items.len();
                    problems.push(format!(
                        "{KEY_MAP_KEY} has {n} entries; only the first {MAX_KEYS} are addressable"
                    ));
                }
            }
            (KEY_MAP_KEY, other) => problems.push(format!("{KEY_MAP_KEY} is not an array: {other}")),
            _ => {}
        }
    }
    for (absent, key) in [
        (schema_version.is_none(), SCHEMA_VERSION_KEY),
        (key_map.is_none(), KEY_MAP_KEY),
    ] {
        if absent {
            problems.push(format!("no {key}: thread attributes are shown by key index"));
        }
    }
    Ok(ProcessContext {
        resource,
        attributes,
        schema_version,
        key_map,
        problems,
    })
}

/// The names a process-context mapping shows in `/proc/PID/maps`, the set the eBPF profiler
/// accepts (a memfd, or a mapping named with `PR_SET_VMA_ANON_NAME`: see the README).
pub const CONTEXT_MAPPING_NAMES: [&str; 4] = [
    "/memfd:OTEL_CTX (deleted)",
    "/memfd:OTEL_CTX",
    "[anon_shmem:OTEL_CTX]",
    "[anon:OTEL_CTX]",
];

/// Does a `/proc/PID/maps` line describe a process-context mapping?
pub fn is_context_mapping(path: &str, perms: &str) -> bool {
    is_context_name(path) && !perms.contains('x')
}

/// Is this a process-context mapping's name (whatever its permissions)?
pub fn is_context_name(path: &str) -> bool {
    CONTEXT_MAPPING_NAMES.contains(&path)
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum ContextStatus {
    Absent,
    Invalid {
        mapping: String,
        #[serde(rename = "address", serialize_with = "ser::address")]
        addr: u64,
        error: String,
    },
    Present {
        mapping: String,
        #[serde(rename = "address", serialize_with = "ser::address")]
        addr: u64,
        #[serde(flatten)]
        header: Header,
        #[serde(flatten)]
        context: ProcessContext,
    },
}

impl ContextStatus {
    pub fn context(&self) -> Option<&ProcessContext> {
        match self {
            ContextStatus::Present { context, .. } => Some(context),
            _ => None,
        }
    }

    /// Where the context read was (consistently or not).
    pub fn addr(&self) -> Option<u64> {
        match self {
            ContextStatus::Present { addr, .. } | ContextStatus::Invalid { addr, .. } => Some(*addr),
            ContextStatus::Absent => None,
        }
    }
}

/// At most this many mappings named like a process context are read: a process has one (more
/// is a writer's bug the checker reports), and a hostile process may have thousands.
pub const MAX_CANDIDATES: usize = 8;
/// Times a read waits 2 ms for a writer to finish an update, for the whole read (all candidates).
pub const RETRIES: u32 = 5;

/// Finds and reads the process context: bounded work (see [`MAX_CANDIDATES`], [`RETRIES`]), and
/// it gives up as soon as `cancelled()` says so.
pub fn read_process_context(maps: &[Mapping], mem: &dyn Memory, cancelled: &dyn Fn() -> bool) -> ContextStatus {
    let mut status = ContextStatus::Absent;
    let mut retries = RETRIES;
    let candidates = maps.iter().filter(|m| is_context_mapping(&m.path, &m.perms));
    for m in candidates.take(MAX_CANDIDATES) {
        let (mapping, addr) = (m.path.clone(), m.start);
        status = match read_context_at(mem, m, &mut retries, cancelled) {
            Ok((header, context)) => {
                return ContextStatus::Present {
                    mapping,
                    addr,
                    header,
                    context,
                }
            }
            Err(error) => ContextStatus::Invalid { mapping, addr, error },
        };
        if cancelled() {
            break;
        }
    }
    status
}

fn read_context_at(
    mem: &dyn Memory,
    m: &Mapping,
    retries: &mut u32,
    cancelled: &dyn Fn() -> bool,
) -> Result<(Header, ProcessContext), String> {
    if m.end - m.start < HEADER_SIZE as u64 {
        return Err("mapping is smaller than the header".into());
    }
    let read_head = || {
        let mut head = [0u8; HEADER_SIZE];
        mem.read(m.start, &mut head).map(|()| head)
    };
    // A writer may update it while we read: retry while it is unpublished or changes under us,
    // as long as the read's retries last.
    loop {
        let head = read_head().map_err(|e| format!("reading the header: {e}"))?;
        let why = match Header::parse(&head) {
            Err(e) if e == BEING_UPDATED => e,
            header => {
                let header = header?;
                let (size, at) = (header.payload_size, header.payload_ptr);
                let mut payload = vec![0u8; size as usize];
                let e = |e| format!("reading the {size}-byte payload at {at:#x}: {e}");
                mem.read(at, &mut payload).map_err(e)?;
                if read_head().ok() == Some(head) {
                    return Ok((header, decode_payload(&payload)?));
                }
                "changed while being read".to_owned()
            }
        };
        if *retries == 0 || cancelled() {
            return Err(why);
        }
        *retries -= 1;
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

#[cfg(test)]
mod tests {
    use super::proto::*;
    use super::*;
    use prost::Message;

    fn kv(key: &str, v: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(v) }),
        }
    }

    fn strs(items: &[&str]) -> any_value::Value {
        any_value::Value::ArrayValue(ArrayValue {
            values: items
                .iter()
                .map(|s| AnyValue {
                    value: Some(any_value::Value::StringValue((*s).into())),
                })
                .collect(),
        })
    }

    pub(crate) fn header(version: u32, size: u32, at: u64, ptr: u64) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(SIGNATURE);
        b.extend_from_slice(&version.to_ne_bytes());
        b.extend_from_slice(&size.to_ne_bytes());
        b.extend_from_slice(&at.to_ne_bytes());
        b.extend_from_slice(&ptr.to_ne_bytes());
        b
    }

    #[test]
    fn header_checks() {
        assert!(Header::parse(&header(2, 10, 5, 0x1000)).is_ok());
        let err = |b: &[u8]| Header::parse(b).unwrap_err();
        assert_eq!(err(&header(1, 10, 5, 0x1000)), "unsupported version 1 (expected 2)");
        assert_eq!(err(&header(2, 0, 5, 0x1000)), "payload_size is 0");
        assert!(err(&header(2, 65537, 5, 0x1000)).starts_with("payload_size 65537 exceeds the 65536-byte limit"));
        assert_eq!(err(&header(2, 10, 0, 0x1000)), BEING_UPDATED);
        assert_eq!(err(&header(2, 10, 5, 0)), "payload pointer is NULL");
        assert_eq!(err(&header(2, 10, 5, 0)[..31]), "header is 31 bytes, needs 32");
        let mut bad = header(2, 10, 5, 1);
        bad[0] = b'X';
        assert!(err(&bad).starts_with("bad signature"));
    }

    #[test]
    fn decodes_resource_schema_and_key_map() {
        let msg = super::proto::ProcessContext {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", any_value::Value::StringValue("checkout".into())),
                    kv("pid", any_value::Value::IntValue(42)),
                ],
            }),
            attributes: vec![
                kv(SCHEMA_VERSION_KEY, any_value::Value::StringValue(SCHEMA_VERSION.into())),
                kv(KEY_MAP_KEY, strs(&["http_route", "http_method"])),
            ],
        };
        let pc = decode_payload(&msg.encode_to_vec()).unwrap();
        assert_eq!(
            pc.resource[0],
            ("service.name".to_string(), Value::Str("checkout".into()))
        );
        assert_eq!(pc.resource[1].1, Value::Int(42));
        assert_eq!(pc.key_name(1), Some("http_method"));
        assert_eq!(pc.key_name(2), None);
        assert!(pc.problems.is_empty(), "{:?}", pc.problems);
    }

    #[test]
    fn unknown_schema_version_disables_names() {
        let msg = super::proto::ProcessContext {
            resource: None,
            attributes: vec![
                kv(SCHEMA_VERSION_KEY, any_value::Value::StringValue("v9".into())),
                kv(KEY_MAP_KEY, strs(&["a"])),
            ],
        };
        let pc = decode_payload(&msg.encode_to_vec()).unwrap();
        assert_eq!(pc.key_name(0), None);
        assert!(pc.problems[0].contains("v9"));
    }

    #[test]
    fn key_map_of_wrong_type_is_a_problem() {
        let msg = super::proto::ProcessContext {
            resource: None,
            attributes: vec![kv(KEY_MAP_KEY, any_value::Value::IntValue(3))],
        };
        let pc = decode_payload(&msg.encode_to_vec()).unwrap();
        assert!(pc.key_map.is_none());
        assert!(pc.problems.iter().any(|p| p.contains("not an array")));
    }

    #[test]
    fn truncated_and_invalid_payloads_are_errors() {
        let msg = super::proto::ProcessContext {
            resource: Some(Resource {
                attributes: vec![kv("k", any_value::Value::StringValue("value".into()))],
            }),
            attributes: vec![],
        };
        let bytes = msg.encode_to_vec();
        for cut in 1..bytes.len() {
            assert!(decode_payload(&bytes[..cut]).is_err(), "cut at {cut} decoded");
        }
        // The same message with the value's bytes replaced by invalid UTF-8.
        let mut bad = bytes.clone();
        let n = bad.len();
        bad[n - 1] = 0xff;
        assert!(decode_payload(&bad).is_err());
    }

    #[test]
    fn mapping_names() {
        assert!(is_context_mapping("[anon:OTEL_CTX]", "rw-p"));
        assert!(is_context_mapping("[anon_shmem:OTEL_CTX]", "r--s"));
        assert!(is_context_mapping("/memfd:OTEL_CTX (deleted)", "rw-p"));
        assert!(!is_context_mapping("/memfd:OTEL_CTX (deleted)", "r-xp"));
        assert!(!is_context_mapping("[anon:OTHER]", "rw-p"));
    }

    /// The eBPF profiler also takes a memfd name without " (deleted)"; a reader that does not
    /// would miss a context the profiler sees.
    #[test]
    fn bare_memfd_name_is_a_context_mapping() {
        assert!(is_context_mapping("/memfd:OTEL_CTX", "rw-p"));
        assert!(!is_context_mapping("/memfd:OTEL_CTX", "r-xp"));
        assert!(!is_context_mapping("/memfd:OTEL_CTX2", "rw-p"));
    }

    #[test]
    fn process_context_from_memory() {
        use prost::Message;
        let payload = proto::ProcessContext {
            resource: Some(proto::Resource {
                attributes: vec![proto::KeyValue {
                    key: "service.name".into(),
                    value: Some(proto::AnyValue {
                        value: Some(proto::any_value::Value::StringValue("svc".into())),
                    }),
                }],
            }),
            attributes: vec![],
        }
        .encode_to_vec();
        let mut head = b"OTEL_CTX".to_vec();
        head.extend_from_slice(&2u32.to_ne_bytes());
        head.extend_from_slice(&(payload.len() as u32).to_ne_bytes());
        head.extend_from_slice(&77u64.to_ne_bytes());
        head.extend_from_slice(&0x20000u64.to_ne_bytes());
        let map = |path: &str| Mapping {
            start: 0x10000,
            end: 0x11000,
            perms: "rw-p".into(),
            offset: 0,
            dev: "00:01".into(),
            inode: 1,
            path: path.into(),
        };
        let mem = vec![(0x10000, head.clone()), (0x20000, payload)];
        match read_process_context(&[map("/memfd:OTEL_CTX (deleted)")], &mem, &|| false) {
            ContextStatus::Present { header, context, .. } => {
                assert_eq!(header.published_at_ns, 77);
                assert_eq!(context.resource[0].1, Value::Str("svc".into()));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            read_process_context(&[map("[anon:OTHER]")], &mem, &|| false),
            ContextStatus::Absent
        ));
        // A payload pointer into nothing is reported, not trusted.
        let mut bad = head;
        bad[24..32].copy_from_slice(&0x30000u64.to_ne_bytes());
        let mem = vec![(0x10000, bad)];
        assert!(matches!(
            read_process_context(&[map("[anon:OTEL_CTX]")], &mem, &|| false),
            ContextStatus::Invalid { .. }
        ));
    }

    fn context_mappings(n: u64) -> Vec<Mapping> {
        (0..n)
            .map(|i| Mapping {
                start: 0x10000 + i * 0x1000,
                end: 0x11000 + i * 0x1000,
                perms: "rw-p".into(),
                offset: 0,
                dev: "00:01".into(),
                inode: i,
                path: "/memfd:OTEL_CTX (deleted)".into(),
            })
            .collect()
    }

    /// Memory where every page holds a header "being updated" (timestamp 0); counts reads.
    struct AlwaysUpdating(std::cell::Cell<u32>);

    impl Memory for AlwaysUpdating {
        fn read(&self, _: u64, buf: &mut [u8]) -> std::io::Result<()> {
            self.0.set(self.0.get() + 1);
            let h = header(2, 10, 0, 0x1000);
            buf.copy_from_slice(&h[..buf.len()]);
            Ok(())
        }
    }

    /// Thousands of mappings "being updated" cost one retry budget, not 10 ms each.
    #[test]
    fn thousands_of_mappings_being_updated_cost_one_retry_budget() {
        let mem = AlwaysUpdating(Default::default());
        let start = std::time::Instant::now();
        let status = read_process_context(&context_mappings(5000), &mem, &|| false);
        assert!(
            start.elapsed() < std::time::Duration::from_millis(500),
            "{:?}",
            start.elapsed()
        );
        assert!(
            matches!(status, ContextStatus::Invalid { ref error, .. } if error == BEING_UPDATED),
            "{status:?}"
        );
        // Each candidate is read at least once, the retries are shared: bounded reads.
        let reads = mem.0.get() as usize;
        assert_eq!(reads, MAX_CANDIDATES + RETRIES as usize);
    }

    #[test]
    fn a_cancelled_read_stops_at_once() {
        let mem = AlwaysUpdating(Default::default());
        let status = read_process_context(&context_mappings(5000), &mem, &|| true);
        assert!(matches!(status, ContextStatus::Invalid { .. }), "{status:?}");
        assert_eq!(mem.0.get(), 1, "one header read, no retry, no other mapping");
    }

    /// Control: one mapping whose writer finishes its update is read after a retry.
    #[test]
    fn a_retry_sees_a_finished_update() {
        struct Finishing(std::cell::Cell<u32>, Vec<u8>);
        impl Memory for Finishing {
            fn read(&self, addr: u64, buf: &mut [u8]) -> std::io::Result<()> {
                let n = self.0.get();
                self.0.set(n + 1);
                if addr == 0x20000 {
                    buf.copy_from_slice(&self.1[..buf.len()]);
                } else {
                    let h = header(2, self.1.len() as u32, if n == 0 { 0 } else { 9 }, 0x20000);
                    buf.copy_from_slice(&h[..buf.len()]);
                }
                Ok(())
            }
        }
        let payload = super::proto::ProcessContext {
            resource: None,
            attributes: vec![kv(
                SCHEMA_VERSION_KEY,
                any_value::Value::StringValue(SCHEMA_VERSION.into()),
            )],
        }
        .encode_to_vec();
        let mem = Finishing(Default::default(), payload);
        let status = read_process_context(&context_mappings(1), &mem, &|| false);
        assert!(matches!(status, ContextStatus::Present { .. }), "{status:?}");
    }
}
