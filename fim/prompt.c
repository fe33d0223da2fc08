/* fim/prompt.c — the DeepSeek PSM prompt: BOS <｜fim▁begin｜> prefix <｜fim▁hole｜> suffix
 * <｜fim▁end｜> followed by the cursor line's text before the cursor. The FIM markers are added by
 * id, and user text is tokenized without special-token parsing, so code containing the marker
 * strings cannot inject markers. Pieces never cross a newline in DeepSeek's pre-tokenizer, so the
 * prompt is built line by line and trimmed at line boundaries within the budgets. */
#define _GNU_SOURCE
#include "fim/fim_internal.h"
#include "base/base.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The prefix window starts at a syntax boundary found near a line that moves in steps of
 * budget/64 lines (at least 4): the earliest shallowest node start before one step past it. So the
 * prefix's tokens, and the cache built on them, stay the same over many keystrokes and lines, and
 * the window never begins in the middle of a construct when a better place is near. The suffix ends
 * likewise at the shallowest node end among its last lines. */
enum { LINE_BEFORE_MAX_TOKENS = 512, MIN_STEP = 4, SEARCH_STEPS = 1 };
/* The document's own snippets sort after other documents' (whose order has the document's rank in
 * its upper half), so the nearest code comes nearest the prefix. */
#define OWN_ORDER ((size_t)0xffff << 32)

int fim__fail(fim_err *err, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

void fim__ids_push(fim_ids_vec *b, const int32_t *ids, size_t n)
{
    if (n == 0) return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap *= 2;
        int32_t *p = base_xrealloc(b->v, cap * sizeof *p);
        b->v = p;
        b->cap = cap;
    }
    memcpy(b->v + b->n, ids, n * sizeof *ids);
    b->n += n;
}

static int tok(const model_vocab *v, const char *s, size_t n, fim_ids_vec *out, fim_err *err)
{
    int32_t *ids;
    size_t k;
    model_err me = {{0}};
    if (model_tokenize(v, s, n, false, false, &ids, &k, &me)) return fim__fail(err, "%s", me.msg);
    fim__ids_push(out, ids, k);
    free(ids);
    return 0;
}

/* One line of text ending at `end` (exclusive): where it starts. */
static size_t line_start(const char *t, size_t end)
{
    while (end > 0 && t[end - 1] != '\n') end--;
    return end;
}

static size_t line_end(const char *t, size_t len, size_t at) /* after the '\n', or len */
{
    const char *nl = memchr(t + at, '\n', len - at);
    return nl ? (size_t)(nl - t) + 1 : len;
}

static long line_step(int budget)
{
    return budget / 64 > MIN_STEP ? budget / 64 : MIN_STEP;
}

static int line_count(const model_vocab *v, struct fim_snippet_cache *sc, const char *s, size_t n,
                      fim_err *err);

/* Where the prefix begins: walking back whole lines from `end` while they fit the budget; when
 * trimmed, a syntax boundary near the next step line. `sc`, when given, keeps lines' token counts
 * between requests. */
static int prefix_start(const model_vocab *v, const fim_context *c, size_t end, int budget,
                        bool cut_at_syntax, fim_window_memo *memo, struct fim_snippet_cache *sc,
                        size_t *out, fim_err *err)
{
    long line_no = c->cursor_line; /* `end` is the cursor line's start */
    size_t start = end;
    long start_line = line_no, used = 0;
    while (start > 0) {
        size_t s = line_start(c->text, start - 1);
        int k = line_count(v, sc, c->text + s, start - s, err);
        if (k < 0) return -1;
        if (used + k > budget) break;
        used += k;
        start = s;
        start_line--;
    }
    *out = start;
    if (start == 0 || !cut_at_syntax) return 0;
    /* the earliest of the shallowest line starts from here to one step past the grid line: it
     * stays put while the window's limit moves, until the limit passes it */
    long step = line_step(budget), limit = ((start_line + step - 1) / step + SEARCH_STEPS) * step;
    if (memo && memo->valid && memo->prefix_line >= start_line && memo->prefix_line < limit &&
        memo->prefix_line <= line_no) { /* the last choice still fits: keep it (a parse error of
                                         * the moment must not move the window) */
        for (long l = start_line; l < memo->prefix_line; l++) start = line_end(c->text, end, start);
        *out = start;
        return 0;
    }
    size_t best = start;
    long best_line = start_line;
    int best_depth = -1;
    for (size_t at = start; at < end && start_line < limit; start_line++) {
        int d = fim__depth_at_line_start(c, at);
        if (d >= 0 && (best_depth < 0 || d < best_depth)) {
            best = at;
            best_line = start_line;
            best_depth = d;
            if (d == 0) break; /* top level: nothing better */
        }
        at = line_end(c->text, end, at);
    }
    if (memo) memo->prefix_line = best_line;
    *out = best;
    return 0;
}

/* Tokens of the prefix text [start, end); a single huge line keeps its tail. */
static int prefix_tokens(const model_vocab *v, const fim_context *c, size_t start, size_t end,
                         int budget, fim_ids_vec *out, fim_err *err)
{
    fim_ids_vec tmp = {0};
    int rc = tok(v, c->text + start, end - start, &tmp, err);
    if (!rc && (long)tmp.n > budget) {
        memmove(tmp.v, tmp.v + tmp.n - (size_t)budget, sizeof(int32_t) * (size_t)budget);
        tmp.n = (size_t)budget;
    }
    if (!rc) fim__ids_push(out, tmp.v, tmp.n);
    free(tmp.v);
    return rc;
}

