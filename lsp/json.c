/* lsp/json.c — JSON for the server: strict jsmn tokens with typed accessors (strings decoded with
 * escapes and surrogate pairs), and a small writer whose strings are always valid JSON and valid
 * UTF-8. */
#define JSMN_STATIC
#define JSMN_STRICT
#include <jsmn.h> /* the implementation, private to this file */

#include "lsp/lsp_internal.h"
#include "base/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_tokens(jdoc *d, const char *s, size_t len)
{
    jsmn_parser p;
    jsmn_init(&p);
    int n = jsmn_parse(&p, s, len, NULL, 0);
    if (n <= 0) return -1;
    d->t = malloc(sizeof(jsmntok_t) * (size_t)n);
    if (!d->t) return -1;
    jsmn_init(&p);
    d->n = jsmn_parse(&p, s, len, d->t, (unsigned)n);
    return d->n > 0 ? 0 : -1;
}

int lsp__json_parse(jdoc *d, const char *s, size_t len)
{
    memset(d, 0, sizeof *d);
    d->s = s;
    if (parse_tokens(d, s, len)) {
        /* strict jsmn wants a delimiter after a top-level number or literal ("42" is valid JSON) */
        free(d->t);
        d->t = NULL;
        char *copy = malloc(len + 2);
        if (!copy || len > 64) {
            free(copy);
            return -1;
        }
        memcpy(copy, s, len);
        copy[len] = '\n';
        int r = parse_tokens(d, copy, len + 1);
        bool scalar = r == 0 && d->n == 1 && d->t[0].type == JSMN_PRIMITIVE;
        free(copy);
        if (!scalar) return -1;
        return 0; /* offsets are the same in s */
    }
    /* jsmn accepts several top-level values; a message is exactly one */
    if (lsp__jskip(d, 0) != d->n) return -1;
    size_t end = (size_t)d->t[0].end + (d->t[0].type == JSMN_STRING); /* past the closing quote */
    for (size_t i = end; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') return -1;
    return 0;
}

void lsp__json_free(jdoc *d)
{
    free(d->t);
    d->t = NULL;
}

int lsp__jskip(const jdoc *d, int i)
{
    if (i < 0 || i >= d->n) return d->n; /* e.g. a key without a value at the end of an object */
    int end = d->t[i].end;
    i++;
    while (i < d->n && d->t[i].start < end) i++;
    return i;
}

int lsp__jget(const jdoc *d, int obj, const char *key)
{
    if (obj < 0 || obj >= d->n || d->t[obj].type != JSMN_OBJECT) return -1;
    size_t kl = strlen(key);
    int i = obj + 1;
    for (int k = 0; k < d->t[obj].size && i < d->n; k++) {
        const jsmntok_t *t = &d->t[i];
        if (t->type == JSMN_STRING && (size_t)(t->end - t->start) == kl &&
            !memcmp(d->s + t->start, key, kl))
            return i + 1 < d->n ? i + 1 : -1;
        i = lsp__jskip(d, i + 1);
    }
    return -1;
}

int lsp__jelem(const jdoc *d, int arr, int k)
{
    if (!lsp__jis(d, arr, JSMN_ARRAY) || k < 0 || k >= d->t[arr].size) return -1;
    int i = arr + 1;
    while (k-- > 0) i = lsp__jskip(d, i);
    return i;
}

bool lsp__jis(const jdoc *d, int i, jsmntype_t type)
{
    return i >= 0 && i < d->n && d->t[i].type == type;
}

bool lsp__jstr_eq(const jdoc *d, int i, const char *s)
{
    if (!lsp__jis(d, i, JSMN_STRING)) return false;
    size_t n = strlen(s);
    return (size_t)(d->t[i].end - d->t[i].start) == n && !memcmp(d->s + d->t[i].start, s, n);
}

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

static long hex4(const char *s, const char *e)
{
    if (e - s < 4) return -1;
    long v = 0;
    for (int k = 0; k < 4; k++) {
        int h = hexval(s[k]);
        if (h < 0) return -1;
        v = v * 16 + h;
    }
    return v;
}

char *lsp__jstr(const jdoc *d, int i, size_t *len)
{
    if (!lsp__jis(d, i, JSMN_STRING)) return NULL;
    const char *s = d->s + d->t[i].start, *e = d->s + d->t[i].end;
    char *out = malloc((size_t)(e - s) + 4), *o = out;
    if (!out) return NULL;
    while (s < e) {
        if (*s != '\\') {
            *o++ = *s++;
            continue;
        }
        s++;
        char c = s < e ? *s++ : 0;
        switch (c) {
        case 'n':
            *o++ = '\n';
            break;
        case 't':
            *o++ = '\t';
            break;
        case 'r':
            *o++ = '\r';
            break;
        case 'b':
            *o++ = '\b';
            break;
        case 'f':
            *o++ = '\f';
            break;
        case 'u': {
            long cp = hex4(s, e);
            if (cp < 0) {
                cp = 0xfffd;
            } else {
                s += 4;
                if (cp >= 0xd800 && cp < 0xdc00) {
                    long lo = e - s >= 6 && s[0] == '\\' && s[1] == 'u' ? hex4(s + 2, e) : -1;
                    if (lo >= 0xdc00 && lo < 0xe000) {
                        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                        s += 6;
                    } else {
                        cp = 0xfffd; /* lone high surrogate */
                    }
                } else if (cp >= 0xdc00 && cp < 0xe000) {
                    cp = 0xfffd; /* lone low surrogate */
                }
            }
            o += base_utf8_encode((uint32_t)cp, o);
            break;
        }
        default:
            *o++ = c;
            break; /* \" \\ \/ */
        }
    }
    *o = 0;
    if (len) *len = (size_t)(o - out);
    return out;
}

bool lsp__jnum(const jdoc *d, int i, double *out)
{
    if (!lsp__jis(d, i, JSMN_PRIMITIVE)) return false;
    char c = d->s[d->t[i].start];
    if (c != '-' && (c < '0' || c > '9')) return false;
    char buf[64];
    int n = d->t[i].end - d->t[i].start;
    if (n >= (int)sizeof buf) return false;
    memcpy(buf, d->s + d->t[i].start, (size_t)n);
    buf[n] = 0;
    *out = strtod(buf, NULL);
    return true;
}

bool lsp__jint(const jdoc *d, int i, long *out)
{
    double v;
    if (!lsp__jnum(d, i, &v) || v != (double)(long)v || v > 9e15 || v < -9e15) return false;
    *out = (long)v;
    return true;
}

bool lsp__jbool(const jdoc *d, int i, bool *out)
{
    if (!lsp__jis(d, i, JSMN_PRIMITIVE)) return false;
    char c = d->s[d->t[i].start];
    if (c != 't' && c != 'f') return false;
    *out = c == 't';
    return true;
}

/* ---- writer ---- */

void lsp__jw_raw(jw *w, const char *s, size_t n)
{
    if (w->n + n + 1 > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->n + n + 1) cap *= 2;
        char *p = base_xrealloc(w->p, cap);
        w->p = p;
        w->cap = cap;
    }
    memcpy(w->p + w->n, s, n);
    w->n += n;
    w->p[w->n] = 0;
}

