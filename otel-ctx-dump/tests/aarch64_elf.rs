//! AArch64 modules, examined on this (x86-64) machine: shared objects and executables compiled
//! here with `aarch64-linux-gnu-gcc` from tests/c/tls_slot.c, classified from their bytes
//! (`R_AARCH64_TLSDESC`, `R_AARCH64_TLS_TPREL64`, `R_AARCH64_TLS_DTPMOD64`, local-exec), then
//! resolved the way the inspector resolves a live module: from GOT words, here printed by
//! tests/c/tls_probe.c running under qemu-aarch64-static (qemu-user guests cannot be ptraced, so
//! the probe prints what a reader would read, and the test reads it through the same `resolve`
//! and `read_slot` with the glibc AArch64 DTV layout). The slot the reader lands on must be the
//! address the probe's own thread sees, and the record there must decode.
//!
//! Fails (never skips) when the cross compiler or qemu-aarch64-static is missing.

mod support;

use otel_ctx_dump::elf::{self, AccessModel};
use otel_ctx_dump::inspect::{read_slot, resolve, Module, Resolution, SlotRead};
use otel_ctx_dump::maps::Memory;
use otel_ctx_dump::platform;
use std::io;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use support::{c_source, run};

fn cross_gcc(dir: &Path, args: &[&str]) {
    run(Command::new("aarch64-linux-gnu-gcc").current_dir(dir).args(args));
}

/// Compiles the AArch64 modules and probes once.
fn built() -> &'static Path {
    static BUILT: OnceLock<tempfile::TempDir> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = tempfile::tempdir().expect("tempdir");
            let d = dir.path();
            let slot = c_source("tls_slot.c");
            let probe = c_source("tls_probe.c");
            for (name, flags) in [
                ("desc", &["-mtls-dialect=desc"][..]),
                ("ie", &["-ftls-model=initial-exec"][..]),
                ("trad", &["-mtls-dialect=trad"][..]),
            ] {
                let lib = format!("libslot_{name}.so");
                let mut args = vec!["-O2", "-fPIC", "-shared", "-o", &lib, &slot];
                args.extend_from_slice(flags);
                cross_gcc(d, &args);
                // Linked at startup: the module's block is in static TLS.
                let exe = format!("probe_{name}");
                let rpath = format!("-Wl,-rpath,{}", d.display());
                let link = format!("-l:{lib}");
                cross_gcc(
                    d,
                    &[
                        "-O2",
                        "-o",
                        &exe,
                        &probe,
                        "-ldl",
                        "-L.",
                        "-Wl,--no-as-needed",
                        &link,
                        &rpath,
                    ],
                );
            }
            cross_gcc(d, &["-O2", "-o", "probe_dlopen", &probe, "-ldl"]);
            // The slot in the executable: local-exec, and initial-exec code the linker relaxes.
            cross_gcc(d, &["-O2", "-rdynamic", "-o", "probe_le", &probe, &slot, "-ldl"]);
            cross_gcc(
                d,
                &[
                    "-O2",
                    "-rdynamic",
                    "-ftls-model=initial-exec",
                    "-o",
                    "probe_le_ie",
                    &probe,
                    &slot,
                    "-ldl",
                ],
            );
            dir
        })
        .path()
}

/// What the probe printed: its thread pointer, slot address, the module's load bias, and the
/// memory words a reader needs.
struct Probe {
    tp: u64,
    slot: u64,
    bias: u64,
    mem: Vec<(u64, Vec<u8>)>,
}

impl Memory for Probe {
    fn read(&self, addr: u64, buf: &mut [u8]) -> io::Result<()> {
        for (start, bytes) in &self.mem {
            if addr >= *start && addr + buf.len() as u64 <= start + bytes.len() as u64 {
                let o = (addr - start) as usize;
                buf.copy_from_slice(&bytes[o..o + buf.len()]);
                return Ok(());
            }
        }
        Err(io::Error::from_raw_os_error(libc::EFAULT))
    }
}

