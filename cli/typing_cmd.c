/* cli/typing_cmd.c — `fimd bench-typing`: replays typing K lines of a file one character at a time
 * (the rest of the file stays below as suffix) and asks for a completion at every keystroke as an
 * editor would, through the same fim path as the server. Prints latency percentiles, tokens
 * evaluated per request (within a line, where the cache should leave only the cursor line's tokens)
 * and the share of prompt tokens reused from the cache. */
#define _GNU_SOURCE
#include "cli/cli.h"
#include "base/base.h"
#include "fim/fim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

int cmd_bench_typing(int argc, char **argv)
{
    const char *path = NULL, *file = NULL;
    long line = -1, lines = 3, n_predict = 16, threads = 0;
    bool json = false, no_drafts = false;
    cli_backend be;
    memset(&be, 0, sizeof be);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--json") || !strcmp(a, "--no-drafts")) {
            *(a[2] == 'j' ? &json : &no_drafts) = true;
            continue;
        }
        int bo = cli_backend_option(&be, argc, argv, &i);
        if (bo < 0) return 1;
        if (bo) continue;
        if (a[0] != '-') {
            file = a;
            continue;
        }
        if (!v) return cli_fail("bench-typing: %s needs a value (or is unknown)", a);
        i++;
        long *dst = !strcmp(a, "--line")        ? &line
                    : !strcmp(a, "--lines")     ? &lines
                    : !strcmp(a, "--n-predict") ? &n_predict
                    : !strcmp(a, "-t")          ? &threads
                                                : NULL;
        if (!strcmp(a, "-m"))
            path = v;
        else if (!dst || cli_parse_int(v, 0, 1 << 20, dst))
            return cli_fail("bench-typing: bad option %s %s", a, v);
    }
    path = cli_model_or_bundled(path, "bench-typing");
    if (!path || !file || line < 0 || lines < 1 || n_predict < 1)
        return cli_fail("bench-typing: usage: fimd bench-typing -m MODEL FILE --line L [--lines 3] "
                        "[--n-predict 16] [-t N] [--no-drafts] [--json]");
    char *orig;
    size_t len;
    if (cli_read_file(file, &orig, &len)) return 1;
    size_t from = line_offset(orig, len, line), to = line_offset(orig, len, line + lines);
    if (from >= len) {
        free(orig);
        return cli_fail("bench-typing: %s has no line %ld", file, line + 1);
    }
    fim_err fe = {{0}};
    cli_backend_remote(&be);
    fim_backend_spec spec = cli_backend_spec(&be, path, (int)threads);
    fim_engine *e = fim_engine_open(&spec, &fe);
    if (!e) {
        free(orig);
        return cli_fail("%s", fe.msg);
    }
    fim_config cfg;
    fim_config_default(&cfg);
    cfg.max_tokens = (int)n_predict;
    if (no_drafts) cfg.drafts = 0;
    /* the document without the lines to type; they are typed back at the cursor, each keystroke an
     * edit of the document (its syntax tree reparsed incrementally) as an editor's didChange */
    fim_doc *doc = fim_doc_new(file, NULL, orig, len);
    fim_doc_replace(doc, from, to, "", 0);
    size_t cursor = from, typed = to - from;
    double *lat = malloc(sizeof(double) * (typed + 1));
    int *cached = malloc(sizeof(int) * (typed + 1)), *prompts = malloc(sizeof(int) * (typed + 1));
    bool server_told = false;
    long eval_sum = 0, eval_in_line = 0, n_in_line = 0, eval_max_in_line = 0, reused = 0,
         prompt = 0, drafted = 0, accepted = 0, steps = 0;
    int n = 0, rc = 0;
    fim_stats st;
    char *out;
    /* one request to fill the cache, as an editor does when the file opens (not counted) */
    fim_context *ctx = fim_context_new(doc, cursor, NULL, 0);
    fim_request first = {.doc = file, .ctx = ctx};
    if (fim_complete(e, &first, &cfg, NULL, &out, &st, &fe))
        rc = cli_fail("bench-typing: %s", fe.msg);
    fim_context_free(ctx);
    free(out);
    for (size_t k = 0; !rc && k < typed; k++) {
        char ch = orig[from + k];
        double t0 = base_now_ms();
        fim_doc_replace(doc, cursor, cursor, &ch, 1);
        cursor++;
        ctx = fim_context_new(doc, cursor, NULL, 0);
        fim_request r = {.doc = file, .ctx = ctx};
        int fr = fim_complete(e, &r, &cfg, NULL, &out, &st, &fe);
        fim_context_free(ctx);
        if (fr) {
            rc = cli_fail("bench-typing: %s", fe.msg);
            break;
        }
        cached[n] = st.server_cached;
        prompts[n] = st.prompt_tokens;
        server_told |= st.server_cached >= 0;
        lat[n++] = base_now_ms() - t0;
        free(out);
        eval_sum += st.evaluated;
        reused += st.reused;
        drafted += st.drafted, accepted += st.accepted, steps += st.steps;
        prompt += st.prompt_tokens;
        if (ch != '\n' && k > 0 && orig[from + k - 1] != '\n') { /* a keystroke within a line */
            eval_in_line += st.evaluated;
            n_in_line++;
            if (st.evaluated > eval_max_in_line) eval_max_in_line = st.evaluated;
        }
    }
    if (!rc && n) {
        qsort(lat, (size_t)n, sizeof *lat, cmp_double);
        double p50 = lat[n / 2], p95 = lat[(int)(0.95 * (n - 1))];
        double per = (double)eval_sum / n,
               in_line = n_in_line ? (double)eval_in_line / (double)n_in_line : 0;
        double ratio = prompt ? (double)reused / (double)prompt : 0;
        if (json) {
            printf("{\"file\":\"%s\",\"line\":%ld,\"lines\":%ld,\"n_predict\":%ld,\"requests\":%d,"
                   "\"p50_ms\":%.2f,"
                   "\"p95_ms\":%.2f,\"evaluated_per_request\":%.2f,\"evaluated_per_keystroke_in_"
                   "line\":%.2f,"
                   "\"max_evaluated_in_line\":%ld,\"reuse_ratio\":%.4f,\"drafted\":%ld,"
                   "\"accepted\":%ld,\"steps_per_completion\":%.2f",
                   file, line, lines, n_predict, n, p50, p95, per, in_line, eval_max_in_line, ratio,
                   drafted, accepted, (double)steps / n);
            if (server_told) { /* per request, from the serving engine's own answer */
                printf(",\"server_cached\":[");
                for (int k = 0; k < n; k++) printf("%s%d", k ? "," : "", cached[k]);
                printf("],\"prompt_tokens\":[");
                for (int k = 0; k < n; k++) printf("%s%d", k ? "," : "", prompts[k]);
                printf("]");
            }
            printf("}\n");
        } else {
            printf(
                "typed %ld lines of %s from line %ld: %d requests of %ld tokens\n"
                "latency p50 %.1f ms, p95 %.1f ms\n"
                "tokens evaluated per request %.2f (within a line: %.2f on average, %ld at most)\n"
                "reuse ratio %.4f (prompt tokens kept from the cache)\n"
                "model steps per completion %.2f; drafts %ld, accepted %ld\n",
                lines, file, line + 1, n, n_predict, p50, p95, per, in_line, eval_max_in_line,
                ratio, (double)steps / n, drafted, accepted);
            if (server_told) {
                printf("server-side cached prompt tokens per request (the server's own figure / "
                       "prompt tokens):\n");
                for (int k = 0; k < n; k++)
                    printf("%s%d/%d", k ? " " : "  ", cached[k], prompts[k]);
                printf("\n");
            }
        }
    }
    free(cached);
    free(prompts);
    free(lat);
    fim_doc_free(doc);
    free(orig);
    fim_engine_free(e);
    return rc;
}
