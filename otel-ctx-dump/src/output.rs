//! Text and JSON renderings of a snapshot, and the exit codes.

use crate::elf::SYMBOL;
use crate::inspect::{ContextStatus, Module, SlotRead, Snapshot, ThreadProblem, ThreadReport};
use crate::process_context::{ProcessContext, Value, KEY_MAP_KEY, SCHEMA_VERSION_KEY};
use crate::record::{hex, Record};
use std::borrow::Cow;
use std::fmt::Write;

/// Exit codes of `otel-ctx-dump` (documented in `--help` and the README).
pub mod exit {
    /// Process context and at least one module exporting the slot were found.
    pub const OK: i32 = 0;
    /// Any other failure.
    pub const FAILURE: i32 = 1;
    /// Bad command line.
    pub const USAGE: i32 = 2;
    pub const NO_SUCH_PROCESS: i32 = 3;
    /// Not allowed to read the process (same user with ptrace allowed, or CAP_SYS_PTRACE).
    pub const PERMISSION_DENIED: i32 = 4;
    /// No mapped module exports `otel_thread_ctx_v1` (the process context, if any, is printed).
    pub const NO_MODULE: i32 = 5;
    /// Threads were read, but the process context is absent or invalid.
    pub const NO_PROCESS_CONTEXT: i32 = 6;
    /// Stopped by SIGINT/SIGTERM (every thread was released first).
    pub const INTERRUPTED: i32 = 130;
}

/// The exit code a snapshot calls for.
pub fn exit_code(s: &Snapshot) -> i32 {
    if !s.threads.is_empty()
        && s.threads
            .iter()
            .all(|t| t.error.as_ref().is_some_and(|e| e.is_denied()))
    {
        exit::PERMISSION_DENIED
    } else if s.modules.is_empty() {
        exit::NO_MODULE
    } else if !matches!(s.process_context, ContextStatus::Present { .. }) {
        exit::NO_PROCESS_CONTEXT
    } else {
        exit::OK
    }
}

