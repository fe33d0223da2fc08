/* model/cache.c — the latent KV cache: per layer, one f32 row per token [normed c_kv (R) | roped
 * k_pe (Dr)], grown by doubling up to the training context. The forward pass (ds2.c) writes the
 * rows through the model__cache_* calls of model_internal.h. */
#include "model_internal.h"

#include <stdlib.h>

struct model_cache {
    const model *m; /* the model the rows belong to (model_eval checks it) */
    int len, cap;
    int n_layer, n_ctx; /* copied from the model's hyper-parameters */
    int row;            /* R + Dr */
    float **rows;       /* [n_layer] -> [cap][R | Dr] */
};

size_t model_cache_bytes_per_token(const model *m)
{
    const model_hparams *hp = model_get_hparams(m);
    return (size_t)(hp->kv_lora_rank + hp->qk_rope) * (size_t)hp->n_layer * sizeof(float);
}

model_cache *model_cache_new(const model *m, model_err *err)
{
    const model_hparams *hp = model_get_hparams(m);
    model_cache *c = calloc(1, sizeof *c);
    if (c) c->rows = calloc((size_t)hp->n_layer, sizeof *c->rows);
    if (!c || !c->rows) {
        free(c);
        model__fail(err, "out of memory");
        return NULL;
    }
    c->m = m;
    c->n_layer = hp->n_layer;
    c->n_ctx = hp->n_ctx_train;
    c->row = hp->kv_lora_rank + hp->qk_rope;
    return c;
}

void model_cache_free(model_cache *c)
{
    if (!c) return;
    for (int il = 0; il < c->n_layer; il++) free(c->rows[il]);
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
    return (size_t)c->cap * (size_t)c->row * sizeof(float) * (size_t)c->n_layer;
}

const model *model__cache_model(const model_cache *c)
{
    return c->m;
}

int model__cache_reserve(model_cache *c, int need, model_err *err)
{
    if (need <= c->cap) return 0;
    if (need > c->n_ctx)
        return model__fail(err, "context of %d tokens exceeds the model's %d", need, c->n_ctx);
    /* doubling: a growing document reallocates log2(n) times, not at every token */
    int cap = c->cap ? c->cap : 64;
    while (cap < need) cap *= 2;
    if (cap > c->n_ctx) cap = c->n_ctx;
    for (int il = 0; il < c->n_layer; il++) {
        float *p = realloc(c->rows[il], sizeof(float) * (size_t)cap * (size_t)c->row);
        if (!p) return model__fail(err, "out of memory for a %d-token cache", cap);
        c->rows[il] = p;
    }
    c->cap = cap;
    return 0;
}

float *model__cache_rows(model_cache *c, int il)
{
    return c->rows[il];
}

int model__cache_cap(const model_cache *c)
{
    return c->cap;
}

void model__cache_set_len(model_cache *c, int n)
{
    c->len = n;
}
