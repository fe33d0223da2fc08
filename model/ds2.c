/* model/ds2.c — the deepseek2 model: hyper-parameters from GGUF keys, weights bound by name with
 * type and shape checked, the latent KV cache, and the forward pass as llama.cpp computes it
 * (MLA in the absorbed form, DeepSeekMoE routing, YaRN RoPE). See shared deepseek2-spec.md. */
#define _GNU_SOURCE
#include "model_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_EXPERTS = 1024, MAX_USED = 64 }; /* routing buffers live on the stack */

/* One weight: borrowed from the mmap (or owned, for the k_b/v_b derived from a legacy kv_b). */
typedef struct wt {
    int type;
    int64_t ne[3];       /* ne0 = input features (contiguous), ne1 = outputs, ne2 = experts/heads */
    const uint8_t *data;
    size_t row_bytes;    /* bytes of one ne0 row */
    size_t mat_bytes;    /* bytes of one ne0 x ne1 matrix */
} wt;

typedef struct layer {
    wt attn_norm;        /* [D] */
    wt wq;               /* Lite: [D -> H*Dk] */
    wt wq_a, q_a_norm, wq_b; /* full: [D -> Q], [Q], [Q -> H*Dk] */
    wt wkv_a;            /* [D -> R+Dr]: latent first, rope part last */
    wt kv_a_norm;        /* [R] */
    wt wk_b;             /* per head h: [Dn -> R] (W_UK_h^T) */
    wt wv_b;             /* per head h: [R -> Dv] */
    wt wo;               /* [H*Dv -> D] */
    wt ffn_norm;         /* [D] */
    wt gate, up, down;   /* dense: [D -> F], [D -> F], [F -> D] */
    wt router;           /* MoE: [D -> E], F32 */
    wt gate_exps, up_exps, down_exps; /* [D -> Fe] x E, [Fe -> D] x E */
    wt gate_sh, up_sh, down_sh;       /* [D -> Fe*S], [Fe*S -> D] */
} layer;

struct model {
    model_gguf *g;
    model_vocab *vocab;
    model_hparams hp;
    const model_kernels *k;
    float rope_mag;      /* 1 for every DeepSeek file (the YaRN correction lives in kq_scale) */
    float yarn_low, yarn_high, freq_scale, ext_factor;
    wt tok_embd;         /* [D] x V */
    wt out_norm;         /* [D] */
    wt output;           /* [D -> V] */
    layer *layers;
    void **owned;        /* buffers for derived legacy tensors */
    int n_owned;
    /* scratch, grown on demand, reused across calls */
    float *scratch;
    size_t scratch_len;
    uint8_t *qbuf;       /* one activation row in a vec_dot type */
};

struct model_cache {
    const model *m;
    int len, cap;
    int row;             /* R + Dr */
    float **rows;        /* [n_layer] -> [cap][R | Dr]: normed c_kv, then roped k_pe */
};

/* ---- hyper-parameters ---- */

static int req_u32(const model_gguf *g, const char *key, int *out, model_err *err)
{
    uint32_t v;
    int r = model__gguf_u32(g, key, &v, err);
    if (r < 0) return -1;
    if (r == 1) return model__fail(err, "%s: required key '%s' is missing", g->path, key);
    if (v > (1u << 30)) return model__fail(err, "%s: key '%s' = %u is absurd", g->path, key, v);
    *out = (int)v;
    return 0;
}

static int opt_u32(const model_gguf *g, const char *key, int *out, int def, model_err *err)
{
    uint32_t v;
    int r = model__gguf_u32(g, key, &v, err);
    if (r < 0) return -1;
    if (r == 0 && v > (1u << 30)) return model__fail(err, "%s: key '%s' = %u is absurd", g->path, key, v);
    *out = r == 1 ? def : (int)v;
    return 0;
}

static int opt_f32(const model_gguf *g, const char *key, float *out, float def, model_err *err)
{
    int r = model__gguf_f32(g, key, out, err);
    if (r < 0) return -1;
    if (r == 1) *out = def;
    if (!isfinite(*out)) return model__fail(err, "%s: key '%s' is not finite", g->path, key);
    return 0;
}

static float get_mscale(float s, float m)
{
    return s <= 1 ? 1.0f : 1.0f + 0.1f * m * logf(s);
}

