/* Loads libsuite.so (tests/musl/suite.c, which brings libotel_thread_ctx.so) with dlopen, as
 * .NET loads native libraries, and runs it: musl then places the library's TLS dynamically. */
#define DLOPEN_LIBRARY "libsuite.so"
#define DLOPEN_ENTRY "suite_main"
#include "../../samples/c/sample_dlopen.c"
