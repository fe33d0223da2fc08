/* tests/test_ds2.c — the deepseek2 engine against llama.cpp (every fixture model and prompt:
 * logits, greedy continuations up to their fragile steps, chunked-vs-one-shot, dequantization),
 * and self-contained checks on synthesized models: the latent cache is exact under chunking and
 * truncation, cancellation keeps state, every weight type and both attention forms run. */
#define _GNU_SOURCE
#include "model/model_internal.h"
#include "tests/check.h"
#include "tests/tjson.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct prompt {
    int32_t *ids;
    size_t n;
} prompt;

static int read_prompts(const char *dir, prompt p[4])
{
    char path[8192];
    snprintf(path, sizeof path, "%s/prompts.txt", dir);
    char *txt = check_read(path, NULL), *save;
    if (!txt) return -1;
    int k = 0;
    for (char *line = strtok_r(txt, "\n", &save); line && k < 4;
         line = strtok_r(NULL, "\n", &save), k++) {
        p[k].ids = malloc(sizeof(int32_t) * (strlen(line) + 1));
        p[k].n = 0;
        for (char *s = line, *e; *s; s = e) {
            long x = strtol(s, &e, 10);
            if (e == s) break;
            p[k].ids[p[k].n++] = (int32_t)x;
        }
    }
    free(txt);
    return k;
}

static float *eval_all(model *m, const prompt *p, int chunk)
{
    int nv = model_get_hparams(m)->n_vocab;
    float *out = malloc(sizeof(float) * (size_t)nv * p->n);
    model_err err = {{0}};
    model_cache *c = model_cache_new(m, &err);
    for (size_t at = 0; at < p->n; at += (size_t)chunk) {
        int k = (int)(p->n - at < (size_t)chunk ? p->n - at : (size_t)chunk);
        if (!CHECK(model_eval(m, c, p->ids + at, k, out + at * nv, MODEL_LOGITS_ALL, NULL, &err) ==
                       0,
                   "eval: %s", err.msg)) {
            free(out);
            out = NULL;
            break;
        }
    }
    model_cache_free(c);
    return out;
}

