/* fim/syntax.c — documents with incrementally parsed tree-sitter trees, detached contexts for one
 * completion, and what the syntax says: where a line stands in the tree (for cutting the prompt at
 * boundaries), whether the middle is one line or a block, the definitions a document offers to
 * others, and a bracket scanner for languages without a grammar and for the stop rules. */
#define _GNU_SOURCE
#include "fim/fim_internal.h"
#include "base/base.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

enum {
    PARSE_TIMEOUT_US = 3000000, /* a pathological buffer gets no tree rather than a hung loop */
    SNIPPET_LINES = 16,
    NEAR_LINES_BEFORE = 40,     /* identifiers this close to the cursor select definitions */
    NEAR_LINES_AFTER = 10,
    MAX_SNIPPETS = 32,
    MAX_DEF_DEPTH = 3,          /* definitions nested at most this deep (class members) */
    SIMILAR_LINES = 48,         /* lines above the cursor that similarity compares with */
    SIMILAR_STEP = 8,
    WINDOW_LINES = 12,          /* windows of other documents' code, compared for similarity */
    WINDOW_STRIDE = 6,
    WINDOWS_MAX_BYTES = 1 << 20, /* larger documents offer definitions only */
};
#define MIN_SIMILARITY 0.12

struct fim_doc {
    char *path;
    char *text;
    size_t len, cap;
    const parsers_lang *lang;
    const TSLanguage *grammar;
    TSParser *parser;
    TSTree *tree;       /* matches text once synced */
    TSTree *good;       /* the last tree without errors, kept aligned by the same edits: where
                         * definitions are found while code being typed has errors */
    bool dirty;         /* edited since the last parse */
    fim_def *defs;      /* cached definitions (valid when !defs_stale) */
    fim_hashes *def_ids; /* and their identifiers */
    int n_defs;
    bool defs_stale;
};


static char *xstrndup(const char *s, size_t n)
{
    char *p = base_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

/* ---- documents ---- */

static void reserve(fim_doc *d, size_t need)
{
    if (need + 1 <= d->cap) return;
    size_t cap = d->cap ? d->cap : 4096;
    while (cap < need + 1) cap *= 2;
    char *p = base_xrealloc(d->text, cap);
    d->text = p;
    d->cap = cap;
}

static void parse(fim_doc *d)
{
    d->dirty = false;
    if (!d->grammar || d->len > FIM_PARSE_MAX) {
        if (d->tree) ts_tree_delete(d->tree);
        if (d->good) ts_tree_delete(d->good);
        d->tree = d->good = NULL;
        return;
    }
    if (!d->parser) {
        d->parser = ts_parser_new();
        if (!ts_parser_set_language(d->parser, d->grammar)) {
            d->grammar = NULL; /* an ABI the runtime refuses: heuristics only */
            return;
        }
        ts_parser_set_timeout_micros(d->parser, PARSE_TIMEOUT_US);
    }
    TSTree *t = ts_parser_parse_string(d->parser, d->tree, d->text, (uint32_t)d->len);
    if (d->tree) ts_tree_delete(d->tree);
    d->tree = t; /* NULL after a timeout: the next parse starts afresh */
    if (t && (!d->good || !ts_node_has_error(ts_tree_root_node(t)))) {
        if (d->good) ts_tree_delete(d->good);
        d->good = ts_tree_copy(t);
    }
    if (!t) ts_parser_reset(d->parser);
}

fim_doc *fim_doc_new(const char *path, const char *language_id, const char *text, size_t len)
{
    fim_doc *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    d->path = strdup(path ? path : "");
    reserve(d, len);
    if (len) memcpy(d->text, text, len);
    d->len = len;
    d->text[len] = 0;
    d->lang = parsers_detect(language_id, path, text, len);
    d->grammar = parsers_grammar(d->lang);
    d->dirty = true;
    d->defs_stale = true;
    return d;
}

void fim_doc_free(fim_doc *d)
{
    if (!d) return;
    if (d->tree) ts_tree_delete(d->tree);
    if (d->good) ts_tree_delete(d->good);
    if (d->parser) ts_parser_delete(d->parser);
    for (int i = 0; i < d->n_defs; i++) fim__hashes_free(&d->def_ids[i]);
    free(d->def_ids);
    free(d->defs);
    free(d->text);
    free(d->path);
    free(d);
}

const char *fim_doc_text(const fim_doc *d, size_t *len)
{
    *len = d->len;
    return d->text;
}

const char *fim_doc_language(const fim_doc *d)
{
    return d->lang ? d->lang->name : "";
}

bool fim_doc_has_tree(const fim_doc *d)
{
    return d->tree != NULL;
}

/* Row and byte column of offset `at`. */
static TSPoint point_at(const char *t, size_t at)
{
    TSPoint p = {0, 0};
    size_t line = 0;
    for (const char *s = t; (s = memchr(s, '\n', (size_t)(t + at - s))); s++) {
        p.row++;
        line = (size_t)(s - t) + 1;
    }
    p.column = (uint32_t)(at - line);
    return p;
}

static TSPoint point_after(TSPoint from, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\n') from.row++, from.column = 0;
        else from.column++;
    }
    return from;
}