/* Tokens of the suffix: the rest of the cursor line, then whole lines while they fit, cut back to
 * the line whose end closes the shallowest node among the last ones. */
static int suffix_tokens(const model_vocab *v, const fim_context *c, size_t from, int budget,
                         bool cut_at_syntax, fim_window_memo *memo, fim_ids_vec *out,
                         size_t *end_out, fim_err *err)
{
    fim_ids_vec tmp = {0};
    size_t at = from;
    int used = 0;
    bool trimmed = false;
    size_t *ends = NULL, *counts = NULL; /* per line: end offset and tokens so far */
    size_t n_lines = 0, cap = 0;
    while (at < c->len) {
        size_t e = line_end(c->text, c->len, at);
        size_t before = tmp.n;
        if (tok(v, c->text + at, e - at, &tmp, err)) {
            free(tmp.v), free(ends), free(counts);
            return -1;
        }
        if (used + (int)(tmp.n - before) > budget) {
            if (at == from)
                used = budget, tmp.n = (size_t)budget; /* huge first line: its head */
            else
                tmp.n = before;
            trimmed = true;
            break;
        }
        used += (int)(tmp.n - before);
        if (n_lines == cap) {
            cap = cap ? cap * 2 : 64;
            ends = base_xrealloc(ends, cap * sizeof *ends);
            counts = base_xrealloc(counts, cap * sizeof *counts);
        }
        ends[n_lines] = e;
        counts[n_lines++] = tmp.n;
        at = e;
    }
    *end_out = at;
    if (trimmed && n_lines > 1 && cut_at_syntax) {
        long span = line_step(budget) * SEARCH_STEPS;
        size_t lo = n_lines > (size_t)span ? n_lines - (size_t)span : 0, best = n_lines - 1;
        bool kept = memo && memo->valid && memo->suffix_lines >= (long)lo &&
                    memo->suffix_lines < (long)n_lines;
        if (kept) best = (size_t)memo->suffix_lines;
        int best_depth = -1;
        for (size_t i = n_lines - 1; !kept && i + 1 > lo;
             i--) { /* latest first: ties keep more text */
            size_t ls = line_start(c->text, ends[i] - 1);
            int d = fim__depth_at_line_end(c, ls < from ? from : ls, ends[i]);
            if (d >= 0 && (best_depth < 0 || d < best_depth)) best = i, best_depth = d;
        }
        tmp.n = counts[best];
        *end_out = ends[best];
        if (memo) memo->suffix_lines = (long)best;
    }
    fim__ids_push(out, tmp.v, tmp.n);
    free(tmp.v), free(ends), free(counts);
    return 0;
}

/* "// dir/file.c" in the snippet's language (its block comment when it has no line comment). */
static void snippet_header(const fim_snippet *sn, char *buf, size_t cap)
{
    const char *path = sn->path, *p = path + strlen(path);
    for (int slashes = 0; p > path; p--)
        if (p[-1] == '/' && ++slashes == 2) break;
    const parsers_lang *l = sn->lang;
    buf[0] = 0;
    if (l && l->line_comment)
        snprintf(buf, cap, "%s %s\n", l->line_comment, p);
    else if (l && l->block_comment) {
        const char *sp = strchr(l->block_comment, ' ');
        if (sp)
            snprintf(buf, cap, "%.*s %s %s\n", (int)(sp - l->block_comment), l->block_comment, p,
                     sp + 1);
    }
}

/* A set of identifier hashes (open addressing; 0 marks a free slot, so hash 0 is kept as 1). */
typedef struct hash_set {
    uint32_t *k;
    size_t cap, n;
} hash_set;

static void set_put(hash_set *s, uint32_t h)
{
    h = h ? h : 1;
    if ((s->n + 1) * 2 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        hash_set t = {base_xcalloc(cap, sizeof *t.k), cap, 0};
        for (size_t i = 0; i < s->cap; i++)
            if (s->k[i]) set_put(&t, s->k[i]);
        free(s->k);
        *s = t;
    }
    size_t i = h & (s->cap - 1);
    for (; s->k[i]; i = (i + 1) & (s->cap - 1))
        if (s->k[i] == h) return;
    s->k[i] = h;
    s->n++;
}

static bool set_has(const hash_set *s, uint32_t h)
{
    h = h ? h : 1;
    for (size_t i = h & (s->cap - 1); s->cap && s->k[i]; i = (i + 1) & (s->cap - 1))
        if (s->k[i] == h) return true;
    return false;
}

static void set_put_range(hash_set *s, const char *t, size_t from, size_t to)
{
    fim_hashes h;
    fim__ident_hashes(t, from, to, &h);
    for (size_t i = 0; i < h.n; i++) set_put(s, h.v[i]);
    fim__hashes_free(&h);
}

/* What related code is judged by: `seen`, the identifiers the prompt shows in any case (set by
 * pick_seen) and those of what was taken so far; `doc`, those the document uses outside the cursor
 * line (what a document uses, its middle is likely to use). Neither depends on the cursor line, so
 * typing in it cannot change the choice. */
typedef struct pick_ctx {
    hash_set seen, doc;
} pick_ctx;

