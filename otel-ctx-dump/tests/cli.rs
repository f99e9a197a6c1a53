//! The binary's command line, output formats and exit codes.

mod support;

use otel_ctx_dump::output::exit;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;
use support::{c_source, dump, gcc, Json, Target};

/// A target that publishes thread contexts through libotel_thread_ctx.so but no process context.
fn counter_target(dir: &std::path::Path) -> Target {
    let exe = support::gcc_linked(dir, "counter.c", "counter");
    let target = Target::spawn(&mut Command::new(&exe));
    assert_eq!(target.line(Duration::from_secs(30)), "ready");
    target
}

#[test]
fn usage_errors_exit_2() {
    for args in [&[][..], &["notapid"], &["--watch"], &["--bogus", "1"], &["1", "2"]] {
        let (code, _, err) = dump(args);
        assert_eq!(code, exit::USAGE, "{args:?}");
        assert!(err.contains("usage: otel-ctx-dump"), "{err}");
    }
    // Help and version go to stdout, exactly.
    for args in [&["--help"][..], &["-h"], &["--json", "--help"]] {
        let (code, out, _) = dump(args);
        assert_eq!((code, out.as_str()), (0, otel_ctx_dump::cli::USAGE), "{args:?}");
    }
    for args in [&["-V"][..], &["--version"]] {
        let (code, out, _) = dump(args);
        assert_eq!(
            (code, out),
            (0, format!("otel-ctx-dump {}\n", env!("CARGO_PKG_VERSION")))
        );
    }
}

#[test]
fn no_such_process_exits_3() {
    // A pid above the kernel's maximum can never exist.
    let max: i64 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let (code, _, err) = dump(&[&(max + 1).to_string()]);
    assert_eq!(code, exit::NO_SUCH_PROCESS, "{err}");
    assert!(err.contains("no such process"), "{err}");
}

#[test]
fn process_without_the_symbol_exits_5() {
    let target = Target::spawn(Command::new("sleep").arg("60"));
    std::thread::sleep(Duration::from_millis(100));
    let (code, out, err) = dump(&[&target.pid().to_string()]);
    assert_eq!(code, exit::NO_MODULE, "{out}{err}");
    assert!(out.contains("modules exporting otel_thread_ctx_v1: none"), "{out}");
    assert!(err.contains("no module"), "{err}");
}

#[test]
fn permission_denied_exits_4_and_says_what_is_needed() {
    // Only meaningful when we can drop to another user that then cannot trace our child.
    // Safety: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to run the reader as another user");
        return;
    }
    let target = Target::spawn(Command::new("sleep").arg("60"));
    // The build directory may sit under a directory nobody cannot enter (a checkout in a
    // `mktemp -d` dir is mode 0700): run a copy from a directory everyone may enter (under
    // /tmp itself, not $TMPDIR, which may be private too).
    let dir = tempfile::tempdir_in("/tmp").unwrap();
    let copy = dir.path().join("otel-ctx-dump");
    std::fs::copy(support::dump_binary(), &copy).unwrap();
    use std::os::unix::fs::PermissionsExt;
    for (path, mode) in [(dir.path(), 0o755), (copy.as_path(), 0o755)] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let mut cmd = Command::new(&copy);
    cmd.arg(target.pid().to_string());
    // Safety: setgid/setuid are async-signal-safe and only affect the child about to exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setgid(65534) != 0 || libc::setuid(65534) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().expect("run as nobody");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(exit::PERMISSION_DENIED), "{err}");
    assert!(err.contains("permission denied"), "{err}");
    assert!(err.contains("CAP_SYS_PTRACE") && err.contains("ptrace_scope"), "{err}");
}

