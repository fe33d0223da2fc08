/* tests/test_tokenizer.c — the BPE tokenizer against llama.cpp's ids (60 real files with the real
 * DeepSeek vocab, the tiny vocab's strings, special-token parsing with the Coder-V2 FIM vocab), and
 * self-contained checks on a synthesized vocab: round trips, FIM lookup, streaming UTF-8. */
#define _GNU_SOURCE
#include "model/model.h"
#include "model/model_internal.h"
#include "tests/check.h"
#include "tests/tjson.h"

#include <stdlib.h>
#include <string.h>

static model_vocab *vocab_of(const char *path)
{
    model_err err = {{0}};
    model_gguf *g = model_gguf_open(path, &err);
    model_vocab *v = g ? model_vocab_load(g, &err) : NULL;
    model_gguf_close(g);
    CHECK(v != NULL, "load vocab %s: %s", path, err.msg);
    return v;
}

static bool ids_equal(const int32_t *a, size_t na, const int32_t *b, size_t nb, size_t *first_diff)
{
    size_t i = 0;
    while (i < na && i < nb && a[i] == b[i]) i++;
    *first_diff = i;
    return na == nb && i == na;
}

static void check_text(const model_vocab *v, const char *what, const char *text, size_t len,
                       bool special, const int32_t *want, size_t n_want)
{
    int32_t *ids;
    size_t n, at = 0;
    model_err err = {{0}};
    if (!CHECK(model_tokenize(v, text, len, false, special, &ids, &n, &err) == 0, "%s: %s", what,
               err.msg))
        return;
    CHECK(ids_equal(ids, n, want, n_want, &at),
          "%s (special=%d): %zu ids vs %zu expected, first "
          "difference at %zu (%d vs %d)",
          what, special, n, n_want, at, at < n ? ids[at] : -1, at < n_want ? want[at] : -1);
    free(ids);
}

static void public_files(const char *fx)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/vocab/deepseek-llm-vocab.gguf", fx);
    model_vocab *v = vocab_of(path);
    snprintf(path, sizeof path, "%s/tokenizer/public/manifest.tsv", fx);
    char *manifest = check_read(path, NULL);
    snprintf(path, sizeof path, "%s/tokenizer/public/token_ids.txt", fx);
    char *ids_txt = check_read(path, NULL);
    if (!CHECK(v && manifest && ids_txt, "public tokenizer fixtures readable")) goto out;
    char *save1, *save2;
    char *line = strtok_r(manifest, "\n", &save1); /* header */
    char *want_line = strtok_r(ids_txt, "\n", &save2);
    int files = 0;
    for (line = strtok_r(NULL, "\n", &save1); line && want_line;
         line = strtok_r(NULL, "\n", &save1), want_line = strtok_r(NULL, "\n", &save2)) {
        char *tab = strchr(line, '\t');
        if (tab) *tab = 0;
        snprintf(path, sizeof path, "%s/tokenizer/public/files/%s", fx, line);
        size_t len;
        char *text = check_read(path, &len);
        if (!CHECK(text != NULL, "read %s", path)) continue;
        int32_t *want = malloc(sizeof(int32_t) * (strlen(want_line) / 2 + 2));
        size_t nw = 0;
        for (char *p = want_line, *e; *p; p = e) {
            long x = strtol(p, &e, 10);
            if (e == p) break;
            want[nw++] = (int32_t)x;
        }
        check_text(v, line, text, len, false, want, nw);
        files++;
        free(want);
        free(text);
    }
    CHECK(files == 60, "60 public files compared, got %d", files);
out:
    free(manifest);
    free(ids_txt);
    model_vocab_free(v);
}

static void json_cases(const char *vocab_path, const char *json_path, const char *list_key,
                       const char *plain_key, const char *special_key)
{
    model_vocab *v = vocab_of(vocab_path);
    tjson j;
    if (!CHECK(v && tjson_load(&j, json_path) == 0, "load %s", json_path)) {
        model_vocab_free(v);
        return;
    }
    int list = list_key ? tjson_get(&j, 0, list_key) : 0;
    int cases = 0;
    for (int k = 0; list >= 0 && tjson_elem(&j, list, k) >= 0; k++) {
        int e = tjson_elem(&j, list, k);
        size_t len, n1, n2;
        char *text = tjson_str(&j, tjson_get(&j, e, "text"), &len);
        int32_t *plain, *special;
        tjson_ints(&j, tjson_get(&j, e, plain_key), &plain, &n1);
        tjson_ints(&j, tjson_get(&j, e, special_key), &special, &n2);
        check_text(v, text, text, len, false, plain, n1);
        check_text(v, text, text, len, true, special, n2);
        free(text);
        free(plain);
        free(special);
        cases++;
    }
    CHECK(cases >= 5, "%s: %d cases", json_path, cases);
    tjson_free(&j);
    model_vocab_free(v);
}

