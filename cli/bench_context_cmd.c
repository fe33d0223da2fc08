/* cli/bench_context_cmd.c — `fimd bench-context`: how much of what a completion needs the prompt
 * holds. At sampled positions of real files it hides the rest of a line (single-line case) or the
 * rest of a block body (multi-line case), builds the prompt at a token budget, and reports
 * identifier recall: the fraction of the hidden middle's identifiers that occur in the prompt.
 * fimd's context (syntax-cut windows, definitions from the other files of the same folder as open
 * documents) or, with --naive, the last 3/4 of the budget from the prefix and the first 1/4 from
 * the suffix. Only a vocabulary is needed (-m: any GGUF with one, or FIMD_MODEL). --verbose prints
 * each position's recall and missed identifiers, --prompts each prompt's text as well. */
#define _GNU_SOURCE
#include "cli/cli.h"
#include "base/base.h"
#include "fim/fim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { PER_FILE = 12, MAX_HIDDEN_LINES = 30, MAX_FILES = 4096 };

/* ---- identifier sets ---- */

typedef struct idset {
    char **k;
    size_t cap, n;
} idset;

static uint64_t hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static bool set_has(const idset *s, const char *w, size_t n)
{
    if (!s->cap) return false;
    for (size_t i = hash(w, n) & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
        if (!s->k[i]) return false;
        if (strlen(s->k[i]) == n && !memcmp(s->k[i], w, n)) return true;
    }
}

static void set_add(idset *s, const char *w, size_t n)
{
    if (set_has(s, w, n)) return;
    if ((s->n + 1) * 2 > s->cap) {
        idset t = {base_xcalloc(s->cap ? s->cap * 2 : 64, sizeof(char *)), s->cap ? s->cap * 2 : 64,
                   0};
        for (size_t i = 0; i < s->cap; i++)
            if (s->k[i]) set_add(&t, s->k[i], strlen(s->k[i])), free(s->k[i]);
        free(s->k);
        *s = t;
    }
    size_t i = hash(w, n) & (s->cap - 1);
    while (s->k[i]) i = (i + 1) & (s->cap - 1);
    s->k[i] = strndup(w, n);
    s->n++;
}

static void set_free(idset *s)
{
    for (size_t i = 0; i < s->cap; i++) free(s->k[i]);
    free(s->k);
    memset(s, 0, sizeof *s);
}

/* Identifiers of at least two characters. */
static void identifiers(const char *t, size_t n, idset *out)
{
    for (size_t i = 0; i < n;) {
        if (!cli_ident_start((unsigned char)t[i]) ||
            (i > 0 && cli_ident_byte((unsigned char)t[i - 1]))) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < n && cli_ident_byte((unsigned char)t[j])) j++;
        if (j - i >= 2) set_add(out, t + i, j - i);
        i = j;
    }
}

/* One --verbose line: the position, its recall and the hidden identifiers the prompt missed. */
static void print_position(const char *file, size_t cursor, bool naive, double r, const idset *want,
                           const idset *got)
{
    printf("%s:%zu %s %.3f", file, cursor, naive ? "naive" : "fimd", r);
    for (size_t i = 0; i < want->cap; i++)
        if (want->k[i] && !set_has(got, want->k[i], strlen(want->k[i]))) printf(" -%s", want->k[i]);
    putchar('\n');
}

/* ---- positions ---- */

typedef struct position {
    size_t cursor, hidden_end; /* hide [cursor, hidden_end) */
} position;

static int count_idents(const char *t, size_t a, size_t e)
{
    idset s = {0};
    identifiers(t + a, e - a, &s);
    int n = (int)s.n;
    set_free(&s);
    return n;
}

/* Single-line positions: a third into lines with some identifiers; multi-line: the first line of a
 * block body (the line before ends with '{' or ':' and this one is indented deeper), hiding the
 * body down to the first line indented less. Every k-th candidate, at most PER_FILE of each. */
