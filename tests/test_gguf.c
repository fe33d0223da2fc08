/* tests/test_gguf.c — the GGUF reader on damaged input: every case must fail with a message that
 * names the problem (never a crash), plus truncation at every point of the header and the writer's
 * round trip. Files are crafted from a synthesized model, by byte edits at offsets found with an
 * independent walker, or by rewriting through the writer with a tensor dropped or reshaped. */
#define _GNU_SOURCE
#include "model/model.h"
#include "model/model_internal.h"
#include "tests/check.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static char *base; /* a valid small model, bytes */
static size_t base_len;
static const char *base_path;

/* ---- an independent walk over the header, to know where fields are ---- */

typedef struct layout {
    size_t n_kv_off, n_t_off;
    size_t kv[512], kv_type[512];    /* offset of each key's length field / type field */
    size_t ti[1024], ti_ndims[1024]; /* tensor info: name length field / n_dims field */
    int n_kv, n_t;
    size_t header_end;
} layout;

static uint64_t u64at(const char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static uint32_t u32at(const char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static size_t skip_value(const char *b, size_t o, uint32_t type)
{
    static const int sz[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    if (type == 8) return o + 8 + u64at(b + o);
    if (type != 9) return o + (size_t)sz[type];
    uint32_t et = u32at(b + o);
    uint64_t n = u64at(b + o + 4);
    o += 12;
    for (uint64_t i = 0; i < n; i++) o = et == 8 ? o + 8 + u64at(b + o) : o + (size_t)sz[et];
    return o;
}

static void walk(const char *b, layout *L)
{
    memset(L, 0, sizeof *L);
    L->n_t_off = 8, L->n_kv_off = 16;
    uint64_t nt = u64at(b + 8), nkv = u64at(b + 16);
    size_t o = 24;
    for (uint64_t i = 0; i < nkv; i++) {
        L->kv[L->n_kv] = o;
        o += 8 + u64at(b + o);
        L->kv_type[L->n_kv++] = o;
        uint32_t t = u32at(b + o);
        o = skip_value(b, o + 4, t);
    }
    for (uint64_t i = 0; i < nt; i++) {
        L->ti[L->n_t] = o;
        o += 8 + u64at(b + o);
        L->ti_ndims[L->n_t++] = o;
        o += 4 + 8 * u32at(b + o) + 4 + 8;
    }
    L->header_end = o;
}

static size_t find_key(const char *b, const layout *L, const char *key)
{
    for (int i = 0; i < L->n_kv; i++)
        if (u64at(b + L->kv[i]) == strlen(key) && !memcmp(b + L->kv[i] + 8, key, strlen(key)))
            return (size_t)i;
    return (size_t)-1;
}

static size_t find_tensor(const char *b, const layout *L, const char *name)
{
    for (int i = 0; i < L->n_t; i++)
        if (u64at(b + L->ti[i]) == strlen(name) && !memcmp(b + L->ti[i] + 8, name, strlen(name)))
            return (size_t)i;
    return (size_t)-1;
}

/* ---- helpers ---- */

static const char *write_bytes(const char *name, const char *p, size_t n)
{
    const char *path = check_tmp(name);
    FILE *f = fopen(path, "wb");
    fwrite(p, 1, n, f);
    fclose(f);
    return path;
}

/* Load must fail, with a message containing `expect` (case-insensitive). */
static void expect_fail(const char *what, const char *path, const char *expect)
{
    model_err err = {{0}};
    model *m = model_load(path, &err);
    CHECK(m == NULL && err.msg[0] && strcasestr(err.msg, expect),
          "%s: expected an error about '%s', got %s '%s'", what, expect, m ? "success" : "error",
          err.msg);
    model_free(m);
}

static void patch(const char *what, size_t off, const void *val, size_t n, const char *expect)
{
    char *b = malloc(base_len);
    memcpy(b, base, base_len);
    memcpy(b + off, val, n);
    expect_fail(what, write_bytes("corrupt.gguf", b, base_len), expect);
    free(b);
}

static void patch64(const char *what, size_t off, uint64_t v, const char *expect)
{
    patch(what, off, &v, 8, expect);
}

static void patch32(const char *what, size_t off, uint32_t v, const char *expect)
{
    patch(what, off, &v, 4, expect);
}

/* ---- rewriting through the writer ---- */

typedef struct edit {
    const char *drop_tensor, *reshape_tensor, *retype_tensor;
    int64_t new_ne1;
    int new_type;
    const char *drop_key, *u32_key, *str_key, *str_val;
    uint32_t u32_val;
} edit;

static const char *rewrite(const edit *e)
{
    model_err err = {{0}};
    model_gguf *g = model_gguf_open(base_path, &err);
    gguf_writer *w = model__gw_new();
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const gguf_kv *kv = &g->kv[i];
        if ((e->drop_key && model__gguf_str_eq(kv->key, e->drop_key)) ||
            (e->u32_key && model__gguf_str_eq(kv->key, e->u32_key)) ||
            (e->str_key && model__gguf_str_eq(kv->key, e->str_key)))
            continue;
        model__gw_raw(w, kv);
    }
    if (e->u32_key) model__gw_u32(w, e->u32_key, e->u32_val);
    if (e->str_key) model__gw_str(w, e->str_key, e->str_val);
    int64_t ne[1024][4];
    int types[1024];
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const gguf_tensor *t = &g->tensors[i];
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)t->name.n, t->name.p);
        memcpy(ne[i], t->ne, sizeof ne[i]);
        types[i] = t->type;
        if (e->drop_tensor && !strcmp(name, e->drop_tensor)) {
            types[i] = -1;
            continue;
        }
        if (e->reshape_tensor && !strcmp(name, e->reshape_tensor)) ne[i][1] = e->new_ne1;
        if (e->retype_tensor && !strcmp(name, e->retype_tensor)) types[i] = e->new_type;
        model__gw_tensor(w, name, types[i], t->n_dims, ne[i]);
    }
    const char *path = check_tmp("rewritten.gguf");
    FILE *f = fopen(path, "wb");
    model__gw_write_header(w, f, &err);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        if (types[i] < 0) continue;
        size_t n = model__row_bytes(types[i], ne[i][0]) * (size_t)(ne[i][1] * ne[i][2] * ne[i][3]);
        size_t have = g->tensors[i].nbytes;
        char *buf = calloc(1, n);
        memcpy(buf, g->tensors[i].data, n < have ? n : have);
        fwrite(buf, 1, n, f);
        model__gw_pad(w, f, n, &err);
        free(buf);
    }
    fclose(f);
    model__gw_free(w);
    model_gguf_close(g);
    return path;
}

