//! `otel-ctx-dump check`: is this process readable, and if not, why? Each rule of OTEP 4947
//! (thread context) and OTEP 4719 (process context) that a writer can break is one [`Rule`]; a run
//! gives one [`Finding`] per rule: pass, warn (readers cope, some refuse), fail (readers lose data),
//! or skip (a rule it depends on failed). The rules judge a snapshot, the maps and the memory,
//! so they are tested on fakes; [`sample_updates`] watches a live process for `--duration`.

use crate::elf::{AccessModel, SYMBOL};
use crate::inspect::{ContextStatus, Resolution, SlotRead, Snapshot, ThreadProblem};
use crate::maps::{Mapping, Memory};
use crate::process_context::{self as pc, Header, ProcessContext, MAX_KEYS, SCHEMA_VERSION};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::fmt::Write;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Skip,
    Warn,
    Fail,
}

/// A rule a writer must follow, and where it comes from.
#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct Rule {
    /// A short stable name (JSON `check`).
    #[serde(rename = "check")]
    pub id: &'static str,
    /// The OTEP and the part of it the rule comes from.
    pub clause: &'static str,
}

macro_rules! rules {
    ($($name:ident = $id:literal, $clause:literal;)*) => {
        $(pub static $name: Rule = Rule { id: $id, clause: $clause };)*
        /// Every rule, in report order.
        pub static RULES: &[&Rule] = &[$(&$name),*];
    };
}

impl Rule {
    fn says(&'static self, result: Verdict, evidence: impl Into<String>) -> Finding {
        let (rule, evidence) = (self, evidence.into());
        Finding { rule, result, evidence }
    }

    fn pass(&'static self, evidence: impl Into<String>) -> Finding {
        self.says(Verdict::Pass, evidence)
    }

    fn fail(&'static self, evidence: impl Into<String>) -> Finding {
        self.says(Verdict::Fail, evidence)
    }

    fn skip(&'static self, why: impl Into<String>) -> Finding {
        self.says(Verdict::Skip, why)
    }

    fn check(&'static self, ok: bool, evidence: impl Into<String>) -> Finding {
        self.says(if ok { Verdict::Pass } else { Verdict::Fail }, evidence)
    }
}

/// The rules from `first` to `last`, in report order.
fn between(first: &Rule, last: &Rule) -> &'static [&'static Rule] {
    let at = |r: &Rule| RULES.iter().position(|x| *x == r).expect("a rule");
    &RULES[at(first)..=at(last)]
}

fn skip(out: &mut Vec<Finding>, first: &Rule, last: &Rule, why: &str) {
    out.extend(between(first, last).iter().map(|r| r.skip(why)));
}

rules! {
    SYMBOL_DEFINED = "slot symbol", "OTEP 4947 TLS symbol: in .dynsym, STT_TLS, GLOBAL, size 8";
    SYMBOL_OTHERS = "other modules", "OTEP 4947 TLS symbol: one slot per process";
    ACCESS_MODEL = "access model", "OTEP 4947 access model: TLSDESC; no local-dynamic";
    PLACEMENT = "placement", "OTEP 4947 TLS placement: keep PT_TLS small (static TLS)";
    CONTEXT_MAPPING = "context mapping", "OTEP 4719 discovery: one OTEL_CTX mapping, not executable";
    SIGNATURE = "signature", "OTEP 4719 header: signature OTEL_CTX";
    VERSION = "version", "OTEP 4719 header: version 2";
    PAYLOAD_SIZE = "payload size", "OTEP 4719 header: 0 < payload_size <= 65536";
    TIMESTAMP = "timestamp", "OTEP 4719 publishing: CLOCK_BOOTTIME, non-zero";
    PAYLOAD = "payload", "OTEP 4719 payload: a ProcessContext message";
    SCHEMA = "schema version", "OTEP 4947 key map: threadlocal.schema_version";
    KEY_MAP = "key map", "OTEP 4947 key map: array of at most 256 strings";
    KEY_MAP_EMPTY = "no empty key", "OTEP 4947 key map: names are keys";
    KEY_MAP_DUPLICATES = "no duplicate key", "OTEP 4947 key map: one index per name";
    THREADS_READ = "threads read", "(the checker) every thread stopped and read";
    SLOT_POINTER = "slot pointer", "OTEP 4947 TLS symbol: NULL or a record";
    ALIGNMENT = "record alignment", "OTEP 4947 record: start aligned to 2 bytes";
    VALID = "valid flag", "OTEP 4947 record: valid is 0 or 1";
    IDS = "ids", "OTEP 4947 record: trace_id and span_id set together";
    ATTRS_SIZE = "attrs_data_size", "OTEP 4947 record: attrs_data_size <= 612";
    ENTRIES = "attribute entries", "OTEP 4947 record: entries fit attrs_data_size";
    UTF8 = "values UTF-8", "OTEP 4947 record: values are UTF-8";
    KEY_INDEXES = "key indexes", "OTEP 4947 record: key index in the key map";
    UPDATE_TIMESTAMPS = "update timestamps", "OTEP 4719 update: a strictly larger timestamp";
    UPDATE_NAME = "update keeps name", "OTEP 4719 update: mapping stays named OTEL_CTX";
}

