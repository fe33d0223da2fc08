/* model/weights.c — loading a deepseek2 model's immutable half: hyper-parameters from GGUF keys
 * (RoPE/YaRN constants derived once), every weight bound by name with its type and shape checked,
 * and the pages locked in memory when allowed. See shared deepseek2-spec.md. */
#define _GNU_SOURCE /* M_PI */
#include "weights.h"
#include "base/base.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

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

static int load_rope(model_weights *ws, model_err *err)
{
    const model_gguf *g = ws->g;
    model_hparams *hp = &ws->hp;
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
    ws->freq_scale = 1.0f / factor;
    ws->ext_factor = yarn ? 1.0f : 0.0f;
    float mscale = 1.0f;
    ws->rope_mag = attn_factor_key;
    if (yarn) {
        float log_mul = hp->yarn_log_mul, mscale_rope = log_mul != 1 ? log_mul : 1;
        ws->rope_mag =
            get_mscale(factor, mscale_rope) / get_mscale(factor, log_mul) * attn_factor_key;
        mscale = ws->rope_mag * (1.0f + 0.1f * log_mul * logf(factor));
    }
    hp->kq_scale = mscale * mscale / sqrtf((float)(hp->qk_nope + hp->qk_rope));
    /* YaRN correction dims (ggml_rope_yarn_corr_dims with beta_fast 32, beta_slow 1) */
    float nd = (float)hp->qk_rope, base = hp->rope_base;
    float lo = nd * logf((float)hp->yarn_orig_ctx / (32.0f * 2 * (float)M_PI)) / (2 * logf(base));
    float hi = nd * logf((float)hp->yarn_orig_ctx / (1.0f * 2 * (float)M_PI)) / (2 * logf(base));
    ws->yarn_low = fmaxf(0, floorf(lo));
    ws->yarn_high = fminf(nd - 1, ceilf(hi));
    return 0;
}

/* Key widths of the attention, which the hyper-parameters are derived from (the MLA keys, or the
 * legacy key/value lengths). */
typedef struct attn_keys {
    int key_len, val_len, key_mla, val_mla, n_rot;
} attn_keys;

enum { KEY_REQUIRED = -1 };

/* The integer keys under "deepseek2.": each lands in the hyper-parameters (in_hp) or in attn_keys,
 * with its value when absent (KEY_REQUIRED: a load error). A new key touches one line. */
typedef struct u32_key {
    const char *name;
    bool in_hp;
    size_t off;
    int absent;
} u32_key;

#define HP(f) true, offsetof(model_hparams, f)
#define AK(f) false, offsetof(attn_keys, f)
static const u32_key u32_keys[] = {
    {"block_count", HP(n_layer), KEY_REQUIRED},
    {"embedding_length", HP(n_embd), KEY_REQUIRED},
    {"context_length", HP(n_ctx_train), KEY_REQUIRED},
    {"attention.head_count", HP(n_head), KEY_REQUIRED},
    {"attention.kv_lora_rank", HP(kv_lora_rank), KEY_REQUIRED},
    {"attention.q_lora_rank", HP(q_lora_rank), 0},
    {"attention.key_length", AK(key_len), 0},
    {"attention.value_length", AK(val_len), 0},
    {"attention.key_length_mla", AK(key_mla), 0},
    {"attention.value_length_mla", AK(val_mla), 0},
    {"rope.dimension_count", AK(n_rot), 0},
    {"feed_forward_length", HP(n_ff), 0},
    {"leading_dense_block_count", HP(n_dense), 0},
    {"expert_count", HP(n_expert), 0},
    {"expert_used_count", HP(n_expert_used), 0},
    {"expert_group_count", HP(n_group), 0},
    {"expert_group_used_count", HP(n_group_used), 0},
    {"expert_shared_count", HP(n_shared), 0},
    {"expert_feed_forward_length", HP(n_ff_exp), 0},
    {"expert_gating_func", HP(gating), 1},
};
#undef HP
#undef AK

static int check_arch(const model_gguf *g, model_err *err)
{
    gguf_str arch;
    int r = model__gguf_str(g, "general.architecture", &arch, err);
    if (r < 0) return -1;
    if (r == 1) return model__fail(err, "%s: general.architecture is missing", g->path);
    if (!model__gguf_str_eq(arch, "deepseek2"))
        return model__fail(err, "%s: architecture '%.*s' is not deepseek2", g->path,
                           (int)(arch.n < 40 ? arch.n : 40), arch.p);
    return 0;
}