static void pick_init(pick_ctx *p, const fim_context *c, size_t l0)
{
    memset(p, 0, sizeof *p);
    set_put_range(&p->doc, c->text, 0, l0);
    set_put_range(&p->doc, c->text, line_end(c->text, c->len, c->cursor), c->len);
}

/* `seen` becomes what windows [from, l0) before the cursor line and [after it, to) show. (Judged
 * by what the windows really show rather than by the 40 lines near the cursor, with the lines
 * beyond them as candidates too: +0.005 of recall at budget 512.) */
static void pick_seen(pick_ctx *p, const fim_context *c, size_t from, size_t l0, size_t to)
{
    free(p->seen.k);
    memset(&p->seen, 0, sizeof p->seen);
    set_put_range(&p->seen, c->text, from, l0);
    size_t le = line_end(c->text, c->len, c->cursor);
    if (to > le) set_put_range(&p->seen, c->text, le, to);
}

/* A snippet's worth per token: its identifiers not seen yet, those the document uses counting
 * DOC_WEIGHT times (measured at budget 512: 5 against 1 and 2, +0.002 and +0.0004; 10 no better),
 * times how relevant it is (named near the cursor: fully; similar code: by its similarity; what
 * followed the lines above the cursor elsewhere: FOLLOW_WEIGHT times per line that agrees, which
 * puts it before the rest: 30 against 10, 100 and taking it first, measured at budget 512). A
 * definition named near the cursor is worth one more: its shape (a struct's field types, a
 * signature) helps a model even when all its names are already in sight. */
enum { DOC_WEIGHT = 5, FOLLOW_WEIGHT = 30 };
static double snippet_worth(const fim_snippet *s, const fim_hashes *ids, size_t tokens,
                            const pick_ctx *p)
{
    size_t fresh = s->score >= 2;
    for (size_t k = 0; k < ids->n; k++)
        if (!set_has(&p->seen, ids->v[k])) fresh += set_has(&p->doc, ids->v[k]) ? DOC_WEIGHT : 1;
    double relevance = s->score >= 2 ? 1.0 : s->score * 2 < 1 ? s->score * 2 : 1.0;
    if (s->follows) relevance *= FOLLOW_WEIGHT * s->follows;
    return relevance * (double)fresh / (double)(tokens ? tokens : 1);
}

/* Windows and definitions of one file that overlap: the best only. */
static bool overlaps_taken(const fim_snippet *sn, int n, const bool *take, int i)
{
    for (int j = 0; j < n; j++)
        if (take[j] && sn[j].order < sn[i].order_end && sn[i].order < sn[j].order_end) return true;
    return false;
}

/* A document's candidates' tokens and identifiers, kept from one request to the next: the other
 * documents' definitions stay the same while the user types, and tokenizing a hundred of them at
 * each keystroke cost more than the rest of the prompt. Keyed by two 64-bit hashes of the
 * snippet's path and text; entries unused for CACHE_AGE requests go when the table fills. */
enum { CACHE_SLOTS = 2048, CACHE_MAX = CACHE_SLOTS / 2, CACHE_AGE = 4 };
typedef struct cached_snippet {
    uint64_t h1, h2; /* 0, 0: free */
    fim_ids_vec toks;
    fim_hashes ids;
    unsigned used; /* the request that last used it */
} cached_snippet;
enum { LINE_SLOTS = 4096 };
struct fim_snippet_cache {
    cached_snippet slot[CACHE_SLOTS];
    int n;
    unsigned request;
    struct {
        uint64_t h; /* 0: free */
        int tokens;
    } line[LINE_SLOTS]; /* lines' token counts, one per slot, the newest kept */
};

struct fim_snippet_cache *fim__snippet_cache_new(void)
{
    return base_xcalloc(1, sizeof(struct fim_snippet_cache));
}

void fim__snippet_cache_free(struct fim_snippet_cache *sc)
{
    if (!sc) return;
    for (int i = 0; i < CACHE_SLOTS; i++)
        free(sc->slot[i].toks.v), fim__hashes_free(&sc->slot[i].ids);
    free(sc);
}

