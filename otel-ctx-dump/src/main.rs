//! `otel-ctx-dump PID`: see `otel-ctx-dump --help` and the README.

use otel_ctx_dump::cli::{self, Command, Options};
use otel_ctx_dump::inspect::{InspectError, Inspector, Snapshot, ThreadProblem, TracerInfo};
use otel_ctx_dump::output::{self, exit};
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

/// Keyed lines of a snapshot for change detection: (key, fingerprint, rendering).
fn watch_entries(s: &Snapshot, json: bool) -> Vec<(String, String, String)> {
    let mut entries = Vec::new();
    let fp = output::json_context(&s.process_context);
    let line = if json {
        format!(r#""kind":"process_context","process_context":{fp}"#)
    } else {
        output::context_line(&s.process_context)
    };
    entries.push(("context".to_owned(), fp, line));
    for m in &s.modules {
        let fp = output::json_module(m);
        let line = if json {
            format!(r#""kind":"module","module":{fp}"#)
        } else {
            format!("module {}", output::module_text(m))
        };
        entries.push((format!("module {}", m.path), fp, line));
    }
    for t in &s.threads {
        let jsons = output::json_thread_entries(s, t);
        let texts = output::thread_lines(s, t);
        for (i, (j, text)) in jsons.into_iter().zip(texts).enumerate() {
            let line = if json {
                format!(r#""kind":"thread",{}"#, &j[1..j.len() - 1])
            } else {
                format!("tid {text}")
            };
            entries.push((format!("thread {} {i}", t.tid), j, line));
        }
    }
    entries
}

fn emit(json: bool, start: Instant, event: &str, line: &str) {
    let t = start.elapsed().as_secs_f64();
    let out = if json {
        format!("{{\"elapsed_s\":{t:.3},\"event\":\"{event}\",{line}}}\n")
    } else {
        let mark = match event {
            "new" => "+",
            "gone" => "-",
            _ => "~",
        };
        format!("[{t:8.3}s] {mark} {line}\n")
    };
    let mut stdout = std::io::stdout();
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();
}

fn watch(o: &Options, interval: Duration) -> i32 {
    let mut inspector = Inspector::new(o.pid);
    inspector.cancel_on(&INTERRUPTED);
    let start = Instant::now();
    let mut previous: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut samples = 0u64;
    loop {
        if INTERRUPTED.load(Ordering::SeqCst) {
            return exit::INTERRUPTED;
        }
        let snapshot = match inspector.snapshot(o.thread) {
            Ok(s) => s,
            Err(InspectError::NoSuchProcess | InspectError::Zombie { .. }) if samples > 0 => {
                let line = if o.json {
                    r#""kind":"process","state":"exited""#.to_owned()
                } else {
                    format!("process {} exited", o.pid)
                };
                emit(o.json, start, "gone", &line);
                return exit::OK;
            }
            Err(e) => return report_error(o.pid, &e),
        };
        if INTERRUPTED.load(Ordering::SeqCst) {
            // The sample was cut short: its skipped threads are no change to report.
            return exit::INTERRUPTED;
        }
        let mut current = BTreeMap::new();
        for (key, fp, line) in watch_entries(&snapshot, o.json) {
            match previous.get(&key) {
                None => emit(o.json, start, "new", &line),
                Some((old, _)) if *old != fp => emit(o.json, start, "changed", &line),
                Some(_) => {}
            }
            current.insert(key, (fp, line));
        }
        for (key, (_, line)) in &previous {
            if !current.contains_key(key) && key.starts_with("thread ") {
                let tid = key.split(' ').nth(1).unwrap_or("?");
                let gone = if o.json {
                    format!(r#""kind":"thread","tid":{tid}"#)
                } else {
                    format!("tid {tid} exited")
                };
                let _ = line;
                emit(o.json, start, "gone", &gone);
            }
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
