//! Fork and the process context: the child does not inherit the parent's mapping
//! (MADV_DONTFORK), and a child that publishes gets a mapping of its own while the parent's
//! stays as it was.
//!
//! One test in its own binary: the child of a fork may only use what no other thread could have
//! held locked at the fork, and this binary runs nothing else concurrently. The child reports
//! through its exit status (0 = every check passed, otherwise the number of the failed step).
// These read the process context through otel-ctx-dump's library with process_vm_readv, which
// qemu-user does not implement (so it is a dev-dependency for x86-64 only, Cargo.toml). On
// AArch64 the .NET ProcessContextTests read it back their own way (scripts/test-aarch64.sh).
#![cfg(target_arch = "x86_64")]

mod process_context_reader;

use otel_thread_ctx::ffi::OtelThreadCtxStatus as S;
use otel_thread_ctx::process_context::{self as pc, payload};
use process_context_reader as reader;

/// Publishes (or replaces) string resource attributes and a key map through the Rust API.
fn publish(resource: &[(&str, &str)], keys: &[&str]) -> Result<(), S> {
    let text = |&(k, v): &(&str, &str)| payload::kv(k, payload::any_value::Value::StringValue(v.into()));
    pc::publish(resource.iter().map(text).collect(), Vec::new(), keys)
}

/// Runs `child` in a forked process and returns its exit status.
fn in_child(child: fn() -> i32) -> i32 {
    // Safety: the child runs only `child`, then `_exit`s without running destructors or atexit
    // handlers that belong to the parent.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = std::panic::catch_unwind(child).unwrap_or(99);
        // Safety: ends the child immediately.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // Safety: waits for the child just forked; `status` is writable.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status), "child did not exit normally: {status:#x}");
    libc::WEXITSTATUS(status)
}

const PARENT_KEYS: [&str; 2] = ["http_route", "http_method"];

fn child_replaces() -> i32 {
    // Step 1: nothing is inherited.
    if !reader::find_mappings().is_empty() || pc::published_payload().is_some() {
        return 1;
    }
    // Step 2: the append-only rule still holds against the inherited key map (the child's
    // thread records were written with the parent's indexes).
    if publish(&[("service.name", "child")], &["http_method"]) != Err(S::KeyMapChanged) {
        return 2;
    }
    // Step 3: a publish makes a fresh mapping of the child's own.
    if publish(
        &[("service.name", "child")],
        &["http_route", "http_method", "child_key"],
    )
    .is_err()
    {
        return 3;
    }
    let found = reader::find_mappings();
    if found.len() != 1 || pc::published_address() != Some(found[0].start as usize) {
        return 4;
    }
    let d = reader::decode(&reader::read_context(found[0].start).1);
    if reader::resource_value(&d, "service.name") != Some("child")
        || d.key_map != Some(vec!["http_route".into(), "http_method".into(), "child_key".into()])
    {
        return 5;
    }
    // Step 6: it is now this process's context: replaced in place, then removable.
    if publish(&[("service.name", "x")], &[]).is_err() || pc::published_address() != Some(found[0].start as usize) {
        return 6;
    }
    if pc::unpublish().is_err() || !reader::find_mappings().is_empty() {
        return 7;
    }
    0
}

fn child_publishes() -> i32 {
    if !reader::find_mappings().is_empty() {
        return 1;
    }
    // A publish in the child keeps the process's key map, the parent's (the child's thread
    // records came from it): another index 0 is refused, and none given keeps it.
    if publish(&[("service.name", "child2")], &["worker"]) != Err(S::KeyMapChanged) {
        return 2;
    }
    if publish(&[("service.name", "child2")], &[]).is_err() {
        return 3;
    }
    let found = reader::find_mappings();
    if found.len() != 1 {
        return 4;
    }
    let d = reader::decode(&reader::read_context(found[0].start).1);
    if reader::resource_value(&d, "service.name") != Some("child2")
        || d.key_map != Some(PARENT_KEYS.map(String::from).to_vec())
    {
        return 5;
    }
    0
}

fn child_unpublishes() -> i32 {
    // The parent's context is not the child's to remove; the stale state is dropped.
    if pc::unpublish() != Err(S::NotPublished) || pc::unpublish() != Err(S::NotPublished) {
        return 1;
    }
    0
}

#[test]
fn forked_children_get_their_own_mapping_and_leave_the_parents_alone() {
    publish(&[("service.name", "parent")], &PARENT_KEYS).expect("publish");
    let m = reader::the_mapping();
    let before = reader::read_context(m.start);
    let payload_before = pc::published_payload().unwrap();

    assert_eq!(
        in_child(child_replaces),
        0,
        "child_replaces failed at the step numbered by its exit status"
    );
    assert_eq!(
        in_child(child_publishes),
        0,
        "child_publishes failed at the numbered step"
    );
    assert_eq!(
        in_child(child_unpublishes),
        0,
        "child_unpublishes failed at the numbered step"
    );

    assert_eq!(reader::the_mapping(), m, "the parent's mapping changed");
    assert_eq!(reader::read_context(m.start), before, "the parent's context changed");
    assert_eq!(pc::published_payload().unwrap(), payload_before);
    let d = reader::decode(&before.1);
    assert_eq!(reader::resource_value(&d, "service.name"), Some("parent"));

    // The parent can still replace its own context in place.
    publish(&[("service.name", "parent")], &["http_route", "http_method", "user_id"]).expect("replace");
    assert_eq!(reader::the_mapping(), m);
    assert!(reader::read_context(m.start).0.published_at_ns > before.0.published_at_ns);
    pc::unpublish().expect("unpublish");
}
