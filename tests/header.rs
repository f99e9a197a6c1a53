//! The committed C header: current with the Rust sources, and clean in C and C++.

mod common;

use std::process::Command;

/// The header (cbindgen) and the .NET declarations (tools/gen-bindings, whose own tests hold the
/// control: a stale file fails the check).
#[test]
fn committed_header_and_bindings_match_what_is_generated() {
    let out = Command::new(common::repo_root().join("scripts/dev.sh"))
        .args(["gen", "--check"])
        .output()
        .expect("scripts/dev.sh gen runs (cbindgen is installed by scripts/setup.sh)");
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
               int main(void) { return otel_thread_ctx_version() != NULL ? 0 : 1; }\n";
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

/// What only tests call (native/test_hooks.rs): not in the shipped header, and not exported by
/// the library `cargo build` makes (no `test-hooks` feature), while the test build has them.
const TEST_HOOKS: &[&str] = &[
    "otel_process_ctx_forget_key_map",
    "otel_thread_ctx_read_current",
    "otel_thread_ctx_live_records",
    "otel_process_ctx_read_payload",
    "otel_thread_ctx_test_vector_probe",
];

fn exported_functions(lib: &std::path::Path) -> Vec<String> {
    use object::{Object, ObjectSymbol};
    let data = std::fs::read(lib).unwrap();
    let file = object::File::parse(&*data).unwrap();
    file.dynamic_symbols()
        .filter(|s| s.is_definition())
        .filter_map(|s| s.name().ok().map(str::to_owned))
        .collect()
}

#[test]
fn test_hooks_are_not_in_the_header_nor_in_the_shipped_build() {
    let header = std::fs::read_to_string(common::repo_root().join("include/otel_thread_ctx.h")).unwrap();
    let shipped = exported_functions(&common::cdylib_path());
    let with_hooks = exported_functions(&common::test_hooks_cdylib());
    assert!(shipped.iter().any(|s| s == "otel_thread_ctx_update"), "{shipped:?}");
    for hook in TEST_HOOKS {
        assert!(!header.contains(hook), "{hook} is in the public header");
        assert!(
            !shipped.iter().any(|s| s == hook),
            "{hook} is exported by the shipped build"
        );
        assert!(
            with_hooks.iter().any(|s| s == hook),
            "{hook} is missing from the test-hooks build"
        );
    }
}
