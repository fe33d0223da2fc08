/* cli/typing_cmd.c — `fimd bench-typing`: replays typing K lines of a file one character at a time
 * (the rest of the file stays below as suffix) and asks for a completion at every keystroke as an
 * editor would, through the same fim path as the server. Prints latency percentiles, tokens
 * evaluated per request (within a line, where the cache should leave only the cursor line's tokens)
 * and the share of prompt tokens reused from the cache. With --accept the replayed user accepts
 * every ghost text instead (see accept_replay), with the features off and on side by side. */
#define _GNU_SOURCE
#include "cli/cli.h"
#include "base/base.h"
#include "fim/fim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct typing_opts {
    const char *path, *file;
    long line, lines, n_predict, threads;
    bool json, accept, type_through, prefetch, drafts;
} typing_opts;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Byte offset of the start of line `line` (0-based), or len. */
static size_t line_offset(const char *t, size_t len, long line)
{
    size_t at = 0;
    for (long l = 0; l < line && at < len; l++) {
        const char *nl = memchr(t + at, '\n', len - at);
        at = nl ? (size_t)(nl - t) + 1 : len;
    }
    return at;
}

/* A completion at the document's cursor, as an editor's request makes it (context, then fim). */
static int ask(fim_engine *e, const char *key, fim_doc *doc, size_t cursor, const fim_config *cfg,
               char **out, fim_stats *st)
{
    fim_err fe = {{0}};
    fim_context *ctx = fim_context_new(doc, cursor, NULL, 0);
    fim_request r = {.doc = key, .ctx = ctx};
    int rc = ctx ? fim_complete(e, &r, cfg, NULL, out, st, &fe) : -1;
    fim_context_free(ctx);
    if (rc) return cli_fail("bench-typing: %s", ctx ? fe.msg : "out of memory");
    return 0;
}

/* ---- typing the file's text ---- */

typedef struct typing_result {
    double *lat;
    int *cached, *prompts;
    int n;
    bool server_told;
    long eval_sum, eval_in_line, n_in_line, eval_max_in_line, reused, prompt, tt_hits;
    long drafted, accepted, steps; /* drafts from the context */
} typing_result;

/* Type orig[from, from+typed) at the cursor, a completion asked at every keystroke. */
static int type_text(fim_engine *e, const typing_opts *o, const fim_config *cfg, fim_doc *doc,
                     const char *orig, size_t from, size_t typed, typing_result *res)
{
    size_t cursor = from;
    fim_stats st;
    char *out;
    /* one request to fill the cache, as an editor does when the file opens (not counted) */
    if (ask(e, o->file, doc, cursor, cfg, &out, &st)) return 1;
    free(out);
    for (size_t k = 0; k < typed; k++) {
        char ch = orig[from + k];
        double t0 = base_now_ms();
        fim_doc_replace(doc, cursor, cursor, &ch, 1);
        cursor++;
        if (ask(e, o->file, doc, cursor, cfg, &out, &st)) return 1;
        int n = res->n++;
        res->lat[n] = base_now_ms() - t0;
        res->cached[n] = st.server_cached;
        res->prompts[n] = st.prompt_tokens;
        res->server_told |= st.server_cached >= 0;
        res->tt_hits += st.source == FIM_FROM_TYPE_THROUGH;
        free(out);
        res->eval_sum += st.evaluated;
        res->drafted += st.drafted, res->accepted += st.accepted, res->steps += st.steps;
        res->reused += st.reused;
        res->prompt += st.prompt_tokens;
        if (ch != '\n' && k > 0 && orig[from + k - 1] != '\n') { /* a keystroke within a line */
            res->eval_in_line += st.evaluated;
            res->n_in_line++;
            if (st.evaluated > res->eval_max_in_line) res->eval_max_in_line = st.evaluated;
        }
    }
    return 0;
}

