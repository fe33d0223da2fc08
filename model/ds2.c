/* model/ds2.c — the deepseek2 forward pass as llama.cpp computes it (MLA in the absorbed form,
 * DeepSeekMoE routing, YaRN RoPE) over immutable weights (weights.c) and a run context of scratch
 * buffers and threads (llama2.c's RunState), plus the public model_* entry points. */
#define _GNU_SOURCE
#include "weights.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The mutable half of a model: what one evaluation writes. The activation buffers are carved from
 * one grow-only block sized for the largest batch so far (run_reserve); nothing in them outlives a
 * call. Owns the block, the attention scratch, the pool and the product scheduler. */
typedef struct run {
    const model_kernels *k;
    bool use_sgemm;
    int n_threads;
    model_pool *pool; /* created at the first evaluation (and again after a thread change) */
    model_mm *mm;     /* dispatches on pool */
    float *block;
    size_t block_len;
    float *x, *a;       /* [T][D] residual stream, its normed copy (and the head's input) */
    float *q, *kv, *o;  /* [T][H*Dk] queries, [T][R + Dr] latent + rope, [T][H*Dv] values */
    float *h, *f, *out; /* [T][D] after attention, its normed copy, a sub-layer's output */
    float *g, *u;       /* [T][wide] gate and up products (dense, routed and shared experts) */
    float *probs;       /* [T][E] router scores */
    float *xe, *ye;     /* [T*K][D] inputs grouped by expert; [T*(K+1)][D] expert outputs */
    int *top, *row_of;  /* [T][K] selected experts; the row of each in xe/ye */
    float *wts;         /* [T][K] their weights */
    mm_op *ops;         /* a batch of products: two per expert and two shared, or one per head */
    float *qa, *ol;     /* [T][H][R + Dr] absorbed queries, [T][H][R] latent attention outputs */
    float *att;         /* each thread's attention scores */
    size_t att_len, att_stride;
    int experts_run; /* routed experts the last evaluation ran, over all layers */
} run;

struct model {
    model_weights w; /* read-only after model_load */
    run r;
};

/* ---- building blocks ---- */

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
static void rope(const model_weights *ws, float *x, int n_rot, int pos)
{
    float theta_scale = powf(ws->hp.rope_base, -2.0f / (float)n_rot);
    float theta = (float)pos;
    for (int i0 = 0; i0 < n_rot; i0 += 2) {
        float t_extrap = theta, t_interp = ws->freq_scale * t_extrap, th = t_interp;
        if (ws->ext_factor != 0) {
            float y =
                ((float)(i0 / 2) - ws->yarn_low) / fmaxf(0.001f, ws->yarn_high - ws->yarn_low);
            float mix = (1 - fminf(1, fmaxf(0, y))) * ws->ext_factor;
            th = t_interp * (1 - mix) + t_extrap * mix;
        }
        float c = cosf(th) * ws->rope_mag, s = sinf(th) * ws->rope_mag;
        float a = x[i0], b = x[i0 + 1];
        x[i0] = a * c - b * s;
        x[i0 + 1] = a * s + b * c;
        theta *= theta_scale;
    }
}

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

/* Carve n floats (16-float aligned) at *off of the block; with block NULL only count them. */
static void *carve(float *block, size_t *off, size_t n)
{
    void *p = block ? block + *off : NULL;
    *off += (n + 15) & ~(size_t)15;
    return p;
}

/* Point the named buffers into block for T tokens (block NULL: only measure); returns the floats
 * used (floats and ints are both 4 bytes). */