void fim_doc_replace(fim_doc *d, size_t start, size_t end, const char *text, size_t n)
{
    if (start > d->len) start = d->len;
    if (end > d->len) end = d->len;
    if (end < start) end = start;
    if (d->tree) {
        TSInputEdit e;
        e.start_byte = (uint32_t)start;
        e.old_end_byte = (uint32_t)end;
        e.new_end_byte = (uint32_t)(start + n);
        e.start_point = point_at(d->text, start);
        e.old_end_point = point_after(e.start_point, d->text + start, end - start);
        e.new_end_point = point_after(e.start_point, text, n);
        ts_tree_edit(d->tree, &e);
        if (d->good) ts_tree_edit(d->good, &e);
    }
    reserve(d, d->len - (end - start) + n);
    memmove(d->text + start + n, d->text + end, d->len - end);
    if (n) memcpy(d->text + start, text, n);
    d->len = d->len - (end - start) + n;
    d->text[d->len] = 0;
    d->dirty = true;
    d->defs_stale = true;
}

TSTree *fim__doc_tree(fim_doc *d)
{
    fim_doc_sync(d);
    return d->tree;
}

double fim_doc_sync(fim_doc *d)
{
    if (!d->dirty) return 0;
    double t0 = base_now_ms();
    parse(d);
    return base_now_ms() - t0;
}

/* ---- tree helpers ---- */

static bool type_has(TSNode n, const char *part)
{
    return strstr(ts_node_type(n), part) != NULL;
}

