/* fim/engine.c — a completion from a request: the prompt (prompt.c), then tokens from a backend
 * (the in-process model of local.c, a serving engine through remote.c, or the replay of a given
 * text) chosen here (greedy, temperature + top-p, token healing) and fed through the stop rules of
 * decode.c. Whatever the backend, the same rules cut the middle and end the backend's work. */
#define _GNU_SOURCE
#include "fim/fim_internal.h"
#include "base/base.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { TOP_K = 40, SUFFIX_HEAD = 6 };

/* A completion kept for a later request: the state it was computed at and its middle. */
typedef struct kept {
    bool valid;
    char *text; /* the request's text (the document or its window) */
    size_t len, cursor;
    int32_t *prompt; /* the prompt built for it, before token healing */
    size_t n_prompt;
    char *mid; /* the middle, stop rules and post-processing applied */
    size_t mid_len;
    fim_config cfg;
    fim_stats st;
} kept;

/* What the engine remembers of a document besides the backend's cache. */
typedef struct doc_state {
    char *key;
    fim_window_memo memo; /* the prompt windows' last cut points */
    kept shown;           /* the last middle answered: typing it through trims it */
    kept ahead;           /* the prefetched completion of the accepted branch */
} doc_state;

struct fim_engine {
    fim_backend *b;
    model *owned_model; /* loaded by fim_engine_open for the in-process backend */
    doc_state *docs;
    int n_docs, cap_docs;
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
    c->type_through = true;
    c->prefetch = true;
    c->drafts = FIM_DRAFTS;
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
    /* a model trained on a few hundred tokens uses the local window best: related code there cost
     * the bundled model 0.014 of edit similarity on next_line and block cursors (bench-quality) */
    if (room < 512) c->prefix_tokens += c->related_tokens, c->related_tokens = 0;
}

void fim_config_budget(fim_config *c, int budget)
{
    if (budget < 16) budget = 16;
    /* measured with `fimd bench-context` (5/16 against 3/16 and 7/16 at 512, 3/16 and 1/4 at
     * 1024): with snippets picked by the new identifiers they bring per token, related code pays
     * at every budget; the suffix keeps its quarter (1/8 and 3/8 did worse) */
    c->related_tokens = budget * 5 / 16;
    c->suffix_tokens = budget / 4;
    c->prefix_tokens =
        budget - c->related_tokens - c->suffix_tokens - 4; /* BOS and 3 FIM markers */
}

const char *fim_stop_name(enum fim_stop s)
{
    static const char *names[] = {"eos",           "max_tokens", "line_end",  "indent",
                                  "suffix_repeat", "control",    "cancelled", "block_end",
                                  "unbalanced",    "repetition"};
    return (unsigned)s < sizeof names / sizeof *names ? names[s] : "unknown";
}

static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return *s;
}