static size_t run_layout(run *rs, float *block, const model_hparams *hp, size_t t)
{
    size_t D = (size_t)hp->n_embd, H = (size_t)hp->n_head, Dk = (size_t)(hp->qk_nope + hp->qk_rope);
    size_t R = (size_t)hp->kv_lora_rank, row = R + (size_t)hp->qk_rope, off = 0;
    /* the expert counts were checked only if the model has MoE layers: otherwise they mean nothing
     */
    bool moe = hp->n_dense < hp->n_layer;
    size_t K = moe ? (size_t)hp->n_expert_used : 1, E = moe ? (size_t)hp->n_expert : 0;
    size_t Fe = moe ? (size_t)hp->n_ff_exp : 0, S = moe ? (size_t)hp->n_shared : 0;
    size_t wide = max3((size_t)hp->n_ff, Fe * (S ? S : 1), (size_t)hp->q_lora_rank);
    /* all routed experts' hidden rows and the shared experts' side by side */
    wide = max3(wide, Fe * (K + S), D);
    size_t n_ops = max3(2 * E + 2, H, 0);
    rs->x = carve(block, &off, t * D), rs->a = carve(block, &off, t * D);
    rs->q = carve(block, &off, t * H * Dk), rs->kv = carve(block, &off, t * row);
    rs->o = carve(block, &off, t * H * (size_t)hp->v_head);
    rs->h = carve(block, &off, t * D), rs->f = carve(block, &off, t * D);
    rs->out = carve(block, &off, t * D);
    rs->g = carve(block, &off, t * wide), rs->u = carve(block, &off, t * wide);
    rs->probs = carve(block, &off, t * (E + 1));
    rs->xe = carve(block, &off, t * K * D), rs->ye = carve(block, &off, t * (K + 1) * D);
    rs->top = carve(block, &off, t * K), rs->row_of = carve(block, &off, t * K);
    rs->wts = carve(block, &off, t * K);
    rs->ops = carve(block, &off, (n_ops * sizeof(mm_op) + sizeof(float) - 1) / sizeof(float));
    rs->qa = carve(block, &off, t * H * row), rs->ol = carve(block, &off, t * H * R);
    return off;
}

/* Scratch for T tokens against a cache of n_ctx rows, and the threads, before an evaluation. */
static void run_reserve(run *rs, const model_hparams *hp, int T, int n_ctx)
{
    if (!rs->pool) rs->pool = model__pool_new(rs->n_threads);
    if (!rs->mm) rs->mm = model__mm_new(rs->k, rs->pool, rs->use_sgemm);
    size_t floats = run_layout(rs, NULL, hp, (size_t)T);
    model__grow((void **)&rs->block, &rs->block_len, floats * sizeof(float));
    run_layout(rs, rs->block, hp, (size_t)T);
    /* per-thread attention scratch: G x n_ctx scores (n_ctx is the cache capacity, which grows
     * by doubling, so this is not reallocated at every token) */
    size_t per = (size_t)att_group(hp->n_head) * (size_t)n_ctx;
    rs->att_stride = (per + 15) & ~(size_t)15;
    model__grow((void **)&rs->att, &rs->att_len,
                rs->att_stride * (size_t)model__pool_threads(rs->pool) * sizeof(float));
}

/* ---- attention ---- */

typedef struct att_task {
    const model_hparams *hp;
    run *rs;
    const float *rows; /* this layer's cache rows */
    const float *qa;   /* [T][H][R + Dr]: absorbed queries */
    float *ol;         /* [T][H][R]: attention outputs in the latent space */
    int n_past;
} att_task;

/* Scores of G heads (queries qa, row floats apart) against the first n_kv latent rows, as
 * G x n_kv. */
static void group_scores(const model_kernels *k, const float *rows, int row, int n_kv,
                         const float *qa, int G, float *att)
{
    for (int s = 0; s < n_kv; s++) {
        const float *kv = rows + (size_t)s * row;
        if (k->dot_f32_heads)
            k->dot_f32_heads(row, kv, qa, (size_t)row, G, att + s, (size_t)n_kv);
        else
            for (int g = 0; g < G; g++)
                att[(size_t)g * n_kv + s] = k->dot_f32(row, qa + (size_t)g * row, kv);
    }
}

/* ol[g] = sum over s of att[g][s] * the latent part (R floats) of row s. */
static void group_mix(const model_kernels *k, const float *rows, int row, int R, int n_kv,
                      const float *att, int G, float *ol)
{
    if (k->mix_f32_heads) {
        k->mix_f32_heads(R, n_kv, rows, (size_t)row, att, (size_t)n_kv, G, ol, (size_t)R);
        return;
    }
    memset(ol, 0, sizeof(float) * (size_t)G * R);
    for (int s = 0; s < n_kv; s++) {
        const float *kv = rows + (size_t)s * row;
        for (int g = 0; g < G; g++)
            k->axpy_f32(R, att[(size_t)g * n_kv + s], kv, ol + (size_t)g * R);
    }
}

