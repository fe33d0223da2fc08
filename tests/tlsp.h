/* tests/tlsp.h — what the tests that drive fimd over stdio share when reading its messages: is a
 * parsed message the response to a given id, its error code, and freeing it. Header-only, so the
 * model's tests, which link no lsp/, need not carry it. */
#ifndef FIMD_TLSP_H
#define FIMD_TLSP_H

#include "lsp/lsp_internal.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* A received message: its text (malloc'd by the reader) and its tokens. */
static inline void tlsp_done(jdoc *d)
{
    free((char *)d->s);
    lsp__json_free(d);
}

/* Is d the response (not a request or notification) to the request whose raw JSON id is id? A
 * string token's span excludes its quotes, so they are put back before comparing. */
static inline bool tlsp_answers(const jdoc *d, const char *id)
{
    int i = lsp__jget(d, 0, "id");
    if (i < 0 || lsp__jget(d, 0, "method") >= 0) return false;
    int q = d->t[i].type == JSMN_STRING;
    int start = d->t[i].start - q, end = d->t[i].end + q;
    return end - start == (int)strlen(id) && !memcmp(d->s + start, id, strlen(id));
}

static inline long tlsp_error_code(const jdoc *d)
{
    long code = 0;
    lsp__jint(d, lsp__jget(d, lsp__jget(d, 0, "error"), "code"), &code);
    return code;
}

#endif
