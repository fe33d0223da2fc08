/* fim/brackets.c — a bracket scanner that skips strings and comments (the registry's comment
 * tokens): for languages without a grammar (shape.c) and for the stop rules (decode.c). The bottom
 * of fim/'s syntax files: it calls none of them. */
#define _GNU_SOURCE
#include "fim/fim_internal.h"
#include "base/base.h"

#include <string.h>

/* ---- brackets, skipping strings and comments ---- */

void fim__brackets_init(fim_brackets *b, const parsers_lang *l)
{
    memset(b, 0, sizeof *b);
    b->lang = l;
    /* backticks: PowerShell's escape character; template literals and raw strings that may span
     * lines in JavaScript, TypeScript and Go; one-line quotes elsewhere (shell, Markdown, SQL) */
    const char *g = l && l->grammar ? l->grammar : "";
    b->backtick = !(l && !strcmp(l->name, "PowerShell"));
    b->multiline_backtick = !strcmp(g, "javascript") || !strcmp(g, "typescript") ||
                            !strcmp(g, "tsx") || !strcmp(g, "go");
}

static bool at_token(const char *t, size_t n, size_t i, const char *tok, size_t k)
{
    return k && i + k <= n && !memcmp(t + i, tok, k);
}

size_t fim__brackets_scan(fim_brackets *b, const char *t, size_t n, size_t from, size_t to,
                          bool stop_on_underflow)
{
    const char *lc = b->lang ? b->lang->line_comment : "//";
    const char *bc = b->lang ? b->lang->block_comment : "/* */";
    size_t lck = lc ? strlen(lc) : 0, bok = 0, bck = 0;
    const char *bclose = NULL;
    if (bc) {
        bclose = strchr(bc, ' ');
        bok = bclose ? (size_t)(bclose - bc) : 0;
        if (bclose) bclose++, bck = strlen(bclose);
    }
    for (size_t i = from; i < to; i++) {
        char ch = t[i];
        switch (b->mode) {
        case 1:
            if (ch == '\n') b->mode = 0;
            continue;
        case 2:
            if (at_token(t, n, i, bclose, bck)) b->mode = 0, i += bck - 1;
            continue;
        case 3:
            if (ch == '\\')
                i++;
            else if (ch == b->quote || (ch == '\n' && !(b->quote == '`' && b->multiline_backtick)))
                b->mode = 0;
            continue;
        }
        if (at_token(t, n, i, lc, lck)) {
            b->mode = 1;
            i += lck - 1;
        } else if (at_token(t, n, i, bc, bok)) {
            b->mode = 2;
            i += bok - 1;
        } else if (ch == '"' || (ch == '`' && b->backtick) ||
                   (ch == '\'' &&
                    !(i > 0 && (t[i - 1] == '_' || ((unsigned)((t[i - 1] | 32) - 'a') < 26u))))) {
            b->mode = 3; /* an apostrophe after a letter is a lifetime or a prime, not a quote */
            b->quote = ch;
        } else if (ch == '(' || ch == '[' || ch == '{') {
            if (b->depth < (int)sizeof b->stack)
                b->stack[b->depth++] = ch;
            else
                b->extra++;
        } else if (base_is_closer(ch)) {
            if (b->extra)
                b->extra--;
            else if (b->depth)
                b->depth--;
            else {
                b->underflow++;
                if (stop_on_underflow) return i;
            }
        }
    }
    return to;
}
