/* model/synth.c — writes a seeded random deepseek2 GGUF of any shape and type, with the key set
 * the current llama.cpp converter writes. The vocabulary comes from another GGUF or is built here
 * (256 byte tokens + merges learned from given files + DeepSeek's BOS/EOS/FIM tokens), so fimd can
 * make a complete model with nothing from outside. Tensors are generated row by row and streamed.
 */
#define _GNU_SOURCE
#include "model_internal.h"
#include "base/base.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int model_synth_preset(model_synth_opts *o, const char *like)
{
    memset(o, 0, sizeof *o);
    model_hparams *h = &o->hp;
    o->type = MODEL_TYPE_F32;
    o->n_merges = 256;
    o->seed = 1;
    h->n_ctx_train = 163840;
    h->gating = 1;
    h->weights_scale = 1.0f;
    h->rms_eps = 1e-6f;
    h->rope_base = 10000;
    h->rope_factor = 40;
    h->yarn_orig_ctx = 4096;
    h->yarn_log_mul = 0.707f;
    h->n_dense = 1;
    if (!strcmp(like, "lite")) { /* DeepSeek-Coder-V2-Lite */
        h->n_layer = 27, h->n_embd = 2048, h->n_head = 16, h->kv_lora_rank = 512;
        h->qk_nope = 128, h->qk_rope = 64, h->v_head = 128, h->n_ff = 10944;
        h->n_expert = 64, h->n_expert_used = 6, h->n_group = 1, h->n_group_used = 1;
        h->n_shared = 2, h->n_ff_exp = 1408;
        o->omit_q_lora_key = true;
    } else if (!strcmp(like, "full")) { /* DeepSeek-Coder-V2 (236B) */
        h->n_layer = 60, h->n_embd = 5120, h->n_head = 128, h->q_lora_rank = 1536;
        h->kv_lora_rank = 512, h->qk_nope = 128, h->qk_rope = 64, h->v_head = 128;
        h->n_ff = 12288, h->n_expert = 160, h->n_expert_used = 6, h->n_group = 8;
        h->n_group_used = 3, h->n_shared = 2, h->n_ff_exp = 1536, h->weights_scale = 16.0f;
    } else if (!strcmp(like, "tiny")) { /* the fixtures' small Lite-like shape */
        h->n_layer = 3, h->n_embd = 64, h->n_head = 4, h->kv_lora_rank = 32;
        h->qk_nope = 16, h->qk_rope = 8, h->v_head = 16, h->n_ff = 96;
        h->n_expert = 8, h->n_expert_used = 2, h->n_group = 1, h->n_group_used = 1;
        h->n_shared = 1, h->n_ff_exp = 32;
    } else {
        return -1;
    }
    return 0;
}

