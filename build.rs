//! Keeps `otel_thread_ctx_v1` in the cdylib's dynamic symbol table.
//!
//! rustc hands the linker a version script that makes every non-Rust-exported symbol local,
//! which would hide the TLS slot from out-of-process readers. A second version script names the
//! slot global. Only LLD merges two version scripts (GNU ld refuses: "anonymous version tag
//! cannot be combined with other version tags"). rustc's bundled `rust-lld` is the default linker
//! for x86_64-unknown-linux-gnu; for aarch64-unknown-linux-gnu the C compiler driving the link
//! is told to use LLD here. The ELF tests and the self-check fail if another linker dropped it.
//!
//! The cdylib is also marked `-z nodelete`: once loaded it is never unmapped, because a thread
//! that attached a record has the library's pthread key destructor (and the process its fork
//! handlers) pointing into its code; a `dlclose` that unmapped it would crash the next thread
//! exit.

use std::path::PathBuf;

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let script = format!("{dir}/native/otel_thread_ctx.ver");
    println!("cargo:rerun-if-changed={script}");
    println!("cargo:rerun-if-changed=build.rs");
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
    }
    if os != "linux" {
        return;
    }
    match (arch.as_str(), env.as_str()) {
        // musl: scripts/build-musl.sh links with musl-gcc and LLD itself.
        ("x86_64", "gnu" | "musl") => {}
        ("aarch64", "gnu") => {
            // gcc's -fuse-ld=lld looks for `ld.lld` in its -B folders (a cross gcc does not look
            // on PATH under that name).
            let dir = lld_dir();
            println!("cargo:rustc-cdylib-link-arg=-B{}", dir.display());
            println!("cargo:rustc-cdylib-link-arg=-fuse-ld=lld");
        }
        _ => return,
    }
    println!("cargo:rustc-cdylib-link-arg=-Wl,--version-script={script}");
}

/// A folder holding `ld.lld`: the Rust toolchain's own (rustup ships rust-lld), else one made in
/// OUT_DIR with a link to `ld.lld` on PATH (Debian's `lld` package, which scripts/setup.sh
/// installs).
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