static int read_u32_keys(const model_gguf *g, model_hparams *hp, attn_keys *ak, model_err *err)
{
    for (size_t i = 0; i < sizeof u32_keys / sizeof *u32_keys; i++) {
        const u32_key *k = &u32_keys[i];
        char key[96];
        snprintf(key, sizeof key, "deepseek2.%s", k->name);
        int *out = (int *)((char *)(k->in_hp ? (void *)hp : (void *)ak) + k->off);
        if (k->absent == KEY_REQUIRED ? req_u32(g, key, out, err)
                                      : opt_u32(g, key, out, k->absent, err))
            return -1;
    }
    return 0;
}

static int load_hparams(model_weights *ws, model_err *err)
{
    const model_gguf *g = ws->g;
    model_hparams *hp = &ws->hp;
    attn_keys ak;
    if (check_arch(g, err) || read_u32_keys(g, hp, &ak, err) ||
        opt_f32(g, "deepseek2.expert_weights_scale", &hp->weights_scale, 0, err) ||
        opt_f32(g, "deepseek2.attention.layer_norm_rms_epsilon", &hp->rms_eps, -1, err) ||
        model__gguf_bool(g, "deepseek2.expert_weights_norm", &hp->weights_norm, err) < 0)
        return -1;
    if (hp->rms_eps < 0)
        return model__fail(err,
                           "%s: required key 'deepseek2.attention.layer_norm_rms_epsilon' is "
                           "missing",
                           g->path);
    bool mla = ak.key_mla > 0 && ak.val_mla > 0;
    int n_rot = ak.n_rot ? ak.n_rot : mla ? ak.key_len - hp->kv_lora_rank : ak.key_len;
    hp->qk_rope = n_rot;
    hp->qk_nope = (mla ? ak.key_mla : ak.key_len) - n_rot;
    hp->v_head = mla ? ak.val_mla : ak.val_len;
    hp->legacy_kvb = !mla;
    return load_rope(ws, err);
}

#define CHECK_HP(cond, ...)                                                                        \
    do {                                                                                           \
        if (!(cond)) return model__fail(err, __VA_ARGS__);                                         \
    } while (0)

static int check_attention(const model_hparams *hp, const char *p, model_err *err)
{
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
    return 0;
}

static int check_expert_groups(const model_hparams *hp, const char *p, model_err *err)
{
    CHECK_HP(hp->n_expert % hp->n_group == 0 && hp->n_group < hp->n_expert &&
                 hp->n_group_used > 0 && hp->n_group_used < hp->n_group,
             "%s: expert groups %d/%d do not fit %d experts", p, hp->n_group_used, hp->n_group,
             hp->n_expert);
    CHECK_HP(hp->n_expert / hp->n_group >= 2, "%s: expert groups need 2+ experts each", p);
    CHECK_HP(hp->n_expert_used <= hp->n_group_used * (hp->n_expert / hp->n_group),
             "%s: expert_used_count exceeds the experts of the used groups", p);
    return 0;
}

/* The expert keys mean nothing in a model of dense layers only, so they are checked only when a
 * layer routes. */
static int check_ffn(const model_hparams *hp, const char *p, model_err *err)
{
    CHECK_HP(hp->n_dense <= hp->n_layer, "%s: leading_dense_block_count %d > block_count %d", p,
             hp->n_dense, hp->n_layer);
    CHECK_HP(hp->n_dense == 0 || hp->n_ff >= 1, "%s: dense layers need feed_forward_length", p);
    if (hp->n_dense == hp->n_layer) return 0;
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
    return hp->n_group > 1 ? check_expert_groups(hp, p, err) : 0;
}