/* ---- random numbers: splitmix64, one stream per tensor so order does not matter ---- */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static float uniform(uint64_t *s) /* [-1, 1) */
{
    return (float)((double)(splitmix(s) >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

static uint64_t name_seed(uint64_t seed, const char *name)
{
    uint64_t h = 1469598103934665603ULL ^ seed;
    for (const char *p = name; *p; p++) h = (h ^ (uint8_t)*p) * 1099511628211ULL;
    return h;
}

/* ---- vocabulary built here ---- */

typedef struct strvec {
    char **v;
    size_t *len;
    size_t n, cap;
} strvec;

static void sv_push(strvec *s, const char *p, size_t n)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 512;
        s->v = base_xrealloc(s->v, s->cap * sizeof *s->v);
        s->len = base_xrealloc(s->len, s->cap * sizeof *s->len);
    }
    s->v[s->n] = base_xmalloc(n + 1);
    memcpy(s->v[s->n], p, n);
    s->v[s->n][n] = 0;
    s->len[s->n++] = n;
}

static void sv_free(strvec *s)
{
    for (size_t i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
    free(s->len);
}

/* unique words of the training text, as symbol (token id) sequences with counts */
typedef struct word {
    int *sym;
    int n;
    long count;
    char *text;
    size_t len;
} word;

typedef struct corpus {
    word *w;
    size_t n, cap;
    uint32_t *slots; /* hash of word text -> index+1 */
    uint32_t mask;
} corpus;

static uint32_t fnv(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static void corpus_grow(corpus *c)
{
    uint32_t cap = c->mask ? (c->mask + 1) * 2 : 4096;
    uint32_t *slots = base_xcalloc(cap, sizeof *slots);
    for (size_t i = 0; i < c->n; i++) {
        uint32_t k = fnv(c->w[i].text, c->w[i].len) & (cap - 1);
        while (slots[k]) k = (k + 1) & (cap - 1);
        slots[k] = (uint32_t)i + 1;
    }
    free(c->slots);
    c->slots = slots;
    c->mask = cap - 1;
}

static void corpus_add(const char *s, size_t n, void *ctx)
{
    corpus *c = ctx;
    if (n == 0 || n > 64) return; /* long pieces teach nothing useful to a small vocab */
    if ((c->n + 1) * 2 > (size_t)c->mask) corpus_grow(c);
    uint32_t k = fnv(s, n) & c->mask;
    for (; c->slots[k]; k = (k + 1) & c->mask) {
        word *w = &c->w[c->slots[k] - 1];
        if (w->len == n && !memcmp(w->text, s, n)) {
            w->count++;
            return;
        }
    }
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 1024;
        c->w = base_xrealloc(c->w, c->cap * sizeof *c->w);
    }
    word *w = &c->w[c->n];
    w->text = base_xmalloc(n);
    w->sym = base_xmalloc(sizeof(int) * n);
    memcpy(w->text, s, n);
    w->len = n;
    w->n = (int)n;
    w->count = 1;
    for (size_t i = 0; i < n; i++) w->sym[i] = (uint8_t)s[i]; /* byte b is token b */
    c->slots[k] = (uint32_t)++c->n;
}

/* Learn up to n_merges merges: the most frequent adjacent pair (lowest ids on ties) each round. */
static void learn_merges(corpus *c, strvec *tokens, strvec *merges, int n_merges)
{
    for (int r = 0; r < n_merges; r++) {
        size_t nt = tokens->n;
        if (nt > 65536) break;
        /* count pairs in a hash keyed by (a, b) */
        uint32_t cap = 1;
        size_t total = 0;
        for (size_t i = 0; i < c->n; i++) total += (size_t)c->w[i].n;
        while (cap < total * 2 + 16) cap <<= 1;
        uint64_t *keys = base_xcalloc(cap, sizeof *keys);
        long *cnt = base_xcalloc(cap, sizeof *cnt);
        uint64_t best = 0;
        long best_n = 0;
        for (size_t i = 0; i < c->n; i++) {
            word *w = &c->w[i];
            for (int j = 0; j + 1 < w->n; j++) {
                uint64_t key = ((uint64_t)w->sym[j] << 32 | (uint32_t)w->sym[j + 1]) + 1;
                uint32_t k = (uint32_t)((key * 0x9e3779b97f4a7c15ULL) >> 32) & (cap - 1);
                while (keys[k] && keys[k] != key) k = (k + 1) & (cap - 1);
                keys[k] = key;
                cnt[k] += w->count;
                if (cnt[k] > best_n || (cnt[k] == best_n && key < best))
                    best = key, best_n = cnt[k];
            }
        }
        free(keys);
        free(cnt);
        if (best_n < 2) break;
        int a = (int)((best - 1) >> 32), b = (int)((best - 1) & 0xffffffff);
        char buf[1024];
        size_t la = tokens->len[a], lb = tokens->len[b];
        if (la + lb + 1 >= sizeof buf) break;
        memcpy(buf, tokens->v[a], la);
        buf[la] = ' ';
        memcpy(buf + la + 1, tokens->v[b], lb);
        sv_push(merges, buf, la + lb + 1);
        memcpy(buf + la, tokens->v[b], lb);
        sv_push(tokens, buf, la + lb);
        int id = (int)nt;
        for (size_t i = 0; i < c->n; i++) {
            word *w = &c->w[i];
            int o = 0;
            for (int j = 0; j < w->n; j++) {
                if (j + 1 < w->n && w->sym[j] == a && w->sym[j + 1] == b)
                    w->sym[o++] = id, j++;
                else
                    w->sym[o++] = w->sym[j];
            }
            w->n = o;
        }
    }
}

static int build_vocab(const model_synth_opts *o, gguf_writer *w, int *n_vocab, model_err *err)
{
    strvec tokens = {0}, merges = {0};
    for (int b = 0; b < 256; b++) {
        char u[4];
        sv_push(&tokens, u, (size_t)model__byte_to_utf8((uint8_t)b, u));
    }
    corpus c = {0};
    for (int i = 0; i < o->n_merge_files; i++) {
        FILE *f = fopen(o->merge_files[i], "rb");
        if (!f) {
            model__fail(err, "%s: %s", o->merge_files[i], strerror(errno));
            goto fail;
        }
        char *buf = malloc(1 << 20);
        size_t n = buf ? fread(buf, 1, 1 << 20, f) : 0; /* the first MiB of each file is enough */
        fclose(f);
        model__pretokenize(buf, n, corpus_add, &c);
        free(buf);
    }
    learn_merges(&c, &tokens, &merges, o->n_merges);
    static const char *specials[] = {"<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>",
                                     "<｜fim▁hole｜>", "<｜fim▁begin｜>", "<｜fim▁end｜>"};
    int bos = (int)tokens.n;
    for (int i = 0; i < 5; i++) sv_push(&tokens, specials[i], strlen(specials[i]));
    int32_t *types = base_xmalloc(sizeof(int32_t) * tokens.n);
    for (size_t i = 0; i < tokens.n; i++) types[i] = (int)i >= bos ? 3 : 1;
    model__gw_str(w, "tokenizer.ggml.model", "gpt2");
    model__gw_str(w, "tokenizer.ggml.pre", "deepseek-llm");
    model__gw_str_arr(w, "tokenizer.ggml.tokens", (const char *const *)tokens.v, tokens.len,
                      tokens.n);
    model__gw_i32_arr(w, "tokenizer.ggml.token_type", types, tokens.n);
    model__gw_str_arr(w, "tokenizer.ggml.merges", (const char *const *)merges.v, merges.len,
                      merges.n);
    model__gw_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)bos);
    model__gw_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)bos + 1);
    model__gw_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)bos + 1);
    model__gw_bool(w, "tokenizer.ggml.add_bos_token", true);
    model__gw_bool(w, "tokenizer.ggml.add_eos_token", false);
    *n_vocab = (int)tokens.n;
    free(types);
    for (size_t i = 0; i < c.n; i++) free(c.w[i].text), free(c.w[i].sym);
    free(c.w);
    free(c.slots);
    sv_free(&tokens);
    sv_free(&merges);
    return 0;
