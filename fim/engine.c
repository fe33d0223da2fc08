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

enum { EVAL_CHUNK = 128, TOP_K = 40, SUFFIX_HEAD = 6 };

typedef struct session {
    char *doc;
    model_cache *cache;
    fim_ids_vec ids;   /* the tokens whose latent rows the cache holds */
    fim_window_memo memo; /* the prompt windows' last cut points */
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
    memset(c, 0, sizeof *c);
    c->max_tokens = 64;
    c->prefix_tokens = 1024;
    c->suffix_tokens = 256;
    c->related_tokens = 384;
    c->cache_bytes = (size_t)1 << 30;
    c->temperature = 0;
    c->top_p = 0.95f;
    c->seed = 0x5eed;
}

void fim_config_fit(fim_config *c, int n_ctx)
{
    if (n_ctx <= 0) return;
    int room = n_ctx - c->max_tokens;
    if (room < n_ctx / 2) { /* keep at least half the context for the prompt */
        room = n_ctx / 2;
        c->max_tokens = n_ctx - room;
    }
    if (c->prefix_tokens + c->suffix_tokens + c->related_tokens + 4 <= room) return;
    fim_config_budget(c, room);
}

void fim_config_budget(fim_config *c, int budget)
{
    if (budget < 16) budget = 16;
    /* measured with `fimd bench-context`: below ~600 tokens the local window is worth more than
     * anything else; above, definitions and similar code from elsewhere pay */
    c->related_tokens = budget * 3 / 16 - 96 > 0 ? budget * 3 / 16 - 96 : 0;
    c->suffix_tokens = budget / 4;
    c->prefix_tokens = budget - c->related_tokens - c->suffix_tokens - 4; /* BOS and 3 FIM markers */
}