static bool is_blank_byte(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

/* Ancestors that are not error nodes: code being typed wraps its surroundings in ERROR nodes
 * whose children keep their shape, so this depth holds steady from keystroke to keystroke. */
static int clean_depth(TSNode n)
{
    int d = 0;
    for (TSNode p = ts_node_parent(n); !ts_node_is_null(p); p = ts_node_parent(p)) d += strcmp(ts_node_type(p), "ERROR") != 0;
    return d;
}

static int node_depth(TSNode n)
{
    int d = 0;
    for (TSNode p = ts_node_parent(n); !ts_node_is_null(p); p = ts_node_parent(p)) d++;
    return d;
}

static int indent_width(const char *s, size_t n)
{
    int w = 0;
    for (size_t i = 0; i < n && (s[i] == ' ' || s[i] == '\t'); i++) w += s[i] == '\t' ? 4 : 1;
    return w;
}

static bool is_closer(char c)
{
    return c == ')' || c == ']' || c == '}';
}

/* Does the line go on with a keyword that closes or continues a block ("end", "fi", "else")? */
static bool closes_block(const char *s, size_t n)
{
    static const char *const words[] = {"end", "fi", "done", "esac", "until", "else", "elif", "elsif",
                                        "elseif", "catch", "finally", "rescue", "ensure", "except", "when"};
    size_t k = 0;
    while (k < n && ((unsigned)((s[k] | 32) - 'a') < 26u || s[k] == '_')) k++;
    for (size_t i = 0; i < sizeof words / sizeof *words; i++) {
        size_t w = strlen(words[i]);
        if (k >= w && !strncasecmp(s, words[i], w) && (k == w || !strcmp(words[i], "end"))) return true;
    }
    return false;
}

static bool inside_error(TSNode n)
{
    for (; !ts_node_is_null(n); n = ts_node_parent(n))
        if (type_has(n, "ERROR") || ts_node_is_missing(n)) return true;
    return false;
}

int fim__depth_at_line_start(const fim_context *c, size_t ls)
{
    size_t e = ls;
    while (e < c->len && c->text[e] != '\n' && (c->text[e] == ' ' || c->text[e] == '\t' || c->text[e] == '\r')) e++;
    if (e >= c->len || c->text[e] == '\n') return -1;
    if (!c->tree) /* by indentation; a line that starts by closing something is no place to start */
        return is_closer(c->text[e]) || closes_block(c->text + e, c->len - e) ? -1 : indent_width(c->text + ls, e - ls);
    TSNode root = ts_tree_root_node(c->tree);
    TSNode n = ts_node_descendant_for_byte_range(root, (uint32_t)e, (uint32_t)e);
    if (ts_node_start_byte(n) != e) return -1;
    while (true) { /* climb to the outermost node that starts here (not into an error) */
        TSNode p = ts_node_parent(n);
        if (ts_node_is_null(p) || ts_node_start_byte(p) != e || !strcmp(ts_node_type(p), "ERROR")) break;
        n = p;
    }
    if (ts_node_is_null(ts_node_parent(n))) return 0;
    if (!strcmp(ts_node_type(n), "ERROR")) return -1;
    return clean_depth(n);
}

int fim__depth_at_line_end(const fim_context *c, size_t ls, size_t le)
{
    size_t e = le;
    while (e > ls && is_blank_byte(c->text[e - 1])) e--;
    if (e == ls) return -1;
    if (!c->tree) { /* by indentation: the depth of the next non-blank line */
        for (size_t at = le; at < c->len;) {
            const char *nl = memchr(c->text + at, '\n', c->len - at);
            size_t end = nl ? (size_t)(nl - c->text) : c->len;
            size_t k = at;
            while (k < end && is_blank_byte(c->text[k])) k++;
            if (k < end) return indent_width(c->text + at, k - at);
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

static const char *const INDENT_LANGS[] = {
    "Python", "Cython", "Sage", "YAML", "Nim", "Nimrod", "CoffeeScript", "F#", "Haskell", "Elm",
    "PureScript", "Idris", "Agda", "Pug", "Jade", "Sass", "Stylus", "Slim", "Haml", "Boo",
    "GDScript", "Genie", "LiveScript", "Imba", "Literate Haskell", "Literate CoffeeScript", "Xonsh", "Hy",
};

bool fim__indent_blocks(const parsers_lang *l)
{
    if (!l) return false;
    for (size_t i = 0; i < sizeof INDENT_LANGS / sizeof *INDENT_LANGS; i++)
        if (!strcmp(l->name, INDENT_LANGS[i])) return true;
    return false;
}

static bool ends_with_word(const char *s, size_t n, const char *w)
{
    size_t k = strlen(w);
    if (n < k || memcmp(s + n - k, w, k)) return false;
    return n == k || !(s[n - k - 1] == '_' || (unsigned)((s[n - k - 1] | 32) - 'a') < 26u || (unsigned)(s[n - k - 1] - '0') < 10u);
}

/* Does the text before the cursor on its line open a block? */
static bool opens_block(const fim_context *c, const char *s, size_t n)
{
    while (n && is_blank_byte(s[n - 1])) n--;
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
    static const char *const parts[] = {"argument", "parameter", "parenthesized", "string", "comment",
                                        "binary", "template", "subscript", "condition", "array", "tuple",
                                        "list", "call", "args"};
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++)
        if (type_has(n, parts[i])) return true;
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
            if (type_has(n, "ERROR")) return false;
            if (type_has(n, "block") || type_has(n, "body") || type_has(n, "statement") ||
                type_has(n, "declaration_list") || type_has(n, "definition"))
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
        if (!is_blank_byte(after[i])) rest_blank = false;
        if (!is_blank_byte(after[i]) && !is_closer(after[i]) && after[i] != ';' && after[i] != ',') rest_closers = false;
    }
    if (!rest_blank) /* text after the cursor: one line, unless between "{" and its "}" */
        return rest_closers && opens_block(c, before, nb);
    if (opens_block(c, before, nb)) return true;
    bool line_blank = true;
    for (size_t i = 0; i < nb; i++)
        if (!is_blank_byte(before[i])) line_blank = false;
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

int fim__middle_line_depth(const fim_context *c, TSParser **parser, const char *mid, size_t n, size_t line)
{
    if (!c->tree || !c->lang) return -1;
    size_t k = line;
    while (k < n && (mid[k] == ' ' || mid[k] == '\t')) k++;
    if (k >= n || mid[k] == '\n' || mid[k] == '\r') return -1;
    if (!*parser) {
        *parser = ts_parser_new();
        if (!ts_parser_set_language(*parser, parsers_grammar(c->lang))) return -1;
        ts_parser_set_timeout_micros(*parser, PARSE_TIMEOUT_US / 10);
    }
    char *t = base_xmalloc(c->len + n + 1);
    memcpy(t, c->text, c->cursor);
    memcpy(t + c->cursor, mid, n);
    memcpy(t + c->cursor + n, c->text + c->cursor, c->len - c->cursor);
    TSInputEdit e;
    e.start_byte = e.old_end_byte = (uint32_t)c->cursor;
    e.new_end_byte = (uint32_t)(c->cursor + n);
    e.start_point = e.old_end_point = point_at(c->text, c->cursor);
    e.new_end_point = point_after(e.start_point, mid, n);
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

/* ---- brackets, skipping strings and comments ---- */

void fim__brackets_init(fim_brackets *b, const parsers_lang *l)
{
    memset(b, 0, sizeof *b);
    b->lang = l;
    /* backticks: PowerShell's escape character; template literals and raw strings that may span
     * lines in JavaScript, TypeScript and Go; one-line quotes elsewhere (shell, Markdown, SQL) */
    const char *g = l && l->grammar ? l->grammar : "";
    b->backtick = !(l && !strcmp(l->name, "PowerShell"));
    b->multiline_backtick = !strcmp(g, "javascript") || !strcmp(g, "typescript") || !strcmp(g, "tsx") || !strcmp(g, "go");
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
            if (ch == '\\') i++;
            else if (ch == b->quote || (ch == '\n' && !(b->quote == '`' && b->multiline_backtick))) b->mode = 0;
            continue;
        }
        if (at_token(t, n, i, lc, lck)) {
            b->mode = 1;
            i += lck - 1;
        } else if (at_token(t, n, i, bc, bok)) {
            b->mode = 2;
            i += bok - 1;
        } else if (ch == '"' || (ch == '`' && b->backtick) ||
                   (ch == '\'' && !(i > 0 && (t[i - 1] == '_' || ((unsigned)((t[i - 1] | 32) - 'a') < 26u))))) {
            b->mode = 3; /* an apostrophe after a letter is a lifetime or a prime, not a quote */
            b->quote = ch;
        } else if (ch == '(' || ch == '[' || ch == '{') {
            if (b->depth < (int)sizeof b->stack) b->stack[b->depth++] = ch;
            else b->extra++;
        } else if (is_closer(ch)) {
            if (b->extra) b->extra--;
            else if (b->depth) b->depth--;
            else {
                b->underflow++;
                if (stop_on_underflow) return i;
            }
        }
    }
    return to;
}

/* ---- definitions ---- */

static bool identifier_like(TSNode n)
{
    const char *t = ts_node_type(n);
    return strstr(t, "identifier") || strstr(t, "name") || !strcmp(t, "word") || !strcmp(t, "constant") ||
           !strcmp(t, "symbol");
}

/* The name a definition node declares, following the fields grammars use for it. */
static TSNode def_name(TSNode n, int depth)
{
    TSNode none = {0};
    if (depth > 5 || ts_node_is_null(n)) return none;
    static const char *const fields[] = {"name", "declarator", "definition", "left", "pattern"};
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
        TSNode f = ts_node_child_by_field_name(n, fields[i], (uint32_t)strlen(fields[i]));
        if (ts_node_is_null(f)) continue;
        if (identifier_like(f) && ts_node_named_child_count(f) == 0) return f;
        TSNode r = def_name(f, depth + 1);
        if (!ts_node_is_null(r)) return r;
        if (identifier_like(f)) return f;
    }
    /* declarations that wrap their declarators without a field: `const f = ...`, `x = 1` */
    uint32_t k = ts_node_named_child_count(n);
    for (uint32_t i = 0; i < k && i < 3; i++) {
        TSNode ch = ts_node_named_child(n, i);
        if (type_has(ch, "declarator") || type_has(ch, "assignment") || type_has(ch, "binding") ||
            type_has(ch, "spec")) {
            TSNode r = def_name(ch, depth + 1);
            if (!ts_node_is_null(r)) return r;
        }
    }
    return none;
}

static bool skip_def_type(TSNode n)
{
    static const char *const parts[] = {"comment", "import", "include", "using", "package", "call",
                                        "return", "if_", "for_", "while", "ERROR", "export_clause"};
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++)
        if (type_has(n, parts[i])) return true;
    return false;
}

