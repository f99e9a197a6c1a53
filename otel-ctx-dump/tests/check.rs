//! `otel-ctx-dump check` against a writer that breaks one rule at a time (tests/c/check_writer.c
//! with the slot modules of tests/c/check_slot.c): each broken rule must be reported by the rule
//! that names its clause, with the exit status for failures (8) or warnings only (7); the same
//! writer doing everything right passes every rule (exit 0), which is the control for all of them.

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;
use support::{c_source, dump, gcc, Json, Target};

const EXIT_WARNINGS: i32 = 7;
const EXIT_FAILS: i32 = 8;

struct Built {
    dir: tempfile::TempDir,
}

/// Compiles the slot modules and the writers once.
fn built() -> &'static Path {
    static BUILT: OnceLock<Built> = OnceLock::new();
    let b = BUILT.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let slot = c_source("check_slot.c");
        let writer = c_source("check_writer.c");
        let rpath = format!("-Wl,-rpath,{}", d.display());
        let lib = |name: &str, flags: &[&str]| {
            let file = format!("libslot_{name}.so");
            let soname = format!("-Wl,-soname,{file}");
            let mut args = vec!["-O2", "-fPIC", "-shared", "-o", &file, &slot, &soname];
            args.extend_from_slice(flags);
            gcc(d, &args);
        };
        let exe = |name: &str, extra: &[&str], libs: &[&str]| {
            let mut args = vec!["-O2", "-pthread", "-mtls-dialect=gnu2", "-o", name, &writer];
            args.extend_from_slice(extra);
            args.extend_from_slice(&["-L.", &rpath, "-Wl,--no-as-needed"]);
            let libs: Vec<String> = libs.iter().map(|l| format!("-l:libslot_{l}.so")).collect();
            args.extend(libs.iter().map(String::as_str));
            args.push("-ldl");
            gcc(d, &args);
        };
        lib("desc", &["-mtls-dialect=gnu2"]);
        lib("two", &["-mtls-dialect=gnu2"]);
        lib("gd", &["-mtls-dialect=gnu"]);
        lib("ie", &["-ftls-model=initial-exec"]);
        lib("ld", &["-mtls-dialect=gnu", "-DSLOT_LOCAL_DYNAMIC"]);
        lib("wide", &["-mtls-dialect=gnu2", "-DSLOT_WIDE"]);
        lib("weak", &["-mtls-dialect=gnu2", "-DSLOT_WEAK"]);
        lib("notls", &["-DSLOT_NOT_TLS"]);
        exe("writer", &[], &["desc"]);
        for l in ["gd", "ie", "ld", "wide", "weak", "notls"] {
            exe(&format!("writer_{l}"), &[], &[l]);
        }
        exe("writer_two", &[], &["desc", "two"]);
        exe("writer_ref", &["-DREFERENCE"], &["desc"]);
        exe("writer_le", &["-rdynamic", &slot], &[]);
        exe("writer_dl", &[], &[]);
        Built { dir }
    });
    b.dir.path()
}

/// Runs `exe args` (with `env`), then `otel-ctx-dump check --json [extra] PID`: exit code and JSON.
fn check_with(exe: &str, args: &[&str], env: &[(&str, &str)], extra: &[&str]) -> (i32, Json) {
    let d = built();
    let mut cmd = Command::new(d.join(exe));
    cmd.args(args.iter().map(|a| a.replace("$DIR", &d.display().to_string())));
    cmd.envs(env.iter().copied());
    let target = Target::spawn(&mut cmd);
    assert_eq!(target.line(Duration::from_secs(30)), "ready", "{exe} {args:?}");
    let pid = target.pid().to_string();
    let mut dump_args = vec!["check", "--json"];
    dump_args.extend_from_slice(extra);
    dump_args.push(&pid);
    let (code, out, err) = dump(&dump_args);
    let json = Json::parse(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    assert_eq!(json.get("exit_code").num(), Some(f64::from(code)), "{out}");
    (code, json)
}

/// The findings of one rule: (result, clause, evidence).
fn findings<'a>(json: &'a Json, rule: &str) -> Vec<(&'a str, &'a str, &'a str)> {
    json.get("checks")
        .arr()
        .iter()
        .filter(|c| c.get("check").str() == Some(rule))
        .map(|c| {
            let s = |k| c.get(k).str().unwrap_or("");
            (s("result"), s("clause"), s("evidence"))
        })
        .collect()
}