static void print_typing(const typing_opts *o, typing_result *r)
{
    int n = r->n;
    qsort(r->lat, (size_t)n, sizeof *r->lat, cmp_double);
    double p50 = r->lat[n / 2], p95 = r->lat[(int)(0.95 * (n - 1))];
    double per = (double)r->eval_sum / n,
           in_line = r->n_in_line ? (double)r->eval_in_line / (double)r->n_in_line : 0;
    double ratio = r->prompt ? (double)r->reused / (double)r->prompt : 0;
    if (o->json) {
        printf("{\"file\":\"%s\",\"line\":%ld,\"lines\":%ld,\"n_predict\":%ld,\"requests\":%d,"
               "\"p50_ms\":%.2f,"
               "\"p95_ms\":%.2f,\"evaluated_per_request\":%.2f,\"evaluated_per_keystroke_in_"
               "line\":%.2f,"
               "\"max_evaluated_in_line\":%ld,\"reuse_ratio\":%.4f,\"type_through_hits\":%ld,"
               "\"prefetch_hits\":0,\"drafted\":%ld,\"accepted\":%ld,\"steps_per_completion\":%.2f",
               o->file, o->line, o->lines, o->n_predict, n, p50, p95, per, in_line,
               r->eval_max_in_line, ratio, r->tt_hits, r->drafted, r->accepted,
               (double)r->steps / n);
        if (r->server_told) { /* per request, from the serving engine's own answer */
            printf(",\"server_cached\":[");
            for (int k = 0; k < n; k++) printf("%s%d", k ? "," : "", r->cached[k]);
            printf("],\"prompt_tokens\":[");
            for (int k = 0; k < n; k++) printf("%s%d", k ? "," : "", r->prompts[k]);
            printf("]");
        }
        printf("}\n");
        return;
    }
    printf("typed %ld lines of %s from line %ld: %d requests of %ld tokens\n"
           "latency p50 %.1f ms, p95 %.1f ms\n"
           "tokens evaluated per request %.2f (within a line: %.2f on average, %ld at most)\n"
           "reuse ratio %.4f (prompt tokens kept from the cache)\n"
           "type-through hits %ld (keystrokes that typed the start of the ghost text)\n"
           "model steps per completion %.2f; drafts %ld, accepted %ld\n",
           o->lines, o->file, o->line + 1, n, o->n_predict, p50, p95, per, in_line,
           r->eval_max_in_line, ratio, r->tt_hits, (double)r->steps / n, r->drafted, r->accepted);
    if (r->server_told) {
        printf("server-side cached prompt tokens per request (the server's own figure / "
               "prompt tokens):\n");
        for (int k = 0; k < n; k++) printf("%s%d/%d", k ? " " : "  ", r->cached[k], r->prompts[k]);
        printf("\n");
    }
}

static int typing_replay(fim_engine *e, const typing_opts *o, const fim_config *cfg,
                         const char *orig, size_t len, size_t from, size_t to)
{
    /* the document without the lines to type; they are typed back at the cursor, each keystroke an
     * edit of the document (its syntax tree reparsed incrementally) as an editor's didChange */
    fim_doc *doc = fim_doc_new(o->file, NULL, orig, len);
    fim_doc_replace(doc, from, to, "", 0);
    size_t typed = to - from;
    typing_result r = {.lat = malloc(sizeof(double) * (typed + 1)),
                       .cached = malloc(sizeof(int) * (typed + 1)),
                       .prompts = malloc(sizeof(int) * (typed + 1))};
    int rc = type_text(e, o, cfg, doc, orig, from, typed, &r);
    if (!rc && r.n) print_typing(o, &r);
    free(r.cached), free(r.prompts), free(r.lat);
    fim_doc_free(doc);
    return rc;
}

/* ---- accepting the ghost texts ----
 *
 * The replayed user starts on a blank line in place of the lines to type and accepts every ghost
 * text: with type-through, as one keystroke per character (each answered at once from the shown
 * middle; the last one reaches the accepted state); without, as the accept command (the whole text
 * at once). When the ghost text is empty they press Enter. Latency runs from the keystroke or
 * accept to the next ghost text. bench-typing has no idle time between keystrokes, so the prefetch
 * is computed untimed right after a ghost text is shown, standing for the user's pause before
 * accepting (normally longer than one completion); only the answer at the accept is timed. */

enum { CYCLES_PER_LINE = 3 }; /* ghost texts accepted at most, per line asked */

/* The rows: each feature alone, all off first and all on last. A row is a set of features. */
enum { F_TYPE_THROUGH = 1, F_PREFETCH = 2, F_DRAFTS = 4, F_ALL = 7 };
static const struct {
    int features;
    const char *name;
} accept_modes[] = {
    {0, "off"},
    {F_TYPE_THROUGH, "type-through"},
    {F_PREFETCH, "prefetch"},
    {F_DRAFTS, "drafts"},
    {F_ALL, "all"},
};
enum { MODES = sizeof accept_modes / sizeof *accept_modes };

