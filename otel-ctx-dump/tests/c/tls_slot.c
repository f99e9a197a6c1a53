/* Test-only module defining its own otel_thread_ctx_v1, compiled by the tests with a chosen TLS
 * access model (-mtls-dialect=gnu2 for TLSDESC, -mtls-dialect=gnu for general-dynamic,
 * -ftls-model=initial-exec), as a shared object or into the test executable (local-exec). It
 * only ever runs in a test process, never in the product. */
__attribute__((visibility("default"))) __thread void *otel_thread_ctx_v1;

__attribute__((visibility("default"))) void test_slot_set(void *record) { otel_thread_ctx_v1 = record; }