fail:
    for (size_t i = 0; i < c.n; i++) free(c.w[i].text), free(c.w[i].sym);
    free(c.w);
    free(c.slots);
    sv_free(&tokens);
    sv_free(&merges);
    return -1;
}

static int copy_vocab(const char *path, gguf_writer *w, int *n_vocab, model_err *err)
{
    model_gguf *g = model_gguf_open(path, err);
    if (!g) return -1;
    const gguf_kv *toks = model__gguf_find(g, "tokenizer.ggml.tokens");
    if (!toks || toks->type != GGUF_ARRAY || toks->arr_type != GGUF_STRING) {
        model__fail(err, "%s: has no tokenizer.ggml.tokens to copy", path);
        model_gguf_close(g);
        return -1;
    }
    *n_vocab = (int)toks->arr_n;
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (g->kv[i].key.n > 10 && !memcmp(g->kv[i].key.p, "tokenizer.", 10))
            model__gw_raw(w, &g->kv[i]);
    model_gguf_close(g);
    return 0;
}

/* ---- tensors ---- */

typedef struct tdesc {
    char name[64];
    int type, n_dims;
    int64_t ne[4];
    float scale; /* uniform half-width; norms get 1 +- scale */
    bool norm;
} tdesc;

typedef struct tlist {
    tdesc *v;
    int n, cap;
} tlist;

