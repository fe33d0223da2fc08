/* tests/fuzz/fuzz_tokenizer.c — libFuzzer over the tokenizer and detokenizer (`make
 * fuzz-tokenizer`): arbitrary bytes tokenize without a crash, and their tokens' bytes give back
 * exactly the input when it is valid UTF-8 (byte-level BPE loses nothing; invalid bytes become
 * U+FFFD as in llama.cpp, whose tokenization fimd matches); with special tokens parsed, no crash.
 */
#include "model/model.h"
#include "base/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static model_vocab *vocab;

/* A small synthesized vocabulary (merges learned from a fixed test input), made once. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    char path[64];
    snprintf(path, sizeof path, "/tmp/fimd-fuzz-vocab-%d.gguf", (int)getpid());
    model_synth_opts o;
    model_synth_preset(&o, "tiny");
    static const char *const files[] = {"tests/data/tokenizer.c"};
    o.merge_files = files;
    o.n_merge_files = 1;
    o.n_merges = 400;
    o.seed = 1;
    model_err err = {{0}};
    model_gguf *g = model_synth(&o, path, &err) == 0 ? model_gguf_open(path, &err) : NULL;
    vocab = g ? model_vocab_load(g, &err) : NULL;
    model_gguf_close(g);
    unlink(path);
    if (!vocab) {
        fprintf(stderr, "fuzz_tokenizer: no vocabulary: %s\n", err.msg);
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int32_t *ids = NULL;
    size_t n = 0;
    model_err err = {{0}};
    if (model_tokenize(vocab, (const char *)data, size, false, false, &ids, &n, &err)) abort();
    if (base_utf8_valid_prefix((const char *)data, size) != size) {
        free(ids);
        return 0;
    }
    char *back = malloc(size + 1);
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        char b[256];
        int k = model_token_bytes(vocab, ids[i], b, sizeof b);
        if (k < 0 || k > (int)sizeof b || at + (size_t)k > size)
            abort(); /* more bytes than came in */
        memcpy(back + at, b, (size_t)k);
        at += (size_t)k;
    }
    if (at != size || memcmp(back, data, size)) abort(); /* the round trip lost or changed bytes */
    free(back);
    free(ids);
    ids = NULL;
    if (model_tokenize(vocab, (const char *)data, size, true, true, &ids, &n, &err)) abort();
    free(ids);
    return 0;
}