static int argmax(const float *x, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

/* First greedy step whose top1-top2 margin is below 0.05 (the fixtures' definition of fragile). */
static int fragile_step(tjson *s, int prompt_index)
{
    int pr = tjson_get(s, 0, "prompts");
    int e = pr >= 0 ? tjson_elem(s, pr, prompt_index) : -1;
    int mg = e >= 0 ? tjson_get(s, e, "greedy_top1_top2_margins") : -1;
    for (int k = 0; mg >= 0 && tjson_elem(s, mg, k) >= 0; k++)
        if (strtod(s->text + s->tok[tjson_elem(s, mg, k)].start, NULL) < 0.05) return k;
    return 16;
}

static void greedy(model *m, const char *dir, int i, const prompt *p, tjson *summary)
{
    char path[8192];
    snprintf(path, sizeof path, "%s/greedy_%d.txt", dir, i);
    char *txt = check_read(path, NULL);
    if (!CHECK(txt != NULL, "read %s", path)) return;
    int nv = model_get_hparams(m)->n_vocab, upto = fragile_step(summary, i), ok = 0;
    float *logits = malloc(sizeof(float) * (size_t)nv);
    model_err err = {{0}};
    model_cache *c = model_cache_new(m, &err);
    model_eval(m, c, p->ids, (int)p->n, logits, MODEL_LOGITS_LAST, NULL, &err);
    char *s = txt, *e;
    for (int step = 0; step < upto; step++, s = e) {
        long want = strtol(s, &e, 10);
        int32_t got = argmax(logits, nv);
        if (got != want) break;
        ok++;
        model_eval(m, c, &got, 1, logits, MODEL_LOGITS_LAST, NULL, &err);
    }
    CHECK(ok == upto, "%s greedy_%d: %d of %d steps agree before the first fragile step", dir, i,
          ok, upto);
    model_cache_free(c);
    free(logits);
    free(txt);
}

static void dequant(model *m, const char *dir)
{
    char path[8192];
    snprintf(path, sizeof path, "%s/dequant/index.json", dir);
    tjson j;
    if (tjson_load(&j, path)) return; /* only the quantized folders have one */
    for (int k = 0; tjson_elem(&j, 0, k) >= 0; k++) {
        int e = tjson_elem(&j, 0, k);
        size_t len, n_ref;
        char *name = tjson_str(&j, tjson_get(&j, e, "tensor"), &len);
        snprintf(path, sizeof path, "%s/dequant/%s.f32", dir, name);
        float *ref = (float *)check_read(path, &n_ref), *got = NULL;
        int64_t ne[4];
        int nd;
        model_err err = {{0}};
        int r = model_gguf_tensor_f32(model_get_gguf(m), name, &got, ne, &nd, &err);
        size_t n = r ? 0 : (size_t)(ne[0] * ne[1] * ne[2] * ne[3]);
        if (CHECK(ref && r == 0 && n * 4 == n_ref, "%s %s: sizes %zu vs %zu (%s)", dir, name, n * 4,
                  n_ref, err.msg)) {
            float amax = 0, dmax = 0;
            for (size_t i = 0; i < n; i++) amax = fmaxf(amax, fabsf(ref[i]));
            for (size_t i = 0; i < n; i++) dmax = fmaxf(dmax, fabsf(ref[i] - got[i]));
            CHECK(dmax <= 1e-6f * amax, "%s dequant %s: max diff %g (largest magnitude %g)", dir,
                  name, dmax, amax);
        }
        free(ref);
        free(got);
        free(name);
    }
    tjson_free(&j);
}

static void compare_logits(const char *dir, int i, const float *got, const prompt *p, int nv,
                           bool exact)
{
    char path[8192];
    size_t bytes;
    snprintf(path, sizeof path, "%s/logits_%d.f32", dir, i);
    float *ref = (float *)check_read(path, &bytes);
    if (!CHECK(ref && bytes == p->n * nv * 4, "%s: %zu bytes", path, bytes)) {
        free(ref);
        return;
    }
    double sum = 0, mx = 0;
    int agree = 0;
    for (size_t t = 0; t < p->n; t++) {
        const float *a = got + t * nv, *b = ref + t * nv;
        agree += argmax(a, nv) == argmax(b, nv);
        for (int v = 0; v < nv; v++) {
            double d = fabs((double)a[v] - b[v]);
            sum += d;
            mx = d > mx ? d : mx;
        }
    }
    double mean = sum / ((double)p->n * nv);
    if (exact) {
        CHECK(mx <= 1e-3, "%s p%d: max |diff| %.3g > 1e-3", dir, i, mx);
    } else {
        int need = p->n < 10 ? (int)p->n - 1 : (int)ceil(0.9 * (double)p->n);
        if (need < 1) need = (int)p->n;
        CHECK(agree >= need, "%s p%d: argmax agrees at %d of %zu positions", dir, i, agree, p->n);
        CHECK(mean <= 0.5, "%s p%d: mean |diff| %.3f > 0.5", dir, i, mean);
    }
    printf("  %-22s p%d: n=%-3zu max %.2e mean %.4f argmax %d/%zu\n", strrchr(dir, '/') + 1, i,
           p->n, mx, mean, agree, p->n);
    free(ref);
}

static void conformance_model(const char *dir)
{
    char path[8192];
    snprintf(path, sizeof path, "%s/model.gguf", dir);
    model_err err = {{0}};
    model *m = model_load(path, &err);
    if (!CHECK(m != NULL, "load %s: %s", path, err.msg)) return;
    bool f32 = strstr(dir, "f32") != NULL;
    int nv = model_get_hparams(m)->n_vocab;
    prompt p[4];
    int np = read_prompts(dir, p);
    CHECK(np == 4, "%s: 4 prompts", dir);
    snprintf(path, sizeof path, "%s/summary.json", dir);
    tjson summary;
    bool have_summary = tjson_load(&summary, path) == 0;
    for (int i = 0; i < np; i++) {
        float *got = eval_all(m, &p[i], (int)p[i].n);
        if (got) compare_logits(dir, i, got, &p[i], nv, f32);
        if (got && f32) {
            float *chunked = eval_all(m, &p[i], 7), dmax = 0;
            for (size_t k = 0; chunked && k < p[i].n * nv; k++)
                dmax = fmaxf(dmax, fabsf(chunked[k] - got[k]));
            CHECK(chunked && dmax <= 1e-4f, "%s p%d: --chunk 7 differs from one-shot by %g", dir, i,
                  dmax);
            free(chunked);
            if (have_summary) greedy(m, dir, i, &p[i], &summary);
        }
        free(got);
        free(p[i].ids);
    }
    if (have_summary) tjson_free(&summary);
    dequant(m, dir);
    model_free(m);
}

static void conformance(const char *fx)
{
    char *names[64];
    int n = check_model_dirs(fx, names, 64);
    if (n < 0) return;
    CHECK(n >= 16, "16 model folders found, got %d", n);
    for (int i = 0; i < n; i++) {
        char path[8192];
        snprintf(path, sizeof path, "%s/models/%s", fx, names[i]);
        conformance_model(path);
        free(names[i]);
    }
}

/* ---- self-contained ---- */

static model *synth(const char *name, const char *type, void (*shape)(model_synth_opts *))
{
    model_synth_opts o;
    model_synth_preset(&o, "tiny");
    o.type = model_type_from_name(type);
    o.seed = 7;
    if (shape) shape(&o);
    const char *path = check_tmp(name);
    model_err err = {{0}};
    if (!CHECK(model_synth(&o, path, &err) == 0, "synth %s: %s", name, err.msg)) return NULL;
    model *m = model_load(path, &err);
    CHECK(m != NULL, "load %s: %s", name, err.msg);
    return m;
}

static prompt make_prompt(int n, int nv, unsigned seed)
{
    prompt p = {malloc(sizeof(int32_t) * (size_t)n), (size_t)n};
    for (int i = 0; i < n; i++)
        p.ids[i] = (int32_t)((seed = seed * 1103515245u + 12345u) >> 8) % nv;
    return p;
}

static float max_diff(const float *a, const float *b, size_t n)
{
    float d = 0;
    for (size_t i = 0; i < n; i++) d = fmaxf(d, fabsf(a[i] - b[i]));
    return d;
}

static bool all_finite(const float *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(a[i])) return false;
    return true;
}

