/* fim/engine.c — completions with a persistent latent cache per document: each request keeps the
 * longest common token prefix with what the document's cache holds and evaluates only the rest;
 * caches of all documents share one byte budget with least-recently-used eviction. Then decoding
 * (greedy, or temperature + top-p) through the stop rules of decode.c. */
#define _GNU_SOURCE
#include "fim/fim_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { EVAL_CHUNK = 128, TOP_K = 40 };

typedef struct session {
    char *doc;
    model_cache *cache;
    fim_ids_vec ids;   /* the tokens whose latent rows the cache holds */
    uint64_t used;     /* LRU clock */
} session;

struct fim_engine {
    model *m;
    session *s;
    int n, cap;
    uint64_t clock;
    float *logits;     /* [n_vocab] */
    float *probs;      /* sampling scratch [n_vocab] */
};

void fim_config_default(fim_config *c)
{
    c->max_tokens = 64;
    c->prefix_tokens = 1024;
    c->suffix_tokens = 256;
    c->cache_bytes = (size_t)1 << 30;
    c->temperature = 0;
    c->top_p = 0.95f;
    c->seed = 0x5eed;
}

const char *fim_stop_name(enum fim_stop s)
{
    static const char *names[] = {"eos", "max_tokens", "line_end", "indent", "suffix_repeat",
                                  "control", "cancelled"};
    return (unsigned)s < sizeof names / sizeof *names ? names[s] : "unknown";
}

fim_engine *fim_engine_new(model *m, fim_err *err)
{
    fim_engine *e = calloc(1, sizeof *e);
    int nv = model_get_hparams(m)->n_vocab;
    if (e) {
        e->logits = malloc(sizeof(float) * (size_t)nv);
        e->probs = malloc(sizeof(float) * (size_t)nv);
    }
    if (!e || !e->logits || !e->probs) {
        fim_engine_free(e);
        fim__fail(err, "out of memory");
        return NULL;
    }
    e->m = m;
    return e;
}

static void session_free(session *s)
{
    free(s->doc);
    model_cache_free(s->cache);
    free(s->ids.v);
}

void fim_engine_free(fim_engine *e)
{
    if (!e) return;
    for (int i = 0; i < e->n; i++) session_free(&e->s[i]);
    free(e->s);
    free(e->logits);
    free(e->probs);
    free(e);
}

void fim_engine_close_doc(fim_engine *e, const char *doc)
{
    for (int i = 0; i < e->n; i++)
        if (!strcmp(e->s[i].doc, doc)) {
            session_free(&e->s[i]);
            e->s[i] = e->s[--e->n];
            return;
        }
}

size_t fim_engine_cache_bytes(const fim_engine *e)
{
    size_t b = 0;
    for (int i = 0; i < e->n; i++) b += model_cache_bytes(e->s[i].cache);
    return b;
}

int fim_engine_n_docs(const fim_engine *e)
{
    return e->n;
}

static session *session_for(fim_engine *e, const char *doc, fim_err *err)
{
    for (int i = 0; i < e->n; i++)
        if (!strcmp(e->s[i].doc, doc)) return &e->s[i];
    if (e->n == e->cap) {
        int cap = e->cap ? e->cap * 2 : 8;
        session *p = realloc(e->s, sizeof *p * (size_t)cap);
        if (!p) abort();
        e->s = p;
        e->cap = cap;
    }
    model_err me = {{0}};
    session *s = &e->s[e->n];
    memset(s, 0, sizeof *s);
    s->cache = model_cache_new(e->m, &me);
    s->doc = strdup(doc);
    if (!s->cache || !s->doc) {
        free(s->doc);
        model_cache_free(s->cache);
        fim__fail(err, "%s", me.msg[0] ? me.msg : "out of memory");
        return NULL;
    }
    e->n++;
    return s;
}

/* Evict least recently used caches (never `keep`) until all fit the budget. */
static void evict(fim_engine *e, const char *keep, size_t budget)
{
    while (fim_engine_cache_bytes(e) > budget && e->n > 1) {
        int lru = -1;
        for (int i = 0; i < e->n; i++)
            if (strcmp(e->s[i].doc, keep) && (lru < 0 || e->s[i].used < e->s[lru].used)) lru = i;
        if (lru < 0) return;
        session_free(&e->s[lru]);
        e->s[lru] = e->s[--e->n];
    }
}

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return *s;
}

/* Greedy (lowest id on ties) or temperature sampling over the TOP_K best, cut at top_p. */
static int32_t sample(fim_engine *e, int nv, const fim_config *cfg, uint64_t *rng)
{
    const float *l = e->logits;
    if (cfg->temperature <= 0) {
        int32_t best = 0;
        for (int i = 1; i < nv; i++)
            if (l[i] > l[best]) best = i;
        return best;
    }
    int32_t top[TOP_K];
    int k = 0;
    for (int i = 0; i < nv; i++) { /* insertion into a small sorted list */
        if (k == TOP_K && l[i] <= l[top[k - 1]]) continue;
        int j = k < TOP_K ? k++ : k - 1;
        while (j > 0 && l[top[j - 1]] < l[i]) top[j] = top[j - 1], j--;
        top[j] = i;
    }
    double p[TOP_K], sum = 0;
    for (int j = 0; j < k; j++) sum += p[j] = exp((l[top[j]] - l[top[0]]) / cfg->temperature);
    double acc = 0;
    int keep = k;
    for (int j = 0; j < k; j++) {
        acc += p[j] / sum;
        if (acc >= cfg->top_p) {
            keep = j + 1;
            break;
        }
    }
    double total = 0;
    for (int j = 0; j < keep; j++) total += p[j];
    double r = (double)(next_rand(rng) >> 11) / 9007199254740992.0 * total;
    for (int j = 0; j < keep; j++) {
        if (r < p[j]) return top[j];
        r -= p[j];
    }
    return top[keep - 1];
}

