//! The process context through its C API, checked by an independent reader (otel-ctx-dump's
//! library, through tests/process_context_reader): publish, find, decode, replace, refuse,
//! unpublish.
// These read the process context through otel-ctx-dump's library with process_vm_readv, which
// qemu-user does not implement (so it is a dev-dependency for x86-64 only, Cargo.toml). On
// AArch64 the .NET ProcessContextTests read it back their own way (scripts/test-aarch64.sh).
#![cfg(target_arch = "x86_64")]

mod process_context_reader;

use otel_thread_ctx::ffi::OtelThreadCtxStatus as S;
use otel_thread_ctx::process_context::ffi::{
    otel_process_ctx_declare_key, otel_process_ctx_publish, otel_process_ctx_unpublish, OtelProcessCtxKeyValue,
    OtelProcessCtxValue, OTEL_PROCESS_CTX_VALUE_STRING,
};
use otel_thread_ctx::test_hooks::{otel_process_ctx_forget_key_map, otel_process_ctx_read_payload};
use process_context_reader as reader;
use std::ffi::{CStr, CString};
use std::os::raw::c_char;
use std::sync::Mutex;

/// The context is one per process and cargo runs tests on several threads.
static SERIAL: Mutex<()> = Mutex::new(());

/// Runs the tests one at a time, each with the process's key map (which outlives a
/// publication) empty.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    assert_eq!(
        otel_process_ctx_unpublish(),
        S::NotPublished,
        "a context is left published"
    );
    otel_process_ctx_forget_key_map();
    guard
}

/// C-shaped arguments with the strings they point into.
struct Args {
    _strings: Vec<CString>,
    attrs: Vec<OtelProcessCtxKeyValue>,
    keys: Vec<*const c_char>,
}

fn args(resource: &[(&str, &str)], keys: &[&str]) -> Args {
    let mut strings = Vec::new();
    let mut cstr = |s: &str| {
        let c = CString::new(s).unwrap();
        let p = c.as_ptr();
        strings.push(c);
        p
    };
    let attrs = resource.iter().map(|(k, v)| text(cstr(k), v.as_bytes())).collect();
    let keys = keys.iter().map(|k| cstr(k)).collect();
    Args {
        _strings: strings,
        attrs,
        keys,
    }
}

/// A STRING attribute: `key` and the bytes of `value` as given (they must outlive the call).
fn text(key: *const c_char, value: &[u8]) -> OtelProcessCtxKeyValue {
    OtelProcessCtxKeyValue {
        key,
        value: OtelProcessCtxValue {
            kind: OTEL_PROCESS_CTX_VALUE_STRING,
            int_value: 0,
            double_value: 0.0,
            pointer: value.as_ptr().cast(),
            length: value.len(),
        },
    }
}

/// Publishes (or replaces) string resource attributes and a key map.
fn publish(resource: &[(&str, &str)], keys: &[&str]) -> S {
    let a = args(resource, keys);
    // Safety: the arrays and strings live in `a` (and `resource`) for the call.
    unsafe {
        otel_process_ctx_publish(
            a.attrs.as_ptr(),
            a.attrs.len(),
            std::ptr::null(),
            0,
            a.keys.as_ptr(),
            a.keys.len(),
        )
    }
}

fn read_payload() -> Result<Vec<u8>, S> {
    let mut size = 0usize;
    // Safety: a NULL buffer with capacity 0 asks for the size.
    let s = unsafe { otel_process_ctx_read_payload(std::ptr::null_mut(), 0, &mut size) };
    if s != S::BufferTooSmall {
        return Err(s);
    }
    let mut buf = vec![0u8; size];
    // Safety: `buf` has `size` writable bytes.
    let s = unsafe { otel_process_ctx_read_payload(buf.as_mut_ptr(), buf.len(), &mut size) };
    assert_eq!((s, size), (S::Ok, buf.len()));
    Ok(buf)
}