/// Rules whose result is not "pass".
fn not_passing(json: &Json) -> Vec<String> {
    json.get("checks")
        .arr()
        .iter()
        .filter(|c| c.get("result").str() != Some("pass"))
        .map(|c| {
            format!(
                "{}: {}",
                c.get("check").str().unwrap_or(""),
                c.get("evidence").str().unwrap_or("")
            )
        })
        .collect()
}

/// `exe args` breaks `rule` of `clause`: it is reported `verdict` with `evidence`, and the exit
/// status says so.
fn expect(exe: &str, args: &[&str], env: &[(&str, &str)], rule: &str, verdict: &str, clause: &str, evidence: &str) {
    let (code, json) = check_with(exe, args, env, &[]);
    let f = findings(&json, rule);
    assert!(
        f.iter()
            .any(|(r, c, e)| *r == verdict && c.starts_with(clause) && e.contains(evidence)),
        "{rule}: {f:?}, wanted {verdict} ({clause}) with {evidence:?}"
    );
    let expected = if verdict == "fail" { EXIT_FAILS } else { EXIT_WARNINGS };
    assert_eq!(code, expected, "{:?}", not_passing(&json));
}

#[test]
fn a_healthy_writer_passes_every_rule() {
    let (code, json) = check_with("writer", &[], &[], &[]);
    assert_eq!(not_passing(&json), Vec::<String>::new());
    assert_eq!(code, 0);
    assert!(json.get("checks").arr().len() >= 23);
}

#[test]
fn no_span_is_valid_0_or_valid_1_with_zero_ids() {
    for mode in ["idle0", "idle1"] {
        let (code, json) = check_with("writer", &["--record", mode], &[], &[]);
        assert_eq!((code, not_passing(&json)), (0, vec![]), "{mode}");
        assert!(
            findings(&json, "slot pointer")[0].2.contains("(1 without a span)"),
            "{mode}"
        );
    }
}

#[test]
fn a_healthy_writer_passes_while_it_updates() {
    let (code, json) = check_with("writer", &["--update", "ok"], &[], &["--duration", "2"]);
    assert_eq!((code, not_passing(&json)), (0, vec![]));
    let f = findings(&json, "update timestamps");
    let updates: u32 = f[0].2.split(' ').next().unwrap().parse().unwrap();
    assert!(updates >= 3, "{f:?}");
}

macro_rules! breaks {
    ($($name:ident: $exe:literal [$($arg:literal),*] => $rule:literal $verdict:literal $clause:literal $evidence:literal;)*) => {
        $(
            #[test]
            fn $name() {
                expect($exe, &[$($arg),*], &[], $rule, $verdict, $clause, $evidence);
            }
        )*
    };
}

