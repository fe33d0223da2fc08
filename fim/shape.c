/* fim/shape.c — what the syntax says about the middle's shape: how deep a line stands in the tree
 * (where the prompt may be cut), one line or a block, the depth of statements at the cursor and of
 * the middle's lines once inserted, and which languages mark blocks by indentation. */
#define _GNU_SOURCE
#include "fim/fim_internal.h"
#include "base/base.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- tree helpers ---- */

/* Ancestors that are not error nodes: code being typed wraps its surroundings in ERROR nodes
 * whose children keep their shape, so this depth holds steady from keystroke to keystroke. */
static int clean_depth(TSNode n)
{
    int d = 0;
    for (TSNode p = ts_node_parent(n); !ts_node_is_null(p); p = ts_node_parent(p))
        d += strcmp(ts_node_type(p), "ERROR") != 0;
    return d;
}

static int node_depth(TSNode n)
{
    int d = 0;
    for (TSNode p = ts_node_parent(n); !ts_node_is_null(p); p = ts_node_parent(p)) d++;
    return d;
}

/* Does the line go on with a keyword that closes or continues a block ("end", "fi", "else")? */
static bool closes_block(const char *s, size_t n)
{
    static const char *const words[] = {"end",     "fi",     "done",   "esac",   "until",
                                        "else",    "elif",   "elsif",  "elseif", "catch",
                                        "finally", "rescue", "ensure", "except", "when"};
    size_t k = 0;
    while (k < n && ((unsigned)((s[k] | 32) - 'a') < 26u || s[k] == '_')) k++;
    for (size_t i = 0; i < sizeof words / sizeof *words; i++) {
        size_t w = strlen(words[i]);
        if (k >= w && !strncasecmp(s, words[i], w) && (k == w || !strcmp(words[i], "end")))
            return true;
    }
    return false;
}

static bool inside_error(TSNode n)
{
    for (; !ts_node_is_null(n); n = ts_node_parent(n))
        if (fim__type_has(n, "ERROR") || ts_node_is_missing(n)) return true;
    return false;
}

int fim__depth_at_line_start(const fim_context *c, size_t ls)
{
    size_t e = ls;
    while (e < c->len && c->text[e] != '\n' &&
           (c->text[e] == ' ' || c->text[e] == '\t' || c->text[e] == '\r'))
        e++;
    if (e >= c->len || c->text[e] == '\n') return -1;
    if (!c->tree) /* by indentation; a line that starts by closing something is no place to start */
        return base_is_closer(c->text[e]) || closes_block(c->text + e, c->len - e)
                   ? -1
                   : base_indent_width(c->text + ls, e - ls);
    TSNode root = ts_tree_root_node(c->tree);
    TSNode n = ts_node_descendant_for_byte_range(root, (uint32_t)e, (uint32_t)e);
    if (ts_node_start_byte(n) != e) return -1;
    while (true) { /* climb to the outermost node that starts here (not into an error) */
        TSNode p = ts_node_parent(n);
        if (ts_node_is_null(p) || ts_node_start_byte(p) != e || !strcmp(ts_node_type(p), "ERROR"))
            break;
        n = p;
    }
    if (ts_node_is_null(ts_node_parent(n))) return 0;
    if (!strcmp(ts_node_type(n), "ERROR")) return -1;
    return clean_depth(n);
}

