//! The library across a process's and a thread's life: fork while other threads use it, dlclose
//! while a thread still has a record, and the first TLS access on a thread when the slot is in
//! dynamic TLS. Each scenario is a C program under tests/support, built against the cdylib.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

/// Builds tests/support/`name`.c against the cdylib (linked, or only `-ldl` when `link` is
/// false: the program loads the library itself); returns the executable.
fn build(name: &str, link: bool) -> PathBuf {
    let root = common::repo_root();
    let lib_dir = common::cdylib_path().parent().unwrap().to_path_buf();
    let out_dir = common::target_profile_dir().join("lifecycle");
    std::fs::create_dir_all(&out_dir).unwrap();
    let out = out_dir.join(name);
    let mut cmd = Command::new(common::c_compiler());
    cmd.args(["-std=c11", "-O2", "-g", "-Wall", "-Wextra", "-Werror", "-pthread"])
        .arg(format!("-I{}", root.join("include").display()))
        .arg(root.join(format!("tests/support/{name}.c")))
        .arg("-o")
        .arg(&out);
    if link {
        cmd.arg(format!("-L{}", lib_dir.display()))
            .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
            .arg("-lotel_thread_ctx");
    }
    cmd.arg("-ldl");
    assert!(cmd.status().expect("gcc runs").success(), "{name}.c failed to build");
    out
}

fn describe(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn fork_while_other_threads_hold_the_locks_never_hangs_the_child() {
    let out = common::target_command(build("fork_stress", true)).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(out.status.success(), "{}", describe(&out));
    assert!(stdout.contains("forks 50 ok 50 hung 0 failed 0"), "{}", describe(&out));
}

#[test]
fn dlclose_while_a_thread_has_a_record_then_the_thread_exits_does_not_crash() {
    let out = common::target_command(build("dlclose_exit", false))
        .arg(common::cdylib_path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("worker exited, update returned 0"),
        "{}",
        describe(&out)
    );
}

/// glibc < 2.40 clobbers vector registers on a thread's first access to dynamic TLS (bug
/// 31372); the slot accessor must not keep values there. The probe (an optimized test-hooks
/// build) holds sixteen vector values across that first access on 20 fresh threads.
#[test]
fn vector_registers_survive_a_threads_first_access_to_dynamic_tls() {
    let out = common::target_command(build("vector_probe", false))
        .arg(common::test_hooks_cdylib())
        .env("GLIBC_TUNABLES", "glibc.rtld.optional_static_tls=0")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(stdout.contains("dynamic TLS (DTV lookup)"), "{}", describe(&out));
    assert!(
        stdout.contains("probe: 0 of 20 threads saw a changed vector register"),
        "{}",
        describe(&out)
    );
    assert!(out.status.success(), "{}", describe(&out));
}