/* FNV-1a over n bytes, continuing from h. */
static uint64_t fnv1a(uint64_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

/* A line's token count (lines tokenize alike wherever they are: pieces never cross a newline),
 * from the cache when it has it; -1 on a tokenizer error. */
static int line_count(const model_vocab *v, struct fim_snippet_cache *sc, const char *s, size_t n,
                      fim_err *err)
{
    uint64_t h = fnv1a(1469598103934665603ull ^ n, (const unsigned char *)s, n) | 1;
    if (sc && sc->line[h % LINE_SLOTS].h == h) return sc->line[h % LINE_SLOTS].tokens;
    fim_ids_vec t = {0};
    int rc = tok(v, s, n, &t, err);
    free(t.v);
    if (rc) return -1;
    if (sc) sc->line[h % LINE_SLOTS].h = h, sc->line[h % LINE_SLOTS].tokens = (int)t.n;
    return (int)t.n;
}

static void snippet_key(const fim_snippet *sn, uint64_t *h1, uint64_t *h2)
{
    uint64_t a = 1469598103934665603ull, b = 0x9e3779b97f4a7c15ull;
    for (int part = 0; part < 2; part++) {
        const unsigned char *p = (const unsigned char *)(part ? sn->text : sn->path);
        size_t n = strlen((const char *)p);
        a = fnv1a(a, p, n);
        for (size_t i = 0; i < n; i++) b = (b ^ p[i]) * 0xff51afd7ed558ccdull, b ^= b >> 29;
        a = (a ^ 0xff) * 1099511628211ull; /* between path and text */
        b = (b ^ 0xff) * 0xff51afd7ed558ccdull;
    }
    *h1 = a | 1, *h2 = b; /* h1 is never 0: 0 marks a free slot */
}

static cached_snippet *cache_find(struct fim_snippet_cache *sc, uint64_t h1, uint64_t h2)
{
    for (size_t i = h1 % CACHE_SLOTS;; i = (i + 1) % CACHE_SLOTS)
        if (!sc->slot[i].h1 || (sc->slot[i].h1 == h1 && sc->slot[i].h2 == h2)) return &sc->slot[i];
}

/* Drop what recent requests did not use (the table keeps at most half its slots in use). */
static void cache_age(struct fim_snippet_cache *sc)
{
    cached_snippet *old = base_xmalloc(sizeof *old * CACHE_SLOTS);
    memcpy(old, sc->slot, sizeof *old * CACHE_SLOTS);
    memset(sc->slot, 0, sizeof sc->slot);
    sc->n = 0;
    for (int i = 0; i < CACHE_SLOTS; i++) {
        if (!old[i].h1) continue;
        if (sc->request - old[i].used >= CACHE_AGE) {
            free(old[i].toks.v), fim__hashes_free(&old[i].ids);
            continue;
        }
        *cache_find(sc, old[i].h1, old[i].h2) = old[i];
        sc->n++;
    }
    free(old);
}

/* One snippet's tokens (header, text, blank line) and identifiers, computed into t and ids. */
static int snippet_compute(const model_vocab *v, const fim_snippet *sn, fim_ids_vec *t,
                           fim_hashes *ids, fim_err *err)
{
    char head[512];
    snippet_header(sn, head, sizeof head);
    if (tok(v, head, strlen(head), t, err) || tok(v, sn->text, strlen(sn->text), t, err) ||
        tok(v, "\n\n", 2, t, err))
        return -1;
    fim__ident_hashes(sn->text, 0, strlen(sn->text), ids);
    return 0;
}

/* Each snippet's tokens and identifiers (copies; from the cache when it has them); -1 on a
 * tokenizer error. */
static int snippet_tokens(const model_vocab *v, const fim_snippet *sn, int n, fim_ids_vec *toks,
                          fim_hashes *ids, struct fim_snippet_cache *sc, fim_err *err)
{
    if (sc) {
        sc->request++;
        if (sc->n + n > CACHE_MAX) cache_age(sc);
    }
    for (int i = 0; i < n; i++) {
        uint64_t h1, h2;
        snippet_key(&sn[i], &h1, &h2);
        cached_snippet *e = sc && sc->n < CACHE_MAX ? cache_find(sc, h1, h2) : NULL;
        if (e && !e->h1) {
            if (snippet_compute(v, &sn[i], &e->toks, &e->ids, err)) {
                free(e->toks.v), fim__hashes_free(&e->ids);
                memset(e, 0, sizeof *e);
                return -1;
            }
            e->h1 = h1, e->h2 = h2, sc->n++;
        }
        if (!e) {
            if (snippet_compute(v, &sn[i], &toks[i], &ids[i], err)) return -1;
            continue;
        }
        e->used = sc->request;
        fim__ids_push(&toks[i], e->toks.v, e->toks.n);
        ids[i].n = e->ids.n;
        ids[i].v = base_xmalloc(sizeof *ids[i].v * (e->ids.n + 1));
        memcpy(ids[i].v, e->ids.v, sizeof *ids[i].v * e->ids.n);
    }
    return 0;
}

/* The lines just beyond one of the narrowest windows (above the prefix's, nearest first, or
 * below the suffix's): the window may grow into them instead of the budget going to snippets. */
typedef struct band {
    int n, cap;
    int *tokens;
    fim_hashes *ids;
    int taken; /* lines taken, from the nearest */
    int used;  /* their tokens */
} band;

static int band_add(band *b, const model_vocab *v, struct fim_snippet_cache *sc, const char *text,
                    size_t from, size_t to, fim_err *err)
{
    int k = line_count(v, sc, text + from, to - from, err);
    if (k < 0) return -1;
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 32;
        b->tokens = base_xrealloc(b->tokens, sizeof *b->tokens * (size_t)b->cap);
        b->ids = base_xrealloc(b->ids, sizeof *b->ids * (size_t)b->cap);
    }
    b->tokens[b->n] = k;
    fim__ident_hashes(text, from, to, &b->ids[b->n++]);
    return k;
}

static void band_free(band *b)
{
    for (int i = 0; i < b->n; i++) fim__hashes_free(&b->ids[i]);
    free(b->tokens), free(b->ids);
    memset(b, 0, sizeof *b);
}

/* The worth per token of the band's next lines: the best over runs of 1, 2, ... lines that fit
 * `room` (a run of lines is all or nothing), its length in *len and tokens in *tokens. The lines
 * are the document's, so their identifiers weigh as the document's do in snippets. */
