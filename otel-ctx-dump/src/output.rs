//! The text rendering of a snapshot (the JSON one builds on its exit codes and state words).

use crate::check::{self, Finding};
use crate::elf::SYMBOL;
pub use crate::escape::printable;
use crate::inspect::{ContextStatus, Module, Row, RowBody, SlotRead, Snapshot, ThreadProblem, ThreadReport};
use crate::process_context::{seconds, ProcessContext, Value, KEY_MAP_KEY, SCHEMA_VERSION_KEY};
use crate::record::hex;
use std::fmt::Write;

/// Exit codes of `otel-ctx-dump`, as `--help` documents them.
pub mod exit {
    pub const OK: i32 = 0;
    pub const FAILURE: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const NO_SUCH_PROCESS: i32 = 3;
    pub const PERMISSION_DENIED: i32 = 4;
    pub const NO_MODULE: i32 = 5;
    pub const NO_PROCESS_CONTEXT: i32 = 6;
    pub const INTERRUPTED: i32 = 130;
}

pub fn exit_code(s: &Snapshot) -> i32 {
    let denied = |t: &ThreadReport| t.error.as_ref().is_some_and(ThreadProblem::is_denied);
    if !s.threads.is_empty() && s.threads.iter().all(denied) {
        exit::PERMISSION_DENIED
    } else if s.modules.is_empty() {
        exit::NO_MODULE
    } else if s.process_context.context().is_none() {
        exit::NO_PROCESS_CONTEXT
    } else {
        exit::OK
    }
}

/// The state word of a slot read, shared by both renderings.
pub fn state_word(read: &SlotRead) -> &'static str {
    match read {
        SlotRead::NoSlot(_) => "no_slot",
        SlotRead::NoContext => "no_context",
        SlotRead::Record { record, .. } if record.header.is_idle() => "idle",
        SlotRead::Record { record, .. } if !record.is_valid() => "being_updated",
        SlotRead::Record { .. } => "active",
        SlotRead::Error(_) => "error",
    }
}

fn read_text(read: &SlotRead) -> String {
    let record = match read {
        SlotRead::NoSlot(d) => return format!("(no TLS slot yet: {d})"),
        SlotRead::NoContext => return "(no context)".into(),
        SlotRead::Error(e) => return format!("(error: {})", printable(e)),
        SlotRead::Record { record, .. } if !record.is_valid() && !record.header.is_idle() => {
            return format!("(being updated: valid={}, record not trusted)", record.header.valid)
        }
        SlotRead::Record { record, .. } => record,
    };
    let h = &record.header;
    let (trace, span) = if h.is_idle() {
        ("(attached, no active span)".into(), String::new())
    } else {
        (hex(&h.trace_id), hex(&h.span_id))
    };
    let mut line = format!("{trace:<32}  {span:<16}  {:02x}    ", h.trace_flags);
    for a in &record.attributes {
        let name = a.key.as_deref().map_or(format!("#{}", a.key_index).into(), printable);
        let bad = if a.invalid_utf8 { " (invalid UTF-8)" } else { "" };
        let _ = write!(line, " {name}={:?}{bad}", a.value);
    }
    if let Some(t) = &record.truncated {
        let _ = write!(line, " [truncated: {t}]");
    }
    line.trim_end().to_owned()
}

/// One row of a thread, after the indentation.
pub fn row_text(s: &Snapshot, row: &Row) -> String {
    let head = format!("{:<8} {:<16}", row.tid, printable(row.name));
    match row.body {
        RowBody::Problem(p) => format!("{head} (error: {})", printable(&p.describe().1)),
        RowBody::NoModule => format!("{head} (no module to read)"),
        RowBody::Read(_, read) if s.modules.len() <= 1 => format!("{head} {}", read_text(read)),
        RowBody::Read(module, read) => format!("{head} {}  [module {module}]", read_text(read)),
    }
}

/// `0=name 1=name ...`; `not_string` stands for entries that are not strings.
fn key_map_text(map: &[Option<String>], not_string: &str) -> String {
    let keys: Vec<String> = map
        .iter()
        .enumerate()
        .map(|(i, k)| format!("{i}={}", k.as_deref().map_or(not_string.into(), printable)))
        .collect();
    keys.join(" ")
}

/// The process context in one line (for `--watch`).
pub fn context_line(status: &ContextStatus) -> String {
    let (header, c) = match status {
        ContextStatus::Absent => return "process context: absent".into(),
        ContextStatus::Invalid { mapping, error, .. } => {
            return format!("process context: INVALID ({mapping}): {}", printable(error))
        }
        ContextStatus::Present { header, context, .. } => (header, context),
    };
    let resource = c.resource.iter().map(|(k, v)| format!("{}={v}", printable(k)));
    let mut parts: Vec<String> = resource.collect();
    let schema = c.schema_version.as_deref().map_or("(absent)".into(), printable);
    parts.push(format!("schema {schema}"));
    if let Some(m) = &c.key_map {
        parts.push(format!("key map [{}]", key_map_text(m, "?")));
    }
    if !c.problems.is_empty() {
        let problems = printable(&c.problems.join("; ")).into_owned();
        parts.push(format!("{} warning(s): {problems}", c.problems.len()));
    }
    let (at, parts) = (seconds(header.published_at_ns), parts.join(", "));
    format!("process context (published at {at}): {parts}")
}

