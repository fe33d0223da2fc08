/* fim/related.c — related code: the definitions a document offers to others (and windows of its
 * lines), their snippets, identifier hashes and relevance to a cursor; and the per-document cache
 * of definitions and their identifiers, which this file owns and frees. */
#define _GNU_SOURCE
#include "fim/fim_internal.h"
#include "base/base.h"

#include <stdlib.h>
#include <string.h>

enum {
    SNIPPET_LINES = 20,
    NEAR_LINES_BEFORE = 40, /* identifiers this close to the cursor select definitions */
    NEAR_LINES_AFTER = 10,
    MAX_DEF_DEPTH = 3,  /* definitions nested at most this deep (class members) */
    SIMILAR_LINES = 48, /* lines above the cursor that similarity compares with */
    SIMILAR_STEP = 8,
    WINDOW_LINES = 12, /* windows of other documents' code, compared for similarity */
    WINDOW_STRIDE = 6,
    WINDOWS_MAX_BYTES = 1 << 20, /* larger documents offer definitions only */
};
#define MIN_SIMILARITY 0.12

/* ---- definitions ---- */

static bool identifier_like(TSNode n)
{
    const char *t = ts_node_type(n);
    return strstr(t, "identifier") || strstr(t, "name") || !strcmp(t, "word") ||
           !strcmp(t, "constant") || !strcmp(t, "symbol");
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
        if (fim__type_has(ch, "declarator") || fim__type_has(ch, "assignment") ||
            fim__type_has(ch, "binding") || fim__type_has(ch, "spec")) {
            TSNode r = def_name(ch, depth + 1);
            if (!ts_node_is_null(r)) return r;
        }
    }
    return none;
}

static bool skip_def_type(TSNode n)
{
    static const char *const parts[] = {"comment", "import", "include", "using",
                                        "package", "call",   "return",  "if_",
                                        "for_",    "while",  "ERROR",   "export_clause"};
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++)
        if (fim__type_has(n, parts[i])) return true;
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
        if (!strcmp(ts_node_type(ch),
                    "ERROR")) { /* code being typed: what it wraps keeps its shape */
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
            if (!ts_node_is_null(prev) && fim__type_has(prev, "comment") &&
                ts_node_end_point(prev).row + 1 >= ts_node_start_point(ch).row)
                d->start = ts_node_start_byte(prev);
            d->name_start = ts_node_start_byte(name);
            d->name_end = ts_node_end_byte(name);
        }
        /* members: descend into bodies of classes, namespaces, impls, modules */
        if (depth + 1 < MAX_DEF_DEPTH) {
            TSNode body = ts_node_child_by_field_name(ch, "body", 4);
            if (!ts_node_is_null(body) && !fim__type_has(ch, "function") &&
                !fim__type_has(ch, "method"))
                collect_defs(body, depth + 1, out);
            else if (fim__type_has(ch, "declaration_list") || fim__type_has(ch, "class_body") ||
                     fim__type_has(ch, "namespace"))
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

/* Node types of imports, as parts of the grammars' names (import_statement, import_from_statement,
 * import_declaration, use_declaration, using_directive, namespace_use_declaration). */
static bool import_type(TSNode n)
{
    static const char *const parts[] = {"import", "use_declaration", "using_directive"};
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++)
        if (fim__type_has(n, parts[i])) return true;
    return false;
}