/// The recommended record size less the header: what a reader plans for.
pub const MAX_ATTRS_DATA: u16 = 612;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// JSON: the rule's `check` and `clause`.
    #[serde(flatten)]
    pub rule: &'static Rule,
    pub result: Verdict,
    pub evidence: String,
}

/// Clock readings a timestamp is judged against, in CLOCK_BOOTTIME nanoseconds.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    pub now_ns: u64,
    /// When the target started (from /proc/PID/stat), if known.
    pub process_start_ns: Option<u64>,
}

impl Clock {
    pub fn of_process(pid: i32) -> Clock {
        // Safety: a zeroed timespec is valid, and clock_gettime fills it.
        let now_ns = unsafe {
            let mut ts: libc::timespec = std::mem::zeroed();
            libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts);
            ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
        };
        // Safety: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        let start = crate::threads::task_stat(pid, pid).map(|s| s.start_time * (1_000_000_000 / ticks));
        Clock {
            now_ns,
            process_start_ns: start,
        }
    }
}

/// Why readers do not use a schema version a writer may publish, other than the one they accept.
fn schema_warning(version: &str) -> Option<&'static str> {
    Some(match version {
        "tls_v1" => "the pending rename in the OTEP text; readers accept only tlsdesc_v1_dev today",
        "tlsdesc_v1" => "the rename suggested in review; readers accept only tlsdesc_v1_dev today",
        "go_pprof_labels_v1" => "Go's pprof-labels schema, another runtime's: readers of this slot do not use it",
        "nodejs_v1" => {
            "Node.js's schema (its own symbol otel_thread_ctx_nodejs_v1): readers of this slot do not use it"
        }
        _ => return None,
    })
}

/// What an access model means to readers: all but TLSDESC are warned of, local-dynamic fails.
fn access_model(model: AccessModel) -> (Verdict, String) {
    use AccessModel::*;
    let strict = "strict readers refuse anything but TLSDESC";
    let why = match model {
        TlsDesc => "the recommended model".into(),
        GeneralDynamic => format!("readers must handle it; {strict} (clang < 19 falls back to it)"),
        InitialExec => format!("readers must handle it; {strict}"),
        LocalExec => format!("readers compute the offset from PT_TLS; {strict}"),
        LocalDynamic => "not supported by readers: no relocation names the slot".into(),
    };
    let verdict = match model {
        TlsDesc => Verdict::Pass,
        LocalDynamic => Verdict::Fail,
        _ => Verdict::Warn,
    };
    (verdict, why)
}

/// Runs every rule but the `--duration` ones. `maps` and `mem` are the target's (or fakes).
pub fn run(snapshot: &Snapshot, maps: &[Mapping], mem: &dyn Memory, clock: Clock) -> Vec<Finding> {
    let mut out = symbol_findings(snapshot);
    out.extend(context_findings(&snapshot.process_context, maps, mem, clock));
    out.extend(thread_findings(snapshot));
    out
}

