//! Targets that are awkward to read: a main thread that called pthread_exit, a thread blocked
//! in vfork, zombies and kernel threads, a process another tracer holds.

mod support;

use otel_ctx_dump::output::exit;
use std::process::Command;
use std::time::Duration;
use support::{dump, gcc_linked, wait_for_state, Json, Target};

#[test]
fn main_thread_that_called_pthread_exit_is_read_through_a_live_thread() {
    let dir = tempfile::tempdir().unwrap();
    let exe = gcc_linked(dir.path(), "leader_exit.c", "leader_exit");
    let target = Target::spawn(&mut Command::new(exe));
    let ready = target.line(Duration::from_secs(30));
    let worker: i32 = ready.strip_prefix("ready ").unwrap().parse().unwrap();
    let pid = target.pid();
    // The leader is a zombie now, and its /proc/PID/maps is empty.
    wait_for_state(pid, pid, &['Z'], Duration::from_secs(10));
    assert_eq!(std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap(), "");

    let (code, out, err) = dump(&["--json", &pid.to_string()]);
    assert_eq!(code, exit::OK, "{out}{err}");
    let json = Json::parse(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(
        json.get("process_context").get("status").str(),
        Some("present"),
        "{out}"
    );
    assert_eq!(json.get("modules").arr().len(), 1, "{out}");
    let threads = json.get("threads").arr();
    let w = threads
        .iter()
        .find(|t| t.get("tid").num() == Some(f64::from(worker)))
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(w.get("state").str(), Some("active"), "{out}");
    assert_eq!(w.get("trace_id").str(), Some("5a".repeat(16).as_str()), "{out}");

    let (code, out, err) = dump(&[&pid.to_string()]);
    assert_eq!(code, exit::OK, "{out}{err}");
    assert!(out.contains("service.name = \"leader-exit\""), "{out}");
}