static void fim_ids(const char *fx)
{
    char path[4096];
    model_fim_ids f;
    model_err err = {{0}};
    snprintf(path, sizeof path, "%s/vocab/deepseek-coder-v2-vocab.gguf", fx);
    model_vocab *v = vocab_of(path);
    CHECK(v && model_vocab_fim(v, &f, &err) == 0 && f.begin == 100003 && f.hole == 100002 &&
              f.end == 100004,
          "Coder-V2 FIM ids 100003/100002/100004: %s", err.msg);
    model_vocab_free(v);
    snprintf(path, sizeof path, "%s/vocab/deepseek-llm-vocab.gguf", fx);
    v = vocab_of(path);
    err.msg[0] = 0;
    CHECK(v && model_vocab_fim(v, &f, &err) < 0 && strstr(err.msg, "fim"),
          "a vocab without FIM tokens is refused clearly: '%s'", err.msg);
    if (v) {
        int32_t *ids;
        size_t n;
        model_tokenize(v, "x", 1, true, false, &ids, &n, &err);
        CHECK(n == 2 && ids[0] == 100000, "BOS 100000 prepended (add_bos_token)");
        free(ids);
    }
    model_vocab_free(v);
}

/* ---- self-contained: a vocab synthesized from this repository's own sources ---- */

static model_vocab *synth_vocab(void)
{
    model_synth_opts o;
    model_synth_preset(&o, "tiny");
    static const char *files[] = {"tests/data/tokenizer.c", "tests/data/ds2.c"};
    o.merge_files = files;
    o.n_merge_files = 2;
    o.n_merges = 300;
    o.hp.n_layer = 1;
    model_err err = {{0}};
    const char *path = check_tmp("tok-synth.gguf");
    CHECK(model_synth(&o, path, &err) == 0, "synth vocab: %s", err.msg);
    return vocab_of(path);
}

static void round_trip(const model_vocab *v, const char *text)
{
    int32_t *ids;
    size_t n;
    model_err err = {{0}};
    model_tokenize(v, text, strlen(text), false, false, &ids, &n, &err);
    char out[4096];
    size_t o = 0;
    for (size_t i = 0; i < n; i++)
        o += (size_t)model_token_bytes(v, ids[i], out + o, sizeof out - o);
    CHECK(o == strlen(text) && !memcmp(out, text, o), "round trip of '%s' (%zu ids)", text, n);
    free(ids);
}

static void self_contained(void)
{
    model_vocab *v = synth_vocab();
    if (!v) return;
    round_trip(v, "static int main(void) {\n\treturn 0;\n}\n");
    round_trip(v, "def f(x):\n    return x ** 2  # höhe ü ß 中文 ½ 😀\r\n");
    round_trip(v, "   \t\n\n  trailing   ");
    round_trip(v, "<｜fim▁begin｜> typed by a user is plain text");
    model_fim_ids f;
    model_err err = {{0}};
    CHECK(model_vocab_fim(v, &f, &err) == 0 && f.hole == model_vocab_eos(v) + 1,
          "synth vocab has FIM tokens after EOS: %s", err.msg);
    int32_t *ids;
    size_t n;
    const char *fim = "a<｜fim▁hole｜>b";
    model_tokenize(v, fim, strlen(fim), false, true, &ids, &n, &err);
    CHECK(n == 3 && ids[1] == f.hole, "--special turns FIM text into its token (%zu ids)", n);
    free(ids);
    model_tokenize(v, fim, strlen(fim), false, false, &ids, &n, &err);
    bool has = false;
    for (size_t i = 0; i < n; i++) has |= ids[i] == f.hole;
    CHECK(!has && n > 3, "without --special FIM text stays text (%zu ids)", n);
    free(ids);
    /* invalid UTF-8 becomes U+FFFD as in llama.cpp, never a crash */
    const char bad[] = {'a', (char)0xff, (char)0xc3, 'b', (char)0xe2, (char)0x82};
    CHECK(model_tokenize(v, bad, sizeof bad, false, false, &ids, &n, &err) == 0 && n >= 4,
          "invalid UTF-8 tokenizes (%zu ids)", n);
    free(ids);
    CHECK(model_tokenize(v, "", 0, true, false, &ids, &n, &err) == 0 && n == 1 &&
              ids[0] == model_vocab_bos(v),
          "empty text with BOS gives [BOS]");
    free(ids);
    CHECK(model_token_bytes(v, -1, NULL, 0) == -1 && model_token_bytes(v, 1 << 20, NULL, 0) == -1,
          "out-of-range ids are refused");
    model_vocab_free(v);
}

int main(int argc, char **argv)
{
    static const char *const cases[] = {"self_contained", "conformance"};
    if (!check_args(argc, argv, cases, CHECK_CASES(cases))) return 2;
    if (check_want("self_contained")) self_contained();
    const char *fx = check_want("conformance")
                         ? check_fixtures("tokenizer conformance against llama.cpp")
                         : NULL;
    if (fx) {
        char a[4096], b[4096];
        public_files(fx);
        snprintf(a, sizeof a, "%s/models/tiny-lite-f32/model.gguf", fx);
        snprintf(b, sizeof b, "%s/models/tiny-vocab-tokenize.json", fx);
        json_cases(a, b, NULL, "no_special", "parse_special_default");
        snprintf(a, sizeof a, "%s/vocab/deepseek-coder-v2-vocab.gguf", fx);
        snprintf(b, sizeof b, "%s/vocab/special-tokenize.json", fx);
        json_cases(a, b, "cases", "no_parse_special", "parse_special");
        fim_ids(fx);
    }
    return check_done();
}
