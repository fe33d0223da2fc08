/* lsp/docs.c — the open documents: URI -> fim_doc (text and syntax tree), version and language
 * id, with edits applied to both. A handful of documents are open at a time, so a plain array is
 * enough. */
#define _GNU_SOURCE
#include "lsp/lsp_internal.h"
#include "base/base.h"

#include <stdlib.h>
#include <string.h>

lsp_doc *lsp__doc_find(lsp_docs *s, const char *uri)
{
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->v[i].uri, uri)) return &s->v[i];
    return NULL;
}

lsp_doc *lsp__doc_open(lsp_docs *s, const char *uri, const char *text, size_t len, long version,
                       const char *language)
{
    lsp_doc *d = lsp__doc_find(s, uri);
    if (!d) {
        if (s->n == s->cap) {
            int cap = s->cap ? s->cap * 2 : 16;
            lsp_doc *p = base_xrealloc(s->v, sizeof *p * (size_t)cap);
            s->v = p;
            s->cap = cap;
        }
        d = &s->v[s->n++];
        memset(d, 0, sizeof *d);
        d->uri = strdup(uri);
    }
    free(d->language);
    d->language = strdup(language ? language : "");
    fim_doc_free(d->fd);
    d->fd = fim_doc_new(uri, language, text, len);
    if (!d->fd) abort();
    d->text = fim_doc_text(d->fd, &d->len);
    d->version = version;
    return d;
}

void lsp__doc_close(lsp_docs *s, const char *uri)
{
    lsp_doc *d = lsp__doc_find(s, uri);
    if (!d) return;
    free(d->uri);
    fim_doc_free(d->fd);
    free(d->language);
    *d = s->v[--s->n];
}

void lsp__doc_edit(lsp_doc *d, size_t start, size_t end, const char *text, size_t n)
{
    fim_doc_replace(d->fd, start, end, text, n);
    d->text = fim_doc_text(d->fd, &d->len);
}

void lsp__docs_free(lsp_docs *s)
{
    for (int i = 0; i < s->n; i++)
        free(s->v[i].uri), fim_doc_free(s->v[i].fd), free(s->v[i].language);
    free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
}
