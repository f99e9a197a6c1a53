//! `otel-ctx-dump PID`: see `otel-ctx-dump --help` and the README.

use otel_ctx_dump::check::{self, Clock};
use otel_ctx_dump::cli::{self, CheckOptions, Command, Options};
use otel_ctx_dump::inspect::{ContextStatus, InspectError, Inspector, Module, Row, Snapshot, ThreadProblem};
use otel_ctx_dump::maps::{self, ProcessMemory};
use otel_ctx_dump::output::{self, exit, printable};
use otel_ctx_dump::ptrace::TERMINATION_SIGNALS;
use otel_ctx_dump::threads::ProcessHandle;
use otel_ctx_dump::{escape, json};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// The first signal asks for a clean end, which takes well under a second (every wait is
/// bounded and checks the flag); should anything ever block, the alarm it sets ends the process
/// 2 s later (SIGALRM comes here too, as a second signal), and a second signal at once. The
/// kernel detaches whatever the tracer thread still holds.
extern "C" fn on_signal(_: libc::c_int) {
    if INTERRUPTED.swap(true, Ordering::SeqCst) {
        // Safety: _exit is async-signal-safe.
        unsafe { libc::_exit(exit::INTERRUPTED) };
    }
    // Safety: alarm is async-signal-safe.
    unsafe { libc::alarm(2) };
}

fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Ctrl-C and friends set a flag (handled here: the tracer thread blocks them): the reader
/// finishes the read in progress, skips the threads not read yet, releases every thread and exits
/// 130 (see `on_signal` for what happens if that does not come soon).
fn install_signal_flag() {
    for sig in TERMINATION_SIGNALS.into_iter().chain([libc::SIGALRM]) {
        // Safety: a zeroed sigaction is valid; the handler only stores to an atomic, calls alarm
        // or _exit, all async-signal-safe.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

fn permission_hint() -> String {
    let scope = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        .map(|s| format!("/proc/sys/kernel/yama/ptrace_scope is {}", s.trim()))
        .unwrap_or_else(|_| "Yama is not enabled (no /proc/sys/kernel/yama/ptrace_scope)".into());
    format!(
        "otel-ctx-dump reads the target with ptrace and process_vm_readv: run it as the target's user \
         with /proc/sys/kernel/yama/ptrace_scope at 0 (at 1 only ancestors may trace), or with \
         CAP_SYS_PTRACE (e.g. sudo), which also covers ptrace_scope 1 and 2 (3 forbids attaching). {scope}."
    )
}

/// Why no thread could be stopped: the other tracer(s) holding them, or else the rights needed.
fn denied_hint(s: &Snapshot) -> String {
    let mut tracers: Vec<String> = s
        .threads
        .iter()
        .filter_map(|t| match &t.error {
            Some(ThreadProblem::TracedBy { pid, name, .. }) => Some(format!("process {pid} ({})", printable(name))),
            _ => None,
        })
        .collect();
    tracers.dedup();
    if tracers.is_empty() {
        return permission_hint();
    }
    format!(
        "The threads are already traced by {}: a thread takes one tracer at a time. Detach it (or let it finish) first.",
        tracers.join(", ")
    )
}

fn report_error(pid: i32, e: &InspectError) -> i32 {
    let message = match e {
        InspectError::NoSuchProcess => format!("no such process: {pid}"),
        InspectError::Zombie(parent) => format!(
            "process {pid}: the process is a zombie: it has exited and its parent {parent} has not reaped it yet; nothing is left to read"
        ),
        InspectError::KernelThread => format!("process {pid}: this is a kernel thread: it has no user space to read"),
        InspectError::PermissionDenied(what) => format!("permission denied: {what}\n{}", permission_hint()),
        InspectError::Io(message) => message.clone(),
    };
    eprintln!("otel-ctx-dump: {message}");
    match e {
        InspectError::NoSuchProcess | InspectError::Zombie(_) => exit::NO_SUCH_PROCESS,
        InspectError::PermissionDenied(_) => exit::PERMISSION_DENIED,
        _ => exit::FAILURE,
    }
}

/// Every output ends in a newline, which flushes stdout; a closed pipe is not an error here.
/// The text is made inert on the way (JSON already is).
fn put(out: &str) {
    let _ = std::io::stdout().write_all(escape::inert(out).as_bytes());
}

/// The process, held from the start (a pid reused by another process is not this one), and an
/// inspector that stops at Ctrl-C.
fn open(pid: i32) -> Result<(ProcessHandle, Inspector), InspectError> {
    let handle = ProcessHandle::open(pid).map_err(|_| InspectError::NoSuchProcess)?;
    let mut inspector = Inspector::new(pid);
    inspector.cancel_on(&INTERRUPTED);
    Ok((handle, inspector))
}

fn once(o: &Options) -> Result<i32, InspectError> {
    let snapshot = open(o.pid)?.1.snapshot(o.thread)?;
    put(&if o.json {
        json::to_string(&snapshot) + "\n"
    } else {
        output::text(&snapshot)
    });
    let code = output::exit_code(&snapshot);
    let pid = o.pid;
    match code {
        _ if o.json => {}
        exit::PERMISSION_DENIED => eprintln!("otel-ctx-dump: no thread could be stopped.\n{}", denied_hint(&snapshot)),
        exit::NO_MODULE => eprintln!(
            "otel-ctx-dump: no module mapped in process {pid} exports otel_thread_ctx_v1 (is the library loaded yet?)"
        ),
        exit::NO_PROCESS_CONTEXT => {
            eprintln!("otel-ctx-dump: process {pid} has no valid process context: attribute names are unknown")
        }
        _ => {}
    }
    Ok(if interrupted() { exit::INTERRUPTED } else { code })
}

/// What a `--watch` line is about; items of two samples are compared by value to tell a change.
#[derive(PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Item<'a> {
    ProcessContext {
        process_context: &'a ContextStatus,
    },
    Module {
        module: &'a Module,
    },
    Thread(Row<'a>),
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
struct WatchLine<'a> {
    elapsed_s: f64,
    event: &'static str,
    #[serde(flatten)]
    item: &'a Item<'a>,
}

/// A sample's items, keyed.
fn items(s: &Snapshot) -> BTreeMap<String, Item<'_>> {
    let process_context = &s.process_context;
    let mut items = BTreeMap::from([("context".to_owned(), Item::ProcessContext { process_context })]);
    for m in &s.modules {
        items.insert(format!("module {}", m.path), Item::Module { module: m });
    }
    for t in &s.threads {
        for (i, row) in t.rows().into_iter().enumerate() {
            items.insert(format!("thread {} {i}", t.tid), Item::Thread(row));
        }
    }
    items
}

fn watch(o: &Options, interval: Duration) -> Result<i32, InspectError> {
    let (handle, mut inspector) = open(o.pid)?;
    let start = Instant::now();
    let emit = |event: &'static str, s: &Snapshot, item: &Item| {
        let t = start.elapsed().as_secs_f64();
        if o.json {
            // Milliseconds are what the text shows too.
            let elapsed_s = (t * 1000.0).round() / 1000.0;
            return put(&(json::to_string(&WatchLine { elapsed_s, event, item }) + "\n"));
        }
        let text = match item {
            Item::ProcessContext { process_context } => output::context_line(process_context),
            Item::Module { module } => format!("module {}", output::module_text(module)),
            Item::Thread(row) => format!("tid {}", output::row_text(s, row)),
            Item::ThreadGone { tid } => format!("tid {tid} exited"),
            Item::Process { .. } => format!("process {} exited", o.pid),
        };
        let mark = match event {
            "new" => "+",
            "gone" => "-",
            _ => "~",
        };
        put(&format!("[{t:8.3}s] {mark} {text}\n"));
    };
    let mut previous: Option<Snapshot> = None;
    for samples in 1u64.. {
        if interrupted() {
            break;
        }
        let now = match inspector.snapshot(o.thread) {
            // A sample taken after the process exited may be another process's.
            _ if handle.exited() => Err(InspectError::NoSuchProcess),
            now => now,
        };
        let now = match now {
            Ok(s) => s,
            Err(InspectError::NoSuchProcess | InspectError::Zombie(_)) if previous.is_some() => {
                emit("gone", previous.as_ref().unwrap(), &Item::Process { state: "exited" });
                return Ok(exit::OK);
            }
            Err(e) => return Err(e),
        };
        if interrupted() {
            // The sample was cut short: its skipped threads are no change to report.
            break;
        }
        {
            let (before, after) = (previous.as_ref().map(items).unwrap_or_default(), items(&now));
            for (key, item) in &after {
                match before.get(key) {
                    None => emit("new", &now, item),
                    Some(old) if old != item => emit("changed", &now, item),
                    Some(_) => {}
                }
            }
            // A thread's rows are adjacent: report it gone once.
            let mut last_gone = None;
            for (key, item) in &before {
                if let Item::Thread(Row { tid, .. }) = *item {
                    if !after.contains_key(key) && last_gone.replace(tid) != Some(tid) {
                        emit("gone", &now, &Item::ThreadGone { tid });
                    }
                }
            }
        }
        previous = Some(now);
        if o.samples.is_some_and(|n| samples >= n) {
            return Ok(exit::OK);
        }
        let until = Instant::now() + interval;
        while Instant::now() < until && !interrupted() {
            std::thread::sleep((until - Instant::now()).min(Duration::from_millis(50)));
        }
    }
    Ok(exit::INTERRUPTED)
}