pub fn module_text(m: &Module) -> String {
    let how = match &m.resolution {
        Ok(r) => r.to_string(),
        Err(e) => format!("UNRESOLVED: {}", printable(e)),
    };
    let (path, model, bias) = (printable(&m.path), m.model, m.load_bias);
    let mut line = format!("{path}  {model}, {how}  (load bias {bias:#x})");
    for w in m.warnings() {
        let _ = write!(line, "  warning: {w}");
    }
    line
}

fn value_list<'a>(out: &mut String, items: impl IntoIterator<Item = &'a (String, Value)>) {
    for (k, v) in items {
        let _ = writeln!(out, "    {} = {v}", printable(k));
    }
}

fn context_body(out: &mut String, c: &ProcessContext) {
    let _ = writeln!(out, "  resource:");
    if c.resource.is_empty() {
        let _ = writeln!(out, "    (none)");
    }
    value_list(out, &c.resource);
    let schema = c.schema_version.as_deref().map_or("(absent)".into(), printable);
    let _ = writeln!(out, "  schema version: {schema}");
    let keys = match &c.key_map {
        Some(m) if m.is_empty() => "(empty)".into(),
        Some(m) => key_map_text(m, "(not a string)"),
        None => "(absent)".into(),
    };
    let _ = writeln!(out, "  key map: {keys}");
    let mut others = c
        .attributes
        .iter()
        .filter(|(k, _)| k != SCHEMA_VERSION_KEY && k != KEY_MAP_KEY)
        .peekable();
    if others.peek().is_some() {
        let _ = writeln!(out, "  other attributes:");
        value_list(out, others);
    }
    for p in &c.problems {
        let _ = writeln!(out, "  warning: {}", printable(p));
    }
}

pub fn text(s: &Snapshot) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "process {} ({})\n", s.pid, printable(&s.command));
    let context = match &s.process_context {
        ContextStatus::Absent => "absent (no OTEL_CTX mapping); attribute names cannot be resolved".into(),
        ContextStatus::Invalid { mapping, addr, error } => {
            format!("INVALID at {addr:#x} ({mapping}): {}", printable(error))
        }
        ContextStatus::Present {
            mapping, addr, header, ..
        } => {
            let (version, size, at) = (header.version, header.payload_size, seconds(header.published_at_ns));
            format!("{mapping} at {addr:#x}, version {version}, {size}-byte payload, published at {at} (boot time)")
        }
    };
    let _ = writeln!(out, "process context: {context}");
    if let Some(c) = s.process_context.context() {
        context_body(&mut out, c);
    }
    if s.modules.is_empty() {
        let _ = writeln!(out, "\nmodules exporting {SYMBOL}: none; no thread context can be read");
    } else {
        let _ = writeln!(out, "\nmodules exporting {SYMBOL}:");
        for (i, m) in s.modules.iter().enumerate() {
            let _ = writeln!(out, "  [{i}] {}", module_text(m));
        }
        if s.modules.len() > 1 {
            let warning = "copies of the slot: each thread is shown once per module";
            let _ = writeln!(out, "  warning: {} {warning}", s.modules.len());
        }
    }
    for e in &s.module_errors {
        let _ = writeln!(out, "  could not examine {}", printable(e));
    }
    let _ = write!(out, "\nthreads: {}", s.threads.len());
    if s.threads_skipped > 0 {
        let _ = write!(out, " ({} others not shown)", s.threads_skipped);
    }
    let _ = writeln!(
        out,
        "\n  {:<8} {:<16} {:<32}  {:<16}  {:<5}  ATTRIBUTES",
        "TID", "NAME", "TRACE ID", "SPAN ID", "FLAGS"
    );
    for row in s.threads.iter().flat_map(|t| t.rows()) {
        let _ = writeln!(out, "  {}", row_text(s, &row));
    }
    out
}

/// The text of a check: a heading, one line per rule (result, rule, clause, evidence), a summary.
pub fn check_text(s: &Snapshot, findings: &[Finding]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "check of process {} ({})\n", s.pid, printable(&s.command));
    let _ = writeln!(out, "{:<4}  {:<18} {:<58}  EVIDENCE", "", "CHECK", "CLAUSE");
    for f in findings {
        let result = format!("{:?}", f.result).to_uppercase();
        let (id, clause, evidence) = (f.rule.id, f.rule.clause, printable(&f.evidence));
        let _ = writeln!(out, "{result:<4}  {id:<18} {clause:<58}  {evidence}");
    }
    let [pass, skip, warn, fail] = check::counts(findings);
    let _ = writeln!(out, "\n{pass} passed, {warn} warned, {fail} failed, {skip} skipped");
    out
}