typedef struct defs_vec {
    fim_def *v;
    int n, cap;
} defs_vec;

static void collect_defs(TSNode parent, int depth, defs_vec *out)
{
    uint32_t k = ts_node_named_child_count(parent);
    TSNode prev = {0};
    for (uint32_t i = 0; i < k; i++) {
        TSNode ch = ts_node_named_child(parent, i);
        if (!strcmp(ts_node_type(ch), "ERROR")) { /* code being typed: what it wraps keeps its shape */
            collect_defs(ch, depth, out);
            continue;
        }
        TSNode name = skip_def_type(ch) ? (TSNode){0} : def_name(ch, 0);
        /* members count when they span lines (methods, nested types), not as one-line fields */
        bool one_line = ts_node_start_point(ch).row == ts_node_end_point(ch).row;
        if (!ts_node_is_null(name) && !(depth > 0 && one_line)) {
            if (out->n == out->cap) {
                out->cap = out->cap ? out->cap * 2 : 64;
                out->v = base_xrealloc(out->v, sizeof *out->v * (size_t)out->cap);
            }
            fim_def *d = &out->v[out->n++];
            d->start = ts_node_start_byte(ch);
            d->end = ts_node_end_byte(ch);
            /* a comment right above belongs to the definition */
            if (!ts_node_is_null(prev) && type_has(prev, "comment") &&
                ts_node_end_point(prev).row + 1 >= ts_node_start_point(ch).row)
                d->start = ts_node_start_byte(prev);
            d->name_start = ts_node_start_byte(name);
            d->name_end = ts_node_end_byte(name);
        }
        /* members: descend into bodies of classes, namespaces, impls, modules */
        if (depth + 1 < MAX_DEF_DEPTH) {
            TSNode body = ts_node_child_by_field_name(ch, "body", 4);
            if (!ts_node_is_null(body) && !type_has(ch, "function") && !type_has(ch, "method"))
                collect_defs(body, depth + 1, out);
            else if (type_has(ch, "declaration_list") || type_has(ch, "class_body") || type_has(ch, "namespace"))
                collect_defs(ch, depth + 1, out);
        }
        prev = ch;
    }
}

