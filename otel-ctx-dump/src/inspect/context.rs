//! Finding the process context mapping and copying a consistent header and payload, retrying
//! while a writer updates it.

use crate::json;
use crate::maps::{Mapping, Memory};
use crate::process_context::{self as pc, Header, ProcessContext};
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum ContextStatus {
    Absent,
    Invalid {
        mapping: String,
        #[serde(rename = "address", serialize_with = "json::address")]
        addr: u64,
        error: String,
    },
    Present {
        mapping: String,
        #[serde(rename = "address", serialize_with = "json::address")]
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
}

pub fn read_process_context(maps: &[Mapping], mem: &dyn Memory) -> ContextStatus {
    let mut status = ContextStatus::Absent;
    for m in maps.iter().filter(|m| pc::is_context_mapping(&m.path, &m.perms)) {
        let (mapping, addr) = (m.path.clone(), m.start);
        status = match read_context_at(mem, m) {
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
    }
    status
}

fn read_context_at(mem: &dyn Memory, m: &Mapping) -> Result<(Header, ProcessContext), String> {
    if m.end - m.start < pc::HEADER_SIZE as u64 {
        return Err("mapping is smaller than the header".into());
    }
    let read_head = || {
        let mut head = [0u8; pc::HEADER_SIZE];
        mem.read(m.start, &mut head).map(|()| head)
    };
    // A writer may update it while we read: retry while it is unpublished or changes under us.
    let mut last = String::new();
    for _ in 0..5 {
        let head = read_head().map_err(|e| format!("reading the header: {e}"))?;
        let header = match Header::parse(&head) {
            Err(e) if e == pc::BEING_UPDATED => {
                last = e;
                std::thread::sleep(std::time::Duration::from_millis(2));
                continue;
            }
            header => header?,
        };
        let (size, at) = (header.payload_size, header.payload_ptr);
        let mut payload = vec![0u8; size as usize];
        let e = |e| format!("reading the {size}-byte payload at {at:#x}: {e}");
        mem.read(at, &mut payload).map_err(e)?;
        if read_head().ok() != Some(head) {
            last = "changed while being read".into();
            continue;
        }
        return Ok((header, pc::decode_payload(&payload)?));
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_context_from_memory() {
        use prost::Message;
        let payload = pc::proto::ProcessContext {
            resource: Some(pc::proto::Resource {
                attributes: vec![pc::proto::KeyValue {
                    key: "service.name".into(),
                    value: Some(pc::proto::AnyValue {
                        value: Some(pc::proto::any_value::Value::StringValue("svc".into())),
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
        match read_process_context(&[map("/memfd:OTEL_CTX (deleted)")], &mem) {
            ContextStatus::Present { header, context, .. } => {
                assert_eq!(header.published_at_ns, 77);
                assert_eq!(context.resource[0].1, pc::Value::Str("svc".into()));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            read_process_context(&[map("[anon:OTHER]")], &mem),
            ContextStatus::Absent
        ));
        // A payload pointer into nothing is reported, not trusted.
        let mut bad = head;
        bad[24..32].copy_from_slice(&0x30000u64.to_ne_bytes());
        let mem = vec![(0x10000, bad)];
        assert!(matches!(
            read_process_context(&[map("[anon:OTEL_CTX]")], &mem),
            ContextStatus::Invalid { .. }
        ));
    }
}