/// Does this character act on a terminal (C0 and C1 controls, DEL) or reorder the text around it
/// (bidirectional overrides and isolates)?
pub(crate) fn is_terminal_control(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A string from the target as the text report prints it: controls become Rust-style escapes
/// (`\u{1b}`, `\r`, `\n`) and a backslash is doubled, so what reaches the operator's terminal
/// is inert and unambiguous. Names (threads, keys, paths) are printed through this.
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c == '\\' || is_terminal_control(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            c if is_terminal_control(c) => out.extend(c.escape_debug()),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// The state word of a slot read, shared by both renderings.
pub fn state_word(read: &SlotRead) -> &'static str {
    match read {
        SlotRead::NoSlot(_) => "no_slot",
        SlotRead::NoContext => "no_context",
        SlotRead::Record { record, .. } if !record.is_valid() => "being_updated",
        SlotRead::Record { record, .. } if record.header.is_idle() => "idle",
        SlotRead::Record { .. } => "active",
        SlotRead::Error(_) => "error",
    }
}

fn attribute_text(s: &Snapshot, record: &Record) -> String {
    let mut parts: Vec<String> = record
        .attributes
        .iter()
        .map(|a| {
            let name = s
                .key_name(a.key_index)
                .map_or_else(|| format!("#{}", a.key_index), |n| printable(n).into_owned());
            let bad = if a.invalid_utf8 { " (invalid UTF-8)" } else { "" };
            format!("{name}={:?}{bad}", a.value)
        })
        .collect();
    if let Some(t) = &record.truncated {
        parts.push(format!("[truncated: {t}]"));
    }
    parts.join(" ")
}

/// One thread row's text after the tid and name columns.
pub fn thread_read_text(s: &Snapshot, read: &SlotRead) -> String {
    match read {
        SlotRead::NoSlot(d) => format!("(no TLS slot yet: {d})"),
        SlotRead::NoContext => "(no context)".into(),
        SlotRead::Error(e) => format!("(error: {})", printable(e)),
        SlotRead::Record { record, .. } if !record.is_valid() => {
            format!("(being updated: valid={}, record not trusted)", record.header.valid)
        }
        SlotRead::Record { record, .. } => {
            let ids = if record.header.is_idle() {
                format!("{:<32}  {:<16}", "(attached, no active span)", "")
            } else {
                format!("{}  {}", hex(&record.header.trace_id), hex(&record.header.span_id))
            };
            format!(
                "{ids}  {:02x}     {}",
                record.header.trace_flags,
                attribute_text(s, record)
            )
            .trim_end()
            .to_owned()
        }
    }
}

fn value_list(out: &mut String, items: &[(String, Value)], indent: &str) {
    for (k, v) in items {
        let _ = writeln!(out, "{indent}{} = {v}", printable(k));
    }
}

fn context_text(out: &mut String, status: &ContextStatus) {
    match status {
        ContextStatus::Absent => {
            let _ = writeln!(
                out,
                "process context: absent (no OTEL_CTX mapping); attribute names cannot be resolved"
            );
        }
        ContextStatus::Invalid { mapping, addr, error } => {
            let _ = writeln!(
                out,
                "process context: INVALID at {addr:#x} ({mapping}): {}",
                printable(error)
            );
        }
        ContextStatus::Present {
            mapping,
            addr,
            header,
            context,
        } => {
            let _ = writeln!(
                out,
                "process context: {mapping} at {addr:#x}, version {}, {}-byte payload, published at {}.{:09}s (boot time)",
                header.version,
                header.payload_size,
                header.published_at_ns / 1_000_000_000,
                header.published_at_ns % 1_000_000_000
            );
            context_body(out, context);
        }
    }
}

fn context_body(out: &mut String, c: &ProcessContext) {
    let _ = writeln!(out, "  resource:");
    if c.resource.is_empty() {
        let _ = writeln!(out, "    (none)");
    }
    value_list(out, &c.resource, "    ");
    let _ = writeln!(
        out,
        "  schema version: {}",
        c.schema_version.as_deref().unwrap_or("(absent)")
    );
    match &c.key_map {
        Some(m) => {
            let keys: Vec<String> = m
                .iter()
                .enumerate()
                .map(|(i, k)| format!("{i}={}", k.as_deref().map_or("(not a string)".into(), printable)))
                .collect();
            let _ = writeln!(
                out,
                "  key map: {}",
                if keys.is_empty() {
                    "(empty)".into()
                } else {
                    keys.join(" ")
                }
            );
        }
        None => {
            let _ = writeln!(out, "  key map: (absent)");
        }
    }
    let others: Vec<(String, Value)> = c
        .attributes
        .iter()
        .filter(|(k, _)| k != SCHEMA_VERSION_KEY && k != KEY_MAP_KEY)
        .cloned()
        .collect();
    if !others.is_empty() {
        let _ = writeln!(out, "  other attributes:");
        value_list(out, &others, "    ");
    }
    for p in &c.problems {
        let _ = writeln!(out, "  warning: {}", printable(p));
    }
}

/// The process context in one line (for `--watch`).
pub fn context_line(status: &ContextStatus) -> String {
    match status {
        ContextStatus::Absent => "process context: absent".into(),
        ContextStatus::Invalid { mapping, error, .. } => {
            format!("process context: INVALID ({mapping}): {}", printable(error))
        }
        ContextStatus::Present { header, context, .. } => {
            let mut parts: Vec<String> = context
                .resource
                .iter()
                .map(|(k, v)| format!("{}={v}", printable(k)))
                .collect();
            parts.push(format!(
                "schema {}",
                context.schema_version.as_deref().unwrap_or("(absent)")
            ));
            if let Some(m) = &context.key_map {
                let keys: Vec<String> = m
                    .iter()
                    .enumerate()
                    .map(|(i, k)| format!("{i}={}", k.as_deref().map_or("?".into(), printable)))
                    .collect();
                parts.push(format!("key map [{}]", keys.join(" ")));
            }
            if !context.problems.is_empty() {
                parts.push(format!(
                    "{} warning(s): {}",
                    context.problems.len(),
                    printable(&context.problems.join("; "))
                ));
            }
            format!(
                "process context (published at {}.{:09}s): {}",
                header.published_at_ns / 1_000_000_000,
                header.published_at_ns % 1_000_000_000,
                parts.join(", ")
            )
        }
    }
}

/// A module's one-line description.
pub fn module_text(m: &Module) -> String {
    let how = match &m.resolution {
        Ok(r) => r.to_string(),
        Err(e) => format!("UNRESOLVED: {}", printable(e)),
    };
    let mut line = format!(
        "{}  {}, {how}  (load bias {:#x})",
        printable(&m.path),
        m.model,
        m.load_bias
    );
    for w in m.warnings() {
        let _ = write!(line, "  warning: {w}");
    }
    line
}

/// The human-readable report.
pub fn text(s: &Snapshot) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "process {} ({})", s.pid, printable(&s.command));
    let _ = writeln!(out);
    context_text(&mut out, &s.process_context);
    let _ = writeln!(out);
    if s.modules.is_empty() {
        let _ = writeln!(out, "modules exporting {SYMBOL}: none; no thread context can be read");
    } else {
        let _ = writeln!(out, "modules exporting {SYMBOL}:");
        for (i, m) in s.modules.iter().enumerate() {
            let _ = writeln!(out, "  [{i}] {}", module_text(m));
        }
        if s.modules.len() > 1 {
            let _ = writeln!(
                out,
                "  warning: {} copies of the slot: each thread is shown once per module",
                s.modules.len()
            );
        }
    }
    for e in &s.module_errors {
        let _ = writeln!(out, "  could not examine {}", printable(e));
    }
    let _ = writeln!(out);
    let skipped = if s.threads_skipped > 0 {
        format!(" ({} others not shown)", s.threads_skipped)
    } else {
        String::new()
    };
    let _ = writeln!(out, "threads: {}{skipped}", s.threads.len());
    let _ = writeln!(
        out,
        "  {:<8} {:<16} {:<32}  {:<16}  {:<5}  ATTRIBUTES",
        "TID", "NAME", "TRACE ID", "SPAN ID", "FLAGS"
    );
    for e in all_thread_entries(s) {
        let _ = writeln!(out, "  {}", entry_text(s, &e));
    }
    out
}