const RESOURCE: [(&str, &str); 5] = [
    ("service.name", "checkout"),
    ("service.instance.id", "3c1f6a52-0d64-4c3e-9d55-2d8a0e6f7b11"),
    ("deployment.environment.name", "staging"),
    ("telemetry.sdk.language", "cpp"),
    ("telemetry.sdk.version", "1.2.3"),
];

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn publish_find_decode_replace_unpublish() {
    let _g = serial();
    assert!(
        reader::find_mappings().is_empty(),
        "a context is left over: {:?}",
        reader::find_mappings()
    );
    let before = reader::boottime_ns();
    assert_eq!(publish(&RESOURCE, &["http_route", "http_method"]), S::Ok);

    let m = reader::the_mapping();
    assert!(!m.perms.contains('x'), "mapping must not be executable: {m:?}");
    assert!(m.perms.starts_with("r"), "{m:?}");
    let (h1, payload) = reader::read_context(m.start);
    assert!(
        h1.published_at_ns >= before && h1.published_at_ns <= reader::boottime_ns(),
        "{h1:?} vs {before}"
    );
    assert_eq!(
        read_payload().unwrap(),
        payload,
        "read-back helper disagrees with the mapping"
    );

    let d = reader::decode(&payload);
    let mut expected: Vec<(String, String)> = RESOURCE.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    // The caller gave a version but no SDK name: the library's name fills in.
    expected.push(("telemetry.sdk.name".into(), "otel-thread-ctx".into()));
    assert_eq!(d.resource, expected);
    assert_eq!(d.schema_version.as_deref(), Some("tlsdesc_v1_dev"));
    assert_eq!(d.key_map, Some(strings(&["http_route", "http_method"])));

    // Publishing again replaces: appended key, changed resource; same mapping and name, strictly
    // later timestamp.
    let mut resource2 = RESOURCE;
    resource2[2] = ("deployment.environment.name", "production");
    assert_eq!(publish(&resource2, &["http_route", "http_method", "user_id"]), S::Ok);
    let m2 = reader::the_mapping();
    assert_eq!(m2, m, "a replacement keeps the mapping and its name");
    let (h2, payload2) = reader::read_context(m.start);
    assert!(h2.published_at_ns > h1.published_at_ns, "{h2:?} !> {h1:?}");
    let d2 = reader::decode(&payload2);
    assert_eq!(
        reader::resource_value(&d2, "deployment.environment.name"),
        Some("production")
    );
    assert_eq!(d2.key_map, Some(strings(&["http_route", "http_method", "user_id"])));
    assert_eq!(read_payload().unwrap(), payload2);

    // Back-to-back replacements inside one clock tick still get strictly larger timestamps.
    let mut last = h2.published_at_ns;
    for _ in 0..200 {
        assert_eq!(publish(&resource2, &["http_route", "http_method", "user_id"]), S::Ok);
        let t = reader::read_header(m.start).published_at_ns;
        assert!(t > last, "{t} !> {last}");
        last = t;
    }

    assert_eq!(otel_process_ctx_unpublish(), S::Ok);
    assert!(
        reader::find_mappings().is_empty(),
        "unpublish left {:?}",
        reader::find_mappings()
    );
    assert_eq!(read_payload(), Err(S::NotPublished));
    assert_eq!(otel_process_ctx_unpublish(), S::NotPublished);
}

#[test]
fn publishing_twice_replaces_the_first_context() {
    let _g = serial();
    assert_eq!(publish(&[("service.name", "first")], &["a"]), S::Ok);
    let m = reader::the_mapping();
    assert_eq!(publish(&[("service.name", "second")], &[]), S::Ok);
    assert_eq!(reader::the_mapping(), m, "one mapping, replaced in place");
    let d = reader::decode(&reader::read_context(m.start).1);
    assert_eq!(reader::resource_value(&d, "service.name"), Some("second"));
    assert_eq!(d.key_map, Some(strings(&["a"])), "an empty key map keeps the process's");
    assert_eq!(otel_process_ctx_unpublish(), S::Ok);
}

#[test]
fn publishing_after_unpublish_publishes_anew_with_the_key_map() {
    let _g = serial();
    assert_eq!(publish(&[("service.name", "before")], &["http_route"]), S::Ok);
    assert_eq!(otel_process_ctx_unpublish(), S::Ok);
    assert!(reader::find_mappings().is_empty());
    // Records written before still name attributes by the process's key map's indexes.
    assert_eq!(publish(&[("service.name", "again")], &[]), S::Ok);
    let d = reader::decode(&reader::read_context(reader::the_mapping().start).1);
    assert_eq!(reader::resource_value(&d, "service.name"), Some("again"));
    assert_eq!(d.key_map, Some(strings(&["http_route"])));
    assert_eq!(otel_process_ctx_unpublish(), S::Ok);
}

