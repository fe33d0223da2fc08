/* fim/json.c — just enough JSON for what serving engines answer: values found by dotted paths
 * over jsmn tokens, strings decoded, numbers read; and a growing buffer that writes request bodies
 * with escaped strings. The LSP layer has its own reader; fim/ must not reach up into lsp/. */
#define _GNU_SOURCE
#include "fim/fim_internal.h"
#include "base/base.h"

#define JSMN_STATIC
#define JSMN_STRICT
#include <jsmn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fim_json {
    const char *s;
    jsmntok_t *t;
    int n;
};

fim_json *fim__json_parse(const char *text, size_t n)
{
    jsmn_parser p;
    jsmn_init(&p);
    int count = jsmn_parse(&p, text, n, NULL, 0);
    if (count <= 0) return NULL;
    fim_json *j = calloc(1, sizeof *j);
    if (!j || !(j->t = malloc(sizeof *j->t * (size_t)count))) {
        free(j);
        return NULL;
    }
    jsmn_init(&p);
    j->n = jsmn_parse(&p, text, n, j->t, (unsigned)count);
    j->s = text;
    if (j->n <= 0) {
        fim__json_free(j);
        return NULL;
    }
    return j;
}

void fim__json_free(fim_json *j)
{
    if (!j) return;
    free(j->t);
    free(j);
}

/* The index after the value at i. */
static int skip(const fim_json *j, int i)
{
    int todo = 1;
    while (todo-- > 0 && i < j->n) {
        if (j->t[i].type == JSMN_OBJECT)
            todo += 2 * j->t[i].size;
        else if (j->t[i].type == JSMN_ARRAY)
            todo += j->t[i].size;
        i++;
    }
    return i;
}

static bool key_is(const fim_json *j, int i, const char *key, size_t klen)
{
    const jsmntok_t *t = &j->t[i];
    return t->type == JSMN_STRING && (size_t)(t->end - t->start) == klen &&
           !memcmp(j->s + t->start, key, klen);
}

/* One path step: a member of an object, or an element of an array by number. */
static int step(const fim_json *j, int at, const char *key, size_t klen)
{
    if (at < 0 || at >= j->n) return -1;
    const jsmntok_t *t = &j->t[at];
    if (t->type == JSMN_OBJECT) {
        int i = at + 1;
        for (int k = 0; k < t->size; k++, i = skip(j, i + 1))
            if (key_is(j, i, key, klen)) return i + 1;
        return -1;
    }
    if (t->type != JSMN_ARRAY || !klen || klen > 9) return -1;
    int want = 0;
    for (size_t c = 0; c < klen; c++) {
        if (key[c] < '0' || key[c] > '9') return -1;
        want = want * 10 + key[c] - '0';
    }
    if (want >= t->size) return -1;
    int i = at + 1;
    while (want--) i = skip(j, i);
    return i;
}

int fim__json_at_from(const fim_json *j, int from, const char *path)
{
    int at = from;
    while (at >= 0 && *path) {
        const char *dot = strchr(path, '.');
        size_t klen = dot ? (size_t)(dot - path) : strlen(path);
        at = step(j, at, path, klen);
        path += klen + (dot != NULL);
    }
    return at;
}

int fim__json_at(const fim_json *j, const char *path)
{
    return fim__json_at_from(j, 0, path);
}

int fim__json_len(const fim_json *j, int arr)
{
    return arr >= 0 && arr < j->n && j->t[arr].type == JSMN_ARRAY ? j->t[arr].size : -1;
}

static bool primitive(const fim_json *j, int i, char *buf, size_t cap)
{
    if (i < 0 || i >= j->n || j->t[i].type != JSMN_PRIMITIVE) return false;
    size_t n = (size_t)(j->t[i].end - j->t[i].start);
    if (n + 1 > cap) return false;
    memcpy(buf, j->s + j->t[i].start, n);
    buf[n] = 0;
    return true;
}

bool fim__json_double(const fim_json *j, int i, double *out)
{
    char b[64], *end;
    if (!primitive(j, i, b, sizeof b) || !((b[0] >= '0' && b[0] <= '9') || b[0] == '-'))
        return false;
    *out = strtod(b, &end);
    return *end == 0;
}

bool fim__json_long(const fim_json *j, int i, long *out)
{
    double d;
    if (!fim__json_double(j, i, &d) || d != (double)(long)d) return false;
    *out = (long)d;
    return true;
}

