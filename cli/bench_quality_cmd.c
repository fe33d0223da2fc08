/* cli/bench_quality_cmd.c — `fimd bench-quality`: completion quality end to end, through the
 * server's code path (documents with syntax trees, the other files of a file's folder open, the FIM
 * prompt, cache, stop rules, post-processing). At reproducibly sampled cursors of three kinds it
 * hides text, completes, and compares: exact match, edit similarity, empty rate and latency, per
 * language and cursor kind. --naive swaps the prompt builder for a plain window of the same budget.
 */
#define _GNU_SOURCE
#include "cli/cli.h"
#include "base/base.h"
#include "fim/fim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { PER_KIND = 6, MAX_FILES = 4096, MAX_BLOCK_LINES = 12, MAX_LANGS = 32 };
enum kind { K_LINE_REST, K_NEXT_LINE, K_BLOCK, N_KINDS };
static const char *const KIND_NAMES[N_KINDS] = {"line_rest", "next_line", "block"};

typedef struct cursor {
    enum kind kind;
    size_t at, hidden_end; /* the cursor, and the hidden text [at, hidden_end) */
} cursor;

typedef struct tally {
    int n, exact, empty;
    double sim, ms;
} tally;

/* ---- choosing cursors ---- */

static uint64_t fnv(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int idents_in(const char *t, size_t a, size_t e)
{
    int n = 0;
    for (size_t i = a; i < e; i++)
        if (cli_ident_start((unsigned char)t[i]) &&
            (i == a || !cli_ident_byte((unsigned char)t[i - 1])))
            n++;
    return n;
}

static char last_char(const char *t, size_t a, size_t e)
{
    while (e > a && (t[e - 1] == ' ' || t[e - 1] == '\t' || t[e - 1] == '\r')) e--;
    return e > a ? t[e - 1] : 0;
}

typedef struct line_info {
    size_t start, code, end; /* line start, first non-blank byte, line end ('\n' or len) */
} line_info;

/* Candidates of each kind, over the file's lines:
 * - line_rest: somewhere in a line of code (not inside a word), the rest of the line hidden;
 * - next_line: the user pressed Enter after a line of code; the next line of the same block
 *   (same indentation) is hidden after its indentation;
 * - block: a blank line as the first line of a block body (the line before opens it with '{' or
 *   ':' and the body is indented deeper), the body hidden down to the line that closes it. */
static int candidates(const char *t, size_t len, cursor *out, int cap)
{
    int n = 0;
    line_info prev = {0};
    bool have_prev = false;
    for (size_t at = 0; at < len && n < cap;) {
        line_info l = {at, at, cli_line_end(t, len, at)};
        while (l.code < l.end && (t[l.code] == ' ' || t[l.code] == '\t')) l.code++;
        bool code = l.code < l.end && !cli_blank_line(t, l.code, l.end);
        if (code && l.end - l.code >= 12 && idents_in(t, l.code, l.end) >= 2) {
            /* a position drawn from the line's own offset (reproducible), moved to a word's end */
            uint64_t h = (uint64_t)l.start * 0x9e3779b97f4a7c15ull;
            size_t c = l.code + 1 + (size_t)((h >> 33) % (uint64_t)(l.end - l.code - 1));
            while (c < l.end && cli_ident_byte((unsigned char)t[c])) c++;
            if (c < l.end && !cli_blank_line(t, c, l.end))
                out[n++] = (cursor){K_LINE_REST, c, l.end};
        }
        if (code && have_prev && n < cap) {
            int ind = cli_indent(t, l.start, l.end), pind = cli_indent(t, prev.start, prev.end);
            char opener = last_char(t, prev.code, prev.end);
            if ((opener == '{' || opener == ':') && ind > pind)
                out[n++] =
                    (cursor){K_BLOCK, l.code, cli_body_end(t, len, l.end, ind, MAX_BLOCK_LINES)};
            else if (ind == pind && idents_in(t, l.code, l.end) >= 1 && l.end - l.code >= 6)
                out[n++] = (cursor){K_NEXT_LINE, l.code, l.end};
        }
        if (code) prev = l, have_prev = true;
        at = l.end < len ? l.end + 1 : len;
    }
    return n;
}

/* Up to PER_KIND cursors of each kind, drawn by a generator seeded with the file's name (so the
 * same files give the same cursors on every run and machine), in file order. */
static int sample(const char *name, const char *t, size_t len, cursor *out)
{
    enum { CAP = 1 << 14 };
    cursor *all = base_xmalloc(sizeof *all * CAP);
    int n = candidates(t, len, all, CAP), k = 0;
    const char *base = strrchr(name, '/');
    uint64_t s = fnv(base ? base + 1 : name) | 1;
    for (int kind = 0; kind < N_KINDS; kind++) {
        int idx[CAP / 4], m = 0;
        for (int i = 0; i < n && m < CAP / 4; i++)
            if (all[i].kind == (enum kind)kind) idx[m++] = i;
        for (int j = 0; j < m && j < PER_KIND; j++) { /* partial Fisher-Yates */
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            int r = j + (int)(s % (uint64_t)(m - j)), tmp = idx[j];
            idx[j] = idx[r], idx[r] = tmp;
            out[k++] = all[idx[j]];
        }
    }
    free(all);
    return k;
}

/* ---- scoring ---- */

/* Lines with their trailing blanks removed and trailing empty lines dropped; the first line only
 * when `first_line`. */
static char *normalize(const char *s, size_t n, bool first_line)
{
    char *o = base_xmalloc(n + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\n') {
            while (k > 0 && (o[k - 1] == ' ' || o[k - 1] == '\t' || o[k - 1] == '\r')) k--;
            if (first_line) break;
        }
        o[k++] = s[i];
    }
    while (k > 0 && (o[k - 1] == ' ' || o[k - 1] == '\t' || o[k - 1] == '\r' || o[k - 1] == '\n'))
        k--;
    o[k] = 0;
    return o;
}