/* ---- the cases ---- */

static void header_cases(void)
{
    layout L;
    walk(base, &L);
    expect_fail("empty file", write_bytes("empty.gguf", "", 0), "empty");
    expect_fail("missing file", check_tmp("does-not-exist.gguf"), "No such file");
    patch("bad magic", 0, "GGML", 4, "magic");
    patch32("bad version", 4, 99, "version");
    expect_fail("truncated inside the fixed header", write_bytes("short.gguf", base, 12),
                "truncated");
    patch64("absurd key count", L.n_kv_off, 1ull << 60, "key/value pairs");
    patch64("absurd tensor count", L.n_t_off, 1ull << 60, "tensors");
    patch64("absurd key length", L.kv[0], 1ull << 62, "string length");
    patch32("unknown value type", L.kv_type[0], 99, "unknown value type");
    size_t tok = find_key(base, &L, "tokenizer.ggml.tokens");
    patch64("absurd array count", L.kv_type[tok] + 8, 1ull << 61, "cannot fit");
    patch32("nested array", L.kv_type[tok] + 4, 9, "array element type");
    size_t arch = find_key(base, &L, "general.architecture");
    patch64("absurd string value length", L.kv_type[arch] + 4, 1ull << 40, "string length");
    size_t ti = find_tensor(base, &L, "blk.0.attn_q.weight");
    patch32("five dimensions", L.ti_ndims[ti], 5, "dimensions");
    patch64("zero dimension", L.ti_ndims[ti] + 4, 0, "dimension");
    patch64("dimension too large", L.ti_ndims[ti] + 4, 1ull << 62, "dimension 0 is");
    patch64("dimension product overflows", L.ti_ndims[ti] + 12, 1ull << 61, "overflow");
    size_t type_off = L.ti_ndims[ti] + 4 + 8 * 2;
    patch32("unknown tensor type", type_off, 99, "type 99");
    patch32("a ggml type fimd does not read", type_off, 34,
            "has type 34 (TQ1_0), which fimd does not support");
    patch32("Q4_K rows not a multiple of 256", type_off, MODEL_TYPE_Q4_K, "block size");
    patch64("offset past the end", type_off + 4, 1ull << 40, "past the end");
    patch64("misaligned offset", type_off + 4, u64at(base + type_off + 4) + 4, "aligned");
    /* duplicate key: rename the second key to the first's name when they have equal length */
    bool dup = false;
    for (int i = 1; i < L.n_kv && !dup; i++)
        if (u64at(base + L.kv[i]) == u64at(base + L.kv[0])) {
            patch("duplicate key", L.kv[i] + 8, base + L.kv[0] + 8, u64at(base + L.kv[0]),
                  "duplicate");
            dup = true;
        }
    CHECK(dup, "a duplicate-key case was built");
    /* the whole header, cut at every point (and a sample of points inside the data) */
    int clean = 0, cases = 0;
    size_t step = L.header_end / 1500 + 1;
    for (size_t cut = 0; cut < base_len;
         cut += cut < L.header_end ? step : (base_len - L.header_end) / 40 + 1) {
        const char *p = write_bytes("cut.gguf", base, cut);
        model_err err = {{0}};
        model *m = model_load(p, &err);
        clean += m == NULL && err.msg[0];
        cases++;
        model_free(m);
    }
    CHECK(clean == cases, "truncation anywhere fails cleanly: %d of %d", clean, cases);
}

