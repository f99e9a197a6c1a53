//! The check of the C sample (samples/c) run with --hold, shared by the glibc and musl tests:
//! every thread the sample reports is found from outside with the same ids, flags and named
//! attributes, through the library and through the binary's JSON.

use super::{Json, Target};
use otel_ctx_dump::elf::AccessModel;
use otel_ctx_dump::inspect::{ContextStatus, Inspector, Resolution, SlotRead, Snapshot};
use otel_ctx_dump::record::hex;
use std::process::Command;
use std::time::Duration;

/// How many worker threads the sample is asked for.
pub const THREADS: usize = 4;

/// Runs `cmd` (a sample program; `--threads` and `--hold` are added), reads it, and checks what
/// was read against what the sample printed. `expect_dynamic`: the slot must be reached through
/// the DTV (else through static TLS). Returns the snapshot for further checks.
pub fn check_sample(mut cmd: Command, expect_dynamic: bool) -> Snapshot {
    cmd.args(["--threads", &THREADS.to_string(), "--hold", "120"]);
    let target = Target::spawn(&mut cmd);
    let pid = target.pid();
    let mut published = Vec::new();
    while published.len() < THREADS {
        let line = Json::parse(&target.line(Duration::from_secs(30))).expect("sample prints JSON lines");
        if line.get("tid") != &Json::Null {
            published.push(line);
        }
    }

    let snapshot = Inspector::new(pid).snapshot(None).expect("inspect the sample");
    assert!(
        matches!(snapshot.process_context, ContextStatus::Present { .. }),
        "process context: {:?}",
        snapshot.process_context
    );
    assert_eq!(snapshot.modules.len(), 1, "{:?}", snapshot.modules);
    let module = &snapshot.modules[0];
    assert!(module.path.ends_with("libotel_thread_ctx.so"), "{}", module.path);
    assert_eq!(module.model, AccessModel::TlsDesc);
    match module.resolution {
        Ok(Resolution::Dynamic { .. }) => assert!(expect_dynamic, "DTV lookup where static TLS was expected"),
        Ok(Resolution::StaticOffset(off)) => {
            assert!(!expect_dynamic, "static offset {off} where the DTV path was forced");
            assert!(off < 0, "x86-64 static TLS lies below the thread pointer: {off}");
        }
        Err(ref e) => panic!("slot not resolved: {e}"),
    }
    assert_eq!(snapshot.threads.len(), THREADS + 1, "main thread + workers");

    for p in &published {
        let tid = p.get("tid").num().expect("tid") as i32;
        let thread = snapshot
            .threads
            .iter()
            .find(|t| t.tid == tid)
            .unwrap_or_else(|| panic!("tid {tid} not found"));
        assert_eq!(thread.error, None);
        let SlotRead::Record { record, .. } = &thread.reads[0].1 else {
            panic!("tid {tid}: {:?}", thread.reads)
        };
        assert!(record.is_valid());
        assert_eq!(
            Some(hex(&record.header.trace_id).as_str()),
            p.get("trace_id").str(),
            "tid {tid}"
        );
        assert_eq!(
            Some(hex(&record.header.span_id).as_str()),
            p.get("span_id").str(),
            "tid {tid}"
        );
        assert_eq!(
            Some(f64::from(record.header.trace_flags)),
            p.get("flags").num(),
            "tid {tid}"
        );
        assert_eq!(record.truncated, None);
        let expected = p.get("attributes").obj();
        assert!(!expected.is_empty());
        assert_eq!(record.attributes.len(), expected.len(), "tid {tid}");
        for (name, value) in expected {
            let found = record
                .attributes
                .iter()
                .find(|a| a.key.as_deref() == Some(name.as_str()))
                .unwrap_or_else(|| panic!("tid {tid}: no attribute named {name} in {:?}", record.attributes));
            assert_eq!(Some(found.value.as_str()), value.str(), "tid {tid} {name}");
        }
    }

    // The binary says the same, in JSON.
    let (code, out, err) = super::dump(&["--json", &pid.to_string()]);
    assert_eq!(code, 0, "{err}");
    let json = Json::parse(out.trim()).expect("--json output parses");
    let threads = json.get("threads").arr();
    for p in &published {
        let t = threads
            .iter()
            .find(|t| t.get("tid").num() == p.get("tid").num())
            .expect("thread in JSON");
        assert_eq!(t.get("state").str(), Some("active"));
        assert_eq!(t.get("trace_id"), p.get("trace_id"));
        assert_eq!(t.get("span_id"), p.get("span_id"));
        let names: Vec<(&str, &str)> = t
            .get("attributes")
            .arr()
            .iter()
            .map(|a| (a.get("key").str().unwrap_or("?"), a.get("value").str().unwrap_or("?")))
            .collect();
        for (name, value) in p.get("attributes").obj() {
            assert!(
                names.contains(&(name.as_str(), value.str().unwrap_or("!"))),
                "{name} missing from {names:?}"
            );
        }
    }
    let main = threads
        .iter()
        .find(|t| t.get("tid").num() == Some(f64::from(pid)))
        .expect("main thread");
    assert!(
        matches!(main.get("state").str(), Some("no_context") | Some("no_slot")),
        "{main:?}"
    );

    for (tid, state) in super::thread_states(pid) {
        assert!(!matches!(state, 't' | 'T'), "thread {tid} left in state {state}");
    }
    snapshot
}
