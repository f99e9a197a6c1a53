//! Each access model a module can reach the slot with, read from outside: TLSDESC, GNU
//! general-dynamic, initial-exec (shared objects compiled here from tests/c/tls_slot.c, which
//! defines its own test-only otel_thread_ctx_v1) and local-exec (the slot in the executable),
//! each with static TLS and, where glibc allows it, the dynamic (DTV) placement. The target's
//! threads publish a good record, one being updated, one with an overrunning attribute, and
//! none, and the reader must report each honestly.

mod support;

use otel_ctx_dump::elf::{self, AccessModel};
use otel_ctx_dump::inspect::{ContextStatus, Inspector, Resolution, SlotRead};
use otel_ctx_dump::record::hex;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;
use support::{c_source, gcc, Target};

struct Built {
    dir: tempfile::TempDir,
}

/// Compiles the slot modules and hosts once.
fn built() -> &'static Path {
    static BUILT: OnceLock<Built> = OnceLock::new();
    let b = BUILT.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let slot = c_source("tls_slot.c");
        let host = c_source("tls_host.c");
        for (name, flags) in [
            ("desc", &["-mtls-dialect=gnu2"][..]),
            ("gd", &["-mtls-dialect=gnu"][..]),
            ("ie", &["-ftls-model=initial-exec"][..]),
        ] {
            let lib = format!("libslot_{name}.so");
            let soname = format!("-Wl,-soname,{lib}");
            let mut args = vec!["-O2", "-fPIC", "-shared", "-o", &lib, &slot, &soname];
            args.extend_from_slice(flags);
            gcc(d, &args);
            let exe = format!("host_{name}");
            let link = format!("-l:{lib}");
            let rpath = format!("-Wl,-rpath,{}", d.display());
            gcc(d, &["-O2", "-pthread", "-o", &exe, &host, "-L.", &link, &rpath]);
        }
        gcc(
            d,
            &[
                "-O2",
                "-pthread",
                "-DTEST_SLOT_DYNAMIC",
                "-o",
                "host_dlopen",
                &host,
                "-ldl",
            ],
        );
        // Local-exec: the slot lives in the executable, exported with -rdynamic.
        gcc(d, &["-O2", "-pthread", "-rdynamic", "-o", "host_le", &host, &slot]);
        Built { dir }
    });
    b.dir.path()
}

struct Case {
    exe: &'static str,
    dlopen: Option<&'static str>,
    no_static_surplus: bool,
    model: AccessModel,
    dynamic: bool,
}

fn check(case: Case) {
    let d = built();
    let mut cmd = Command::new(d.join(case.exe));
    if let Some(lib) = case.dlopen {
        cmd.arg("--dlopen").arg(d.join(lib));
    }
    if case.no_static_surplus {
        cmd.env("GLIBC_TUNABLES", "glibc.rtld.optional_static_tls=0");
    }
    let mut target = Target::spawn(&mut cmd);
    let pid = target.pid();
    let lines = target.lines_until(Duration::from_secs(30), |l| l == "ready");
    // "tid T trace HEX span HEX flags F published P"
    let threads: Vec<Vec<&str>> = lines[..lines.len() - 1]
        .iter()
        .map(|l| l.split(' ').collect())
        .collect();
    assert_eq!(threads.len(), 4, "{lines:?}");

    let snapshot = Inspector::new(pid).snapshot(None).expect("inspect");
    assert!(matches!(snapshot.process_context, ContextStatus::Absent));
    assert_eq!(snapshot.modules.len(), 1, "{:?}", snapshot.modules);
    let m = &snapshot.modules[0];
    assert_eq!(m.model, case.model, "{}", m.path);
    assert_eq!(m.is_main_executable, case.model == AccessModel::LocalExec);
    match m.resolution.as_ref().expect("resolved") {
        Resolution::Dynamic { .. } => assert!(case.dynamic, "unexpected DTV lookup"),
        Resolution::StaticOffset(_) => assert!(!case.dynamic, "unexpected static offset"),
    }

    // Threads are started in order 0..4 but may print in any order: match by the span id's
    // first byte (0x90 + index).
    for fields in &threads {
        let tid: i32 = fields[1].parse().expect("tid");
        let index = u8::from_str_radix(&fields[5][..2], 16).expect("span hex") - 0x90;
        let t = snapshot.threads.iter().find(|t| t.tid == tid).expect("thread found");
        let read = &t.reads[0].1;
        match (index, read) {
            (0, SlotRead::Record { record, .. }) => {
                assert!(record.is_valid());
                assert_eq!(hex(&record.header.trace_id), fields[3]);
                assert_eq!(hex(&record.header.span_id), fields[5]);
                assert_eq!(record.header.trace_flags.to_string(), fields[7]);
                let attrs: Vec<(u8, &str)> = record
                    .attributes
                    .iter()
                    .map(|a| (a.key_index, a.value.as_str()))
                    .collect();
                assert_eq!(attrs, [(0, "GET"), (7, "hi")]);
                assert_eq!(record.truncated, None);
            }
            (1, SlotRead::Record { record, .. }) => {
                assert!(!record.is_valid());
                assert_eq!(otel_ctx_dump::output::state_word(read), "being_updated");
            }
            (2, SlotRead::Record { record, .. }) => {
                assert!(record.is_valid());
                assert_eq!(record.attributes.len(), 1);
                assert_eq!(record.attributes[0].value, "ok");
                let truncated = record.truncated.as_deref().unwrap_or_default();
                assert!(truncated.starts_with("entry at offset 4 "), "{truncated}");
            }
            (3, SlotRead::NoSlot(_)) => assert!(case.dynamic, "no slot with static TLS"),
            (3, SlotRead::NoContext) => {
                // A thread that never touched dynamic TLS has no block for the module yet.
                assert!(!case.dynamic || case.model == AccessModel::GeneralDynamic && case.dlopen.is_none());
            }
            other => panic!("thread index {}: unexpected {:?}", other.0, other.1),
        }
    }

    // The text output names the model and says what each thread holds.
    let (code, out, _) = support::dump(&[&pid.to_string()]);
    assert_eq!(code, otel_ctx_dump::output::exit::NO_PROCESS_CONTEXT, "{out}");
    assert!(out.contains(&case.model.to_string()), "{out}");
    assert!(out.contains("#7=\"hi\""), "unknown key index shown by number: {out}");
    assert!(out.contains("being updated"), "{out}");
    assert!(out.contains("truncated"), "{out}");
    assert_eq!(target.finish(Duration::from_secs(10)), 0);
}