int fim__windows(const char *text, size_t len, fim_def **out)
{
    int n = 0, cap = 64;
    fim_def *v = base_xmalloc(sizeof *v * (size_t)cap);
    size_t starts[WINDOW_LINES];
    int line = 0;
    for (size_t at = 0; at < len; line++) {
        starts[line % WINDOW_LINES] = at;
        const char *nl = memchr(text + at, '\n', len - at);
        at = nl ? (size_t)(nl - text) + 1 : len;
        if (line + 1 >= WINDOW_LINES && (line + 1 - WINDOW_LINES) % WINDOW_STRIDE == 0) {
            if (n == cap) v = base_xrealloc(v, sizeof *v * (size_t)(cap *= 2));
            v[n++] = (fim_def){starts[(line + 1) % WINDOW_LINES], at, 0, 0};
        }
    }
    *out = v;
    return n;
}

int fim__defs(const char *text, size_t len, TSTree *tree, fim_def **out)
{
    (void)text;
    (void)len;
    defs_vec v = {0};
    if (tree) collect_defs(ts_tree_root_node(tree), 0, &v);
    *out = v.v;
    return v.n;
}

char *fim__def_snippet(const char *text, const fim_def *d, const parsers_lang *l)
{
    size_t e = d->start;
    int lines = 0;
    while (e < d->end && lines < SNIPPET_LINES) {
        const char *nl = memchr(text + e, '\n', d->end - e);
        e = nl ? (size_t)(nl - text) + 1 : d->end;
        lines++;
    }
    size_t n = e - d->start;
    while (n && is_blank_byte(text[d->start + n - 1])) n--;
    bool cut = e < d->end;
    const char *mark = l && l->line_comment ? l->line_comment : NULL;
    size_t extra = cut && mark ? strlen(mark) + 6 : 0;
    char *s = base_xmalloc(n + extra + 1);
    memcpy(s, text + d->start, n);
    if (extra) n += (size_t)sprintf(s + n, "\n%s ...", mark);
    s[n] = 0;
    return s;
}