/// Lists at most a few items, and how many more.
fn list(items: &[String]) -> String {
    const SHOWN: usize = 4;
    let mut s = items.iter().take(SHOWN).cloned().collect::<Vec<_>>().join("; ");
    if items.len() > SHOWN {
        let _ = write!(s, "; and {} more", items.len() - SHOWN);
    }
    s
}

fn symbol_findings(s: &Snapshot) -> Vec<Finding> {
    let (defining, referencing): (Vec<_>, Vec<_>) = s.symbol_entries.iter().partition(|(_, e)| e.defined);
    let described: Vec<String> = defining.iter().map(|(p, e)| format!("{p} {e}")).collect();
    let files = defining.iter().map(|(p, _)| p).collect::<HashSet<_>>().len();
    let symbol = match defining.as_slice() {
        [] => SYMBOL_DEFINED.fail(format!("no mapped module defines {SYMBOL} in .dynsym")),
        _ if files > 1 => SYMBOL_DEFINED.fail(format!(
            "{files} modules define it, each a separate slot, and a reader picks one: {}",
            list(&described)
        )),
        [(_, e)] => {
            let ok = e.st_type == object::elf::STT_TLS && e.st_bind == object::elf::STB_GLOBAL && e.st_size == 8;
            SYMBOL_DEFINED.check(ok, described[0].clone())
        }
        _ => SYMBOL_DEFINED.fail(list(&described)),
    };
    let referencing: Vec<String> = referencing.iter().map(|(path, e)| format!("{path} {e}")).collect();
    let others = if referencing.is_empty() {
        SYMBOL_OTHERS.pass("no other module names it")
    } else {
        let why = "readers that do not skip undefined entries misread the slot there";
        SYMBOL_OTHERS.says(Verdict::Warn, format!("{}; {why}", list(&referencing)))
    };
    let mut out = vec![symbol, others];
    if s.modules.is_empty() {
        skip(&mut out, &ACCESS_MODEL, &PLACEMENT, "no module exports a TLS slot");
        return out;
    }
    for m in &s.modules {
        let (verdict, why) = access_model(m.model);
        out.push(ACCESS_MODEL.says(verdict, format!("{}: {}: {why}", m.path, m.model)));
    }
    for m in &s.modules {
        out.push(match &m.resolution {
            Ok(r @ Resolution::StaticOffset(_)) => PLACEMENT.pass(format!("{}: {r}", m.path)),
            Ok(r @ Resolution::Dynamic { module_id, offset, .. }) => {
                let how = match m.model {
                    AccessModel::GeneralDynamic => format!(
                        "general-dynamic, slot at DTV[{module_id}]+{offset:#x}: reached through the DTV wherever the block is"
                    ),
                    _ => r.to_string(),
                };
                let why = "readers' DTV paths are fragile (layouts per C library, threads without a block \
                           yet, glibc < 2.40 bug 31372); load the library at start-up or keep PT_TLS small";
                PLACEMENT.says(Verdict::Warn, format!("{}: {how}: {why}", m.path))
            }
            Err(e) => PLACEMENT.fail(format!("{}: the slot cannot be located: {e}", m.path)),
        });
    }
    out
}

/// Header rules, on the signature and fields read (all skipped after a bad signature: the rest is
/// garbage).
fn header_findings((signature, h): ([u8; 8], Header), clock: Clock, out: &mut Vec<Finding>) -> bool {
    if &signature != pc::SIGNATURE {
        out.push(SIGNATURE.fail(format!("\"{}\"", String::from_utf8_lossy(&signature))));
        skip(out, &VERSION, &TIMESTAMP, "no process-context header here");
        return false;
    }
    out.push(SIGNATURE.pass("OTEL_CTX"));
    let version_ok = h.version == pc::VERSION;
    out.push(VERSION.check(version_ok, h.version.to_string()));
    let size_ok = (1..=pc::MAX_PAYLOAD_SIZE).contains(&h.payload_size);
    out.push(PAYLOAD_SIZE.check(size_ok, format!("{} bytes", h.payload_size)));
    out.push(timestamp_finding(h.published_at_ns, clock));
    version_ok && size_ok && h.published_at_ns != 0
}