static void cache_exact(model *m, const char *what)
{
    int nv = model_get_hparams(m)->n_vocab;
    prompt p = make_prompt(40, nv, 3);
    float *one = eval_all(m, &p, 40), *chunked = eval_all(m, &p, 7), *single = eval_all(m, &p, 1);
    if (one && chunked && single) {
        CHECK(all_finite(one, 40 * (size_t)nv), "%s: logits finite", what);
        CHECK(max_diff(one, chunked, 40 * (size_t)nv) <= 1e-4f, "%s: chunk 7 = one-shot (%g)", what,
              max_diff(one, chunked, 40 * (size_t)nv));
        CHECK(max_diff(one, single, 40 * (size_t)nv) <= 1e-4f, "%s: token by token = one-shot (%g)",
              what, max_diff(one, single, 40 * (size_t)nv));
    }
    free(one);
    free(chunked);
    free(single);
    free(p.ids);
}

/* Keep a prefix of the cache, change the rest: must equal a fresh evaluation of the new text. */
static void cache_truncate(model *m)
{
    int nv = model_get_hparams(m)->n_vocab;
    prompt a = make_prompt(30, nv, 11), b = make_prompt(30, nv, 12);
    memcpy(b.ids, a.ids, 18 * sizeof(int32_t));
    model_err err = {{0}};
    model_cache *c = model_cache_new(m, &err);
    float *got = malloc(sizeof(float) * nv * 12), *want = eval_all(m, &b, 30);
    model_eval(m, c, a.ids, 30, NULL, MODEL_LOGITS_NONE, NULL, &err);
    CHECK(model_cache_len(c) == 30, "cache holds 30 tokens");
    model_cache_truncate(c, 18);
    CHECK(model_cache_len(c) == 18, "truncated to 18");
    model_cache_truncate(c, 100);
    CHECK(model_cache_len(c) == 18, "truncate beyond the length is a no-op");
    CHECK(model_eval(m, c, b.ids + 18, 12, got, MODEL_LOGITS_ALL, NULL, &err) == 0, "append 12");
    CHECK(want && max_diff(got, want + 18 * (size_t)nv, 12 * (size_t)nv) <= 1e-4f,
          "reused prefix + new suffix = fresh evaluation");
    atomic_int cancel = 1;
    CHECK(model_eval(m, c, b.ids, 5, got, MODEL_LOGITS_LAST, &cancel, &err) == -2 &&
              model_cache_len(c) == 30,
          "a cancelled evaluation returns -2 and leaves the cache as it was");
    int32_t bad = nv;
    CHECK(model_eval(m, c, &bad, 1, got, MODEL_LOGITS_LAST, NULL, &err) < 0 &&
              strstr(err.msg, "outside"),
          "an id outside the vocab is refused: %s", err.msg);
    CHECK(model_eval(m, c, b.ids, 0, got, MODEL_LOGITS_LAST, NULL, &err) < 0,
          "zero tokens refused");
    CHECK(model_cache_len(c) == 30, "refused calls keep the cache");
    CHECK(model_cache_bytes(c) >= 30 * model_cache_bytes_per_token(m),
          "cache bytes cover its tokens");
    model_cache_free(c);
    free(got);
    free(want);
    free(a.ids);
    free(b.ids);
}

static void shape_full(model_synth_opts *o)
{
    o->hp.q_lora_rank = 48, o->hp.n_expert = 16, o->hp.n_expert_used = 4, o->hp.n_group = 4;
    o->hp.n_group_used = 2, o->hp.n_shared = 2, o->hp.weights_scale = 16;
}

static void shape_legacy(model_synth_opts *o)
{
    o->hp.legacy_kvb = true;
}

