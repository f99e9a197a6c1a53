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

#[test]
fn zombie_process_is_named_as_such() {
    // `true` exits at once; this test, its parent, does not reap it until the end.
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id() as i32;
    wait_for_state(pid, pid, &['Z'], Duration::from_secs(10));
    let (code, out, err) = dump(&[&pid.to_string()]);
    let _ = child.wait();
    assert_eq!(code, exit::NO_SUCH_PROCESS, "{out}{err}");
    assert!(err.contains("zombie"), "{err}");
    assert!(err.contains(&format!("parent {}", std::process::id())), "{err}");
    assert!(!err.contains("library loaded"), "{err}");
}

/// A kernel thread visible in this PID namespace, found by its PF_KTHREAD flag.
fn some_kernel_thread() -> Option<i32> {
    std::fs::read_dir("/proc").ok()?.find_map(|e| {
        let pid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let flags: u64 = stat[stat.rfind(')')? + 1..].split_whitespace().nth(6)?.parse().ok()?;
        (flags & 0x0020_0000 != 0).then_some(pid)
    })
}

#[test]
fn kernel_thread_is_named_as_such() {
    let Some(pid) = some_kernel_thread() else {
        // A container with its own PID namespace shows none; the classification itself is
        // covered by the inspector's unit tests.
        eprintln!("not checked here: no kernel thread is visible in this PID namespace");
        return;
    };
    let (code, out, err) = dump(&[&pid.to_string()]);
    assert_eq!(code, exit::FAILURE, "{out}{err}");
    assert!(err.contains("kernel thread"), "{err}");
    assert!(!err.contains("library loaded"), "{err}");
}

/// Holds every thread of a process as this thread's tracees (PTRACE_SEIZE: they keep running);
/// releases them when dropped, so the process can then be killed and reaped normally.
struct OtherTracer(Vec<i32>);

impl OtherTracer {
    fn seize_all(pid: i32) -> OtherTracer {
        let tids = otel_ctx_dump::inspect::thread_ids(pid).unwrap();
        for &tid in &tids {
            // Safety: PTRACE_SEIZE takes no pointers.
            let r = unsafe { libc::ptrace(libc::PTRACE_SEIZE, tid, 0usize, 0usize) };
            assert_eq!(r, 0, "seize {tid}: {}", std::io::Error::last_os_error());
        }
        OtherTracer(tids)
    }
}

impl Drop for OtherTracer {
    fn drop(&mut self) {
        for &tid in &self.0 {
            // Safety: stops our own tracee, waits for that stop, and detaches it; no pointers
            // but `status`, a valid out-parameter.
            unsafe {
                libc::ptrace(libc::PTRACE_INTERRUPT, tid, 0usize, 0usize);
                let mut status = 0;
                libc::waitpid(tid, &mut status, libc::__WALL);
                libc::ptrace(libc::PTRACE_DETACH, tid, 0usize, 0usize);
            }
        }
    }
}

#[test]
fn target_held_by_another_tracer_names_the_tracer() {
    let dir = tempfile::tempdir().unwrap();
    let exe = support::gcc_linked(dir.path(), "counter.c", "counter");
    let target = Target::spawn(&mut Command::new(exe));
    assert_eq!(target.line(Duration::from_secs(30)), "ready");
    let pid = target.pid();
    let me = std::process::id().to_string();
    let tracer = OtherTracer::seize_all(pid);

    let (code, out, err) = dump(&[&pid.to_string()]);
    assert_eq!(code, exit::PERMISSION_DENIED, "{out}{err}");
    assert!(err.contains("traced by") && err.contains(&me), "{err}");
    assert!(
        !err.contains("ptrace_scope"),
        "the tracer, not the ptrace policy, is in the way: {err}"
    );
    assert!(out.contains("traced by process"), "{out}");

    let (_, out, _) = dump(&["--json", &pid.to_string()]);
    let json = Json::parse(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    for t in json.get("threads").arr() {
        assert_eq!(t.get("reason").str(), Some("traced"), "{out}");
        assert_eq!(t.get("tracer_pid").num(), Some(me.parse::<f64>().unwrap()), "{out}");
    }
    drop(tracer);
}
