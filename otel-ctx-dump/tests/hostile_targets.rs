//! Targets that attack the inspector. Each was reproduced against the inspector as it
//! was: a file whose section header claims a terabyte aborted it; a FIFO where a deleted
//! mapping's path points hung it; a recycled pid made `--watch` report another process. (The
//! schema-version escape and the "being updated" flood are tested in check.rs and in
//! process_context's unit tests.)

mod support;

use otel_ctx_dump::elf::{self, FileData};
use otel_ctx_dump::inspect::modules::open_regular;
use otel_ctx_dump::output::exit;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{c_source, gcc, Json, Target};

/// A 256-byte x86-64 ELF file whose only section header claims a 1 TiB `.dynsym` at offset 0.
fn lying_elf() -> Vec<u8> {
    let mut b = vec![0u8; 256];
    b[..4].copy_from_slice(b"\x7fELF");
    b[4] = 2; // ELFCLASS64
    b[5] = 1; // little-endian
    b[6] = 1; // EV_CURRENT
    b[16..18].copy_from_slice(&3u16.to_le_bytes()); // ET_DYN
    b[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    b[20..24].copy_from_slice(&1u32.to_le_bytes());
    b[40..48].copy_from_slice(&64u64.to_le_bytes()); // e_shoff
    b[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
    b[58..60].copy_from_slice(&64u16.to_le_bytes()); // e_shentsize
    b[60..62].copy_from_slice(&2u16.to_le_bytes()); // e_shnum
                                                    // Section 1 (at 128): SHT_DYNSYM, offset 0, size 1 TiB, entries of 24 bytes.
    let sh = 128;
    b[sh + 4..sh + 8].copy_from_slice(&11u32.to_le_bytes());
    b[sh + 32..sh + 40].copy_from_slice(&(1u64 << 40).to_le_bytes());
    b[sh + 56..sh + 64].copy_from_slice(&24u64.to_le_bytes());
    b
}

fn maps_file_target(dir: &Path, files: &[&Path]) -> Target {
    gcc(dir, &["-O2", "-o", "maps_file", &c_source("maps_file.c")]);
    let target = Target::spawn(Command::new(dir.join("maps_file")).args(files));
    assert_eq!(target.line(Duration::from_secs(30)), "ready");
    target
}

#[test]
fn a_section_claiming_a_terabyte_is_refused_without_allocating_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("liar.so");
    std::fs::write(&path, lying_elf()).unwrap();
    let file = std::fs::File::open(&path).unwrap();
    let start = Instant::now();
    let result = elf::examine(&FileData::new(file, 256), None);
    assert!(result.is_err(), "{result:?}");
    assert!(start.elapsed() < Duration::from_secs(1));
}

/// Control: the bounded reader still reads a real module.
#[test]
fn a_real_module_reads_through_the_bounded_reader() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    gcc(
        d,
        &[
            "-O2",
            "-fPIC",
            "-shared",
            "-mtls-dialect=gnu2",
            "-o",
            "libslot.so",
            &c_source("tls_slot.c"),
        ],
    );
    let file = std::fs::File::open(d.join("libslot.so")).unwrap();
    let len = file.metadata().unwrap().len();
    let examined = elf::examine(&FileData::new(file, len), None).unwrap();
    assert!(examined.export.is_some(), "{examined:?}");
}

#[test]
fn a_target_mapping_a_lying_elf_is_inspected_not_aborted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("liar.so");
    std::fs::write(&path, lying_elf()).unwrap();
    let target = maps_file_target(dir.path(), &[&path]);
    let (code, out, err) = support::dump(&["--json", &target.pid().to_string()]);
    assert_eq!(code, exit::NO_MODULE, "{out}{err}");
    let json = Json::parse(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    let errors: Vec<&str> = json.get("module_errors").arr().iter().filter_map(Json::str).collect();
    assert!(errors.iter().any(|e| e.contains("liar.so")), "{out}");
}

#[test]
fn only_regular_files_are_opened() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // Safety: a valid path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let start = Instant::now();
    let e = open_regular(fifo.to_str().unwrap()).unwrap_err();
    assert!(e.to_string().contains("FIFO"), "{e}");
    assert!(start.elapsed() < Duration::from_secs(1));
    assert!(open_regular("/dev/null").is_err());
    // Control: a regular file opens.
    let file = dir.path().join("plain");
    std::fs::write(&file, b"x").unwrap();
    assert!(open_regular(file.to_str().unwrap()).is_ok());
}

/// Without CAP_SYS_ADMIN (and CAP_CHECKPOINT_RESTORE) /proc/PID/map_files is closed, and the
/// inspector falls back to the mapping's path under /proc/PID/root, where the target can put
/// anything: here a FIFO named like its deleted file.
#[test]
fn a_fifo_where_a_deleted_mapping_pointed_does_not_hang_the_inspector() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lib.so");
    std::fs::write(&path, lying_elf()).unwrap();
    let target = maps_file_target(dir.path(), &[&path]);
    std::fs::remove_file(&path).unwrap();
    let fifo = std::ffi::CString::new(format!("{} (deleted)", path.display())).unwrap();
    // Safety: a valid path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", target.pid())).unwrap();
    assert!(maps.contains("lib.so (deleted)"), "{maps}");

    let drop_caps = ["--bounding-set=-sys_admin,-checkpoint_restore", "--inh-caps=-all"];
    let mut cmd = Command::new("setpriv");
    cmd.args(drop_caps)
        .arg(support::dump_binary())
        .arg("--json")
        .arg(target.pid().to_string());
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("setpriv");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the inspector hung on the FIFO");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(exit::NO_MODULE),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Control: without the capability the map_files way was closed, so the FIFO was met.
    assert!(text.contains("not a regular file (a FIFO)"), "{text}");
}

/// `--watch` held the pid, not the process, and reported a successor's context as a
/// change. pid_max is small here; the successor is steered to the same pid with ns_last_pid.
#[test]
fn watch_ends_when_its_process_exits_even_if_the_pid_is_reused() {
    let dir = tempfile::tempdir().unwrap();
    let exe = support::gcc_linked(dir.path(), "leader_exit.c", "leader_exit");
    let first = maps_file_target(dir.path(), &[]);
    let pid = first.pid();
    let mut watcher = Target::spawn(Command::new(support::dump_binary()).args(["--watch", "3", &pid.to_string()]));
    let head = watcher.line(Duration::from_secs(20));
    assert!(head.contains("process context: absent"), "{head}");
    drop(first);
    // Another process with the same pid: one with a process context to report, if followed.
    let mut successor = None;
    for _ in 0..200 {
        if std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string()).is_err() {
            eprintln!("not checked here: /proc/sys/kernel/ns_last_pid is not writable");
            return;
        }
        let t = Target::spawn(&mut Command::new(&exe));
        if t.pid() == pid {
            successor = Some(t);
            break;
        }
    }
    let Some(successor) = successor else {
        eprintln!("not checked here: pid {pid} was not reused in 200 tries");
        return;
    };
    let _ = successor.line(Duration::from_secs(30));
    let lines = watcher.lines_until(Duration::from_secs(20), |l| l.contains("exited"));
    assert_eq!(
        lines.last().unwrap().trim_start_matches(|c| c != '-'),
        format!("- process {pid} exited")
    );
    assert!(!lines.iter().any(|l| l.contains("leader-exit")), "{lines:?}");
    assert_eq!(watcher.finish(Duration::from_secs(10)), exit::OK);
}
