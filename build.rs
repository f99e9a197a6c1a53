//! Keeps `otel_thread_ctx_v1` in the cdylib's dynamic symbol table.
//!
//! rustc hands the linker a version script that makes every non-Rust-exported symbol local,
//! which would hide the TLS slot from out-of-process readers. A second version script names the
//! slot global. Only LLD merges two version scripts; rustc's bundled `rust-lld` is the default
//! linker for x86_64-unknown-linux-gnu, and the self-check test fails if another linker dropped it.

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let script = format!("{dir}/native/otel_thread_ctx.ver");
    println!("cargo:rerun-if-changed={script}");
    println!("cargo:rerun-if-changed=build.rs");
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    // musl: scripts/build-musl.sh links with musl-gcc and LLD.
    if arch == "x86_64" && os == "linux" && (env == "gnu" || env == "musl") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,--version-script={script}");
    }
}
