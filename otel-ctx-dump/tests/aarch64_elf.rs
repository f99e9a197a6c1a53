//! AArch64 modules, examined on this (x86-64) machine: shared objects and executables compiled
//! here with `aarch64-linux-gnu-gcc` from tests/c/tls_slot.c, for glibc and for musl (the same
//! compiler with musl-dev:arm64's specs file), classified from their bytes (`R_AARCH64_TLSDESC`,
//! `R_AARCH64_TLS_TPREL64`, `R_AARCH64_TLS_DTPMOD64`, local-exec), then resolved the way the
//! inspector resolves a live module: from GOT words, here printed by tests/c/tls_probe.c running
//! under qemu-aarch64-static (qemu-user guests cannot be ptraced, so the probe prints what a
//! reader would read, and the test reads it through the same `resolve` and `read_slot` with that
//! C library's AArch64 DTV layout). The slot the reader lands on must be the address the probe's
//! own thread sees, and the record there must decode. A control reads the musl probe's DTV with
//! the glibc layout and must not land on the record.
//!
//! Fails (never skips) when the cross compiler, musl:arm64 or qemu-aarch64-static is missing.

mod support;

use otel_ctx_dump::elf::{self, AccessModel};
use otel_ctx_dump::inspect::{read_slot, resolve, Module, Resolution, SlotRead};
use otel_ctx_dump::maps::Memory;
use otel_ctx_dump::platform::{self, Platform};
use std::io;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use support::{c_source, run};

/// The C library the modules and probes are built for and run with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Libc {
    Glibc,
    Musl,
}
use Libc::*;

/// musl's specs file for gcc (Debian's musl-dev:arm64): musl's headers, start files and loader.
const MUSL_SPECS: &str = "/usr/lib/aarch64-linux-musl/musl-gcc.specs";
const MUSL_LOADER: &str = "/lib/ld-musl-aarch64.so.1";

impl Libc {
    fn platform(self) -> &'static Platform {
        match self {
            Glibc => &platform::LINUX_AARCH64_GLIBC,
            Musl => &platform::LINUX_AARCH64_MUSL,
        }
    }
}

