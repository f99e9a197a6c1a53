//! The JSON rendering: serde views of a snapshot. Their field names and order are the output's
//! contract (scripts and tests read them); fields may be added, never removed.

use crate::elf::SYMBOL;
use crate::inspect::{ContextStatus, Module, Resolution, SlotRead, Snapshot, ThreadProblem};
use crate::output::{self, EntryBody, ThreadEntry};
use crate::process_context::Value;
use crate::record::{hex, Record};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::Serialize;
use std::io::{self, Write};

/// serde_json's formatter, also escaping what acts on a terminal but is valid raw in JSON: DEL,
/// C1 controls, bidirectional overrides, U+2028/U+2029.
struct TerminalSafe;

impl serde_json::ser::Formatter for TerminalSafe {
    fn write_string_fragment<W: ?Sized + Write>(&mut self, w: &mut W, fragment: &str) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if output::is_terminal_control(c) || matches!(c, '\u{2028}' | '\u{2029}') {
                w.write_all(&fragment.as_bytes()[start..i])?;
                write!(w, "\\u{:04x}", c as u32)?;
                start = i + c.len_utf8();
            }
        }
        w.write_all(&fragment.as_bytes()[start..])
    }
}

/// One JSON text, without a newline.
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> String {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, TerminalSafe);
    value
        .serialize(&mut ser)
        .expect("the views serialise to memory without error");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// An address, as a `0x…` string (JSON numbers lose precision past 2^53).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hex(pub u64);

impl Serialize for Hex {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{:#x}", self.0))
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Empty => s.serialize_unit(),
            Value::Str(v) => s.serialize_str(v),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::Double(d) if d.is_finite() => s.serialize_f64(*d),
            // JSON has no NaN or infinity: say it in a string.
            Value::Double(d) => s.collect_str(d),
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for v in items {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            Value::KvList(items) => Kvs(items).serialize(s),
            Value::Bytes(b) => s.serialize_str(&hex(b)),
        }
    }
}

/// Key/value pairs as one JSON object, in their order (a repeated key is repeated).
pub struct Kvs<'a>(pub &'a [(String, Value)]);

impl Serialize for Kvs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

#[derive(Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum ContextJson<'a> {
    Absent,
    Invalid {
        mapping: &'a str,
        address: Hex,
        error: &'a str,
    },
    Present {
        mapping: &'a str,
        address: Hex,
        published_at_ns: u64,
        payload_size: u32,
        resource: Kvs<'a>,
        attributes: Kvs<'a>,
        schema_version: Option<&'a str>,
        attribute_key_map: Option<Vec<Option<&'a str>>>,
        problems: &'a [String],
    },
}

impl<'a> ContextJson<'a> {
    pub fn new(status: &'a ContextStatus) -> ContextJson<'a> {
        match status {
            ContextStatus::Absent => ContextJson::Absent,
            ContextStatus::Invalid { mapping, addr, error } => ContextJson::Invalid {
                mapping,
                address: Hex(*addr),
                error,
            },
            ContextStatus::Present {
                mapping,
                addr,
                header,
                context,
            } => ContextJson::Present {
                mapping,
                address: Hex(*addr),
                published_at_ns: header.published_at_ns,
                payload_size: header.payload_size,
                resource: Kvs(&context.resource),
                attributes: Kvs(&context.attributes),
                schema_version: context.schema_version.as_deref(),
                attribute_key_map: context
                    .key_map
                    .as_ref()
                    .map(|m| m.iter().map(Option::as_deref).collect()),
                problems: &context.problems,
            },
        }
    }
}

#[derive(Serialize)]
pub struct ModuleJson<'a> {
    path: &'a str,
    access_model: String,
    load_bias: Hex,
    symbol_offset: u64,
    main_executable: bool,
    /// "static", "dynamic", or null (then `error` says why).
    resolution: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tp_offset: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_module_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_offset: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    warnings: Vec<String>,
}

impl<'a> ModuleJson<'a> {
    pub fn new(m: &'a Module) -> ModuleJson<'a> {
        let mut j = ModuleJson {
            path: &m.path,
            access_model: m.model.to_string(),
            load_bias: Hex(m.load_bias),
            symbol_offset: m.export.st_value,
            main_executable: m.is_main_executable,
            resolution: None,
            tp_offset: None,
            tls_module_id: None,
            tls_offset: None,
            error: None,
            warnings: m.warnings(),
        };
        match &m.resolution {
            Ok(Resolution::StaticOffset(o)) => {
                j.resolution = Some("static");
                j.tp_offset = Some(*o);
            }
            Ok(Resolution::Dynamic { module_id, offset, .. }) => {
                j.resolution = Some("dynamic");
                j.tls_module_id = Some(*module_id);
                j.tls_offset = Some(*offset);
            }
            Err(e) => j.error = Some(e),
        }
        j
    }
}

#[derive(Serialize)]
struct AttributeJson<'a> {
    index: u8,
    key: Option<&'a str>,
    value: &'a str,
    invalid_utf8: bool,
}

#[derive(Serialize)]
struct RecordJson<'a> {
    trace_id: String,
    span_id: String,
    flags: u8,
    valid: u8,
    attrs_data_size: u16,
    attributes: Vec<AttributeJson<'a>>,
    truncated: Option<String>,
}