typedef struct accept_run {
    bool type_through, prefetch, drafts;
    long drafted, drafts_taken, steps; /* drafts evaluated, accepted; model steps generating */
    double *lat;
    int n, cap;
    long tt_hits, pf_hits, model; /* answers by source */
    long evaluated;               /* prompt tokens the model evaluated for its answers */
    char *accepted;               /* everything the user accepted or typed, for the same replay */
    size_t acc_len;
} accept_run;

static void run_add(accept_run *r, double ms, const fim_stats *st, const char *text, size_t n)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 64;
        r->lat = base_xrealloc(r->lat, sizeof *r->lat * (size_t)r->cap);
    }
    r->lat[r->n++] = ms;
    r->tt_hits += st->source == FIM_FROM_TYPE_THROUGH;
    r->pf_hits += st->source == FIM_FROM_PREFETCH;
    r->model += st->source == FIM_FROM_MODEL;
    r->evaluated += st->evaluated;
    r->drafted += st->drafted, r->drafts_taken += st->accepted, r->steps += st->steps;
    r->accepted = base_xrealloc(r->accepted, r->acc_len + n + 1);
    memcpy(r->accepted + r->acc_len, text, n);
    r->acc_len += n;
}

/* The think time: the completion of the accepted branch, computed untimed. */
static int prefetch_branch(fim_engine *e, const char *key, const fim_doc *doc, size_t cursor,
                           const char *ghost, const fim_config *cfg)
{
    fim_doc *branch = fim_doc_copy(doc);
    size_t n = strlen(ghost);
    if (branch) fim_doc_replace(branch, cursor, cursor, ghost, n);
    fim_context *ctx = branch ? fim_context_new(branch, cursor + n, NULL, 0) : NULL;
    fim_request r = {.doc = key, .ctx = ctx};
    fim_stats st;
    fim_err fe = {{0}};
    int rc = ctx ? fim_prefetch(e, &r, cfg, NULL, &st, &fe) : -1;
    fim_context_free(ctx);
    fim_doc_free(branch);
    return rc < 0 ? cli_fail("bench-typing: prefetch: %s", ctx ? fe.msg : "out of memory") : 0;
}

/* One input event (keystroke or accept) of n bytes at the cursor, timed to the next ghost text. */
static int event(fim_engine *e, const char *key, fim_doc *doc, size_t *cursor, const char *text,
                 size_t n, const fim_config *cfg, accept_run *r, char **ghost)
{
    fim_stats st;
    double t0 = base_now_ms();
    fim_doc_replace(doc, *cursor, *cursor, text, n);
    *cursor += n;
    free(*ghost);
    *ghost = NULL;
    if (ask(e, key, doc, *cursor, cfg, ghost, &st)) return 1;
    run_add(r, base_now_ms() - t0, &st, text, n);
    return 0;
}

/* Accept `ghost` (replaced by the next ghost text): keystrokes or the accept command. */
static int accept_ghost(fim_engine *e, const char *key, fim_doc *doc, size_t *cursor,
                        const fim_config *cfg, accept_run *r, char **ghost)
{
    char *g = *ghost;
    size_t n = strlen(g);
    *ghost = NULL;
    int rc = r->prefetch ? prefetch_branch(e, key, doc, *cursor, g, cfg) : 0;
    for (size_t at = 0; !rc && at < n;) {
        size_t step = n - at;
        if (r->type_through) /* one character (its UTF-8 bytes) per keystroke */
            for (step = 1; at + step < n && ((unsigned char)g[at + step] & 0xc0) == 0x80;) step++;
        rc = event(e, key, doc, cursor, g + at, step, cfg, r, ghost);
        at += step;
    }
    free(g);
    return rc;
}

static int accept_mode(fim_engine *e, const typing_opts *o, const fim_doc *start, size_t from,
                       accept_run *r)
{
    fim_config cfg;
    fim_config_default(&cfg);
    cfg.max_tokens = (int)o->n_predict;
    cfg.type_through = r->type_through;
    cfg.prefetch = r->prefetch;
    if (!r->drafts) cfg.drafts = 0;
    fim_doc *doc = fim_doc_copy(start);
    size_t cursor = from;
    char *ghost = NULL;
    fim_stats st;
    fim_engine_close_doc(e, o->file); /* every mode starts cold, as the file opens */
    int rc = doc ? ask(e, o->file, doc, cursor, &cfg, &ghost, &st) : cli_fail("out of memory");
    long lines = 0;
    for (long c = 0; !rc && lines < o->lines && c < o->lines * CYCLES_PER_LINE; c++) {
        for (const char *p = ghost; *p; p++) lines += *p == '\n';
        if (*ghost)
            rc = accept_ghost(e, o->file, doc, &cursor, &cfg, r, &ghost);
        else /* nothing to accept: the user goes on to the next line */
            rc = event(e, o->file, doc, &cursor, "\n", 1, &cfg, r, &ghost), lines++;
    }
    free(ghost);
    fim_doc_free(doc);
    return rc;
}