static double band_worth(const band *b, int room, const pick_ctx *p, int *len, int *tokens)
{
    double best = 0, fresh = 0;
    int t = 0;
    hash_set counted = {0};
    *len = 0;
    for (int i = b->taken; i < b->n && t + b->tokens[i] <= room; i++) {
        t += b->tokens[i];
        for (size_t k = 0; k < b->ids[i].n; k++)
            if (!set_has(&p->seen, b->ids[i].v[k]) && !set_has(&counted, b->ids[i].v[k]))
                fresh += DOC_WEIGHT, set_put(&counted, b->ids[i].v[k]);
        if (t && fresh / t > best) best = fresh / t, *len = i + 1 - b->taken, *tokens = t;
    }
    free(counted.k);
    return best;
}

/* Takes the run of band lines worth the most per token if it beats `worth`. */
static bool take_band(band *bands, int n_bands, int room, double worth, pick_ctx *p)
{
    int which = -1, len = 0, tokens = 0;
    for (int j = 0; j < n_bands; j++) {
        int l, t;
        double w = band_worth(&bands[j], room, p, &l, &t);
        if (l > 0 && w > worth) worth = w, which = j, len = l, tokens = t;
    }
    if (which < 0) return false;
    band *b = &bands[which];
    for (int i = b->taken; i < b->taken + len; i++)
        for (size_t k = 0; k < b->ids[i].n; k++) set_put(&p->seen, b->ids[i].v[k]);
    b->taken += len, b->used += tokens;
    return true;
}

/* Greedy by worth per token while snippets fit `budget` (a knapsack's usual good-enough answer);
 * each taken snippet's identifiers become seen, so near-duplicates lose their worth. Lines of the
 * bands compete for the same budget. Returns the tokens the snippets use. (Measured: 0.0059 better
 * than taking the highest scores first at budget 1024.) */
static int pick_snippets(const fim_snippet *sn, int n, int budget, const fim_ids_vec *toks,
                         const fim_hashes *ids, pick_ctx *p, bool *take, band *bands, int n_bands)
{
    int used = 0;
    for (;;) {
        int best = -1, in_bands = 0;
        for (int j = 0; j < n_bands; j++) in_bands += bands[j].used;
        double best_worth = 0;
        for (int i = 0; i < n; i++) {
            if (take[i] || used + in_bands + (int)toks[i].n > budget ||
                overlaps_taken(sn, n, take, i))
                continue;
            double w = snippet_worth(&sn[i], &ids[i], toks[i].n, p);
            if (w > best_worth) best = i, best_worth = w;
        }
        if (take_band(bands, n_bands, budget - used - in_bands, best_worth, p)) continue;
        if (best < 0) return used;
        take[best] = true;
        used += (int)toks[best].n;
        for (size_t k = 0; k < ids[best].n; k++) set_put(&p->seen, ids[best].v[k]);
    }
}

/* The taken snippets in their stable order, one header per run of one file; returns the tokens
 * that saves. */
static int emit_snippets(const model_vocab *v, const fim_snippet *sn, int n, const bool *take,
                         const fim_ids_vec *toks, fim_ids_vec *out, fim_err *err)
{
    const char *last_path = NULL;
    int saved = 0;
    for (int i = 0; i < n; i++) {
        if (!take[i]) continue;
        if (last_path && !strcmp(last_path, sn[i].path)) { /* the same file goes on: one header */
            char head[512];
            snippet_header(&sn[i], head, sizeof head);
            fim_ids_vec h = {0};
            if (tok(v, head, strlen(head), &h, err)) return -1;
            fim__ids_push(out, toks[i].v + h.n, toks[i].n - h.n);
            saved += (int)h.n;
            free(h.v);
        } else {
            fim__ids_push(out, toks[i].v, toks[i].n);
        }
        last_path = sn[i].path;
    }
    return saved;
}

/* Candidate snippets with their tokens and identifiers, computed once per prompt and picked from
 * as often as the budget changes. */
typedef struct snippet_set {
    const fim_snippet *sn; /* in their stable order */
    int n;
    fim_ids_vec *toks;
    fim_hashes *ids;
    bool *take;
    pick_ctx base; /* what every pick starts from (the document's identifiers: made once) */
} snippet_set;

static int snippet_set_init(snippet_set *ss, const model_vocab *v, const fim_context *c, size_t l0,
                            const fim_snippet *sn, int n, struct fim_snippet_cache *sc,
                            fim_err *err)
{
    pick_init(&ss->base, c, l0);
    ss->sn = sn, ss->n = n;
    ss->toks = base_xcalloc((size_t)n + 1, sizeof *ss->toks);
    ss->ids = base_xcalloc((size_t)n + 1, sizeof *ss->ids);
    ss->take = base_xcalloc((size_t)n + 1, sizeof *ss->take);
    return snippet_tokens(v, sn, n, ss->toks, ss->ids, sc, err);
}

static void snippet_set_free(snippet_set *ss)
{
    for (int i = 0; i < ss->n; i++) free(ss->toks[i].v), fim__hashes_free(&ss->ids[i]);
    free(ss->toks), free(ss->ids), free(ss->take);
    free(ss->base.seen.k), free(ss->base.doc.k);
}

/* The snippets worth the most that fit `budget` together (with the bands' lines competing for it,
 * when given), emitted into *out (emptied first) in their stable order; returns the tokens the
 * snippets use, -1 on error. */