/* 1 - Levenshtein distance / the longer length (1 when both are empty). */
static double edit_similarity(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b);
    if (!n && !m) return 1;
    size_t *row = base_xmalloc(sizeof *row * (m + 1));
    for (size_t j = 0; j <= m; j++) row[j] = j;
    for (size_t i = 1; i <= n; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= m; j++) {
            size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    double d = (double)row[m];
    free(row);
    return 1.0 - d / (double)(n > m ? n : m);
}

static void add(tally *t, bool exact, bool empty, double sim, double ms)
{
    t->n++;
    t->exact += exact;
    t->empty += empty;
    t->sim += sim;
    t->ms += ms;
}

/* ---- the run ---- */

typedef struct bench {
    fim_engine *e;
    fim_config cfg;
    const char *lang[MAX_LANGS];
    tally by_lang[MAX_LANGS][N_KINDS + 1], by_kind[N_KINDS], total;
    int n_lang;
    bool verbose;
} bench;

static int lang_slot(bench *b, const char *lang)
{
    for (int i = 0; i < b->n_lang; i++)
        if (!strcmp(b->lang[i], lang)) return i;
    if (b->n_lang == MAX_LANGS) return MAX_LANGS - 1;
    b->lang[b->n_lang] = lang;
    return b->n_lang++;
}

/* Complete at one cursor of `doc_text`, with the hidden text removed as the user would not yet have
 * typed it, and score the completion. */