static int sample(const char *t, size_t len, position *out, int cap)
{
    position single[4096], multi[4096];
    int ns = 0, nm = 0;
    size_t prev_start = 0, prev_end = 0;
    bool have_prev = false;
    for (size_t at = 0; at < len;) {
        size_t e = cli_line_end(t, len, at), a = at;
        while (a < e && (t[a] == ' ' || t[a] == '\t')) a++;
        if (a < e && e - a >= 12 && count_idents(t, a, e) >= 2 && ns < 4096) {
            size_t c = a + (e - a) / 3;
            while (c < e && cli_ident_byte((unsigned char)t[c])) c++; /* not inside a word */
            if (c < e) single[ns++] = (position){c, e};
        }
        if (a < e && have_prev && nm < 4096) {
            size_t pe = prev_end;
            while (pe > prev_start && (t[pe - 1] == ' ' || t[pe - 1] == '\t' || t[pe - 1] == '\r'))
                pe--;
            char last = pe > prev_start ? t[pe - 1] : 0;
            int ind = cli_indent(t, at, e);
            if ((last == '{' || last == ':') && ind > cli_indent(t, prev_start, prev_end)) {
                size_t end = cli_body_end(t, len, e, ind, MAX_HIDDEN_LINES);
                multi[nm++] = (position){a, end};
            }
        }
        if (a < e) prev_start = at, prev_end = e, have_prev = true;
        at = e < len ? e + 1 : len;
    }
    int n = 0;
    for (int pass = 0; pass < 2; pass++) {
        position *v = pass ? multi : single;
        int k = pass ? nm : ns, step = k > PER_FILE ? (k + PER_FILE - 1) / PER_FILE : 1;
        for (int i = 0; i < k && n < cap; i += step) out[n++] = v[i];
    }
    return n;
}

/* ---- prompts ---- */

static char *detok(const model_vocab *v, const int32_t *ids, size_t n, size_t *len)
{
    size_t cap = n * 16 + 1, k = 0;
    char *s = base_xmalloc(cap);
    for (size_t i = 0; i < n; i++) {
        if (model_token_is_control(v, ids[i])) continue;
        char buf[256];
        int b = model_token_bytes(v, ids[i], buf, sizeof buf);
        b = b < (int)sizeof buf ? b : (int)sizeof buf;
        if (k + (size_t)b + 1 > cap) {
            cap = (k + (size_t)b + 1) * 2;
            s = base_xrealloc(s, cap);
        }
        memcpy(s + k, buf, (size_t)b);
        k += (size_t)b;
    }
    s[k] = 0;
    *len = k;
    return s;
}

/* The last 3/4 of the budget in tokens before the cursor and the first 1/4 after it. */
static char *naive_prompt(const model_vocab *v, const char *t, size_t len, size_t cursor,
                          int budget, size_t *out_len)
{
    size_t from = cursor > (size_t)budget * 32 ? cursor - (size_t)budget * 32 : 0;
    while (from > 0 && t[from - 1] != '\n') from--;
    size_t to = len - cursor > (size_t)budget * 32 ? cursor + (size_t)budget * 32 : len;
    int32_t *pre = NULL, *suf = NULL;
    size_t np = 0, ns = 0;
    model_err me = {{0}};
    model_tokenize(v, t + from, cursor - from, false, false, &pre, &np, &me);
    model_tokenize(v, t + cursor, to - cursor, false, false, &suf, &ns, &me);
    size_t kp = (size_t)budget * 3 / 4, ks = (size_t)budget - kp;
    size_t p0 = np > kp ? np - kp : 0;
    size_t a, b;
    char *x = detok(v, pre + p0, np - p0, &a), *y = detok(v, suf, ns < ks ? ns : ks, &b);
    char *s = base_xmalloc(a + b + 2);
    memcpy(s, x, a);
    s[a] = '\n';
    memcpy(s + a + 1, y, b);
    s[a + b + 1] = 0;
    *out_len = a + b + 1;
    free(x), free(y), free(pre), free(suf);
    return s;
}

