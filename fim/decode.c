/* fim/decode.c — stop rules applied to generated text as it arrives, and post-processing. The shape
 * (one line or a block) comes from the syntax at the cursor (shape.c). A block middle stops when
 * it closes the enclosing block (or, at the top level, the one block it opened), when it would
 * close a bracket the suffix already closes, when a line dedents below the cursor's level, when a
 * line repeats the suffix's next line, or on repetition. Post-processing keeps valid UTF-8, drops
 * lines and text the suffix already has, and re-expresses the middle's indentation in the
 * document's unit (tabs, or N spaces) level by level. */
#include "fim/fim_internal.h"
#include "base/base.h"

#include <stdlib.h>
#include <string.h>

enum { TAB_WIDTH = 4, SCAN_LINES = 2000, REPEAT_MIN_BYTES = 24, REPEAT_MAX_PERIOD = 16 };

static bool blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') return false;
    return true;
}

static void trim(const char **s, size_t *n)
{
    while (*n && (**s == ' ' || **s == '\t')) (*s)++, (*n)--;
    while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t' || (*s)[*n - 1] == '\r' ||
                  (*s)[*n - 1] == '\n'))
        (*n)--;
}

static size_t lstart(const char *t, size_t at)
{
    while (at > 0 && t[at - 1] != '\n') at--;
    return at;
}

static size_t lend(const char *t, size_t len, size_t at) /* at the '\n' or len */
{
    const char *nl = memchr(t + at, '\n', len - at);
    return nl ? (size_t)(nl - t) : len;
}

/* Openers before the cursor that the suffix does not close: the middle may close that many. The
 * scan covers the top-level construct around the cursor (by tree) or SCAN_LINES lines each way. */
static int unclosed_before(const fim_context *c, bool *in_literal)
{
    size_t from = c->cursor, to = c->cursor;
    if (c->tree) {
        TSNode root = ts_tree_root_node(c->tree);
        uint32_t k = ts_node_named_child_count(root);
        for (uint32_t i = 0; i < k; i++) {
            TSNode ch = ts_node_named_child(root, i);
            if (ts_node_start_byte(ch) <= c->cursor && ts_node_end_byte(ch) >= c->cursor) {
                from = ts_node_start_byte(ch);
                to = ts_node_end_byte(ch);
                break;
            }
        }
    }
    for (int n = 0; from > 0 && n < SCAN_LINES; from--) n += c->text[from - 1] == '\n';
    for (int n = 0; to < c->len && n < SCAN_LINES; to++) n += c->text[to] == '\n';
    fim_brackets pre, suf;
    fim__brackets_init(&pre, c->lang);
    fim__brackets_scan(&pre, c->text, c->cursor, from, c->cursor, false);
    fim__brackets_init(&suf, c->lang);
    fim__brackets_scan(&suf, c->text, c->len, c->cursor, to, false);
    int open = pre.depth + pre.extra, missing = open - suf.underflow;
    *in_literal = pre.mode != 0; /* the cursor is in a string or comment */
    return missing > 0 ? missing : 0;
}

/* Tabs, or the commonest step between the indentation of consecutive lines. */
static void doc_style(const fim_context *c, bool *tabs, int *unit)
{
    size_t from = c->cursor;
    for (int n = 0; from > 0 && n < SCAN_LINES; from--) n += c->text[from - 1] == '\n';
    int tab_lines = 0, space_lines = 0, steps[9] = {0}, prev = -1;
    for (size_t at = from; at < c->len;) {
        size_t e = lend(c->text, c->len, at);
        if (!blank(c->text + at, e - at)) {
            if (c->text[at] == '\t')
                tab_lines++;
            else if (c->text[at] == ' ')
                space_lines++;
            int w = base_indent_width(c->text + at, e - at);
            if (prev >= 0 && w > prev && w - prev <= 8 && c->text[at] == ' ') steps[w - prev]++;
            prev = w;
        }
        at = e + 1;
        if (at - from > (size_t)SCAN_LINES * 120) break;
    }
    *tabs = tab_lines > space_lines;
    *unit = 0;
    for (int s = 2; s <= 8; s++)
        if (steps[s] > 0 && (*unit == 0 || steps[s] > steps[*unit])) *unit = s;
}

