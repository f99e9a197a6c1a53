//! End to end against the C sample (samples/c), held alive with --hold: every thread it reports
//! is found from outside with the same ids, flags and named attributes, for the sample linked at
//! start-up and loaded with dlopen, with glibc's static-TLS surplus and with it disabled
//! (GLIBC_TUNABLES=glibc.rtld.optional_static_tls=0, which forces the DTV lookup).

mod support;

use otel_ctx_dump::platform::CLibrary;
use std::process::Command;
use std::sync::OnceLock;
use support::sample;

/// Builds the sample programs once, into a temporary directory, with samples/c/Makefile.
fn samples_dir() -> &'static std::path::Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let lib = support::library_dir();
        support::run(
            Command::new("make")
                .arg("-s")
                .arg("-C")
                .arg(support::workspace_root().join("samples/c"))
                .arg(format!("OUT={}", dir.path().display()))
                .arg(format!("LIBDIR={}", lib.display()))
                .arg("all"),
        );
        dir
    })
    .path()
}

fn check_sample(program: &str, static_tls_surplus: bool, expect_dynamic: bool) {
    let mut cmd = Command::new(samples_dir().join(program));
    if !static_tls_surplus {
        cmd.env("GLIBC_TUNABLES", "glibc.rtld.optional_static_tls=0");
    }
    let snapshot = sample::check_sample(cmd, expect_dynamic);
    assert_eq!(snapshot.libc, CLibrary::Glibc);
}

#[test]
fn sample_linked_at_startup() {
    check_sample("sample", true, false);
}

#[test]
fn sample_linked_at_startup_without_static_tls_surplus() {
    // Modules loaded at start-up always get static TLS: the tunable changes nothing here.
    check_sample("sample", false, false);
}

#[test]
fn sample_loaded_with_dlopen() {
    check_sample("sample-dlopen", true, false);
}

#[test]
fn sample_loaded_with_dlopen_forced_to_dynamic_tls() {
    check_sample("sample-dlopen", false, true);
}

/// `otel-ctx-dump check` on the sample: every rule passes, with no warning (the sample reaches
/// its records through the API, so no module but the library names the slot).
#[test]
fn sample_passes_the_checker() {
    let mut cmd = Command::new(samples_dir().join("sample"));
    cmd.args(["--threads", "2", "--hold", "120"]);
    let target = support::Target::spawn(&mut cmd);
    let mut published = 0;
    while published < 2 {
        let line = target.line(std::time::Duration::from_secs(30));
        published += usize::from(line.contains("\"tid\""));
    }
    let (code, out, err) = support::dump(&["check", "--json", &target.pid().to_string()]);
    let json = support::Json::parse(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    let not_passing: Vec<(&str, &str, &str)> = json
        .get("checks")
        .arr()
        .iter()
        .filter(|c| c.get("result").str() != Some("pass"))
        .map(|c| {
            let s = |k| c.get(k).str().unwrap_or("");
            (s("check"), s("result"), s("evidence"))
        })
        .collect();
    assert_eq!(not_passing, [], "{out}");
    assert_eq!(code, 0);
}
