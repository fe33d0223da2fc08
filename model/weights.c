/* model/weights.c — loading a deepseek2 model's immutable half: hyper-parameters from GGUF keys
 * (RoPE/YaRN constants derived once), every weight bound by name with its type and shape checked,
 * and the pages locked in memory when allowed. See shared deepseek2-spec.md. */
#define _GNU_SOURCE /* M_PI */
#include "weights.h"
#include "base/base.h"

#include <math.h>
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

static int load_hparams(model_weights *ws, model_err *err)
{
    const model_gguf *g = ws->g;
    model_hparams *hp = &ws->hp;
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
    return load_rope(ws, err);
}

#define CHECK_HP(cond, ...)                                                                        \
    do {                                                                                           \
        if (!(cond)) return model__fail(err, __VA_ARGS__);                                         \
    } while (0)

static int check_hparams(const model_weights *ws, model_err *err)
{
    const model_hparams *hp = &ws->hp;
    const char *p = ws->g->path;
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

static int bind_layer(model_weights *ws, int il, model_err *err)
{
    const model_hparams *hp = &ws->hp;
    layer *L = &ws->layers[il];
    int64_t D = hp->n_embd, H = hp->n_head, Dk = hp->qk_nope + hp->qk_rope, R = hp->kv_lora_rank;
    char n[96];
#define NM(s) (snprintf(n, sizeof n, "blk.%d." s ".weight", il), n)
    if (bind_f32(ws, &L->attn_norm, NM("attn_norm"), D, err)) return -1;
    if (hp->q_lora_rank > 0) {
        int64_t Q = hp->q_lora_rank;
        if (bind(ws, &L->wq_a, NM("attn_q_a"), 2, D, Q, 1, true, err) ||
            bind_f32(ws, &L->q_a_norm, NM("attn_q_a_norm"), Q, err) ||
            bind(ws, &L->wq_b, NM("attn_q_b"), 2, Q, H * Dk, 1, true, err))
            return -1;
    } else if (bind(ws, &L->wq, NM("attn_q"), 2, D, H * Dk, 1, true, err)) {
        return -1;
    }
    if (bind(ws, &L->wkv_a, NM("attn_kv_a_mqa"), 2, D, R + hp->qk_rope, 1, true, err) ||
        bind_f32(ws, &L->kv_a_norm, NM("attn_kv_a_norm"), R, err) ||
        bind(ws, &L->wo, NM("attn_output"), 2, H * hp->v_head, D, 1, true, err) ||
        bind_f32(ws, &L->ffn_norm, NM("ffn_norm"), D, err))
        return -1;
    if (hp->legacy_kvb) {
        if (derive_kvb(ws, L, NM("attn_kv_b"), err)) return -1;
    } else if (bind(ws, &L->wk_b, NM("attn_k_b"), 3, hp->qk_nope, R, H, true, err) ||
               bind(ws, &L->wv_b, NM("attn_v_b"), 3, R, hp->v_head, H, true, err)) {
        return -1;
    }
    if (il < hp->n_dense)
        return bind(ws, &L->gate, NM("ffn_gate"), 2, D, hp->n_ff, 1, true, err) ||
                       bind(ws, &L->up, NM("ffn_up"), 2, D, hp->n_ff, 1, true, err) ||
                       bind(ws, &L->down, NM("ffn_down"), 2, hp->n_ff, D, 1, true, err)
                   ? -1
                   : 0;
    int64_t E = hp->n_expert, Fe = hp->n_ff_exp, Fs = Fe * hp->n_shared;
    if (bind(ws, &L->router, NM("ffn_gate_inp"), 2, D, E, 1, true, err) ||
        bind(ws, &L->gate_exps, NM("ffn_gate_exps"), 3, D, Fe, E, true, err) ||
        bind(ws, &L->up_exps, NM("ffn_up_exps"), 3, D, Fe, E, true, err) ||
        bind(ws, &L->down_exps, NM("ffn_down_exps"), 3, Fe, D, E, true, err))
        return -1;
    if (L->router.type != MODEL_TYPE_F32)
        return model__fail(err, "%s: router '%s' must be F32", ws->g->path, NM("ffn_gate_inp"));
    if (model__gguf_tensor(ws->g, NM("exp_probs_b.bias")))
        return model__fail(err, "%s: expert bias (DeepSeek-V3 routing) is not supported",
                           ws->g->path);
    if (hp->n_shared > 0 && (bind(ws, &L->gate_sh, NM("ffn_gate_shexp"), 2, D, Fs, 1, true, err) ||
                             bind(ws, &L->up_sh, NM("ffn_up_shexp"), 2, D, Fs, 1, true, err) ||
                             bind(ws, &L->down_sh, NM("ffn_down_shexp"), 2, Fs, D, 1, true, err)))
        return -1;
#undef NM
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