int fim__depth_at_line_end(const fim_context *c, size_t ls, size_t le)
{
    size_t e = le;
    while (e > ls && base_is_blank_byte(c->text[e - 1])) e--;
    if (e == ls) return -1;
    if (!c->tree) { /* by indentation: the depth of the next non-blank line */
        for (size_t at = le; at < c->len;) {
            const char *nl = memchr(c->text + at, '\n', c->len - at);
            size_t end = nl ? (size_t)(nl - c->text) : c->len;
            size_t k = at;
            while (k < end && base_is_blank_byte(c->text[k])) k++;
            if (k < end) return base_indent_width(c->text + at, k - at);
            at = end + 1;
        }
        return 0;
    }
    TSNode root = ts_tree_root_node(c->tree);
    TSNode n = ts_node_descendant_for_byte_range(root, (uint32_t)(e - 1), (uint32_t)e);
    if (ts_node_end_byte(n) < e || ts_node_end_byte(n) > le + 1) return -1;
    /* climb to the outermost node ending on this line (some include the line's newline) */
    while (true) {
        TSNode p = ts_node_parent(n);
        if (ts_node_is_null(p) || ts_node_end_byte(p) > le + 1 || ts_node_start_byte(p) >= e ||
            !strcmp(ts_node_type(p), "ERROR"))
            break;
        n = p;
    }
    if (ts_node_is_null(ts_node_parent(n))) return 0;
    if (!strcmp(ts_node_type(n), "ERROR")) return -1;
    return clean_depth(n);
}

/* ---- the shape of the middle ---- */

bool fim__indent_blocks(const parsers_lang *l)
{
    return l && l->indent_blocks; /* the registry's column (parsers/languages.tsv) */
}

static bool ends_with_word(const char *s, size_t n, const char *w)
{
    size_t k = strlen(w);
    if (n < k || memcmp(s + n - k, w, k)) return false;
    return n == k || !(s[n - k - 1] == '_' || (unsigned)((s[n - k - 1] | 32) - 'a') < 26u ||
                       (unsigned)(s[n - k - 1] - '0') < 10u);
}

/* Does the text before the cursor on its line open a block? */
static bool opens_block(const fim_context *c, const char *s, size_t n)
{
    while (n && base_is_blank_byte(s[n - 1])) n--;
    if (!n) return false;
    char last = s[n - 1];
    if (last == '{') return true;
    if (last == ':' && fim__indent_blocks(c->lang)) return true;
    static const char *const words[] = {"do", "then", "else", "begin", "->", "=>", "where", "of"};
    for (size_t i = 0; i < sizeof words / sizeof *words; i++)
        if (ends_with_word(s, n, words[i])) return true;
    return false;
}

/* Inside a list of arguments, parameters, brackets, a string or a comment: one line. */
static bool inline_node(TSNode n)
{
    static const char *const parts[] = {
        "argument",  "parameter", "parenthesized", "string", "comment", "binary", "template",
        "subscript", "condition", "array",         "tuple",  "list",    "call",   "args"};
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++)
        if (fim__type_has(n, parts[i])) return true;
    return false;
}

static bool cursor_in_inline_node(const fim_context *c)
{
    TSNode root = ts_tree_root_node(c->tree);
    uint32_t at = (uint32_t)c->cursor;
    TSNode n = ts_node_descendant_for_byte_range(root, at, at);
    for (; !ts_node_is_null(n); n = ts_node_parent(n)) {
        /* only nodes that really enclose the cursor (not ones that end or start at it) */
        if (ts_node_start_byte(n) < at && ts_node_end_byte(n) > at && ts_node_is_named(n)) {
            if (fim__type_has(n, "ERROR")) return false;
            if (fim__type_has(n, "block") || fim__type_has(n, "body") ||
                fim__type_has(n, "statement") || fim__type_has(n, "declaration_list") ||
                fim__type_has(n, "definition"))
                return false;
            if (inline_node(n)) return true;
        }
    }
    return false;
}

/* Without a tree: is the innermost unclosed bracket before the cursor a '(' or '['? */
static bool cursor_in_parens(const fim_context *c)
{
    fim_brackets b;
    fim__brackets_init(&b, c->lang);
    size_t from = c->cursor > 65536 ? c->cursor - 65536 : 0;
    fim__brackets_scan(&b, c->text, c->cursor, from, c->cursor, false);
    return b.depth > 0 && b.depth <= (int)sizeof b.stack && b.stack[b.depth - 1] != '{';
}