static double pct(accept_run *r, double q)
{
    if (!r->n) return 0;
    qsort(r->lat, (size_t)r->n, sizeof *r->lat, cmp_double);
    return r->lat[(int)(q * (r->n - 1) + 0.5)];
}

static double per_model(const accept_run *r, long what)
{
    return r->model ? (double)what / (double)r->model : 0;
}

static void print_accept(const typing_opts *o, accept_run *runs, const int *modes, int n_modes)
{
    bool same = true;
    for (int k = 1; k < n_modes; k++)
        same &= runs[k].acc_len == runs[0].acc_len &&
                !memcmp(runs[k].accepted, runs[0].accepted, runs[0].acc_len);
    double off = pct(&runs[0], 0.5), last = pct(&runs[n_modes - 1], 0.5);
    const char *note = "prefetch computed untimed between showing and accepting (the user's "
                       "pause); latency from keystroke or accept to the next ghost text";
    if (o->json) {
        printf("{\"file\":\"%s\",\"line\":%ld,\"lines\":%ld,\"n_predict\":%ld,\"accept\":true,"
               "\"note\":\"%s\",\"modes\":[",
               o->file, o->line, o->lines, o->n_predict, note);
        for (int k = 0; k < n_modes; k++)
            printf("%s{\"mode\":\"%s\",\"events\":%d,\"p50_ms\":%.2f,\"p90_ms\":%.2f,"
                   "\"type_through_hits\":%ld,\"prefetch_hits\":%ld,\"model_completions\":%ld,"
                   "\"evaluated_per_model_completion\":%.1f,\"drafted\":%ld,\"accepted\":%ld,"
                   "\"steps_per_completion\":%.2f}",
                   k ? "," : "", accept_modes[modes[k]].name, runs[k].n, pct(&runs[k], 0.5),
                   pct(&runs[k], 0.9), runs[k].tt_hits, runs[k].pf_hits, runs[k].model,
                   per_model(&runs[k], runs[k].evaluated), runs[k].drafted, runs[k].drafts_taken,
                   per_model(&runs[k], runs[k].steps));
        printf("],\"p50_ratio\":%.4f,\"same_replay\":%s}\n", off > 0 ? last / off : 0,
               same ? "true" : "false");
        return;
    }
    printf("accepting ghost texts from line %ld of %s (%ld lines, %ld tokens each); %s\n",
           o->line + 1, o->file, o->lines, o->n_predict, note);
    printf("%-13s %7s %9s %9s %13s %9s %6s %10s %7s %13s\n", "features", "events", "p50 ms",
           "p90 ms", "type-through", "prefetch", "model", "evaluated", "steps", "drafts taken");
    for (int k = 0; k < n_modes; k++)
        printf("%-13s %7d %9.2f %9.2f %13ld %9ld %6ld %10.1f %7.2f %6ld/%-6ld\n",
               accept_modes[modes[k]].name, runs[k].n, pct(&runs[k], 0.5), pct(&runs[k], 0.9),
               runs[k].tt_hits, runs[k].pf_hits, runs[k].model,
               per_model(&runs[k], runs[k].evaluated), per_model(&runs[k], runs[k].steps),
               runs[k].drafts_taken, runs[k].drafted);
    printf("(per answer the model computed: evaluated prompt tokens, model steps generating)\n");
    printf("p50 %s / off: %.4f; the same text accepted in every row: %s\n",
           accept_modes[modes[n_modes - 1]].name, off > 0 ? last / off : 0, same ? "yes" : "NO");
}

