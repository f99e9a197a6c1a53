/* Test-only slot module for otel-ctx-dump's checker tests: defines otel_thread_ctx_v1 the way
 * one broken rule asks (chosen by a macro), or the right way without one. Built as a shared
 * object, or into the writer (local-exec). It only ever runs in a test process.
 *   SLOT_WIDE        the symbol is 16 bytes, not 8
 *   SLOT_WEAK        binding WEAK, not GLOBAL
 *   SLOT_NOT_TLS     a plain global, not STT_TLS
 *   SLOT_LOCAL_DYNAMIC  accessed with the local-dynamic model (gcc's tls_model attribute)
 * The TLS dialect (TLSDESC, general-dynamic, initial-exec) is the compiler flags' choice. */
#ifdef SLOT_NOT_TLS
#define SLOT_TLS
#else
#define SLOT_TLS __thread
#endif

#if defined(SLOT_WEAK)
#define SLOT_ATTRS __attribute__((visibility("default"), weak))
#elif defined(SLOT_LOCAL_DYNAMIC)
#define SLOT_ATTRS __attribute__((visibility("default"), tls_model("local-dynamic")))
#else
#define SLOT_ATTRS __attribute__((visibility("default")))
#endif

#ifdef SLOT_LOCAL_DYNAMIC
/* Another variable in the block, so the slot is not at offset 0 of it. */
__attribute__((visibility("default"))) __thread long check_slot_pad;
#endif

#ifdef SLOT_WIDE
SLOT_ATTRS SLOT_TLS void *otel_thread_ctx_v1[2];
__attribute__((visibility("default"))) void check_slot_set(void *record) { otel_thread_ctx_v1[0] = record; }
#else
SLOT_ATTRS SLOT_TLS void *otel_thread_ctx_v1;
__attribute__((visibility("default"))) void check_slot_set(void *record) { otel_thread_ctx_v1 = record; }
#endif
