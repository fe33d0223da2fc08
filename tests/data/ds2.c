/* model/ds2.c — the deepseek2 model: hyper-parameters from GGUF keys, weights bound by name with
 * type and shape checked, the latent KV cache, and the forward pass as llama.cpp computes it
 * (MLA in the absorbed form, DeepSeekMoE routing, YaRN RoPE). See shared deepseek2-spec.md. */
#define _GNU_SOURCE
#include "model_internal.h"
#include "base/base.h"

#include <cblas.h>
#include <sys/mman.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { MAX_EXPERTS = 1024, MAX_USED = 64 }; /* routing buffers live on the stack */

/* One weight: borrowed from the mmap (or owned, for the k_b/v_b derived from a legacy kv_b). */
typedef struct wt {
    int type;
    int64_t ne[3]; /* ne0 = input features (contiguous), ne1 = outputs, ne2 = experts/heads */
    const uint8_t *data;
    size_t row_bytes; /* bytes of one ne0 row */
    size_t mat_bytes; /* bytes of one ne0 x ne1 matrix */
} wt;

typedef struct layer {
    wt attn_norm;                     /* [D] */
    wt wq;                            /* Lite: [D -> H*Dk] */
    wt wq_a, q_a_norm, wq_b;          /* full: [D -> Q], [Q], [Q -> H*Dk] */
    wt wkv_a;                         /* [D -> R+Dr]: latent first, rope part last */
    wt kv_a_norm;                     /* [R] */
    wt wk_b;                          /* per head h: [Dn -> R] (W_UK_h^T) */
    wt wv_b;                          /* per head h: [R -> Dv] */
    wt wo;                            /* [H*Dv -> D] */
    wt ffn_norm;                      /* [D] */
    wt gate, up, down;                /* dense: [D -> F], [D -> F], [F -> D] */
    wt router;                        /* MoE: [D -> E], F32 */
    wt gate_exps, up_exps, down_exps; /* [D -> Fe] x E, [Fe -> D] x E */
    wt gate_sh, up_sh, down_sh;       /* [D -> Fe*S], [Fe*S -> D] */
} layer;

struct model {
    model_gguf *g;
    model_vocab *vocab;
    model_hparams hp;
    const model_kernels *k;
    float rope_mag; /* 1 for every DeepSeek file (the YaRN correction lives in kq_scale) */
    float yarn_low, yarn_high, freq_scale, ext_factor;
    wt tok_embd; /* [D] x V */
    wt out_norm; /* [D] */
    wt output;   /* [D -> V] */
    layer *layers;
    void **owned; /* buffers for derived legacy tensors */
    int n_owned;
    int n_threads;
    model_pool *pool; /* created at the first evaluation */
    /* scratch, grown on demand, reused across calls */
    float *scratch;
    size_t scratch_len;
    uint8_t *qbuf; /* activation rows in a vec_dot type */
    size_t qbuf_len;
    float *att; /* each thread's attention scratch */
    size_t att_len, att_stride;
    bool locked;    /* the weights are locked in memory (mlock) */
    bool use_sgemm; /* prefill through dequantized tiles + OpenBLAS (FIMD_SGEMM=1 enables) */
    float *xr;      /* activations rounded to the vec_dot type, as f32 (sgemm path) */
    size_t xr_len;
    float *tiles; /* each thread's dequantized weight tile */
    size_t tiles_len, tile_stride;
};