static int load_rope(model *m, model_err *err)
{
    const model_gguf *g = m->g;
    model_hparams *hp = &m->hp;
    gguf_str type = {"linear", 6};
    if (model__gguf_str(g, "deepseek2.rope.scaling.type", &type, err) < 0) return -1;
    float factor, attn_factor_key;
    if (opt_f32(g, "deepseek2.rope.freq_base", &hp->rope_base, 10000, err) ||
        opt_f32(g, "deepseek2.rope.scaling.factor", &factor, 0, err) ||
        opt_f32(g, "deepseek2.rope.scaling.attn_factor", &attn_factor_key, 1, err) ||
        opt_f32(g, "deepseek2.rope.scaling.yarn_log_multiplier", &hp->yarn_log_mul, 0, err) ||
        opt_u32(g, "deepseek2.rope.scaling.original_context_length", &hp->yarn_orig_ctx,
                hp->n_ctx_train, err))
        return -1;
    if (factor == 0) {
        float lin;
        if (opt_f32(g, "deepseek2.rope.scale_linear", &lin, 0, err)) return -1;
        factor = lin;
    }
    bool none = model__gguf_str_eq(type, "none"), yarn = model__gguf_str_eq(type, "yarn");
    if (!none && !yarn && !model__gguf_str_eq(type, "linear"))
        return model__fail(err, "%s: rope scaling type '%.*s' is not supported", g->path,
                           (int)(type.n < 32 ? type.n : 32), type.p);
    if (none || factor <= 0) factor = 1;
    if (hp->rope_base <= 0) return model__fail(err, "%s: rope.freq_base must be positive", g->path);
    hp->rope_factor = factor;
    hp->yarn_log_mul /= 0.1f; /* stored as 0.1 * mscale_all_dim (a converter quirk) */
    m->freq_scale = 1.0f / factor;
    m->ext_factor = yarn ? 1.0f : 0.0f;
    float mscale = 1.0f;
    m->rope_mag = attn_factor_key;
    if (yarn) {
        float log_mul = hp->yarn_log_mul, mscale_rope = log_mul != 1 ? log_mul : 1;
        m->rope_mag = get_mscale(factor, mscale_rope) / get_mscale(factor, log_mul) * attn_factor_key;
        mscale = m->rope_mag * (1.0f + 0.1f * log_mul * logf(factor));
    }
    hp->kq_scale = mscale * mscale / sqrtf((float)(hp->qk_nope + hp->qk_rope));
    /* YaRN correction dims (ggml_rope_yarn_corr_dims with beta_fast 32, beta_slow 1) */
    float nd = (float)hp->qk_rope, base = hp->rope_base;
    float lo = nd * logf((float)hp->yarn_orig_ctx / (32.0f * 2 * (float)M_PI)) / (2 * logf(base));
    float hi = nd * logf((float)hp->yarn_orig_ctx / (1.0f * 2 * (float)M_PI)) / (2 * logf(base));
    m->yarn_low = fmaxf(0, floorf(lo));
    m->yarn_high = fminf(nd - 1, ceilf(hi));
    return 0;
}

static int load_hparams(model *m, model_err *err)
{
    const model_gguf *g = m->g;
    model_hparams *hp = &m->hp;
    gguf_str arch;
    int r = model__gguf_str(g, "general.architecture", &arch, err);
    if (r < 0) return -1;
    if (r == 1) return model__fail(err, "%s: general.architecture is missing", g->path);
    if (!model__gguf_str_eq(arch, "deepseek2"))
        return model__fail(err, "%s: architecture '%.*s' is not deepseek2", g->path,
                           (int)(arch.n < 40 ? arch.n : 40), arch.p);
    int head_kv, key_len, val_len, key_mla, val_mla, n_rot;
    uint32_t gating = 1;
    if (req_u32(g, "deepseek2.block_count", &hp->n_layer, err) ||
        req_u32(g, "deepseek2.embedding_length", &hp->n_embd, err) ||
        req_u32(g, "deepseek2.context_length", &hp->n_ctx_train, err) ||
        req_u32(g, "deepseek2.attention.head_count", &hp->n_head, err) ||
        opt_u32(g, "deepseek2.attention.head_count_kv", &head_kv, hp->n_head, err) ||
        req_u32(g, "deepseek2.attention.kv_lora_rank", &hp->kv_lora_rank, err) ||
        opt_u32(g, "deepseek2.attention.q_lora_rank", &hp->q_lora_rank, 0, err) ||
        opt_u32(g, "deepseek2.attention.key_length", &key_len, 0, err) ||
        opt_u32(g, "deepseek2.attention.value_length", &val_len, 0, err) ||
        opt_u32(g, "deepseek2.attention.key_length_mla", &key_mla, 0, err) ||
        opt_u32(g, "deepseek2.attention.value_length_mla", &val_mla, 0, err) ||
        opt_u32(g, "deepseek2.rope.dimension_count", &n_rot, 0, err) ||
        opt_u32(g, "deepseek2.feed_forward_length", &hp->n_ff, 0, err) ||
        opt_u32(g, "deepseek2.leading_dense_block_count", &hp->n_dense, 0, err) ||
        opt_u32(g, "deepseek2.expert_count", &hp->n_expert, 0, err) ||
        opt_u32(g, "deepseek2.expert_used_count", &hp->n_expert_used, 0, err) ||
        opt_u32(g, "deepseek2.expert_group_count", &hp->n_group, 0, err) ||
        opt_u32(g, "deepseek2.expert_group_used_count", &hp->n_group_used, 0, err) ||
        opt_u32(g, "deepseek2.expert_shared_count", &hp->n_shared, 0, err) ||
        opt_u32(g, "deepseek2.expert_feed_forward_length", &hp->n_ff_exp, 0, err) ||
        opt_f32(g, "deepseek2.expert_weights_scale", &hp->weights_scale, 0, err) ||
        opt_f32(g, "deepseek2.attention.layer_norm_rms_epsilon", &hp->rms_eps, -1, err))
        return -1;
    if (model__gguf_bool(g, "deepseek2.expert_weights_norm", &hp->weights_norm, err) < 0 ||
        model__gguf_u32(g, "deepseek2.expert_gating_func", &gating, err) < 0)
        return -1;
    hp->gating = (int)gating;
    if (hp->rms_eps < 0)
        return model__fail(err, "%s: required key 'deepseek2.attention.layer_norm_rms_epsilon' is "
                           "missing", g->path);
    bool mla = key_mla > 0 && val_mla > 0;
    if (n_rot == 0) n_rot = mla ? key_len - hp->kv_lora_rank : key_len;
    hp->qk_rope = n_rot;
    hp->qk_nope = (mla ? key_mla : key_len) - n_rot;
    hp->v_head = mla ? val_mla : val_len;
    hp->legacy_kvb = !mla;
    (void)head_kv;
    return load_rope(m, err);
}