void fim__decoder_init(fim_decoder *d, const fim_context *c)
{
    memset(d, 0, sizeof *d);
    size_t cursor = c->cursor < c->len ? c->cursor : c->len;
    const char *text = c->text;
    size_t len = c->len, l0 = lstart(text, cursor), eol = lend(text, len, cursor);
    d->lang = c->lang;
    d->multi_line = fim__multi_line(c);
    d->indent_blocks = fim__indent_blocks(c->lang);
    d->statement_level = d->multi_line && blank(text + l0, cursor - l0);
    d->line_start = d->statement_level && cursor == l0;
    d->cursor_indent = base_indent_width(text + l0, cursor - l0);
    d->cursor_ws = text + l0;
    while (d->cursor_ws_len < cursor - l0 &&
           (text[l0 + d->cursor_ws_len] == ' ' || text[l0 + d->cursor_ws_len] == '\t'))
        d->cursor_ws_len++;
    d->allowed_closers = unclosed_before(c, &d->in_literal);
    d->suffix = text + cursor;
    d->suffix_len = len - cursor;
    for (size_t at = eol < len ? eol + 1 : len; at < len;) {
        size_t end = lend(text, len, at);
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
    doc_style(c, &d->doc_tabs, &d->doc_unit);
    d->ctx = c;
    d->block_depth = d->multi_line ? fim__block_depth(c) : -1;
    d->stop = FIM_STOP_MAX_TOKENS;
}

void fim__decoder_free(fim_decoder *d)
{
    free(d->buf);
    d->buf = NULL;
    if (d->parser) ts_parser_delete(d->parser);
    d->parser = NULL;
}

/* Cut the completion at byte `at`, recording why. */
static bool cut(fim_decoder *d, size_t at, enum fim_stop why)
{
    d->len = at;
    d->stop = why;
    d->stopped = true;
    return true;
}

void fim__decoder_cut_tail(fim_decoder *d, size_t n, enum fim_stop why)
{
    cut(d, n < d->len ? d->len - n : 0, why);
}

/* Cut before the line that starts at s (dropping the newline that ends the previous one). */
static bool cut_line(fim_decoder *d, size_t s, enum fim_stop why)
{
    return cut(d, s > 0 ? s - 1 : 0, why);
}

static bool only_closers(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strchr(")]}; \t\r", p[i])) return false;
    return true;
}

/* The same line three times in a row: keep one. */
static bool repeated_line(fim_decoder *d, size_t s, const char *p, size_t n)
{
    if (n < 4 || only_closers(p, n) || s == 0) return false;
    size_t starts[3] = {s, 0, 0};
    for (int k = 1; k < 3; k++) {
        if (starts[k - 1] == 0) return false;
        starts[k] = lstart(d->buf, starts[k - 1] - 1);
        const char *q = d->buf + starts[k];
        size_t m = starts[k - 1] - 1 - starts[k];
        trim(&q, &m);
        if (m != n || memcmp(q, p, n)) return false;
    }
    return cut_line(d, starts[1], FIM_STOP_REPETITION);
}

/* ---- the middle's indentation, in levels ----
 *
 * The model may indent in its own style (spaces in a document of tabs, 2 spaces in one of 4). Stop
 * rules and post-processing therefore count levels: `base` columns of the middle stand for the
 * cursor's level and each `unit` columns more (or less) for one level. The middle's lines count
 * from the cursor line's indentation (the model sees it in the prompt), except that tabs count from
 * column 0 (a tab a level), and so do spaces whose first line after an opener is shallower than the
 * cursor line (its body must be deeper: the model counts from column 0 in a smaller unit); at
 * column 0 the first line brings its own indentation and is the middle's too. */
typedef struct mid_style {
    int base, unit;
    bool tabs, spaces; /* the middle's own lines start with tabs, with spaces */
    bool own_first;    /* the first line's indentation is the middle's (cursor at column 0) */
} mid_style;

/* Columns per level in the document (a tab counts TAB_WIDTH), 0 when unknown. */
static int doc_cols(const fim_decoder *d)
{
    return d->doc_tabs ? TAB_WIDTH : d->doc_unit;
}

/* Does the line open a block, so that the next line is one level deeper? (A line ending in '(' or
 * ',' continues an expression: what follows is alignment, not a level.) */
static bool opens_level(const char *p, size_t n)
{
    static const char *const words[] = {"do", "then", "else", "begin"};
    trim(&p, &n);
    if (!n) return false;
    if (p[n - 1] == '{' || p[n - 1] == ':') return true;
    for (size_t i = 0; i < sizeof words / sizeof *words; i++) {
        size_t k = strlen(words[i]);
        if (n >= k && !memcmp(p + n - k, words[i], k) && (n == k || p[n - k - 1] == ' '))
            return true;
    }
    return false;
}

