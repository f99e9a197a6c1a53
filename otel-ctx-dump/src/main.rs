//! `otel-ctx-dump PID`: see `otel-ctx-dump --help` and the README.

use otel_ctx_dump::cli::{self, Command, Options};
use otel_ctx_dump::inspect::{
    ContextStatus, InspectError, Inspector, Module, SlotRead, Snapshot, ThreadProblem, TracerInfo,
};
use otel_ctx_dump::json::{self, ContextJson, ModuleJson, ThreadJson, WatchItem, WatchLine};
use otel_ctx_dump::output::{self, exit, EntryBody, ThreadEntry};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Ctrl-C and friends only set a flag: the reader finishes the read in progress, skips the
/// threads not read yet, releases the thread it holds (the tracer thread blocks these signals,
/// so the handler runs here) and exits with code 130.
fn install_signal_flag() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
        // Safety: a zeroed sigaction is valid; the handler only stores to an atomic, which is
        // async-signal-safe.
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
    let mut tracers: Vec<&TracerInfo> = s
        .threads
        .iter()
        .filter_map(|t| match &t.error {
            Some(ThreadProblem::TracedBy(tracer)) => Some(tracer),
            _ => None,
        })
        .collect();
    tracers.dedup_by_key(|t| t.pid);
    if tracers.is_empty() {
        return permission_hint();
    }
    let names: Vec<String> = tracers
        .iter()
        .map(|t| format!("process {} ({})", t.pid, output::printable(&t.name)))
        .collect();
    format!(
        "The threads are already traced by {}: a thread takes one tracer at a time. Detach it (or let it finish) first.",
        names.join(", ")
    )
}

fn report_error(pid: i32, e: &InspectError) -> i32 {
    match e {
        InspectError::NoSuchProcess => {
            eprintln!("otel-ctx-dump: no such process: {pid}");
            exit::NO_SUCH_PROCESS
        }
        InspectError::Zombie { .. } => {
            eprintln!("otel-ctx-dump: process {pid}: {e}");
            exit::NO_SUCH_PROCESS
        }
        InspectError::KernelThread => {
            eprintln!("otel-ctx-dump: process {pid}: {e}");
            exit::FAILURE
        }
        InspectError::PermissionDenied(what) => {
            eprintln!("otel-ctx-dump: permission denied: {what}\n{}", permission_hint());
            exit::PERMISSION_DENIED
        }
        InspectError::Io(msg) => {
            eprintln!("otel-ctx-dump: {msg}");
            exit::FAILURE
        }
    }
}

fn once(o: &Options) -> i32 {
    let mut inspector = Inspector::new(o.pid);
    inspector.cancel_on(&INTERRUPTED);
    let snapshot = match inspector.snapshot(o.thread) {
        Ok(s) => s,
        Err(e) => return report_error(o.pid, &e),
    };
    let out = if o.json {
        output::json(&snapshot) + "\n"
    } else {
        output::text(&snapshot)
    };
    let _ = std::io::stdout().write_all(out.as_bytes());
    let code = output::exit_code(&snapshot);
    if !o.json {
        match code {
            exit::PERMISSION_DENIED => {
                eprintln!("otel-ctx-dump: no thread could be stopped.\n{}", denied_hint(&snapshot))
            }
            exit::NO_MODULE => eprintln!(
                "otel-ctx-dump: no module mapped in process {} exports otel_thread_ctx_v1 \
                 (is the library loaded yet?)",
                o.pid
            ),
            exit::NO_PROCESS_CONTEXT => eprintln!(
                "otel-ctx-dump: process {} has no valid process context: attribute names are unknown",
                o.pid
            ),
            _ => {}
        }
    }
    if INTERRUPTED.load(Ordering::SeqCst) {
        return exit::INTERRUPTED;
    }
    code
}

/// What a watched item was last seen as; compared by value to tell a change.
#[derive(PartialEq)]
enum Watched {
    Context(ContextStatus),
    Module(Module),
    /// A thread entry, and the key names its attributes are shown with (a key-map change
    /// changes the line).
    Thread(ThreadEntry, Vec<Option<String>>),
}

/// A snapshot's watched items, keyed.
fn watched(s: &Snapshot) -> Vec<(String, Watched)> {
    let mut items = vec![("context".to_owned(), Watched::Context(s.process_context.clone()))];
    for m in &s.modules {
        items.push((format!("module {}", m.path), Watched::Module(m.clone())));
    }
    for t in &s.threads {
        for (i, e) in output::thread_entries(t).into_iter().enumerate() {
            let keys = match &e.body {
                EntryBody::Read {
                    read: SlotRead::Record { record, .. },
                    ..
                } => record
                    .attributes
                    .iter()
                    .map(|a| s.key_name(a.key_index).map(str::to_owned))
                    .collect(),
                _ => Vec::new(),
            };
            items.push((format!("thread {} {i}", t.tid), Watched::Thread(e, keys)));
        }
    }
    items
}