#define CHECK_HP(cond, ...)                                                                        \
    do {                                                                                           \
        if (!(cond)) return model__fail(err, __VA_ARGS__);                                         \
    } while (0)

static int check_hparams(const model *m, model_err *err)
{
    const model_hparams *hp = &m->hp;
    const char *p = m->g->path;
    CHECK_HP(hp->n_layer >= 1 && hp->n_layer <= 1024, "%s: block_count %d is invalid", p, hp->n_layer);
    CHECK_HP(hp->n_embd >= 1 && hp->n_head >= 1, "%s: embedding_length and head_count must be > 0", p);
    CHECK_HP(hp->kv_lora_rank >= 1, "%s: kv_lora_rank must be > 0", p);
    CHECK_HP(hp->qk_rope >= 2 && hp->qk_rope % 2 == 0,
             "%s: rope dimension %d must be even and > 0", p, hp->qk_rope);
    CHECK_HP(hp->qk_nope >= 1, "%s: key_length%s (%d) must exceed the rope dimension (%d)", p,
             hp->legacy_kvb ? "" : "_mla", hp->qk_nope + hp->qk_rope, hp->qk_rope);
    CHECK_HP(hp->v_head >= 1, "%s: value_length%s must be > 0", p, hp->legacy_kvb ? "" : "_mla");
    CHECK_HP(hp->n_dense <= hp->n_layer, "%s: leading_dense_block_count %d > block_count %d", p,
             hp->n_dense, hp->n_layer);
    CHECK_HP(hp->n_dense == 0 || hp->n_ff >= 1, "%s: dense layers need feed_forward_length", p);
    if (hp->n_dense < hp->n_layer) {
        CHECK_HP(hp->n_expert >= 1 && hp->n_expert_used >= 1 && hp->n_expert_used <= hp->n_expert,
                 "%s: expert_used_count %d must be in 1..expert_count (%d)", p, hp->n_expert_used,
                 hp->n_expert);
        CHECK_HP(hp->n_ff_exp >= 1, "%s: expert_feed_forward_length must be > 0", p);
        CHECK_HP(hp->n_expert <= MAX_EXPERTS && hp->n_expert_used <= MAX_USED && hp->n_group <= MAX_USED,
                 "%s: %d experts (%d used, %d groups) exceed fimd's limits (%d, %d, %d)", p,
                 hp->n_expert, hp->n_expert_used, hp->n_group, MAX_EXPERTS, MAX_USED, MAX_USED);
        CHECK_HP(hp->gating == 1 || hp->gating == 2, "%s: expert_gating_func %d is unknown", p,
                 hp->gating);
        if (hp->n_group > 1) {
            CHECK_HP(hp->n_expert % hp->n_group == 0 && hp->n_group < hp->n_expert &&
                         hp->n_group_used > 0 && hp->n_group_used < hp->n_group,
                     "%s: expert groups %d/%d do not fit %d experts", p, hp->n_group_used,
                     hp->n_group, hp->n_expert);
            CHECK_HP(hp->n_expert / hp->n_group >= 2, "%s: expert groups need 2+ experts each", p);
            CHECK_HP(hp->n_expert_used <= hp->n_group_used * (hp->n_expert / hp->n_group),
                     "%s: expert_used_count exceeds the experts of the used groups", p);
        }
    }
    return 0;
}

/* ---- weights ---- */

static const char *dims_str(const int64_t *ne, int n, char *buf, size_t cap)
{
    int o = snprintf(buf, cap, "{");
    for (int i = 0; i < n && o < (int)cap; i++)
        o += snprintf(buf + o, cap - (size_t)o, i ? ", %lld" : "%lld", (long long)ne[i]);
    snprintf(buf + o, cap - (size_t)o, "}");
    return buf;
}