/// Compiles the AArch64 modules and probes once per C library.
fn built(libc: Libc) -> &'static Path {
    static GLIBC: OnceLock<tempfile::TempDir> = OnceLock::new();
    static MUSL: OnceLock<tempfile::TempDir> = OnceLock::new();
    let cell = if libc == Glibc { &GLIBC } else { &MUSL };
    cell.get_or_init(|| {
        if libc == Musl {
            for f in [MUSL_SPECS, MUSL_LOADER] {
                assert!(
                    Path::new(f).exists(),
                    "{f} is missing (musl-dev:arm64; scripts/setup.sh installs it)"
                );
            }
        }
        let cross_gcc = |dir: &Path, args: &[&str]| {
            let mut cmd = Command::new("aarch64-linux-gnu-gcc");
            cmd.current_dir(dir).args(args);
            if libc == Musl {
                cmd.args(["-specs", MUSL_SPECS]);
            }
            run(&mut cmd);
        };
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

fn run_probe(libc: Libc, exe: &str, module: &str, got_offset: Option<u64>, no_static_surplus: bool) -> Probe {
    let d = built(libc);
    let mut cmd = Command::new("qemu-aarch64-static");
    if libc == Glibc {
        // The loader and libc of the cross toolchain (gcc-aarch64-linux-gnu), not an arm64
        // multiarch libc of another version (their mix crashes): qemu's prefix for the loader,
        // the guest's library path for libc.
        cmd.args(["-L", "/usr/aarch64-linux-gnu"]);
        cmd.env("LD_LIBRARY_PATH", "/usr/aarch64-linux-gnu/lib");
    }
    // musl's loader is the multiarch /lib/ld-musl-aarch64.so.1 the executable names.
    cmd.arg(d.join(exe)).arg(module);
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
    libc: Libc,
    file: &str,
    model: AccessModel,
    r_type: Option<u32>,
    exe: &str,
    module: &str,
    no_static_surplus: bool,
) -> Resolution {
    let d = built(libc);
    let bytes = std::fs::read(d.join(file)).unwrap();
    let export = elf::examine(&bytes[..], None).unwrap().export.expect("symbol found");
    assert_eq!(export.arch, &platform::AARCH64, "{file}");
    assert_eq!(export.access_model(), model, "{file}: {:?}", export.relocs);
    assert_eq!(export.st_size, 8);
    assert!(export.global);
    // An x86-64 reader does not take this file for one of its own modules.
    assert_eq!(elf::examine(&bytes[..], Some(&platform::X86_64)).unwrap().export, None);
    let reloc = export.reloc(model);
    match r_type {
        Some(t) => assert!(
            reloc.is_some_and(|r| r.r_type == t && r.by_symbol),
            "{file}: {:?}",
            export.relocs
        ),
        None => assert_eq!(export.relocs, vec![], "{file}"),
    }

    let probe = run_probe(libc, exe, module, reloc.map(|r| r.r_offset), no_static_surplus);
    let m = Module {
        path: file.into(),
        load_bias: probe.bias,
        export,
        model,
        is_main_executable: module == "-",
        resolution: Err(String::new()),
    };
    let resolution = resolve(libc.platform(), &probe, &m).unwrap_or_else(|e| panic!("{file}: {e}"));
    if let Resolution::StaticOffset(o) = resolution {
        // Variant I: glibc's thread pointer points at its 16-byte TCB, and an executable's
        // local-exec offsets skip those 16 bytes on both. musl's points just past its `struct
        // pthread`: when the executable has no TLS, musl places a start-up library's at tp + 0.
        let least = if libc == Glibc || module == "-" { 16 } else { 0 };
        assert!(
            o >= least,
            "{file}: variant I static TLS lies at or above tp + {least}: {o}"
        );
        assert_eq!(probe.tp.wrapping_add(o as u64), probe.slot, "{file}: {resolution}");
    }
    match read_slot(&probe, libc.platform(), probe.tp, resolution) {
        SlotRead::Record { addr, record } => {
            assert_eq!(
                probe.read_u64(probe.slot).unwrap(),
                addr,
                "{file}: the probe's own slot"
            );
            assert_eq!(record.header.trace_id, [0x11; 16], "{file}");
            assert_eq!(record.header.span_id, [0x22; 8], "{file}");
        }
        other => panic!("{file} ({resolution}): {other:?}"),
    }
    // Control: the other C library's DTV layout does not find a DTV-placed record.
    if let (Musl, Resolution::Dynamic { module_id, offset, .. }) = (libc, resolution) {
        let glibc = Resolution::Dynamic {
            module_id,
            offset,
            generation: None,
        };
        let read = read_slot(&probe, &platform::LINUX_AARCH64_GLIBC, probe.tp, glibc);
        assert!(
            !matches!(read, SlotRead::Record { .. }),
            "{file}: glibc's layout read {read:?}"
        );
    }
    resolution
}

fn tlsdesc_in_static_tls(libc: Libc) {
    let d = built(libc).join("libslot_desc.so");
    let r = check(
        libc,
        "libslot_desc.so",
        AccessModel::TlsDesc,
        Some(1031),
        "probe_desc",
        d.to_str().unwrap(),
        false,
    );
    assert!(matches!(r, Resolution::StaticOffset(_)), "{r}");
}

/// glibc: dlopen'ed with no static-TLS surplus; musl puts every dlopen'ed module in the DTV.
fn tlsdesc_dlopened_in_the_dtv(libc: Libc) {
    let d = built(libc).join("libslot_desc.so");
    let r = check(
        libc,
        "libslot_desc.so",
        AccessModel::TlsDesc,
        Some(1031),
        "probe_dlopen",
        d.to_str().unwrap(),
        true,
    );
    match libc {
        Glibc => assert!(
            matches!(r, Resolution::Dynamic { generation: Some(g), .. } if g >= 1),
            "{r}"
        ),
        Musl => assert!(matches!(r, Resolution::Dynamic { generation: None, .. }), "{r}"),
    }
}

fn initial_exec_tprel64(libc: Libc) {
    let d = built(libc).join("libslot_ie.so");
    let r = check(
        libc,
        "libslot_ie.so",
        AccessModel::InitialExec,
        Some(1030),
        "probe_ie",
        d.to_str().unwrap(),
        false,
    );
    assert!(matches!(r, Resolution::StaticOffset(_)), "{r}");
}

fn traditional_general_dynamic_through_the_dtv(libc: Libc) {
    let d = built(libc).join("libslot_trad.so");
    let r = check(
        libc,
        "libslot_trad.so",
        AccessModel::GeneralDynamic,
        Some(1028),
        "probe_trad",
        d.to_str().unwrap(),
        false,
    );
    assert!(matches!(r, Resolution::Dynamic { generation: None, .. }), "{r}");
}

fn local_exec_in_the_executable(libc: Libc) {
    for exe in ["probe_le", "probe_le_ie"] {
        let r = check(libc, exe, AccessModel::LocalExec, None, exe, "-", false);
        assert!(matches!(r, Resolution::StaticOffset(_)), "{exe}: {r}");
    }
}

/// Each case for glibc and for musl: `glibc_NAME` and `musl_NAME`.
macro_rules! both_c_libraries {
    ($($name:ident),*) => {
        mod glibc {
            $(#[test]
            fn $name() {
                super::$name(super::Glibc)
            })*
        }
        mod musl {
            $(#[test]
            fn $name() {
                super::$name(super::Musl)
            })*
        }
    };
}
both_c_libraries!(
    tlsdesc_in_static_tls,
    tlsdesc_dlopened_in_the_dtv,
    initial_exec_tprel64,
    traditional_general_dynamic_through_the_dtv,
    local_exec_in_the_executable
);
