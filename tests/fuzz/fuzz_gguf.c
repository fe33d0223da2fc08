/* tests/fuzz/fuzz_gguf.c — libFuzzer over the GGUF reader and the model loader: arbitrary files
 * must be refused with a message, never crash (`make fuzz-gguf`). The file is mapped, not read
 * into 2 MB pages and locked: those system calls cost more than the parsing they surround. */
#include "model/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64];
    if (!path[0]) snprintf(path, sizeof path, "/dev/shm/fimd-fuzz-gguf-%d", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f && strncmp(path, "/tmp/", 5)) { /* no /dev/shm here: memory-backed, it is faster */
        snprintf(path, sizeof path, "/tmp/fimd-fuzz-gguf-%d", (int)getpid());
        f = fopen(path, "wb");
    }
    if (!f) return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    model_err err;
    static const model_opts opts = {.no_mlock = true, .no_hugepages = true};
    model *m = model_load_opts(path, &opts, &err);
    if (m) {
        model_set_threads(m, 1); /* no pool threads to start and join per input */
        model_cache *c = model_cache_new(m, &err);
        int32_t tok = 0;
        float *logits = malloc(sizeof(float) * (size_t)model_get_hparams(m)->n_vocab);
        if (c && logits) model_eval(m, c, &tok, 1, logits, MODEL_LOGITS_LAST, NULL, &err);
        free(logits);
        model_cache_free(c);
        model_free(m);
    }
    return 0;
}
