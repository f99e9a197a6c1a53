//! Targets that are awkward to read: a main thread that called pthread_exit, a thread blocked
//! in vfork, zombies and kernel threads, a process another tracer holds.

mod support;

use otel_ctx_dump::output::exit;
use std::process::Command;
use std::time::{Duration, Instant};
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

/// Starts vfork_block.c with its vfork child sleeping `seconds`; returns the target and the tid
/// of the thread blocked in vfork, once it is blocked.
fn vfork_target(dir: &std::path::Path, seconds: u32) -> (Target, i32) {
    let exe = gcc_linked(dir, "vfork_block.c", "vfork_block");
    let target = Target::spawn(Command::new(exe).arg(seconds.to_string()));
    let line = target.line(Duration::from_secs(30));
    let tid: i32 = line.strip_prefix("vforking ").unwrap().parse().unwrap();
    wait_for_state(target.pid(), tid, &['D'], Duration::from_secs(5));
    (target, tid)
}

#[test]
fn thread_blocked_in_vfork_is_reported_without_a_long_wait_and_released() {
    let dir = tempfile::tempdir().unwrap();
    let (target, tid) = vfork_target(dir.path(), 4);
    let pid = target.pid();

    let start = Instant::now();
    let (code, out, err) = dump(&["--json", &pid.to_string()]);
    let took = start.elapsed();
    assert!(took < Duration::from_millis(2500), "took {took:?}: {out}{err}");
    assert_eq!(code, exit::NO_PROCESS_CONTEXT, "{out}{err}");
    let json = Json::parse(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    let threads = json.get("threads").arr();
    let blocked = threads
        .iter()
        .find(|t| t.get("tid").num() == Some(f64::from(tid)))
        .unwrap();
    assert_eq!(blocked.get("state").str(), Some("error"), "{out}");
    assert_eq!(blocked.get("reason").str(), Some("not_stopped"), "{out}");
    let main = threads
        .iter()
        .find(|t| t.get("tid").num() == Some(f64::from(pid)))
        .unwrap();
    assert_eq!(main.get("state").str(), Some("active"), "the others are read: {out}");

    let start = Instant::now();
    let (_, out, _) = dump(&[&pid.to_string()]);
    assert!(start.elapsed() < Duration::from_millis(2500), "{out}");
    assert!(out.contains("not read: it did not stop"), "{out}");

    // Once the vfork child exits, the thread runs on: nobody left it to stop later.
    assert_eq!(target.line(Duration::from_secs(15)), format!("released {tid}"));
    std::thread::sleep(Duration::from_millis(300));
    let state = otel_ctx_dump::inspect::thread_state(pid, tid);
    assert!(!matches!(state, Some('t' | 'T')), "state {state:?}");
}

#[test]
fn watch_reports_a_thread_blocked_in_vfork_and_leaves_it_running() {
    let dir = tempfile::tempdir().unwrap();
    let (target, tid) = vfork_target(dir.path(), 2);
    let pid = target.pid();
    let start = Instant::now();
    let mut watcher =
        Target::spawn(Command::new(support::dump_binary()).args(["--json", "--watch", "0.2", &pid.to_string()]));
    // The first sample does not wait for the blocked thread.
    let first = watcher.lines_until(Duration::from_secs(10), |l| l.contains(&format!("\"tid\":{tid}")));
    assert!(
        start.elapsed() < Duration::from_millis(2000),
        "{:?}: {first:?}",
        start.elapsed()
    );
    assert!(
        first.last().unwrap().contains("\"reason\":\"not_stopped\""),
        "{first:?}"
    );

    // The child exits: the thread returns from vfork and is not left in a trace stop while the
    // watcher keeps sampling; later samples read it.
    assert_eq!(target.line(Duration::from_secs(15)), format!("released {tid}"));
    let later = watcher.lines_until(Duration::from_secs(10), |l| {
        l.contains(&format!("\"tid\":{tid}")) && l.contains("\"state\":\"active\"")
    });
    assert!(later.last().unwrap().contains(&"77".repeat(16)), "{later:?}");
    for _ in 0..10 {
        let state = otel_ctx_dump::inspect::thread_state(pid, tid);
        assert!(
            !matches!(state, Some('t' | 'T')),
            "state {state:?} while the watcher runs"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Safety: sends SIGINT to our own child.
    assert_eq!(unsafe { libc::kill(watcher.pid(), libc::SIGINT) }, 0);
    let status = watcher.child.wait().unwrap();
    assert_eq!(status.code(), Some(exit::INTERRUPTED));
}