impl<'a> RecordJson<'a> {
    fn new(s: &'a Snapshot, record: &'a Record) -> RecordJson<'a> {
        RecordJson {
            trace_id: hex(&record.header.trace_id),
            span_id: hex(&record.header.span_id),
            flags: record.header.trace_flags,
            valid: record.header.valid,
            attrs_data_size: record.header.attrs_data_size,
            attributes: record
                .attributes
                .iter()
                .map(|a| AttributeJson {
                    index: a.key_index,
                    key: s.key_name(a.key_index),
                    value: &a.value,
                    invalid_utf8: a.invalid_utf8,
                })
                .collect(),
            truncated: record.truncated.as_ref().map(ToString::to_string),
        }
    }
}

/// One thread entry: a thread-level problem, "no_module", or one module's read.
#[derive(Serialize)]
pub struct ThreadJson<'a> {
    tid: i32,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    module: Option<usize>,
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tracer_pid: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tracer_tid: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    record_address: Option<Hex>,
    #[serde(flatten)]
    record: Option<RecordJson<'a>>,
}

impl<'a> ThreadJson<'a> {
    pub fn new(s: &'a Snapshot, e: &'a ThreadEntry) -> ThreadJson<'a> {
        let mut j = ThreadJson {
            tid: e.tid,
            name: &e.name,
            module: None,
            state: "error",
            reason: None,
            detail: None,
            tracer_pid: None,
            tracer_tid: None,
            record_address: None,
            record: None,
        };
        match &e.body {
            EntryBody::Problem(p) => {
                j.reason = Some(p.reason());
                j.detail = Some(p.to_string());
                if let ThreadProblem::TracedBy(t) = p {
                    j.tracer_pid = Some(t.pid);
                    j.tracer_tid = Some(t.tid);
                }
            }
            EntryBody::NoModule => j.state = "no_module",
            EntryBody::Read { module, read } => {
                j.module = Some(*module);
                j.state = output::state_word(read);
                match read {
                    SlotRead::NoSlot(d) | SlotRead::Error(d) => j.detail = Some(d.clone()),
                    SlotRead::NoContext => {}
                    SlotRead::Record { addr, record } => {
                        j.record_address = Some(Hex(*addr));
                        j.record = Some(RecordJson::new(s, record));
                    }
                }
            }
        }
        j
    }
}

#[derive(Serialize)]
struct SnapshotJson<'a> {
    pid: i32,
    command: &'a str,
    symbol: &'static str,
    process_context: ContextJson<'a>,
    modules: Vec<ModuleJson<'a>>,
    module_errors: &'a [String],
    threads: Vec<ThreadJson<'a>>,
    exit_code: i32,
}

/// The whole snapshot as one JSON object.
pub fn snapshot(s: &Snapshot, entries: &[ThreadEntry]) -> String {
    to_string(&SnapshotJson {
        pid: s.pid,
        command: &s.command,
        symbol: SYMBOL,
        process_context: ContextJson::new(&s.process_context),
        modules: s.modules.iter().map(ModuleJson::new).collect(),
        module_errors: &s.module_errors,
        threads: entries.iter().map(|e| ThreadJson::new(s, e)).collect(),
        exit_code: output::exit_code(s),
    })
}

/// What a `--watch` line is about.
#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WatchItem<'a> {
    ProcessContext {
        process_context: ContextJson<'a>,
    },
    Module {
        module: ModuleJson<'a>,
    },
    Thread(ThreadJson<'a>),
    #[serde(rename = "thread")]
    ThreadGone {
        tid: i32,
    },
    Process {
        state: &'static str,
    },
}

/// One `--watch` line: when, what happened ("new", "changed", "gone") and to what.
#[derive(Serialize)]
pub struct WatchLine<'a> {
    pub elapsed_s: f64,
    pub event: &'static str,
    #[serde(flatten)]
    pub item: WatchItem<'a>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_for_terminals_too() {
        assert_eq!(to_string("plain"), r#""plain""#);
        assert_eq!(to_string("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(to_string("line\nnext\ttab\u{1}"), r#""line\nnext\ttab\u0001""#);
        assert_eq!(to_string("é\u{2028}"), "\"é\\u2028\"");
        assert_eq!(to_string("del\u{7f}csi\u{9b}\u{1b}"), r#""del\u007fcsi\u009b\u001b""#);
    }

    #[test]
    fn values() {
        assert_eq!(to_string(&Value::Double(f64::NAN)), r#""NaN""#);
        assert_eq!(to_string(&Value::Double(1.5)), "1.5");
        assert_eq!(
            to_string(&Value::Array(vec![Value::Int(-3), Value::Bool(true), Value::Empty])),
            "[-3,true,null]"
        );
        assert_eq!(
            to_string(&Value::KvList(vec![("k".into(), Value::Bytes(vec![1, 255]))])),
            r#"{"k":"01ff"}"#
        );
    }

    #[test]
    fn watch_lines_keep_their_shape() {
        let line = WatchLine {
            elapsed_s: 1.5,
            event: "gone",
            item: WatchItem::ThreadGone { tid: 7 },
        };
        assert_eq!(
            to_string(&line),
            r#"{"elapsed_s":1.5,"event":"gone","kind":"thread","tid":7}"#
        );
        let line = WatchLine {
            elapsed_s: 0.25,
            event: "new",
            item: WatchItem::ProcessContext {
                process_context: ContextJson::Absent,
            },
        };
        assert_eq!(
            to_string(&line),
            r#"{"elapsed_s":0.25,"event":"new","kind":"process_context","process_context":{"status":"absent"}}"#
        );
    }
}
