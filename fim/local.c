/* fim/local.c — the in-process backend: the model runs here, with a persistent latent cache per
 * document. Each prompt keeps the longest common token prefix with what the document's cache holds
 * and evaluates only the rest; caches of all documents share one byte budget, least recently used
 * evicted first. */
#define _GNU_SOURCE
#include "fim/fim_internal.h"
#include "base/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { EVAL_CHUNK = 128 };

typedef struct session {
    char *doc;
    model_cache *cache;
    fim_ids_vec ids; /* the tokens whose latent rows the cache holds */
    uint64_t used;   /* LRU clock */
} session;

typedef struct local {
    fim_backend base;
    model *m;
    session *s;
    int n, cap;
    uint64_t clock;
    session *cur;  /* the session of the generation under way */
    size_t budget; /* its byte budget for all caches */
    float *logits; /* [n_vocab] */
} local;

static void session_free(session *s)
{
    free(s->doc);
    model_cache_free(s->cache);
    free(s->ids.v);
}

/* The weights' file was truncated under its mapping (model_gguf_damaged): nothing computed from it
 * can be trusted, so every step fails with this until the model is loaded again. */
static int damaged(const local *l, fim_err *err)
{
    const model_gguf *g = model_get_gguf(l->m);
    if (!model_gguf_damaged(g)) return 0;
    return fim__fail(err, "the model file was truncated while in use; it must be loaded again");
}

static size_t local_cache_bytes(const fim_backend *b)
{
    const local *l = (const local *)b;
    size_t bytes = 0;
    for (int i = 0; i < l->n; i++) bytes += model_cache_bytes(l->s[i].cache);
    return bytes;
}

static int local_n_docs(const fim_backend *b)
{
    return ((const local *)b)->n;
}

static void drop(local *l, int i)
{
    if (l->cur == &l->s[i]) l->cur = NULL;
    session_free(&l->s[i]);
    l->s[i] = l->s[--l->n];
}

static void local_close_doc(fim_backend *b, const char *doc)
{
    local *l = (local *)b;
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->s[i].doc, doc)) {
            drop(l, i);
            return;
        }
}

static session *session_for(local *l, const char *doc, fim_err *err)
{
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->s[i].doc, doc)) return &l->s[i];
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 8;
        session *p = base_xrealloc(l->s, sizeof *p * (size_t)cap);
        l->s = p;
        l->cap = cap;
    }
    model_err me = {{0}};
    session *s = &l->s[l->n];
    memset(s, 0, sizeof *s);
    s->cache = model_cache_new(l->m, &me);
    s->doc = strdup(doc);
    if (!s->cache || !s->doc) {
        free(s->doc);
        model_cache_free(s->cache);
        fim__fail(err, "%s", me.msg[0] ? me.msg : "out of memory");
        return NULL;
    }
    l->n++;
    return s;
}

/* Evict least recently used caches (never `keep`) until all fit the budget. */
static void evict(local *l, const char *keep, size_t budget)
{
    while (local_cache_bytes(&l->base) > budget && l->n > 1) {
        int lru = -1;
        for (int i = 0; i < l->n; i++)
            if (strcmp(l->s[i].doc, keep) && (lru < 0 || l->s[i].used < l->s[lru].used)) lru = i;
        if (lru < 0) return;
        drop(l, lru);
    }
}

/* Bring the session's cache to the prompt, evaluating only what differs; logits of the last token.
 */
