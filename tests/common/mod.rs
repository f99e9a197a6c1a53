//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// `target/<profile>` of the running test binary (it lives in `target/<profile>/deps`).
pub fn target_profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>")
        .to_path_buf()
}

/// The static library cargo built together with this test's rlib: always there and current,
/// even when only tests were built (cargo copies it up to `target/<profile>` only for
/// `cargo build`).
pub fn staticlib_path() -> PathBuf {
    let path = target_profile_dir().join("deps/libotel_thread_ctx.a");
    assert!(path.exists(), "{} is missing", path.display());
    path
}

/// The otel-ctx-dump binary of this profile, built once per test process (a no-op when
/// `cargo test --workspace` already built it).
pub fn dump_binary() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = target_profile_dir();
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut cmd = std::process::Command::new(cargo);
            cmd.args([
                "build",
                "-q",
                "-p",
                "otel-ctx-dump",
                "--bin",
                "otel-ctx-dump",
                "--target-dir",
            ])
            .arg(dir.parent().expect("target dir"))
            .current_dir(repo_root());
            match dir.file_name().and_then(|n| n.to_str()) {
                Some("debug") => {}
                Some(profile) => {
                    cmd.args(["--profile", profile]);
                }
                None => panic!("no profile in {}", dir.display()),
            }
            assert!(
                cmd.status().expect("cargo runs").success(),
                "building otel-ctx-dump failed"
            );
            dir.join("otel-ctx-dump")
        })
        .clone()
}

/// Value of `"key":` in a JSON line: a string's contents or a number's digits (the first
/// occurrence; values must not contain quotes).
pub fn field<'a>(line: &'a str, key: &str) -> &'a str {
    let start = line
        .find(&format!("\"{key}\":"))
        .unwrap_or_else(|| panic!("{key} missing in {line}"))
        + key.len()
        + 3;
    let rest = &line[start..];
    match rest.strip_prefix('"') {
        Some(s) => &s[..s.find('"').unwrap()],
        None => &rest[..rest.find([',', '}']).unwrap()],
    }
}

/// The cdylib cargo built next to this test binary.
pub fn cdylib_path() -> PathBuf {
    let path = target_profile_dir().join("libotel_thread_ctx.so");
    assert!(path.exists(), "{} is missing: run `cargo build` first", path.display());
    path
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Ids that encode a checkable relation: a reader can tell a torn record from a whole one.
pub fn ids_for(n: u64) -> ([u8; 16], [u8; 8], u8) {
    let mut trace = [0u8; 16];
    trace[..8].copy_from_slice(&n.to_le_bytes());
    trace[8..].copy_from_slice(&(!n).to_le_bytes());
    let span = n.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes();
    (trace, span, (n & 1) as u8)
}

/// Whether the ids satisfy the relation [`ids_for`] writes.
pub fn ids_consistent(trace: &[u8; 16], span: &[u8; 8], flags: u8) -> bool {
    let n = u64::from_le_bytes(trace[..8].try_into().unwrap());
    ids_for(n) == (*trace, *span, flags)
}

/// The C compiler that builds programs for the target these tests were built for (cargo test
/// `--target aarch64-unknown-linux-gnu` runs them under qemu-user on an x86-64 machine; Debian
/// names its AArch64 gcc the same natively and as a cross compiler).
pub fn c_compiler() -> &'static str {
    if cfg!(target_arch = "aarch64") {
        "aarch64-linux-gnu-gcc"
    } else {
        "gcc"
    }
}

/// A command that runs `program`, built for this target. Under qemu-user without binfmt_misc
/// (tests cross-run with cargo's `runner`), the kernel cannot start a foreign binary, so it is
/// started through the same emulator.
pub fn target_command(program: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
    match emulator() {
        Some(emulator) => {
            let mut cmd = std::process::Command::new(emulator);
            cmd.arg(program);
            cmd
        }
        None => std::process::Command::new(program),
    }
}

/// The emulator needed to start this target's programs: None when the kernel runs them itself.
/// Found once by starting this test binary again (`--list`). Under qemu-user the failed exec
/// shows as ENOEXEC, or as exit status 127 with no output when glibc's posix_spawn ran in qemu's
/// emulated vfork, which loses the error.
pub fn emulator() -> Option<&'static str> {
    static EMULATOR: std::sync::OnceLock<Option<&'static str>> = std::sync::OnceLock::new();
    *EMULATOR.get_or_init(|| {
        let exe = std::env::current_exe().expect("test binary path");
        let runs = match std::process::Command::new(exe)
            .args(["--list", "--exact", "no-such-test"])
            .output()
        {
            Ok(out) => out.status.success() && !out.stdout.is_empty(),
            Err(e) if e.raw_os_error() == Some(libc::ENOEXEC) => false,
            Err(e) => panic!("cannot start this test binary again: {e}"),
        };
        match (runs, cfg!(target_arch = "aarch64")) {
            (true, _) => None,
            (false, true) => Some("qemu-aarch64-static"),
            (false, false) => panic!("this test binary cannot start itself again"),
        }
    })
}

/// The cdylib built optimized (release) with the `test-hooks` feature, in its own target
/// directory so it never replaces the shipped build; built once per test process.
pub fn test_hooks_cdylib() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let target = target_profile_dir().parent().expect("target dir").join("test-hooks");
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut cmd = std::process::Command::new(cargo);
            cmd.args([
                "build",
                "-q",
                "--release",
                "--lib",
                "-p",
                "otel-thread-ctx",
                "--features",
                "test-hooks",
            ])
            .arg("--target-dir")
            .arg(&target)
            .current_dir(repo_root());
            // Cross-built tests (scripts/test-aarch64.sh) need the library for their own target;
            // the cross set-up (linker, RUSTC) comes with the environment.
            let mut release = target.clone();
            if cfg!(target_arch = "aarch64") {
                cmd.args(["--target", "aarch64-unknown-linux-gnu"]);
                release.push("aarch64-unknown-linux-gnu");
            }
            let status = cmd.status().expect("cargo runs");
            assert!(status.success(), "building the test-hooks library failed");
            release.join("release/libotel_thread_ctx.so")
        })
        .clone()
}