fn timestamp_finding(ns: u64, clock: Clock) -> Finding {
    let (secs, at) = (pc::seconds, pc::seconds(ns));
    if ns == 0 {
        return TIMESTAMP.fail("0: unpublished, or an update never finished");
    }
    // A second of slack for the clocks' granularity; a start time is known to a clock tick.
    if ns > clock.now_ns + 1_000_000_000 {
        let why = format!(
            "{at} is after now ({} since boot): not CLOCK_BOOTTIME (CLOCK_REALTIME?)",
            secs(clock.now_ns)
        );
        return TIMESTAMP.fail(why);
    }
    if let Some(start) = clock.process_start_ns.filter(|&s| ns + 20_000_000 < s) {
        let start = secs(start);
        return TIMESTAMP.fail(format!(
            "{at} is before the process started ({start}): not CLOCK_BOOTTIME"
        ));
    }
    TIMESTAMP.pass(format!("{at} since boot, after the process started"))
}

fn context_findings(status: &ContextStatus, maps: &[Mapping], mem: &dyn Memory, clock: Clock) -> Vec<Finding> {
    let mut out = Vec::new();
    let named: Vec<&Mapping> = maps.iter().filter(|m| pc::is_context_name(&m.path)).collect();
    let (exec, readable): (Vec<&Mapping>, _) = named.iter().partition(|m| m.perms.contains('x'));
    let exec: Vec<String> = exec.iter().map(|m| format!("{:#x} {}", m.start, m.perms)).collect();
    out.push(match (named.len(), exec.len()) {
        (0, _) => CONTEXT_MAPPING.fail("no OTEL_CTX mapping: attribute names are unknown to readers"),
        (_, 1..) => CONTEXT_MAPPING.fail(format!("executable: {}", list(&exec))),
        (1, _) => {
            let m = named[0];
            CONTEXT_MAPPING.pass(format!("{} at {:#x} ({})", m.path, m.start, m.perms))
        }
        (n, _) => {
            let at: Vec<String> = named.iter().map(|m| format!("{:#x}", m.start)).collect();
            CONTEXT_MAPPING.fail(format!("{n} mappings (at {}): a process has one context", list(&at)))
        }
    });
    // The mapping the reader took (a consistent read), else the first one it could have.
    let chosen = status.addr().and_then(|a| readable.iter().find(|m| m.start == a));
    let Some(m) = chosen.or(readable.first()) else {
        skip(
            &mut out,
            &SIGNATURE,
            &KEY_MAP_DUPLICATES,
            "no readable OTEL_CTX mapping",
        );
        return out;
    };
    let mut head = [0u8; pc::HEADER_SIZE];
    let header = match status {
        // The header of the consistent read, not of a later instant.
        ContextStatus::Present { header, .. } => (*pc::SIGNATURE, *header),
        _ => match mem.read(m.start, &mut head) {
            Ok(()) => (head[..8].try_into().expect("8 bytes"), Header::fields(&head)),
            Err(e) => {
                let why = format!("the header at {:#x} is unreadable: {e}", m.start);
                skip(&mut out, &SIGNATURE, &KEY_MAP_DUPLICATES, &why);
                return out;
            }
        },
    };
    if !header_findings(header, clock, &mut out) {
        skip(&mut out, &PAYLOAD, &KEY_MAP_DUPLICATES, "the header is invalid");
        return out;
    }
    match status {
        ContextStatus::Present { context: c, header, .. } => {
            let (size, resource, attributes) = (header.payload_size, c.resource.len(), c.attributes.len());
            let counts = format!("{resource} resource attribute(s), {attributes} attribute(s)");
            out.push(PAYLOAD.pass(format!("{size} bytes: {counts}")));
            out.extend(key_map_findings(c));
        }
        ContextStatus::Invalid { error, .. } => {
            out.push(PAYLOAD.fail(error.clone()));
            skip(&mut out, &SCHEMA, &KEY_MAP_DUPLICATES, "the payload is unreadable");
        }
        ContextStatus::Absent => unreachable!("a readable mapping was found"),
    }
    out
}

