/* fim/decode.c — the shape of the middle and its stop rules, applied to generated text as it
 * arrives: single line when the cursor has non-blank text after it, else multi-line, stopping when
 * a line's indentation drops below the cursor line's or a line repeats the next non-blank line of
 * the suffix; then post-processing (UTF-8 safety, control characters, overlap with the suffix). */
#include "fim/fim_internal.h"

#include <stdlib.h>
#include <string.h>

static bool blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') return false;
    return true;
}

static void trim(const char **s, size_t *n)
{
    while (*n && (**s == ' ' || **s == '\t')) (*s)++, (*n)--;
    while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t' || (*s)[*n - 1] == '\r' || (*s)[*n - 1] == '\n'))
        (*n)--;
}

static int indent_of(const char *s, size_t n)
{
    int i = 0;
    while ((size_t)i < n && (s[i] == ' ' || s[i] == '\t')) i++;
    return i;
}

void fim__decoder_init(fim_decoder *d, const char *text, size_t len, size_t cursor)
{
    memset(d, 0, sizeof *d);
    if (cursor > len) cursor = len;
    size_t l0 = cursor;
    while (l0 > 0 && text[l0 - 1] != '\n') l0--;
    const char *nl = memchr(text + cursor, '\n', len - cursor);
    size_t eol = nl ? (size_t)(nl - text) : len;
    d->multi_line = blank(text + cursor, eol - cursor);
    d->cursor_indent = indent_of(text + l0, cursor - l0);
    d->suffix = text + cursor;
    d->suffix_len = len - cursor;
    for (size_t at = nl ? eol + 1 : len; at < len;) {
        const char *e = memchr(text + at, '\n', len - at);
        size_t end = e ? (size_t)(e - text) : len;
        if (!blank(text + at, end - at)) {
            const char *s = text + at;
            size_t n = end - at;
            trim(&s, &n);
            d->next_line = s;
            d->next_line_len = n;
            break;
        }
        at = end + 1;
    }
    d->stop = FIM_STOP_MAX_TOKENS;
}

void fim__decoder_free(fim_decoder *d)
{
    free(d->buf);
    d->buf = NULL;
}

/* Cut the completion at byte `at`, recording why. */
static bool cut(fim_decoder *d, size_t at, enum fim_stop why)
{
    d->len = at;
    d->stop = why;
    d->stopped = true;
    return true;
}

/* Check the line buf[s, e) (without its '\n'); `first` = it continues the cursor line. */
static bool check_line(fim_decoder *d, size_t s, size_t e, bool first)
{
    const char *p = d->buf + s;
    size_t n = e - s;
    if (blank(p, n)) return false;
    if (!first && indent_of(p, n) < d->cursor_indent)
        return cut(d, s > 0 ? s - 1 : 0, FIM_STOP_INDENT); /* drop the line and its newline */
    trim(&p, &n);
    if (d->next_line && n == d->next_line_len && !memcmp(p, d->next_line, n))
        return cut(d, s > 0 ? s - 1 : 0, FIM_STOP_SUFFIX_REPEAT);
    return false;
}

bool fim__decoder_push(fim_decoder *d, const char *bytes, size_t n)
{
    if (d->stopped) return true;
    if (d->len + n + 1 > d->cap) {
        size_t cap = d->cap ? d->cap : 256;
        while (cap < d->len + n + 1) cap *= 2;
        char *p = realloc(d->buf, cap);
        if (!p) abort();
        d->buf = p;
        d->cap = cap;
    }
    size_t from = d->len;
    memcpy(d->buf + d->len, bytes, n);
    d->len += n;
    for (size_t i = from; i < d->len; i++) {
        unsigned char c = (unsigned char)d->buf[i];
        if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') return cut(d, i, FIM_STOP_CONTROL);
        if (c == 0x7f) return cut(d, i, FIM_STOP_CONTROL);
        if (c != '\n') continue;
        if (!d->multi_line) return cut(d, i, FIM_STOP_LINE_END);
        bool first = d->checked == 0;
        if (check_line(d, d->checked, i, first)) return true;
        d->checked = i + 1;
    }
    return false;
}

/* Length of the longest prefix of s[0..n) that is valid, complete UTF-8. */
static size_t valid_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t k = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
        if (!k || i + k > n || (k == 2 && c < 0xc2)) return i;
        uint32_t cp = k == 1 ? c : (uint32_t)(c & (0x7f >> k));
        for (size_t j = 1; j < k; j++) {
            if ((s[i + j] & 0xc0) != 0x80) return i;
            cp = cp << 6 | (s[i + j] & 63);
        }
        if ((k == 3 && (cp < 0x800 || (cp >= 0xd800 && cp < 0xe000))) || (k == 4 && (cp < 0x10000 || cp > 0x10ffff)))
            return i;
        i += k;
    }
    return i;
}

char *fim__decoder_finish(fim_decoder *d)
{
    if (!d->stopped && d->multi_line && d->len > d->checked)
        check_line(d, d->checked, d->len, d->checked == 0);
    size_t n = valid_utf8((const unsigned char *)d->buf, d->len);
    /* the part that duplicates the start of the suffix */
    for (size_t k = n < d->suffix_len ? n : d->suffix_len; k > 0; k--) {
        if (!memcmp(d->buf + n - k, d->suffix, k) && !blank(d->suffix, k)) {
            n -= k;
            break;
        }
    }
    if (d->multi_line)
        while (n && (d->buf[n - 1] == ' ' || d->buf[n - 1] == '\t' || d->buf[n - 1] == '\n' || d->buf[n - 1] == '\r'))
            n--;
    char *out = malloc(n + 1);
    if (!out) abort();
    if (n) memcpy(out, d->buf, n);
    out[n] = 0;
    return out;
}