/* ---- relevance ---- */

static bool ident_byte(unsigned char c)
{
    return c == '_' || c == '$' || (unsigned)((c | 32) - 'a') < 26u || (unsigned)(c - '0') < 10u || c >= 0x80;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

void fim__hashes_free(fim_hashes *h)
{
    free(h->v);
    h->v = NULL;
    h->n = 0;
}

void fim__ident_hashes(const char *t, size_t from, size_t to, fim_hashes *out)
{
    size_t cap = 64, n = 0;
    uint32_t *v = base_xmalloc(cap * sizeof *v);
    for (size_t i = from; i < to;) {
        unsigned char ch = (unsigned char)t[i];
        if (!ident_byte(ch) || (unsigned)(ch - '0') < 10u) {
            i++;
            continue;
        }
        uint32_t h = 2166136261u;
        size_t j = i;
        while (j < to && ident_byte((unsigned char)t[j])) h = (h ^ (unsigned char)t[j++]) * 16777619u;
        if (j - i >= 2) {
            if (n == cap) v = base_xrealloc(v, (cap *= 2) * sizeof *v);
            v[n++] = h;
        }
        i = j;
    }
    qsort(v, n, sizeof *v, cmp_u32);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!k || v[k - 1] != v[i]) v[k++] = v[i];
    out->v = v;
    out->n = k;
}

static bool has_hash(const fim_hashes *h, uint32_t x)
{
    return bsearch(&x, h->v, h->n, sizeof x, cmp_u32) != NULL;
}

static size_t lines_back(const char *t, size_t at, int k)
{
    while (at > 0 && k >= 0) {
        at--;
        if (t[at] == '\n') k--;
    }
    return k < 0 ? at + 1 : 0;
}

static size_t lines_forward(const char *t, size_t len, size_t at, int k)
{
    while (at < len && k > 0)
        if (t[at++] == '\n') k--;
    return at;
}

void fim__query_init(fim_query *q, const char *text, size_t len, size_t cursor, long line)
{
    size_t from = lines_back(text, cursor, NEAR_LINES_BEFORE);
    size_t to = lines_forward(text, len, cursor, NEAR_LINES_AFTER + 1);
    /* not the cursor line: what is being typed there must not make definitions come and go at
     * each keystroke (the cached tokens after them would go too) */
    size_t ls = cursor, le = cursor;
    while (ls > from && text[ls - 1] != '\n') ls--;
    while (le < to && text[le] != '\n') le++;
    fim_hashes a, b;
    fim__ident_hashes(text, from, ls, &a);
    fim__ident_hashes(text, le, to, &b);
    q->near.v = base_xmalloc(sizeof *q->near.v * (a.n + b.n + 1));
    q->near.n = 0;
    for (size_t i = 0, j = 0; i < a.n || j < b.n;) {
        uint32_t x = j >= b.n || (i < a.n && a.v[i] <= b.v[j]) ? a.v[i++] : b.v[j++];
        if (!q->near.n || q->near.v[q->near.n - 1] != x) q->near.v[q->near.n++] = x;
    }
    fim__hashes_free(&a), fim__hashes_free(&b);
    /* similarity looks at whole blocks of lines above the cursor line, so it changes only every
     * SIMILAR_STEP lines, not at each keystroke */
    size_t l0 = ls;
    size_t end = lines_back(text, l0, (int)(line % SIMILAR_STEP) - 1);
    if (line % SIMILAR_STEP == 0) end = l0;
    fim__ident_hashes(text, lines_back(text, end, SIMILAR_LINES - 1), end, &q->similar);
}

