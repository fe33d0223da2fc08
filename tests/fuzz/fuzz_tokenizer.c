/* tests/fuzz/fuzz_tokenizer.c — libFuzzer over the tokenizer and detokenizer (`make
 * fuzz-tokenizer`): arbitrary bytes tokenize without a crash, and their tokens' bytes give back
 * exactly the input when it is valid UTF-8 (byte-level BPE loses nothing; invalid bytes become
 * U+FFFD as in llama.cpp, whose tokenization fimd matches); with special tokens parsed, no crash.
 */
#include "model/model.h"

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

/* Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF. */
static int valid_utf8(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        size_t k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!k || i + k > n) return 0;
        uint32_t cp = k == 1 ? c : c & (0x7F >> k);
        for (size_t j = 1; j < k; j++) {
            if ((s[i + j] & 0xC0) != 0x80) return 0;
            cp = cp << 6 | (s[i + j] & 0x3F);
        }
        static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min[k] || cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000)) return 0;
        i += k;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int32_t *ids = NULL;
    size_t n = 0;
    model_err err = {{0}};
    if (model_tokenize(vocab, (const char *)data, size, false, false, &ids, &n, &err)) abort();
    if (!valid_utf8(data, size)) {
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
