/* lsp/text.c — LSP positions and byte offsets in UTF-8 text, in the negotiated encoding (UTF-16
 * code units by default, UTF-8 bytes or UTF-32 code points when the client offers them). Invalid
 * UTF-8 bytes count as one unit each, so every byte stays addressable. */
#include "lsp/lsp.h"
#include "base/base.h"

#include <string.h>

/* Length in bytes of the character at s[0..n) and its size in the encoding's units. */
static size_t char_len(const unsigned char *s, size_t n, enum lsp_encoding enc, long *units)
{
    size_t k = base_utf8_decode((const char *)s, n, NULL);
    if (!k) k = 1; /* an invalid byte is one unit of its own */
    *units = enc == LSP_UTF8 ? (long)k : enc == LSP_UTF16 && k == 4 ? 2 : 1;
    return k;
}

bool lsp_offset_of(const char *text, size_t len, lsp_pos p, enum lsp_encoding enc, size_t *offset)
{
    bool exact = p.line >= 0 && p.character >= 0;
    size_t at = 0;
    for (long line = 0; line < p.line; line++) {
        const char *nl = memchr(text + at, '\n', len - at);
        if (!nl) {
            *offset = len;
            return false;
        }
        at = (size_t)(nl - text) + 1;
    }
    size_t line_begin = at;
    long col = 0, want = p.character < 0 ? 0 : p.character;
    while (at < len && text[at] != '\n' && col < want) {
        long u;
        size_t k = char_len((const unsigned char *)text + at, len - at, enc, &u);
        if (col + u > want) { /* inside a character: back to its start */
            exact = false;
            break;
        }
        col += u;
        at += k;
    }
    if (col < want) exact = false; /* past the end of the line */
    /* a '\r' before '\n' belongs to the line ending: never stop between the two */
    if (at > line_begin && at < len && text[at] == '\n' && text[at - 1] == '\r')
        at--, exact = false;
    *offset = at;
    return exact;
}

lsp_pos lsp_pos_of(const char *text, size_t len, size_t offset, enum lsp_encoding enc)
{
    if (offset > len) offset = len;
    lsp_pos p = {0, 0};
    size_t line_start = 0;
    for (const char *nl; (nl = memchr(text + line_start, '\n', offset - line_start));) {
        p.line++;
        line_start = (size_t)(nl - text) + 1;
    }
    for (size_t at = line_start; at < offset;) {
        long u;
        at += char_len((const unsigned char *)text + at, len - at, enc, &u);
        p.character += u;
    }
    return p;
}
