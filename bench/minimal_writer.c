/* The floor for the native benchmark: the smallest correct in-place writer, a C library with its
 * own TLSDESC slot doing valid=0 / ids and flags / valid=1 with compiler fences. Benchmark only. */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct record {
  uint8_t trace_id[16];
  uint8_t span_id[8];
  uint8_t valid;
  uint8_t trace_flags;
  uint16_t attrs_data_size;
  uint8_t attrs_data[612];
};

__attribute__((visibility("default"))) __thread struct record *bench_minimal_slot;

__attribute__((visibility("default"))) int bench_minimal_update(const uint8_t (*trace_id)[16],
                                                                const uint8_t (*span_id)[8], uint8_t flags) {
  struct record *r = bench_minimal_slot;
  if (r == NULL) {
    r = calloc(1, sizeof *r);
    if (r == NULL) return -7;
    bench_minimal_slot = r;
  }
  r->valid = 0;
  atomic_signal_fence(memory_order_seq_cst);
  memcpy(r->trace_id, trace_id, 16);
  memcpy(r->span_id, span_id, 8);
  r->trace_flags = flags;
  atomic_signal_fence(memory_order_seq_cst);
  r->valid = 1;
  return 0;
}
