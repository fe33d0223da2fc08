/* tests/fuzz/fuzz_lsp.c — libFuzzer over the server's framing and dispatch: arbitrary bytes on
 * stdin must never crash, hang or leak (`make fuzz-lsp`). */
#include "lsp/lsp_internal.h"

#include <fcntl.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int out = -1;
    if (out < 0) out = open("/dev/null", O_WRONLY);
    lsp__fuzz_feed((const char *)data, size, out);
    return 0;
}
