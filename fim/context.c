/* fim/context.c — a context: the detached copy of a document (text, trees, cursor) one completion
 * works from, with the definitions of other open documents most relevant to the cursor. The top of
 * fim/'s syntax files: it calls documents, shape and related code. */
#define _GNU_SOURCE
#include "fim/fim_internal.h"
#include "base/base.h"

#include <stdlib.h>
#include <string.h>

/* candidates from other documents; the prompt picks among them by what they add (32 did 0.003 worse
 * at budget 512, 256 no better) */
enum { MAX_SNIPPETS = 96 };

static char *xstrndup(const char *s, size_t n)
{
    char *p = base_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

/* ---- contexts ---- */

static int snippet_order(const void *a, const void *b)
{
    const fim_snippet *x = a, *y = b;
    return x->order < y->order ? -1 : x->order > y->order;
}

static int by_score(const void *a, const void *b)
{
    const fim_snippet *x = a, *y = b;
    return x->score > y->score ? -1 : x->score < y->score ? 1 : snippet_order(a, b);
}

/* Definitions of `other` that are relevant to the cursor, as candidate snippets. */
static void add_related(fim_context *c, const fim_query *q, fim_doc *other, size_t doc_index,
                        fim_snippet **v, int *n, int *cap)
{
    int nd;
    const fim_hashes *ids;
    const fim_def *defs = fim__related_defs(other, &nd, &ids);
    (void)c;
    for (int i = 0; i < nd; i++) {
        const fim_def *d = &defs[i];
        double score = fim__def_score(q, other->text, d, &ids[i]);
        if (score <= 0) continue;
        if (*n == *cap) {
            *cap = *cap ? *cap * 2 : 32;
            *v = base_xrealloc(*v, sizeof **v * (size_t)*cap);
        }
        fim_snippet *s = &(*v)[(*n)++];
        memset(s, 0, sizeof *s);
        s->path = (char *)other; /* resolved below for the ones kept */
        s->name = (char *)d;
        s->score = score;
        s->order = (doc_index << 32) | (d->start & 0xffffffffu);
        s->order_end = (doc_index << 32) | (d->end & 0xffffffffu);
    }
}

/* Where `o` sorts among the open documents other than `d` (by path), so that snippets keep their
 * places from one request to the next. */
static size_t path_rank(const fim_doc *o, const fim_doc *d, fim_doc *const *open, int n_open)
{
    size_t rank = 0;
    for (int j = 0; j < n_open; j++)
        if (open[j] && open[j] != d && strcmp(open[j]->path, o->path) < 0) rank++;
    return rank;
}

/* For each other document, what followed the lines above the cursor where it has them too
 * (fim__follow). */
static void add_follows(fim_context *c, const fim_doc *d, fim_doc *const *open, int n_open)
{
    for (int i = 0; c->anchor.n && i < n_open; i++) {
        fim_doc *o = open[i];
        fim_def f;
        int agree = o && o != d ? fim__doc_follow(o, &c->anchor, &f) : 0;
        if (!agree) continue;
        size_t order = FIM_FOLLOW_ORDER | path_rank(o, d, open, n_open) << 32;
        c->snips = base_xrealloc(c->snips, sizeof *c->snips * (size_t)(c->n_snips + 2));
        c->snips[c->n_snips++] = (fim_snippet){.path = strdup(o->path),
                                               .text = fim__def_snippet(o->text, &f, o->lang),
                                               .lang = o->lang,
                                               .order = order | (f.start & 0xffffffffu),
                                               .order_end = order | (f.end & 0xffffffffu),
                                               .score = 1.0,
                                               .follows = agree};
    }
}

fim_context *fim_context_new(fim_doc *d, size_t cursor, fim_doc *const *open, int n_open)
{
    fim_context *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    fim_doc_sync(d);
    if (cursor > d->len) cursor = d->len;
    c->path = strdup(d->path);
    c->text = xstrndup(d->text, d->len);
    c->len = d->len;
    c->cursor = cursor;
    c->lang = d->lang;
    c->tree = d->tree ? ts_tree_copy(d->tree) : NULL;
    c->defs_tree = d->good ? ts_tree_copy(d->good) : NULL;
    for (const char *p = c->text; (p = memchr(p, '\n', (size_t)(c->text + cursor - p))); p++)
        c->cursor_line++;
    fim__query_init(&c->query, c->text, c->len, cursor, c->cursor_line);
    size_t l0 = cursor;
    while (l0 > 0 && c->text[l0 - 1] != '\n') l0--;
    fim__anchor_init(&c->anchor, c->text, l0);
    const fim_query *q = &c->query;
    fim_snippet *cand = NULL;
    int n = 0, cap = 0;
    /* documents in path order, so the snippets keep their places from one request to the next */
    for (int i = 0; i < n_open; i++) {
        if (open[i] && open[i] != d)
            add_related(c, q, open[i], path_rank(open[i], d, open, n_open), &cand, &n, &cap);
    }
    /* the most relevant, materialized */
    if (n) qsort(cand, (size_t)n, sizeof *cand, by_score);
    c->n_snips = n < MAX_SNIPPETS ? n : MAX_SNIPPETS;
    c->snips = base_xmalloc(sizeof *c->snips * (size_t)(c->n_snips + 1));
    for (int i = 0; i < c->n_snips; i++) {
        const fim_doc *o = (const fim_doc *)cand[i].path;
        const fim_def *df = (const fim_def *)cand[i].name;
        fim_snippet *sn = &c->snips[i];
        *sn = cand[i];
        sn->path = strdup(o->path);
        sn->name = xstrndup(o->text + df->name_start, df->name_end - df->name_start);
        sn->text = fim__def_snippet(o->text, df, o->lang);
        sn->lang = o->lang;
    }
    free(cand);
    add_follows(c, d, open, n_open);
    qsort(c->snips, (size_t)c->n_snips, sizeof *c->snips, snippet_order);
    return c;
}

fim_context *fim__context_from_text(const char *path, const char *language_id, const char *text,
                                    size_t len, size_t cursor)
{
    fim_doc *d = fim_doc_new(path, language_id, text, len);
    if (!d) return NULL;
    fim_context *c = fim_context_new(d, cursor, NULL, 0);
    fim_doc_free(d);
    return c;
}

void fim_context_free(fim_context *c)
{
    if (!c) return;
    for (int i = 0; i < c->n_snips; i++)
        free(c->snips[i].path), free(c->snips[i].name), free(c->snips[i].text);
    free(c->snips);
    if (c->tree) ts_tree_delete(c->tree);
    if (c->defs_tree) ts_tree_delete(c->defs_tree);
    fim__query_free(&c->query);
    free(c->text);
    free(c->path);
    free(c);
}

const char *fim_context_text(const fim_context *c, size_t *len)
{
    *len = c->len;
    return c->text;
}

size_t fim_context_cursor(const fim_context *c)
{
    return c->cursor;
}

bool fim_context_multi_line(const fim_context *c)
{
    return fim__multi_line(c);
}
