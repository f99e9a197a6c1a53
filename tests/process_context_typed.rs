//! The process context's typed values (`otel_process_ctx_publish`), read back from the mapping by
//! the independent reader (tests/process_context_reader): every value kind arrives as the OTLP
//! AnyValue it names, the resource as given (plus the SDK name and version where not given), the
//! caller's own context attributes after the library's `threadlocal.*` ones; bad input is refused.
// Read through otel-ctx-dump's library with process_vm_readv, which qemu-user does not
// implement: x86-64 only, as the other process-context tests.
#![cfg(target_arch = "x86_64")]

mod process_context_reader;

use otel_thread_ctx::ffi::OtelThreadCtxStatus as S;
use otel_thread_ctx::process_context::ffi::{
    otel_process_ctx_publish, otel_process_ctx_unpublish, OtelProcessCtxKeyValue, OtelProcessCtxValue,
    OTEL_PROCESS_CTX_VALUE_ARRAY, OTEL_PROCESS_CTX_VALUE_BOOL, OTEL_PROCESS_CTX_VALUE_DOUBLE,
    OTEL_PROCESS_CTX_VALUE_EMPTY, OTEL_PROCESS_CTX_VALUE_INT, OTEL_PROCESS_CTX_VALUE_STRING,
};
use process_context_reader::{self as reader, Value};
use std::ffi::CString;
use std::os::raw::c_char;
use std::sync::Mutex;

/// The context is one per process and cargo runs tests on several threads.
static SERIAL: Mutex<()> = Mutex::new(());

fn value(kind: u32) -> OtelProcessCtxValue {
    OtelProcessCtxValue {
        kind,
        int_value: 0,
        double_value: 0.0,
        pointer: std::ptr::null(),
        length: 0,
    }
}

fn string(s: &'static str) -> OtelProcessCtxValue {
    OtelProcessCtxValue {
        pointer: s.as_ptr().cast(),
        length: s.len(),
        ..value(OTEL_PROCESS_CTX_VALUE_STRING)
    }
}

fn int(i: i64) -> OtelProcessCtxValue {
    OtelProcessCtxValue {
        int_value: i,
        ..value(OTEL_PROCESS_CTX_VALUE_INT)
    }
}

fn array(items: &[OtelProcessCtxValue]) -> OtelProcessCtxValue {
    OtelProcessCtxValue {
        pointer: items.as_ptr().cast(),
        length: items.len(),
        ..value(OTEL_PROCESS_CTX_VALUE_ARRAY)
    }
}

fn key(k: &str) -> *const c_char {
    // Leaked on purpose: a handful of short test strings that must outlive the calls.
    CString::new(k).unwrap().into_raw()
}

fn kv(k: &str, v: OtelProcessCtxValue) -> OtelProcessCtxKeyValue {
    OtelProcessCtxKeyValue { key: key(k), value: v }
}

fn rkv(k: &str, v: Value) -> (String, Value) {
    (k.into(), v)
}

fn published() -> otel_ctx_dump::process_context::ProcessContext {
    let (_, payload) = reader::read_context(reader::the_mapping().start);
    reader::decode_typed(&payload)
}