static int accept_replay(fim_engine *e, const typing_opts *o, const char *orig, size_t len,
                         size_t from, size_t to)
{
    fim_doc *start = fim_doc_new(o->file, NULL, orig, len);
    fim_doc_replace(start, from, to, "\n", 1); /* a blank line where the lines were */
    accept_run runs[MODES];
    int modes[MODES], n_modes = 0, rc = 0;
    memset(runs, 0, sizeof runs);
    int allowed = (o->type_through ? F_TYPE_THROUGH : 0) | (o->prefetch ? F_PREFETCH : 0) |
                  (o->drafts ? F_DRAFTS : 0);
    /* the rows the switches allow: off, each feature alone, then all the allowed ones together */
    for (int m = 0; m < MODES; m++) {
        int f = m == MODES - 1 ? allowed : accept_modes[m].features;
        bool several = f & (f - 1);
        if ((f & ~allowed) || (m == MODES - 1 && !several)) continue;
        runs[n_modes].type_through = f & F_TYPE_THROUGH, runs[n_modes].prefetch = f & F_PREFETCH;
        runs[n_modes].drafts = f & F_DRAFTS;
        modes[n_modes] = m;
        if (!rc) rc = accept_mode(e, o, start, from, &runs[n_modes]);
        n_modes++;
    }
    if (!rc) print_accept(o, runs, modes, n_modes);
    for (int k = 0; k < n_modes; k++) free(runs[k].lat), free(runs[k].accepted);
    fim_doc_free(start);
    return rc;
}

/* ---- options ---- */

static int parse_opts(int argc, char **argv, typing_opts *o, cli_backend *be)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool *flag = !strcmp(a, "--json") ? &o->json : !strcmp(a, "--accept") ? &o->accept : NULL;
        bool *off = !strcmp(a, "--no-type-through") ? &o->type_through
                    : !strcmp(a, "--no-prefetch")   ? &o->prefetch
                    : !strcmp(a, "--no-drafts")     ? &o->drafts
                                                    : NULL;
        if (flag || off) {
            if (flag) *flag = true;
            if (off) *off = false;
            continue;
        }
        int bo = cli_backend_option(be, argc, argv, &i);
        if (bo < 0) return 1;
        if (bo) continue;
        if (a[0] != '-') {
            o->file = a;
            continue;
        }
        if (!v) return cli_fail("bench-typing: %s needs a value (or is unknown)", a);
        i++;
        long *dst = !strcmp(a, "--line")        ? &o->line
                    : !strcmp(a, "--lines")     ? &o->lines
                    : !strcmp(a, "--n-predict") ? &o->n_predict
                    : !strcmp(a, "-t")          ? &o->threads
                                                : NULL;
        if (!strcmp(a, "-m"))
            o->path = v;
        else if (!dst || cli_parse_int(v, 0, 1 << 20, dst))
            return cli_fail("bench-typing: bad option %s %s", a, v);
    }
    return 0;
}

int cmd_bench_typing(int argc, char **argv)
{
    typing_opts o = {.line = -1,
                     .lines = 3,
                     .n_predict = 16,
                     .type_through = true,
                     .prefetch = true,
                     .drafts = true};
    cli_backend be;
    memset(&be, 0, sizeof be);
    if (parse_opts(argc, argv, &o, &be)) return 1;
    o.path = cli_model_or_bundled(o.path, "bench-typing");
    if (!o.path || !o.file || o.line < 0 || o.lines < 1 || o.n_predict < 1)
        return cli_fail("bench-typing: usage: fimd bench-typing -m MODEL FILE --line L [--lines 3] "
                        "[--n-predict 16] [-t N] [--accept] [--no-type-through] [--no-prefetch] "
                        "[--no-drafts] [--json]");
    char *orig;
    size_t len;
    if (cli_read_file(o.file, &orig, &len)) return 1;
    size_t from = line_offset(orig, len, o.line), to = line_offset(orig, len, o.line + o.lines);
    if (from >= len) {
        free(orig);
        return cli_fail("bench-typing: %s has no line %ld", o.file, o.line + 1);
    }
    fim_err fe = {{0}};
    cli_backend_remote(&be);
    fim_backend_spec spec = cli_backend_spec(&be, o.path, (int)o.threads);
    fim_engine *e = fim_engine_open(&spec, &fe);
    if (!e) {
        free(orig);
        return cli_fail("%s", fe.msg);
    }
    fim_config cfg;
    fim_config_default(&cfg);
    cfg.max_tokens = (int)o.n_predict;
    cfg.type_through = o.type_through;
    cfg.prefetch = o.prefetch; /* typing the file's text never accepts: nothing is prefetched */
    if (!o.drafts) cfg.drafts = 0;
    int rc = o.accept ? accept_replay(e, &o, orig, len, from, to)
                      : typing_replay(e, &o, &cfg, orig, len, from, to);
    free(orig);
    fim_engine_free(e);
    return rc;
}
