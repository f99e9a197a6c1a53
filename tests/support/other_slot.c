/*
 * Test support for tests/other_writers.rs (not part of the shipped library).
 *
 * Another tracer's native library as the self-check must notice it: it defines and exports its
 * own otel_thread_ctx_v1, reached through TLSDESC (built with -mtls-dialect=gnu2, or =desc on
 * AArch64), next to libotel_thread_ctx.so in the same process. Built with -DWITHOUT_SLOT it is
 * the control: the same library without the slot.
 */
#include <stddef.h>

#ifndef WITHOUT_SLOT
__thread void *otel_thread_ctx_v1 = NULL;
#endif

static __thread void *own_record;

/* Publishes `record` as this thread's context, as a writer of its own would. */
void other_slot_publish(void *record) {
#ifndef WITHOUT_SLOT
  otel_thread_ctx_v1 = record;
#endif
  own_record = record;
}