/* Bring the session's cache to `prompt`, evaluating only what differs; logits of the last token. */
static int prefill(fim_engine *e, session *s, const fim_ids_vec *prompt, const atomic_int *cancel,
                   fim_stats *st, fim_err *err)
{
    size_t lcp = 0, held = (size_t)model_cache_len(s->cache);
    if (held > s->ids.n) held = s->ids.n;
    while (lcp < held && lcp < prompt->n && s->ids.v[lcp] == prompt->v[lcp]) lcp++;
    if (lcp == prompt->n) lcp--; /* the last token is evaluated again for its logits */
    model_cache_truncate(s->cache, (int)lcp);
    s->ids.n = lcp;
    st->reused = (int)lcp;
    model_err me = {{0}};
    for (size_t at = lcp; at < prompt->n; at += EVAL_CHUNK) {
        int k = (int)(prompt->n - at < EVAL_CHUNK ? prompt->n - at : EVAL_CHUNK);
        bool last = at + (size_t)k == prompt->n;
        int r = model_eval(e->m, s->cache, prompt->v + at, k, e->logits,
                           last ? MODEL_LOGITS_LAST : MODEL_LOGITS_NONE, cancel, &me);
        if (r == -2) return 1;
        if (r) return fim__fail(err, "%s", me.msg);
        fim__ids_push(&s->ids, prompt->v + at, (size_t)k);
        st->evaluated += k;
    }
    return 0;
}

int fim_prompt(fim_engine *e, const fim_request *req, const fim_config *cfg, int32_t **ids,
               size_t *n, fim_err *err)
{
    fim_ids_vec p = {0};
    if (fim__build_prompt(model_get_vocab(e->m), req, cfg, &p, err)) {
        free(p.v);
        return -1;
    }
    *ids = p.v;
    *n = p.n;
    return 0;
}

int fim_complete(fim_engine *e, const fim_request *req, const fim_config *cfg,
                 const atomic_int *cancel, char **out, fim_stats *st, fim_err *err)
{
    const model_vocab *v = model_get_vocab(e->m);
    int nv = model_get_hparams(e->m)->n_vocab;
    memset(st, 0, sizeof *st);
    *out = NULL;
    double t0 = now_ms();
    fim_ids_vec prompt = {0};
    if (fim__build_prompt(v, req, cfg, &prompt, err)) {
        free(prompt.v);
        return -1;
    }
    st->prompt_tokens = (int)prompt.n;
    session *s = session_for(e, req->doc, err);
    if (!s) {
        free(prompt.v);
        return -1;
    }
    s->used = ++e->clock;
    int r = prefill(e, s, &prompt, cancel, st, err);
    free(prompt.v);
    st->prompt_ms = now_ms() - t0;
    if (r) {
        st->stop = FIM_STOP_CANCELLED;
        return r;
    }
    fim_decoder d;
    fim__decoder_init(&d, req->text, req->len, req->cursor);
    st->multi_line = d.multi_line;
    uint64_t rng = cfg->seed | 1;
    double t1 = now_ms();
    model_err me = {{0}};
    for (;;) {
        if (cancel && atomic_load_explicit(cancel, memory_order_relaxed)) {
            r = 1;
            break;
        }
        int32_t tok = sample(e, nv, cfg, &rng);
        if (tok == model_vocab_eos(v) || model_token_is_control(v, tok)) {
            d.stop = FIM_STOP_EOS;
            break;
        }
        char bytes[256];
        int nb = model_token_bytes(v, tok, bytes, sizeof bytes);
        st->generated++;
        if (fim__decoder_push(&d, bytes, (size_t)(nb < (int)sizeof bytes ? nb : (int)sizeof bytes))) break;
        if (st->generated >= cfg->max_tokens) {
            d.stop = FIM_STOP_MAX_TOKENS;
            break;
        }
        int er = model_eval(e->m, s->cache, &tok, 1, e->logits, MODEL_LOGITS_LAST, cancel, &me);
        if (er == -2) {
            r = 1;
            break;
        }
        if (er) {
            r = fim__fail(err, "%s", me.msg);
            break;
        }
        fim__ids_push(&s->ids, &tok, 1);
    }
    st->gen_ms = now_ms() - t1;
    if (r == 0) {
        *out = fim__decoder_finish(&d);
        st->stop = d.stop;
    } else if (r == 1) {
        st->stop = FIM_STOP_CANCELLED;
    }
    fim__decoder_free(&d);
    evict(e, req->doc, cfg->cache_bytes);
    return r;
}