/* One (token, group of heads) item: attend over the latent rows with the absorbed queries. */
static void att_heads(void *ctx, int i0, int i1, int thread)
{
    const att_task *a = ctx;
    const model_kernels *k = a->rs->k;
    const model_hparams *hp = a->hp;
    int H = hp->n_head, R = hp->kv_lora_rank, row = R + hp->qk_rope, G = att_group(H),
        groups = H / G;
    float *att = a->rs->att + a->rs->att_stride * (size_t)thread; /* G x n_kv scores */
    for (int i = i0; i < i1; i++) {
        int t = i / groups, h0 = (i % groups) * G,
            n_kv = a->n_past + t + 1; /* causal: positions 0..p */
        size_t head = (size_t)t * H + (size_t)h0;
        group_scores(k, a->rows, row, n_kv, a->qa + head * row, G, att);
        for (int g = 0; g < G; g++) {
            float *sc = att + (size_t)g * n_kv;
            for (int s = 0; s < n_kv; s++) sc[s] *= hp->kq_scale;
            softmax(sc, n_kv);
        }
        group_mix(k, a->rows, row, R, n_kv, att, G, a->ol + head * R);
    }
}

/* Per-head products of all T tokens in one dispatch: Y[t][h] = W_h X[t][h] for each head h, the
 * head slices xs and ys floats wide within rows of H slices. */
static void per_head(run *rs, int H, const wt *w, const float *X, size_t xs, float *Y, size_t ys,
                     int T)
{
    for (int h = 0; h < H; h++)
        rs->ops[h] = (mm_op){.w = w,
                             .e = h,
                             .T = T,
                             .X = X + (size_t)h * xs,
                             .ldx = (size_t)H * xs,
                             .Y = Y + (size_t)h * ys,
                             .ldy = (size_t)H * ys};
    model__matmul_batch(rs->mm, rs->ops, H);
}

/* The queries q [T][H*Dk] and the latent kv [T][R + Dr] of the normed input a. */
static void qkv(const model_hparams *hp, run *rs, const layer *L, int T)
{
    int D = hp->n_embd, H = hp->n_head, Dk = hp->qk_nope + hp->qk_rope;
    size_t row = (size_t)(hp->kv_lora_rank + hp->qk_rope);
    if (hp->q_lora_rank > 0) {
        int Q = hp->q_lora_rank;
        model__matmul(rs->mm, &L->wq_a, 0, rs->a, T, (size_t)D, rs->g, (size_t)Q);
        for (int t = 0; t < T; t++)
            rmsnorm(rs->g + (size_t)t * Q, &L->q_a_norm, hp->rms_eps, Q, rs->g + (size_t)t * Q);
        model__matmul(rs->mm, &L->wq_b, 0, rs->g, T, (size_t)Q, rs->q, (size_t)H * Dk);
        model__matmul(rs->mm, &L->wkv_a, 0, rs->a, T, (size_t)D, rs->kv, row);
        return;
    }
    /* Lite: both read the normed input, so one dispatch */
    mm_op ops[2] = {
        {.w = &L->wq, .T = T, .X = rs->a, .ldx = (size_t)D, .Y = rs->q, .ldy = (size_t)H * Dk},
        {.w = &L->wkv_a, .T = T, .X = rs->a, .ldx = (size_t)D, .Y = rs->kv, .ldy = row}};
    model__matmul_batch(rs->mm, ops, 2);
}

/* Append the T tokens' latent rows to the cache (latent normed, k_pe roped) and rope the queries'
 * rope parts into qa beside their absorbed latent parts. */
static void latent_rows(const model_weights *ws, run *rs, const layer *L, float *rows, int T,
                        int n_past)
{
    const model_hparams *hp = &ws->hp;
    int H = hp->n_head, Dn = hp->qk_nope, Dr = hp->qk_rope, R = hp->kv_lora_rank;
    int Dk = Dn + Dr, row = R + Dr;
    for (int t = 0; t < T; t++) {
        float *kv = rs->kv + (size_t)t * row, *dst = rows + (size_t)(n_past + t) * row;
        rmsnorm(kv, &L->kv_a_norm, hp->rms_eps, R, dst); /* the norm covers the latent only */
        memcpy(dst + R, kv + R, sizeof(float) * (size_t)Dr);
        rope(ws, dst + R, Dr, n_past + t);
        for (int h = 0; h < H; h++) {
            float *qa = rs->qa + ((size_t)t * H + (size_t)h) * row + R;
            memcpy(qa, rs->q + (size_t)t * H * Dk + (size_t)h * Dk + Dn,
                   sizeof(float) * (size_t)Dr);
            rope(ws, qa, Dr, n_past + t);
        }
    }
}