/// Prints one `--watch` line: `event` is "new", "changed" or "gone".
fn emit(json: bool, start: Instant, event: &'static str, text: String, item: WatchItem<'_>) {
    let t = start.elapsed().as_secs_f64();
    let out = if json {
        let line = WatchLine {
            // Milliseconds are what the text shows too.
            elapsed_s: (t * 1000.0).round() / 1000.0,
            event,
            item,
        };
        json::to_string(&line) + "\n"
    } else {
        let mark = match event {
            "new" => "+",
            "gone" => "-",
            _ => "~",
        };
        format!("[{t:8.3}s] {mark} {text}\n")
    };
    let mut stdout = std::io::stdout();
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();
}

/// Prints a new or changed item.
fn emit_item(json: bool, start: Instant, event: &'static str, s: &Snapshot, w: &Watched) {
    let (text, item) = match w {
        Watched::Context(c) => (
            output::context_line(c),
            WatchItem::ProcessContext {
                process_context: ContextJson::new(c),
            },
        ),
        Watched::Module(m) => (
            format!("module {}", output::module_text(m)),
            WatchItem::Module {
                module: ModuleJson::new(m),
            },
        ),
        Watched::Thread(e, _) => (
            format!("tid {}", output::entry_text(s, e)),
            WatchItem::Thread(ThreadJson::new(s, e)),
        ),
    };
    emit(json, start, event, text, item);
}

fn watch(o: &Options, interval: Duration) -> i32 {
    let mut inspector = Inspector::new(o.pid);
    inspector.cancel_on(&INTERRUPTED);
    let start = Instant::now();
    let mut previous: BTreeMap<String, Watched> = BTreeMap::new();
    let mut samples = 0u64;
    loop {
        if INTERRUPTED.load(Ordering::SeqCst) {
            return exit::INTERRUPTED;
        }
        let snapshot = match inspector.snapshot(o.thread) {
            Ok(s) => s,
            Err(InspectError::NoSuchProcess | InspectError::Zombie { .. }) if samples > 0 => {
                let text = format!("process {} exited", o.pid);
                emit(o.json, start, "gone", text, WatchItem::Process { state: "exited" });
                return exit::OK;
            }
            Err(e) => return report_error(o.pid, &e),
        };
        if INTERRUPTED.load(Ordering::SeqCst) {
            // The sample was cut short: its skipped threads are no change to report.
            return exit::INTERRUPTED;
        }
        let current: BTreeMap<String, Watched> = watched(&snapshot).into_iter().collect();
        for (key, item) in &current {
            match previous.get(key) {
                None => emit_item(o.json, start, "new", &snapshot, item),
                Some(old) if old != item => emit_item(o.json, start, "changed", &snapshot, item),
                Some(_) => {}
            }
        }
        let mut gone: Vec<i32> = previous
            .iter()
            .filter(|(key, _)| !current.contains_key(*key))
            .filter_map(|(_, w)| match w {
                Watched::Thread(e, _) => Some(e.tid),
                _ => None,
            })
            .collect();
        gone.dedup();
        for tid in gone {
            emit(
                o.json,
                start,
                "gone",
                format!("tid {tid} exited"),
                WatchItem::ThreadGone { tid },
            );
        }
        previous = current;
        samples += 1;
        if o.samples.is_some_and(|n| samples >= n) {
            return exit::OK;
        }
        let until = Instant::now() + interval;
        while Instant::now() < until {
            if INTERRUPTED.load(Ordering::SeqCst) {
                return exit::INTERRUPTED;
            }
            std::thread::sleep((until - Instant::now()).min(Duration::from_millis(50)));
        }
    }
}

fn main() {
    let code = match cli::parse(std::env::args().skip(1)) {
        Ok(Command::Help) => {
            print!("{}", cli::USAGE);
            exit::OK
        }
        Ok(Command::Version) => {
            println!("otel-ctx-dump {}", env!("CARGO_PKG_VERSION"));
            exit::OK
        }
        Ok(Command::Run(o)) => {
            install_signal_flag();
            match o.watch {
                Some(interval) => watch(&o, interval),
                None => once(&o),
            }
        }
        Err(e) => {
            eprintln!("otel-ctx-dump: {e}\n\n{}", cli::USAGE);
            exit::USAGE
        }
    };
    std::process::exit(code);
}