fn run_probe(exe: &str, module: &str, got_offset: Option<u64>, no_static_surplus: bool) -> Probe {
    let d = built();
    let mut cmd = Command::new("qemu-aarch64-static");
    // The loader and libc of the cross toolchain (gcc-aarch64-linux-gnu), not an arm64
    // multiarch libc of another version (their mix crashes): qemu's prefix for the loader,
    // the guest's library path for libc.
    cmd.args(["-L", "/usr/aarch64-linux-gnu"]).arg(d.join(exe)).arg(module);
    cmd.env("LD_LIBRARY_PATH", "/usr/aarch64-linux-gnu/lib");
    if let Some(o) = got_offset {
        cmd.arg(format!("{o:x}"));
    }
    if no_static_surplus {
        cmd.env("GLIBC_TUNABLES", "glibc.rtld.optional_static_tls=0");
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hex = |s: &str| u64::from_str_radix(s, 16).unwrap_or_else(|e| panic!("{s:?} in {text}: {e}"));
    let mut p = Probe {
        tp: 0,
        slot: 0,
        bias: 0,
        mem: Vec::new(),
    };
    for line in text.lines() {
        let mut w = line.split(' ');
        match w.next() {
            Some("tp") => p.tp = hex(w.next().unwrap()),
            Some("slot") => p.slot = hex(w.next().unwrap()),
            Some("bias") => p.bias = hex(w.next().unwrap()),
            Some("mem") => {
                let addr = hex(w.next().unwrap());
                let bytes = w.flat_map(|x| hex(x).to_le_bytes()).collect();
                p.mem.push((addr, bytes));
            }
            _ => panic!("unexpected probe line {line:?}"),
        }
    }
    assert!(p.tp != 0 && p.slot != 0, "{text}");
    p
}

/// Classifies `file`, checks the relocation, resolves the slot from what the probe read and
/// follows it to the record. Returns the resolution.
fn check(
    file: &str,
    model: AccessModel,
    r_type: Option<u32>,
    exe: &str,
    module: &str,
    no_static_surplus: bool,
) -> Resolution {
    let d = built();
    let bytes = std::fs::read(d.join(file)).unwrap();
    let export = elf::find_export(&bytes[..], None).unwrap().expect("symbol found");
    assert_eq!(export.arch, &platform::AARCH64, "{file}");
    assert_eq!(export.access_model(), model, "{file}: {:?}", export.relocs);
    assert_eq!(export.st_size, 8);
    assert!(export.global);
    // An x86-64 reader does not take this file for one of its own modules.
    assert_eq!(elf::find_export(&bytes[..], Some(&platform::X86_64)).unwrap(), None);
    let reloc = export.reloc(model);
    match r_type {
        Some(t) => assert!(
            reloc.is_some_and(|r| r.r_type == t && r.by_symbol),
            "{file}: {:?}",
            export.relocs
        ),
        None => assert_eq!(export.relocs, vec![], "{file}"),
    }

    let probe = run_probe(exe, module, reloc.map(|r| r.r_offset), no_static_surplus);
    let m = Module {
        path: file.into(),
        load_bias: probe.bias,
        export,
        model,
        is_main_executable: module == "-",
        resolution: Err(String::new()),
    };
    let resolution = resolve(&platform::LINUX_AARCH64_GLIBC, &probe, &m).unwrap_or_else(|e| panic!("{file}: {e}"));
    if let Resolution::StaticOffset(o) = resolution {
        assert!(o >= 16, "{file}: variant I static TLS lies past the 16-byte TCB: {o}");
        assert_eq!(probe.tp.wrapping_add(o as u64), probe.slot, "{file}: {resolution}");
    }
    match read_slot(&probe, &platform::LINUX_AARCH64_GLIBC, probe.tp, resolution) {
        SlotRead::Record { record, .. } => {
            assert_eq!(record.header.trace_id, [0x11; 16], "{file}");
            assert_eq!(record.header.span_id, [0x22; 8], "{file}");
        }
        other => panic!("{file} ({resolution}): {other:?}"),
    }
    resolution
}

#[test]
fn tlsdesc_in_static_tls() {
    let d = built().join("libslot_desc.so");
    let r = check(
        "libslot_desc.so",
        AccessModel::TlsDesc,
        Some(1031),
        "probe_desc",
        d.to_str().unwrap(),
        false,
    );
    assert!(matches!(r, Resolution::StaticOffset(_)), "{r}");
}

#[test]
fn tlsdesc_dlopened_in_the_dtv() {
    let d = built().join("libslot_desc.so");
    let r = check(
        "libslot_desc.so",
        AccessModel::TlsDesc,
        Some(1031),
        "probe_dlopen",
        d.to_str().unwrap(),
        true,
    );
    assert!(
        matches!(r, Resolution::Dynamic { generation: Some(g), .. } if g >= 1),
        "{r}"
    );
}

#[test]
fn initial_exec_tprel64() {
    let d = built().join("libslot_ie.so");
    let r = check(
        "libslot_ie.so",
        AccessModel::InitialExec,
        Some(1030),
        "probe_ie",
        d.to_str().unwrap(),
        false,
    );
    assert!(matches!(r, Resolution::StaticOffset(_)), "{r}");
}

#[test]
fn traditional_general_dynamic_through_the_dtv() {
    let d = built().join("libslot_trad.so");
    let r = check(
        "libslot_trad.so",
        AccessModel::GeneralDynamic,
        Some(1028),
        "probe_trad",
        d.to_str().unwrap(),
        false,
    );
    assert!(matches!(r, Resolution::Dynamic { generation: None, .. }), "{r}");
}

#[test]
fn local_exec_in_the_executable() {
    for exe in ["probe_le", "probe_le_ie"] {
        let r = check(exe, AccessModel::LocalExec, None, exe, "-", false);
        assert!(matches!(r, Resolution::StaticOffset(_)), "{exe}: {r}");
    }
}