bool fim__json_true(const fim_json *j, int i)
{
    char b[8];
    return primitive(j, i, b, sizeof b) && !strcmp(b, "true");
}

bool fim__json_is_null(const fim_json *j, int i)
{
    char b[8];
    return primitive(j, i, b, sizeof b) && !strcmp(b, "null");
}

static int member_key(const fim_json *j, int obj, int k)
{
    int i = obj + 1;
    while (k--) i = skip(j, i + 1);
    return i;
}

static int member_value(const fim_json *j, int obj, int k)
{
    return member_key(j, obj, k) + 1;
}

const char *fim__json_key(const fim_json *j, int obj, int k, size_t *len)
{
    if (obj < 0 || obj >= j->n || j->t[obj].type != JSMN_OBJECT || k >= j->t[obj].size) return NULL;
    int i = member_key(j, obj, k);
    *len = (size_t)(j->t[i].end - j->t[i].start);
    return j->s + j->t[i].start;
}

int fim__json_member(const fim_json *j, int obj, int k)
{
    size_t len;
    return fim__json_key(j, obj, k, &len) ? member_value(j, obj, k) : -1;
}

static int hex4(const char *p)
{
    int v = 0;
    for (int k = 0; k < 4; k++) {
        char c = p[k];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* A \u escape at p (p[0] == 'u'), with a following low surrogate when p holds a high one; lone
 * surrogates become U+FFFD. Returns the code point and how many input bytes it used. */
static unsigned unicode_escape(const char *p, const char *end, size_t *used)
{
    int hi = end - p >= 5 ? hex4(p + 1) : -1;
    *used = 5;
    if (hi < 0) return *used = 1, 0xFFFD;
    if (hi >= 0xD800 && hi < 0xDC00 && end - p >= 11 && p[5] == '\\' && p[6] == 'u') {
        int lo = hex4(p + 7);
        if (lo >= 0xDC00 && lo < 0xE000)
            return *used = 11, 0x10000u + ((unsigned)(hi - 0xD800) << 10) + (unsigned)(lo - 0xDC00);
    }
    return hi >= 0xD800 && hi < 0xE000 ? 0xFFFD : (unsigned)hi;
}

char *fim__json_string(const fim_json *j, int i, size_t *len)
{
    if (i < 0 || i >= j->n || j->t[i].type != JSMN_STRING) return NULL;
    const char *p = j->s + j->t[i].start, *end = j->s + j->t[i].end;
    char *out = malloc((size_t)(end - p) + 1), *o = out;
    if (!out) return NULL;
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    while (p < end) {
        if (*p != '\\' || p + 1 == end) {
            *o++ = *p++;
            continue;
        }
        p++;
        const char *e = strchr(from, *p);
        if (e && *p) {
            *o++ = to[e - from];
            p++;
        } else if (*p == 'u') {
            size_t used;
            o += base_utf8_encode(unicode_escape(p, end, &used), o);
            p += used;
        } else {
            *o++ = *p++;
        }
    }
    *o = 0;
    if (len) *len = (size_t)(o - out);
    return out;
}

/* ---- writing ---- */

void fim__buf_add(fim_buf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = base_xrealloc(b->p, cap);
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

void fim__buf_fmt(fim_buf *b, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof small) {
        fim__buf_add(b, small, (size_t)n);
        return;
    }
    char *big = base_xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    fim__buf_add(b, big, (size_t)n);
    free(big);
}

/* Quotes and escapes; bytes that are not valid UTF-8 become U+FFFD so the body stays JSON. */
void fim__buf_json_str(fim_buf *b, const char *s, size_t n)
{
    fim__buf_add(b, "\"", 1);
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            fim__buf_add(b, e, 2), i++;
        } else if (c < 0x20) {
            fim__buf_fmt(b, "\\u%04x", c), i++;
        } else if (c < 0x80) {
            fim__buf_add(b, s + i, 1), i++;
        } else {
            size_t want = base_utf8_decode(s + i, n - i, NULL);
            bool ok = want > 0;
            if (ok)
                fim__buf_add(b, s + i, want), i += want;
            else
                fim__buf_add(b, "\xEF\xBF\xBD", 3), i++;
        }
    }
    fim__buf_add(b, "\"", 1);
}