#[test]
fn typed_values_are_published_exactly_and_bad_ones_refused() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let strings = [string("a"), string("b")];
    let mixed = [int(1), value(OTEL_PROCESS_CTX_VALUE_EMPTY), int(-3)];
    let resource = [
        kv("service.name", string("checkout")),
        kv("service.instance.id", string("id-1")),
        kv(
            "flag",
            OtelProcessCtxValue {
                int_value: 1,
                ..value(OTEL_PROCESS_CTX_VALUE_BOOL)
            },
        ),
        kv("count", int(i64::MIN)),
        kv(
            "ratio",
            OtelProcessCtxValue {
                double_value: 0.5,
                ..value(OTEL_PROCESS_CTX_VALUE_DOUBLE)
            },
        ),
        kv("tags", array(&strings)),
        kv("ints", array(&mixed)),
        kv("nothing", string("")),
    ];
    let instrumentations = [string("aspnetcore")];
    let extra = [kv("otel.instrumentations", array(&instrumentations))];
    let keys = [key("http_route")];
    // Safety: every array and string lives until the end of the test.
    let s = unsafe {
        otel_process_ctx_publish(
            resource.as_ptr(),
            resource.len(),
            extra.as_ptr(),
            extra.len(),
            keys.as_ptr(),
            keys.len(),
        )
    };
    assert_eq!(s, S::Ok);
    let ctx = published();
    let strs = |v: &[&str]| Value::Array(v.iter().map(|s| Value::Str((*s).into())).collect());
    let expected = vec![
        rkv("service.name", Value::Str("checkout".into())),
        rkv("service.instance.id", Value::Str("id-1".into())),
        rkv("flag", Value::Bool(true)),
        rkv("count", Value::Int(i64::MIN)),
        rkv("ratio", Value::Double(0.5)),
        rkv("tags", strs(&["a", "b"])),
        rkv("ints", Value::Array(vec![Value::Int(1), Value::Empty, Value::Int(-3)])),
        rkv("nothing", Value::Str(String::new())),
        rkv("telemetry.sdk.name", Value::Str("otel-thread-ctx".into())),
        rkv("telemetry.sdk.version", Value::Str(env!("CARGO_PKG_VERSION").into())),
    ];
    assert_eq!(ctx.resource, expected, "as given, then the SDK defaults");
    let keys_of = |c: &otel_ctx_dump::process_context::ProcessContext| {
        c.attributes.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>()
    };
    assert_eq!(
        keys_of(&published()),
        [
            "threadlocal.schema_version",
            "threadlocal.attribute_key_map",
            "otel.instrumentations"
        ]
    );
    assert_eq!(published().attributes[2].1, strs(&["aspnetcore"]));
    assert_eq!(published().key_map, Some(vec![Some("http_route".to_string())]));

    // Refused replacements leave the context as it was.
    let before = reader::read_context(reader::the_mapping().start).1;
    let nested_inner = [int(1)];
    let nested = [array(&nested_inner)];
    let bad_utf8: &'static [u8] = b"\xff";
    let cases: Vec<(Vec<OtelProcessCtxKeyValue>, Vec<OtelProcessCtxKeyValue>, S)> = vec![
        (vec![kv("n", array(&nested))], vec![], S::InvalidValue),
        (vec![kv("k", value(99))], vec![], S::InvalidValue),
        (vec![], vec![kv("threadlocal.mine", int(1))], S::InvalidContextAttribute),
        (vec![], vec![kv("", int(1))], S::InvalidContextAttribute),
        (
            vec![],
            vec![kv("x", int(1)), kv("x", int(2))],
            S::InvalidContextAttribute,
        ),
        (vec![kv("d", int(1)), kv("d", int(2))], vec![], S::DuplicateResourceKey),
        (
            vec![kv(
                "u",
                OtelProcessCtxValue {
                    pointer: bad_utf8.as_ptr().cast(),
                    length: 1,
                    ..value(OTEL_PROCESS_CTX_VALUE_STRING)
                },
            )],
            vec![],
            S::InvalidUtf8,
        ),
        (
            vec![kv(
                "p",
                OtelProcessCtxValue {
                    length: 3,
                    ..value(OTEL_PROCESS_CTX_VALUE_STRING)
                },
            )],
            vec![],
            S::NullArgument,
        ),
    ];
    for (i, (r, a, want)) in cases.iter().enumerate() {
        // Safety: the arrays live in `cases`; the NULL-pointer case is refused before any read.
        let got = unsafe { otel_process_ctx_publish(r.as_ptr(), r.len(), a.as_ptr(), a.len(), keys.as_ptr(), 1) };
        assert_eq!(got, *want, "case {i}");
        assert_eq!(
            reader::read_context(reader::the_mapping().start).1,
            before,
            "case {i} changed the context"
        );
    }

    // A good publish replaces everything, keys appended; given SDK keys are kept as they are.
    let keys2 = [keys[0], key("user_id")];
    let r2 = [
        kv("service.name", string("checkout-2")),
        kv("telemetry.sdk.name", string("opentelemetry")),
        kv("telemetry.sdk.version", string("1.20.1")),
    ];
    // Safety: as above.
    let s = unsafe { otel_process_ctx_publish(r2.as_ptr(), 3, std::ptr::null(), 0, keys2.as_ptr(), 2) };
    assert_eq!(s, S::Ok);
    let ctx = published();
    let given = |k: &str, v: &str| rkv(k, Value::Str(v.into()));
    assert_eq!(
        ctx.resource,
        vec![
            given("service.name", "checkout-2"),
            given("telemetry.sdk.name", "opentelemetry"),
            given("telemetry.sdk.version", "1.20.1")
        ]
    );
    assert_eq!(keys_of(&published()).len(), 2, "the old extra attribute is gone");
    assert_eq!(otel_process_ctx_unpublish(), S::Ok);
}
