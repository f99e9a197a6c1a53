//! End to end against the C sample built for musl: scripts/build-musl.sh builds
//! libotel_thread_ctx.so for x86_64-unknown-linux-musl, samples/c is built with musl-gcc, and
//! the sample runs under musl's loader, holding a span on each worker thread. The reader must
//! tell musl from the maps and read every thread's ids and attributes and the process context:
//! linked at start-up (static TLS, below the thread pointer as with glibc) and loaded with
//! `dlopen` (musl puts dlopen'ed modules in dynamic TLS: the DTV, 8-byte entries, word 0 the
//! module count).
//!
//! Fails (never skips) when musl-gcc, LLD or the musl loader is missing.

mod support;

use otel_ctx_dump::inspect::Resolution;
use otel_ctx_dump::platform::CLibrary;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use support::sample;

const MUSL_LOADER: &str = "/lib/ld-musl-x86_64.so.1";

/// Builds the musl library (release, as the musl suite does) and the samples once.
fn samples_dir() -> &'static Path {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (dir, _) = DIR.get_or_init(|| {
        assert!(
            Path::new(MUSL_LOADER).exists(),
            "musl's loader {MUSL_LOADER} is missing (Debian package musl; scripts/setup.sh installs musl-tools)"
        );
        let root = support::workspace_root();
        let out = Command::new(root.join("scripts/build-musl.sh"))
            .arg("--release")
            .current_dir(&root)
            .output()
            .expect("run scripts/build-musl.sh");
        assert!(
            out.status.success(),
            "scripts/build-musl.sh --release failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let so = PathBuf::from(String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or("").trim());
        assert!(so.is_file(), "build-musl.sh printed no library: {so:?}");
        let lib = so.parent().unwrap().to_path_buf();
        let dir = tempfile::tempdir().expect("tempdir");
        support::run(
            Command::new("make")
                .arg("-s")
                .arg("-C")
                .arg(root.join("samples/c"))
                .arg("CC=musl-gcc")
                .arg(format!("OUT={}", dir.path().display()))
                .arg(format!("LIBDIR={}", lib.display()))
                .arg("all"),
        );
        (dir, lib)
    });
    dir.path()
}

fn check(program: &str, expect_dynamic: bool) {
    let exe = samples_dir().join(program);
    // Really a musl program: its interpreter is musl's loader.
    let elf = std::fs::read(&exe).unwrap();
    assert!(
        elf.windows(MUSL_LOADER.len()).any(|w| w == MUSL_LOADER.as_bytes()),
        "{program} does not ask for {MUSL_LOADER}"
    );
    let mut cmd = Command::new(&exe);
    // cargo puts its glibc build directories (holding the glibc libotel_thread_ctx.so) on
    // LD_LIBRARY_PATH, which musl's loader searches before the sample's rpath.
    cmd.env_remove("LD_LIBRARY_PATH");
    let snapshot = sample::check_sample(cmd, expect_dynamic);
    assert_eq!(snapshot.libc, CLibrary::Musl);
    if let Ok(Resolution::Dynamic { generation, .. }) = snapshot.modules[0].resolution {
        assert_eq!(generation, None, "musl's TLSDESC argument has no generation");
    }
}

#[test]
fn musl_sample_linked_at_startup() {
    check("sample", false);
}

#[test]
fn musl_sample_loaded_with_dlopen_in_the_dtv() {
    check("sample-dlopen", true);
}