static int pick_related(const model_vocab *v, snippet_set *ss, int budget, band *bands, int n_bands,
                        fim_ids_vec *out, fim_err *err)
{
    pick_ctx pick = ss->base; /* the picks add to `seen`: a copy of it */
    pick.seen.k = base_xmalloc(sizeof *pick.seen.k * (pick.seen.cap + 1));
    if (pick.seen.cap) memcpy(pick.seen.k, ss->base.seen.k, sizeof *pick.seen.k * pick.seen.cap);
    memset(ss->take, 0, sizeof *ss->take * (size_t)ss->n);
    int used =
        pick_snippets(ss->sn, ss->n, budget, ss->toks, ss->ids, &pick, ss->take, bands, n_bands);
    free(pick.seen.k);
    out->n = 0;
    int saved = emit_snippets(v, ss->sn, ss->n, ss->take, ss->toks, out, err);
    return saved < 0 ? -1 : used - saved;
}

/* What followed the lines above the cursor where the document has them too, outside [lo, hi), as
 * the k-th of the document's own snippets in s (grown by one); returns the new count. */
static int own_follow(const fim_context *c, size_t lo, size_t hi, fim_snippet **s, int k)
{
    fim_def f;
    int agree =
        fim__follow(&c->anchor, c->text, c->len, line_start(c->text, c->cursor), lo, hi, &f);
    if (!agree) return k;
    *s = base_xrealloc(*s, sizeof **s * (size_t)(k + 1));
    (*s)[k] = (fim_snippet){.path = c->path,
                            .text = fim__def_snippet(c->text, &f, c->lang),
                            .lang = c->lang,
                            .score = 1.0,
                            .follows = agree,
                            .order = FIM_FOLLOW_ORDER | OWN_ORDER | f.start,
                            .order_end = FIM_FOLLOW_ORDER | OWN_ORDER | f.end};
    return k + 1;
}

/* Definitions of the document itself that lie outside [lo, hi) and are relevant to the cursor, and
 * what followed the lines above the cursor elsewhere in it. */
static int own_snippets(const fim_context *c, size_t lo, size_t hi, fim_snippet **out)
{
    *out = NULL;
    if (!c->tree) return own_follow(c, lo, hi, out, 0);
    fim_def *defs;
    int n = fim__defs(c->text, c->len, c->defs_tree ? c->defs_tree : c->tree, &defs), k = 0;
    fim_snippet *s = base_xcalloc((size_t)n + 1, sizeof *s);
    for (int i = 0; i < n; i++) {
        fim_def *d = &defs[i];
        if (d->end > lo && d->start < hi) continue;
        fim_hashes ids;
        fim__def_hashes(c->text, d, &ids);
        double score = fim__def_score(&c->query, c->text, d, &ids);
        fim__hashes_free(&ids);
        if (score <= 0) continue;
        s[k].path = c->path;
        s[k].text = fim__def_snippet(c->text, d, c->lang);
        s[k].lang = c->lang;
        s[k].score = score;
        s[k].order = OWN_ORDER | d->start;
        s[k].order_end = OWN_ORDER | d->end;
        k++;
    }
    free(defs);
    /* its imports, when the windows do not show them: the names they bring are the ones the code
     * uses (measured at budget 512: +0.006 of recall on Python, none on the rest) */
    fim_def im;
    if (fim__imports(c->defs_tree ? c->defs_tree : c->tree, &im) &&
        !(im.end > lo && im.start < hi)) {
        s = base_xrealloc(s, sizeof *s * (size_t)(k + 1));
        s[k] = (fim_snippet){.path = c->path,
                             .text = fim__def_snippet(c->text, &im, c->lang),
                             .lang = c->lang,
                             .score = 1.0,
                             .order = OWN_ORDER | im.start,
                             .order_end = OWN_ORDER | im.end};
        k++;
    }
    *out = s;
    return own_follow(c, lo, hi, out, k);
}

/* Where whole lines from `from` stop fitting `budget` tokens, by their kept token counts: the end
 * of a suffix without a syntax cut (a first line that does not fit ends it at `from`). */
static int lines_fitting(const model_vocab *v, const fim_context *c, size_t from, int budget,
                         struct fim_snippet_cache *sc, size_t *end, fim_err *err)
{
    int used = 0;
    for (*end = from; *end < c->len;) {
        size_t e = line_end(c->text, c->len, *end);
        int k = line_count(v, sc, c->text + *end, e - *end, err);
        if (k < 0) return -1;
        if (used + k > budget) break;
        used += k, *end = e;
    }
    return 0;
}

/* The narrowest windows (the prefix at `base` tokens, `suffix` tokens below the cursor line) set
 * what the first pick counts as seen. The lines between them and the widest windows (the prefix
 * from `widest`) and as many below the suffix as `related` tokens become the bands: the windows
 * grow into them when they are worth more than snippets. None of it depends on the cursor line. */