fn key_map_findings(c: &ProcessContext) -> Vec<Finding> {
    let has = |key| c.attributes.iter().any(|(k, _)| k == key);
    let absent = "absent: readers do not name thread attributes";
    let mut out = vec![match c.schema_version.as_deref() {
        Some(v) if v == SCHEMA_VERSION => SCHEMA.pass(format!("\"{v}\": the schema readers accept")),
        Some(v) => match schema_warning(v) {
            Some(why) => SCHEMA.says(Verdict::Warn, format!("\"{v}\": {why}")),
            None => SCHEMA.fail(format!("\"{v}\": unknown; readers accept only {SCHEMA_VERSION:?}")),
        },
        None if has(pc::SCHEMA_VERSION_KEY) => SCHEMA.fail("not a string"),
        None => SCHEMA.fail(absent),
    }];
    let Some(map) = &c.key_map else {
        out.push(KEY_MAP.fail(if has(pc::KEY_MAP_KEY) { "not an array" } else { absent }));
        skip(&mut out, &KEY_MAP_EMPTY, &KEY_MAP_DUPLICATES, "no key map");
        return out;
    };
    let at = |bad: fn(&Option<String>) -> bool| -> Vec<String> {
        let positions = map.iter().enumerate().filter(|(_, k)| bad(k));
        positions.map(|(i, _)| format!("[{i}]")).collect()
    };
    let (not_strings, empty) = (at(Option::is_none), at(|k| k.as_deref() == Some("")));
    let n = map.len();
    out.push(if n > MAX_KEYS {
        KEY_MAP.fail(format!("{n} entries: key indexes are one byte, at most {MAX_KEYS}"))
    } else if !not_strings.is_empty() {
        KEY_MAP.fail(format!("entries that are not strings: {}", list(&not_strings)))
    } else {
        KEY_MAP.pass(format!("{n} entries"))
    });
    out.push(if empty.is_empty() {
        KEY_MAP_EMPTY.pass("every key named")
    } else {
        let why = "the eBPF profiler drops every thread label of a process with one empty key";
        KEY_MAP_EMPTY.fail(format!("empty at {}: {why}", list(&empty)))
    });
    let mut seen = HashMap::new();
    let mut duplicates = Vec::new();
    for (i, k) in map.iter().enumerate().filter_map(|(i, k)| Some((i, k.as_deref()?))) {
        if let Some(first) = seen.insert(k, i) {
            duplicates.push(format!("\"{k}\" at [{first}] and [{i}]"));
        }
    }
    out.push(if duplicates.is_empty() {
        KEY_MAP_DUPLICATES.pass("every key once")
    } else {
        KEY_MAP_DUPLICATES.fail(list(&duplicates))
    });
    out
}