struct model_cache {
    const model *m;
    int len, cap;
    int row;      /* R + Dr */
    float **rows; /* [n_layer] -> [cap][R | Dr]: normed c_kv, then roped k_pe */
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
    if (r == 0 && v > (1u << 30))
        return model__fail(err, "%s: key '%s' = %u is absurd", g->path, key, v);
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
        m->rope_mag =
            get_mscale(factor, mscale_rope) / get_mscale(factor, log_mul) * attn_factor_key;
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
        return model__fail(err,
                           "%s: required key 'deepseek2.attention.layer_norm_rms_epsilon' is "
                           "missing",
                           g->path);
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
    CHECK_HP(hp->n_layer >= 1 && hp->n_layer <= 1024, "%s: block_count %d is invalid", p,
             hp->n_layer);
    CHECK_HP(hp->n_embd >= 1 && hp->n_head >= 1, "%s: embedding_length and head_count must be > 0",
             p);
    CHECK_HP(hp->kv_lora_rank >= 1, "%s: kv_lora_rank must be > 0", p);
    CHECK_HP(hp->qk_rope >= 2 && hp->qk_rope % 2 == 0, "%s: rope dimension %d must be even and > 0",
             p, hp->qk_rope);
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
        CHECK_HP(hp->n_expert <= MAX_EXPERTS && hp->n_expert_used <= MAX_USED &&
                     hp->n_group <= MAX_USED,
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
                       dims_str(t->ne, t->n_dims, a, sizeof a),
                       dims_str(want, n_dims, b, sizeof b));
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
    void *p = base_xcalloc(1, bytes);
    m->owned = base_xrealloc(m->owned, sizeof(void *) * (size_t)(m->n_owned + 1));
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
        return model__fail(err, "%s: expert bias (DeepSeek-V3 routing) is not supported",
                           m->g->path);
    if (hp->n_shared > 0 && (bind(m, &L->gate_sh, NM("ffn_gate_shexp"), 2, D, Fs, 1, true, err) ||
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

/* Keep the weights resident: memory reclaim would otherwise drop the pages of experts that were
 * not routed for a while (the kernel treats them as cold file pages), and the next token that
 * routes to them waits for the disk. Locking needs the privilege or a large enough memlock limit;
 * without it fimd runs unlocked. FIMD_MLOCK=0 turns it off. */
static void lock_weights(model *m)
{
    const char *e = getenv("FIMD_MLOCK");
    if (e && !strcmp(e, "0")) return;
    m->locked = mlock(m->g->base, m->g->size) == 0;
}

bool model_weights_locked(const model *m)
{
    return m->locked;
}

model *model_load(const char *path, model_err *err)
{
    model *m = calloc(1, sizeof *m);
    if (!m) {
        model__fail(err, "out of memory");
        return NULL;
    }
    m->k = model__kernels();
    model_set_threads(m, 0);
    /* Off by default: sgemm sums in another order than the int8 kernels, so logits would depend on
     * how a prompt was chunked through the cache (and on random models such differences grow). */
    const char *sg = getenv("FIMD_SGEMM");
    m->use_sgemm = sg && !strcmp(sg, "1");
    openblas_set_num_threads(1); /* our pool splits the work; OpenBLAS must not add threads */
    m->g = model__gguf_open_resident(path, err);
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
    lock_weights(m);
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
    free(m->att);
    free(m->tiles);
    free(m->xr);
    model__pool_free(m->pool);
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

void model_set_threads(model *m, int n)
{
    if (n <= 0) n = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    if (n == m->n_threads) return;
    model__pool_free(m->pool);
    m->pool = NULL;
    m->n_threads = n;
    m->tile_stride = 0; /* per-thread tiles are re-carved for the new count */
}

int model_get_threads(const model *m)
{
    return m->n_threads;
}

size_t model_weight_bytes_per_token(const model *m)
{
    const model_hparams *hp = &m->hp;
    size_t total = 0, experts = 0;
    static const char sfx[] = "_exps.weight"; /* names in the mmap are not NUL-terminated */
    for (uint64_t i = 0; i < m->g->n_tensors; i++) {
        const gguf_tensor *t = &m->g->tensors[i];
        bool routed = t->name.n > sizeof sfx &&
                      !memcmp(t->name.p + t->name.n - (sizeof sfx - 1), sfx, sizeof sfx - 1);
        if (routed)
            experts += t->nbytes;
        else if (!model__gguf_str_eq(t->name, "token_embd.weight") ||
                 m->output.data == m->tok_embd.data)
            total += t->nbytes;
    }
    total += m->tok_embd.row_bytes;
    if (hp->n_expert > 0) total += experts / (size_t)hp->n_expert * (size_t)hp->n_expert_used;
    return total;
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

/* Bytes of one activation row of K elements in a weight's vec_dot type. */
static size_t act_row_bytes(const wt *w)
{
    const type_traits *tt = model__type(w->type);
    return model__row_bytes(tt->vec_dot_type, w->ne[0]);
}

/* Grow-only buffer. */
static void *grow(void **p, size_t *cap, size_t need)
{
    if (need > *cap) {
        free(*p);
        *p = base_xmalloc(need);
        *cap = need;
    }
    return *p;
}

/* One activation row in a vec_dot type: the kernel table's fast quantizer when it has one (same
 * bytes as the reference). */
static void quant_act(const model *m, int type, const float *x, void *dst, int64_t n)
{
    if (!m->k->quant_act || !m->k->quant_act(type, x, dst, n)) model__quant(type, x, dst, n);
}

/* One product in a batch: weight matrix w (expert e) times T activation rows. */
typedef struct mm_op {
    const wt *w;
    int e, T;
    const float *X; /* T rows, ldx floats apart */
    size_t ldx;
    float *Y; /* T rows, ldy floats apart */
    size_t ldy;
    /* filled by matmul_ops */
    const uint8_t
        *xq; /* X in the weight's vec_dot type (or X itself for f32), xstride bytes apart */
    size_t xstride;
    int row0;                   /* first row of this product in the batch's joint row range */
    const struct mm_op *shares; /* an earlier product whose quantized input this one reuses */
} mm_op;

typedef struct mm_batch {
    model *m;
    const mm_op *ops;
    int n;
} mm_batch;

enum { MM_TOKEN_TILE = 16 };

/* Rows [n0, n1) of one product. */
static void mm_op_rows(const model *m, const mm_op *o, int n0, int n1)
{
    const wt *w = o->w;
    int K = (int)w->ne[0];
    vec_dot_fn dot = m->k->vec_dot[w->type];
    vec_dot4_fn dot4 = m->k->vec_dot4[w->type];
    vec_dotn_fn dotn = m->k->vec_dotn[w->type];
    /* pairs of rows only when the rows are read again for later token tiles: streaming two rows
     * at once from memory measured 2-3x slower here than one (decode) */
    vec_dotn2_fn dotn2 = dotn && o->T > MM_TOKEN_TILE / 2 ? m->k->vec_dotn2[w->type] : NULL;
    const uint8_t *rows = w->data + (size_t)o->e * w->mat_bytes;
    /* token tiles: a tile of weight rows stays in cache while it meets every token */
    for (int t0 = 0; t0 < o->T; t0 += MM_TOKEN_TILE) {
        int t1 = t0 + MM_TOKEN_TILE < o->T ? t0 + MM_TOKEN_TILE : o->T;
        for (int n = n0; n < n1; n++) {
            const uint8_t *row = rows + (size_t)n * w->row_bytes;
            int tk = t0;
            if (dotn2 && n + 1 < n1) { /* two weight rows share the activations' loads */
                for (; tk < t1; tk += 8) {
                    int c = t1 - tk < 8 ? t1 - tk : 8;
                    float r[16];
                    dotn2(K, row, w->row_bytes, o->xq + (size_t)tk * o->xstride, o->xstride, r, c);
                    for (int q = 0; q < c; q++) {
                        o->Y[(size_t)(tk + q) * o->ldy + (size_t)n] = r[q];
                        o->Y[(size_t)(tk + q) * o->ldy + (size_t)n + 1] = r[8 + q];
                    }
                }
                n++;
                continue;
            }
            if (dotn) /* bitwise the same sums as dot: batch size never changes a result */
                for (; tk < t1; tk += 8) {
                    int c = t1 - tk < 8 ? t1 - tk : 8;
                    float r[8];
                    dotn(K, row, o->xq + (size_t)tk * o->xstride, o->xstride, r, c);
                    for (int q = 0; q < c; q++) o->Y[(size_t)(tk + q) * o->ldy + (size_t)n] = r[q];
                }
            if (dot4)
                for (; tk + 4 <= t1; tk += 4) {
                    float r[4];
                    dot4(K, row, o->xq + (size_t)tk * o->xstride, o->xstride, r);
                    for (int q = 0; q < 4; q++) o->Y[(size_t)(tk + q) * o->ldy + (size_t)n] = r[q];
                }
            for (; tk < t1; tk++)
                o->Y[(size_t)tk * o->ldy + (size_t)n] =
                    dot(K, row, o->xq + (size_t)tk * o->xstride);
        }
    }
}

/* Items [i0, i1) of the joint row range: the pieces of each product they cover. */
static void mm_rows(void *ctx, int i0, int i1, int thread)
{
    (void)thread;
    const mm_batch *b = ctx;
    int lo = 0, hi = b->n - 1; /* the last product starting at or before i0 */
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (b->ops[mid].row0 <= i0)
            lo = mid;
        else
            hi = mid - 1;
    }
    for (int k = lo; k < b->n && b->ops[k].row0 < i1; k++) {
        const mm_op *o = &b->ops[k];
        int r0 = i0 > o->row0 ? i0 - o->row0 : 0, r1 = i1 - o->row0, rows = (int)o->w->ne[1];
        if (r1 > rows) r1 = rows;
        if (r0 < r1) mm_op_rows(b->m, o, r0, r1);
    }
}

/* Prefill path: each thread dequantizes a tile of weight rows once and multiplies it with all T
 * activation rows in one single-threaded OpenBLAS sgemm. */
enum { SGEMM_MIN_TOKENS = 32, SGEMM_TILE = 64 };

typedef struct sg_task {
    model *m;
    const wt *w;
    int e, T;
    const float *X;
    size_t ldx;
    float *Y;
    size_t ldy;
} sg_task;

static void sg_rows(void *ctx, int n0, int n1, int thread)
{
    const sg_task *t = ctx;
    const wt *w = t->w;
    int K = (int)w->ne[0];
    float *tile = t->m->tiles + t->m->tile_stride * (size_t)thread;
    const uint8_t *rows = t->w->data + (size_t)t->e * w->mat_bytes;
    for (int r0 = n0; r0 < n1; r0 += SGEMM_TILE) {
        int nr = n1 - r0 < SGEMM_TILE ? n1 - r0 : SGEMM_TILE;
        const model_kernels *k = t->m->k;
        if (!k->dequant ||
            !k->dequant(w->type, rows + (size_t)r0 * w->row_bytes, tile, (int64_t)nr * K))
            model__dequant(w->type, rows + (size_t)r0 * w->row_bytes, tile, (int64_t)nr * K);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, t->T, nr, K, 1.0f, t->X, (int)t->ldx,
                    tile, K, 0.0f, t->Y + r0, (int)t->ldy);
    }
}

/* Prefill through sgemm (FIMD_SGEMM=1): round the activations exactly as the int8 path does
 * (quantize, dequantize), so both paths multiply the same values and differ only in summation
 * order; a prompt evaluated in one batch or in chunks then gives the same logits within ~1e-5. */
static void matmul_sgemm(model *m, const mm_op *o)
{
    const wt *w = o->w;
    const type_traits *tt = model__type(w->type);
    size_t K = (size_t)w->ne[0], rb = act_row_bytes(w);
    float *Xr = grow((void **)&m->xr, &m->xr_len, sizeof(float) * K * (size_t)o->T);
    uint8_t *q = grow((void **)&m->qbuf, &m->qbuf_len, rb);
    for (int i = 0; i < o->T; i++) {
        model__quant(tt->vec_dot_type, o->X + (size_t)i * o->ldx, q, (int64_t)K);
        model__dequant(tt->vec_dot_type, q, Xr + (size_t)i * K, (int64_t)K);
    }
    int threads = model__pool_threads(m->pool);
    size_t need = (size_t)SGEMM_TILE * K;
    if (need > m->tile_stride) {
        m->tile_stride = need;
        grow((void **)&m->tiles, &m->tiles_len, need * (size_t)threads * sizeof(float));
    }
    sg_task t = {m, w, o->e, o->T, Xr, K, o->Y, o->ldy};
    model__pool_for(m->pool, (int)w->ne[1], SGEMM_TILE, sg_rows, &t);
}

/* Bytes of X quantized for o's weight (0 when the kernel reads f32 directly). */
static size_t op_quant_bytes(const mm_op *o)
{
    return model__type(o->w->type)->vec_dot_type == MODEL_TYPE_F32
               ? 0
               : act_row_bytes(o->w) * (size_t)o->T;
}

/* An earlier product with the same input in the same activation format, whose rows can be shared.
 */
static const mm_op *same_input(const mm_op *ops, int k)
{
    const mm_op *o = &ops[k];
    int vt = model__type(o->w->type)->vec_dot_type;
    for (int j = 0; j < k; j++)
        if (ops[j].X == o->X && ops[j].T == o->T && ops[j].ldx == o->ldx &&
            ops[j].w->ne[0] == o->w->ne[0] && model__type(ops[j].w->type)->vec_dot_type == vt)
            return &ops[j];
    return NULL;
}

/* Y = W_e X for each of n products, in one dispatch over all their rows (a decoded token's six
 * experts are one dispatch, not eighteen). Each X row is quantized once to the weight's vec_dot
 * type, as llama.cpp does; products sharing an input share its quantized rows. */
static void matmul_ops(model *m, mm_op *ops, int n)
{
    size_t bytes = 0;
    for (int k = 0; k < n; k++) {
        ops[k].shares = same_input(ops, k);
        bytes += ops[k].shares ? 0 : op_quant_bytes(&ops[k]);
    }
    uint8_t *arena = bytes ? grow((void **)&m->qbuf, &m->qbuf_len, bytes) : NULL;
    int rows = 0;
    for (int k = 0; k < n; k++) {
        mm_op *o = &ops[k];
        int vt = model__type(o->w->type)->vec_dot_type;
        if (o->shares) {
            o->xq = o->shares->xq, o->xstride = o->shares->xstride;
        } else if (vt == MODEL_TYPE_F32) {
            o->xq = (const uint8_t *)o->X, o->xstride = o->ldx * sizeof(float);
        } else {
            size_t rb = act_row_bytes(o->w);
            for (int i = 0; i < o->T; i++)
                quant_act(m, vt, o->X + (size_t)i * o->ldx, arena + (size_t)i * rb, o->w->ne[0]);
            o->xq = arena, o->xstride = rb;
            arena += rb * (size_t)o->T;
        }
        o->row0 = rows;
        rows += (int)o->w->ne[1];
    }
    int threads = model__pool_threads(m->pool);
    int grain = rows / (threads * 64) > 4 ? rows / (threads * 64) : 4;
    mm_batch b = {m, ops, n};
    model__pool_for(m->pool, rows, grain, mm_rows, &b);
}

/* Y[t][n] = W_e[n] . X[t] for T rows of X (stride ldx floats); Y rows ldy floats apart. Long
 * batches (prefill) may use dequantized tiles and sgemm instead, when enabled. */
static void matmul(model *m, const wt *w, int e, const float *X, int T, size_t ldx, float *Y,
                   size_t ldy)
{
    mm_op o = {.w = w, .e = e, .T = T, .X = X, .ldx = ldx, .Y = Y, .ldy = ldy};
    if (T >= SGEMM_MIN_TOKENS && m->use_sgemm && w->type != MODEL_TYPE_F32)
        matmul_sgemm(m, &o);
    else
        matmul_ops(m, &o, 1);
}

/* The products of a batch in one dispatch, or one by one through sgemm when that is enabled. */
static void matmul_batch(model *m, mm_op *ops, int n)
{
    if (!m->use_sgemm) {
        matmul_ops(m, ops, n);
        return;
    }
    for (int k = 0; k < n; k++)
        matmul(m, ops[k].w, ops[k].e, ops[k].X, ops[k].T, ops[k].ldx, ops[k].Y, ops[k].ldy);
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

/* Scratch for a batch of T tokens (floats), carved from one grow-only block. */
typedef struct bufs {
    float *x, *a, *q, *kv, *o, *h, *f, *out, *g, *u, *probs, *xe, *ye;
    int *top, *row_of;
    float *wts;
    float *qa, *ol; /* [T][H][R + Dr] absorbed queries, [T][H][R] latent attention outputs */
    mm_op *ops;     /* a batch of products: two per expert and two shared, or one per head */
} bufs;

static size_t max3(size_t a, size_t b, size_t c)
{
    size_t m = a > b ? a : b;
    return m > c ? m : c;
}

/* Heads are attended in groups: each latent cache row is read once for all heads of the group
 * (the cache does not fit in L2 at long contexts), while every head's sums are made exactly as
 * if it were alone, so results do not depend on the grouping. */
enum { ATT_GROUP = 8 };

static int att_group(int n_head)
{
    int g = ATT_GROUP;
    while (n_head % g) g /= 2;
    return g;
}

static int reserve_scratch(model *m, int T, int n_ctx, bufs *b, model_err *err)
{
    const model_hparams *hp = &m->hp;
    size_t D = (size_t)hp->n_embd, H = (size_t)hp->n_head, Dk = (size_t)(hp->qk_nope + hp->qk_rope);
    size_t R = (size_t)hp->kv_lora_rank, row = R + (size_t)hp->qk_rope, t = (size_t)T;
    /* the expert counts were checked only if the model has MoE layers: otherwise they mean nothing
     */
    bool moe = hp->n_dense < hp->n_layer;
    size_t K = moe ? (size_t)hp->n_expert_used : 1, E = moe ? (size_t)hp->n_expert : 0;
    size_t Fe = moe ? (size_t)hp->n_ff_exp : 0, S = moe ? (size_t)hp->n_shared : 0;
    size_t wide = max3((size_t)hp->n_ff, Fe * (S ? S : 1), (size_t)hp->q_lora_rank);
    /* all routed experts' hidden rows and the shared experts' side by side */
    wide = max3(wide, Fe * (K + S), D);
    size_t wide_t = t * wide, total = 0;
    size_t n_ops = max3(2 * E + 2, H, 0),
           ops = (n_ops * sizeof(mm_op) + sizeof(float) - 1) / sizeof(float);
    size_t sizes[] = {t * D,       t * D,     t * H * Dk,      t * row,  t * H * (size_t)hp->v_head,
                      t * D,       t * D,     t * D,           wide_t,   wide_t,
                      t * (E + 1), t * K * D, t * (K + 1) * D, t * K,    t * K,
                      t * K,       ops,       t * H * row,     t * H * R};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        total += (sizes[i] + 15) & ~(size_t)15;
    grow((void **)&m->scratch, &m->scratch_len,
         total * sizeof(float)); /* floats and ints are both 4 bytes */
    char *p = (char *)m->scratch;
    void *part[sizeof sizes / sizeof *sizes];
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        part[i] = p;
        p += ((sizes[i] + 15) & ~(size_t)15) * sizeof(float);
    }
    b->x = part[0], b->a = part[1], b->q = part[2], b->kv = part[3], b->o = part[4], b->h = part[5];
    b->f = part[6], b->out = part[7], b->g = part[8], b->u = part[9], b->probs = part[10],
    b->xe = part[11];
    b->ye = part[12], b->top = part[13], b->row_of = part[14], b->wts = part[15];
    b->ops = part[16], b->qa = part[17], b->ol = part[18];
    /* per-thread attention scratch: G x n_ctx scores (n_ctx is the cache capacity, which grows
     * by doubling, so this is not reallocated at every token) */
    size_t per = (size_t)att_group(hp->n_head) * (size_t)n_ctx;
    m->att_stride = (per + 15) & ~(size_t)15;
    grow((void **)&m->att, &m->att_len,
         m->att_stride * (size_t)model__pool_threads(m->pool) * sizeof(float));
    (void)err;
    return 0;
}

/* ---- attention ---- */

typedef struct att_task {
    model *m;
    const float *rows; /* this layer's cache rows */
    const float *qa;   /* [T][H][R + Dr]: absorbed queries */
    float *ol;         /* [T][H][R]: attention outputs in the latent space */
    int n_past;
} att_task;

/* One (token, group of heads) item: attend over the latent rows with the absorbed queries. */
static void att_heads(void *ctx, int i0, int i1, int thread)
{
    const att_task *a = ctx;
    const model *m = a->m;
    const model_kernels *k = m->k;
    const model_hparams *hp = &m->hp;
    int H = hp->n_head, R = hp->kv_lora_rank, row = R + hp->qk_rope, G = att_group(H),
        groups = H / G;
    float *att = m->att + m->att_stride * (size_t)thread; /* G x n_kv scores */
    for (int i = i0; i < i1; i++) {
        int t = i / groups, h0 = (i % groups) * G,
            n_kv = a->n_past + t + 1; /* causal: positions 0..p */
        const float *qa = a->qa + ((size_t)t * H + (size_t)h0) * row;
        float *ol = a->ol + ((size_t)t * H + (size_t)h0) * R;
        for (int s = 0; s < n_kv; s++) {
            const float *kv = a->rows + (size_t)s * row;
            if (k->dot_f32_heads)
                k->dot_f32_heads(row, kv, qa, (size_t)row, G, att + s, (size_t)n_kv);
            else
                for (int g = 0; g < G; g++)
                    att[(size_t)g * n_kv + s] = k->dot_f32(row, qa + (size_t)g * row, kv);
        }
        for (int g = 0; g < G; g++) {
            float *sc = att + (size_t)g * n_kv;
            for (int s = 0; s < n_kv; s++) sc[s] *= hp->kq_scale;
            softmax(sc, n_kv);
        }
        if (k->mix_f32_heads) {
            k->mix_f32_heads(R, n_kv, a->rows, (size_t)row, att, (size_t)n_kv, G, ol, (size_t)R);
        } else {
            memset(ol, 0, sizeof(float) * (size_t)G * R);
            for (int s = 0; s < n_kv; s++) {
                const float *kv = a->rows + (size_t)s * row;
                for (int g = 0; g < G; g++)
                    k->axpy_f32(R, att[(size_t)g * n_kv + s], kv, ol + (size_t)g * R);
            }
        }
    }
}

/* Per-head products of all T tokens in one dispatch: Y[t][h] = W_h X[t][h] for each head h, the
 * head slices xs and ys floats wide within rows of H slices. */
static void per_head(model *m, const wt *w, const float *X, size_t xs, float *Y, size_t ys, int T,
                     bufs *b)
{
    int H = m->hp.n_head;
    for (int h = 0; h < H; h++)
        b->ops[h] = (mm_op){.w = w,
                            .e = h,
                            .T = T,
                            .X = X + (size_t)h * xs,
                            .ldx = (size_t)H * xs,
                            .Y = Y + (size_t)h * ys,
                            .ldy = (size_t)H * ys};
    matmul_batch(m, b->ops, H);
}

/* Multi-head latent attention with absorbed weights: the queries are taken into the latent space
 * by W_UK (per head), attend over the cached latent rows, and come back through W_UV. */
static void attention(model *m, model_cache *c, const layer *L, int il, int T, int n_past, bufs *b)
{
    const model_hparams *hp = &m->hp;
    int D = hp->n_embd, H = hp->n_head, Dn = hp->qk_nope, Dr = hp->qk_rope, R = hp->kv_lora_rank;
    int Dk = Dn + Dr, Dv = hp->v_head, row = R + Dr;
    if (hp->q_lora_rank > 0) {
        int Q = hp->q_lora_rank;
        matmul(m, &L->wq_a, 0, b->a, T, (size_t)D, b->g, (size_t)Q);
        for (int t = 0; t < T; t++)
            rmsnorm(b->g + (size_t)t * Q, &L->q_a_norm, hp->rms_eps, Q, b->g + (size_t)t * Q);
        matmul(m, &L->wq_b, 0, b->g, T, (size_t)Q, b->q, (size_t)H * Dk);
        matmul(m, &L->wkv_a, 0, b->a, T, (size_t)D, b->kv, (size_t)row);
    } else { /* both read the normed input: one dispatch */
        mm_op qkv[2] = {
            {.w = &L->wq, .T = T, .X = b->a, .ldx = (size_t)D, .Y = b->q, .ldy = (size_t)H * Dk},
            {.w = &L->wkv_a, .T = T, .X = b->a, .ldx = (size_t)D, .Y = b->kv, .ldy = (size_t)row}};
        matmul_batch(m, qkv, 2);
    }
    per_head(m, &L->wk_b, b->q, (size_t)Dk, b->qa, (size_t)row, T, b); /* q_nope -> latent */
    for (int t = 0; t < T; t++) {
        float *kv = b->kv + (size_t)t * row, *dst = c->rows[il] + (size_t)(n_past + t) * row;
        rmsnorm(kv, &L->kv_a_norm, hp->rms_eps, R, dst); /* the norm covers the latent only */
        memcpy(dst + R, kv + R, sizeof(float) * (size_t)Dr);
        rope(m, dst + R, Dr, n_past + t);
        for (int h = 0; h < H; h++) {
            float *qa = b->qa + ((size_t)t * H + (size_t)h) * row + R;
            memcpy(qa, b->q + (size_t)t * H * Dk + (size_t)h * Dk + Dn, sizeof(float) * (size_t)Dr);
            rope(m, qa, Dr, n_past + t);
        }
    }
    att_task a = {m, c->rows[il], b->qa, b->ol, n_past};
    model__pool_for(m->pool, T * (H / att_group(H)), 1, att_heads, &a);
    per_head(m, &L->wv_b, b->ol, (size_t)R, b->o, (size_t)Dv, T, b); /* latent -> v */
    matmul(m, &L->wo, 0, b->o, T, (size_t)H * Dv, b->out, (size_t)D);
}

/* ---- feed-forward ---- */

/* The gate and up products of one input (expert e): two entries at ops[0..1]; returns 2. */
static int gate_up(mm_op *ops, const wt *g, const wt *u, int e, const float *X, int T, size_t ldx,
                   float *Yg, float *Yu, size_t ldy)
{
    ops[0] = (mm_op){.w = g, .e = e, .T = T, .X = X, .ldx = ldx, .Y = Yg, .ldy = ldy};
    ops[1] = (mm_op){.w = u, .e = e, .T = T, .X = X, .ldx = ldx, .Y = Yu, .ldy = ldy};
    return 2;
}

/* out[T][D] = down(silu(gate X) * up X) for T rows of X. */
static void swiglu(model *m, const wt *g, const wt *u, const wt *d, int e, const float *X, int T,
                   float *out, bufs *b)
{
    int D = m->hp.n_embd;
    size_t F = (size_t)g->ne[1];
    mm_op gu[2];
    matmul_batch(m, gu, gate_up(gu, g, u, e, X, T, (size_t)D, b->g, b->u, F));
    for (size_t i = 0; i < (size_t)T * F; i++) b->g[i] = silu(b->g[i]) * b->u[i];
    matmul(m, d, e, b->g, T, F, out, (size_t)D);
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

/* Routing of one token: selected experts top[K] and their weights w[K] (llama.cpp's rules). */
static void route(const model *m, float *p, int *top, float *w)
{
    const model_hparams *hp = &m->hp;
    int E = hp->n_expert, K = hp->n_expert_used;
    if (hp->gating == 2)
        for (int e = 0; e < E; e++) p[e] = 1.0f / (1.0f + expf(-p[e]));
    else
        softmax(p, E);
    float score[MAX_EXPERTS];
    memcpy(score, p, sizeof(float) * (size_t)E);
    if (hp->n_group > 1) { /* a group scores the sum of its two best experts */
        int G = hp->n_group, per = E / G, gidx[MAX_USED];
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
    float wsum = 0;
    for (int j = 0; j < K; j++) wsum += w[j] = p[top[j]];
    for (int j = 0; j < K; j++) {
        if (hp->weights_norm) w[j] /= fmaxf(wsum, 6.103515625e-5f);
        if (hp->weights_scale != 0 && hp->weights_scale != 1) w[j] *= hp->weights_scale;
    }
}

/* Routed experts of all T tokens, grouped by expert (each expert's tokens in one batch), and the
 * shared experts: every gate and up product in one dispatch, every down product in a second.
 * Expert outputs are summed per token in selection order, then the shared ones, as llama.cpp does.
 */
static void moe(model *m, const layer *L, const float *F, int T, float *out, bufs *b)
{
    const model_hparams *hp = &m->hp;
    int D = hp->n_embd, E = hp->n_expert, K = hp->n_expert_used;
    size_t Fe = (size_t)L->gate_exps.ne[1], Fs = hp->n_shared > 0 ? (size_t)L->gate_sh.ne[1] : 0;
    matmul(m, &L->router, 0, F, T, (size_t)D, b->probs, (size_t)E);
    for (int t = 0; t < T; t++)
        route(m, b->probs + (size_t)t * E, b->top + (size_t)t * K, b->wts + (size_t)t * K);
    /* rows of xe in expert order; row_of[t K + j] = the row of token t's j-th selected expert */
    int *row_of = b->row_of, start[MAX_EXPERTS + 1] = {0};
    for (int i = 0; i < T * K; i++) start[b->top[i] + 1]++;
    for (int e = 0; e < E; e++) start[e + 1] += start[e];
    int fill[MAX_EXPERTS];
    memcpy(fill, start, sizeof(int) * (size_t)E);
    for (int t = 0; t < T; t++)
        for (int j = 0; j < K; j++) {
            int r = fill[b->top[t * K + j]]++;
            row_of[t * K + j] = r;
            memcpy(b->xe + (size_t)r * D, F + (size_t)t * D, sizeof(float) * (size_t)D);
        }
    float *gs = b->g + (size_t)T * K * Fe,
          *us = b->u + (size_t)T * K * Fe; /* the shared experts' part */
    mm_op *ops = b->ops;
    int n = 0;
    for (int e = 0; e < E; e++) {
        int c = start[e + 1] - start[e];
        if (!c) continue;
        n += gate_up(ops + n, &L->gate_exps, &L->up_exps, e, b->xe + (size_t)start[e] * D, c,
                     (size_t)D, b->g + (size_t)start[e] * Fe, b->u + (size_t)start[e] * Fe, Fe);
    }
    if (Fs) n += gate_up(ops + n, &L->gate_sh, &L->up_sh, 0, F, T, (size_t)D, gs, us, Fs);
    matmul_batch(m, ops, n);
    for (size_t i = 0; i < (size_t)T * (K * Fe + Fs); i++) b->g[i] = silu(b->g[i]) * b->u[i];
    n = 0;
    for (int e = 0; e < E; e++) {
        int c = start[e + 1] - start[e];
        if (c)
            ops[n++] = (mm_op){.w = &L->down_exps,
                               .e = e,
                               .T = c,
                               .X = b->g + (size_t)start[e] * Fe,
                               .ldx = Fe,
                               .Y = b->ye + (size_t)start[e] * D,
                               .ldy = (size_t)D};
    }
    float *ys = b->ye + (size_t)T * K * D;
    if (Fs)
        ops[n++] = (mm_op){.w = &L->down_sh, .T = T, .X = gs, .ldx = Fs, .Y = ys, .ldy = (size_t)D};
    matmul_batch(m, ops, n);
    for (int t = 0; t < T; t++) { /* in selection order: each weighted output, then their sum */
        float *o = out + (size_t)t * D;
        for (int j = 0; j < K; j++) {
            const float *y = b->ye + (size_t)row_of[t * K + j] * D, w = b->wts[t * K + j];
            if (j == 0)
                for (int i = 0; i < D; i++) o[i] = y[i] * w;
            else
                for (int i = 0; i < D; i++) o[i] += y[i] * w;
        }
        if (Fs)
            for (int i = 0; i < D; i++) o[i] += ys[(size_t)t * D + i];
    }
}

/* ---- forward ---- */

int model_eval(model *m, model_cache *c, const int32_t *tokens, int n, float *logits,
               enum model_logits_mode mode, const atomic_int *cancel, model_err *err)
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
    if (!m->pool) m->pool = model__pool_new(m->n_threads);
    if (cache_reserve(c, n_past + n, err) || reserve_scratch(m, n, c->cap, &b, err)) return -1;
    for (int t = 0; t < n; t++)
        model__dequant(m->tok_embd.type,
                       m->tok_embd.data + (size_t)tokens[t] * m->tok_embd.row_bytes,
                       b.x + (size_t)t * D, D);
    for (int il = 0; il < hp->n_layer; il++) {
        if (cancel && atomic_load_explicit(cancel, memory_order_relaxed)) { /* c->len untouched */
            model__fail(err, "cancelled");
            return -2;
        }
        const layer *L = &m->layers[il];
        for (int t = 0; t < n; t++)
            rmsnorm(b.x + (size_t)t * D, &L->attn_norm, hp->rms_eps, D, b.a + (size_t)t * D);
        attention(m, c, L, il, n, n_past, &b);
        for (size_t i = 0; i < (size_t)n * D; i++) b.h[i] = b.out[i] + b.x[i];
        for (int t = 0; t < n; t++)
            rmsnorm(b.h + (size_t)t * D, &L->ffn_norm, hp->rms_eps, D, b.f + (size_t)t * D);
        if (il < hp->n_dense)
            swiglu(m, &L->gate, &L->up, &L->down, 0, b.f, n, b.out, &b);
        else
            moe(m, L, b.f, n, b.out, &b);
        for (size_t i = 0; i < (size_t)n * D; i++) b.x[i] = b.out[i] + b.h[i];
    }
    c->len = n_past + n;
    if (mode == MODEL_LOGITS_NONE) return 0;
    int first =
        mode == MODEL_LOGITS_ALL ? 0 : n - 1; /* only the rows asked for go through the head */
    for (int t = first; t < n; t++)
        rmsnorm(b.x + (size_t)t * D, &m->out_norm, hp->rms_eps, D, b.a + (size_t)(t - first) * D);
    matmul(m, &m->output, 0, b.a, n - first, (size_t)D, logits, (size_t)hp->n_vocab);
    return 0;
}
