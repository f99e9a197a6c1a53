//! `gen-bindings --check` as scripts/dev.sh gen runs it: passes on the committed .NET
//! declarations, and (the control) fails on a stale copy of them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs the check with the repository's arguments, reading the declarations from `out` and `test_out`.
fn check(out: &Path, test_out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gen-bindings"))
        .current_dir(repo())
        .args([
            "--root",
            "native/lib.rs",
            "--namespace",
            "OtelThreadContext",
            "--class",
            "NativeMethods",
        ])
        .args(["--library", "LibraryName", "--test-feature", "test-hooks"])
        .args([
            "--test-namespace",
            "OtelThreadContext.Tests",
            "--test-class",
            "TestNativeMethods",
        ])
        .args(["--test-library", "NativeMethods.LibraryName", "--check", "--out"])
        .arg(out)
        .arg("--test-out")
        .arg(test_out)
        .output()
        .unwrap()
}

const SHIPPED: &str = "dotnet/OtelThreadContext/NativeMethods.g.cs";
const TESTS: &str = "dotnet/OtelThreadContext.Tests/TestNativeMethods.g.cs";

#[test]
fn committed_declarations_are_current() {
    let out = check(&repo().join(SHIPPED), &repo().join(TESTS));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_stale_file_fails_the_check() {
    // As if a parameter had changed in native/ and the file had not been regenerated.
    let dir = tempfile::tempdir().unwrap();
    let committed = std::fs::read_to_string(repo().join(SHIPPED)).unwrap();
    let stale = committed.replacen("byte trace_flags", "ushort trace_flags", 1);
    assert_ne!(stale, committed);
    let copy = dir.path().join("NativeMethods.g.cs");
    std::fs::write(&copy, stale).unwrap();

    let out = check(&copy, &repo().join(TESTS));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("{} is stale", copy.display())), "{stderr}");
    assert!(!stderr.contains("TestNativeMethods.g.cs"), "{stderr}");

    // A missing file is stale too.
    let out = check(&repo().join(SHIPPED), &dir.path().join("missing.g.cs"));
    assert_eq!(out.status.code(), Some(1));
}