/* Bind tensor `name`; with required=false a missing tensor leaves w->data NULL. */
static int bind(const model *m, wt *w, const char *name, int n_dims, int64_t ne0, int64_t ne1,
                int64_t ne2, bool required, model_err *err)
{
    const gguf_tensor *t = model__gguf_tensor(m->g, name);
    if (!t) {
        if (!required) return 0;
        return model__fail(err, "%s: tensor '%s' is missing", m->g->path, name);
    }
    int64_t want[4] = {ne0, ne1, ne2, 1};
    if (t->n_dims > n_dims && !(t->n_dims == n_dims + 1 && t->ne[n_dims] == 1)) goto bad;
    for (int d = 0; d < 4; d++)
        if (t->ne[d] != want[d]) goto bad;
    w->type = t->type;
    w->ne[0] = ne0, w->ne[1] = ne1, w->ne[2] = ne2;
    w->data = t->data;
    w->row_bytes = model__row_bytes(t->type, ne0);
    w->mat_bytes = w->row_bytes * (size_t)ne1;
    return 0;
bad : {
    char a[96], b[96];
    return model__fail(err, "%s: tensor '%s' has shape %s, expected %s", m->g->path, name,
                       dims_str(t->ne, t->n_dims, a, sizeof a), dims_str(want, n_dims, b, sizeof b));
}
}

static int bind_f32(const model *m, wt *w, const char *name, int64_t n, model_err *err)
{
    if (bind(m, w, name, 1, n, 1, 1, true, err)) return -1;
    if (w->type != MODEL_TYPE_F32)
        return model__fail(err, "%s: tensor '%s' must be F32, found %s", m->g->path, name,
                           model_type_name(w->type));
    return 0;
}

static void *own(model *m, size_t bytes)
{
    void *p = calloc(1, bytes);
    void **o = realloc(m->owned, sizeof(void *) * (size_t)(m->n_owned + 1));
    if (!p || !o) abort();
    m->owned = o;
    m->owned[m->n_owned++] = p;
    return p;
}

static void make_f32(wt *w, const float *data, int64_t ne0, int64_t ne1, int64_t ne2)
{
    w->type = MODEL_TYPE_F32;
    w->ne[0] = ne0, w->ne[1] = ne1, w->ne[2] = ne2;
    w->data = (const uint8_t *)data;
    w->row_bytes = (size_t)ne0 * 4;
    w->mat_bytes = w->row_bytes * (size_t)ne1;
}

/* Legacy files carry kv_b [R -> H*(Dn+Dv)]; rebuild k_b (transposed per head) and v_b from it so
 * the absorbed attention serves both forms. */
static int derive_kvb(model *m, layer *L, const char *name, model_err *err)
{
    const model_hparams *hp = &m->hp;
    int H = hp->n_head, R = hp->kv_lora_rank, Dn = hp->qk_nope, Dv = hp->v_head;
    wt kvb;
    if (bind(m, &kvb, name, 2, R, (int64_t)H * (Dn + Dv), 1, true, err)) return -1;
    float *full = malloc(sizeof(float) * (size_t)R * (size_t)H * (size_t)(Dn + Dv));
    if (!full) return model__fail(err, "out of memory");
    model__dequant(kvb.type, kvb.data, full, (int64_t)R * H * (Dn + Dv));
    float *kb = own(m, sizeof(float) * (size_t)H * R * Dn);
    float *vb = own(m, sizeof(float) * (size_t)H * Dv * R);
    for (int h = 0; h < H; h++) {
        const float *blk = full + (size_t)h * (Dn + Dv) * R; /* rows: Dn of W_UK_h, Dv of W_UV_h */
        for (int c = 0; c < R; c++)
            for (int d = 0; d < Dn; d++) kb[((size_t)h * R + c) * Dn + d] = blk[(size_t)d * R + c];
        memcpy(vb + (size_t)h * Dv * R, blk + (size_t)Dn * R, sizeof(float) * (size_t)Dv * R);
    }
    free(full);
    make_f32(&L->wk_b, kb, Dn, R, H);
    make_f32(&L->wv_b, vb, R, Dv, H);
    return 0;
}