/* The most frequent positive step (2..8 columns) after a line that opens a block, or 0. */
static int commonest(const int *steps)
{
    int best = 0;
    for (int k = 2; k <= 8; k++)
        if (steps[k] > 0 && (best == 0 || steps[k] > steps[best])) best = k;
    return best;
}

static void middle_style(const fim_decoder *d, const char *s, size_t n, mid_style *st)
{
    size_t e0 = lend(s, n, 0);
    int w0 = base_indent_width(s, e0), dc = doc_cols(d) ? doc_cols(d) : TAB_WIDTH;
    int level = (d->cursor_indent + dc / 2) / dc, steps[9] = {0}, first_w = -1;
    memset(st, 0, sizeof *st);
    st->own_first = d->line_start && !blank(s, e0);
    int prev = st->own_first ? w0 : d->cursor_indent;
    bool prev_opens = opens_level(s, e0), first_opens = prev_opens;
    for (size_t at = st->own_first ? 0 : e0 + 1; at < n; at = lend(s, n, at) + 1) {
        size_t e = lend(s, n, at);
        if (blank(s + at, e - at)) continue;
        int w = base_indent_width(s + at, e - at);
        st->tabs |= s[at] == '\t';
        st->spaces |= s[at] == ' ';
        if (at > 0 && first_w < 0) first_w = w;
        if (prev_opens && w > prev && w - prev <= 8) steps[w - prev]++;
        prev = w;
        prev_opens = opens_level(s + at, e - at);
    }
    st->unit = st->tabs ? TAB_WIDTH : commonest(steps);
    if (st->own_first) {
        st->base = w0;
    } else if (!st->tabs && first_opens && first_w > 0 && first_w < d->cursor_indent &&
               first_w % (level + 1) == 0 && first_w / (level + 1) >= 2) {
        st->unit = first_w / (level + 1); /* absolute: the opener's body is at level + 1 */
        st->base = level * st->unit;
    } else {
        st->base = st->tabs && !d->doc_tabs ? level * TAB_WIDTH : d->cursor_indent;
    }
    if (!st->unit) st->unit = dc;
}

/* Levels of a line `w` columns deep relative to the cursor's (below it: always negative). */
static int level_of(const mid_style *st, int w)
{
    if (w >= st->base) return (w - st->base + st->unit / 2) / st->unit;
    return -((st->base - w + st->unit - 1) / st->unit);
}

static char *reindent(const fim_decoder *d, const char *s, size_t n, size_t *out_n);

/* The depth of the middle's line at buf[s..e) by the tree with buf[0..e) inserted, in the
 * document's indentation style (where indentation is syntax, the model's own style would parse as
 * other levels). */
static int depth_in_doc_style(fim_decoder *d, size_t s, size_t e)
{
    size_t rn = 0;
    char *re = reindent(d, d->buf, e, &rn);
    if (!re) return fim__middle_line_depth(d->ctx, &d->parser, d->buf, e, s);
    size_t lines = 0, at = 0; /* the same line in the re-indented text */
    for (size_t i = 0; i < s; i++) lines += d->buf[i] == '\n';
    for (; lines > 0 && at < rn; at++) lines -= re[at] == '\n';
    int depth = fim__middle_line_depth(d->ctx, &d->parser, re, rn, at);
    free(re);
    return depth;
}

/* Check the line buf[s, e) (without its '\n'); `first` = it continues the cursor line. */
static bool check_line(fim_decoder *d, size_t s, size_t e, bool first)
{
    const char *p = d->buf + s;
    size_t n = e - s;
    if (blank(p, n)) return false;
    mid_style st;
    middle_style(d, d->buf, e, &st);
    int level = level_of(&st, base_indent_width(p, n));
    /* the line closes the enclosing block the suffix leaves open: it is the middle's to bring */
    if (!first && level < 0 && d->closed_at > s && d->closed_at <= e)
        return cut(d, e, FIM_STOP_BLOCK_END);
    if (!first && level < 0) return cut_line(d, s, FIM_STOP_INDENT);
    trim(&p, &n);
    /* (a line of closers is the bracket rules' business: it may close the middle's own block) */
    if (d->next_line && n == d->next_line_len && !memcmp(p, d->next_line, n) && !only_closers(p, n))
        return cut_line(d, s, FIM_STOP_SUFFIX_REPEAT);
    if (repeated_line(d, s, p, n)) return true;
    if (d->closed_at) return cut(d, e, FIM_STOP_BLOCK_END); /* the enclosing block is closed */
    if (!first && d->block_depth > 0) { /* by syntax: this line begins outside the cursor's block */
        int depth = depth_in_doc_style(d, s, e);
        if (depth >= 0 && depth < d->block_depth) return cut_line(d, s, FIM_STOP_BLOCK_END);
    }
    /* In a block body the middle goes on after a nested block, to where the enclosing block ends
     * (the rules above); at the top level one block (a definition) completes it. */
    bool top_level = (st.own_first ? st.base : d->cursor_indent) == 0 && d->block_depth <= 1;
    if (d->statement_level && top_level && !first) {
        /* a block the middle opened, now closed: by brackets, or by indentation */
        if (d->indent_blocks) {
            const char *f = d->buf;
            size_t fn = lend(d->buf, d->len, 0);
            trim(&f, &fn);
            bool opened = fn && f[fn - 1] == ':';
            if (opened && level <= 0 && s > fn) return cut_line(d, s, FIM_STOP_BLOCK_END);
        } else {
            fim_brackets b;
            fim__brackets_init(&b, d->lang);
            fim__brackets_scan(&b, d->buf, e, 0, e, false);
            bool closes = p[n - 1] == '}' || p[0] == ')' || p[0] == ']';
            if (b.depth == 0 && b.extra == 0 && closes && level <= 0)
                return cut(d, e, FIM_STOP_BLOCK_END);
        }
    }
    return false;
}

