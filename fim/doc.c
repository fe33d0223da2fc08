/* fim/doc.c — documents: text, language and incrementally parsed tree-sitter trees (the current one
 * and the last without errors) kept in step with edits. Calls no other syntax file; the related
 * code's cache a document holds is opaque here (fim_internal.h says who frees it). */
#define _GNU_SOURCE
#include "fim/fim_internal.h"
#include "base/base.h"

#include <stdlib.h>
#include <string.h>

/* ---- documents ---- */

static void reserve(fim_doc *d, size_t need)
{
    if (need + 1 <= d->cap) return;
    size_t cap = d->cap ? d->cap : 4096;
    while (cap < need + 1) cap *= 2;
    char *p = base_xrealloc(d->text, cap);
    d->text = p;
    d->cap = cap;
}

static void parse(fim_doc *d)
{
    d->dirty = false;
    if (!d->grammar || d->len > FIM_PARSE_MAX) {
        if (d->tree) ts_tree_delete(d->tree);
        if (d->good) ts_tree_delete(d->good);
        d->tree = d->good = NULL;
        return;
    }
    if (!d->parser) {
        d->parser = ts_parser_new();
        if (!ts_parser_set_language(d->parser, d->grammar)) {
            d->grammar = NULL; /* an ABI the runtime refuses: heuristics only */
            return;
        }
        ts_parser_set_timeout_micros(d->parser, FIM__PARSE_TIMEOUT_US);
    }
    TSTree *t = ts_parser_parse_string(d->parser, d->tree, d->text, (uint32_t)d->len);
    if (d->tree) ts_tree_delete(d->tree);
    d->tree = t; /* NULL after a timeout: the next parse starts afresh */
    if (t && (!d->good || !ts_node_has_error(ts_tree_root_node(t)))) {
        if (d->good) ts_tree_delete(d->good);
        d->good = ts_tree_copy(t);
    }
    if (!t) ts_parser_reset(d->parser);
}

fim_doc *fim_doc_new(const char *path, const char *language_id, const char *text, size_t len)
{
    fim_doc *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    d->path = strdup(path ? path : "");
    reserve(d, len);
    if (len) memcpy(d->text, text, len);
    d->len = len;
    d->text[len] = 0;
    d->lang = parsers_detect(language_id, path, text, len);
    d->grammar = parsers_grammar(d->lang);
    d->dirty = true;
    return d;
}

void fim_doc_free(fim_doc *d)
{
    if (!d) return;
    if (d->tree) ts_tree_delete(d->tree);
    if (d->good) ts_tree_delete(d->good);
    if (d->parser) ts_parser_delete(d->parser);
    if (d->related)
        d->related_free(d->related); /* related.c's cache, freed by related.c's function */
    free(d->text);
    free(d->path);
    free(d);
}

fim_doc *fim_doc_copy(const fim_doc *d)
{
    fim_doc *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->path = strdup(d->path);
    reserve(c, d->len);
    memcpy(c->text, d->text, d->len + 1);
    c->len = d->len;
    c->lang = d->lang;
    c->grammar = d->grammar;
    /* trees are shared by reference count; the copy gets its own parser when it first parses */
    c->tree = d->tree ? ts_tree_copy(d->tree) : NULL;
    c->good = d->good ? ts_tree_copy(d->good) : NULL;
    c->dirty = d->dirty;
    c->edits = d->edits;
    return c;
}

const char *fim_doc_text(const fim_doc *d, size_t *len)
{
    *len = d->len;
    return d->text;
}

const char *fim_doc_language(const fim_doc *d)
{
    return d->lang ? d->lang->name : "";
}

bool fim_doc_has_tree(const fim_doc *d)
{
    return d->tree != NULL;
}

/* Row and byte column of offset `at`. */
TSPoint fim__point_at(const char *t, size_t at)
{
    TSPoint p = {0, 0};
    size_t line = 0;
    for (const char *s = t; (s = memchr(s, '\n', (size_t)(t + at - s))); s++) {
        p.row++;
        line = (size_t)(s - t) + 1;
    }
    p.column = (uint32_t)(at - line);
    return p;
}

TSPoint fim__point_after(TSPoint from, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\n')
            from.row++, from.column = 0;
        else
            from.column++;
    }
    return from;
}

void fim_doc_replace(fim_doc *d, size_t start, size_t end, const char *text, size_t n)
{
    if (start > d->len) start = d->len;
    if (end > d->len) end = d->len;
    if (end < start) end = start;
    if (d->tree) {
        TSInputEdit e;
        e.start_byte = (uint32_t)start;
        e.old_end_byte = (uint32_t)end;
        e.new_end_byte = (uint32_t)(start + n);
        e.start_point = fim__point_at(d->text, start);
        e.old_end_point = fim__point_after(e.start_point, d->text + start, end - start);
        e.new_end_point = fim__point_after(e.start_point, text, n);
        ts_tree_edit(d->tree, &e);
        if (d->good) ts_tree_edit(d->good, &e);
    }
    reserve(d, d->len - (end - start) + n);
    memmove(d->text + start + n, d->text + end, d->len - end);
    if (n) memcpy(d->text + start, text, n);
    d->len = d->len - (end - start) + n;
    d->text[d->len] = 0;
    d->dirty = true;
    d->edits++;
}

TSTree *fim__doc_tree(fim_doc *d)
{
    fim_doc_sync(d);
    return d->tree;
}

double fim_doc_sync(fim_doc *d)
{
    if (!d->dirty) return 0;
    double t0 = base_now_ms();
    parse(d);
    return base_now_ms() - t0;
}

/* ---- tree helpers ---- */

bool fim__type_has(TSNode n, const char *part)
{
    return strstr(ts_node_type(n), part) != NULL;
}
