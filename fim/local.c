/* fim/local.c — the in-process backend: the model runs here, with a persistent latent cache per
 * document. Each prompt keeps the longest common token prefix with what the document's cache holds
 * and evaluates only the rest; caches of all documents share one byte budget, least recently used
 * evicted first. Generation drafts tokens from the context (prompt lookup) and verifies them in one
 * evaluation with the accepted token. */
#define _GNU_SOURCE
#include "fim/fim_internal.h"
#include "base/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Drafts follow an earlier occurrence of the last 3 tokens, else of the last 2: a single token
 * recurs too often to predict what follows. On held-out C with the bundled model, 8 drafts per
 * step: 5 % accepted when single tokens matched too, 11 % from pairs and triples, 19 % from
 * triples alone, which then drafted too seldom (5.59 steps per completion against 5.45). */
enum { EVAL_CHUNK = 128, DRAFT_NGRAM = 3, DRAFT_NGRAM_MIN = 2 };

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
    int n_vocab;
    /* The last evaluation during generation: the accepted token and the drafts after it, with the
     * logits of each (rows). next() serves row `row`; an accepted token equal to the draft after it
     * moves to the next row without evaluating anything. */
    float *logits; /* [FIM_DRAFTS_MAX + 1][n_vocab] */
    int32_t batch[FIM_DRAFTS_MAX + 1];
    int n_rows, row;
    int max_drafts; /* this generation's (0: none) */
    int run;        /* drafts the next step may take: doubles while all are accepted, falls back
                     * to what was accepted at a rejection (a rejected draft costs a token's work) */
    int left;       /* tokens the engine may still accept */
    int drafted, accepted, steps;
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
    l->n_rows = 1, l->row = 0;
    l->max_drafts = g->drafts < FIM_DRAFTS_MAX ? g->drafts : FIM_DRAFTS_MAX;
    l->left = g->max_tokens;
    l->drafted = l->accepted = l->steps = 0;
    l->run = l->max_drafts > 0; /* one draft first */
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
    step->logits = l->logits + (size_t)l->row * (size_t)l->n_vocab;
    step->n_top = 0;
    return 0;
}

/* Prompt lookup: the tokens that followed the most recent earlier occurrence of the history's last
 * n-gram (n = DRAFT_NGRAM down to DRAFT_NGRAM_MIN) in the history itself (the prompt: prefix,
 * suffix, related code; and what was generated), at most max, never a control token. Returns how
 * many. */
static int draft(const model_vocab *v, const int32_t *h, size_t n, int max, int32_t *out)
{
    for (size_t g = DRAFT_NGRAM; g >= DRAFT_NGRAM_MIN; g--) {
        if (n <= g) continue;
        const int32_t *key = h + n - g;
        for (size_t i = n - g; i-- > 0;) {
            if (memcmp(h + i, key, sizeof *h * g)) continue;
            int k = 0;
            for (size_t j = i + g; j < n && k < max && !model_token_is_control(v, h[j]); j++)
                out[k++] = h[j];
            if (k) return k;
        }
    }
    return 0;
}

/* Evaluate tok, with drafts after it when the generation wants them: one model step whose rows
 * next() serves as long as the engine accepts the drafts. */
static int eval_step(local *l, int32_t tok, const atomic_int *cancel, fim_err *err)
{
    session *s = l->cur;
    fim__ids_push(&s->ids, &tok, 1);
    int max = l->run < l->left - 1 ? l->run : l->left - 1;
    int k = max > 0 ? draft(l->base.vocab, s->ids.v, s->ids.n, max, l->batch + 1) : 0;
    l->batch[0] = tok;
    model_err me = {{0}};
    int r = model_eval(l->m, s->cache, l->batch, 1 + k, l->logits,
                       k ? MODEL_LOGITS_ALL : MODEL_LOGITS_LAST, cancel, &me);
    if (r) s->ids.n--; /* the cache kept its length */
    if (r == -2) return 1;
    if (r) return fim__fail(err, "%s", me.msg);
    if (damaged(l, err)) return -1;
    fim__ids_push(&s->ids, l->batch + 1, (size_t)k);
    l->n_rows = 1 + k, l->row = 0;
    l->drafted += k, l->steps++;
    return 0;
}

static int local_accept(fim_backend *b, int32_t tok, const atomic_int *cancel, fim_err *err)
{
    local *l = (local *)b;
    if (!l->cur) return fim__fail(err, "no generation under way");
    l->left--;
    int unused = l->n_rows - l->row - 1; /* drafts after the current row */
    if (unused > 0 && l->batch[l->row + 1] == tok) {
        l->row++, l->accepted++;
        if (l->row == l->n_rows - 1)
            l->run = l->run * 2 < l->max_drafts ? l->run * 2 : l->max_drafts;
        return 0;
    }
    if (unused > 0) { /* the engine chose otherwise: the cache keeps only the agreed tokens */
        l->run = l->row > 0 ? l->row : 1;
        session *s = l->cur;
        s->ids.n -= (size_t)unused;
        model_cache_truncate(s->cache, (int)s->ids.n);
        l->n_rows = l->row + 1;
    }
    return eval_step(l, tok, cancel, err);
}

static void local_finish(fim_backend *b, bool cancelled, fim_stats *st)
{
    (void)cancelled;
    local *l = (local *)b;
    st->drafted = l->drafted, st->accepted = l->accepted, st->steps = l->steps;
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
    if (l) l->logits = malloc(sizeof(float) * (size_t)h->n_vocab * (FIM_DRAFTS_MAX + 1));
    if (!l || !l->logits) {
        free(l);
        fim__fail(err, "out of memory");
        return NULL;
    }
    l->base.ops = &local_ops;
    l->base.vocab = model_get_vocab(m);
    l->base.n_ctx = h->n_ctx_train;
    l->m = m;
    l->n_vocab = h->n_vocab;
    return &l->base;
}