breaks! {
    slot_of_16_bytes: "writer_wide" [] => "slot symbol" "fail" "OTEP 4947 TLS symbol" "size 16";
    weak_slot: "writer_weak" [] => "slot symbol" "fail" "OTEP 4947 TLS symbol" "WEAK";
    slot_not_tls: "writer_notls" [] => "slot symbol" "fail" "OTEP 4947 TLS symbol" "STT_OBJECT";
    two_modules_define_the_slot: "writer_two" [] => "slot symbol" "fail" "OTEP 4947 TLS symbol" "2 modules define it";
    executable_references_the_slot: "writer_ref" [] => "other modules" "warn" "OTEP 4947 TLS symbol" "writer_ref references it";
    general_dynamic: "writer_gd" [] => "access model" "warn" "OTEP 4947 access model" "general-dynamic";
    initial_exec: "writer_ie" [] => "access model" "warn" "OTEP 4947 access model" "initial-exec";
    local_exec: "writer_le" [] => "access model" "warn" "OTEP 4947 access model" "local-exec";
    local_dynamic: "writer_ld" [] => "access model" "fail" "OTEP 4947 access model" "local-dynamic";
    no_process_context: "writer" ["--context", "none"] => "context mapping" "fail" "OTEP 4719 discovery" "no OTEL_CTX mapping";
    two_process_contexts: "writer" ["--context", "two"] => "context mapping" "fail" "OTEP 4719 discovery" "2 mappings";
    executable_context: "writer" ["--context", "exec"] => "context mapping" "fail" "OTEP 4719 discovery" "executable";
    bad_signature: "writer" ["--context", "signature"] => "signature" "fail" "OTEP 4719 header" "OTEL_CTY";
    version_1: "writer" ["--context", "version"] => "version" "fail" "OTEP 4719 header" "1";
    payload_size_0: "writer" ["--context", "size0"] => "payload size" "fail" "OTEP 4719 header" "0 bytes";
    payload_too_large: "writer" ["--context", "size-big"] => "payload size" "fail" "OTEP 4719 header" "70000 bytes";
    timestamp_0: "writer" ["--context", "ts0"] => "timestamp" "fail" "OTEP 4719 publishing" "0: unpublished";
    timestamp_from_the_wrong_clock: "writer" ["--context", "realtime"] => "timestamp" "fail" "OTEP 4719 publishing" "not CLOCK_BOOTTIME";
    payload_not_protobuf: "writer" ["--context", "garbage"] => "payload" "fail" "OTEP 4719 payload" "malformed payload";
    unknown_schema: "writer" ["--schema", "v9"] => "schema version" "fail" "OTEP 4947 key map" "unknown";
    no_schema: "writer" ["--no-schema"] => "schema version" "fail" "OTEP 4947 key map" "absent";
    schema_renamed_tls_v1: "writer" ["--schema", "tls_v1"] => "schema version" "warn" "OTEP 4947 key map" "pending rename";
    schema_renamed_tlsdesc_v1: "writer" ["--schema", "tlsdesc_v1"] => "schema version" "warn" "OTEP 4947 key map" "rename suggested";
    schema_of_go: "writer" ["--schema", "go_pprof_labels_v1"] => "schema version" "warn" "OTEP 4947 key map" "Go's";
    schema_of_nodejs: "writer" ["--schema", "nodejs_v1"] => "schema version" "warn" "OTEP 4947 key map" "Node.js";
    empty_key: "writer" ["--keys", "http_method,,http_route"] => "no empty key" "fail" "OTEP 4947 key map" "empty at [1]";
    duplicate_key: "writer" ["--keys", "http_method,http_route,http_method"] => "no duplicate key" "fail" "OTEP 4947 key map" "\"http_method\" at [0] and [2]";
    key_map_of_257: "writer" ["--keys-257"] => "key map" "fail" "OTEP 4947 key map" "257 entries";
    dangling_record_pointer: "writer" ["--record", "dangling"] => "slot pointer" "fail" "OTEP 4947 TLS symbol" "reading the record at 0x10";
    odd_record_address: "writer" ["--record", "odd"] => "record alignment" "fail" "OTEP 4947 record" "record at 0x";
    valid_2: "writer" ["--record", "valid2"] => "valid flag" "fail" "OTEP 4947 record" "valid = 2";
    attrs_data_size_700: "writer" ["--record", "size700"] => "attrs_data_size" "fail" "OTEP 4947 record" "700";
    overrunning_entry: "writer" ["--record", "overrun"] => "attribute entries" "fail" "OTEP 4947 record" "needs 42 bytes";
    key_index_outside_the_map: "writer" ["--record", "key-outside"] => "key indexes" "fail" "OTEP 4947 record" "index 9 (key map has 2)";
    value_not_utf8: "writer" ["--record", "bad-utf8"] => "values UTF-8" "fail" "OTEP 4947 record" "index 1";
    trace_id_without_span_id: "writer" ["--record", "one-id"] => "ids" "fail" "OTEP 4947 record" "trace_id without span_id";
}

#[test]
fn dynamic_tls_placement_warns() {
    let env = [("GLIBC_TUNABLES", "glibc.rtld.optional_static_tls=0")];
    let args = ["--dlopen", "$DIR/libslot_desc.so"];
    expect(
        "writer_dl",
        &args,
        &env,
        "placement",
        "warn",
        "OTEP 4947 TLS placement",
        "dynamic TLS",
    );
}

/// Control for the placement rule: the same module by dlopen, with glibc's surplus left on.
#[test]
fn dlopen_into_the_static_surplus_passes() {
    let (code, json) = check_with("writer_dl", &["--dlopen", "$DIR/libslot_desc.so"], &[], &[]);
    assert_eq!((code, not_passing(&json)), (0, vec![]));
}