static int window_bands(const model_vocab *v, const fim_context *c, size_t l0, int base, int suffix,
                        int related, size_t widest, struct fim_snippet_cache *sc, snippet_set *ss,
                        band bands[2], fim_err *err)
{
    size_t p0, s0;
    if (prefix_start(v, c, l0, base, false, NULL, sc, &p0, err) ||
        lines_fitting(v, c, line_end(c->text, c->len, c->cursor), suffix, sc, &s0, err))
        return -1;
    pick_seen(&ss->base, c, p0, l0, s0);
    for (size_t at = p0; at > widest; at = line_start(c->text, at - 1))
        if (band_add(&bands[0], v, sc, c->text, line_start(c->text, at - 1), at, err) < 0)
            return -1;
    for (int tokens = 0; s0 < c->len && tokens < related;) {
        size_t e = line_end(c->text, c->len, s0);
        int k = band_add(&bands[1], v, sc, c->text, s0, e, err);
        if (k < 0) return -1;
        tokens += k, s0 = e;
    }
    return 0;
}

/* The context's snippets from other documents followed by the document's own outside [lo, hi),
 * in one array (the own ones' texts are the caller's to free); returns the count. */
static int with_own_snippets(const fim_context *c, size_t lo, size_t hi, fim_snippet **out)
{
    fim_snippet *own;
    int n = own_snippets(c, lo, hi, &own), k = c->n_snips;
    *out = base_xmalloc(sizeof **out * (size_t)(k + n + 1));
    if (k) memcpy(*out, c->snips, sizeof **out * (size_t)k);
    if (n) memcpy(*out + k, own, sizeof **out * (size_t)n);
    free(own);
    return k + n;
}

/* Whether text[a, b) fits in what is left of `budget` after *used tokens (adding them when it
 * does); -1 on a tokenizer error. */
static int fits_more(const model_vocab *v, const char *text, size_t a, size_t b, int budget,
                     int *used, fim_err *err)
{
    fim_ids_vec t = {0};
    if (tok(v, text + a, b - a, &t, err)) return -1;
    int fits = *used + (int)t.n <= budget;
    if (fits) *used += (int)t.n;
    free(t.v);
    return fits;
}

/* The plain window --naive measures against: whole lines, the last 3/4 of `budget` tokens before
 * the cursor (the cursor line's text included) and the first 1/4 after the cursor. */
static int naive_window(const model_vocab *v, const fim_context *c, size_t l0, size_t cursor,
                        int budget, int line_tokens, fim_ids_vec *pre, fim_ids_vec *suf,
                        fim_err *err)
{
    int kp = budget * 3 / 4 - line_tokens, ks = budget - budget * 3 / 4, used = 0, r = 1;
    size_t start = l0, end = cursor;
    while (start > 0 &&
           (r = fits_more(v, c->text, line_start(c->text, start - 1), start, kp, &used, err)) == 1)
        start = line_start(c->text, start - 1);
    for (used = 0; r >= 0 && end < c->len;) {
        size_t le = line_end(c->text, c->len, end);
        if ((r = fits_more(v, c->text, end, le, ks, &used, err)) != 1) break;
        end = le;
    }
    if (r < 0 || tok(v, c->text + start, l0 - start, pre, err)) return -1;
    return tok(v, c->text + cursor, end - cursor, suf, err);
}

/* The tokens the windows' cuts leave for related code. While the cursor stays on its line the
 * last value is kept (the suffix giving way for it) so that typing there, which lengthens the
 * cursor line and can lengthen the suffix (a closing bracket an editor adds after the cursor),
 * leaves the related code at the head of the prompt, and the cached tokens after it, alone; a new
 * value keeps SLACK_MARGIN in hand. */
enum { SLACK_MARGIN = 4 };
static int new_slack(fim_window_memo *memo, int left)
{
    int slack = left > SLACK_MARGIN ? left - SLACK_MARGIN : 0;
    if (memo) memo->slack = slack;
    return slack;
}

/* Where the suffix the second pick sees ends: at `send`, or, while the slack is kept, as many
 * lines below the cursor line as then (so that a bracket closed after the cursor, which can move
 * the suffix's cut, cannot change the related code either). */
static size_t seen_end(const fim_context *c, fim_window_memo *memo, bool kept, size_t send)
{
    size_t at = line_end(c->text, c->len, c->cursor);
    if (!memo) return send;
    if (!kept) {
        memo->seen_lines = 0;
        for (size_t p = at; p < send; p = line_end(c->text, c->len, p)) memo->seen_lines++;
        return send;
    }
    for (long k = 0; k < memo->seen_lines && at < c->len; k++) at = line_end(c->text, c->len, at);
    return at;
}

