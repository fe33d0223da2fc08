/* lsp/transport.c — Content-Length framing, resumable: bytes are fed as they arrive and complete
 * messages come out. A body over the size cap is dropped as it streams in, never buffered. After a
 * malformed header the reader skips to the end of that header block and recovers at the next
 * Content-Length it finds. */
#define _GNU_SOURCE
#include "lsp/lsp_internal.h"
#include "base/base.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { MAX_HEADER = 8192 };

void lsp__reader_feed(lsp_reader *r, const char *data, size_t n)
{
    if (r->discard) { /* still dropping a rejected body */
        size_t k = n < r->discard ? n : r->discard;
        r->discard -= k;
        data += k, n -= k;
    }
    if (!n) return;
    if (r->len + n > r->cap) {
        size_t cap = r->cap ? r->cap : 65536;
        while (cap < r->len + n) cap *= 2;
        char *p = base_xrealloc(r->buf, cap);
        r->buf = p;
        r->cap = cap;
    }
    memcpy(r->buf + r->len, data, n);
    r->len += n;
}

static void consume(lsp_reader *r, size_t n)
{
    memmove(r->buf, r->buf + n, r->len - n);
    r->len -= n;
}

/* Value of the last "Content-Length:" in the header block [0, n): -1 missing, -2 malformed. */
static long long content_length(const char *h, size_t n, char *why, size_t cap)
{
    const char *found = NULL;
    for (size_t i = 0; i + 15 <= n; i++)
        if (!strncasecmp(h + i, "content-length:", 15)) found = h + i + 15;
    if (!found) {
        snprintf(why, cap, "header without Content-Length");
        return -1;
    }
    while (*found == ' ' || *found == '\t') found++;
    long long v = 0;
    const char *p = found;
    while (*p >= '0' && *p <= '9' && v < (1LL << 50)) v = v * 10 + (*p++ - '0');
    while (*p == ' ' || *p == '\t') p++;
    if (p == found || (*p != '\r' && *p != '\n')) {
        snprintf(why, cap, "Content-Length is not a non-negative number");
        return -2;
    }
    return v;
}

enum lsp_frame lsp__reader_next(lsp_reader *r, const char **body, size_t *len, char *why,
                                size_t cap)
{
    if (r->pending) {
        consume(r, r->pending);
        r->pending = 0;
    }
    if (r->discard) return FRAME_NEED_MORE;
    /* skip stray line breaks between messages */
    size_t lead = 0;
    while (lead < r->len && (r->buf[lead] == '\r' || r->buf[lead] == '\n')) lead++;
    if (lead) consume(r, lead);
    char *end = r->len ? memmem(r->buf, r->len, "\r\n\r\n", 4) : NULL;
    if (!end) {
        if (r->len > MAX_HEADER) { /* no header ends: drop what we have */
            snprintf(why, cap, "header longer than %d bytes", MAX_HEADER);
            r->len = 0;
            return FRAME_BAD_HEADER;
        }
        return FRAME_NEED_MORE;
    }
    size_t hlen = (size_t)(end - r->buf) + 4;
    long long n = content_length(r->buf, hlen, why, cap);
    if (n < 0) {
        consume(r, hlen);
        return FRAME_BAD_HEADER;
    }
    size_t max = r->max_message ? r->max_message : (size_t)64 << 20;
    if ((unsigned long long)n > 16ULL * max) { /* absurd: a corrupt header, not a big message */
        snprintf(why, cap, "Content-Length %lld is absurd", n);
        consume(r, hlen);
        return FRAME_BAD_HEADER;
    }
    if ((unsigned long long)n > max) {
        snprintf(why, cap, "message of %lld bytes exceeds the %zu-byte limit", n, max);
        consume(r, hlen);
        size_t have = r->len < (size_t)n ? r->len : (size_t)n;
        consume(r, have);
        r->discard = (size_t)n - have;
        return FRAME_TOO_BIG;
    }
    if (r->len - hlen < (size_t)n) return FRAME_NEED_MORE;
    /* hand out the body in place; it stays valid until the next call, which drops it */
    consume(r, hlen);
    *body = r->buf;
    *len = (size_t)n;
    r->pending = (size_t)n;
    return FRAME_MESSAGE;
}

void lsp__reader_free(lsp_reader *r)
{
    free(r->buf);
    r->buf = NULL;
    r->len = r->cap = 0;
}
