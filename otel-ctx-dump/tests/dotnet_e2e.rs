//! End to end against a .NET program using the OtelThreadContext package (its project, from the
//! repository's dotnet/ directory, copied with a small test app into a temporary directory so
//! the build never touches the working tree): the ids and attributes written from C# on several
//! threads are read back from outside, with static TLS and with the DTV path forced
//! (.NET loads the native library with dlopen).

mod support;

use otel_ctx_dump::elf::AccessModel;
use otel_ctx_dump::inspect::{Inspector, Resolution, SlotRead};
use otel_ctx_dump::record::hex;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;
use support::Target;

fn dotnet_available() -> bool {
    Command::new("dotnet")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(from, to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
}

/// Builds the app once; returns the path of App.dll.
fn app() -> &'static Path {
    static APP: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &APP.get_or_init(|| {
        let root = support::workspace_root();
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        // The package's build reads the product version from the root Cargo.toml.
        copy(&root.join("Cargo.toml"), &t.join("Cargo.toml"));
        if root.join("LICENSE").exists() {
            copy(&root.join("LICENSE"), &t.join("LICENSE"));
        }
        for f in ["Directory.Build.props", "Directory.Build.targets", "nuget.config"] {
            if root.join("dotnet").join(f).exists() {
                copy(&root.join("dotnet").join(f), &t.join("dotnet").join(f));
            }
        }
        let pkg = root.join("dotnet/OtelThreadContext");
        for entry in std::fs::read_dir(&pkg).unwrap() {
            let p = entry.unwrap().path();
            if p.is_file() {
                copy(&p, &t.join("dotnet/OtelThreadContext").join(p.file_name().unwrap()));
            }
        }
        // Only the installed runtime's framework is needed here.
        let csproj = t.join("dotnet/OtelThreadContext/OtelThreadContext.csproj");
        let text = std::fs::read_to_string(&csproj).unwrap();
        let text = match (text.find("<TargetFrameworks>"), text.find("</TargetFrameworks>")) {
            (Some(a), Some(b)) => format!("{}<TargetFrameworks>net10.0{}", &text[..a], &text[b..]),
            _ => text,
        };
        std::fs::write(&csproj, text).unwrap();
        let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dotnet");
        copy(&here.join("App.csproj"), &t.join("dotnet/App/App.csproj"));
        copy(&here.join("Program.cs"), &t.join("dotnet/App/Program.cs"));
        let lib = support::library_dir().join("libotel_thread_ctx.so");
        support::run(
            Command::new("dotnet")
                .current_dir(t.join("dotnet/App"))
                .args(["build", "-c", "Release", "-nologo", "-v", "q"])
                .arg(format!("-p:OtelNativeLibrary={}", lib.display()))
                .env("DOTNET_CLI_TELEMETRY_OPTOUT", "1")
                .env("DOTNET_NOLOGO", "1"),
        );
        let dll = t.join("dotnet/App/bin/Release/net10.0/App.dll");
        assert!(dll.exists(), "{} not built", dll.display());
        (tmp, dll)
    })
    .1
}

fn check(force_dynamic: bool) {
    if !dotnet_available() {
        eprintln!("skipped: no dotnet SDK on PATH");
        return;
    }
    let mut cmd = Command::new("dotnet");
    cmd.arg(app()).env("LD_LIBRARY_PATH", support::library_dir());
    if force_dynamic {
        cmd.env("GLIBC_TUNABLES", "glibc.rtld.optional_static_tls=0");
    }
    let mut target = Target::spawn(&mut cmd);
    let lines = target.lines_until(Duration::from_secs(60), |l| l == "ready");
    let published: Vec<Vec<&str>> = lines[..lines.len() - 1]
        .iter()
        .map(|l| l.split(' ').collect())
        .collect();
    assert_eq!(published.len(), 4, "{lines:?}");

    let snapshot = Inspector::new(target.pid())
        .snapshot(None)
        .expect("inspect the .NET process");
    assert_eq!(snapshot.modules.len(), 1, "{:?}", snapshot.modules);
    let m = &snapshot.modules[0];
    assert!(m.path.ends_with("libotel_thread_ctx.so"), "{}", m.path);
    assert_eq!(m.model, AccessModel::TlsDesc);
    match m.resolution.as_ref().expect("resolved") {
        Resolution::Dynamic { .. } => assert!(force_dynamic, "DTV lookup although static TLS had room"),
        Resolution::StaticOffset(_) => assert!(!force_dynamic, "static TLS although the surplus was disabled"),
    }
    // The runtime has its own threads (finalizer, ...); ours are found by tid.
    assert!(snapshot.threads.len() > 4);
    for p in &published {
        // tid T trace HEX span HEX flags F attr0 V attr1 V
        let tid: i32 = p[1].parse().unwrap();
        let t = snapshot
            .threads
            .iter()
            .find(|t| t.tid == tid)
            .unwrap_or_else(|| panic!("tid {tid} not found"));
        assert!(t.name.starts_with("worker-"), "{}", t.name);
        let SlotRead::Record { record, .. } = &t.reads[0].1 else {
            panic!("tid {tid}: {:?}", t.reads)
        };
        assert!(record.is_valid());
        assert_eq!(hex(&record.header.trace_id), p[3]);
        assert_eq!(hex(&record.header.span_id), p[5]);
        assert_eq!(record.header.trace_flags.to_string(), p[7]);
        let attrs: Vec<(u8, &str)> = record
            .attributes
            .iter()
            .map(|a| (a.key_index, a.value.as_str()))
            .collect();
        assert_eq!(attrs, [(0, p[9]), (1, p[11])], "tid {tid}");
    }
    for (tid, state) in support::thread_states(target.pid()) {
        assert!(!matches!(state, 't' | 'T'), "thread {tid} left in state {state}");
    }
    assert_eq!(target.finish(Duration::from_secs(30)), 0);
}

#[test]
fn dotnet_threads_read_from_outside() {
    check(false);
}

#[test]
fn dotnet_threads_read_from_outside_with_dynamic_tls() {
    check(true);
}