int fim__build_prompt(const model_vocab *v, const fim_context *c, const fim_config *cfg,
                      fim_window_memo *memo, fim_ids_vec *out, fim_err *err)
{
    model_fim_ids f;
    model_err me = {{0}};
    if (model_vocab_fim(v, &f, &me)) return fim__fail(err, "%s", me.msg);
    size_t cursor = c->cursor < c->len ? c->cursor : c->len;
    size_t l0 = line_start(c->text, cursor);
    out->n = 0;
    if (model_vocab_add_bos(v)) {
        int32_t bos = model_vocab_bos(v);
        fim__ids_push(out, &bos, 1);
    }
    fim__ids_push(out, &f.begin, 1);
    fim_ids_vec line = {0}, pre = {0}, suf = {0}, rel = {0};
    snippet_set snips = {0};
    int rc = -1;
    fim_snippet *own = NULL;
    int n_own = 0;
    if (tok(v, c->text + l0, cursor - l0, &line, err)) goto done;
    size_t line_cap = cfg->prefix_tokens < LINE_BEFORE_MAX_TOKENS
                          ? (size_t)(cfg->prefix_tokens > 0 ? cfg->prefix_tokens : 0)
                          : LINE_BEFORE_MAX_TOKENS;
    size_t skip = line.n > line_cap ? line.n - line_cap : 0;
    if (cfg->naive_window) {
        int total = cfg->prefix_tokens + cfg->suffix_tokens +
                    (cfg->related_tokens > 0 ? cfg->related_tokens : 0);
        if (naive_window(v, c, l0, cursor, total, (int)(line.n - skip), &pre, &suf, err)) goto done;
        goto assemble;
    }
    int related = cfg->related_tokens > 0 ? cfg->related_tokens : 0;
    /* the widest prefix and suffix we could have (by budget alone, so that parse errors of the
     * moment cannot change them): the document's own definitions outside them may help */
    /* the cursor line's share: its tokens and a step more (prefix/16 tokens, 4 to 64), kept for
     * as long as the cursor stays on the line and the line fits, so that typing in it keeps the
     * windows put */
    int rs = cfg->prefix_tokens / 16 < 4    ? 4
             : cfg->prefix_tokens / 16 > 64 ? 64
                                            : cfg->prefix_tokens / 16;
    int line_tokens = (int)(line.n - skip), reserve = (line_tokens + rs) / rs * rs;
    long cursor_line = c->cursor_line;
    bool same_line = memo && memo->valid && memo->line == cursor_line;
    if (same_line && memo->reserve >= line_tokens) reserve = memo->reserve;
    if (reserve > cfg->prefix_tokens) reserve = line_tokens;
    if (memo && !same_line) memo->entry_reserve = reserve;
    if (memo) memo->line = cursor_line, memo->reserve = reserve;
    /* what related code is chosen from and judged by: the windows as the share was when the cursor
     * came to the line, so that the share's steps as the line grows cannot move the related code */
    int fixed = cfg->prefix_tokens - (memo ? memo->entry_reserve : reserve);
    if (fixed < 0) fixed = 0;
    size_t pstart, send;
    if (memo && !memo->snippets) memo->snippets = fim__snippet_cache_new();
    struct fim_snippet_cache *sc = memo ? memo->snippets : NULL;
    if (prefix_start(v, c, l0, fixed + related, false, NULL, sc, &pstart, err)) goto done;
    /* (the suffix may get what the prefix leaves: exclude what the widest suffix would show) */
    if (lines_fitting(v, c, cursor, cfg->suffix_tokens + fixed + related, sc, &send, err))
        goto done;
    n_own = with_own_snippets(c, pstart, send, &own);
    if (snippet_set_init(&snips, v, c, l0, own, n_own, sc, err)) goto done;
    band bands[2] = {{0}};
    int used =
        window_bands(v, c, l0, fixed, cfg->suffix_tokens, related, pstart, sc, &snips, bands, err)
            ? -1
            : pick_related(v, &snips, related, bands, 2, &rel, err);
    int grown = bands[1].used; /* the suffix's band lines taken */
    band_free(&bands[0]), band_free(&bands[1]);
    if (used < 0) goto done;
    /* The cursor line's share grown since the cursor came to the line is paid by the suffix's
     * end, so that the related code and the prefix before it stay put as a long line is typed;
     * when the suffix cannot pay it all, the prefix pays the rest. */
    int grow = memo && reserve > memo->entry_reserve ? reserve - memo->entry_reserve : 0;
    int budget = fixed + related - used - grown; /* what the related code left the prefix */
    int suffix = cfg->suffix_tokens + grown - grow;
    if (suffix < 0) budget += suffix, suffix = 0;
    if (budget < 0) budget = 0;
    if (prefix_start(v, c, l0, budget, true, memo, sc, &pstart, err)) goto done;
    if (prefix_tokens(v, c, pstart, l0, budget, &pre, err)) goto done;
    /* what the prefix leaves (at its boundary, or at the top of the file) goes to the suffix, and
     * what the suffix's cut leaves to related code, picked again with it (+0.004 of recall at
     * budget 512) */
    suffix += budget - (int)pre.n;
    bool kept = same_line && memo->slack <= suffix; /* (the last value, the suffix giving way) */
    int slack = kept ? memo->slack : 0;
    if (suffix_tokens(v, c, cursor, suffix - slack, true, memo, &suf, &send, err)) goto done;
    if (!kept) slack = new_slack(memo, suffix - (int)suf.n);
    size_t seen_to = seen_end(c, memo, kept, send);
    if (slack > 0) { /* judged by what the windows now show (+0.0015 of recall at budget 512) */
        pick_seen(&snips.base, c, pstart, l0, seen_to);
        if ((used = pick_related(v, &snips, used + slack, NULL, 0, &rel, err)) < 0) goto done;
    }
    if (memo) memo->valid = true;
assemble:
    fim__ids_push(out, rel.v, rel.n);
    fim__ids_push(out, pre.v, pre.n);
    fim__ids_push(out, &f.hole, 1);
    fim__ids_push(out, suf.v, suf.n);
    fim__ids_push(out, &f.end, 1);
    fim__ids_push(out, line.v + skip, line.n - skip);
    rc = 0;
done:
    snippet_set_free(&snips);
    for (int i = c->n_snips; i < n_own; i++) free(own[i].text);
    free(own);
    free(line.v), free(pre.v), free(suf.v), free(rel.v);
    return rc;
}