/* Greedy (lowest id on ties) or temperature sampling over the TOP_K best, cut at top_p. */
static int32_t sample(const float *l, int nv, const fim_config *cfg, uint64_t *rng)
{
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

/* The request's context: its own, or one made from its text (freed by the caller via *made). */
static const fim_context *request_context(const fim_request *req, fim_context **made)
{
    *made = NULL;
    if (req->ctx) return req->ctx;
    size_t len = req->len, cursor = req->cursor < len ? req->cursor : len;
    *made =
        fim__context_from_text(req->doc, req->language, req->text ? req->text : "", len, cursor);
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

int fim__engine_prompt(fim_engine *e, const fim_request *req, const fim_config *cfg, int32_t **ids,
                       size_t *n, fim_err *err)
{
    fim_context *made;
    const fim_context *c = request_context(req, &made);
    if (!c) return fim__fail(err, "out of memory");
    int rc = fim_prompt_ids(e->b->vocab, c, cfg, ids, n, err);
    fim_context_free(made);
    return rc;
}

/* ---- the engine and its backend ---- */

fim_engine *fim__engine_new(fim_backend *b, fim_err *err)
{
    fim_engine *e = b ? calloc(1, sizeof *e) : NULL;
    if (!e) {
        if (b) b->ops->free(b);
        if (b) fim__fail(err, "out of memory");
        return NULL;
    }
    e->b = b;
    return e;
}

fim_engine *fim__engine_with_model(model *m, fim_err *err)
{
    return fim__engine_new(fim__local_new(m, err), err);
}

/* The vocabulary of a GGUF and its training context, for a remote backend's prompts. */
static model_vocab *vocab_of(const char *path, int *n_ctx, fim_err *err)
{
    model_err me = {{0}};
    model_gguf *g = model_gguf_open(path, &me);
    model_vocab *v = g ? model_vocab_load(g, &me) : NULL;
    *n_ctx = g ? model_gguf_context_length(g) : 0;
    model_gguf_close(g);
    if (!v) fim__fail(err, "%s: %s", path, me.msg);
    return v;
}

fim_engine *fim_engine_open(const fim_backend_spec *spec, fim_err *err)
{
    if (spec->remote.api) {
        if (!spec->model_path) {
            fim__fail(err, "a remote backend needs a GGUF with the model's tokenizer (-m)");
            return NULL;
        }
        int n_ctx = 0;
        model_vocab *v = vocab_of(spec->model_path, &n_ctx, err);
        if (spec->model_is_bundled) n_ctx = 0; /* the server's model has its own context */
        return v ? fim__engine_new(
                       fim__remote_new(&spec->remote, v, n_ctx, spec->model_is_bundled, err), err)
                 : NULL;
    }
    if (!spec->model_path) {
        fim__fail(err, "no model given");
        return NULL;
    }
    model_err me = {{0}};
    model *m = model_load_opts(spec->model_path, &spec->load, &me);
    if (!m) {
        fim__fail(err, "%s", me.msg);
        return NULL;
    }
    model_set_threads(m, spec->threads);
    fim_engine *e = fim__engine_with_model(m, err);
    if (!e)
        model_free(m);
    else
        e->owned_model = m;
    return e;
}

static void kept_clear(kept *k)
{
    free(k->text);
    free(k->prompt);
    free(k->mid);
    memset(k, 0, sizeof *k);
}

static void doc_state_free(doc_state *d)
{
    free(d->key);
    fim__snippet_cache_free(d->memo.snippets);
    kept_clear(&d->shown);
    kept_clear(&d->ahead);
}

void fim_engine_free(fim_engine *e)
{
    if (!e) return;
    e->b->ops->free(e->b);
    model_free(e->owned_model);
    for (int i = 0; i < e->n_docs; i++) doc_state_free(&e->docs[i]);
    free(e->docs);
    free(e);
}

void fim_engine_close_doc(fim_engine *e, const char *doc)
{
    e->b->ops->close_doc(e->b, doc);
    for (int i = 0; i < e->n_docs; i++)
        if (!strcmp(e->docs[i].key, doc)) {
            doc_state_free(&e->docs[i]);
            e->docs[i] = e->docs[--e->n_docs];
            return;
        }
}

size_t fim_engine_cache_bytes(const fim_engine *e)
{
    return e->b->ops->cache_bytes(e->b);
}

int fim_engine_n_docs(const fim_engine *e)
{
    return e->b->ops->n_docs(e->b);
}

void fim_engine_status(const fim_engine *e, fim_backend_status *out)
{
    memset(out, 0, sizeof *out);
    e->b->ops->status(e->b, out);
}

const model_vocab *fim_engine_vocab(const fim_engine *e)
{
    return e->b->vocab;
}

int fim_engine_n_ctx(const fim_engine *e)
{
    return e->b->n_ctx;
}

enum { DOCS_MAX = 256 };

/* A document's state (created on first use; the oldest is forgotten past DOCS_MAX). */
static doc_state *state_for(fim_engine *e, const char *doc)
{
    for (int i = 0; i < e->n_docs; i++)
        if (!strcmp(e->docs[i].key, doc)) return &e->docs[i];
    if (e->n_docs == DOCS_MAX) fim_engine_close_doc(e, e->docs[0].key);
    if (e->n_docs == e->cap_docs) {
        e->cap_docs = e->cap_docs ? e->cap_docs * 2 : 8;
        e->docs = base_xrealloc(e->docs, sizeof *e->docs * (size_t)e->cap_docs);
    }
    doc_state *d = &e->docs[e->n_docs++];
    memset(d, 0, sizeof *d);
    d->key = base_xstrdup(doc);
    return d;
}

/* ---- kept completions: type-through and prefetch ---- */

/* The settings that decide a completion (type_through and prefetch do not). */
static bool same_config(const fim_config *a, const fim_config *b)
{
    return a->max_tokens == b->max_tokens && a->prefix_tokens == b->prefix_tokens &&
           a->suffix_tokens == b->suffix_tokens && a->related_tokens == b->related_tokens &&
           a->temperature == b->temperature && a->top_p == b->top_p && a->seed == b->seed &&
           a->naive_window == b->naive_window && a->heal_top == b->heal_top;
}

/* The text and cursor a request completes at, without making its context (no parse). */
static const char *request_text(const fim_request *req, size_t *len, size_t *cursor)
{
    if (req->ctx) {
        *cursor = fim_context_cursor(req->ctx);
        return fim_context_text(req->ctx, len);
    }
    *len = req->len;
    *cursor = req->cursor < req->len ? req->cursor : req->len;
    return req->text ? req->text : "";
}

static void kept_set(kept *k, const char *text, size_t len, size_t cursor, const fim_ids_vec *p,
                     size_t n_prompt, const char *mid, const fim_config *cfg, const fim_stats *st)
{
    kept_clear(k);
    k->text = base_xmalloc(len + 1);
    memcpy(k->text, text, len);
    k->len = len;
    k->cursor = cursor;
    k->prompt = base_xmalloc(sizeof *k->prompt * (n_prompt + 1));
    memcpy(k->prompt, p->v, sizeof *k->prompt * n_prompt);
    k->n_prompt = n_prompt;
    k->mid = base_xstrdup(mid);
    k->mid_len = strlen(mid);
    k->cfg = *cfg;
    k->st = *st;
    k->valid = true;
}

/* Is the request the kept state with k bytes typed at its cursor, the start of its middle? Those
 * bytes, the text before the old cursor and everything after the new one must be unchanged; the
 * rest of the middle must start on a character boundary (valid UTF-8 after trimming). */
static bool typed_into(const kept *k, const char *t, size_t len, size_t cursor, size_t *typed)
{
    if (!k->valid || cursor <= k->cursor || len != k->len + (cursor - k->cursor)) return false;
    size_t n = cursor - k->cursor;
    if (n >= k->mid_len || ((unsigned char)k->mid[n] & 0xc0) == 0x80) return false;
    if (memcmp(t, k->text, k->cursor) || memcmp(t + k->cursor, k->mid, n) ||
        memcmp(t + cursor, k->text + k->cursor, k->len - k->cursor))
        return false;
    *typed = n;
    return true;
}

/* An answer from a kept completion: its middle from byte `from` on, with no model work. */
static void answer_kept(const kept *k, size_t from, enum fim_source src, char **out, fim_stats *st)
{
    *out = base_xstrdup(k->mid + from);
    memset(st, 0, sizeof *st);
    st->server_cached = -1;
    st->prompt_tokens = st->reused = (int)k->n_prompt;
    st->multi_line = k->st.multi_line;
    st->stop = k->st.stop;
    st->source = src;
}

/* Type-through: the request typed the start of the document's last answered middle. */
static bool type_through(fim_engine *e, const fim_request *req, const fim_config *cfg, char **out,
                         fim_stats *st)
{
    size_t len, cursor, typed;
    const char *t = request_text(req, &len, &cursor);
    doc_state *d = state_for(e, req->doc);
    if (!same_config(&d->shown.cfg, cfg) || !typed_into(&d->shown, t, len, cursor, &typed))
        return false;
    answer_kept(&d->shown, typed, FIM_FROM_TYPE_THROUGH, out, st);
    return true;
}

/* Is k the completion of this very state (text, cursor, settings; prompt when given)? */
static bool kept_at(const kept *k, const char *t, size_t len, size_t cursor, const fim_config *cfg,
                    const fim_ids_vec *prompt)
{
    if (!k->valid || k->len != len || k->cursor != cursor || !same_config(&k->cfg, cfg) ||
        memcmp(k->text, t, len))
        return false;
    return !prompt || (prompt->n == k->n_prompt &&
                       !memcmp(prompt->v, k->prompt, sizeof *prompt->v * prompt->n));
}

/* ---- the replay backend: a given text's tokens stand in for the model's ---- */

typedef struct replay {
    fim_backend base;
    fim_ids_vec ids;
    size_t at;
} replay;

static int replay_start(fim_backend *b, const fim_gen *g, const atomic_int *cancel, fim_stats *st,
                        fim_err *err)
{
    (void)b, (void)g, (void)cancel, (void)st, (void)err;
    return 0;
}

static int replay_next(fim_backend *b, fim_step *step, const atomic_int *cancel, fim_stats *st,
                       fim_err *err)
{
    (void)cancel, (void)st, (void)err;
    replay *r = (replay *)b;
    if (r->at >= r->ids.n) return 2;
    step->token = r->ids.v[r->at];
    step->n_top = 0;
    return 0;
}

static int replay_accept(fim_backend *b, int32_t tok, const atomic_int *cancel, fim_err *err)
{
    (void)tok, (void)cancel, (void)err;
    ((replay *)b)->at++;
    return 0;
}

static void replay_finish(fim_backend *b, bool cancelled, fim_stats *st)
{
    (void)b, (void)cancelled, (void)st;
}

static const fim_backend_ops replay_ops = {
    .start = replay_start, .next = replay_next, .accept = replay_accept, .finish = replay_finish};

/* ---- suffix repetition and token healing ---- */

/* The suffix's first tokens as the prompt has them (between <fim_hole> and <fim_end>). */
static void suffix_head(const model_vocab *v, const fim_ids_vec *prompt, int32_t *out, int *n)
{
    model_fim_ids f;
    model_err me = {{0}};
    *n = 0;
    if (model_vocab_fim(v, &f, &me)) return;
    size_t h = 0;
    while (h < prompt->n && prompt->v[h] != f.hole) h++;
    for (size_t i = h + 1; i < prompt->n && prompt->v[i] != f.end && *n < SUFFIX_HEAD; i++)
        out[(*n)++] = prompt->v[i];
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
 * and "name" may be the head of "name);". So the last token is taken out of the prompt and the
 * first generated tokens must spell its bytes again (any token that starts with them, or a piece of
 * them); only what comes after them is the completion. A remote engine samples on its side: its
 * choice is kept when it agrees, else the best agreeing one of the alternatives it sent, else the
 * start of the bytes themselves (the backend then continues from the engine's choice). */
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

/* Does token i agree with the bytes still to spell (it is a piece of them, or starts with them)? */
static bool heal_allows(const model_vocab *v, const heal *h, int32_t i)
{
    const char *rem = h->text + h->at;
    size_t rlen = h->len - h->at;
    char b[256];
    int nb = model_token_is_control(v, i) ? 0 : model_token_bytes(v, i, b, sizeof b);
    return nb > 0 && nb < (int)sizeof b && !memcmp(b, rem, (size_t)nb < rlen ? (size_t)nb : rlen);
}

/* The first token of the bytes still to spell: always agrees. */
static int32_t heal_fallback(const model_vocab *v, const heal *h)
{
    int32_t *ids = NULL, tok = -1;
    size_t n = 0;
    model_err me = {{0}};
    if (!model_tokenize(v, h->text + h->at, h->len - h->at, false, false, &ids, &n, &me) && n)
        tok = ids[0];
    free(ids);
    return tok;
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

/* Is what healing has still to spell only blanks (the cursor line's indentation)? */
static bool heal_is_blank(const heal *h)
{
    for (size_t i = h->at; i < h->len; i++)
        if (!base_is_blank_byte(h->text[i])) return false;
    return true;
}

/* The k best ids by logit, best first (lowest id first on ties, as greedy sampling). */
static int best_ids(const float *l, int nv, int32_t *top, int k)
{
    int n = 0;
    for (int i = 0; i < nv; i++) {
        if (n == k && l[i] <= l[top[n - 1]]) continue;
        int j = n < k ? n++ : n - 1;
        while (j > 0 && l[top[j - 1]] < l[i]) top[j] = top[j - 1], j--;
        top[j] = i;
    }
    return n;
}

/* The token taken at a step: sampled from the logits, or the backend's choice, either way agreeing
 * with what healing has still to spell. With the logits at hand (the in-process model) healing
 * takes the best agreeing token of the whole vocabulary: looking only at the first few let the
 * typed indentation be spelled by itself, and the model then often ended an empty block body
 * (bench-quality: 29 % of block middles empty instead of 7 %). A serving engine sends back only
 * its FIM_HEAL_TOP best tokens (cfg->heal_top holds the in-process model to that rule): the best
 * of them that agrees, else the start of the bytes themselves. */
static int32_t choose(const model_vocab *v, const fim_step *step, const heal *h,
                      const fim_config *cfg, uint64_t *rng, float **scratch)
{
    bool healing = h->at < h->len;
    int nv = model_vocab_size(v);
    if (step->token < 0 && healing && !cfg->heal_top && heal_is_blank(h)) { /* all agreeing */
        if (!*scratch) *scratch = base_xmalloc(sizeof **scratch * (size_t)nv);
        for (int i = 0; i < nv; i++)
            (*scratch)[i] = heal_allows(v, h, i) ? step->logits[i] : -INFINITY;
        return sample(*scratch, nv, cfg, rng);
    }
    if (step->token < 0 && !healing) return sample(step->logits, nv, cfg, rng);
    fim_step local = *step;
    int top = cfg->heal_top > 0 && cfg->heal_top < FIM_HEAL_TOP ? cfg->heal_top : FIM_HEAL_TOP;
    if (step->token < 0) {
        local.n_top = best_ids(step->logits, nv, local.top, top);
        local.token = local.top[0];
    }
    if (heal_allows(v, h, local.token)) return local.token;
    for (int k = 0; k < local.n_top && k < top; k++)
        if (heal_allows(v, h, local.top[k])) return local.top[k];
    return heal_fallback(v, h);
}

/* ---- generation ---- */

typedef struct gen_run {
    fim_backend *b;
    fim_decoder *d;
    heal *h;
    const fim_config *cfg;
    const atomic_int *cancel;
    fim_stats *st;
    double t0;
} gen_run;

/* Generate into the decoder until a stop rule, EOS, the token limit, the end of the backend's
 * stream or cancellation. Returns 0, 1 when cancelled, -1 on error. */
static int generate(const gen_run *g, const fim_ids_vec *prompt, fim_err *err)
{
    const model_vocab *v = g->b->vocab;
    fim_decoder *d = g->d;
    fim_stats *st = g->st;
    int32_t head[SUFFIX_HEAD];
    int n_head;
    suffix_head(v, prompt, head, &n_head);
    fim_ids_vec gen = {0};
    size_t *ends = base_xmalloc(sizeof *ends * (size_t)(g->cfg->max_tokens + 1));
    uint64_t rng = g->cfg->seed | 1;
    float *scratch = NULL;
    int r = 0;
    for (;;) {
        if (g->cancel && atomic_load_explicit(g->cancel, memory_order_relaxed)) {
            r = 1;
            break;
        }
        fim_step step = {.token = -1};
        int rc = g->b->ops->next(g->b, &step, g->cancel, st, err);
        if (rc == 2) d->stop = FIM_STOP_EOS;
        if (rc) {
            r = rc == 2 ? 0 : rc;
            break;
        }
        if (st->generated == 0) st->first_token_ms = base_now_ms() - g->t0;
        int32_t tok = choose(v, &step, g->h, g->cfg, &rng, &scratch);
        if (tok < 0 || tok == model_vocab_eos(v) || model_token_is_control(v, tok)) {
            d->stop = FIM_STOP_EOS;
            break;
        }
        char bytes[256];
        int nb = model_token_bytes(v, tok, bytes, sizeof bytes);
        nb = nb < (int)sizeof bytes ? nb : (int)sizeof bytes;
        const char *text;
        int nt = heal_advance(g->h, bytes, nb, &text);
        fim__ids_push(&gen, &tok, 1);
        ends[st->generated] = d->len + (size_t)nt;
        st->generated++;
        if (nt > 0 && fim__decoder_push(d, text, (size_t)nt)) break;
        if (repeats_suffix(&gen, head, n_head)) {
            size_t from = gen.n > (size_t)n_head ? ends[gen.n - (size_t)n_head - 1] : 0;
            fim__decoder_cut_tail(d, d->len > from ? d->len - from : 0, FIM_STOP_SUFFIX_REPEAT);
            break;
        }
        if (st->generated >= g->cfg->max_tokens) {
            d->stop = FIM_STOP_MAX_TOKENS;
            break;
        }
        rc = g->b->ops->accept(g->b, tok, g->cancel, err);
        if (rc) {
            r = rc;
            break;
        }
    }
    free(scratch);
    free(gen.v);
    free(ends);
    return r;
}

/* Tools: the assumed output's tokens in a replay backend. */
static int replay_init(replay *r, const model_vocab *v, const fim_request *req, fim_err *err)
{
    memset(r, 0, sizeof *r);
    r->base.ops = &replay_ops;
    r->base.vocab = v;
    model_err me = {{0}};
    if (model_tokenize(v, req->assume_output, req->assume_len, false, false, &r->ids.v, &r->ids.n,
                       &me))
        return fim__fail(err, "%s", me.msg);
    return 0;
}

/* A completion from the backend (or the tools' replay): the prompt, a prefetched answer when the
 * request reached its state, else generation. `ahead` (fim_prefetch) keeps the result as the
 * document's prefetched completion instead of its last answered one. */
static int complete(fim_engine *e, const fim_request *req, const fim_config *cfg, bool ahead,
                    const atomic_int *cancel, char **out, fim_stats *st, fim_err *err)
{
    const model_vocab *v = e->b->vocab;
    double t0 = base_now_ms();
    fim_config fitted = *cfg;
    fim_config_fit(&fitted, e->b->n_ctx);
    size_t tlen, tcur;
    const char *t = request_text(req, &tlen, &tcur);
    doc_state *ds = req->assume_output ? NULL : state_for(e, req->doc);
    if (ahead && kept_at(&ds->ahead, t, tlen, tcur, cfg, NULL)) return 0; /* already kept */
    fim_context *made;
    const fim_context *c = request_context(req, &made);
    if (!c) return fim__fail(err, "out of memory");
    fim_ids_vec prompt = {0};
    heal healing = {{0}, 0, 0};
    replay rp = {0};
    fim_backend *b = e->b;
    int r = -1;
    /* a prefetch leaves the document's window memo alone: if the branch is never reached, the
     * prompts that follow are the ones they would have been without it */
    if (ds && !ds->memo.snippets) ds->memo.snippets = fim__snippet_cache_new(); /* shared */
    fim_window_memo scratch = ds ? ds->memo : (fim_window_memo){0};
    fim_window_memo *memo = !ds ? NULL : ahead ? &scratch : &ds->memo;
    if (fim__build_prompt(v, c, &fitted, memo, &prompt, err)) goto done;
    if (ds && !ahead && cfg->prefetch && kept_at(&ds->ahead, t, tlen, tcur, cfg, &prompt)) {
        answer_kept(&ds->ahead, 0, FIM_FROM_PREFETCH, out, st);
        kept_clear(&ds->shown); /* it is shown now: typing it through trims it */
        ds->shown = ds->ahead;
        memset(&ds->ahead, 0, sizeof ds->ahead);
        r = 0;
        goto done;
    }
    size_t n_built = prompt.n; /* healing takes the last token off; kept prompts compare whole */
    int n_ctx = e->b->n_ctx;
    if (n_ctx > 0 && (int)prompt.n + fitted.max_tokens > n_ctx)
        fitted.max_tokens = n_ctx - (int)prompt.n > 1 ? n_ctx - (int)prompt.n : 1;
    if (req->assume_output) { /* tools: the text stands in for the model's tokens */
        if (replay_init(&rp, v, req, err)) goto done;
        b = &rp.base;
    } else {
        heal_take(v, &prompt, &healing);
    }
    st->prompt_tokens = (int)prompt.n; /* what is evaluated: without the healed token */
    fim_gen g = {
        .doc = req->doc,
        .ids = prompt.v,
        .n = prompt.n,
        .max_tokens = fitted.max_tokens,
        .temperature = fitted.temperature,
        .top_p = fitted.top_p,
        .seed = fitted.seed,
        .want_top = healing.len ? FIM_HEAL_TOP : 0,
        .cache_bytes = fitted.cache_bytes,
        .text_budget = fitted.prefix_tokens + fitted.suffix_tokens + fitted.related_tokens + 4,
        .drafts = fitted.drafts,
    };
    r = b->ops->start(b, &g, cancel, st, err);
    if (r) {
        if (r == 1) st->stop = FIM_STOP_CANCELLED;
        b->ops->finish(b, r == 1, st);
        goto done;
    }
    st->prompt_ms = base_now_ms() - t0;
    fim_decoder d;
    fim__decoder_init(&d, c);
    st->multi_line = d.multi_line;
    double t1 = base_now_ms();
    gen_run run = {
        .b = b, .d = &d, .h = &healing, .cfg = &fitted, .cancel = cancel, .st = st, .t0 = t0};
    r = generate(&run, &prompt, err);
    b->ops->finish(b, r == 1, st);
    st->gen_ms = base_now_ms() - t1;
    if (r == 0) {
        *out = fim__decoder_finish(&d);
        st->stop = d.stop;
        if (ds && (ahead || cfg->type_through))
            kept_set(ahead ? &ds->ahead : &ds->shown, t, tlen, tcur, &prompt, n_built, *out, cfg,
                     st);
    } else if (r == 1) {
        st->stop = FIM_STOP_CANCELLED;
    }
    fim__decoder_free(&d);
done:
    free(prompt.v);
    free(rp.ids.v);
    fim_context_free(made);
    return r;
}

int fim_complete(fim_engine *e, const fim_request *req, const fim_config *cfg,
                 const atomic_int *cancel, char **out, fim_stats *st, fim_err *err)
{
    memset(st, 0, sizeof *st);
    st->server_cached = -1;
    *out = NULL;
    if (!req->assume_output && cfg->type_through && type_through(e, req, cfg, out, st)) return 0;
    return complete(e, req, cfg, false, cancel, out, st, err);
}

int fim_prefetch(fim_engine *e, const fim_request *req, const fim_config *cfg,
                 const atomic_int *cancel, fim_stats *st, fim_err *err)
{
    memset(st, 0, sizeof *st);
    st->server_cached = -1;
    if (!cfg->prefetch || req->assume_output) return 0;
    char *out = NULL;
    int r = complete(e, req, cfg, true, cancel, &out, st, err);
    free(out);
    return r;
}