#[test]
fn json_thread_filter_and_missing_process_context() {
    let dir = tempfile::tempdir().unwrap();
    let target = counter_target(dir.path());
    let pid = target.pid().to_string();

    // The spinners spend much of their time inside the update window (valid = 0, "being
    // updated"): read until one is caught outside it.
    let mut attempts = 0;
    let (code, out) = loop {
        let (code, out, _) = dump(&["--json", &pid]);
        attempts += 1;
        if out.contains(r#""state":"active""#) || attempts == 20 {
            break (code, out);
        }
    };
    assert_eq!(
        code,
        exit::NO_PROCESS_CONTEXT,
        "threads are read, the context is absent"
    );
    let json = Json::parse(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(json.get("process_context").get("status").str(), Some("absent"));
    assert_eq!(json.get("exit_code").num(), Some(exit::NO_PROCESS_CONTEXT as f64));
    let threads = json.get("threads").arr();
    assert_eq!(threads.len(), 4);
    let active: Vec<&Json> = threads
        .iter()
        .filter(|t| t.get("state").str() == Some("active"))
        .collect();
    assert!(!active.is_empty(), "{out}");
    for t in &active {
        assert_eq!(t.get("trace_id").str().map(str::len), Some(32));
        assert_eq!(t.get("flags").num(), Some(1.0));
    }

    // --thread: only that thread.
    let tid = active[0].get("tid").num().unwrap() as i32;
    let (_, out, _) = dump(&["--json", "--thread", &tid.to_string(), &pid]);
    let json = Json::parse(out.trim()).unwrap();
    let threads = json.get("threads").arr();
    assert_eq!(threads.len(), 1);
    assert_eq!(threads[0].get("tid").num(), Some(f64::from(tid)));
    let (code, _, err) = dump(&["--thread", "1", &pid]);
    assert_eq!(code, exit::FAILURE);
    assert!(err.contains("no thread 1"), "{err}");

    // Text: the missing context is said, threads are still listed.
    let (_, out, err) = dump(&[&pid]);
    assert!(out.contains("process context: absent"), "{out}");
    assert!(out.contains("threads: 4"), "{out}");
    assert!(err.contains("no valid process context"), "{err}");
}

#[test]
fn watch_prints_changes_only() {
    let dir = tempfile::tempdir().unwrap();
    let target = counter_target(dir.path());
    let pid = target.pid().to_string();
    let (code, out, err) = dump(&["--json", "--watch", "0.05", "--samples", "5", &pid]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<Json> = out
        .lines()
        .map(|l| Json::parse(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    // First sample: the context, the module and the 4 threads are new.
    let new: Vec<&Json> = lines.iter().filter(|l| l.get("event").str() == Some("new")).collect();
    assert_eq!(new.len(), 1 + 1 + 4, "{out}");
    // The spinners change their span on every loop: later samples report changes for them,
    // never for the idle main thread (whose state does not change).
    let changed: Vec<&Json> = lines
        .iter()
        .filter(|l| l.get("event").str() == Some("changed"))
        .collect();
    assert!(!changed.is_empty(), "{out}");
    let main = target.pid() as f64;
    assert!(changed.iter().all(|l| l.get("tid").num() != Some(main)), "{out}");
    assert!(
        changed.len() <= 4 * 2,
        "at most the two spinners per later sample: {out}"
    );

    // The watch ends when the process exits.
    let mut watcher = Command::new(support::dump_binary())
        .args(["--watch", "0.05", &pid])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    drop(target); // kills the target
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = watcher.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = watcher.kill();
            panic!("watch did not end with the process");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    let mut text = String::new();
    std::io::Read::read_to_string(watcher.stdout.as_mut().unwrap(), &mut text).unwrap();
    assert!(text.contains(&format!("process {pid} exited")), "{text}");
}

#[test]
fn interrupt_releases_threads_and_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    let target = counter_target(dir.path());
    let pid = target.pid();
    let watcher = Target::spawn(Command::new(support::dump_binary()).args(["--watch", "0.001", &pid.to_string()]));
    let mut watcher = watcher;
    let _ = watcher.line(Duration::from_secs(10));
    // Interrupt at an arbitrary moment, most likely while it is stopping or reading a thread.
    std::thread::sleep(Duration::from_millis(200));
    // Safety: sends SIGINT to our own child.
    assert_eq!(unsafe { libc::kill(watcher.pid(), libc::SIGINT) }, 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = watcher.child.try_wait().unwrap() {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "watcher ignored SIGINT");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(exit::INTERRUPTED));
    for (tid, state) in support::thread_states(pid) {
        assert!(!matches!(state, 't' | 'T'), "thread {tid} left in state {state}");
    }
}

/// Characters that act on a terminal: C0 controls other than the line feeds the report itself
/// writes, DEL, and the C1 controls (U+0080..U+009F, e.g. CSI U+009B).
fn terminal_controls(s: &str) -> Vec<char> {
    s.chars().filter(|&c| c != '\n' && c.is_control()).collect()
}

#[test]
fn strings_from_the_target_are_escaped_in_text_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let include = format!("-I{}", support::workspace_root().join("include").display());
    gcc(
        dir.path(),
        &[
            "-std=c11",
            "-O2",
            "-pthread",
            &include,
            "-o",
            "hostile",
            &c_source("hostile_names.c"),
            "-ldl",
        ],
    );
    // The module's file name carries an escape sequence too (it shows in /proc/PID/maps).
    let lib = dir.path().join("libotel\x1b[7m.so");
    std::fs::copy(support::library_dir().join("libotel_thread_ctx.so"), &lib).unwrap();
    let target = Target::spawn(Command::new(dir.path().join("hostile")).arg(&lib));
    assert_eq!(target.line(Duration::from_secs(30)), "ready");
    let pid = target.pid().to_string();

    let (code, out, err) = dump(&[&pid]);
    assert_eq!(code, exit::OK, "{out}{err}");
    assert_eq!(terminal_controls(&out), Vec::<char>::new(), "{out:?}");
    assert_eq!(terminal_controls(&err), Vec::<char>::new(), "{err:?}");
    // Every line is one the report wrote: no name broke a line in two.
    assert!(
        out.lines()
            .any(|l| l.contains("\\u{1b}[31mW\\r\\nX\\u{7f}") && l.contains("1111")),
        "{out}"
    );
    assert!(
        out.contains("0=route\\u{1b}[2J 1=line\\nbreak\\r 2=c1\\u{9b}x"),
        "{out}"
    );
    assert!(out.contains("service.name\\u{1b}[5m = "), "{out}");
    assert!(out.contains("libotel\\u{1b}[7m.so"), "{out}");
    assert!(out.contains("\\u{1b}]0;T\\u{7}M"), "{out}");

    let (code, out, _) = dump(&["--json", &pid]);
    assert_eq!(code, exit::OK);
    assert_eq!(terminal_controls(&out), vec!['\n'; 0], "{out:?}");
    let json = Json::parse(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(json.get("command").str(), Some("\x1b]0;T\x07M"));
    let names: Vec<&str> = json
        .get("threads")
        .arr()
        .iter()
        .filter_map(|t| t.get("name").str())
        .collect();
    assert!(names.contains(&"\x1b[31mW\r\nX\x7f"), "{names:?}");
    let keys: Vec<&str> = json
        .get("process_context")
        .get("attribute_key_map")
        .arr()
        .iter()
        .filter_map(Json::str)
        .collect();
    assert_eq!(keys, ["route\x1b[2J", "line\nbreak\r", "c1\u{9b}x"]);
    let modules = json.get("modules").arr();
    assert_eq!(modules[0].get("path").str(), Some(lib.to_str().unwrap()));

    // --watch lines too.
    let (code, out, _) = dump(&["--watch", "0.05", "--samples", "1", &pid]);
    assert_eq!(code, exit::OK);
    assert_eq!(terminal_controls(&out), Vec::<char>::new(), "{out:?}");
}