/* The type a quantizer would pick for this row length (llama-quantize's fallbacks). */
/* Rows too short for a 256-block type fall back as llama-quantize does (Lite's ffn_down_exps rows
 * are 1408 long). */
static int fit_type(int type, int64_t ne0)
{
    const type_traits *t = model__type(type);
    if (ne0 % t->block == 0) return type;
    static const int fallback[][2] = {
        {MODEL_TYPE_Q4_K, MODEL_TYPE_Q5_0}, {MODEL_TYPE_Q5_K, MODEL_TYPE_Q5_1},
        {MODEL_TYPE_Q6_K, MODEL_TYPE_Q8_0}, {MODEL_TYPE_Q2_K, MODEL_TYPE_Q4_0},
        {MODEL_TYPE_Q3_K, MODEL_TYPE_Q4_0}, {MODEL_TYPE_IQ4_XS, MODEL_TYPE_IQ4_NL},
    };
    for (size_t i = 0; i < sizeof fallback / sizeof *fallback; i++)
        if (fallback[i][0] == type) type = fallback[i][1];
    return ne0 % model__type(type)->block == 0 ? type : MODEL_TYPE_F16;
}

/* llama-quantize's mixes as they come out on deepseek2 (checked against the fixtures made by it):
 * a base type, with the output head, attn_output and the down projections kept at more bits.
 * -1: the base type. */
typedef struct synth_mix {
    const char *name;
    int base, output, attn_output, down_moe, down_dense;
} synth_mix;
static const synth_mix mixes[] = {
    {"Q4_K_M", MODEL_TYPE_Q4_K, MODEL_TYPE_Q6_K, -1, MODEL_TYPE_Q6_K, -1},
    {"Q5_K_M", MODEL_TYPE_Q5_K, MODEL_TYPE_Q6_K, -1, MODEL_TYPE_Q6_K, -1},
    {"Q3_K_S", MODEL_TYPE_Q3_K, MODEL_TYPE_Q6_K, -1, -1, -1},
    {"Q3_K_M", MODEL_TYPE_Q3_K, MODEL_TYPE_Q6_K, MODEL_TYPE_Q4_K, MODEL_TYPE_Q4_K, MODEL_TYPE_Q4_K},
    {"Q3_K_L", MODEL_TYPE_Q3_K, MODEL_TYPE_Q6_K, MODEL_TYPE_Q5_K, MODEL_TYPE_Q5_K, MODEL_TYPE_Q5_K},
    {"Q2_K", MODEL_TYPE_Q2_K, MODEL_TYPE_Q6_K, MODEL_TYPE_Q3_K, MODEL_TYPE_Q3_K, MODEL_TYPE_Q3_K},
    {"IQ4_XS", MODEL_TYPE_IQ4_XS, MODEL_TYPE_Q6_K, -1, -1, -1},
};

static const synth_mix *find_mix(const char *name)
{
    for (size_t i = 0; name && i < sizeof mixes / sizeof *mixes; i++) {
        const char *a = mixes[i].name, *b = name;
        while (*a && *b && (*a == *b || (*a >= 'A' && *a <= 'Z' && *a + 32 == *b))) a++, b++;
        if (!*a && !*b) return &mixes[i];
    }
    return NULL;
}

int model_synth_mix_base(const char *name)
{
    const synth_mix *m = find_mix(name);
    return m ? m->base : -1;
}

static void add_t(tlist *l, const model_synth_opts *o, int type, const char *name, int n_dims,
                  int64_t ne0, int64_t ne1, int64_t ne2)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->v = base_xrealloc(l->v, sizeof *l->v * (size_t)l->cap);
    }
    tdesc *t = &l->v[l->n++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->n_dims = n_dims;
    t->ne[0] = ne0, t->ne[1] = ne1, t->ne[2] = ne2, t->ne[3] = 1;
    t->norm = n_dims == 1;
    t->type = t->norm ? MODEL_TYPE_F32 : fit_type(type < 0 ? o->type : type, ne0);
    t->scale = t->norm ? 0.1f : sqrtf(3.0f / (float)ne0);
}