/// `otel-ctx-dump check`: one snapshot judged by every rule, then `--duration` of updates.
fn check(o: &CheckOptions) -> Result<i32, InspectError> {
    let (handle, mut inspector) = open(o.pid)?;
    let snapshot = inspector.snapshot(None)?;
    let (maps, view) = inspector.address_space()?;
    let mem = ProcessMemory { pid: view };
    let mut findings = check::run(&snapshot, &maps, &mem, Clock::of_process(o.pid));
    if let Some(duration) = o.duration {
        let read_maps = || maps::read(view);
        let first = snapshot.process_context.addr();
        let seen = check::sample_updates(&read_maps, &mem, first, duration, &interrupted);
        findings.extend(check::update_findings(&seen, duration));
    }
    if interrupted() {
        return Ok(exit::INTERRUPTED);
    }
    if handle.exited() {
        return Err(InspectError::NoSuchProcess);
    }
    put(&if o.json {
        json::check_report(&snapshot, &findings) + "\n"
    } else {
        output::check_text(&snapshot, &findings)
    });
    Ok(check::exit_code(&findings))
}

fn main() {
    let command = cli::parse_command(std::env::args().skip(1)).unwrap_or_else(|e| {
        eprintln!("otel-ctx-dump: {e}\n\n{}", cli::USAGE);
        std::process::exit(exit::USAGE)
    });
    install_signal_flag();
    let (pid, result) = match command {
        Command::Check(o) => (o.pid, check(&o)),
        Command::Dump(o) => (o.pid, o.watch.map_or_else(|| once(&o), |interval| watch(&o, interval))),
    };
    std::process::exit(result.unwrap_or_else(|e| report_error(pid, &e)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_lines_keep_their_shape() {
        let line = |elapsed_s, event, item| json::to_string(&WatchLine { elapsed_s, event, item });
        assert_eq!(
            line(1.5, "gone", &Item::ThreadGone { tid: 7 }),
            r#"{"elapsed_s":1.5,"event":"gone","kind":"thread","tid":7}"#
        );
        assert_eq!(
            line(
                0.25,
                "new",
                &Item::ProcessContext {
                    process_context: &ContextStatus::Absent
                }
            ),
            r#"{"elapsed_s":0.25,"event":"new","kind":"process_context","process_context":{"status":"absent"}}"#
        );
    }
}