int cmd_bench_context(int argc, char **argv)
{
    const char *model_path = NULL, *files[MAX_FILES];
    int n_files = 0, budget = 0;
    bool naive = false, verbose = false, prompts = false;
    long v;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--naive"))
            naive = true;
        else if (!strcmp(a, "--verbose"))
            verbose = true;
        else if (!strcmp(a, "--prompts"))
            verbose = prompts = true;
        else if ((!strcmp(a, "--budget") || !strcmp(a, "-m")) && i + 1 < argc) {
            if (a[1] == 'm')
                model_path = argv[++i];
            else if (cli_parse_int(argv[++i], 64, 1 << 20, &v))
                return cli_fail("bench-context: --budget needs 64 or more");
            else
                budget = (int)v;
        } else if (a[0] == '-')
            return cli_fail("bench-context: unknown option '%s'", a);
        else if (n_files == MAX_FILES)
            return cli_fail("bench-context: at most %d files", MAX_FILES);
        else
            files[n_files++] = a;
    }
    model_path = cli_model_or_bundled(model_path, NULL);
    if (!budget || !n_files || !model_path)
        return cli_fail(
            "bench-context: usage: fimd bench-context -m MODEL --budget B [--naive] [--verbose] "
            "[--prompts] FILE...");
    model_err me = {{0}};
    model_gguf *g = model_gguf_open(model_path, &me);
    model_vocab *voc = g ? model_vocab_load(g, &me) : NULL;
    if (!voc) {
        model_gguf_close(g);
        return cli_fail("%s", me.msg);
    }
    size_t nf = n_files > 0 ? (size_t)n_files : 0;
    fim_doc **docs = calloc(nf + 1, sizeof *docs);
    int rc = 0;
    for (int i = 0; i < n_files && !rc; i++) {
        char *text;
        size_t len;
        if (cli_read_file(files[i], &text, &len))
            rc = 1;
        else
            docs[i] = fim_doc_new(files[i], NULL, text, len), free(text);
    }
    fim_config cfg;
    fim_config_default(&cfg);
    fim_config_budget(&cfg, budget);
    double recall_sum = 0;
    int positions = 0;
    fim_doc **open = calloc(nf + 1, sizeof *open);
    for (int f = 0; f < n_files && !rc; f++) {
        size_t len;
        const char *t = fim_doc_text(docs[f], &len);
        position pos[2 * PER_FILE];
        int np = sample(t, len, pos, 2 * PER_FILE);
        int n_open = 0;
        for (int j = 0; j < n_files; j++)
            if (j != f && cli_same_dir(files[j], files[f])) open[n_open++] = docs[j];
        for (int p = 0; p < np; p++) {
            idset want = {0}, got = {0};
            identifiers(t + pos[p].cursor, pos[p].hidden_end - pos[p].cursor, &want);
            if (!want.n) continue;
            /* the document with the middle hidden (an edit, as typing would make it) */
            fim_doc *d = fim_doc_new(files[f], NULL, t, len);
            fim_doc_replace(d, pos[p].cursor, pos[p].hidden_end, "", 0);
            size_t dl, pl = 0;
            const char *dt = fim_doc_text(d, &dl);
            char *prompt = NULL;
            if (naive) {
                prompt = naive_prompt(voc, dt, dl, pos[p].cursor, budget, &pl);
            } else {
                fim_context *c = fim_context_new(d, pos[p].cursor, open, n_open);
                int32_t *ids = NULL;
                size_t n = 0;
                fim_err fe = {{0}};
                if (fim_prompt_ids(voc, c, &cfg, &ids, &n, &fe))
                    rc = cli_fail("bench-context: %s", fe.msg);
                else
                    prompt = detok(voc, ids, n, &pl);
                free(ids);
                fim_context_free(c);
            }
            if (prompt) {
                identifiers(prompt, pl, &got);
                size_t hit = 0;
                for (size_t i = 0; i < want.cap; i++)
                    if (want.k[i] && set_has(&got, want.k[i], strlen(want.k[i]))) hit++;
                double r = (double)hit / (double)want.n;
                if (verbose) print_position(files[f], pos[p].cursor, naive, r, &want, &got);
                if (prompts) printf("%.*s\n---- end of prompt\n", (int)pl, prompt);
                recall_sum += r;
                positions++;
            }
            free(prompt);
            set_free(&want), set_free(&got);
            fim_doc_free(d);
        }
    }
    if (!rc)
        printf("recall=%.4f positions=%d\n", positions ? recall_sum / positions : 0, positions);
    for (int i = 0; i < n_files; i++) fim_doc_free(docs[i]);
    free(docs), free(open);
    model_vocab_free(voc);
    model_gguf_close(g);
    return rc;
}