/* A run of one short pattern repeated (", a, a, a, a"): keep one period. */
static bool repeated_bytes(fim_decoder *d)
{
    if (d->len < REPEAT_MIN_BYTES) return false;
    for (size_t p = 1; p <= REPEAT_MAX_PERIOD; p++) {
        size_t i = d->len;
        while (i > p && d->buf[i - 1] == d->buf[i - 1 - p]) i--;
        size_t run = d->len - i + p; /* bytes covered by the repetition */
        if (run >= 4 * p && run >= REPEAT_MIN_BYTES && !blank(d->buf + i - p, p))
            return cut(d, i, FIM_STOP_REPETITION);
    }
    return false;
}

/* A closer that found nothing open in the middle: within the allowance it closes the enclosing
 * block (stop at the end of its line); beyond it the suffix already closes that bracket. */
static bool closer_underflow(fim_decoder *d, size_t i)
{
    if (d->allowed_closers > 0) {
        d->allowed_closers--;
        if (!d->closed_at) d->closed_at = i + 1;
        return false;
    }
    size_t s = lstart(d->buf, i);
    if (blank(d->buf + s, i - s) && s > 0) return cut_line(d, s, FIM_STOP_UNBALANCED);
    return cut(d, i, FIM_STOP_UNBALANCED);
}

bool fim__decoder_push(fim_decoder *d, const char *bytes, size_t n)
{
    if (d->stopped) return true;
    if (d->len + n + 1 > d->cap) {
        size_t cap = d->cap ? d->cap : 256;
        while (cap < d->len + n + 1) cap *= 2;
        char *p = base_xrealloc(d->buf, cap);
        d->buf = p;
        d->cap = cap;
    }
    size_t from = d->len;
    memcpy(d->buf + d->len, bytes, n);
    d->len += n;
    for (size_t i = from; i < d->len; i++) {
        unsigned char c = (unsigned char)d->buf[i];
        if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f)
            return cut(d, i, FIM_STOP_CONTROL);
        if (c != '\n' && c != '\r') {
            if (d->in_literal) continue;
            /* brackets: rescan up to i from the start (middles are short) */
            fim_brackets b;
            fim__brackets_init(&b, d->lang);
            int before = 0;
            fim__brackets_scan(&b, d->buf, d->len, 0, i, false);
            before = b.underflow;
            fim__brackets_scan(&b, d->buf, d->len, i, i + 1, false);
            if (b.underflow > before && closer_underflow(d, i)) return true;
            continue;
        }
        if (c == '\r') continue;
        if (!d->multi_line) return cut(d, i, FIM_STOP_LINE_END);
        bool first = d->checked == 0;
        if (check_line(d, d->checked, i, first)) return true;
        d->checked = i + 1;
    }
    return repeated_bytes(d);
}

