//! Another writer in the process (OTEP 4947 allows one slot per process): a module other than
//! the one holding this library's slot that defines `otel_thread_ctx_v1` (a second slot) or
//! references it (an undefined `.dynsym` entry, which readers matching the name misread) makes
//! the self-check fail, naming it. Programs from tests/support/other_writers.c and
//! other_slot.c, linked with the cdylib; the static-link case (the slot in the executable) is
//! tests/static_link.rs.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const SYMBOL: &str = "otel_thread_ctx_v1";
/// `OTEL_THREAD_CTX_STATUS_SELF_CHECK_FAILED`.
const SELF_CHECK_FAILED: i32 = -8;
/// gcc's flag for TLSDESC accesses, as the specification recommends.
#[cfg(target_arch = "x86_64")]
const TLSDESC_DIALECT: &str = "-mtls-dialect=gnu2";
#[cfg(target_arch = "aarch64")]
const TLSDESC_DIALECT: &str = "-mtls-dialect=desc";

/// What the tests build, once per test process.
#[derive(Clone, Copy, Debug)]
enum Built {
    /// other_writers.c: loads the libraries it is given, prints the self-check.
    Program,
    /// The same, declaring the slot `extern __thread` and reading it.
    ReferencingProgram,
    /// other_slot.c: a shared library defining its own slot.
    OtherSlot,
    /// Control: other_slot.c without the slot.
    NoSlot,
}

fn built(what: Built) -> PathBuf {
    static BUILT: [OnceLock<PathBuf>; 4] = [const { OnceLock::new() }; 4];
    BUILT[what as usize].get_or_init(|| build(what)).clone()
}

fn build(what: Built) -> PathBuf {
    let root = common::repo_root();
    let out_dir = common::target_profile_dir().join("other-writers");
    std::fs::create_dir_all(&out_dir).unwrap();
    let lib_dir = common::cdylib_path().parent().unwrap().to_path_buf();
    let mut cmd = Command::new(common::c_compiler());
    cmd.args([
        "-std=c11",
        "-O2",
        "-Wall",
        "-Wextra",
        "-Werror",
        TLSDESC_DIALECT,
        "-pthread",
    ])
    .arg(format!("-I{}", root.join("include").display()));
    let out = match what {
        Built::Program | Built::ReferencingProgram => {
            let out = out_dir.join(format!("{what:?}"));
            if let Built::ReferencingProgram = what {
                cmd.arg("-DREFERENCE_SLOT");
            }
            cmd.arg(root.join("tests/support/other_writers.c"))
                .arg(format!("-L{}", lib_dir.display()))
                .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
                .args(["-lotel_thread_ctx", "-ldl"]);
            out
        }
        Built::OtherSlot | Built::NoSlot => {
            let out = out_dir.join(format!("lib{what:?}.so"));
            if let Built::NoSlot = what {
                cmd.arg("-DWITHOUT_SLOT");
            }
            cmd.args(["-shared", "-fPIC"])
                .arg(root.join("tests/support/other_slot.c"));
            out
        }
    };
    let result = cmd.arg("-o").arg(&out).output().expect("the C compiler runs");
    assert!(
        result.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
    out
}

/// The `.dynsym` entry of the slot in `file`, as readelf's columns, if there is one.
fn dynsym_entry(file: &Path) -> Option<Vec<String>> {
    let out = Command::new("readelf")
        .args(["-W", "--dyn-syms"])
        .arg(file)
        .output()
        .expect("readelf runs");
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .find(|cols| cols.len() == 8 && cols[7] == SYMBOL)
}

/// Runs `program` loading `libraries`; returns the self-check's status and message.
fn self_check(program: Built, libraries: &[Built]) -> (i32, String) {
    let out = common::target_command(built(program))
        .args(libraries.iter().map(|&l| built(l)))
        .output()
        .expect("program starts");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{program:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rest = stdout
        .trim_end()
        .strip_prefix("self_check ")
        .unwrap_or_else(|| panic!("{stdout}"));
    let (status, message) = rest.split_once(' ').unwrap();
    (status.parse().unwrap(), message.to_owned())
}

#[test]
fn the_test_modules_have_the_dynsym_entries_they_stand_for() {
    let defined = dynsym_entry(&built(Built::OtherSlot)).expect("libOtherSlot.so exports the slot");
    assert_eq!(&cols(&defined)[..], ["8", "TLS", "GLOBAL"], "{defined:?}");
    assert_ne!(defined[6], "UND", "{defined:?}");
    let referenced = dynsym_entry(&built(Built::ReferencingProgram)).expect("an entry for the reference");
    assert_eq!(referenced[6], "UND", "{referenced:?}");
    assert_eq!(dynsym_entry(&built(Built::Program)), None);
    assert_eq!(dynsym_entry(&built(Built::NoSlot)), None);
}

fn cols(entry: &[String]) -> Vec<&str> {
    entry[2..5].iter().map(String::as_str).collect()
}

#[test]
fn control_without_another_writer_the_self_check_passes() {
    let (status, message) = self_check(Built::Program, &[Built::NoSlot]);
    assert_eq!(status, 0, "{message}");
    assert!(message.starts_with("ok: "), "{message}");
}

#[test]
fn a_library_defining_its_own_slot_fails_the_self_check_by_name() {
    let (status, message) = self_check(Built::Program, &[Built::OtherSlot]);
    assert_eq!(status, SELF_CHECK_FAILED, "{message}");
    let other = built(Built::OtherSlot);
    let want = format!("{} defines its own {SYMBOL}", other.display());
    assert!(message.contains(&want), "{want} not in {message}");
    assert!(!message.contains("references"), "{message}");
    // The rest of the check still ran: the message describes this library's own slot.
    assert!(message.contains("This library's own slot is fine:"), "{message}");
    assert!(message.contains("libotel_thread_ctx.so exports"), "{message}");
}

#[test]
fn an_executable_referencing_the_slot_fails_the_self_check_by_name() {
    let (status, message) = self_check(Built::ReferencingProgram, &[]);
    assert_eq!(status, SELF_CHECK_FAILED, "{message}");
    let exe = built(Built::ReferencingProgram);
    let want = format!("{} references {SYMBOL}", exe.display());
    assert!(message.contains(&want), "{want} not in {message}");
    assert!(message.contains("through the API"), "{message}");
    assert!(!message.contains("defines its own"), "{message}");
}

#[test]
fn both_other_writers_are_named() {
    let (status, message) = self_check(Built::ReferencingProgram, &[Built::OtherSlot]);
    assert_eq!(status, SELF_CHECK_FAILED, "{message}");
    assert!(message.contains(" defines its own "), "{message}");
    assert!(message.contains(" references "), "{message}");
}