static int bind_layer(model *m, int il, model_err *err)
{
    const model_hparams *hp = &m->hp;
    layer *L = &m->layers[il];
    int64_t D = hp->n_embd, H = hp->n_head, Dk = hp->qk_nope + hp->qk_rope, R = hp->kv_lora_rank;
    char n[96];
#define NM(s) (snprintf(n, sizeof n, "blk.%d." s ".weight", il), n)
    if (bind_f32(m, &L->attn_norm, NM("attn_norm"), D, err)) return -1;
    if (hp->q_lora_rank > 0) {
        int64_t Q = hp->q_lora_rank;
        if (bind(m, &L->wq_a, NM("attn_q_a"), 2, D, Q, 1, true, err) ||
            bind_f32(m, &L->q_a_norm, NM("attn_q_a_norm"), Q, err) ||
            bind(m, &L->wq_b, NM("attn_q_b"), 2, Q, H * Dk, 1, true, err))
            return -1;
    } else if (bind(m, &L->wq, NM("attn_q"), 2, D, H * Dk, 1, true, err)) {
        return -1;
    }
    if (bind(m, &L->wkv_a, NM("attn_kv_a_mqa"), 2, D, R + hp->qk_rope, 1, true, err) ||
        bind_f32(m, &L->kv_a_norm, NM("attn_kv_a_norm"), R, err) ||
        bind(m, &L->wo, NM("attn_output"), 2, H * hp->v_head, D, 1, true, err) ||
        bind_f32(m, &L->ffn_norm, NM("ffn_norm"), D, err))
        return -1;
    if (hp->legacy_kvb) {
        if (derive_kvb(m, L, NM("attn_kv_b"), err)) return -1;
    } else if (bind(m, &L->wk_b, NM("attn_k_b"), 3, hp->qk_nope, R, H, true, err) ||
               bind(m, &L->wv_b, NM("attn_v_b"), 3, R, hp->v_head, H, true, err)) {
        return -1;
    }
    if (il < hp->n_dense)
        return bind(m, &L->gate, NM("ffn_gate"), 2, D, hp->n_ff, 1, true, err) ||
                       bind(m, &L->up, NM("ffn_up"), 2, D, hp->n_ff, 1, true, err) ||
                       bind(m, &L->down, NM("ffn_down"), 2, hp->n_ff, D, 1, true, err)
                   ? -1
                   : 0;
    int64_t E = hp->n_expert, Fe = hp->n_ff_exp, Fs = Fe * hp->n_shared;
    if (bind(m, &L->router, NM("ffn_gate_inp"), 2, D, E, 1, true, err) ||
        bind(m, &L->gate_exps, NM("ffn_gate_exps"), 3, D, Fe, E, true, err) ||
        bind(m, &L->up_exps, NM("ffn_up_exps"), 3, D, Fe, E, true, err) ||
        bind(m, &L->down_exps, NM("ffn_down_exps"), 3, Fe, D, E, true, err))
        return -1;
    if (L->router.type != MODEL_TYPE_F32)
        return model__fail(err, "%s: router '%s' must be F32", m->g->path, NM("ffn_gate_inp"));
    if (model__gguf_tensor(m->g, NM("exp_probs_b.bias")))
        return model__fail(err, "%s: expert bias (DeepSeek-V3 routing) is not supported", m->g->path);
    if (hp->n_shared > 0 &&
        (bind(m, &L->gate_sh, NM("ffn_gate_shexp"), 2, D, Fs, 1, true, err) ||
         bind(m, &L->up_sh, NM("ffn_up_shexp"), 2, D, Fs, 1, true, err) ||
         bind(m, &L->down_sh, NM("ffn_down_shexp"), 2, Fs, D, 1, true, err)))
        return -1;
#undef NM
    return 0;
}

static int bind_all(model *m, model_err *err)
{
    const model_hparams *hp = &m->hp;
    if (bind(m, &m->tok_embd, "token_embd.weight", 2, hp->n_embd, hp->n_vocab, 1, true, err) ||
        bind_f32(m, &m->out_norm, "output_norm.weight", hp->n_embd, err) ||
        bind(m, &m->output, "output.weight", 2, hp->n_embd, hp->n_vocab, 1, false, err))
        return -1;
    if (!m->output.data) m->output = m->tok_embd; /* tied head */
    m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->layers) return model__fail(err, "out of memory");
    for (int il = 0; il < hp->n_layer; il++)
        if (bind_layer(m, il, err)) return -1;
    return 0;
}

model *model_load(const char *path, model_err *err)
{
    model *m = calloc(1, sizeof *m);
    if (!m) {
        model__fail(err, "out of memory");
        return NULL;
    }
    m->k = model__kernels();
    m->g = model_gguf_open(path, err);
    if (!m->g || load_hparams(m, err) || check_hparams(m, err)) goto fail;
    m->vocab = model_vocab_load(m->g, err);
    if (!m->vocab) goto fail;
    uint32_t nv = 0;
    int r = model__gguf_u32(m->g, "deepseek2.vocab_size", &nv, err);
    if (r < 0) goto fail;
    m->hp.n_vocab = r == 0 ? (int)nv : model_vocab_size(m->vocab);
    if (m->hp.n_vocab != model_vocab_size(m->vocab)) {
        model__fail(err, "%s: vocab_size %d differs from the tokenizer's %d tokens", path,
                    m->hp.n_vocab, model_vocab_size(m->vocab));
        goto fail;
    }
    if (bind_all(m, err)) goto fail;
    return m;
fail:
    model_free(m);
    return NULL;
}

