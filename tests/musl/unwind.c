/* The unwinder the musl library links (gcc's libgcc_eh.a) walks the stack with the
 * _dl_find_object of native/musl/dl_find_object.c: a backtrace from three calls deep must see
 * those three frames and main. That walk is what a Rust panic in the library takes to reach the
 * catch_unwind at the C API boundary. Built by scripts/test-musl.sh with musl-gcc. */
#include <stdio.h>
#include <unwind.h>

static _Unwind_Reason_Code count(struct _Unwind_Context *ctx, void *frames) {
    (void)ctx;
    ++*(int *)frames;
    return _URC_NO_REASON;
}

__attribute__((noinline)) static int depth3(void) {
    int frames = 0;
    _Unwind_Backtrace(count, &frames);
    return frames;
}
__attribute__((noinline)) static int depth2(void) { return depth3() + 0 * __LINE__; }
__attribute__((noinline)) static int depth1(void) { return depth2() + 0 * __LINE__; }

int main(void) {
    int frames = depth1();
    printf("_Unwind_Backtrace saw %d frames\n", frames);
    return frames >= 4 ? 0 : 1;
}
