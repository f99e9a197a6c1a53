//! A forked child that has the same pid as its parent (each PID 1 of its own PID namespace)
//! still knows the parent's process context is not its own: publishing makes a mapping of the
//! child's, instead of writing at the parent's address, which the child does not have.
//!
//! Alone in its binary: the children fork from a single-threaded process. Each process reports
//! through its exit status (0 = passed, else the failed step). Needs root, or unprivileged user
//! namespaces, for `unshare(CLONE_NEWPID)`; without either the test fails, naming the reason.
// MADV_DONTFORK, which keeps the parent's mapping out of the child, is ignored by qemu-user.
#![cfg(target_arch = "x86_64")]

use otel_thread_ctx::ffi::OtelThreadCtxStatus as S;
use otel_thread_ctx::process_context::{self as pc, payload};

/// Publishes (or replaces) string resource attributes and a key map through the Rust API.
fn publish(resource: &[(&str, &str)], keys: &[&str]) -> Result<(), S> {
    let text = |&(k, v): &(&str, &str)| payload::kv(k, payload::any_value::Value::StringValue(v.into()));
    pc::publish(resource.iter().map(text).collect(), Vec::new(), keys)
}

/// Forks into a new PID namespace, runs `child` there as its PID 1, and returns its exit status.
/// Call it from a single-threaded process (a user namespace needs one).
fn in_new_pid_namespace(child: fn() -> i32) -> i32 {
    // Safety: plain syscalls; the second form is for a caller without CAP_SYS_ADMIN.
    let entered = unsafe {
        libc::unshare(libc::CLONE_NEWPID) == 0 || libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWPID) == 0
    };
    if !entered {
        return 90;
    }
    fork_and_wait(child)
}

/// Forks, runs `child` in the child, and returns its exit status (100 + signal if killed).
fn fork_and_wait(child: fn() -> i32) -> i32 {
    // Safety: the child runs only `child`, then `_exit`s.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let code = std::panic::catch_unwind(child).unwrap_or(99);
        // Safety: ends the child immediately.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // Safety: waits for the child just forked.
    if pid < 0 || unsafe { libc::waitpid(pid, &mut status, 0) } != pid {
        return 91;
    }
    match (libc::WIFEXITED(status), libc::WIFSIGNALED(status)) {
        (true, _) => libc::WEXITSTATUS(status),
        (_, true) => 100 + libc::WTERMSIG(status),
        _ => 92,
    }
}

/// The OTEL_CTX mappings in /proc/self/maps, by start address.
fn otel_ctx_mappings() -> Vec<usize> {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|l| l.contains("OTEL_CTX"))
        .map(|l| usize::from_str_radix(l.split('-').next().unwrap(), 16).unwrap())
        .collect()
}

/// PID 1 of a new namespace: publishes, then forks a child that is PID 1 too.
fn parent_as_pid_1() -> i32 {
    if std::process::id() != 1 {
        return 1;
    }
    if publish(&[("service.name", "parent")], &["http_route"]).is_err() {
        return 2;
    }
    in_new_pid_namespace(child_as_pid_1)
}

/// The grandchild, PID 1 as its parent was: its publish must not touch the parent's address.
fn child_as_pid_1() -> i32 {
    if std::process::id() != 1 {
        return 11;
    }
    if !otel_ctx_mappings().is_empty() {
        return 12;
    }
    if publish(&[("service.name", "child")], &["http_route", "child_key"]).is_err() {
        return 13;
    }
    let mine = otel_ctx_mappings();
    if mine.len() != 1 || pc::published_address() != Some(mine[0]) {
        return 14;
    }
    0
}

#[test]
fn a_child_with_its_parents_pid_makes_its_own_mapping() {
    // From a forked, single-threaded copy of the test process.
    let status = fork_and_wait(|| in_new_pid_namespace(parent_as_pid_1));
    assert_ne!(
        status, 90,
        "unshare(CLONE_NEWPID) refused: run as root or allow user namespaces"
    );
    assert_eq!(
        status, 0,
        "failed at the step numbered by the exit status (100 + signal: killed by that signal)"
    );
}