/// The rules about each thread's record, judged over every record read.
fn thread_findings(s: &Snapshot) -> Vec<Finding> {
    let rules = between(&THREADS_READ, &KEY_INDEXES);
    if s.modules.iter().all(|m| m.resolution.is_err()) {
        return rules.iter().map(|r| r.skip("no slot a reader can locate")).collect();
    }
    let key_map = s.process_context.context().and_then(|c| c.key_map.as_ref());
    let key_map_len = key_map.map(Vec::len);
    // Per rule, what breaks it, by thread.
    let mut bad: Vec<Vec<String>> = vec![Vec::new(); rules.len()];
    let mut note = |rule: &Rule, tid: i32, what: String| {
        let at = rules.iter().position(|r| *r == rule).expect("a thread rule");
        bad[at].push(format!("tid {tid}: {what}"));
    };
    let (mut records, mut empty, mut no_span, mut exited) = (0, 0, 0, 0);
    for t in &s.threads {
        let tid = t.tid;
        match &t.error {
            // A thread that ended between the listing and its read has nothing to check.
            Some(ThreadProblem::Exited) => exited += 1,
            Some(p) => note(&THREADS_READ, tid, p.describe().1),
            None => {}
        }
        for (_, read) in &t.reads {
            let (addr, record) = match read {
                SlotRead::NoContext | SlotRead::NoSlot(_) => {
                    empty += 1;
                    continue;
                }
                SlotRead::Error(e) => {
                    note(&SLOT_POINTER, tid, e.clone());
                    continue;
                }
                SlotRead::Record { addr, record } => (*addr, record),
            };
            records += 1;
            let h = &record.header;
            if addr % 2 != 0 {
                note(&ALIGNMENT, tid, format!("record at {addr:#x}"));
            }
            if h.valid > 1 {
                note(&VALID, tid, format!("valid = {}", h.valid));
            }
            let (trace_zero, span_zero) = (h.trace_id == [0; 16], h.span_id == [0; 8]);
            if trace_zero != span_zero && h.valid == 1 {
                let which = ["trace_id without span_id", "span_id without trace_id"][usize::from(trace_zero)];
                note(&IDS, tid, which.into());
            }
            no_span += usize::from(trace_zero && span_zero && h.valid <= 1);
            if h.attrs_data_size > MAX_ATTRS_DATA {
                note(&ATTRS_SIZE, tid, h.attrs_data_size.to_string());
            } else if let Some(why) = &record.truncated {
                // A size past what readers copy is the size rule's finding, not the entries'.
                note(&ENTRIES, tid, why.clone());
            }
            for a in &record.attributes {
                if let Some(n) = key_map_len.filter(|&n| usize::from(a.key_index) >= n) {
                    note(&KEY_INDEXES, tid, format!("index {} (key map has {n})", a.key_index));
                }
                if a.invalid_utf8 {
                    note(&UTF8, tid, format!("index {}", a.key_index));
                }
            }
        }
    }
    let gone = (exited > 0).then(|| format!(" ({exited} exited before their turn)"));
    let read = format!("{} thread(s){}", s.threads.len() - exited, gone.unwrap_or_default());
    let every = ["every record", "no record to check"][usize::from(records == 0)];
    let threads = s.threads.len();
    let seen = format!("{records} record(s) ({no_span} without a span), {empty} slot(s) empty, {threads} thread(s)");
    let judged = rules.iter().zip(bad).map(|(&rule, bad)| match rule {
        _ if !bad.is_empty() && *rule == THREADS_READ => rule.says(Verdict::Warn, list(&bad)),
        _ if !bad.is_empty() => rule.fail(list(&bad)),
        r if *r == THREADS_READ => rule.pass(read.clone()),
        r if *r == SLOT_POINTER => rule.pass(seen.clone()),
        r if *r == KEY_INDEXES && key_map_len.is_none() => rule.skip("no key map"),
        _ => rule.pass(every),
    });
    judged.collect()
}

/// One look at the process context during `--duration`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    pub at: Duration,
    /// Start addresses of the mappings named like a process context.
    pub named: Vec<u64>,
    /// What the maps show at the watched mapping's address now ("" if nothing).
    pub name_at_first: String,
    /// The timestamp of the first named mapping's header, if one could be read, and a digest of
    /// the rest of that header and of the payload: what an update changes.
    pub header: Option<(u64, u64)>,
}

/// The timestamp and a digest of the rest of the context at `addr`.
fn look(mem: &dyn Memory, addr: u64) -> Option<(u64, u64)> {
    use std::hash::{Hash, Hasher};
    let mut head = [0u8; pc::HEADER_SIZE];
    mem.read(addr, &mut head).ok()?;
    let h = Header::fields(&head);
    let mut digest = std::collections::hash_map::DefaultHasher::new();
    (h.version, h.payload_size, h.payload_ptr).hash(&mut digest);
    if (1..=pc::MAX_PAYLOAD_SIZE).contains(&h.payload_size) {
        let payload = mem.read_prefix(h.payload_ptr, h.payload_size as usize);
        payload.hash(&mut digest);
    }
    Some((h.published_at_ns, digest.finish()))
}