#[test]
fn refused_replacements_leave_the_published_context_intact() {
    let _g = serial();
    let keys = ["datadog.local_root_span_id", "http_route", "http_method"];
    assert_eq!(publish(&[("service.name", "svc")], &keys), S::Ok);
    let m = reader::the_mapping();
    let snapshot = reader::read_context(m.start);

    let too_many: Vec<String> = (0..257).map(|i| format!("k{i}")).collect();
    let too_many: Vec<&str> = too_many.iter().map(String::as_str).collect();
    let huge = "v".repeat(64 * 1024);
    /// What is tried, the status it must get, the resource attributes and the key map.
    type Case<'a> = (&'a str, S, Vec<(&'a str, &'a str)>, Vec<&'a str>);
    let cases: Vec<Case> = vec![
        (
            "rename index 1",
            S::KeyMapChanged,
            vec![],
            vec![keys[0], "route", keys[2]],
        ),
        ("rename index 0", S::KeyMapChanged, vec![], vec!["route"]),
        (
            "swap two indexes",
            S::KeyMapChanged,
            vec![],
            vec![keys[0], keys[2], keys[1]],
        ),
        ("257 keys", S::TooManyAttributeKeys, vec![], too_many.clone()),
        ("empty key", S::EmptyAttributeKey, vec![], [&keys[..], &[""]].concat()),
        (
            "duplicate key",
            S::DuplicateAttributeKey,
            vec![],
            [&keys[..], &["http_route"]].concat(),
        ),
        (
            "empty resource key",
            S::EmptyResourceKey,
            vec![("", "x")],
            keys.to_vec(),
        ),
        (
            "duplicate resource key",
            S::DuplicateResourceKey,
            vec![("a", "1"), ("a", "2")],
            keys.to_vec(),
        ),
        (
            "payload over 64 KiB",
            S::PayloadTooLarge,
            vec![("service.name", huge.as_str())],
            keys.to_vec(),
        ),
    ];
    for (what, want, resource, key_map) in &cases {
        assert_eq!(publish(resource, key_map), *want, "{what}");
        assert_eq!(reader::the_mapping(), m, "{what}");
        assert_eq!(
            reader::read_context(m.start),
            snapshot,
            "{what} disturbed the published context"
        );
    }

    // Pointer and encoding errors are reported, not crashed on.
    let bad_utf8 = [b'a', 0xff, 0];
    let attr = [text(c"service.name".as_ptr(), &bad_utf8[..2])];
    let bad_attr_key = [text(bad_utf8.as_ptr().cast(), b"v")];
    let null_attr_key = [text(std::ptr::null(), b"v")];
    let null_key: [*const c_char; 1] = [std::ptr::null()];
    let bad_key: [*const c_char; 1] = [bad_utf8.as_ptr().cast()];
    use std::ptr::null as none;
    // Safety: every pointer is NULL or points to a NUL-terminated string or an array of the count.
    unsafe {
        assert_eq!(
            otel_process_ctx_publish(attr.as_ptr(), 1, none(), 0, none(), 0),
            S::InvalidUtf8
        );
        assert_eq!(
            otel_process_ctx_publish(bad_attr_key.as_ptr(), 1, none(), 0, none(), 0),
            S::InvalidUtf8
        );
        assert_eq!(
            otel_process_ctx_publish(none(), 0, null_attr_key.as_ptr(), 1, none(), 0),
            S::NullArgument
        );
        assert_eq!(
            otel_process_ctx_publish(none(), 0, none(), 0, null_key.as_ptr(), 1),
            S::NullArgument
        );
        assert_eq!(
            otel_process_ctx_publish(none(), 0, none(), 0, bad_key.as_ptr(), 1),
            S::InvalidUtf8
        );
        assert_eq!(
            otel_process_ctx_publish(none(), 2, none(), 0, none(), 0),
            S::NullArgument
        );
        assert_eq!(
            otel_process_ctx_publish(none(), 0, none(), 1, none(), 0),
            S::NullArgument
        );
        assert_eq!(
            otel_process_ctx_publish(none(), 0, none(), 0, none(), 3),
            S::NullArgument
        );
        assert_eq!(
            otel_process_ctx_read_payload(std::ptr::null_mut(), 0, std::ptr::null_mut()),
            S::NullArgument
        );
        assert_eq!(
            otel_process_ctx_read_payload(std::ptr::null_mut(), 8, &mut 0),
            S::NullArgument
        );
        let mut small = [0u8; 4];
        let mut size = 0;
        assert_eq!(
            otel_process_ctx_read_payload(small.as_mut_ptr(), 4, &mut size),
            S::BufferTooSmall
        );
        assert_eq!(size, snapshot.1.len());
        assert_eq!(small, [0; 4], "nothing is copied into a buffer that is too small");
    }
    assert_eq!(reader::read_context(m.start), snapshot);

    // A shorter (or empty) key map keeps the process's as it is.
    assert_eq!(publish(&[("service.name", "svc")], &keys[..1]), S::Ok);
    let d = reader::decode(&reader::read_context(m.start).1);
    assert_eq!(d.key_map, Some(strings(&keys)));

    // Exactly 256 keys, extending the published ones, is accepted.
    let mut full: Vec<String> = strings(&keys);
    full.extend((3..256).map(|i| format!("k{i}")));
    let full: Vec<&str> = full.iter().map(String::as_str).collect();
    assert_eq!(publish(&[("service.name", "svc")], &full), S::Ok);
    let d = reader::decode(&reader::read_context(m.start).1);
    assert_eq!(d.key_map.as_ref().map(Vec::len), Some(256));
    assert_eq!(d.key_map.unwrap()[..3], strings(&keys)[..]);
    assert_eq!(otel_process_ctx_unpublish(), S::Ok);
}

