//! The `threadlocal.schema_version` a process writes can be chosen, for readers that know
//! OTEP 4947's pending rename: by the environment for the whole process, or by a call that
//! overrides it. Alone in its binary: it sets an environment variable.
// Reads the context through otel-ctx-dump's library (x86-64 only, see process_context.rs).
#![cfg(target_arch = "x86_64")]

mod process_context_reader;

use otel_thread_ctx::ffi::OtelThreadCtxStatus as S;
use otel_thread_ctx::process_context::ffi::{
    otel_process_ctx_publish, otel_process_ctx_set_schema_version, otel_process_ctx_unpublish,
};
use otel_thread_ctx::test_hooks::otel_process_ctx_forget_key_map;
use process_context_reader as reader;
use std::ffi::CStr;

fn publish() -> S {
    // Safety: empty arrays.
    unsafe { otel_process_ctx_publish(std::ptr::null(), 0, std::ptr::null(), 0, std::ptr::null(), 0) }
}

fn schema() -> Option<String> {
    reader::decode(&reader::read_context(reader::the_mapping().start).1).schema_version
}

fn set(version: &CStr) -> S {
    // Safety: NUL-terminated.
    unsafe { otel_process_ctx_set_schema_version(version.as_ptr()) }
}

#[test]
fn the_schema_version_comes_from_the_environment_or_the_call_and_is_checked() {
    // A bad name in the environment is ignored (the control: the default is written).
    std::env::set_var("OTEL_THREAD_CTX_SCHEMA_VERSION", "tls_v1\x1b[2J");
    assert_eq!(publish(), S::Ok);
    assert_eq!(schema().as_deref(), Some("tlsdesc_v1_dev"));
    otel_process_ctx_forget_key_map();

    std::env::set_var("OTEL_THREAD_CTX_SCHEMA_VERSION", "tls_v1");
    assert_eq!(publish(), S::Ok);
    assert_eq!(schema().as_deref(), Some("tls_v1"));

    // The call overrides it and publishes again.
    let m = reader::the_mapping();
    let before = reader::read_header(m.start).published_at_ns;
    assert_eq!(set(c"tlsdesc_v1"), S::Ok);
    assert!(reader::read_header(m.start).published_at_ns > before);
    assert_eq!(schema().as_deref(), Some("tlsdesc_v1"));

    let long = std::ffi::CString::new("v".repeat(65)).unwrap();
    for bad in [c"", c"tls v1", c"tls_v1\x1b[31m", long.as_c_str()] {
        assert_eq!(set(bad), S::InvalidSchemaVersion, "{bad:?}");
    }
    // Safety: NULL is refused.
    assert_eq!(
        unsafe { otel_process_ctx_set_schema_version(std::ptr::null()) },
        S::NullArgument
    );
    assert_eq!(
        schema().as_deref(),
        Some("tlsdesc_v1"),
        "a refused name changes nothing"
    );
    assert_eq!(otel_process_ctx_unpublish(), S::Ok);
}
