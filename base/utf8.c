/* base/utf8.c — the one UTF-8 decoder and validator of fimd's own text handling (LSP positions,
 * JSON strings, streamed middles), strict as RFC 3629: no overlong forms, no surrogates, nothing
 * above U+10FFFF. (The tokenizer keeps llama.cpp's laxer decoder on purpose; see tokenizer.c.) */
#include "base/base.h"

/* Sequence length announced by a lead byte, 0 for a byte that cannot start one. */
static size_t lead_length(unsigned char c)
{
    return c < 0x80 ? 1 : c < 0xc2 ? 0 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : c < 0xf5 ? 4 : 0;
}

/* The range the second byte must lie in: narrower after E0, ED, F0 and F4, which is what rules
 * out overlong forms, surrogates and code points above U+10FFFF. */
static bool second_byte_ok(unsigned char lead, unsigned char c)
{
    unsigned char lo = lead == 0xe0 ? 0xa0 : lead == 0xf0 ? 0x90 : 0x80;
    unsigned char hi = lead == 0xed ? 0x9f : lead == 0xf4 ? 0x8f : 0xbf;
    return c >= lo && c <= hi;
}

size_t base_utf8_decode(const char *s, size_t n, uint32_t *cp)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t k = n ? lead_length(u[0]) : 0;
    if (!k || k > n) return 0;
    if (k > 1 && !second_byte_ok(u[0], u[1])) return 0;
    uint32_t v = k == 1 ? u[0] : u[0] & (0x7fu >> k);
    for (size_t j = 1; j < k; j++) {
        if ((u[j] & 0xc0) != 0x80) return 0;
        v = v << 6 | (u[j] & 0x3fu);
    }
    if (cp) *cp = v;
    return k;
}

size_t base_utf8_encode(uint32_t cp, char out[4])
{
    if (cp < 0x80) return out[0] = (char)cp, 1;
    if (cp < 0x800) return out[0] = (char)(0xc0 | cp >> 6), out[1] = (char)(0x80 | (cp & 63)), 2;
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | cp >> 12), out[1] = (char)(0x80 | (cp >> 6 & 63));
        out[2] = (char)(0x80 | (cp & 63));
        return 3;
    }
    out[0] = (char)(0xf0 | cp >> 18), out[1] = (char)(0x80 | (cp >> 12 & 63));
    out[2] = (char)(0x80 | (cp >> 6 & 63)), out[3] = (char)(0x80 | (cp & 63));
    return 4;
}

size_t base_utf8_valid_prefix(const char *s, size_t n)
{
    size_t i = 0, k;
    while (i < n && (k = base_utf8_decode(s + i, n - i, NULL)) > 0) i += k;
    return i;
}

size_t base_utf8_complete_prefix(const char *s, size_t n)
{
    /* look back at most 3 bytes for the lead byte of a sequence the text has not finished yet */
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        unsigned char c = (unsigned char)s[n - back];
        if ((c & 0xc0) == 0x80) continue;
        bool unfinished = lead_length(c) > back &&
                          (back == 1 || second_byte_ok(c, (unsigned char)s[n - back + 1]));
        return unfinished ? n - back : n;
    }
    return n;
}
