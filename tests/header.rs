//! The committed C header: current with the Rust sources, and clean in C and C++.

mod common;

use std::process::Command;

#[test]
fn committed_header_matches_what_cbindgen_generates() {
    let out = Command::new(common::repo_root().join("scripts/gen-header.sh"))
        .arg("--check")
        .output()
        .expect("scripts/gen-header.sh runs (cbindgen is installed by scripts/setup.sh)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn compile(compiler: &str, std: &str, lang: &str) {
    let root = common::repo_root();
    let src = "#include \"otel_thread_ctx.h\"\n\
               int check_size[sizeof(OtelThreadCtxRecord) == OTEL_THREAD_CTX_RECORD_SIZE ? 1 : -1];\n\
               int main(void) { return otel_thread_ctx_live_records() == 0 ? 0 : 1; }\n";
    let mut child = Command::new(compiler)
        .args([
            std,
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-fsyntax-only",
            "-x",
            lang,
            "-",
        ])
        .arg(format!("-I{}", root.join("include").display()))
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{compiler}: {e}"));
    use std::io::Write;
    child.stdin.take().unwrap().write_all(src.as_bytes()).unwrap();
    assert!(
        child.wait().unwrap().success(),
        "{compiler} {std} rejected include/otel_thread_ctx.h"
    );
}

#[test]
fn header_compiles_cleanly_as_c11() {
    compile("gcc", "-std=c11", "c");
}

#[test]
fn header_compiles_cleanly_as_cxx17() {
    compile("g++", "-std=c++17", "c++");
}