static void model_cases(void)
{
    edit e;
    memset(&e, 0, sizeof e), e.drop_tensor = "blk.1.ffn_up_exps.weight";
    expect_fail("missing tensor", rewrite(&e), "blk.1.ffn_up_exps.weight' is missing");
    memset(&e, 0, sizeof e), e.reshape_tensor = "blk.0.attn_kv_a_mqa.weight", e.new_ne1 = 39;
    expect_fail("mis-shaped tensor", rewrite(&e), "expected {64, 40}");
    memset(&e, 0, sizeof e), e.retype_tensor = "blk.1.ffn_gate_inp.weight",
                             e.new_type = MODEL_TYPE_F16;
    expect_fail("router not F32", rewrite(&e), "must be F32");
    memset(&e, 0, sizeof e), e.u32_key = "deepseek2.expert_used_count", e.u32_val = 9;
    expect_fail("more experts used than exist", rewrite(&e), "expert_used_count");
    memset(&e, 0, sizeof e), e.u32_key = "deepseek2.rope.dimension_count", e.u32_val = 7;
    expect_fail("odd rope dimension", rewrite(&e), "rope dimension");
    memset(&e, 0, sizeof e), e.u32_key = "deepseek2.leading_dense_block_count", e.u32_val = 5;
    expect_fail("more dense layers than layers", rewrite(&e), "leading_dense_block_count");
    memset(&e, 0, sizeof e), e.drop_key = "deepseek2.attention.kv_lora_rank";
    expect_fail("required key missing", rewrite(&e), "kv_lora_rank' is missing");
    memset(&e, 0, sizeof e), e.u32_key = "deepseek2.vocab_size", e.u32_val = 1000;
    expect_fail("vocab size disagrees with the tokenizer", rewrite(&e), "vocab_size");
    memset(&e, 0, sizeof e), e.str_key = "general.architecture", e.str_val = "llama";
    expect_fail("another architecture", rewrite(&e), "not deepseek2");
    memset(&e, 0, sizeof e), e.str_key = "deepseek2.block_count", e.str_val = "three";
    expect_fail("key of the wrong type", rewrite(&e), "should be an integer");
    memset(&e, 0, sizeof e), e.u32_key = "general.alignment", e.u32_val = 24;
    expect_fail("alignment not a power of two", rewrite(&e), "power of two");
    memset(&e, 0, sizeof e), e.u32_key = "deepseek2.expert_group_count", e.u32_val = 3;
    expect_fail("expert groups that do not divide the experts", rewrite(&e), "groups");
    memset(&e, 0, sizeof e), e.str_key = "tokenizer.ggml.pre", e.str_val = "qwen2";
    expect_fail("unsupported pre-tokenizer", rewrite(&e), "pre-tokenizer");
    memset(&e, 0, sizeof e);
    model_err err = {{0}};
    model *m = model_load(rewrite(&e), &err);
    CHECK(m != NULL, "an unedited rewrite loads: %s", err.msg);
    model_free(m);
}