/* Multi-head latent attention with absorbed weights: the queries are taken into the latent space
 * by W_UK (per head), attend over the cached latent rows, and come back through W_UV. */
static void attention(const model_weights *ws, run *rs, model_cache *c, const layer *L, int il,
                      int T, int n_past)
{
    const model_hparams *hp = &ws->hp;
    int D = hp->n_embd, H = hp->n_head, R = hp->kv_lora_rank, Dv = hp->v_head;
    size_t Dk = (size_t)(hp->qk_nope + hp->qk_rope), row = (size_t)(R + hp->qk_rope);
    qkv(hp, rs, L, T);
    float *rows = model__cache_rows(c, il);
    per_head(rs, H, &L->wk_b, rs->q, Dk, rs->qa, row, T); /* q_nope -> latent */
    latent_rows(ws, rs, L, rows, T, n_past);
    att_task a = {hp, rs, rows, rs->qa, rs->ol, n_past};
    model__pool_for(rs->pool, T * (H / att_group(H)), 1, att_heads, &a);
    per_head(rs, H, &L->wv_b, rs->ol, (size_t)R, rs->o, (size_t)Dv, T); /* latent -> v */
    model__matmul(rs->mm, &L->wo, 0, rs->o, T, (size_t)H * Dv, rs->out, (size_t)D);
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
static void swiglu(run *rs, int D, const wt *g, const wt *u, const wt *d, int e, const float *X,
                   int T, float *out)
{
    size_t F = (size_t)g->ne[1];
    mm_op gu[2];
    model__matmul_batch(rs->mm, gu, gate_up(gu, g, u, e, X, T, (size_t)D, rs->g, rs->u, F));
    for (size_t i = 0; i < (size_t)T * F; i++) rs->g[i] = silu(rs->g[i]) * rs->u[i];
    model__matmul(rs->mm, d, e, rs->g, T, F, out, (size_t)D);
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
static void route(const model_hparams *hp, float *p, int *top, float *w)
{
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

/* Route T tokens and copy each token's input to one row per selected expert, in expert order:
 * expert e's rows are start[e] .. start[e+1]-1 of xe; row_of[t K + j] is the row of token t's j-th
 * selected expert. */
static void group_by_expert(const model_hparams *hp, run *rs, const float *F, int T, int *start)
{
    int D = hp->n_embd, E = hp->n_expert, K = hp->n_expert_used;
    for (int t = 0; t < T; t++)
        route(hp, rs->probs + (size_t)t * E, rs->top + (size_t)t * K, rs->wts + (size_t)t * K);
    memset(start, 0, sizeof(int) * (size_t)(E + 1));
    for (int i = 0; i < T * K; i++) start[rs->top[i] + 1]++;
    for (int e = 0; e < E; e++) start[e + 1] += start[e];
    int fill[MAX_EXPERTS];
    memcpy(fill, start, sizeof(int) * (size_t)E);
    for (int t = 0; t < T; t++)
        for (int j = 0; j < K; j++) {
            int r = fill[rs->top[t * K + j]]++;
            rs->row_of[t * K + j] = r;
            memcpy(rs->xe + (size_t)r * D, F + (size_t)t * D, sizeof(float) * (size_t)D);
        }
}

/* The experts' SwiGLU: every gate and up product (each routed expert once for its rows, then the
 * shared experts over all T tokens) in one dispatch, every down product in a second. Routed outputs
 * land in ye's first T K rows, the shared ones in the T rows after. */
static void expert_ffn(const model_hparams *hp, run *rs, const layer *L, const float *F, int T,
                       const int *start)
{
    int D = hp->n_embd, E = hp->n_expert, K = hp->n_expert_used;
    size_t Fe = (size_t)L->gate_exps.ne[1], Fs = hp->n_shared > 0 ? (size_t)L->gate_sh.ne[1] : 0;
    float *gs = rs->g + (size_t)T * K * Fe,
          *us = rs->u + (size_t)T * K * Fe; /* the shared experts' part */
    mm_op *ops = rs->ops;
    int n = 0;
    for (int e = 0; e < E; e++) {
        int c = start[e + 1] - start[e];
        if (!c) continue;
        rs->experts_run++;
        n += gate_up(ops + n, &L->gate_exps, &L->up_exps, e, rs->xe + (size_t)start[e] * D, c,
                     (size_t)D, rs->g + (size_t)start[e] * Fe, rs->u + (size_t)start[e] * Fe, Fe);
    }
    if (Fs) n += gate_up(ops + n, &L->gate_sh, &L->up_sh, 0, F, T, (size_t)D, gs, us, Fs);
    model__matmul_batch(rs->mm, ops, n);
    for (size_t i = 0; i < (size_t)T * (K * Fe + Fs); i++) rs->g[i] = silu(rs->g[i]) * rs->u[i];
    n = 0;
    for (int e = 0; e < E; e++) {
        int c = start[e + 1] - start[e];
        if (c)
            ops[n++] = (mm_op){.w = &L->down_exps,
                               .e = e,
                               .T = c,
                               .X = rs->g + (size_t)start[e] * Fe,
                               .ldx = Fe,
                               .Y = rs->ye + (size_t)start[e] * D,
                               .ldy = (size_t)D};
    }
    if (Fs)
        ops[n++] = (mm_op){.w = &L->down_sh,
                           .T = T,
                           .X = gs,
                           .ldx = Fs,
                           .Y = rs->ye + (size_t)T * K * D,
                           .ldy = (size_t)D};
    model__matmul_batch(rs->mm, ops, n);
}

/* out[t] = the weighted routed outputs in selection order, then the shared experts' output: the
 * order of llama.cpp's sums, which float addition makes part of the result. */
static void combine(const model_hparams *hp, const run *rs, int T, bool shared, float *out)
{
    int D = hp->n_embd, K = hp->n_expert_used;
    const float *ys = rs->ye + (size_t)T * K * D;
    for (int t = 0; t < T; t++) {
        float *o = out + (size_t)t * D;
        for (int j = 0; j < K; j++) {
            const float *y = rs->ye + (size_t)rs->row_of[t * K + j] * D, w = rs->wts[t * K + j];
            if (j == 0)
                for (int i = 0; i < D; i++) o[i] = y[i] * w;
            else
                for (int i = 0; i < D; i++) o[i] += y[i] * w;
        }
        if (shared)
            for (int i = 0; i < D; i++) o[i] += ys[(size_t)t * D + i];
    }
}

/* DeepSeekMoE over T tokens: routed experts grouped by expert (each expert's tokens in one batch)
 * and the shared experts. */
static void moe(const model_hparams *hp, run *rs, const layer *L, const float *F, int T, float *out)
{
    int start[MAX_EXPERTS + 1];
    model__matmul(rs->mm, &L->router, 0, F, T, (size_t)hp->n_embd, rs->probs, (size_t)hp->n_expert);
    group_by_expert(hp, rs, F, T, start);
    expert_ffn(hp, rs, L, F, T, start);
    combine(hp, rs, T, hp->n_shared > 0, out);
}

/* ---- forward ---- */

/* One layer over T tokens: attention and the feed-forward, each added to its input (x -> h -> x).
 */
static void layer_forward(const model_weights *ws, run *rs, model_cache *c, int il, int T,
                          int n_past)
{
    const model_hparams *hp = &ws->hp;
    const layer *L = &ws->layers[il];
    int D = hp->n_embd;
    for (int t = 0; t < T; t++)
        rmsnorm(rs->x + (size_t)t * D, &L->attn_norm, hp->rms_eps, D, rs->a + (size_t)t * D);
    attention(ws, rs, c, L, il, T, n_past);
    for (size_t i = 0; i < (size_t)T * D; i++) rs->h[i] = rs->out[i] + rs->x[i];
    for (int t = 0; t < T; t++)
        rmsnorm(rs->h + (size_t)t * D, &L->ffn_norm, hp->rms_eps, D, rs->f + (size_t)t * D);
    if (il < hp->n_dense)
        swiglu(rs, D, &L->gate, &L->up, &L->down, 0, rs->f, T, rs->out);
    else
        moe(hp, rs, L, rs->f, T, rs->out);
    for (size_t i = 0; i < (size_t)T * D; i++) rs->x[i] = rs->out[i] + rs->h[i];
}

/* The output head over tokens [first, T): only the rows asked for pay for the vocabulary product.
 */
static void head(const model_weights *ws, run *rs, int first, int T, float *logits)
{
    const model_hparams *hp = &ws->hp;
    int D = hp->n_embd;
    for (int t = first; t < T; t++)
        rmsnorm(rs->x + (size_t)t * D, &ws->out_norm, hp->rms_eps, D,
                rs->a + (size_t)(t - first) * D);
    model__matmul(rs->mm, &ws->output, 0, rs->a, T - first, (size_t)D, logits, (size_t)hp->n_vocab);
}

static int check_tokens(const model_hparams *hp, const int32_t *tokens, int n, model_err *err)
{
    for (int t = 0; t < n; t++)
        if (tokens[t] < 0 || tokens[t] >= hp->n_vocab)
            return model__fail(err, "token id %d is outside the vocabulary (0..%d)", tokens[t],
                               hp->n_vocab - 1);
    return 0;
}

int model_eval(model *m, model_cache *c, const int32_t *tokens, int n, float *logits,
               enum model_logits_mode mode, const atomic_int *cancel, model_err *err)
{
    const model_weights *ws = &m->w;
    run *rs = &m->r;
    const model_hparams *hp = &ws->hp;
    int D = hp->n_embd, n_past = model_cache_len(c);
    if (n <= 0) return model__fail(err, "no tokens to evaluate");
    if (model__cache_model(c) != m) return model__fail(err, "cache belongs to another model");
    if (check_tokens(hp, tokens, n, err)) return -1;
    if (model__cache_reserve(c, n_past + n, err)) return -1;
    run_reserve(rs, hp, n, model__cache_cap(c));
    rs->experts_run = 0;
    for (int t = 0; t < n; t++)
        model__dequant(ws->tok_embd.type,
                       ws->tok_embd.data + (size_t)tokens[t] * ws->tok_embd.row_bytes,
                       rs->x + (size_t)t * D, D);
    for (int il = 0; il < hp->n_layer; il++) {
        if (cancel && atomic_load_explicit(cancel, memory_order_relaxed)) { /* length untouched */
            model__fail(err, "cancelled");
            return -2;
        }
        layer_forward(ws, rs, c, il, n, n_past);
    }
    model__cache_set_len(c, n_past + n);
    if (mode != MODEL_LOGITS_NONE) head(ws, rs, mode == MODEL_LOGITS_ALL ? 0 : n - 1, n, logits);
    return 0;
}

/* ---- the model object ---- */

model *model_load(const char *path, model_err *err)
{
    return model_load_opts(path, NULL, err);
}

model *model_load_opts(const char *path, const model_opts *opts, model_err *err)
{
    static const model_opts defaults = {0};
    const model_opts *o = opts ? opts : &defaults;
    model *m = calloc(1, sizeof *m);
    if (!m) {
        model__fail(err, "out of memory");
        return NULL;
    }
    m->r.k = model__kernels((int)o->kernels);
    /* sgemm is off by default: it sums in another order than the int8 kernels, so logits would
     * depend on how a prompt was chunked through the cache (on random models such differences grow)
     */
    m->r.use_sgemm = o->sgemm;
    model_set_threads(m, 0);
    openblas_set_num_threads(1); /* our pool splits the work; OpenBLAS must not add threads */
    if (model__weights_load(&m->w, path, o, err)) {
        model_free(m);
        return NULL;
    }
    return m;
}

static void run_free(run *rs)
{
    free(rs->block);
    free(rs->att);
    model__mm_free(rs->mm);
    model__pool_free(rs->pool);
}

void model_free(model *m)
{
    if (!m) return;
    run_free(&m->r);
    model__weights_free(&m->w);
    free(m);
}

const model_hparams *model_get_hparams(const model *m)
{
    return &m->w.hp;
}
const model_vocab *model_get_vocab(const model *m)
{
    return m->w.vocab;
}
const model_gguf *model_get_gguf(const model *m)
{
    return m->w.g;
}
bool model_weights_locked(const model *m)
{
    return m->w.locked;
}
size_t model_weight_bytes_per_token(const model *m)
{
    return model__weights_bytes_per_token(&m->w);
}

/* The pool and the scheduler's per-thread buffers are made again, lazily, for the new count. */
void model_set_threads(model *m, int n)
{
    run *rs = &m->r;
    if (n <= 0) n = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    if (n == rs->n_threads) return;
    model__mm_free(rs->mm);
    model__pool_free(rs->pool);
    rs->mm = NULL;
    rs->pool = NULL;
    rs->n_threads = n;
}

int model_get_threads(const model *m)
{
    return m->r.n_threads;
}

int model_last_experts(const model *m)
{
    return m->r.experts_run;
}
