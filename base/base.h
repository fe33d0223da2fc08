/* base/base.h — what every module shares and none owns: allocation that cannot fail (running out
 * of memory ends the process with a message, the one place fimd gives up), the monotonic clock and
 * a few byte tests on source text, and the UTF-8 decoder.
 * Below model/; depends on nothing but libc. */
#ifndef FIMD_BASE_H
#define FIMD_BASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* malloc, calloc, realloc and strdup that never return NULL: on failure they print
 * "fimd: out of memory (N bytes)" and abort. The caller frees the result with free(). A zero size
 * still gives a unique pointer. */
void *base_xmalloc(size_t n);
void *base_xcalloc(size_t count, size_t size);
void *base_xrealloc(void *p, size_t n);
char *base_xstrdup(const char *s);

/* Milliseconds on the monotonic clock, for timings. */
double base_now_ms(void);

/* Source text: whitespace bytes (space, tab, CR, LF, FF, VT), closing brackets, and the
 * indentation of s[0..n) in columns (leading spaces and tabs, a tab counting 4). */
static inline bool base_is_blank_byte(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

static inline bool base_is_closer(char c)
{
    return c == ')' || c == ']' || c == '}';
}

static inline int base_indent_width(const char *s, size_t n)
{
    int w = 0;
    for (size_t i = 0; i < n && (s[i] == ' ' || s[i] == '\t'); i++) w += s[i] == '\t' ? 4 : 1;
    return w;
}

/* UTF-8, strict as RFC 3629 (base/utf8.c). decode: the length (1-4) of the valid character at
 * s[0..n) and its code point in *cp (cp may be NULL), or 0 when s does not start with one (an
 * invalid byte, an overlong form, a surrogate, or a sequence cut short). encode: writes cp
 * (at most U+10FFFF) and returns its length. valid_prefix: the length of the longest prefix that
 * is valid UTF-8. complete_prefix: n, less a trailing sequence that is valid so far but not
 * finished, which a stream holds back until its next bytes arrive. */
size_t base_utf8_decode(const char *s, size_t n, uint32_t *cp);
size_t base_utf8_encode(uint32_t cp, char out[4]);
size_t base_utf8_valid_prefix(const char *s, size_t n);
size_t base_utf8_complete_prefix(const char *s, size_t n);

#endif