static int local_start(fim_backend *b, const fim_gen *g, const atomic_int *cancel, fim_stats *st,
                       fim_err *err)
{
    local *l = (local *)b;
    l->cur = NULL;
    if (damaged(l, err)) return -1;
    if (g->n == 0) return fim__fail(err, "empty prompt");
    session *s = session_for(l, g->doc, err);
    if (!s) return -1;
    s->used = ++l->clock;
    l->budget = g->cache_bytes;
    size_t lcp = 0, held = (size_t)model_cache_len(s->cache);
    if (held > s->ids.n) held = s->ids.n;
    while (lcp < held && lcp < g->n && s->ids.v[lcp] == g->ids[lcp]) lcp++;
    if (lcp == g->n) lcp--; /* the last token is evaluated again for its logits */
    model_cache_truncate(s->cache, (int)lcp);
    s->ids.n = lcp;
    st->reused = (int)lcp;
    model_err me = {{0}};
    for (size_t at = lcp; at < g->n; at += EVAL_CHUNK) {
        int k = (int)(g->n - at < EVAL_CHUNK ? g->n - at : EVAL_CHUNK);
        bool last = at + (size_t)k == g->n;
        int r = model_eval(l->m, s->cache, g->ids + at, k, l->logits,
                           last ? MODEL_LOGITS_LAST : MODEL_LOGITS_NONE, cancel, &me);
        if (r == -2) return 1;
        if (r) return fim__fail(err, "%s", me.msg);
        if (damaged(l, err)) return -1;
        fim__ids_push(&s->ids, g->ids + at, (size_t)k);
        st->evaluated += k;
    }
    l->cur = s;
    return 0;
}

static int local_next(fim_backend *b, fim_step *step, const atomic_int *cancel, fim_stats *st,
                      fim_err *err)
{
    (void)cancel, (void)st;
    local *l = (local *)b;
    if (!l->cur) return fim__fail(err, "no generation under way");
    step->token = -1;
    step->logits = l->logits;
    step->n_top = 0;
    return 0;
}

static int local_accept(fim_backend *b, int32_t tok, const atomic_int *cancel, fim_err *err)
{
    local *l = (local *)b;
    if (!l->cur) return fim__fail(err, "no generation under way");
    model_err me = {{0}};
    int r = model_eval(l->m, l->cur->cache, &tok, 1, l->logits, MODEL_LOGITS_LAST, cancel, &me);
    if (r == -2) return 1;
    if (r) return fim__fail(err, "%s", me.msg);
    if (damaged(l, err)) return -1;
    fim__ids_push(&l->cur->ids, &tok, 1);
    return 0;
}

static void local_finish(fim_backend *b, bool cancelled, fim_stats *st)
{
    (void)cancelled, (void)st;
    local *l = (local *)b;
    if (l->cur) {
        char *keep = l->cur->doc;
        l->cur = NULL;
        evict(l, keep, l->budget);
    }
}

static void local_status(const fim_backend *b, fim_backend_status *out)
{
    const local *l = (const local *)b;
    const model_hparams *h = model_get_hparams(l->m);
    snprintf(out->kind, sizeof out->kind, "in-process");
    snprintf(out->desc, sizeof out->desc, "deepseek2 %d layers, %d experts, vocab %d", h->n_layer,
             h->n_expert, h->n_vocab);
    out->damaged = model_gguf_damaged(model_get_gguf(l->m));
    snprintf(out->health, sizeof out->health, "%s",
             out->damaged ? "the model file was truncated while in use" : "ok");
    out->threads = model_get_threads(l->m);
    out->prompt_ids = true;
}

static void local_free(fim_backend *b)
{
    local *l = (local *)b;
    for (int i = 0; i < l->n; i++) session_free(&l->s[i]);
    free(l->s);
    free(l->logits);
    free(l);
}

static const fim_backend_ops local_ops = {
    .start = local_start,
    .next = local_next,
    .accept = local_accept,
    .finish = local_finish,
    .close_doc = local_close_doc,
    .cache_bytes = local_cache_bytes,
    .n_docs = local_n_docs,
    .status = local_status,
    .free = local_free,
};

fim_backend *fim__local_new(model *m, fim_err *err)
{
    local *l = calloc(1, sizeof *l);
    const model_hparams *h = model_get_hparams(m);
    if (l) l->logits = malloc(sizeof(float) * (size_t)h->n_vocab);
    if (!l || !l->logits) {
        free(l);
        fim__fail(err, "out of memory");
        return NULL;
    }
    l->base.ops = &local_ops;
    l->base.vocab = model_get_vocab(m);
    l->base.n_ctx = h->n_ctx_train;
    l->m = m;
    return &l->base;
}