void fim__query_free(fim_query *q)
{

    fim__hashes_free(&q->near);
    fim__hashes_free(&q->similar);
}

double fim__def_score(const fim_query *q, const char *text, const fim_def *d, const fim_hashes *ids)
{
    size_t k = d->name_end - d->name_start;
    if (k >= 2) {
        uint32_t h = 2166136261u;
        for (size_t i = 0; i < k; i++) h = (h ^ (unsigned char)text[d->name_start + i]) * 16777619u;
        if (has_hash(&q->near, h)) return 2.0; /* named near the cursor */
    }
    size_t both = 0;
    for (size_t i = 0; i < ids->n; i++) both += has_hash(&q->similar, ids->v[i]);
    size_t any = ids->n + q->similar.n - both;
    double j = any ? (double)both / (double)any : 0;
    return j >= MIN_SIMILARITY ? j : 0;
}

void fim__def_hashes(const char *text, const fim_def *d, fim_hashes *out)
{
    size_t e = d->start;
    for (int lines = 0; e < d->end && lines < SNIPPET_LINES; lines++) {
        const char *nl = memchr(text + e, '\n', d->end - e);
        e = nl ? (size_t)(nl - text) + 1 : d->end;
    }
    fim__ident_hashes(text, d->start, e, out);
}

/* ---- contexts ---- */

static const fim_def *doc_defs(fim_doc *d, int *n, const fim_hashes **ids)
{
    fim_doc_sync(d);
    if (d->defs_stale) {
        for (int i = 0; i < d->n_defs; i++) fim__hashes_free(&d->def_ids[i]);
        free(d->defs), free(d->def_ids);
        d->n_defs = fim__defs(d->text, d->len, d->good ? d->good : d->tree, &d->defs);
        fim_def *w = NULL; /* (a huge file would make every request score thousands of windows) */
        int nw = d->len <= WINDOWS_MAX_BYTES ? fim__windows(d->text, d->len, &w) : 0;
        d->defs = base_xrealloc(d->defs, sizeof *d->defs * (size_t)(d->n_defs + nw + 1));
        if (nw) memcpy(d->defs + d->n_defs, w, sizeof *w * (size_t)nw);
        d->n_defs += nw;
        free(w);
        d->def_ids = base_xmalloc(sizeof *d->def_ids * (size_t)(d->n_defs + 1));
        for (int i = 0; i < d->n_defs; i++) fim__def_hashes(d->text, &d->defs[i], &d->def_ids[i]);
        d->defs_stale = false;
    }
    *n = d->n_defs;
    *ids = d->def_ids;
    return d->defs;
}

static int snippet_order(const void *a, const void *b)
{
    const fim_snippet *x = a, *y = b;
    return x->order < y->order ? -1 : x->order > y->order;
}

static int by_score(const void *a, const void *b)
{
    const fim_snippet *x = a, *y = b;
    return x->score > y->score ? -1 : x->score < y->score ? 1 : snippet_order(a, b);
}