static void writer_round_trip(void)
{
    gguf_writer *w = model__gw_new();
    model__gw_u32(w, "a.u32", 7);
    model__gw_f32(w, "a.f32", 1.5f);
    model__gw_bool(w, "a.bool", true);
    model__gw_str(w, "a.str", "héllo");
    int64_t ne[4] = {64, 3, 1, 1};
    model__gw_tensor(w, "t.q8", MODEL_TYPE_Q8_0, 2, ne);
    const char *path = check_tmp("roundtrip.gguf");
    FILE *f = fopen(path, "wb");
    model_err err = {{0}};
    model__gw_write_header(w, f, &err);
    float x[192];
    for (int i = 0; i < 192; i++) x[i] = (float)(i % 17) - 8.0f;
    char q[6 * 34];
    model__quant(MODEL_TYPE_Q8_0, x, q, 192);
    fwrite(q, 1, sizeof q, f);
    model__gw_pad(w, f, sizeof q, &err);
    fclose(f);
    model__gw_free(w);
    model_gguf *g = model_gguf_open(path, &err);
    uint32_t u = 0;
    float fl = 0;
    bool b = false;
    gguf_str s = {0};
    if (!CHECK(g != NULL, "round trip opens: %s", err.msg)) return;
    CHECK(model__gguf_u32(g, "a.u32", &u, &err) == 0 && u == 7, "u32 round trip");
    CHECK(model__gguf_f32(g, "a.f32", &fl, &err) == 0 && fl == 1.5f, "f32 round trip");
    CHECK(model__gguf_bool(g, "a.bool", &b, &err) == 0 && b, "bool round trip");
    CHECK(model__gguf_str(g, "a.str", &s, &err) == 0 && model__gguf_str_eq(s, "héllo"),
          "string round trip");
    CHECK(model__gguf_u32(g, "a.missing", &u, &err) == 1, "absent key reports 1");
    float *out;
    int nd;
    int64_t got_ne[4];
    CHECK(model_gguf_tensor_f32(g, "t.q8", &out, got_ne, &nd, &err) == 0 && nd == 2 &&
              got_ne[1] == 3,
          "tensor round trip");
    float md = 0;
    for (int i = 0; i < 192; i++) md = md > x[i] - out[i] ? md : x[i] - out[i];
    CHECK(md < 0.05f, "Q8_0 values survive (max error %g)", md);
    free(out);
    CHECK(model_gguf_tensor_f32(g, "nope", &out, got_ne, &nd, &err) < 0 && strstr(err.msg, "nope"),
          "unknown tensor named in the error");
    model_gguf_close(g);
}

/* Whether m evaluates token `tok` in a fresh cache. */
static bool eval_one_token(model *m, int32_t tok, model_err *err)
{
    model_cache *c = model_cache_new(m, err);
    float *logits = malloc(sizeof(float) * (size_t)model_get_hparams(m)->n_vocab);
    bool ok = c && logits && model_eval(m, c, &tok, 1, logits, MODEL_LOGITS_LAST, NULL, err) == 0;
    free(logits);
    model_cache_free(c);
    return ok;
}

/* A model of dense layers only: its expert keys mean nothing and must size nothing (a fuzzed file
 * with expert_used_count 134217727 made the first evaluation ask for tens of GB and abort). Run in
 * a child whose address space is capped at 4 GB (not under ASan or TSan, which reserve far more),
 * so an allocation of that size fails there and shows. */
static void dense_only(void)
{
    model_synth_opts o;
    model_synth_preset(&o, "tiny");
    o.hp.n_layer = 1, o.hp.n_dense = 1, o.hp.n_expert = 2, o.hp.n_expert_used = 134217727;
    o.n_merges = 0;
    const char *path = check_tmp("gguf-dense.gguf");
    model_err err = {{0}};
    if (!CHECK(model_synth(&o, path, &err) == 0, "synth dense-only: %s", err.msg)) return;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__) /* both map terabytes */
        struct rlimit lim = {(rlim_t)4 << 30, (rlim_t)4 << 30};
        setrlimit(RLIMIT_AS, &lim);
#endif
        model *m = model_load(path, &err);
        if (!m) _exit(2);
        bool r = eval_one_token(m, 1, &err);
        model_free(m);
        _exit(r ? 0 : 3);
    }
    int status = -1;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "a dense-only model loads and evaluates whatever its expert keys say (status %d)",
          status);
}