static int run_cursor(bench *b, const char *path, const char *t, size_t len, const cursor *c,
                      fim_doc *const *open, int n_open)
{
    fim_doc *d = fim_doc_new(path, NULL, t, len);
    fim_doc_replace(d, c->at, c->hidden_end, "", 0);
    fim_context *ctx = fim_context_new(d, c->at, open, n_open);
    fim_request req = {.doc = path, .ctx = ctx};
    fim_stats st;
    fim_err fe = {{0}};
    char *out = NULL;
    double t0 = base_now_ms();
    int rc = fim_complete(b->e, &req, &b->cfg, NULL, &out, &st, &fe);
    double ms = base_now_ms() - t0;
    if (rc) {
        cli_fail("bench-quality: %s", fe.msg);
    } else {
        bool first_line = c->kind != K_BLOCK;
        char *want = normalize(t + c->at, c->hidden_end - c->at, first_line);
        char *got = normalize(out, strlen(out), first_line);
        bool exact = !strcmp(want, got) && *want, empty = !*got;
        double sim = edit_similarity(want, got);
        int li = lang_slot(b, fim_doc_language(d)[0] ? fim_doc_language(d) : "unknown");
        add(&b->by_lang[li][c->kind], exact, empty, sim, ms);
        add(&b->by_lang[li][N_KINDS], exact, empty, sim, ms);
        add(&b->by_kind[c->kind], exact, empty, sim, ms);
        add(&b->total, exact, empty, sim, ms);
        if (b->verbose)
            printf("%s:%zu %s exact=%d sim=%.3f\n  want: %s\n  got:  %s\n", path, c->at,
                   KIND_NAMES[c->kind], exact, sim, want, got);
        free(want), free(got);
    }
    free(out);
    fim_context_free(ctx);
    fim_doc_free(d);
    return rc ? 1 : 0;
}

static void print_tally_json(const char *key, const tally *t, bool comma)
{
    double n = t->n ? t->n : 1;
    printf("%s\"%s\":{\"cursors\":%d,\"exact_match\":%.4f,\"edit_similarity\":%.4f,\"empty_rate\":%"
           ".4f,"
           "\"mean_ms\":%.2f}",
           comma ? "," : "", key, t->n, t->exact / n, t->sim / n, t->empty / n, t->ms / n);
}

static void print_tally(const char *lang, const char *kind, const tally *t)
{
    double n = t->n ? t->n : 1;
    printf("%-12s %-10s %7d %8.1f%% %8.3f %8.1f%% %9.1f\n", lang, kind, t->n, 100 * t->exact / n,
           t->sim / n, 100 * t->empty / n, t->ms / n);
}

static void print_json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') putchar('\\');
        if ((unsigned char)*s >= 0x20) putchar(*s);
    }
    putchar('"');
}

/* `budget` is what was asked; `prompt_budget` what the model's context let the prompt have. */
static void report(const bench *b, const char *model, int budget, int prompt_budget, bool naive,
                   bool json)
{
    if (json) {
        printf("{\"model\":");
        print_json_string(model);
        printf(",\"budget\":%d,\"prompt_budget\":%d,\"naive\":%s", budget, prompt_budget,
               naive ? "true" : "false");
        print_tally_json("total", &b->total, true);
        printf(",\"kinds\":{");
        for (int k = 0; k < N_KINDS; k++) print_tally_json(KIND_NAMES[k], &b->by_kind[k], k > 0);
        printf("},\"languages\":{");
        for (int i = 0; i < b->n_lang; i++) {
            printf("%s\"%s\":{", i ? "," : "", b->lang[i]);
            print_tally_json("all", &b->by_lang[i][N_KINDS], false);
            for (int k = 0; k < N_KINDS; k++)
                print_tally_json(KIND_NAMES[k], &b->by_lang[i][k], true);
            printf("}");
        }
        printf("}}\n");
        return;
    }
    printf("bench-quality: %s, budget %d (%d within the model's context), %s prompt\n", model,
           budget, prompt_budget, naive ? "naive window" : "fimd");
    printf("%-12s %-10s %7s %9s %8s %9s %9s\n", "language", "cursor", "n", "exact", "edit_sim",
           "empty", "mean_ms");
    for (int i = 0; i < b->n_lang; i++) {
        for (int k = 0; k < N_KINDS; k++) print_tally(b->lang[i], KIND_NAMES[k], &b->by_lang[i][k]);
        print_tally(b->lang[i], "all", &b->by_lang[i][N_KINDS]);
    }
    for (int k = 0; k < N_KINDS; k++) print_tally("all", KIND_NAMES[k], &b->by_kind[k]);
    print_tally("all", "all", &b->total);
}

