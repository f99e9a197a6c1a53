//! Keeps `otel_thread_ctx_v1` in the cdylib's dynamic symbol table: rustc's version script makes
//! it local, so a second one names it global. Only LLD merges two version scripts (GNU ld
//! refuses), so the aarch64 link is told to use it (rust-lld is x86_64-linux-gnu's default, and
//! scripts/build-musl.sh links musl with LLD itself).
//!
//! The cdylib is also linked `-z nodelete`: its pthread key destructor and fork handlers point
//! into its code, so a `dlclose` that unmapped it would crash the next thread exit or fork.

use std::path::PathBuf;

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let script = format!("{dir}/native/otel_thread_ctx.ver");
    println!("cargo:rerun-if-changed={script}");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("aarch64") {
        // gcc's -fuse-ld=lld looks for `ld.lld` in its -B folders (a cross gcc does not look on
        // PATH under that name).
        println!("cargo:rustc-cdylib-link-arg=-B{}", lld_dir().display());
        println!("cargo:rustc-cdylib-link-arg=-fuse-ld=lld");
    }
    println!("cargo:rustc-cdylib-link-arg=-Wl,--version-script={script}");
}

/// A folder holding `ld.lld`: the Rust toolchain's own (rustup ships rust-lld), else one made in
/// OUT_DIR with a link to `ld.lld` on PATH (Debian's `lld`, which scripts/setup.sh installs).
fn lld_dir() -> PathBuf {
    if let Some(dir) = rust_lld_dir() {
        return dir;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let lld = std::env::split_paths(&path)
        .map(|d| d.join("ld.lld"))
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "linking the aarch64 cdylib needs LLD (GNU ld cannot merge the slot's version script): \
                 install lld (scripts/setup.sh does) or use a Rust toolchain that ships rust-lld"
            )
        });
    let dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("lld");
    std::fs::create_dir_all(&dir).expect("create OUT_DIR/lld");
    let link = dir.join("ld.lld");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&lld, &link).expect("link ld.lld into OUT_DIR/lld");
    dir
}

/// The running toolchain's `gcc-ld` folder, whose `ld.lld` runs its bundled rust-lld, if any.
fn rust_lld_dir() -> Option<PathBuf> {
    let rustc = std::env::var("RUSTC").ok()?;
    let host = std::env::var("HOST").ok()?;
    let out = std::process::Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()?;
    let sysroot = String::from_utf8(out.stdout).ok()?;
    let dir = PathBuf::from(sysroot.trim()).join(format!("lib/rustlib/{host}/bin/gcc-ld"));
    dir.join("ld.lld").exists().then_some(dir)
}