bool fim__imports(TSTree *tree, fim_def *out)
{
    if (!tree) return false;
    TSNode root = ts_tree_root_node(tree);
    uint32_t k = ts_node_named_child_count(root);
    bool found = false;
    for (uint32_t i = 0; i < k; i++) {
        TSNode ch = ts_node_named_child(root, i);
        if (import_type(ch)) {
            if (!found) *out = (fim_def){ts_node_start_byte(ch), 0, 0, 0};
            out->end = ts_node_end_byte(ch);
            found = true;
        } else if (found && !fim__type_has(ch, "comment")) {
            break;
        }
    }
    return found;
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
    while (n && base_is_blank_byte(text[d->start + n - 1])) n--;
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
    return c == '_' || c == '$' || (unsigned)((c | 32) - 'a') < 26u || (unsigned)(c - '0') < 10u ||
           c >= 0x80;
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
        while (j < to && ident_byte((unsigned char)t[j]))
            h = (h ^ (unsigned char)t[j++]) * 16777619u;
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
        if (has_hash(&q->near, h)) { /* named near the cursor: more when it shows more */
            size_t novel = 0;
            for (size_t i = 0; i < ids->n; i++) novel += !has_hash(&q->near, ids->v[i]);
            return 2.0 + (ids->n ? (double)novel / (double)ids->n : 0);
        }
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

/* ---- what followed the same lines elsewhere ---- */

/* Narrows [*from, *to) to the text without leading and trailing blanks. */
static void trim(const char *t, size_t *from, size_t *to)
{
    while (*from < *to && base_is_blank_byte(t[*from])) (*from)++;
    while (*to > *from && base_is_blank_byte(t[*to - 1])) (*to)--;
}

/* A line's text without its leading and trailing blanks, hashed; 0 for a blank line. */
static uint32_t line_hash(const char *t, size_t from, size_t to)
{
    trim(t, &from, &to);
    if (from == to) return 0;
    uint32_t h = 2166136261u;
    for (size_t i = from; i < to; i++) h = (h ^ (unsigned char)t[i]) * 16777619u;
    return h ? h : 1;
}

void fim__anchor_init(fim_anchor *a, const char *text, size_t l0)
{
    memset(a, 0, sizeof *a);
    for (size_t end = l0; end > 0 && a->n < FIM_ANCHOR_LINES;) {
        size_t start = end - 1;
        while (start > 0 && text[start - 1] != '\n') start--;
        uint32_t h = line_hash(text, start, end);
        if (h && !a->n) {
            size_t f = start, t = end;
            trim(text, &f, &t);
            a->last_chars = t - f;
        }
        if (h) {
            memmove(a->h + 1, a->h, sizeof *a->h * (size_t)a->n);
            a->h[0] = h, a->n++;
        }
        end = start;
    }
}

/* How many non-blank lines agree with the anchor's, going back from the ring's last of `k`. */
static int agreement(const fim_anchor *a, const uint32_t *ring, int k)
{
    int m = 0;
    while (m < a->n && m < k && ring[(k - 1 - m) % FIM_ANCHOR_LINES] == a->h[a->n - 1 - m]) m++;
    return m;
}

/* The end of the `lines` non-blank lines from `at` (blank lines between them included). */
static size_t after_lines(const char *text, size_t len, size_t at, int lines)
{
    while (at < len && lines > 0) {
        const char *nl = memchr(text + at, '\n', len - at);
        size_t e = nl ? (size_t)(nl - text) + 1 : len;
        lines -= line_hash(text, at, e) != 0;
        at = e;
    }
    return at;
}

/* Does text[from, to) hold a non-blank line? */
static bool has_line(const char *text, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++)
        if (!base_is_blank_byte(text[i])) return true;
    return false;
}

int fim__follow(const fim_anchor *a, const char *text, size_t len, size_t skip, size_t lo,
                size_t hi, fim_def *out)
{
    uint32_t ring[FIM_ANCHOR_LINES];
    int k = 0, best = 0;
    for (size_t at = 0; a->n && at < len;) {
        const char *nl = memchr(text + at, '\n', len - at);
        size_t e = nl ? (size_t)(nl - text) + 1 : len;
        uint32_t h = at == skip ? 0 : line_hash(text, at, e);
        if (h) ring[k % FIM_ANCHOR_LINES] = h, k++;
        int m = h == a->h[a->n - 1] ? agreement(a, ring, k) : 0;
        if (m > best && e < len) {
            size_t end = after_lines(text, len, e, FIM_FOLLOW_LINES);
            if (!(end > lo && at < hi)) best = m, *out = (fim_def){at, end, at, at};
        }
        at = e;
    }
    /* a line as common as "}" or "end" matches anywhere: alone, it is no evidence */
    return best == 1 && a->last_chars < FIM_ANCHOR_MIN_CHARS ? 0 : best;
}