const char *fim_stop_name(enum fim_stop s)
{
    static const char *names[] = {"eos", "max_tokens", "line_end", "indent", "suffix_repeat",
                                  "control", "cancelled", "block_end", "unbalanced", "repetition"};
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

/* The request's context: its own, or one made from its text (freed by the caller via *made). */
static const fim_context *request_context(const fim_request *req, fim_context **made)
{
    *made = NULL;
    if (req->ctx) return req->ctx;
    size_t len = req->len, cursor = req->cursor < len ? req->cursor : len;
    *made = fim__context_from_text(req->doc, req->language, req->text ? req->text : "", len, cursor);
    return *made;
}

int fim_prompt_ids(const model_vocab *v, const fim_context *ctx, const fim_config *cfg,
                   int32_t **ids, size_t *n, fim_err *err)
{
    fim_ids_vec p = {0};
    if (fim__build_prompt(v, ctx, cfg, NULL, &p, err)) {
        free(p.v);
        return -1;
    }
    *ids = p.v;
    *n = p.n;
    return 0;
}

int fim_prompt(fim_engine *e, const fim_request *req, const fim_config *cfg, int32_t **ids,
               size_t *n, fim_err *err)
{
    fim_context *made;
    const fim_context *c = request_context(req, &made);
    if (!c) return fim__fail(err, "out of memory");
    int rc = fim_prompt_ids(model_get_vocab(e->m), c, cfg, ids, n, err);
    fim_context_free(made);
    return rc;
}

/* The suffix's first tokens as the prompt has them (between <fim_hole> and <fim_end>). */
static void suffix_head(const model_vocab *v, const fim_ids_vec *prompt, int32_t *out, int *n)
{
    model_fim_ids f;
    model_err me = {{0}};
    *n = 0;
    if (model_vocab_fim(v, &f, &me)) return;
    size_t h = 0;
    while (h < prompt->n && prompt->v[h] != f.hole) h++;
    for (size_t i = h + 1; i < prompt->n && prompt->v[i] != f.end && *n < SUFFIX_HEAD; i++) out[(*n)++] = prompt->v[i];
}

/* The last k generated tokens equal the suffix's first k (k = SUFFIX_HEAD, or the whole suffix
 * when shorter, and at least 3): the model is writing what follows the cursor. */
static bool repeats_suffix(const fim_ids_vec *gen, const int32_t *head, int n_head)
{
    int k = n_head;
    if (k < 3 || gen->n < (size_t)k) return false;
    return !memcmp(gen->v + gen->n - (size_t)k, head, sizeof *head * (size_t)k);
}

/* Token healing. The cursor line's text before the cursor ends the prompt, and its last token is
 * often one the model rarely saw there: "    " before a word is " " + "   word" in training text,
 * and "name" may be the head of "name);". So the last token is taken out of the prompt and the first
 * generated tokens must spell its bytes again (any token that starts with them, or a piece of them);
 * only what comes after them is the completion. */
typedef struct heal {
    char text[256];
    size_t len, at; /* the bytes to spell again, and how many are spelled */
} heal;

static void heal_take(const model_vocab *v, fim_ids_vec *prompt, heal *h)
{
    h->len = h->at = 0;
    model_fim_ids f;
    model_err me = {{0}};
    if (model_vocab_fim(v, &f, &me) || prompt->n < 2 || prompt->v[prompt->n - 1] == f.end) return;
    int32_t last = prompt->v[prompt->n - 1];
    if (model_token_is_control(v, last)) return;
    int nb = model_token_bytes(v, last, h->text, sizeof h->text);
    if (nb <= 0 || nb >= (int)sizeof h->text) return;
    h->len = (size_t)nb;
    prompt->n--;
}

/* While healing, only tokens that agree with the bytes still to spell may be sampled. */
static void heal_mask(const model_vocab *v, const heal *h, float *logits, int nv)
{
    const char *rem = h->text + h->at;
    size_t rlen = h->len - h->at;
    for (int i = 0; i < nv; i++) {
        char b[256];
        int nb = model_token_is_control(v, i) ? 0 : model_token_bytes(v, i, b, sizeof b);
        bool ok = nb > 0 && nb < (int)sizeof b &&
                  !memcmp(b, rem, (size_t)nb < rlen ? (size_t)nb : rlen);
        if (!ok) logits[i] = -INFINITY;
    }
}

/* The bytes of a sampled token that belong to the completion (after what healing spells). */
static int heal_advance(heal *h, const char *bytes, int nb, const char **out)
{
    size_t rlen = h->len - h->at;
    if (rlen == 0) {
        *out = bytes;
        return nb;
    }
    if ((size_t)nb < rlen) {
        h->at += (size_t)nb;
        *out = bytes + nb;
        return 0;
    }
    h->at = h->len;
    *out = bytes + rlen;
    return nb - (int)rlen;
}

/* The next token: sampled from the logits, or the next of the assumed output (-1 when it ends). */
static int32_t next_token(fim_engine *e, int nv, const fim_config *cfg, uint64_t *rng,
                          const fim_ids_vec *assumed, size_t *at)
{
    if (assumed) return *at < assumed->n ? assumed->v[(*at)++] : -1;
    return sample(e, nv, cfg, rng);
}

/* Generate into the decoder until a stop rule, EOS, the token limit or cancellation. Returns 0,
 * 1 when cancelled, -1 on error. */
static int generate(fim_engine *e, session *s, fim_decoder *d, const fim_ids_vec *prompt,
                    const fim_ids_vec *assumed, heal *h, const fim_config *cfg,
                    const atomic_int *cancel, fim_stats *st, fim_err *err)
{
    const model_vocab *v = model_get_vocab(e->m);
    int nv = model_get_hparams(e->m)->n_vocab;
    int32_t head[SUFFIX_HEAD];
    int n_head;
    suffix_head(v, prompt, head, &n_head);
    fim_ids_vec gen = {0};
    size_t *ends = malloc(sizeof *ends * (size_t)(cfg->max_tokens + 1)), assumed_at = 0;
    if (!ends) abort();
    uint64_t rng = cfg->seed | 1;
    model_err me = {{0}};
    int r = 0;
    for (;;) {
        if (cancel && atomic_load_explicit(cancel, memory_order_relaxed)) {
            r = 1;
            break;
        }
        if (!assumed && h->at < h->len) heal_mask(v, h, e->logits, nv);
        int32_t tok = next_token(e, nv, cfg, &rng, assumed, &assumed_at);
        if (tok < 0 || tok == model_vocab_eos(v) || model_token_is_control(v, tok)) {
            d->stop = FIM_STOP_EOS;
            break;
        }
        char bytes[256];
        int nb = model_token_bytes(v, tok, bytes, sizeof bytes);
        nb = nb < (int)sizeof bytes ? nb : (int)sizeof bytes;
        const char *text;
        int nt = heal_advance(h, bytes, nb, &text);
        fim__ids_push(&gen, &tok, 1);
        ends[st->generated] = d->len + (size_t)nt;
        st->generated++;
        if (nt > 0 && fim__decoder_push(d, text, (size_t)nt)) break;
        if (repeats_suffix(&gen, head, n_head)) {
            size_t from = gen.n > (size_t)n_head ? ends[gen.n - (size_t)n_head - 1] : 0;
            fim__decoder_cut_tail(d, d->len > from ? d->len - from : 0, FIM_STOP_SUFFIX_REPEAT);
            break;
        }
        if (st->generated >= cfg->max_tokens) {
            d->stop = FIM_STOP_MAX_TOKENS;
            break;
        }
        if (assumed) continue;
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
    free(gen.v);
    free(ends);
    return r;
}

int fim_complete(fim_engine *e, const fim_request *req, const fim_config *cfg,
                 const atomic_int *cancel, char **out, fim_stats *st, fim_err *err)
{
    const model_vocab *v = model_get_vocab(e->m);
    memset(st, 0, sizeof *st);
    *out = NULL;
    double t0 = now_ms();
    fim_config fitted = *cfg;
    fim_config_fit(&fitted, model_get_hparams(e->m)->n_ctx_train);
    cfg = &fitted;
    fim_context *made;
    const fim_context *c = request_context(req, &made);
    if (!c) return fim__fail(err, "out of memory");
    fim_ids_vec prompt = {0}, assumed = {0};
    heal healing = {{0}, 0, 0};
    int r = -1;
    session *s = NULL;
    if (!req->assume_output) {
        s = session_for(e, req->doc, err);
        if (!s) goto done;
        s->used = ++e->clock;
    }
    if (fim__build_prompt(v, c, cfg, s ? &s->memo : NULL, &prompt, err)) goto done;
    st->prompt_tokens = (int)prompt.n;
    int n_ctx = model_get_hparams(e->m)->n_ctx_train;
    if (n_ctx > 0 && (int)prompt.n + fitted.max_tokens > n_ctx)
        fitted.max_tokens = n_ctx - (int)prompt.n > 1 ? n_ctx - (int)prompt.n : 1;
    if (req->assume_output) { /* tools: the text stands in for the model's tokens */
        model_err me = {{0}};
        if (model_tokenize(v, req->assume_output, req->assume_len, false, false, &assumed.v, &assumed.n, &me)) {
            fim__fail(err, "%s", me.msg);
            goto done;
        }
    } else {
        heal_take(v, &prompt, &healing);
        st->prompt_tokens = (int)prompt.n; /* what is evaluated: without the healed token */
        r = prefill(e, s, &prompt, cancel, st, err);
        if (r) {
            if (r == 1) st->stop = FIM_STOP_CANCELLED;
            goto done;
        }
    }
    st->prompt_ms = now_ms() - t0;
    fim_decoder d;
    fim__decoder_init(&d, c);
    st->multi_line = d.multi_line;
    double t1 = now_ms();
    r = generate(e, s, &d, &prompt, req->assume_output ? &assumed : NULL, &healing, cfg, cancel, st, err);
    st->gen_ms = now_ms() - t1;
    if (r == 0) {
        *out = fim__decoder_finish(&d);
        st->stop = d.stop;
    } else if (r == 1) {
        st->stop = FIM_STOP_CANCELLED;
    }
    fim__decoder_free(&d);
    if (s) evict(e, req->doc, cfg->cache_bytes);
done:
    free(prompt.v);
    free(assumed.v);
    fim_context_free(made);
    return r;
}