void model_free(model *m)
{
    if (!m) return;
    for (int i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    free(m->layers);
    free(m->scratch);
    free(m->qbuf);
    model_vocab_free(m->vocab);
    model_gguf_close(m->g);
    free(m);
}

const model_hparams *model_get_hparams(const model *m)
{
    return &m->hp;
}
const model_vocab *model_get_vocab(const model *m)
{
    return m->vocab;
}
const model_gguf *model_get_gguf(const model *m)
{
    return m->g;
}

size_t model_cache_bytes_per_token(const model *m)
{
    return (size_t)(m->hp.kv_lora_rank + m->hp.qk_rope) * (size_t)m->hp.n_layer * sizeof(float);
}

/* ---- latent cache ---- */

model_cache *model_cache_new(const model *m, model_err *err)
{
    model_cache *c = calloc(1, sizeof *c);
    if (c) c->rows = calloc((size_t)m->hp.n_layer, sizeof *c->rows);
    if (!c || !c->rows) {
        free(c);
        model__fail(err, "out of memory");
        return NULL;
    }
    c->m = m;
    c->row = m->hp.kv_lora_rank + m->hp.qk_rope;
    return c;
}

void model_cache_free(model_cache *c)
{
    if (!c) return;
    for (int il = 0; il < c->m->hp.n_layer; il++) free(c->rows[il]);
    free(c->rows);
    free(c);
}

int model_cache_len(const model_cache *c)
{
    return c->len;
}

void model_cache_truncate(model_cache *c, int n)
{
    if (n >= 0 && n < c->len) c->len = n;
}

size_t model_cache_bytes(const model_cache *c)
{
    return (size_t)c->cap * (size_t)c->row * sizeof(float) * (size_t)c->m->hp.n_layer;
}

static int cache_reserve(model_cache *c, int need, model_err *err)
{
    if (need <= c->cap) return 0;
    if (need > c->m->hp.n_ctx_train)
        return model__fail(err, "context of %d tokens exceeds the model's %d", need,
                           c->m->hp.n_ctx_train);
    int cap = c->cap ? c->cap : 64;
    while (cap < need) cap *= 2;
    if (cap > c->m->hp.n_ctx_train) cap = c->m->hp.n_ctx_train;
    for (int il = 0; il < c->m->hp.n_layer; il++) {
        float *p = realloc(c->rows[il], sizeof(float) * (size_t)cap * (size_t)c->row);
        if (!p) return model__fail(err, "out of memory for a %d-token cache", cap);
        c->rows[il] = p;
    }
    c->cap = cap;
    return 0;
}

/* ---- building blocks ---- */

/* y[n] = W[n] . x for the rows of matrix `e` of w (expert or head); x is quantized to the
 * weight's vec_dot type once, as llama.cpp does. */
static void matvec(model *m, const wt *w, int e, const float *x, float *y)
{
    const type_traits *tt = model__type(w->type);
    int K = (int)w->ne[0];
    const void *xq = x;
    if (tt->vec_dot_type != MODEL_TYPE_F32) {
        model__quant(tt->vec_dot_type, x, m->qbuf, K);
        xq = m->qbuf;
    }
    const uint8_t *rows = w->data + (size_t)e * w->mat_bytes;
    vec_dot_fn dot = m->k->vec_dot[w->type];
    for (int64_t n = 0; n < w->ne[1]; n++) y[n] = dot(K, rows + (size_t)n * w->row_bytes, xq);
}

static void rmsnorm(const float *x, const wt *w, float eps, int n, float *y)
{
    double sum = 0;
    for (int i = 0; i < n; i++) sum += (double)(x[i] * x[i]);
    float scale = 1.0f / sqrtf((float)(sum / n) + eps);
    const float *g = (const float *)w->data;
    for (int i = 0; i < n; i++) y[i] = (x[i] * scale) * g[i];
}

static void softmax(float *x, int n)
{
    float mx = -INFINITY;
    for (int i = 0; i < n; i++) mx = fmaxf(mx, x[i]);
    double sum = 0;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    float inv = (float)(1.0 / sum);
    for (int i = 0; i < n; i++) x[i] *= inv;
}

static float silu(float x)
{
    return x / (1.0f + expf(-x));
}

/* Rotate adjacent pairs (ggml NORMAL mode) of x[n_rot] for position pos, YaRN-blended angles
 * built by repeated multiplication in float as ggml does. */
static void rope(const model *m, float *x, int n_rot, int pos)
{
    float theta_scale = powf(m->hp.rope_base, -2.0f / (float)n_rot);
    float theta = (float)pos;
    for (int i0 = 0; i0 < n_rot; i0 += 2) {
        float t_extrap = theta, t_interp = m->freq_scale * t_extrap, th = t_interp;
        if (m->ext_factor != 0) {
            float y = ((float)(i0 / 2) - m->yarn_low) / fmaxf(0.001f, m->yarn_high - m->yarn_low);
            float mix = (1 - fminf(1, fmaxf(0, y))) * m->ext_factor;
            th = t_interp * (1 - mix) + t_extrap * mix;
        }
        float c = cosf(th) * m->rope_mag, s = sinf(th) * m->rope_mag;
        float a = x[i0], b = x[i0 + 1];
        x[i0] = a * c - b * s;
        x[i0 + 1] = a * s + b * c;
        theta *= theta_scale;
    }
}

/* Scratch layout for a batch of T tokens (floats). */
typedef struct bufs {
    float *x, *a, *q, *qa, *kv, *o, *h, *f, *out, *t1, *t2, *t3, *att, *probs;
} bufs;

static size_t max3(size_t a, size_t b, size_t c)
{
    size_t m = a > b ? a : b;
    return m > c ? m : c;
}

static int reserve_scratch(model *m, int T, int n_ctx, bufs *b, model_err *err)
{
    const model_hparams *hp = &m->hp;
    size_t D = (size_t)hp->n_embd, H = (size_t)hp->n_head, Dk = (size_t)(hp->qk_nope + hp->qk_rope);
    size_t R = (size_t)hp->kv_lora_rank, row = R + (size_t)hp->qk_rope;
    size_t wide = max3((size_t)hp->n_ff, (size_t)hp->n_ff_exp * (size_t)(hp->n_shared ? hp->n_shared : 1),
                       (size_t)hp->q_lora_rank);
    wide = max3(wide, (size_t)hp->n_ff_exp, H * (size_t)hp->v_head);
    wide = max3(wide, row, D);
    size_t sizes[] = {T * D, T * D, T * H * Dk, H * row, T * row, T * H * (size_t)hp->v_head, T * D,
                      T * D, T * D, wide, wide, wide, (size_t)n_ctx, (size_t)hp->n_expert + 1};
    size_t total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) total += (sizes[i] + 15) & ~(size_t)15;
    if (total > m->scratch_len) {
        free(m->scratch);
        m->scratch = malloc(total * sizeof(float));
        m->scratch_len = m->scratch ? total : 0;
        if (!m->scratch) return model__fail(err, "out of memory for scratch");
    }
    if (!m->qbuf) {
        size_t kmax = max3(wide, (size_t)hp->n_ff, D) + 256;
        m->qbuf = malloc(kmax * sizeof(float));
        if (!m->qbuf) return model__fail(err, "out of memory");
    }
    float **slots[] = {&b->x, &b->a,  &b->q,  &b->qa, &b->kv,  &b->o,   &b->h,
                       &b->f, &b->out, &b->t1, &b->t2, &b->t3, &b->att, &b->probs};
    float *p = m->scratch;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        *slots[i] = p;
        p += (sizes[i] + 15) & ~(size_t)15;
    }
    return 0;
}