static int usage(void)
{
    return cli_fail(
        "bench-quality: usage: fimd bench-quality -m MODEL [--budget N] [--naive] [--json] "
        "[--verbose] [-t THREADS] FILE...");
}

int cmd_bench_quality(int argc, char **argv)
{
    const char *model_path = NULL;
    static const char *files[MAX_FILES];
    int n_files = 0, budget = 0;
    long v, threads = 0;
    bool naive = false, json = false, verbose = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--naive"))
            naive = true;
        else if (!strcmp(a, "--json"))
            json = true;
        else if (!strcmp(a, "--verbose"))
            verbose = true;
        else if (a[0] != '-') {
            if (n_files == MAX_FILES) return cli_fail("bench-quality: at most %d files", MAX_FILES);
            files[n_files++] = a;
        } else if (!val)
            return usage();
        else if (!strcmp(a, "-m") || !strcmp(a, "--model"))
            model_path = argv[++i];
        else if (!strcmp(a, "--budget")) {
            if (cli_parse_int(argv[++i], 64, 1 << 20, &v))
                return cli_fail("bench-quality: --budget needs 64 or more");
            budget = (int)v;
        } else if (!strcmp(a, "-t")) {
            if (cli_parse_int(argv[++i], 0, 1024, &threads))
                return cli_fail("bench-quality: -t needs a thread count");
        } else
            return cli_fail("bench-quality: unknown option '%s'", a);
    }
    model_path = cli_model_or_bundled(model_path, "bench-quality");
    if (!model_path || !n_files) return usage();
    bench *b = base_xcalloc(1, sizeof *b);
    b->verbose = verbose;
    fim_config_default(&b->cfg);
    if (budget) fim_config_budget(&b->cfg, budget);
    b->cfg.naive_window = naive;
    fim_doc **docs = calloc((size_t)n_files, sizeof *docs),
            **open = calloc((size_t)n_files, sizeof *open);
    int rc = 0;
    for (int i = 0; i < n_files && !rc; i++) {
        char *text;
        size_t len;
        if (cli_read_file(files[i], &text, &len))
            rc = 1;
        else
            docs[i] = fim_doc_new(files[i], NULL, text, len), free(text);
    }
    fim_err fe = {{0}};
    fim_backend_spec spec = {
        .model_path = model_path, .threads = (int)threads, .load = *cli_model_opts()};
    b->e = rc ? NULL : fim_engine_open(&spec, &fe);
    if (!rc && !b->e) rc = cli_fail("%s", fe.msg);
    for (int f = 0; f < n_files && !rc; f++) {
        size_t len;
        const char *t = fim_doc_text(docs[f], &len);
        cursor cur[N_KINDS * PER_KIND];
        int nc = sample(files[f], t, len, cur), n_open = 0;
        for (int j = 0; j < n_files; j++)
            if (j != f && cli_same_dir(files[j], files[f])) open[n_open++] = docs[j];
        for (int k = 0; k < nc && !rc; k++)
            rc = run_cursor(b, files[f], t, len, &cur[k], open, n_open);
    }
    if (!rc) {
        fim_config fit = b->cfg;
        fim_config_fit(&fit, fim_engine_n_ctx(b->e));
        report(b, model_path,
               b->cfg.prefix_tokens + b->cfg.suffix_tokens + b->cfg.related_tokens + 4,
               fit.prefix_tokens + fit.suffix_tokens + fit.related_tokens + 4, naive, json);
    }
    for (int i = 0; i < n_files; i++) fim_doc_free(docs[i]);
    free(docs), free(open);
    fim_engine_free(b->e);
    free(b);
    return rc;
}