static void shape_wide(model_synth_opts *o) /* rows of 256 so that K-quants apply everywhere */
{
    o->hp.n_embd = 256, o->hp.kv_lora_rank = 256, o->hp.qk_nope = 256, o->hp.qk_rope = 64;
    o->hp.v_head = 128, o->hp.n_head = 2, o->hp.n_ff = 256, o->hp.n_ff_exp = 256, o->hp.n_layer = 2;
    o->hp.n_expert = 4;
}

static void self_contained(void)
{
    model *m = synth("ds2-tiny-f32.gguf", "F32", NULL);
    if (m) {
        cache_exact(m, "tiny F32");
        cache_truncate(m);
        const model_hparams *h = model_get_hparams(m);
        CHECK(model_cache_bytes_per_token(m) ==
                  (size_t)(h->kv_lora_rank + h->qk_rope) * h->n_layer * 4,
              "cache bytes per token = (R + rope) x layers x 4");
        CHECK(fabsf(h->kq_scale - 1.2608037774f * 1.2608037774f / sqrtf(24.0f)) < 1e-6f,
              "YaRN kq_scale = mscale^2/sqrt(Dk): %.9f", h->kq_scale);
    }
    model_free(m);
    m = synth("ds2-full.gguf", "F32", shape_full);
    if (m) cache_exact(m, "full-shaped (q-LoRA, 4 groups, scale 16)");
    model_free(m);
    m = synth("ds2-legacy.gguf", "Q8_0", shape_legacy);
    if (m) {
        CHECK(model_get_hparams(m)->legacy_kvb, "legacy attn_kv_b detected");
        cache_exact(m, "legacy attn_kv_b (Q8_0)");
    }
    model_free(m);
    static const char *types[] = {"F16",    "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1",
                                  "IQ4_NL", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_XS"};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        char name[64];
        snprintf(name, sizeof name, "ds2-wide-%s.gguf", types[i]);
        m = synth(name, types[i], shape_wide);
        if (m) cache_exact(m, types[i]);
        model_free(m);
    }
}

/* synth's mixes put tensors in the types llama-quantize chose for the fixtures it made. */
static void mixes(void)
{
    static const struct {
        const char *mix, *tensor, *type;
    } want[] = {
        {"Q3_K_M", "output.weight", "Q6_K"},
        {"Q3_K_M", "blk.0.attn_output.weight", "Q4_K"},
        {"Q3_K_M", "blk.0.ffn_down.weight", "Q4_K"},
        {"Q3_K_M", "blk.1.ffn_down_exps.weight", "Q4_K"},
        {"Q3_K_M", "blk.1.ffn_up_exps.weight", "Q3_K"},
        {"Q3_K_M", "token_embd.weight", "Q3_K"},
        {"Q2_K", "blk.1.ffn_down_shexp.weight", "Q3_K"},
        {"Q2_K", "blk.0.attn_q.weight", "Q2_K"},
        {"Q2_K", "output.weight", "Q6_K"},
        {"Q3_K_S", "blk.0.attn_output.weight", "Q3_K"},
        {"IQ4_XS", "blk.0.attn_k_b.weight", "IQ4_XS"},
        {"IQ4_XS", "output.weight", "Q6_K"},
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        model_synth_opts o;
        model_synth_preset(&o, "tiny");
        shape_wide(&o);
        o.type = model_synth_mix_base(want[i].mix);
        o.mix = want[i].mix;
        o.seed = 7;
        char name[64];
        snprintf(name, sizeof name, "ds2-mix-%s.gguf", want[i].mix);
        const char *path = check_tmp(name);
        model_err err = {{0}};
        model_gguf *g = model_synth(&o, path, &err) == 0 ? model_gguf_open(path, &err) : NULL;
        const gguf_tensor *t = g ? model__gguf_tensor(g, want[i].tensor) : NULL;
        const char *got = t ? model_type_name(t->type) : "(none)";
        CHECK(got && !strcmp(got, want[i].type), "%s mix: %s is %s (want %s) %s", want[i].mix,
              want[i].tensor, got, want[i].type, err.msg);
        model_gguf_close(g);
    }
    CHECK(model_synth_mix_base("q3_k_m") == MODEL_TYPE_Q3_K && model_synth_mix_base("Q9_K_M") < 0,
          "mix names");
}

int main(int argc, char **argv)
{
    static const char *const cases[] = {"self_contained", "mixes", "conformance"};
    if (!check_args(argc, argv, cases, CHECK_CASES(cases))) return 2;
    if (check_want("self_contained")) self_contained();
    if (check_want("mixes")) mixes();
    const char *fx = check_want("conformance")
                         ? check_fixtures("logits/greedy/dequant conformance against llama.cpp")
                         : NULL;
    if (fx) conformance(fx);
    return check_done();
}
