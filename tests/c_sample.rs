//! samples/c end to end: built with its Makefile against the cdylib, run with the normal static
//! TLS placement and with dynamic (DTV) TLS forced, and checked against what each worker wrote.

mod common;

use common::field;
use std::process::Command;

fn hex(bytes: impl IntoIterator<Item = u8>) -> String {
    bytes.into_iter().map(|b| format!("{b:02x}")).collect()
}

/// Builds `sample` and `sample-dlopen` once per test process; returns their folder.
fn build_sample() -> std::path::PathBuf {
    static BUILT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(build).clone()
}

fn build() -> std::path::PathBuf {
    let root = common::repo_root();
    let out = common::target_profile_dir().join("samples");
    let status = Command::new("make")
        .args(["-s", "-C"])
        .arg(root.join("samples/c"))
        .arg(format!("LIBDIR={}", common::cdylib_path().parent().unwrap().display()))
        .arg(format!("OUT={}", out.display()))
        .arg(format!("CC={}", common::c_compiler()))
        .status()
        .expect("make runs");
    assert!(status.success(), "samples/c failed to build");
    out
}

fn run_and_check(program: &str, tunables: Option<&str>, placement: &str) {
    const THREADS: u32 = 6;
    let mut cmd = common::target_command(build_sample().join(program));
    cmd.args(["--threads", &THREADS.to_string()]);
    if let Some(t) = tunables {
        cmd.env("GLIBC_TUNABLES", t);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "sample failed: {stderr}");
    assert!(stderr.contains("ok:"), "self-check passed: {stderr}");
    assert!(stderr.contains(placement), "expected {placement}: {stderr}");

    let lines: Vec<&str> = stdout.lines().filter(|l| l.contains("\"tid\":")).collect();
    assert_eq!(lines.len(), THREADS as usize, "{stdout}");
    let mut tids: Vec<&str> = lines.iter().map(|l| field(l, "tid")).collect();
    tids.sort();
    tids.dedup();
    assert_eq!(tids.len(), THREADS as usize, "one line per distinct thread");

    let mut seen = Vec::new();
    for line in lines {
        let pid: u32 = field(line, "pid").parse().unwrap();
        let index: u32 = field(line, "worker_id")[1..].parse().unwrap();
        seen.push(index);
        let trace = hex((0..16u32).map(|i| (0x10 + i + index * 7 + pid) as u8));
        let span = hex((0..7u32)
            .map(|i| (0xa0 + i + index) as u8)
            .chain([(3 * 16 + index) as u8]));
        assert_eq!(field(line, "trace_id"), trace, "{line}");
        assert_eq!(field(line, "span_id"), span, "{line}");
        assert_eq!(
            field(line, "flags"),
            if index.is_multiple_of(2) { "1" } else { "0" },
            "{line}"
        );
        assert_eq!(field(line, "http_route"), format!("/orders/{index}"));
        assert_eq!(
            field(line, "http_method"),
            if index.is_multiple_of(2) { "GET" } else { "POST" }
        );
    }
    seen.sort();
    assert_eq!(seen, (0..THREADS).collect::<Vec<_>>());
}

#[test]
fn sample_linked_at_startup_publishes_what_each_thread_wrote() {
    run_and_check("sample", None, "static TLS");
}

#[test]
fn sample_loaded_with_dlopen_gets_static_tls_from_the_surplus() {
    run_and_check("sample-dlopen", None, "static TLS");
}

#[test]
fn sample_loaded_with_dlopen_publishes_through_dynamic_tls_when_static_tls_is_off() {
    run_and_check("sample-dlopen", Some("glibc.rtld.optional_static_tls=0"), "dynamic TLS");
}

#[test]
fn sample_rejects_bad_arguments() {
    let out = common::target_command(build_sample().join("sample"))
        .args(["--threads", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--threads"));
}

/// The sample reaches records through the API: no module of it names the slot, which belongs in
/// the library's `.dynsym` alone (readers matching the name misread an undefined entry). The
/// library itself is the control.
#[test]
fn sample_modules_do_not_name_the_slot() {
    let dir = build_sample();
    let names_slot = |file: &std::path::Path| {
        let out = Command::new("readelf")
            .args(["-W", "--dyn-syms"])
            .arg(file)
            .output()
            .expect("readelf runs");
        assert!(out.status.success(), "readelf {}", file.display());
        let table = String::from_utf8(out.stdout).unwrap();
        table
            .lines()
            .any(|l| l.split_whitespace().nth(7) == Some("otel_thread_ctx_v1"))
    };
    assert!(names_slot(&common::cdylib_path()));
    for module in ["sample", "libsample.so", "sample-dlopen"] {
        assert!(!names_slot(&dir.join(module)), "{module} names otel_thread_ctx_v1");
    }
}
