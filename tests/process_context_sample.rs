//! samples/c as a profiler sees it from outside: while the sample holds its threads, its
//! process context is found in /proc/PID/maps, read with process_vm_readv and decoded by
//! otel-ctx-dump's library, and the key map names exactly the attributes the threads wrote,
//! index for index.
// These read the process context through otel-ctx-dump's library with process_vm_readv, which
// qemu-user does not implement (so it is a dev-dependency for x86-64 only, Cargo.toml). On
// AArch64 the .NET ProcessContextTests read it back their own way (scripts/test-aarch64.sh).
#![cfg(target_arch = "x86_64")]

mod common;
mod process_context_reader;

use process_context_reader as reader;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// `target/<profile>` of the running test binary (it lives in `target/<profile>/deps`).
fn target_profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>")
        .to_path_buf()
}

fn build_sample() -> PathBuf {
    let out = target_profile_dir().join("samples-process-context");
    // The cdylib cargo built together with this test's rlib: always there and current, even
    // when only tests were built (cargo copies it up to target/<profile> only for `cargo build`).
    let dir = target_profile_dir().join("deps");
    assert!(
        dir.join("libotel_thread_ctx.so").exists(),
        "no cdylib in {}",
        dir.display()
    );
    let status = Command::new("make")
        .args(["-s", "-C"])
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("samples/c"))
        .arg(format!("LIBDIR={}", dir.display()))
        .arg(format!("OUT={}", out.display()))
        .arg(format!("CC={}", common::c_compiler()))
        .status()
        .expect("make runs");
    assert!(status.success(), "samples/c failed to build");
    out.join("sample")
}

/// The JSON array of strings after `"key":[` in `line` (the sample's values have no quotes).
fn string_array(line: &str, key: &str) -> Vec<String> {
    let start = line
        .find(&format!("\"{key}\":["))
        .unwrap_or_else(|| panic!("{key} missing in {line}"))
        + key.len()
        + 4;
    let body = &line[start..start + line[start..].find(']').unwrap()];
    body.split(',').map(|s| s.trim_matches('"').to_owned()).collect()
}

/// The attribute names of a thread line's `"attributes":{...}` object.
fn attribute_names(line: &str) -> Vec<String> {
    let start = line.find("\"attributes\":{").expect("attributes") + 14;
    let body = &line[start..start + line[start..].find('}').unwrap()];
    body.split(',')
        .map(|kv| kv.split(':').next().unwrap().trim_matches('"').to_owned())
        .collect()
}

#[test]
fn sample_publishes_a_process_context_naming_its_thread_attributes() {
    const THREADS: usize = 3;
    let mut child = common::target_command(build_sample())
        .args(["--threads", &THREADS.to_string(), "--hold", "3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("sample starts");
    let pid = child.id().to_string();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    for _ in 0..=THREADS {
        printed.push(
            lines
                .next()
                .expect("a line per thread and one for the process")
                .unwrap(),
        );
    }

    // The threads are holding now: read the context from outside, as a profiler would.
    let m = reader::the_mapping_of(&pid);
    assert!(!m.perms.contains('x'), "{m:?}");
    let (header, payload) = reader::read_context_of(&pid, m.start);
    let d = reader::decode(&payload);

    let process_line = &printed[0];
    assert!(
        process_line.contains("\"process_context\""),
        "first line is the process context: {process_line}"
    );
    assert!(
        process_line.contains(&format!("\"mapping\":\"{}\"", m.name)),
        "{process_line} vs {m:?}"
    );
    assert!(
        process_line.contains(&format!("\"payload_size\":{}", header.payload_size)),
        "{process_line}"
    );
    assert_eq!(
        reader::resource_value(&d, "service.name"),
        Some("otel-thread-ctx-sample")
    );
    assert_eq!(
        reader::resource_value(&d, "service.instance.id"),
        Some(format!("sample-{pid}").as_str())
    );
    assert_eq!(
        reader::resource_value(&d, "telemetry.sdk.name"),
        Some("otel-thread-ctx")
    );
    assert_eq!(d.schema_version.as_deref(), Some("tlsdesc_v1_dev"));
    let key_map = d.key_map.expect("key map published");
    assert_eq!(key_map, ["http_route", "http_method", "worker_id"]);
    assert_eq!(string_array(process_line, "attribute_key_map"), key_map);

    // The sample names each attribute it printed by the index it wrote (KEY_NAMES[index]), so
    // the published map must list exactly those names at those indexes.
    for line in &printed[1..] {
        assert!(line.contains("\"tid\":"), "{line}");
        assert_eq!(attribute_names(line), key_map, "{line}");
    }

    drop(lines);
    let status = child.wait().unwrap();
    assert!(status.success(), "sample failed: {status}");
}