static void plan_tensors(const model_synth_opts *o, int n_vocab, tlist *l)
{
    const model_hparams *h = &o->hp;
    int64_t D = h->n_embd, H = h->n_head, Dk = h->qk_nope + h->qk_rope, R = h->kv_lora_rank;
    int64_t Fe = h->n_ff_exp, E = h->n_expert;
    const synth_mix *mix = find_mix(o->mix), plain = {NULL, -1, -1, -1, -1, -1};
    if (!mix) mix = &plain;
    int k6 = mix->down_moe;
    add_t(l, o, -1, "token_embd.weight", 2, D, n_vocab, 1);
    l->v[l->n - 1].scale = 1.0f;
    add_t(l, o, -1, "output_norm.weight", 1, D, 1, 1);
    add_t(l, o, mix->output, "output.weight", 2, D, n_vocab, 1);
    char n[96];
    for (int il = 0; il < h->n_layer; il++) {
#define NM(s) (snprintf(n, sizeof n, "blk.%d." s ".weight", il), n)
        add_t(l, o, -1, NM("attn_norm"), 1, D, 1, 1);
        if (h->q_lora_rank > 0) {
            add_t(l, o, -1, NM("attn_q_a"), 2, D, h->q_lora_rank, 1);
            add_t(l, o, -1, NM("attn_q_a_norm"), 1, h->q_lora_rank, 1, 1);
            add_t(l, o, -1, NM("attn_q_b"), 2, h->q_lora_rank, H * Dk, 1);
        } else {
            add_t(l, o, -1, NM("attn_q"), 2, D, H * Dk, 1);
        }
        add_t(l, o, -1, NM("attn_kv_a_mqa"), 2, D, R + h->qk_rope, 1);
        add_t(l, o, -1, NM("attn_kv_a_norm"), 1, R, 1, 1);
        if (h->legacy_kvb) {
            add_t(l, o, -1, NM("attn_kv_b"), 2, R, H * (h->qk_nope + h->v_head), 1);
        } else {
            add_t(l, o, -1, NM("attn_k_b"), 3, h->qk_nope, R, H);
            add_t(l, o, -1, NM("attn_v_b"), 3, R, h->v_head, H);
        }
        add_t(l, o, mix->attn_output, NM("attn_output"), 2, H * h->v_head, D, 1);
        add_t(l, o, -1, NM("ffn_norm"), 1, D, 1, 1);
        if (il < h->n_dense) {
            add_t(l, o, -1, NM("ffn_gate"), 2, D, h->n_ff, 1);
            add_t(l, o, -1, NM("ffn_up"), 2, D, h->n_ff, 1);
            add_t(l, o, mix->down_dense, NM("ffn_down"), 2, h->n_ff, D, 1);
            continue;
        }
        add_t(l, o, MODEL_TYPE_F32, NM("ffn_gate_inp"), 2, D, E, 1);
        add_t(l, o, -1, NM("ffn_gate_exps"), 3, D, Fe, E);
        add_t(l, o, -1, NM("ffn_up_exps"), 3, D, Fe, E);
        add_t(l, o, k6, NM("ffn_down_exps"), 3, Fe, D, E);
        if (h->n_shared > 0) {
            add_t(l, o, -1, NM("ffn_gate_shexp"), 2, D, Fe * h->n_shared, 1);
            add_t(l, o, -1, NM("ffn_up_shexp"), 2, D, Fe * h->n_shared, 1);
            add_t(l, o, k6, NM("ffn_down_shexp"), 2, Fe * h->n_shared, D, 1);
        }
#undef NM
    }
}

