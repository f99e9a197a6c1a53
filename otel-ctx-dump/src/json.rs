//! The JSON rendering: what the snapshot types' derived `Serialize` does not give. Field names and
//! order are the output's contract (scripts and tests read them); fields may be added, never removed.

use crate::check::{self, Finding};
use crate::elf::SYMBOL;
use crate::escape::is_terminal_control;
use crate::inspect::{Module, Resolution, Row, RowBody, SlotRead, Snapshot, ThreadProblem};
use crate::output;
use crate::record::hex;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use std::io::{self, Write};

/// serde_json's formatter, also escaping what acts on a terminal but is valid raw in JSON: DEL,
/// C1 controls, bidirectional overrides, U+2028/U+2029 (see [`crate::escape`]).
struct TerminalSafe;

impl serde_json::ser::Formatter for TerminalSafe {
    fn write_string_fragment<W: ?Sized + Write>(&mut self, w: &mut W, fragment: &str) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if is_terminal_control(c) {
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
    value.serialize(&mut ser).expect("serialising to memory cannot fail");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

impl Serialize for Snapshot {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let rows: Vec<Row> = self.threads.iter().flat_map(|t| t.rows()).collect();
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("pid", &self.pid)?;
        m.serialize_entry("command", &self.command)?;
        m.serialize_entry("symbol", SYMBOL)?;
        m.serialize_entry("process_context", &self.process_context)?;
        m.serialize_entry("modules", &self.modules)?;
        m.serialize_entry("module_errors", &self.module_errors)?;
        m.serialize_entry("threads", &rows)?;
        m.serialize_entry("exit_code", &output::exit_code(self))?;
        m.end()
    }
}

/// `resolution` is "static", "dynamic", or null (then `error` says why).
impl Serialize for Module {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("path", &self.path)?;
        m.serialize_entry("access_model", &self.model.to_string())?;
        m.serialize_entry("load_bias", &format!("{:#x}", self.load_bias))?;
        m.serialize_entry("symbol_offset", &self.export.st_value)?;
        m.serialize_entry("main_executable", &self.is_main_executable)?;
        match &self.resolution {
            Ok(Resolution::StaticOffset(o)) => {
                m.serialize_entry("resolution", "static")?;
                m.serialize_entry("tp_offset", o)?;
            }
            Ok(Resolution::Dynamic { module_id, offset, .. }) => {
                m.serialize_entry("resolution", "dynamic")?;
                m.serialize_entry("tls_module_id", module_id)?;
                m.serialize_entry("tls_offset", offset)?;
            }
            Err(e) => {
                m.serialize_entry("resolution", &None::<&str>)?;
                m.serialize_entry("error", e)?;
            }
        }
        m.serialize_entry("warnings", &self.warnings())?;
        m.end()
    }
}

impl Serialize for Row<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("tid", &self.tid)?;
        m.serialize_entry("name", self.name)?;
        match self.body {
            RowBody::Problem(p) => {
                m.serialize_entry("state", "error")?;
                let (reason, detail) = p.describe();
                m.serialize_entry("reason", reason)?;
                m.serialize_entry("detail", &detail)?;
                if let ThreadProblem::TracedBy { pid, tid, .. } = p {
                    m.serialize_entry("tracer_pid", pid)?;
                    m.serialize_entry("tracer_tid", tid)?;
                }
            }
            RowBody::NoModule => m.serialize_entry("state", "no_module")?,
            RowBody::Read(module, read) => {
                m.serialize_entry("module", &module)?;
                m.serialize_entry("state", output::state_word(read))?;
                match read {
                    SlotRead::NoSlot(d) | SlotRead::Error(d) => m.serialize_entry("detail", d)?,
                    SlotRead::NoContext => {}
                    SlotRead::Record { addr, record } => {
                        let h = &record.header;
                        m.serialize_entry("record_address", &format!("{addr:#x}"))?;
                        m.serialize_entry("trace_id", &hex(&h.trace_id))?;
                        m.serialize_entry("span_id", &hex(&h.span_id))?;
                        m.serialize_entry("flags", &h.trace_flags)?;
                        m.serialize_entry("valid", &h.valid)?;
                        m.serialize_entry("attrs_data_size", &h.attrs_data_size)?;
                        m.serialize_entry("attributes", &record.attributes)?;
                        m.serialize_entry("truncated", &record.truncated)?;
                    }
                }
            }
        }
        m.end()
    }
}

/// A check as one JSON object: the process, every finding, the counts and the exit code.
pub fn check_report(s: &Snapshot, findings: &[Finding]) -> String {
    #[derive(Serialize)]
    struct Report<'a> {
        pid: i32,
        command: &'a str,
        checks: &'a [Finding],
        passed: usize,
        warned: usize,
        failed: usize,
        skipped: usize,
        exit_code: i32,
    }
    let [passed, skipped, warned, failed] = check::counts(findings);
    to_string(&Report {
        pid: s.pid,
        command: &s.command,
        checks: findings,
        passed,
        warned,
        failed,
        skipped,
        exit_code: check::exit_code(findings),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process_context::Value;

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
}