/// What one line of a thread says: one per module read, or one for the whole thread.
#[derive(Clone, Debug, PartialEq)]
pub enum EntryBody {
    Problem(ThreadProblem),
    /// No module with a usable resolution: nothing to read.
    NoModule,
    Read {
        module: usize,
        read: SlotRead,
    },
}

/// One line of a thread in the report (text row, JSON object, `--watch` item).
#[derive(Clone, Debug, PartialEq)]
pub struct ThreadEntry {
    pub tid: i32,
    pub name: String,
    pub body: EntryBody,
}

/// A thread's entries.
pub fn thread_entries(t: &ThreadReport) -> Vec<ThreadEntry> {
    let entry = |body| ThreadEntry {
        tid: t.tid,
        name: t.name.clone(),
        body,
    };
    if let Some(e) = &t.error {
        return vec![entry(EntryBody::Problem(e.clone()))];
    }
    if t.reads.is_empty() {
        return vec![entry(EntryBody::NoModule)];
    }
    t.reads
        .iter()
        .map(|(module, read)| {
            entry(EntryBody::Read {
                module: *module,
                read: read.clone(),
            })
        })
        .collect()
}

/// Every thread's entries, in thread order.
pub fn all_thread_entries(s: &Snapshot) -> Vec<ThreadEntry> {
    s.threads.iter().flat_map(thread_entries).collect()
}

/// One entry's text row, after the indentation.
pub fn entry_text(s: &Snapshot, e: &ThreadEntry) -> String {
    let head = format!("{:<8} {:<16}", e.tid, printable(&e.name));
    match &e.body {
        EntryBody::Problem(p) => format!("{head} (error: {})", printable(&p.to_string())),
        EntryBody::NoModule => format!("{head} (no module to read)"),
        EntryBody::Read { module, read } => {
            let via = if s.modules.len() > 1 {
                format!("  [module {module}]")
            } else {
                String::new()
            };
            format!("{head} {}{via}", thread_read_text(s, read))
        }
    }
}

/// The JSON rendering of the whole snapshot.
pub fn json(s: &Snapshot) -> String {
    crate::json::snapshot(s, &all_thread_entries(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_escapes_what_acts_on_a_terminal() {
        assert!(matches!(printable("plain name"), Cow::Borrowed(_)));
        assert_eq!(printable("\u{1b}[31mred\r\n"), "\\u{1b}[31mred\\r\\n");
        assert_eq!(printable("a\\b\u{7f}\u{9b}\u{202e}"), "a\\\\b\\u{7f}\\u{9b}\\u{202e}");
        assert_eq!(printable("é ok"), "é ok");
    }
}