/* The middle's last k lines equal the suffix's first k non-blank lines: drop them. */
static size_t drop_suffix_lines(const fim_decoder *d, size_t n)
{
    const char *sl[8];
    size_t sn[8];
    int ns = 0;
    size_t at = 0, eol = lend(d->suffix, d->suffix_len, 0);
    if (!blank(d->suffix, eol)) return n; /* the cursor line goes on: no whole lines to compare */
    at = eol < d->suffix_len ? eol + 1 : eol;
    while (at < d->suffix_len && ns < 8) {
        size_t e = lend(d->suffix, d->suffix_len, at);
        const char *p = d->suffix + at;
        size_t k = e - at;
        trim(&p, &k);
        if (k) sl[ns] = p, sn[ns++] = k;
        at = e + 1;
    }
    while (n && blank(d->buf + n - 1, 1)) n--;
    for (int k = ns; k >= 1; k--) {
        /* the middle's last k lines */
        size_t pos = n;
        bool same = true, content = false;
        for (int j = k - 1; j >= 0 && same; j--) {
            if (pos == 0) {
                same = false;
                break;
            }
            size_t s = lstart(d->buf, pos);
            const char *p = d->buf + s;
            size_t m = pos - s;
            trim(&p, &m);
            same = m == sn[j] && !memcmp(p, sl[j], m);
            content |= !only_closers(p, m); /* closers alone are the bracket rules' business */
            pos = s > 0 ? s - 1 : 0;
            if (s == 0 && j > 0) same = false;
        }
        if (same && content) return pos;
    }
    return n;
}

/* Is the middle's style the document's? Then it is left as it is (alignment included). */
static bool same_style(const fim_decoder *d, const mid_style *st)
{
    if (d->doc_tabs) return !st->spaces;
    if (st->tabs) return false;
    return st->unit == d->doc_unit && (st->own_first || st->base == d->cursor_indent);
}

/* Append the indentation for `levels` levels in the document's unit. */
static void put_levels(const fim_decoder *d, fim_buf *o, int levels)
{
    static const char spaces[] = "        ";
    for (int i = 0; i < levels; i++)
        fim__buf_add(o, d->doc_tabs ? "\t" : spaces, d->doc_tabs ? 1 : (size_t)d->doc_unit);
}

/* The middle's leading whitespace re-expressed in the document's unit, level by level: lines at or
 * below the cursor's level keep the cursor line's own whitespace and add levels to it; lines that
 * dedent below it (and all, when the cursor is at column 0) are rebuilt from column 0. Lines after
 * the first only, since the first continues the cursor line, unless the cursor is at column 0. */
static char *reindent(const fim_decoder *d, const char *s, size_t n, size_t *out_n)
{
    if (!d->doc_tabs && d->doc_unit <= 0) return NULL; /* the document's unit is unknown */
    mid_style st;
    middle_style(d, s, n, &st);
    if (same_style(d, &st)) return NULL;
    int cursor_level = st.own_first ? (st.base + st.unit / 2) / st.unit
                                    : (d->cursor_indent + doc_cols(d) / 2) / doc_cols(d);
    fim_buf o = {0};
    fim__buf_add(&o, "", 0);
    for (size_t at = 0; at < n;) {
        size_t e = lend(s, n, at), p = at;
        while (p < e && (s[p] == ' ' || s[p] == '\t')) p++;
        if ((at > 0 || st.own_first) && p < e) {
            int lv = level_of(&st, base_indent_width(s + at, p - at));
            if (lv >= 0 && !st.own_first) {
                fim__buf_add(&o, d->cursor_ws, d->cursor_ws_len);
                put_levels(d, &o, lv);
            } else {
                put_levels(d, &o, cursor_level + lv > 0 ? cursor_level + lv : 0);
            }
            at = p;
        }
        fim__buf_add(&o, s + at, e - at);
        if (e < n) fim__buf_add(&o, "\n", 1);
        at = e + 1;
    }
    *out_n = o.n;
    return o.p;
}

char *fim__decoder_finish(fim_decoder *d)
{
    if (!d->stopped && d->multi_line && d->len > d->checked)
        check_line(d, d->checked, d->len, d->checked == 0);
    size_t n = base_utf8_valid_prefix(d->buf, d->len);
    if (d->multi_line) n = drop_suffix_lines(d, n);
    /* the part that duplicates the start of the suffix */
    for (size_t k = n < d->suffix_len ? n : d->suffix_len; k > 0; k--) {
        if (!memcmp(d->buf + n - k, d->suffix, k) && !blank(d->suffix, k)) {
            n -= k;
            break;
        }
    }
    if (d->multi_line)
        while (n && (d->buf[n - 1] == ' ' || d->buf[n - 1] == '\t' || d->buf[n - 1] == '\n' ||
                     d->buf[n - 1] == '\r'))
            n--;
    size_t rn = 0;
    char *re = d->multi_line ? reindent(d, d->buf ? d->buf : "", n, &rn) : NULL;
    if (re) return re;
    char *out = base_xmalloc(n + 1);
    if (n) memcpy(out, d->buf, n);
    out[n] = 0;
    return out;
}