/* Definitions of `other` that are relevant to the cursor, as candidate snippets. */
static void add_related(fim_context *c, const fim_query *q, fim_doc *other, size_t doc_index, fim_snippet **v,
                        int *n, int *cap)
{
    int nd;
    const fim_hashes *ids;
    const fim_def *defs = doc_defs(other, &nd, &ids);
    (void)c;
    for (int i = 0; i < nd; i++) {
        const fim_def *d = &defs[i];
        double score = fim__def_score(q, other->text, d, &ids[i]);
        if (score <= 0) continue;
        if (*n == *cap) {
            *cap = *cap ? *cap * 2 : 32;
            *v = base_xrealloc(*v, sizeof **v * (size_t)*cap);
        }
        fim_snippet *s = &(*v)[(*n)++];
        memset(s, 0, sizeof *s);
        s->path = (char *)other; /* resolved below for the ones kept */
        s->name = (char *)d;
        s->score = score;
        s->order = (doc_index << 32) | (d->start & 0xffffffffu);
        s->order_end = (doc_index << 32) | (d->end & 0xffffffffu);
    }
}

fim_context *fim_context_new(fim_doc *d, size_t cursor, fim_doc *const *open, int n_open)
{
    fim_context *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    fim_doc_sync(d);
    if (cursor > d->len) cursor = d->len;
    c->path = strdup(d->path);
    c->text = xstrndup(d->text, d->len);
    c->len = d->len;
    c->cursor = cursor;
    c->lang = d->lang;
    c->tree = d->tree ? ts_tree_copy(d->tree) : NULL;
    c->defs_tree = d->good ? ts_tree_copy(d->good) : NULL;
    for (const char *p = c->text; (p = memchr(p, '\n', (size_t)(c->text + cursor - p))); p++) c->cursor_line++;
    fim__query_init(&c->query, c->text, c->len, cursor, c->cursor_line);
    const fim_query *q = &c->query;
    fim_snippet *cand = NULL;
    int n = 0, cap = 0;
    /* documents in path order, so the snippets keep their places from one request to the next */
    for (int i = 0; i < n_open; i++) {
        if (!open[i] || open[i] == d) continue;
        size_t rank = 0;
        for (int j = 0; j < n_open; j++)
            if (open[j] && open[j] != d && strcmp(open[j]->path, open[i]->path) < 0) rank++;
        add_related(c, q, open[i], rank, &cand, &n, &cap);
    }
    /* the most relevant, materialized */
    if (n) qsort(cand, (size_t)n, sizeof *cand, by_score);
    c->n_snips = n < MAX_SNIPPETS ? n : MAX_SNIPPETS;
    c->snips = base_xmalloc(sizeof *c->snips * (size_t)(c->n_snips + 1));
    for (int i = 0; i < c->n_snips; i++) {
        const fim_doc *o = (const fim_doc *)cand[i].path;
        const fim_def *df = (const fim_def *)cand[i].name;
        fim_snippet *sn = &c->snips[i];
        *sn = cand[i];
        sn->path = strdup(o->path);
        sn->name = xstrndup(o->text + df->name_start, df->name_end - df->name_start);
        sn->text = fim__def_snippet(o->text, df, o->lang);
        sn->lang = o->lang;
    }
    free(cand);
    qsort(c->snips, (size_t)c->n_snips, sizeof *c->snips, snippet_order);
    return c;
}

fim_context *fim__context_from_text(const char *path, const char *language_id, const char *text,
                                    size_t len, size_t cursor)
{
    fim_doc *d = fim_doc_new(path, language_id, text, len);
    if (!d) return NULL;
    fim_context *c = fim_context_new(d, cursor, NULL, 0);
    fim_doc_free(d);
    return c;
}

void fim_context_free(fim_context *c)
{
    if (!c) return;
    for (int i = 0; i < c->n_snips; i++) free(c->snips[i].path), free(c->snips[i].name), free(c->snips[i].text);
    free(c->snips);
    if (c->tree) ts_tree_delete(c->tree);
    if (c->defs_tree) ts_tree_delete(c->defs_tree);
    fim__query_free(&c->query);
    free(c->text);
    free(c->path);
    free(c);
}

const char *fim_context_text(const fim_context *c, size_t *len)
{
    *len = c->len;
    return c->text;
}

size_t fim_context_cursor(const fim_context *c)
{
    return c->cursor;
}

bool fim_context_multi_line(const fim_context *c)
{
    return fim__multi_line(c);
}