bool fim__multi_line(const fim_context *c)
{
    size_t l0 = c->cursor;
    while (l0 > 0 && c->text[l0 - 1] != '\n') l0--;
    const char *nl = memchr(c->text + c->cursor, '\n', c->len - c->cursor);
    size_t eol = nl ? (size_t)(nl - c->text) : c->len;
    const char *before = c->text + l0, *after = c->text + c->cursor;
    size_t nb = c->cursor - l0, na = eol - c->cursor;
    bool rest_blank = true, rest_closers = true;
    for (size_t i = 0; i < na; i++) {
        if (!base_is_blank_byte(after[i])) rest_blank = false;
        if (!base_is_blank_byte(after[i]) && !base_is_closer(after[i]) && after[i] != ';' &&
            after[i] != ',')
            rest_closers = false;
    }
    if (!rest_blank) /* text after the cursor: one line, unless between "{" and its "}" */
        return rest_closers && opens_block(c, before, nb);
    if (opens_block(c, before, nb)) return true;
    bool line_blank = true;
    for (size_t i = 0; i < nb; i++)
        if (!base_is_blank_byte(before[i])) line_blank = false;
    if (!line_blank) return false; /* finishing a statement or expression already begun */
    return c->tree ? !cursor_in_inline_node(c) : !cursor_in_parens(c);
}

/* ---- the middle in the tree ---- */

int fim__block_depth(const fim_context *c)
{
    if (!c->tree) return -1;
    uint32_t at = (uint32_t)c->cursor;
    TSNode n = ts_node_descendant_for_byte_range(ts_tree_root_node(c->tree), at, at);
    for (; !ts_node_is_null(n); n = ts_node_parent(n))
        if (ts_node_is_named(n) && ts_node_start_byte(n) < at && ts_node_end_byte(n) > at) break;
    if (ts_node_is_null(n) || inside_error(n)) return -1;
    return node_depth(n) + 1;
}

int fim__middle_line_depth(const fim_context *c, TSParser **parser, const char *mid, size_t n,
                           size_t line)
{
    if (!c->tree || !c->lang) return -1;
    size_t k = line;
    while (k < n && (mid[k] == ' ' || mid[k] == '\t')) k++;
    if (k >= n || mid[k] == '\n' || mid[k] == '\r') return -1;
    if (!*parser) {
        *parser = ts_parser_new();
        if (!ts_parser_set_language(*parser, parsers_grammar(c->lang))) return -1;
        ts_parser_set_timeout_micros(*parser, FIM__PARSE_TIMEOUT_US / 10);
    }
    char *t = base_xmalloc(c->len + n + 1);
    memcpy(t, c->text, c->cursor);
    memcpy(t + c->cursor, mid, n);
    memcpy(t + c->cursor + n, c->text + c->cursor, c->len - c->cursor);
    TSInputEdit e;
    e.start_byte = e.old_end_byte = (uint32_t)c->cursor;
    e.new_end_byte = (uint32_t)(c->cursor + n);
    e.start_point = e.old_end_point = fim__point_at(c->text, c->cursor);
    e.new_end_point = fim__point_after(e.start_point, mid, n);
    TSTree *old = ts_tree_copy(c->tree);
    ts_tree_edit(old, &e);
    TSTree *nt = ts_parser_parse_string(*parser, old, t, (uint32_t)(c->len + n));
    ts_tree_delete(old);
    int depth = -1;
    if (nt) {
        uint32_t at = (uint32_t)(c->cursor + k);
        TSNode x = ts_node_descendant_for_byte_range(ts_tree_root_node(nt), at, at);
        if (ts_node_start_byte(x) == at) {
            while (true) {
                TSNode p = ts_node_parent(x);
                if (ts_node_is_null(p) || ts_node_start_byte(p) != at) break;
                x = p;
            }
            if (!inside_error(x)) depth = node_depth(x);
        }
        ts_tree_delete(nt);
    } else {
        ts_parser_reset(*parser);
    }
    free(t);
    return depth;
}