#[test]
fn update_with_the_same_timestamp_fails() {
    let (code, json) = check_with("writer", &["--update", "same-ts"], &[], &["--duration", "2"]);
    let f = findings(&json, "update timestamps");
    assert_eq!(f[0].0, "fail", "{f:?}");
    assert!(f[0].1.starts_with("OTEP 4719 update"), "{f:?}");
    assert_eq!(code, EXIT_FAILS);
}

#[test]
fn update_that_loses_the_name_fails() {
    let (code, json) = check_with("writer", &["--update", "lose-name"], &[], &["--duration", "2"]);
    let f = findings(&json, "update keeps name");
    assert_eq!(f[0].0, "fail", "{f:?}");
    assert!(f[0].2.contains("no mapping is named OTEL_CTX"), "{f:?}");
    assert_eq!(code, EXIT_FAILS);
}

/// The schema version was printed raw in the text report and in `--watch` lines.
#[test]
fn a_hostile_schema_version_is_inert_in_every_text_output() {
    let d = built();
    let schema = "\x1b]0;pwned\x07\x1b[2J\u{2028}v\u{2029}";
    let target = Target::spawn(Command::new(d.join("writer")).args(["--schema", schema]));
    assert_eq!(target.line(Duration::from_secs(30)), "ready");
    let pid = target.pid().to_string();
    let raw = |s: &str| -> Vec<char> {
        s.chars()
            .filter(|&c| c != '\n' && otel_ctx_dump::escape::is_terminal_control(c))
            .collect()
    };
    for args in [
        vec!["check", &pid],
        vec![&pid],
        vec!["--watch", "0.05", "--samples", "1", &pid],
    ] {
        let (_, out, err) = dump(&args);
        assert_eq!(raw(&out), Vec::<char>::new(), "{args:?}: {out:?}");
        assert_eq!(raw(&err), Vec::<char>::new(), "{args:?}: {err:?}");
        // Control: the schema is there, escaped.
        assert!(
            out.contains("\\u{1b}]0;pwned\\u{7}\\u{1b}[2J\\u{2028}v\\u{2029}"),
            "{args:?}: {out}"
        );
    }
}

/// Thousands of OTEL_CTX mappings "being updated" stalled one read for minutes.
#[test]
fn a_flood_of_contexts_being_updated_is_read_in_bounded_time() {
    let d = built();
    let target = Target::spawn(Command::new(d.join("writer")).args(["--context", "flood"]));
    assert_eq!(target.line(Duration::from_secs(60)), "ready");
    let pid = target.pid().to_string();
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    assert!(maps.matches("OTEL_CTX").count() > 3000, "control: the flood is there");
    let start = std::time::Instant::now();
    let (code, json) = check_with("writer", &["--context", "flood"], &[], &[]);
    assert!(start.elapsed() < Duration::from_secs(20), "{:?}", start.elapsed());
    let f = findings(&json, "context mapping");
    assert!(f[0].0 == "fail" && f[0].2.contains("3001 mappings"), "{f:?}");
    assert_eq!(code, EXIT_FAILS);
    let start = std::time::Instant::now();
    let (_, out, _) = dump(&["--json", &pid]);
    assert!(start.elapsed() < Duration::from_secs(5), "{:?}", start.elapsed());
    let json = Json::parse(out.trim()).unwrap();
    assert_eq!(
        json.get("process_context").get("status").str(),
        Some("invalid"),
        "{out}"
    );
}

/// Ctrl-C ends a check promptly, even in the middle of --duration.
#[test]
fn a_check_ends_on_sigint() {
    let d = built();
    let target = Target::spawn(&mut Command::new(d.join("writer")));
    assert_eq!(target.line(Duration::from_secs(30)), "ready");
    let mut checker = support::dump_binary();
    let checker = Command::new(std::mem::take(&mut checker))
        .args(["check", "--duration", "60", &target.pid().to_string()])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    // Safety: sends SIGINT to our own child.
    assert_eq!(unsafe { libc::kill(checker.id() as i32, libc::SIGINT) }, 0);
    let start = std::time::Instant::now();
    let mut checker = checker;
    let status = loop {
        if let Some(s) = checker.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "the check ignored SIGINT");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(130));
}
