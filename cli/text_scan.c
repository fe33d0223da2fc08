/* cli/text_scan.c — the line and identifier scanning the benchmarks share to choose cursors in
 * real files: line ends, indentation widths, blank lines, identifier bytes, and where a block body
 * that starts at a line ends. */
#include "cli/cli.h"

#include <string.h>

bool cli_ident_start(unsigned char c)
{
    return c == '_' || (unsigned)((c | 32) - 'a') < 26u;
}

bool cli_ident_byte(unsigned char c)
{
    return cli_ident_start(c) || (unsigned)(c - '0') < 10u;
}

size_t cli_line_end(const char *t, size_t len, size_t at)
{
    const char *nl = memchr(t + at, '\n', len - at);
    return nl ? (size_t)(nl - t) : len;
}

int cli_indent(const char *t, size_t at, size_t e)
{
    int w = 0;
    while (at < e && (t[at] == ' ' || t[at] == '\t')) w += t[at++] == '\t' ? 4 : 1;
    return w;
}

bool cli_blank_line(const char *t, size_t at, size_t e)
{
    for (; at < e; at++)
        if (t[at] != ' ' && t[at] != '\t' && t[at] != '\r') return false;
    return true;
}

size_t cli_body_end(const char *t, size_t len, size_t first_line_end, int ind, int max_lines)
{
    size_t end = first_line_end, b = first_line_end < len ? first_line_end + 1 : len;
    for (int k = 1; b < len && k < max_lines; k++) {
        size_t be = cli_line_end(t, len, b);
        if (!cli_blank_line(t, b, be) && cli_indent(t, b, be) < ind) break;
        if (!cli_blank_line(t, b, be)) end = be;
        b = be < len ? be + 1 : len;
    }
    return end;
}

bool cli_same_dir(const char *a, const char *b)
{
    const char *sa = strrchr(a, '/'), *sb = strrchr(b, '/');
    size_t na = sa ? (size_t)(sa - a) : 0, nb = sb ? (size_t)(sb - b) : 0;
    return na == nb && !memcmp(a, b, na);
}