/// Watches the process context for `duration`, from the mapping at `first` (the one the snapshot
/// read): the maps every 10 ms, the header and payload every millisecond.
pub fn sample_updates(
    read_maps: &dyn Fn() -> std::io::Result<Vec<Mapping>>,
    mem: &dyn Memory,
    first: Option<u64>,
    duration: Duration,
    cancelled: &dyn Fn() -> bool,
) -> Vec<Observation> {
    let start = Instant::now();
    let mut out: Vec<Observation> = Vec::new();
    let mut maps = Vec::new();
    let mut maps_read = None;
    while start.elapsed() < duration && !cancelled() {
        if maps_read.is_none_or(|t: Instant| t.elapsed() >= Duration::from_millis(10)) {
            let Ok(m) = read_maps() else { break };
            maps = m;
            maps_read = Some(Instant::now());
        }
        let named: Vec<u64> = maps
            .iter()
            .filter(|m| pc::is_context_name(&m.path))
            .map(|m| m.start)
            .collect();
        let at_first = first.and_then(|a| maps.iter().find(|m| m.start <= a && a < m.end));
        let name_at_first = at_first.map_or(String::new(), |m| m.path.clone());
        let o = Observation {
            at: start.elapsed(),
            header: named.first().and_then(|&a| look(mem, a)),
            named,
            name_at_first,
        };
        if out.last().is_none_or(|l| Observation { at: o.at, ..l.clone() } != o) {
            out.push(o);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    out
}

/// The `--duration` rules over what was seen: each update (a new timestamp, or new contents)
/// ends in a larger timestamp, and the mapping keeps a name readers look for.
pub fn update_findings(seen: &[Observation], duration: Duration) -> Vec<Finding> {
    let mut last: Option<(u64, u64)> = None;
    let (mut updates, mut zero_since_last) = (0, false);
    let mut bad = Vec::new();
    for o in seen {
        match o.header {
            Some((0, _)) => zero_since_last = true,
            Some((ts, content)) => {
                if let Some((prev, prev_content)) = last {
                    if ts != prev || content != prev_content || zero_since_last {
                        updates += 1;
                        if ts <= prev {
                            let ms = o.at.as_millis();
                            bad.push(format!("at {ms} ms: {ts} after {prev}"));
                        }
                    }
                }
                last = o.header;
                zero_since_last = false;
            }
            None => {}
        }
    }
    let secs = duration.as_secs_f64();
    let timestamps = if !bad.is_empty() {
        UPDATE_TIMESTAMPS.fail(format!("{updates} update(s) in {secs} s; not larger: {}", list(&bad)))
    } else {
        UPDATE_TIMESTAMPS.pass(format!("{updates} update(s) in {secs} s, each with a larger timestamp"))
    };
    let first_name = seen.first().map(|o| o.name_at_first.clone()).unwrap_or_default();
    let lost = seen
        .iter()
        .find(|o| o.named.is_empty() || !pc::is_context_name(&o.name_at_first));
    let name = match lost {
        _ if seen.is_empty() => UPDATE_NAME.skip("nothing watched"),
        _ if first_name.is_empty() && seen.iter().all(|o| o.named.is_empty()) => {
            UPDATE_NAME.skip("no OTEL_CTX mapping to watch")
        }
        Some(o) => {
            let (ms, now) = (o.at.as_millis(), &o.name_at_first);
            let now = if now.is_empty() { "nothing" } else { now };
            UPDATE_NAME.fail(format!(
                "at {ms} ms no mapping is named OTEL_CTX (the context's address shows {now})"
            ))
        }
        None => UPDATE_NAME.pass(format!("{first_name} throughout")),
    };
    vec![timestamps, name]
}

/// The exit status of a check: every rule passed (or was skipped), warnings only, or failures.
pub fn exit_code(findings: &[Finding]) -> i32 {
    match findings.iter().map(|f| f.result).max() {
        Some(Verdict::Fail) => EXIT_FAILS,
        Some(Verdict::Warn) => EXIT_WARNINGS,
        _ => 0,
    }
}

pub const EXIT_WARNINGS: i32 = 7;
pub const EXIT_FAILS: i32 = 8;

/// The counts of each verdict: pass, skip, warn, fail.
pub fn counts(findings: &[Finding]) -> [usize; 4] {
    let mut c = [0; 4];
    for f in findings {
        c[f.result as usize] += 1;
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(items: &[(u64, u64)]) -> Vec<Observation> {
        items
            .iter()
            .enumerate()
            .map(|(i, &(ts, content))| Observation {
                at: Duration::from_millis(i as u64),
                named: vec![0x1000],
                name_at_first: "/memfd:OTEL_CTX (deleted)".into(),
                header: Some((ts, content)),
            })
            .collect()
    }

    #[test]
    fn an_update_needs_a_larger_timestamp() {
        let d = Duration::from_secs(1);
        let ok = update_findings(&seen(&[(5, 1), (0, 1), (9, 2), (12, 3)]), d);
        assert_eq!(
            (ok[0].result, ok[0].evidence.as_str()),
            (Verdict::Pass, "2 update(s) in 1 s, each with a larger timestamp")
        );
        // New contents under the same timestamp, or a zero between two equal ones.
        assert_eq!(update_findings(&seen(&[(5, 1), (5, 2)]), d)[0].result, Verdict::Fail);
        assert_eq!(
            update_findings(&seen(&[(5, 1), (0, 1), (5, 1)]), d)[0].result,
            Verdict::Fail
        );
        assert_eq!(update_findings(&seen(&[(5, 1), (4, 2)]), d)[0].result, Verdict::Fail);
        // No update at all is no failure.
        assert_eq!(update_findings(&seen(&[(5, 1)]), d)[0].result, Verdict::Pass);
    }

    #[test]
    fn a_context_that_loses_its_name_fails() {
        let mut s = seen(&[(5, 1), (6, 2)]);
        assert_eq!(update_findings(&s, Duration::from_secs(1))[1].result, Verdict::Pass);
        s[1].named.clear();
        s[1].name_at_first.clear();
        let f = update_findings(&s, Duration::from_secs(1));
        assert_eq!(f[1].result, Verdict::Fail, "{f:?}");
    }

    #[test]
    fn timestamps_must_be_boot_time() {
        let clock = Clock {
            now_ns: 5_000_000_000_000,
            process_start_ns: Some(4_000_000_000_000),
        };
        assert_eq!(timestamp_finding(4_500_000_000_000, clock).result, Verdict::Pass);
        // CLOCK_REALTIME: decades after boot.
        assert_eq!(
            timestamp_finding(1_765_000_000_000_000_000, clock).result,
            Verdict::Fail
        );
        assert_eq!(timestamp_finding(3_000_000_000_000, clock).result, Verdict::Fail);
        assert_eq!(timestamp_finding(0, clock).result, Verdict::Fail);
    }

    /// One line per rule, whatever failed first: nothing found, or a mapping with a bad signature.
    #[test]
    fn every_rule_has_one_line() {
        let snapshot = Snapshot {
            pid: 1,
            command: "x".into(),
            process_context: ContextStatus::Absent,
            modules: vec![],
            module_errors: vec![],
            threads: vec![],
            threads_skipped: 0,
            libc: crate::platform::CLibrary::Glibc,
            symbol_entries: vec![],
        };
        let mapping = Mapping {
            start: 0x1000,
            end: 0x2000,
            perms: "rw-p".into(),
            offset: 0,
            dev: "00:01".into(),
            inode: 1,
            path: "[anon:OTEL_CTX]".into(),
        };
        let mem: Vec<(u64, Vec<u8>)> = vec![(0x1000, b"NOT_OTEL".repeat(4))];
        let clock = Clock {
            now_ns: 1,
            process_start_ns: None,
        };
        for maps in [vec![], vec![mapping]] {
            let mut f = run(&snapshot, &maps, &mem, clock);
            f.extend(update_findings(&[], Duration::from_secs(1)));
            for rule in RULES {
                let n = f.iter().filter(|x| x.rule == *rule).count();
                assert_eq!(n, 1, "{} with {} mapping(s): {f:#?}", rule.id, maps.len());
            }
        }
    }

    #[test]
    fn exit_codes_by_the_worst_result() {
        let f = |r| SCHEMA.says(r, "");
        assert_eq!(exit_code(&[f(Verdict::Pass), f(Verdict::Skip)]), 0);
        assert_eq!(exit_code(&[f(Verdict::Pass), f(Verdict::Warn)]), EXIT_WARNINGS);
        assert_eq!(exit_code(&[f(Verdict::Fail), f(Verdict::Warn)]), EXIT_FAILS);
    }
}