#[test]
fn concurrent_replacements_keep_the_context_readable() {
    let _g = serial();
    assert_eq!(publish(&[("service.name", "svc")], &["a"]), S::Ok);
    let m = reader::the_mapping();
    std::thread::scope(|s| {
        for t in 0..4 {
            s.spawn(move || {
                for i in 0..200 {
                    let v = format!("{t}-{i}");
                    assert_eq!(publish(&[("service.name", v.as_str())], &["a", "b"]), S::Ok);
                }
            });
        }
    });
    let d = reader::decode(&reader::read_context(m.start).1);
    assert_eq!(d.key_map, Some(strings(&["a", "b"])));
    assert_eq!(otel_process_ctx_unpublish(), S::Ok);
}

fn declare(key: &CStr) -> Result<u8, S> {
    let mut index = 0xEE;
    // Safety: a NUL-terminated key and a writable index.
    match unsafe { otel_process_ctx_declare_key(key.as_ptr(), &mut index) } {
        S::Ok => Ok(index),
        s => Err(s),
    }
}

#[test]
fn declared_keys_join_the_one_key_map_whoever_published_it() {
    let _g = serial();
    // Another writer published with its key map; this one declares a key of its own.
    assert_eq!(publish(&[("service.name", "svc")], &["tenant.id"]), S::Ok);
    let m = reader::the_mapping();
    let before = reader::read_header(m.start).published_at_ns;
    assert_eq!(declare(c"http.route"), Ok(1));
    assert_eq!(declare(c"tenant.id"), Ok(0), "a key already in the map keeps its index");
    let (h, payload) = reader::read_context(m.start);
    assert!(
        h.published_at_ns > before,
        "declaring a key publishes the context again"
    );
    assert_eq!(
        reader::decode(&payload).key_map,
        Some(strings(&["tenant.id", "http.route"]))
    );

    // The first writer's next publish keeps the declared key; it cannot rename its index.
    assert_eq!(publish(&[("service.name", "svc2")], &["tenant.id"]), S::Ok);
    assert_eq!(
        publish(&[("service.name", "svc2")], &["tenant.id", "user.id"]),
        S::KeyMapChanged
    );
    let d = reader::decode(&reader::read_context(m.start).1);
    assert_eq!(reader::resource_value(&d, "service.name"), Some("svc2"));
    assert_eq!(d.key_map, Some(strings(&["tenant.id", "http.route"])));

    // Declared while nothing is published: the next publication carries it.
    assert_eq!(otel_process_ctx_unpublish(), S::Ok);
    assert_eq!(declare(c"user.id"), Ok(2));
    assert_eq!(publish(&[("service.name", "svc3")], &[]), S::Ok);
    let d = reader::decode(&reader::read_context(reader::the_mapping().start).1);
    assert_eq!(d.key_map, Some(strings(&["tenant.id", "http.route", "user.id"])));

    // Refusals change nothing.
    assert_eq!(declare(c""), Err(S::EmptyAttributeKey));
    // Safety: NULL key and NULL index are refused before use.
    unsafe {
        assert_eq!(otel_process_ctx_declare_key(std::ptr::null(), &mut 0), S::NullArgument);
        assert_eq!(
            otel_process_ctx_declare_key(c"k".as_ptr(), std::ptr::null_mut()),
            S::NullArgument
        );
    }
    for i in 3..256 {
        assert_eq!(declare(&CString::new(format!("k{i}")).unwrap()), Ok(i as u8));
    }
    assert_eq!(declare(c"one too many"), Err(S::TooManyAttributeKeys));
    let d = reader::decode(&reader::read_context(reader::the_mapping().start).1);
    assert_eq!(d.key_map.map(|k| k.len()), Some(256));
    assert_eq!(otel_process_ctx_unpublish(), S::Ok);
}