/* ---- attention ---- */

static void attention(model *m, model_cache *c, const layer *L, int il, int T, int n_past, bufs *b)
{
    const model_hparams *hp = &m->hp;
    int D = hp->n_embd, H = hp->n_head, Dn = hp->qk_nope, Dr = hp->qk_rope, R = hp->kv_lora_rank;
    int Dk = Dn + Dr, Dv = hp->v_head, row = R + Dr;
    for (int t = 0; t < T; t++) {
        const float *a = b->a + (size_t)t * D;
        float *q = b->q + (size_t)t * H * Dk;
        if (hp->q_lora_rank > 0) {
            matvec(m, &L->wq_a, 0, a, b->t1);
            rmsnorm(b->t1, &L->q_a_norm, hp->rms_eps, hp->q_lora_rank, b->t1);
            matvec(m, &L->wq_b, 0, b->t1, q);
        } else {
            matvec(m, &L->wq, 0, a, q);
        }
        float *kv = b->kv + (size_t)t * row;
        matvec(m, &L->wkv_a, 0, a, kv);
        float *dst = c->rows[il] + (size_t)(n_past + t) * row;
        rmsnorm(kv, &L->kv_a_norm, hp->rms_eps, R, dst); /* the norm covers the latent only */
        memcpy(dst + R, kv + R, sizeof(float) * (size_t)Dr);
        rope(m, dst + R, Dr, n_past + t);
        for (int h = 0; h < H; h++) rope(m, q + (size_t)h * Dk + Dn, Dr, n_past + t);
    }
    const float *rows = c->rows[il];
    for (int t = 0; t < T; t++) {
        int n_kv = n_past + t + 1; /* causal: positions 0..p */
        const float *q = b->q + (size_t)t * H * Dk;
        float *o = b->o + (size_t)t * H * Dv;
        for (int h = 0; h < H; h++) {
            float *qa = b->qa + (size_t)h * row;
            matvec(m, &L->wk_b, h, q + (size_t)h * Dk, qa);          /* absorb W_UK into q */
            memcpy(qa + R, q + (size_t)h * Dk + Dn, sizeof(float) * (size_t)Dr);
            for (int s = 0; s < n_kv; s++) {
                const float *k = rows + (size_t)s * row;
                float dot = 0;
                for (int i = 0; i < row; i++) dot += qa[i] * k[i];
                b->att[s] = dot * hp->kq_scale;
            }
            softmax(b->att, n_kv);
            float *ol = b->t2;
            memset(ol, 0, sizeof(float) * (size_t)R);
            for (int s = 0; s < n_kv; s++) {
                const float *k = rows + (size_t)s * row, p = b->att[s];
                for (int i = 0; i < R; i++) ol[i] += p * k[i];
            }
            matvec(m, &L->wv_b, h, ol, o + (size_t)h * Dv);           /* W_UV after attention */
        }
        matvec(m, &L->wo, 0, o, b->out + (size_t)t * D);
    }
}

/* ---- feed-forward ---- */

static void swiglu(model *m, const wt *g, const wt *u, const wt *d, int e, const float *f,
                   float *out, bufs *b)
{
    int F = (int)g->ne[1];
    matvec(m, g, e, f, b->t1);
    matvec(m, u, e, f, b->t2);
    for (int i = 0; i < F; i++) b->t1[i] = silu(b->t1[i]) * b->t2[i];
    matvec(m, d, e, b->t1, out);
}

/* Top-k of score[0..n) into idx (descending; the lower index wins ties). */
static void top_k(const float *score, int n, int k, int *idx)
{
    for (int j = 0; j < k; j++) {
        int best = -1;
        for (int i = 0; i < n; i++) {
            bool taken = false;
            for (int q = 0; q < j; q++) taken |= idx[q] == i;
            if (!taken && (best < 0 || score[i] > score[best])) best = i;
        }
        idx[j] = best;
    }
}

