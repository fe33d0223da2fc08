/* lsp/docs.c — the open documents: URI -> text bytes, version and language id, with in-place
 * edits. A handful of documents are open at a time, so a plain array is enough. */
#define _GNU_SOURCE
#include "lsp/lsp_internal.h"

#include <stdlib.h>
#include <string.h>

lsp_doc *lsp__doc_find(lsp_docs *s, const char *uri)
{
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->v[i].uri, uri)) return &s->v[i];
    return NULL;
}

static void reserve(lsp_doc *d, size_t need)
{
    if (need + 1 <= d->cap) return;
    size_t cap = d->cap ? d->cap : 4096;
    while (cap < need + 1) cap *= 2;
    char *p = realloc(d->text, cap);
    if (!p) abort();
    d->text = p;
    d->cap = cap;
}

lsp_doc *lsp__doc_open(lsp_docs *s, const char *uri, const char *text, size_t len, long version,
                       const char *language)
{
    lsp_doc *d = lsp__doc_find(s, uri);
    if (!d) {
        if (s->n == s->cap) {
            int cap = s->cap ? s->cap * 2 : 16;
            lsp_doc *p = realloc(s->v, sizeof *p * (size_t)cap);
            if (!p) abort();
            s->v = p;
            s->cap = cap;
        }
        d = &s->v[s->n++];
        memset(d, 0, sizeof *d);
        d->uri = strdup(uri);
    }
    free(d->language);
    d->language = strdup(language ? language : "");
    d->len = 0;
    reserve(d, len);
    memcpy(d->text, text, len);
    d->len = len;
    d->text[len] = 0;
    d->version = version;
    return d;
}

void lsp__doc_close(lsp_docs *s, const char *uri)
{
    lsp_doc *d = lsp__doc_find(s, uri);
    if (!d) return;
    free(d->uri);
    free(d->text);
    free(d->language);
    *d = s->v[--s->n];
}

void lsp__doc_edit(lsp_doc *d, size_t start, size_t end, const char *text, size_t n)
{
    if (start > d->len) start = d->len;
    if (end > d->len) end = d->len;
    if (end < start) end = start;
    reserve(d, d->len - (end - start) + n);
    memmove(d->text + start + n, d->text + end, d->len - end);
    memcpy(d->text + start, text, n);
    d->len = d->len - (end - start) + n;
    d->text[d->len] = 0;
}

void lsp__docs_free(lsp_docs *s)
{
    for (int i = 0; i < s->n; i++) free(s->v[i].uri), free(s->v[i].text), free(s->v[i].language);
    free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
}