/* ---- the per-document cache ---- */

struct fim_related_cache {
    unsigned long edits; /* the document's edit count they were found at */
    fim_def *defs;       /* cached definitions (and windows) */
    fim_hashes *def_ids; /* and their identifiers */
    int n_defs;
    /* the last fim__doc_follow answer, for the anchor with this key (0: none), at `edits` */
    uint64_t follow_key;
    fim_def follow;
    int follow_agree;
};

static void related_cache_free(fim_related_cache *rc)
{
    for (int i = 0; i < rc->n_defs; i++) fim__hashes_free(&rc->def_ids[i]);
    free(rc->def_ids);
    free(rc->defs);
    free(rc);
}

const fim_def *fim__related_defs(fim_doc *d, int *n, const fim_hashes **ids)
{
    fim_doc_sync(d);
    fim_related_cache *rc = d->related;
    if (!rc) {
        rc = d->related = base_xcalloc(1, sizeof *rc);
        d->related_free = related_cache_free;
        rc->edits = d->edits - 1; /* stale */
    }
    if (rc->edits != d->edits) {
        for (int i = 0; i < rc->n_defs; i++) fim__hashes_free(&rc->def_ids[i]);
        free(rc->defs), free(rc->def_ids);
        rc->n_defs = fim__defs(d->text, d->len, d->good ? d->good : d->tree, &rc->defs);
        fim_def *w = NULL; /* (a huge file would make every request score thousands of windows) */
        int nw = d->len <= WINDOWS_MAX_BYTES ? fim__windows(d->text, d->len, &w) : 0;
        rc->defs = base_xrealloc(rc->defs, sizeof *rc->defs * (size_t)(rc->n_defs + nw + 1));
        if (nw) memcpy(rc->defs + rc->n_defs, w, sizeof *w * (size_t)nw);
        rc->n_defs += nw;
        free(w);
        rc->def_ids = base_xmalloc(sizeof *rc->def_ids * (size_t)(rc->n_defs + 1));
        for (int i = 0; i < rc->n_defs; i++)
            fim__def_hashes(d->text, &rc->defs[i], &rc->def_ids[i]);
        rc->edits = d->edits;
        rc->follow_key = 0, rc->follow_agree = 0;
    }
    *n = rc->n_defs;
    *ids = rc->def_ids;
    return rc->defs;
}

int fim__doc_follow(fim_doc *d, const fim_anchor *a, fim_def *out)
{
    if (!a->n || d->len > WINDOWS_MAX_BYTES) return 0;
    int n;
    const fim_hashes *ids;
    fim__related_defs(d, &n, &ids); /* the cache, current */
    fim_related_cache *rc = d->related;
    uint64_t key = 1469598103934665603ull ^ (uint64_t)a->n;
    for (int i = 0; i < a->n; i++) key = (key ^ a->h[i]) * 1099511628211ull;
    key |= 1;
    if (rc->follow_key != key) {
        fim_def f;
        int agree = fim__follow(a, d->text, d->len, SIZE_MAX, 0, 0, &f);
        /* while the matches walk down the lines shown last time, with one of them still to come,
         * those lines stay (new lines typed along shared code do not change the prompt's head) */
        size_t next = f.start; /* the matched line's end */
        while (agree && next < d->len && d->text[next] != '\n') next++;
        bool keep = agree && rc->follow_agree && f.start >= rc->follow.start &&
                    next < rc->follow.end && has_line(d->text, next, rc->follow.end);
        if (!keep) rc->follow = f;
        rc->follow_agree = agree;
        rc->follow_key = key;
    }
    *out = rc->follow;
    return rc->follow_agree;
}