static void write_keys(const model_synth_opts *o, gguf_writer *w, int n_vocab)
{
    const model_hparams *h = &o->hp;
    char name[128];
    snprintf(name, sizeof name, "fimd synth (seed %llu)", (unsigned long long)o->seed);
    model__gw_str(w, "general.architecture", "deepseek2");
    model__gw_str(w, "general.type", "model");
    model__gw_str(w, "general.name", name);
    model__gw_u32(w, "deepseek2.block_count", (uint32_t)h->n_layer);
    model__gw_u32(w, "deepseek2.context_length", (uint32_t)h->n_ctx_train);
    model__gw_u32(w, "deepseek2.embedding_length", (uint32_t)h->n_embd);
    model__gw_u32(w, "deepseek2.feed_forward_length", (uint32_t)h->n_ff);
    model__gw_u32(w, "deepseek2.attention.head_count", (uint32_t)h->n_head);
    model__gw_u32(w, "deepseek2.attention.head_count_kv", h->legacy_kvb ? (uint32_t)h->n_head : 1);
    model__gw_str(w, "deepseek2.rope.scaling.type", "yarn");
    model__gw_f32(w, "deepseek2.rope.scaling.factor", h->rope_factor);
    model__gw_u32(w, "deepseek2.rope.scaling.original_context_length", (uint32_t)h->yarn_orig_ctx);
    model__gw_f32(w, "deepseek2.rope.scaling.yarn_beta_fast", 32);
    model__gw_f32(w, "deepseek2.rope.scaling.yarn_beta_slow", 1);
    model__gw_f32(w, "deepseek2.rope.freq_base", h->rope_base);
    model__gw_f32(w, "deepseek2.attention.layer_norm_rms_epsilon", h->rms_eps);
    model__gw_u32(w, "deepseek2.expert_count", (uint32_t)h->n_expert);
    model__gw_u32(w, "deepseek2.expert_used_count", (uint32_t)h->n_expert_used);
    model__gw_u32(w, "deepseek2.expert_group_count", (uint32_t)h->n_group);
    model__gw_u32(w, "deepseek2.expert_group_used_count", (uint32_t)h->n_group_used);
    model__gw_u32(w, "deepseek2.expert_gating_func", (uint32_t)h->gating);
    model__gw_u32(w, "general.file_type", (uint32_t)o->type);
    model__gw_u32(w, "deepseek2.leading_dense_block_count", (uint32_t)h->n_dense);
    model__gw_u32(w, "deepseek2.vocab_size", (uint32_t)n_vocab);
    /* llama.cpp reads q_lora_rank unless the layer count says Lite (26 or 27), so only those
     * shapes may omit it as the converter does. */
    if (h->q_lora_rank > 0 || !o->omit_q_lora_key || (h->n_layer != 26 && h->n_layer != 27))
        model__gw_u32(w, "deepseek2.attention.q_lora_rank", (uint32_t)h->q_lora_rank);
    model__gw_u32(w, "deepseek2.attention.kv_lora_rank", (uint32_t)h->kv_lora_rank);
    if (h->legacy_kvb) {
        model__gw_u32(w, "deepseek2.attention.key_length", (uint32_t)(h->qk_nope + h->qk_rope));
        model__gw_u32(w, "deepseek2.attention.value_length", (uint32_t)h->v_head);
    } else {
        model__gw_u32(w, "deepseek2.attention.key_length",
                      (uint32_t)(h->kv_lora_rank + h->qk_rope));
        model__gw_u32(w, "deepseek2.attention.value_length", (uint32_t)h->kv_lora_rank);
        model__gw_u32(w, "deepseek2.attention.key_length_mla", (uint32_t)(h->qk_nope + h->qk_rope));
        model__gw_u32(w, "deepseek2.attention.value_length_mla", (uint32_t)h->v_head);
    }
    model__gw_u32(w, "deepseek2.expert_feed_forward_length", (uint32_t)h->n_ff_exp);
    model__gw_u32(w, "deepseek2.expert_shared_count", (uint32_t)h->n_shared);
    model__gw_f32(w, "deepseek2.expert_weights_scale", h->weights_scale);
    if (h->weights_norm) model__gw_bool(w, "deepseek2.expert_weights_norm", true);
    model__gw_u32(w, "deepseek2.rope.dimension_count", (uint32_t)h->qk_rope);
    model__gw_f32(w, "deepseek2.rope.scaling.yarn_log_multiplier", 0.1f * h->yarn_log_mul);
    model__gw_u32(w, "general.quantization_version", 2);
}