static void moe(model *m, const layer *L, const float *f, float *out, bufs *b)
{
    const model_hparams *hp = &m->hp;
    int D = hp->n_embd, E = hp->n_expert, K = hp->n_expert_used;
    float *p = b->probs, score[MAX_EXPERTS];
    int top[MAX_USED], gidx[MAX_USED];
    matvec(m, &L->router, 0, f, p);
    if (hp->gating == 2)
        for (int e = 0; e < E; e++) p[e] = 1.0f / (1.0f + expf(-p[e]));
    else
        softmax(p, E);
    memcpy(score, p, sizeof(float) * (size_t)E);
    if (hp->n_group > 1) { /* llama.cpp: a group scores the sum of its two best experts */
        int G = hp->n_group, per = E / G;
        float gs[MAX_USED];
        for (int gi = 0; gi < G; gi++) {
            int two[2];
            top_k(p + gi * per, per, 2, two);
            gs[gi] = p[gi * per + two[0]] + p[gi * per + two[1]];
        }
        top_k(gs, G, hp->n_group_used, gidx);
        for (int gi = 0; gi < G; gi++) {
            bool keep = false;
            for (int j = 0; j < hp->n_group_used; j++) keep |= gidx[j] == gi;
            if (!keep)
                for (int i = 0; i < per; i++) score[gi * per + i] = -INFINITY;
        }
    }
    top_k(score, E, K, top);
    float w[MAX_USED], wsum = 0;
    for (int j = 0; j < K; j++) wsum += w[j] = p[top[j]];
    for (int j = 0; j < K; j++) {
        if (hp->weights_norm) w[j] /= fmaxf(wsum, 6.103515625e-5f);
        if (hp->weights_scale != 0 && hp->weights_scale != 1) w[j] *= hp->weights_scale;
    }
    float *acc = b->t3, *eo = out; /* eo: each expert's output, in the caller's buffer */
    for (int j = 0; j < K; j++) {
        swiglu(m, &L->gate_exps, &L->up_exps, &L->down_exps, top[j], f, eo, b);
        for (int i = 0; i < D; i++) acc[i] = j ? acc[i] + eo[i] * w[j] : eo[i] * w[j];
    }
    if (hp->n_shared > 0) {
        swiglu(m, &L->gate_sh, &L->up_sh, &L->down_sh, 0, f, eo, b);
        for (int i = 0; i < D; i++) out[i] = acc[i] + eo[i];
    } else {
        memcpy(out, acc, sizeof(float) * (size_t)D);
    }
}

/* ---- forward ---- */

int model_eval(model *m, model_cache *c, const int32_t *tokens, int n, float *logits,
               enum model_logits_mode mode, const volatile int *cancel, model_err *err)
{
    const model_hparams *hp = &m->hp;
    int D = hp->n_embd, n_past = c->len;
    if (n <= 0) return model__fail(err, "no tokens to evaluate");
    if (c->m != m) return model__fail(err, "cache belongs to another model");
    for (int t = 0; t < n; t++)
        if (tokens[t] < 0 || tokens[t] >= hp->n_vocab)
            return model__fail(err, "token id %d is outside the vocabulary (0..%d)", tokens[t],
                               hp->n_vocab - 1);
    bufs b;
    if (cache_reserve(c, n_past + n, err) || reserve_scratch(m, n, n_past + n, &b, err)) return -1;
    for (int t = 0; t < n; t++)
        model__dequant(m->tok_embd.type, m->tok_embd.data + (size_t)tokens[t] * m->tok_embd.row_bytes,
                       b.x + (size_t)t * D, D);
    for (int il = 0; il < hp->n_layer; il++) {
        if (cancel && *cancel) { /* c->len untouched: the partial rows are ignored */
            model__fail(err, "cancelled");
            return -2;
        }
        const layer *L = &m->layers[il];
        for (int t = 0; t < n; t++)
            rmsnorm(b.x + (size_t)t * D, &L->attn_norm, hp->rms_eps, D, b.a + (size_t)t * D);
        attention(m, c, L, il, n, n_past, &b);
        for (int t = 0; t < n; t++) {
            float *h = b.h + (size_t)t * D, *f = b.f + (size_t)t * D, *x = b.x + (size_t)t * D;
            for (int i = 0; i < D; i++) h[i] = b.out[(size_t)t * D + i] + x[i];
            rmsnorm(h, &L->ffn_norm, hp->rms_eps, D, f);
            float *ff = b.out + (size_t)t * D;
            if (il < hp->n_dense)
                swiglu(m, &L->gate, &L->up, &L->down, 0, f, ff, &b);
            else
                moe(m, L, f, ff, &b);
            for (int i = 0; i < D; i++) x[i] = ff[i] + h[i];
        }
    }
    c->len = n_past + n;
    if (mode == MODEL_LOGITS_NONE) return 0;
    int first = mode == MODEL_LOGITS_ALL ? 0 : n - 1;
    for (int t = first; t < n; t++) {
        rmsnorm(b.x + (size_t)t * D, &m->out_norm, hp->rms_eps, D, b.a);
        matvec(m, &m->output, 0, b.a, logits + (size_t)(t - first) * hp->n_vocab);
    }
    return 0;
}