void lsp__jw_fmt(jw *w, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < (int)sizeof small) {
        lsp__jw_raw(w, small, (size_t)n);
        return;
    }
    char *big = base_xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    lsp__jw_raw(w, big, (size_t)n);
    free(big);
}

void lsp__jw_str(jw *w, const char *s, size_t n)
{
    lsp__jw_lit(w, "\"");
    size_t run = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t k = base_utf8_decode(s + i, n - i, NULL);
        bool ok = k > 0;
        if (ok && k == 1 && c >= 0x20 && c != '"' && c != '\\') {
            run++, i++;
            continue;
        }
        if (ok && k > 1) {
            run += k, i += k;
            continue;
        }
        lsp__jw_raw(w, s + i - run, run);
        run = 0;
        if (!ok) {
            lsp__jw_lit(w, "\\ufffd");
        } else if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            lsp__jw_raw(w, e, 2);
        } else if (c == '\n') {
            lsp__jw_lit(w, "\\n");
        } else if (c == '\t') {
            lsp__jw_lit(w, "\\t");
        } else if (c == '\r') {
            lsp__jw_lit(w, "\\r");
        } else {
            lsp__jw_fmt(w, "\\u%04x", c);
        }
        i++;
    }
    lsp__jw_raw(w, s + n - run, run);
    lsp__jw_lit(w, "\"");
}

void lsp__jw_free(jw *w)
{
    free(w->p);
    w->p = NULL;
    w->n = w->cap = 0;
}