static int write_tensor(const model_synth_opts *o, const tdesc *t, FILE *f, float *row, void *qrow,
                        model_err *err)
{
    uint64_t s = name_seed(o->seed, t->name);
    int64_t rows = t->ne[1] * t->ne[2] * t->ne[3];
    size_t rb = model__row_bytes(t->type, t->ne[0]);
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t i = 0; i < t->ne[0]; i++)
            row[i] = t->norm ? 1.0f + t->scale * uniform(&s) : t->scale * uniform(&s);
        model__quant(t->type, row, qrow, t->ne[0]);
        if (fwrite(qrow, 1, rb, f) != rb)
            return model__fail(err, "write failed: %s", strerror(errno));
    }
    return 0;
}

static int check_opts(const model_synth_opts *o, model_err *err)
{
    const model_hparams *h = &o->hp;
    const type_traits *t = model__type(o->type);
    if (!t || o->type == MODEL_TYPE_Q8_1 || o->type == MODEL_TYPE_Q8_K)
        return model__fail(err, "synth: type %d cannot be used for weights", o->type);
    if (h->n_layer < 1 || h->n_embd < 1 || h->n_head < 1 || h->kv_lora_rank < 1 || h->qk_nope < 1 ||
        h->qk_rope < 2 || h->qk_rope % 2 || h->v_head < 1 || h->n_dense < 0 ||
        h->n_dense > h->n_layer)
        return model__fail(err, "synth: the shape is invalid (layers, dims and heads must be > 0, "
                                "rope dims even, dense layers <= layers)");
    if (h->n_dense > 0 && h->n_ff < 1) return model__fail(err, "synth: dense layers need --ff");
    if (h->n_dense < h->n_layer && (h->n_expert < 1 || h->n_expert_used < 1 ||
                                    h->n_expert_used > h->n_expert || h->n_ff_exp < 1))
        return model__fail(err, "synth: MoE layers need experts, experts-used <= experts, ff-exp");
    return 0;
}

int model_synth(const model_synth_opts *o, const char *path, model_err *err)
{
    if (check_opts(o, err)) return -1;
    gguf_writer *w = model__gw_new();
    int n_vocab = 0;
    gguf_writer *tw =
        model__gw_new(); /* tokenizer keys, appended after the model's as converters do */
    int r = o->vocab_from ? copy_vocab(o->vocab_from, tw, &n_vocab, err)
                          : build_vocab(o, tw, &n_vocab, err);
    if (r) {
        model__gw_free(w);
        model__gw_free(tw);
        return -1;
    }
    write_keys(o, w, n_vocab);
    model__gw_append(w, tw);
    model__gw_free(tw);
    tlist l = {0};
    plan_tensors(o, n_vocab, &l);
    for (int i = 0; i < l.n; i++)
        model__gw_tensor(w, l.v[i].name, l.v[i].type, l.v[i].n_dims, l.v[i].ne);
    FILE *f = fopen(path, "wb");
    int64_t max_ne0 = 0;
    for (int i = 0; i < l.n; i++) max_ne0 = l.v[i].ne[0] > max_ne0 ? l.v[i].ne[0] : max_ne0;
    float *row = malloc(sizeof(float) * (size_t)max_ne0);
    void *qrow = malloc(sizeof(float) * (size_t)max_ne0);
    if (!f)
        r = model__fail(err, "%s: %s", path, strerror(errno));
    else if (!row || !qrow)
        r = model__fail(err, "out of memory");
    else
        r = model__gw_write_header(w, f, err);
    for (int i = 0; !r && i < l.n; i++) {
        const tdesc *t = &l.v[i];
        r = write_tensor(o, t, f, row, qrow, err);
        if (!r)
            r = model__gw_pad(
                w, f, model__row_bytes(t->type, t->ne[0]) * (uint64_t)(t->ne[1] * t->ne[2]), err);
    }
    if (f && fclose(f) && !r) r = model__fail(err, "%s: write failed", path);
    if (r && f) remove(path);
    free(row);
    free(qrow);
    free(l.v);
    model__gw_free(w);
    return r;
}
