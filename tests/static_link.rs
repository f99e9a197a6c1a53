//! The static library, `libotel_thread_ctx.a`, linked into a C program
//! (tests/support/static_link.c). The slot then lives in the executable, which exports it with
//! `-Wl,--export-dynamic-symbol=otel_thread_ctx_v1`. Linked by GNU ld (gcc's default), which
//! relaxes the library's TLSDESC access to initial-exec, and by LLD (the linker rustc uses),
//! which relaxes it to local-exec; without the flag, and fully static, as controls.
// On AArch64 the otel-ctx-dump tests are compiled out (see below), leaving their helpers unused.
#![cfg_attr(target_arch = "aarch64", allow(dead_code, unused_imports))]

mod common;

use common::field;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

const SYMBOL: &str = "otel_thread_ctx_v1";
/// The one flag that puts the slot in the executable's `.dynsym`.
const EXPORT_SLOT: &str = "-Wl,--export-dynamic-symbol=otel_thread_ctx_v1";
/// What `rustc --print native-static-libs` lists for the static library.
const NATIVE_STATIC_LIBS: &[&str] = &["-lgcc_s", "-lutil", "-lrt", "-lpthread", "-lm", "-ldl", "-lc"];
/// gcc's flag for TLSDESC accesses in the C program's own code.
#[cfg(target_arch = "x86_64")]
const TLSDESC_DIALECT: &str = "-mtls-dialect=gnu2";
#[cfg(target_arch = "aarch64")]
const TLSDESC_DIALECT: &str = "-mtls-dialect=desc";
/// The initial-exec relocation GNU ld leaves in the executable.
#[cfg(target_arch = "x86_64")]
const TPREL: &str = "R_X86_64_TPOFF64";
#[cfg(target_arch = "aarch64")]
const TPREL: &str = "R_AARCH64_TLS_TPREL64";
/// How a static thread-pointer offset of the executable's TLS starts: negative on x86-64 (TLS
/// variant II, below the thread pointer), positive past the 16-byte TCB on AArch64 (variant I).
#[cfg(target_arch = "x86_64")]
const STATIC_OFFSET: &str = "static TLS at thread-pointer offset -";
#[cfg(target_arch = "aarch64")]
const STATIC_OFFSET: &str = "static TLS at thread-pointer offset ";
/// What the worker in static_link.c publishes.
const TRACE_ID: &str = "404142434445464748494a4b4c4d4e4f";
const SPAN_ID: &str = "b0b1b2b3b4b5b6b7";
/// `OTEL_THREAD_CTX_STATUS_SELF_CHECK_FAILED`.
const SELF_CHECK_FAILED: i32 = -8;

#[derive(Clone, Copy, Debug)]
enum Link {
    /// The README's recipe, with gcc's default linker (GNU ld).
    Exported,
    /// The same with LLD, rustc's linker (`-fuse-ld=lld` from the Rust toolchain).
    ExportedByLld,
    /// Control: without the export flag.
    NotExported,
    /// Control: `-static`, which leaves the executable without a dynamic symbol table.
    FullyStatic,
}

/// The program linked as `link`, built once per test process.
fn program(link: Link) -> PathBuf {
    static BUILT: [OnceLock<PathBuf>; 4] = [const { OnceLock::new() }; 4];
    BUILT[link as usize].get_or_init(|| build(link)).clone()
}