#[test]
fn tlsdesc_static() {
    check(Case {
        exe: "host_desc",
        dlopen: None,
        no_static_surplus: false,
        model: AccessModel::TlsDesc,
        dynamic: false,
    });
}

#[test]
fn tlsdesc_dlopen_dynamic() {
    check(Case {
        exe: "host_dlopen",
        dlopen: Some("libslot_desc.so"),
        no_static_surplus: true,
        model: AccessModel::TlsDesc,
        dynamic: true,
    });
}

#[test]
fn general_dynamic_linked_at_startup() {
    // The module sits in static TLS, but GD code still goes through the module id and the DTV.
    check(Case {
        exe: "host_gd",
        dlopen: None,
        no_static_surplus: false,
        model: AccessModel::GeneralDynamic,
        dynamic: true,
    });
}

#[test]
fn general_dynamic_dlopen_dynamic() {
    check(Case {
        exe: "host_dlopen",
        dlopen: Some("libslot_gd.so"),
        no_static_surplus: true,
        model: AccessModel::GeneralDynamic,
        dynamic: true,
    });
}

#[test]
fn initial_exec() {
    check(Case {
        exe: "host_ie",
        dlopen: None,
        no_static_surplus: false,
        model: AccessModel::InitialExec,
        dynamic: false,
    });
}

#[test]
fn local_exec_in_the_executable() {
    check(Case {
        exe: "host_le",
        dlopen: None,
        no_static_surplus: false,
        model: AccessModel::LocalExec,
        dynamic: false,
    });
}

#[test]
fn elf_classification_from_the_files_alone() {
    let d = built();
    for (file, model, r_type) in [
        ("libslot_desc.so", AccessModel::TlsDesc, object::elf::R_X86_64_TLSDESC),
        (
            "libslot_gd.so",
            AccessModel::GeneralDynamic,
            object::elf::R_X86_64_DTPMOD64,
        ),
        ("libslot_ie.so", AccessModel::InitialExec, object::elf::R_X86_64_TPOFF64),
    ] {
        let e = elf::examine(&std::fs::read(d.join(file)).unwrap()[..], None)
            .unwrap()
            .export
            .expect("symbol found");
        assert_eq!(e.access_model(), model, "{file}");
        assert_eq!(e.st_size, 8);
        assert!(e.global);
        assert!(
            e.reloc(model).is_some_and(|r| r.r_type == r_type && r.by_symbol),
            "{file}: {:?}",
            e.relocs
        );
        assert!(e.tls.is_some());
        // Reading only the needed parts of the open file gives the same answer.
        let cache = object::read::ReadCache::new(std::fs::File::open(d.join(file)).unwrap());
        assert_eq!(elf::examine(&cache, None).unwrap().export.as_ref(), Some(&e), "{file}");
    }
    // The host defines no slot of its own: not an export.
    assert!(elf::examine(&std::fs::read(d.join("host_gd")).unwrap()[..], None)
        .unwrap()
        .export
        .is_none());
    let le = elf::examine(&std::fs::read(d.join("host_le")).unwrap()[..], None)
        .unwrap()
        .export
        .expect("exported by -rdynamic");
    assert_eq!(le.access_model(), AccessModel::LocalExec);
}

#[test]
fn oversized_process_context_is_reported_not_trusted() {
    let d = built();
    let target = Target::spawn(Command::new(d.join("host_desc")).arg("--bad-context"));
    target.lines_until(Duration::from_secs(30), |l| l == "ready");
    let snapshot = Inspector::new(target.pid()).snapshot(None).expect("inspect");
    match &snapshot.process_context {
        ContextStatus::Invalid { mapping, error, .. } => {
            assert_eq!(mapping, "/memfd:OTEL_CTX (deleted)");
            assert!(error.contains("100000") && error.contains("limit"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    let (code, out, _) = support::dump(&[&target.pid().to_string()]);
    assert_eq!(code, otel_ctx_dump::output::exit::NO_PROCESS_CONTEXT);
    assert!(out.contains("process context: INVALID"), "{out}");
}