static int check_hparams(const model_weights *ws, model_err *err)
{
    return check_attention(&ws->hp, ws->g->path, err) || check_ffn(&ws->hp, ws->g->path, err) ? -1
                                                                                              : 0;
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
static int bind(const model_weights *ws, wt *w, const char *name, int n_dims, int64_t ne0,
                int64_t ne1, int64_t ne2, bool required, model_err *err)
{
    const gguf_tensor *t = model__gguf_tensor(ws->g, name);
    if (!t) {
        if (!required) return 0;
        return model__fail(err, "%s: tensor '%s' is missing", ws->g->path, name);
    }
    int64_t want[4] = {ne0, ne1, ne2, 1};
    if (t->n_dims > n_dims && !(t->n_dims == n_dims + 1 && t->ne[n_dims] == 1)) goto bad;
    for (int d = 0; d < 4; d++)
        if (t->ne[d] != want[d]) goto bad;
    if (!model__type(t->type)->dot) /* Q8_1, Q8_K: formats of activations, not of weights */
        return model__fail(err, "%s: tensor '%s' has type %s, which holds activations, not weights",
                           ws->g->path, name, model_type_name(t->type));
    w->type = t->type;
    w->ne[0] = ne0, w->ne[1] = ne1, w->ne[2] = ne2;
    w->data = t->data;
    w->row_bytes = model__row_bytes(t->type, ne0);
    w->mat_bytes = w->row_bytes * (size_t)ne1;
    return 0;
bad : {
    char a[96], b[96];
    return model__fail(err, "%s: tensor '%s' has shape %s, expected %s", ws->g->path, name,
                       dims_str(t->ne, t->n_dims, a, sizeof a),
                       dims_str(want, n_dims, b, sizeof b));
}
}

static int bind_f32(const model_weights *ws, wt *w, const char *name, int64_t n, model_err *err)
{
    if (bind(ws, w, name, 1, n, 1, 1, true, err)) return -1;
    if (w->type != MODEL_TYPE_F32)
        return model__fail(err, "%s: tensor '%s' must be F32, found %s", ws->g->path, name,
                           model_type_name(w->type));
    return 0;
}

static void *own(model_weights *ws, size_t bytes)
{
    void *p = base_xcalloc(1, bytes);
    ws->owned = base_xrealloc(ws->owned, sizeof(void *) * (size_t)(ws->n_owned + 1));
    ws->owned[ws->n_owned++] = p;
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
static int derive_kvb(model_weights *ws, layer *L, const char *name, model_err *err)
{
    const model_hparams *hp = &ws->hp;
    int H = hp->n_head, R = hp->kv_lora_rank, Dn = hp->qk_nope, Dv = hp->v_head;
    wt kvb;
    if (bind(ws, &kvb, name, 2, R, (int64_t)H * (Dn + Dv), 1, true, err)) return -1;
    float *full = malloc(sizeof(float) * (size_t)R * (size_t)H * (size_t)(Dn + Dv));
    if (!full) return model__fail(err, "out of memory");
    model__dequant(kvb.type, kvb.data, full, (int64_t)R * H * (Dn + Dv));
    float *kb = own(ws, sizeof(float) * (size_t)H * R * Dn);
    float *vb = own(ws, sizeof(float) * (size_t)H * Dv * R);
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

/* A layer's widths, named for the tensor table below. */
enum width {
    W_EMBD,     /* D */
    W_Q_LORA,   /* Q (full model) */
    W_Q_HEADS,  /* H * (Dn + Dr) */
    W_KV_A,     /* R + Dr: the latent, then the rope part */
    W_LORA,     /* R */
    W_V_HEADS,  /* H * Dv */
    W_NOPE,     /* Dn */
    W_VHEAD,    /* Dv */
    W_HEADS,    /* H */
    W_FF,       /* dense FFN */
    W_EXPERTS,  /* E */
    W_FF_EXP,   /* one expert's FFN */
    W_FF_SHARE, /* the shared experts' FFN */
    W_ONE,
};

static int64_t width(const model_hparams *hp, enum width w)
{
    int64_t H = hp->n_head;
    const int64_t v[] = {
        [W_EMBD] = hp->n_embd,
        [W_Q_LORA] = hp->q_lora_rank,
        [W_Q_HEADS] = H * (hp->qk_nope + hp->qk_rope),
        [W_KV_A] = hp->kv_lora_rank + hp->qk_rope,
        [W_LORA] = hp->kv_lora_rank,
        [W_V_HEADS] = H * hp->v_head,
        [W_NOPE] = hp->qk_nope,
        [W_VHEAD] = hp->v_head,
        [W_HEADS] = H,
        [W_FF] = hp->n_ff,
        [W_EXPERTS] = hp->n_expert,
        [W_FF_EXP] = hp->n_ff_exp,
        [W_FF_SHARE] = (int64_t)hp->n_ff_exp * hp->n_shared,
        [W_ONE] = 1,
    };
    return v[w];
}

/* Which layers hold a tensor. */
enum when { ALL, Q_LORA, NO_Q_LORA, MLA, DENSE, MOE, SHARED };

static bool holds(const model_hparams *hp, int il, enum when w)
{
    switch (w) {
    case ALL:
        return true;
    case Q_LORA:
        return hp->q_lora_rank > 0;
    case NO_Q_LORA:
        return hp->q_lora_rank == 0;
    case MLA:
        return !hp->legacy_kvb;
    case DENSE:
        return il < hp->n_dense;
    case MOE:
        return il >= hp->n_dense;
    case SHARED:
        return il >= hp->n_dense && hp->n_shared > 0;
    }
    return false;
}

/* Every tensor of a layer: its name in blk.N.NAME.weight, where it goes, when a layer holds it, and
 * its shape (n_dims 1 with f32 set: a norm or router that must be F32). A new tensor is one line.
 */
typedef struct layer_tensor {
    const char *name;
    size_t off;
    enum when when;
    int n_dims;
    enum width ne[3];
    bool f32;
} layer_tensor;

#define AT(f) offsetof(layer, f)
static const layer_tensor layer_tensors[] = {
    {"attn_norm", AT(attn_norm), ALL, 1, {W_EMBD, W_ONE, W_ONE}, true},
    {"attn_q_a", AT(wq_a), Q_LORA, 2, {W_EMBD, W_Q_LORA, W_ONE}, false},
    {"attn_q_a_norm", AT(q_a_norm), Q_LORA, 1, {W_Q_LORA, W_ONE, W_ONE}, true},
    {"attn_q_b", AT(wq_b), Q_LORA, 2, {W_Q_LORA, W_Q_HEADS, W_ONE}, false},
    {"attn_q", AT(wq), NO_Q_LORA, 2, {W_EMBD, W_Q_HEADS, W_ONE}, false},
    {"attn_kv_a_mqa", AT(wkv_a), ALL, 2, {W_EMBD, W_KV_A, W_ONE}, false},
    {"attn_kv_a_norm", AT(kv_a_norm), ALL, 1, {W_LORA, W_ONE, W_ONE}, true},
    {"attn_output", AT(wo), ALL, 2, {W_V_HEADS, W_EMBD, W_ONE}, false},
    {"ffn_norm", AT(ffn_norm), ALL, 1, {W_EMBD, W_ONE, W_ONE}, true},
    {"attn_k_b", AT(wk_b), MLA, 3, {W_NOPE, W_LORA, W_HEADS}, false},
    {"attn_v_b", AT(wv_b), MLA, 3, {W_LORA, W_VHEAD, W_HEADS}, false},
    {"ffn_gate", AT(gate), DENSE, 2, {W_EMBD, W_FF, W_ONE}, false},
    {"ffn_up", AT(up), DENSE, 2, {W_EMBD, W_FF, W_ONE}, false},
    {"ffn_down", AT(down), DENSE, 2, {W_FF, W_EMBD, W_ONE}, false},
    {"ffn_gate_inp", AT(router), MOE, 2, {W_EMBD, W_EXPERTS, W_ONE}, true},
    {"ffn_gate_exps", AT(gate_exps), MOE, 3, {W_EMBD, W_FF_EXP, W_EXPERTS}, false},
    {"ffn_up_exps", AT(up_exps), MOE, 3, {W_EMBD, W_FF_EXP, W_EXPERTS}, false},
    {"ffn_down_exps", AT(down_exps), MOE, 3, {W_FF_EXP, W_EMBD, W_EXPERTS}, false},
    {"ffn_gate_shexp", AT(gate_sh), SHARED, 2, {W_EMBD, W_FF_SHARE, W_ONE}, false},
    {"ffn_up_shexp", AT(up_sh), SHARED, 2, {W_EMBD, W_FF_SHARE, W_ONE}, false},
    {"ffn_down_shexp", AT(down_sh), SHARED, 2, {W_FF_SHARE, W_EMBD, W_ONE}, false},
};
#undef AT

static int bind_tensor(model_weights *ws, int il, const layer_tensor *t, model_err *err)
{
    const model_hparams *hp = &ws->hp;
    wt *w = (wt *)((char *)&ws->layers[il] + t->off);
    char name[96];
    snprintf(name, sizeof name, "blk.%d.%s.weight", il, t->name);
    if (bind(ws, w, name, t->n_dims, width(hp, t->ne[0]), width(hp, t->ne[1]), width(hp, t->ne[2]),
             true, err))
        return -1;
    if (t->f32 && w->type != MODEL_TYPE_F32)
        return model__fail(err, "%s: tensor '%s' must be F32, found %s", ws->g->path, name,
                           model_type_name(w->type));
    return 0;
}

static int bind_layer(model_weights *ws, int il, model_err *err)
{
    const model_hparams *hp = &ws->hp;
    for (size_t i = 0; i < sizeof layer_tensors / sizeof *layer_tensors; i++)
        if (holds(hp, il, layer_tensors[i].when) && bind_tensor(ws, il, &layer_tensors[i], err))
            return -1;
    char name[96];
    if (hp->legacy_kvb) {
        snprintf(name, sizeof name, "blk.%d.attn_kv_b.weight", il);
        if (derive_kvb(ws, &ws->layers[il], name, err)) return -1;
    }
    snprintf(name, sizeof name, "blk.%d.exp_probs_b.bias", il);
    if (il >= hp->n_dense && model__gguf_tensor(ws->g, name))
        return model__fail(err, "%s: expert bias (DeepSeek-V3 routing) is not supported",
                           ws->g->path);
    return 0;
}

static int bind_all(model_weights *ws, model_err *err)
{
    const model_hparams *hp = &ws->hp;
    if (bind(ws, &ws->tok_embd, "token_embd.weight", 2, hp->n_embd, hp->n_vocab, 1, true, err) ||
        bind_f32(ws, &ws->out_norm, "output_norm.weight", hp->n_embd, err) ||
        bind(ws, &ws->output, "output.weight", 2, hp->n_embd, hp->n_vocab, 1, false, err))
        return -1;
    if (!ws->output.data) ws->output = ws->tok_embd; /* tied head */
    ws->layers = calloc((size_t)hp->n_layer, sizeof *ws->layers);
    if (!ws->layers) return model__fail(err, "out of memory");
    for (int il = 0; il < hp->n_layer; il++)
        if (bind_layer(ws, il, err)) return -1;
    return 0;
}

/* Keep the weights resident: memory reclaim would otherwise drop the pages of experts that were
 * not routed for a while (the kernel treats them as cold file pages), and the next token that
 * routes to them waits for the disk. Locking needs the privilege or a large enough memlock limit;
 * without it fimd runs unlocked. The caller decides whether to try (opts.no_mlock). */
static void lock_weights(model_weights *ws)
{
    ws->locked = mlock(ws->g->base, ws->g->size) == 0;
}

int model__weights_load(model_weights *ws, const char *path, const model_opts *o, model_err *err)
{
    ws->g = model__gguf_open_resident(path, !o->no_hugepages, err);
    if (!ws->g || load_hparams(ws, err) || check_hparams(ws, err)) return -1;
    ws->vocab = model_vocab_load(ws->g, err);
    if (!ws->vocab) return -1;
    uint32_t nv = 0;
    int r = model__gguf_u32(ws->g, "deepseek2.vocab_size", &nv, err);
    if (r < 0) return -1;
    ws->hp.n_vocab = r == 0 ? (int)nv : model_vocab_size(ws->vocab);
    if (ws->hp.n_vocab != model_vocab_size(ws->vocab))
        return model__fail(err, "%s: vocab_size %d differs from the tokenizer's %d tokens", path,
                           ws->hp.n_vocab, model_vocab_size(ws->vocab));
    if (bind_all(ws, err)) return -1;
    if (!o->no_mlock) lock_weights(ws);
    return 0;
}

void model__weights_free(model_weights *ws)
{
    for (int i = 0; i < ws->n_owned; i++) free(ws->owned[i]);
    free(ws->owned);
    free(ws->layers);
    model_vocab_free(ws->vocab);
    model_gguf_close(ws->g);
    memset(ws, 0, sizeof *ws);
}

size_t model__weights_bytes_per_token(const model_weights *ws)
{
    const model_hparams *hp = &ws->hp;
    size_t total = 0, experts = 0;
    static const char sfx[] = "_exps.weight"; /* names in the mmap are not NUL-terminated */
    for (uint64_t i = 0; i < ws->g->n_tensors; i++) {
        const gguf_tensor *t = &ws->g->tensors[i];
        bool routed = t->name.n > sizeof sfx &&
                      !memcmp(t->name.p + t->name.n - (sizeof sfx - 1), sfx, sizeof sfx - 1);
        if (routed)
            experts += t->nbytes;
        else if (!model__gguf_str_eq(t->name, "token_embd.weight") ||
                 ws->output.data == ws->tok_embd.data)
            total += t->nbytes;
    }
    total += ws->tok_embd.row_bytes;
    if (hp->n_expert > 0) total += experts / (size_t)hp->n_expert * (size_t)hp->n_expert_used;
    return total;
}