fn build(link: Link) -> PathBuf {
    let root = common::repo_root();
    let out_dir = common::target_profile_dir().join("static-link");
    std::fs::create_dir_all(&out_dir).unwrap();
    let out = out_dir.join(format!("{link:?}"));
    let mut cmd = Command::new(common::c_compiler());
    cmd.args([
        "-std=c11",
        "-O2",
        "-g",
        "-Wall",
        "-Wextra",
        "-Werror",
        TLSDESC_DIALECT,
        "-pthread",
    ])
    .arg(format!("-I{}", root.join("include").display()))
    .arg(root.join("tests/support/static_link.c"))
    .arg("-o")
    .arg(&out);
    match link {
        Link::Exported => {
            cmd.arg(EXPORT_SLOT);
        }
        Link::ExportedByLld => {
            cmd.arg(format!("-B{}", rust_lld_dir().display()))
                .arg("-fuse-ld=lld")
                .arg(EXPORT_SLOT);
        }
        Link::NotExported => {}
        Link::FullyStatic => {
            cmd.arg("-static");
        }
    }
    cmd.arg(common::staticlib_path());
    // libgcc_s exists only as a shared library; gcc links libgcc_eh itself under -static.
    cmd.args(
        NATIVE_STATIC_LIBS
            .iter()
            .filter(|l| !matches!(link, Link::FullyStatic) || **l != "-lgcc_s"),
    );
    let result = cmd.output().expect("gcc runs");
    assert!(
        result.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
    out
}

/// The Rust toolchain's `gcc-ld` folder, whose `ld.lld` runs its bundled rust-lld.
fn rust_lld_dir() -> PathBuf {
    let out = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .expect("rustc runs");
    let sysroot = String::from_utf8(out.stdout).unwrap();
    let dir = PathBuf::from(sysroot.trim()).join("lib/rustlib/x86_64-unknown-linux-gnu/bin/gcc-ld");
    assert!(dir.join("ld.lld").exists(), "no rust-lld wrapper in {}", dir.display());
    dir
}

/// The `.dynsym` line of the slot, split into readelf's columns
/// (Num, Value, Size, Type, Bind, Vis, Ndx, Name), if there is one.
fn dynsym_entry(exe: &std::path::Path) -> Option<Vec<String>> {
    let out = Command::new("readelf")
        .args(["-W", "--dyn-syms"])
        .arg(exe)
        .output()
        .expect("readelf runs");
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .find(|cols| cols.len() == 8 && cols[7] == SYMBOL)
}

/// Runs the program to the end; returns (self-check status, self-check message, worker line).
fn run(link: Link) -> (i32, String, String) {
    let out = common::target_command(program(link)).output().expect("program starts");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{link:?} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = stdout.lines();
    let (status, message) = self_check_line(lines.next().expect("self-check line"));
    (status, message, lines.next().expect("worker line").to_owned())
}

fn self_check_line(line: &str) -> (i32, String) {
    let rest = line.strip_prefix("self_check ").unwrap_or_else(|| panic!("{line}"));
    let (status, message) = rest.split_once(' ').unwrap();
    (status.parse().unwrap(), message.to_owned())
}

fn address(line: &str, key: &str) -> u64 {
    let value = field(line, key);
    u64::from_str_radix(value.trim_start_matches("0x"), 16).unwrap_or_else(|_| panic!("{key}: {value}"))
}

/// The program with `--hold`, killed and reaped when dropped whatever the test's outcome.
struct Held {
    child: Child,
    self_check: String,
    worker: String,
}

impl Held {
    fn start(link: Link) -> Held {
        let mut child = common::target_command(program(link))
            .arg("--hold")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("program starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut next = || lines.next().expect("a line").expect("readable stdout");
        let self_check = next();
        let worker = next();
        Held {
            child,
            self_check,
            worker,
        }
    }

    /// Closes stdin, which lets the worker finish, and returns the exit code.
    fn finish(mut self) -> Option<i32> {
        drop(self.child.stdin.take());
        self.child.wait().unwrap().code()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What otel-ctx-dump reads from the held program, checked against what its worker published
/// and where the self-check found the slot; `model` is the access model it must report.
fn dump_reads_the_worker_span(link: Link, model: &str) {
    let held = Held::start(link);
    let pid = held.child.id();
    let out = Command::new(common::dump_binary())
        .args(["--json", &pid.to_string()])
        .output()
        .expect("otel-ctx-dump runs");
    let json = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{json}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let module = &json[json.find("\"modules\":[").expect("modules")..];
    assert_eq!(field(module, "path"), program(link).to_str().unwrap());
    assert_eq!(field(module, "access_model"), model);
    assert_eq!(field(module, "main_executable"), "true");
    assert_eq!(field(module, "resolution"), "static");
    let offset = format!("static TLS at thread-pointer offset {}", field(module, "tp_offset"));
    assert!(held.self_check.contains(&offset), "{offset} vs {}", held.self_check);

    let tid = field(&held.worker, "tid");
    let thread = &json[json
        .find(&format!("{{\"tid\":{tid},"))
        .unwrap_or_else(|| panic!("tid {tid} in {json}"))..];
    assert_eq!(field(thread, "state"), "active");
    assert_eq!(address(thread, "record_address"), address(&held.worker, "slot"));
    assert_eq!(field(thread, "trace_id"), TRACE_ID);
    assert_eq!(field(thread, "span_id"), SPAN_ID);
    assert_eq!(field(thread, "flags"), "1");
    assert!(
        thread.contains("{\"index\":0,\"key\":\"http_route\",\"value\":\"/static\""),
        "{thread}"
    );
    assert_eq!(held.finish(), Some(0));
}

#[test]
fn exported_slot_is_an_8_byte_global_tls_symbol_in_the_executables_dynsym() {
    for link in [Link::Exported, Link::ExportedByLld] {
        let cols = dynsym_entry(&program(link)).unwrap_or_else(|| panic!("{link:?}: {SYMBOL} not in .dynsym"));
        assert_eq!(&cols[2..6], ["8", "TLS", "GLOBAL", "DEFAULT"], "{link:?}: {cols:?}");
        assert_ne!(cols[6], "UND", "{link:?}: defined by the executable");
    }
}

#[test]
fn without_the_export_flag_the_slot_is_not_in_dynsym() {
    assert_eq!(dynsym_entry(&program(Link::NotExported)), None);
}

#[test]
fn slot_holds_the_record_the_api_returns_and_dlsym_finds_the_slot() {
    let (_, _, worker) = run(Link::Exported);
    let slot = address(&worker, "slot");
    assert_ne!(slot, 0, "{worker}");
    assert_eq!(slot, address(&worker, "ensure_record"), "{worker}");
    assert_eq!(slot, address(&worker, "handle_record"), "{worker}");
    assert_eq!(
        address(&worker, "slot_address"),
        address(&worker, "dlsym_address"),
        "{worker}"
    );
}

/// The self-check of the program linked as `link` passes, naming the main executable, the
/// access the linker left (`access`) and a static thread-pointer offset.
fn self_check_passes(link: Link, access: &str) {
    let (status, message, _) = run(link);
    assert_eq!(status, 0, "{message}");
    assert!(
        message.contains("(the main executable: the library is linked statically)"),
        "{message}"
    );
    assert!(message.contains(&format!("reached by {access}")), "{message}");
    assert!(message.contains(STATIC_OFFSET), "{message}");
    if cfg!(target_arch = "aarch64") {
        assert!(!message.contains(&format!("{STATIC_OFFSET}-")), "{message}");
    }
}

#[test]
fn self_check_passes_with_gnu_ld_initial_exec_or_local_exec() {
    // GNU ld for AArch64 relaxes even an initial-exec access of a slot the executable defines
    // to local-exec: no R_AARCH64_TLS_TPREL64 is left (the self-check still accepts one).
    if cfg!(target_arch = "aarch64") {
        self_check_passes(Link::Exported, "local-exec (no relocation)");
    } else {
        self_check_passes(Link::Exported, &format!("initial-exec (1 {TPREL}"));
    }
}

#[test]
fn self_check_passes_with_lld_local_exec() {
    self_check_passes(Link::ExportedByLld, "local-exec (no relocation)");
}

#[test]
fn self_check_without_the_export_flag_names_the_flag() {
    let (status, message, _) = run(Link::NotExported);
    assert_eq!(status, SELF_CHECK_FAILED, "{message}");
    assert!(message.contains("is not in .dynsym"), "{message}");
    assert!(message.contains(EXPORT_SLOT), "{message}");
}

#[test]
fn self_check_in_a_fully_static_executable_says_readers_cannot_find_the_slot() {
    let (status, message, _) = run(Link::FullyStatic);
    assert_eq!(status, SELF_CHECK_FAILED, "{message}");
    assert!(message.contains("-static"), "{message}");
    assert!(message.contains("readers cannot find the slot"), "{message}");
}

// otel-ctx-dump reads a live process through ptrace, and a process running under qemu-user (how
// the AArch64 tests run on an x86-64 machine) cannot be ptraced as an AArch64 guest: these two
// run on x86-64 only.
#[cfg(target_arch = "x86_64")]
#[test]
fn otel_ctx_dump_reads_the_span_of_a_gnu_ld_linked_program() {
    dump_reads_the_worker_span(Link::Exported, "initial-exec");
}

#[cfg(target_arch = "x86_64")]
#[test]
fn otel_ctx_dump_reads_the_span_of_an_lld_linked_program() {
    dump_reads_the_worker_span(Link::ExportedByLld, "local-exec");
}