/* A file truncated under its mapping: the pages past the new end read as zeros instead of raising
 * SIGBUS, and the mapping says it is damaged. */
static void truncated(void)
{
    const char *path = check_tmp("gguf-truncated.gguf");
    FILE *f = fopen(path, "wb");
    bool written = f && fwrite(base, 1, base_len, f) == base_len;
    if (f) written &= fclose(f) == 0;
    model_err err = {{0}};
    model_gguf *g = written ? model_gguf_open(path, &err) : NULL;
    if (!CHECK(g != NULL, "the copy maps: %s", err.msg)) return;
    CHECK(!model_gguf_damaged(g), "a mapping of an intact file is not damaged");
    CHECK(truncate(path, (off_t)(base_len / 4)) == 0, "truncate the file under the mapping");
    const volatile uint8_t *p = g->base;
    unsigned sum = 0;
    for (uint64_t i = 0; i < g->size; i += 256) sum += p[i]; /* SIGBUS here without the guard */
    CHECK(model_gguf_damaged(g), "the mapping is marked damaged (read sum %u)", sum);
    CHECK(p[g->size - 1] == 0 && p[base_len / 4 + 4096] == 0, "past the new end it reads zeros");
    float *out = NULL;
    int64_t ne[4];
    int nd;
    CHECK(model_gguf_tensor_f32(g, "output.weight", &out, ne, &nd, &err) == 0,
          "a tensor past the new end still reads: %s", err.msg);
    free(out);
    model_gguf_close(g);
    g = model_gguf_open(path, &err);
    CHECK(!g && err.msg[0], "opening the truncated file fails with a message: %s", err.msg);
    model_gguf_close(g);
}

/* Every saved fuzzing input (seeds and past crashes) loads and evaluates a token, or is refused
 * with a message. One fuzzed file had an expert down-projection of type Q8_1, an activation format
 * with no weight product: its first evaluation called a null function. */
static void fuzz_seeds(void)
{
    DIR *dir = opendir("tests/fuzz/seeds/gguf");
    if (!CHECK(dir != NULL, "tests/fuzz/seeds/gguf opens")) return;
    int files = 0;
    for (struct dirent *e; (e = readdir(dir));) {
        if (e->d_name[0] == '.') continue;
        char path[512];
        snprintf(path, sizeof path, "tests/fuzz/seeds/gguf/%s", e->d_name);
        model_err err = {{0}};
        model *m = model_load(path, &err);
        files++;
        if (!strncmp(e->d_name, "regression-q8_1", 15)) {
            CHECK(!m && strstr(err.msg, "Q8_1") && strstr(err.msg, "not weights"),
                  "%s is refused, naming the type: %s", e->d_name, err.msg);
        } else if (!m) {
            CHECK(err.msg[0], "%s is refused with a message", e->d_name);
        }
        if (!m) continue;
        model_set_threads(m, 1);
        CHECK(eval_one_token(m, 0, &err), "%s evaluates a token: %s", e->d_name, err.msg);
        model_free(m);
    }
    closedir(dir);
    CHECK(files >= 3, "the gguf seeds are there (%d)", files);
}

int main(int argc, char **argv)
{
    static const char *const cases[] = {"header",     "model",     "writer",
                                        "dense_only", "truncated", "fuzz_seeds"};
    if (!check_args(argc, argv, cases, CHECK_CASES(cases))) return 2;
    model_synth_opts o;
    model_synth_preset(&o, "tiny");
    o.hp.n_layer = 2;
    o.n_merges = 0;
    base_path = strdup(check_tmp("gguf-base.gguf"));
    model_err err = {{0}};
    if (!CHECK(model_synth(&o, base_path, &err) == 0, "synth base: %s", err.msg))
        return check_done();
    base = check_read(base_path, &base_len);
    model *m = model_load(base_path, &err);
    CHECK(m != NULL, "the base model loads: %s", err.msg);
    model_free(m);
    if (check_want("header")) header_cases();
    if (check_want("model")) model_cases();
    if (check_want("writer")) writer_round_trip();
    if (check_want("dense_only")) dense_only();
    if (check_want("truncated")) truncated();
    if (check_want("fuzz_seeds")) fuzz_seeds();
    free(base);
    free((char *)base_path);
    return check_done();
}
