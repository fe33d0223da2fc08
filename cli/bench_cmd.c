/* cli/bench_cmd.c — `fimd bench`: prompt and decode speed of the engine on a model, the achieved
 * weight-read bandwidth next to the machine's measured read bandwidth, and peak RSS. Timings are
 * noisy here, so these are figures to compare side by side, never test assertions. */
#define _GNU_SOURCE
#include "cli/cli.h"
#include "base/base.h"
#include "model/model.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

typedef struct bw_arg {
    const uint64_t *p;
    size_t n;
    uint64_t sum;
} bw_arg;

static void *bw_read(void *arg)
{
    bw_arg *a = arg;
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = 0; i + 4 <= a->n; i += 4)
        s0 += a->p[i], s1 += a->p[i + 1], s2 += a->p[i + 2], s3 += a->p[i + 3];
    a->sum = s0 + s1 + s2 + s3;
    return NULL;
}

/* Read bandwidth of this machine with `threads` threads over a 1 GiB buffer (best of 3). */
static double read_bandwidth(int threads)
{
    size_t bytes = (size_t)1 << 30, n = bytes / 8;
    uint64_t *buf = malloc(bytes);
    if (!buf) return 0;
    for (size_t i = 0; i < n; i++) buf[i] = i;
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        pthread_t th[64];
        bw_arg args[64];
        int t = threads < 64 ? threads : 64;
        double t0 = (base_now_ms() / 1e3);
        for (int i = 0; i < t; i++) {
            args[i] = (bw_arg){buf + n / (size_t)t * (size_t)i, n / (size_t)t, 0};
            pthread_create(&th[i], NULL, bw_read, &args[i]);
        }
        uint64_t sink = 0;
        for (int i = 0; i < t; i++) pthread_join(th[i], NULL), sink += args[i].sum;
        double gbps = (double)bytes / ((base_now_ms() / 1e3) - t0) / 1e9;
        if (gbps > best && sink != 1) best = gbps;
    }
    free(buf);
    return best;
}

/* Drafts per evaluation in the draft oracle: measured best on a Lite-4L Q4_K_M with 2 threads. */
enum { DRAFT_K = 15, ORACLE_REPS = 3 };

static int32_t argmax(const float *l, int n)
{
    int32_t best = 0;
    for (int v = 1; v < n; v++)
        if (l[v] > l[best]) best = v;
    return best;
}

/* n greedy steps from the current logits; returns the seconds taken (sets *rc on error). The
 * tokens chosen go to toks[0..n] when it is not NULL (toks[n]: the choice after the last step). */
static double decode_run(model *m, model_cache *c, float *logits, long n, int32_t *toks, int *rc,
                         long *experts)
{
    const model_hparams *h = model_get_hparams(m);
    model_err err = {{0}};
    double t0 = base_now_ms() / 1e3;
    for (long i = 0; !*rc && i < n; i++) {
        int32_t tok = argmax(logits, h->n_vocab);
        if (toks) toks[i] = tok;
        if (model_eval(m, c, &tok, 1, logits, MODEL_LOGITS_LAST, NULL, &err))
            *rc = cli_fail("bench: %s", err.msg);
        if (experts) *experts += model_last_experts(m);
    }
    if (toks && !*rc) toks[n] = argmax(logits, h->n_vocab);
    return base_now_ms() / 1e3 - t0;
}

/* The draft oracle: the n tokens toks[0..n] of a greedy run decoded again from the same cache
 * state with the run's own tokens as drafts, so every draft is accepted: each evaluation takes
 * the accepted token and k drafts with the logits of all, and each row's greedy choice must be the
 * next token of the run. What it measures is the cost of verification, not the drafts' quality.
 * Returns the seconds taken; *same is false when any choice differs. */
static double draft_run(model *m, model_cache *c, const int32_t *toks, long n, int k, bool *same,
                        int *rc, long *experts)
{
    const model_hparams *h = model_get_hparams(m);
    float *rows = malloc(sizeof(float) * (size_t)h->n_vocab * (size_t)(k + 1));
    model_err err = {{0}};
    *same = rows != NULL;
    double t0 = base_now_ms() / 1e3;
    for (long i = 0; rows && !*rc && i < n; i += k + 1) {
        int b = (int)(n - i < k + 1 ? n - i : k + 1);
        if (model_eval(m, c, toks + i, b, rows, MODEL_LOGITS_ALL, NULL, &err))
            *rc = cli_fail("bench: %s", err.msg);
        *experts += model_last_experts(m);
        for (int j = 0; !*rc && j < b; j++)
            *same &= argmax(rows + (size_t)j * (size_t)h->n_vocab, h->n_vocab) == toks[i + j + 1];
    }
    double s = base_now_ms() / 1e3 - t0;
    free(rows);
    return s;
}

typedef struct oracle {
    double plain_s, draft_s;           /* the best of the runs */
    bool same;                         /* every choice of the oracle was the plain run's */
    long plain_experts, draft_experts; /* routed experts run, summed over the last runs' steps */
} oracle;

/* Plain decoding after the prompt (whose logits are at `logits`) and the draft oracle on its
 * tokens, alternated ORACLE_REPS times from the same cache state: the best time of each, as the
 * load of the machine varies between runs. */
static void oracle_compare(model *m, model_cache *c, const float *logits, int p, long n, int k,
                           oracle *o, int *rc)
{
    size_t nv = (size_t)model_get_hparams(m)->n_vocab;
    float *work = malloc(sizeof(float) * nv);
    int32_t *toks = malloc(sizeof(int32_t) * (size_t)(n + 1));
    memset(o, 0, sizeof *o);
    o->same = work && toks;
    for (int r = 0; o->same && !*rc && r < ORACLE_REPS; r++) {
        memcpy(work, logits, sizeof(float) * nv);
        model_cache_truncate(c, p);
        o->plain_experts = o->draft_experts = 0;
        double t = decode_run(m, c, work, n, toks, rc, &o->plain_experts), td = 0;
        bool ok = false;
        model_cache_truncate(c, p);
        if (!*rc) td = draft_run(m, c, toks, n, k, &ok, rc, &o->draft_experts);
        o->same &= ok;
        if (!r || t < o->plain_s) o->plain_s = t;
        if (!r || td < o->draft_s) o->draft_s = td;
    }
    free(work);
    free(toks);
}

int cmd_bench(int argc, char **argv)
{
    const char *path = NULL;
    long p = 512, n = 64, threads = 0, draft_k = DRAFT_K;
    bool json = false, want_oracle = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--json") || !strcmp(a, "--draft-oracle")) {
            *(a[2] == 'j' ? &json : &want_oracle) = true;
            continue;
        }
        if (!v) return cli_fail("bench: %s needs a value (or is unknown)", a);
        i++;
        if (!strcmp(a, "-m"))
            path = v;
        else if (!strcmp(a, "-p")) {
            if (cli_parse_int(v, 1, 1 << 16, &p)) return cli_fail("bench: -p needs 1..65536");
        } else if (!strcmp(a, "-n")) {
            if (cli_parse_int(v, 0, 1 << 16, &n)) return cli_fail("bench: -n needs 0..65536");
        } else if (!strcmp(a, "-t")) {
            if (cli_parse_int(v, 0, 1024, &threads))
                return cli_fail("bench: -t needs a thread count");
        } else if (!strcmp(a, "--draft-k")) {
            if (cli_parse_int(v, 1, 64, &draft_k)) return cli_fail("bench: --draft-k needs 1..64");
        } else {
            return cli_fail("bench: unknown option '%s'", a);
        }
    }
    if (!path)
        return cli_fail("bench: usage: fimd bench -m MODEL [-p 512] [-n 64] [-t N] "
                        "[--draft-oracle [--draft-k K]] [--json]");
    model_err err = {{0}};
    double t0 = (base_now_ms() / 1e3);
    model *m = model_load_opts(path, cli_model_opts(), &err);
    if (!m) return cli_fail("%s", err.msg);
    double load_s = (base_now_ms() / 1e3) - t0;
    model_set_threads(m, (int)threads);
    const model_hparams *h = model_get_hparams(m);
    model_cache *c = model_cache_new(m, &err);
    float *logits = malloc(sizeof(float) * (size_t)h->n_vocab);
    int32_t *prompt = malloc(sizeof(int32_t) * (size_t)p);
    uint64_t s = 12345;
    int range =
        h->n_vocab > 1000 ? h->n_vocab - 1000 : h->n_vocab; /* ordinary tokens, not specials */
    for (long i = 0; i < p; i++)
        s = s * 6364136223846793005ULL + 1442695040888963407ULL,
        prompt[i] = (int32_t)((s >> 33) % (uint64_t)range);
    int rc = 0;
    /* warm-up with the full batch, as llama-bench does: threads, scratch and pages are in place */
    if (model_eval(m, c, prompt, (int)p, logits, MODEL_LOGITS_LAST, NULL, &err))
        rc = cli_fail("bench: %s", err.msg);
    model_cache_truncate(c, 0);
    double tp = (base_now_ms() / 1e3);
    if (!rc && model_eval(m, c, prompt, (int)p, logits, MODEL_LOGITS_LAST, NULL, &err))
        rc = cli_fail("bench: %s", err.msg);
    tp = (base_now_ms() / 1e3) - tp;
    /* decode from an empty cache as llama-bench's tg test does, so the figure compares with
     * llama.cpp's; then after the prompt, which is what a completion does */
    double t0d = 0;
    for (int warm = 1; warm >= 0; warm--) { /* a warm-up run first, as llama-bench does */
        model_cache_truncate(c, 0);
        logits[0] = 1, logits[1] = 0; /* start from token 0 */
        for (int v = 2; v < h->n_vocab; v++) logits[v] = 0;
        t0d = decode_run(m, c, logits, warm ? (n < 8 ? n : 8) : n, NULL, &rc, NULL);
    }
    model_cache_truncate(c, 0);
    if (!rc && model_eval(m, c, prompt, (int)p, logits, MODEL_LOGITS_LAST, NULL, &err))
        rc = cli_fail("bench: %s", err.msg);
    double td;
    oracle o = {0};
    if (want_oracle && !rc)
        oracle_compare(m, c, logits, (int)p, n, (int)draft_k, &o, &rc), td = o.plain_s;
    else
        td = decode_run(m, c, logits, n, NULL, &rc, NULL);
    double tdd = o.draft_s;
    bool same = o.same;
    /* routed experts per MoE layer per evaluation: one token's, and a verification batch's */
    int moe_layers = h->n_layer - h->n_dense > 0 ? h->n_layer - h->n_dense : 1;
    long batches = (n + draft_k) / (draft_k + 1);
    double ex_plain = n ? (double)o.plain_experts / (double)(n * moe_layers) : 0,
           ex_draft = batches ? (double)o.draft_experts / (double)(batches * moe_layers) : 0;
    if (!rc) {
        double prompt_tps = (double)p / tp, decode_tps = n ? (double)n / t0d : 0,
               after_tps = n ? (double)n / td : 0;
        double bytes = (double)model_weight_bytes_per_token(m), gbps = decode_tps * bytes / 1e9;
        struct rusage ru; /* before the bandwidth probe, whose buffer would count */
        getrusage(RUSAGE_SELF, &ru);
        double rss_mb = (double)ru.ru_maxrss / 1024.0; /* MiB, as the file size below */
        struct stat st;
        double file_mb = stat(path, &st) ? 0 : (double)st.st_size / (1024.0 * 1024.0);
        double bw = read_bandwidth(model_get_threads(m));
        if (json) {
            printf("{\"model\":\"%s\",\"threads\":%d,\"prompt_tokens\":%ld,\"decode_tokens\":%ld,"
                   "\"prompt_tps\":%.2f,"
                   "\"decode_tps\":%.2f,\"decode_after_prompt_tps\":%.2f,\"bytes_per_token\":%.0f,"
                   "\"gbps\":%.2f,\"bandwidth_gbps\":%.2f,"
                   "\"roofline\":%.3f,\"peak_rss_mb\":%.1f,\"file_mb\":%.1f,\"load_s\":%.3f",
                   path, model_get_threads(m), p, n, prompt_tps, decode_tps, after_tps, bytes, gbps,
                   bw, bw > 0 ? gbps / bw : 0, rss_mb, file_mb, load_s);
            if (want_oracle)
                printf(",\"draft_k\":%ld,\"draft_decode_tps\":%.2f,\"draft_speedup\":%.3f,"
                       "\"draft_tokens_identical\":%s,\"experts_per_step\":%.2f,"
                       "\"draft_experts_per_step\":%.2f",
                       draft_k, n ? (double)n / tdd : 0, tdd > 0 ? td / tdd : 0,
                       same ? "true" : "false", ex_plain, ex_draft);
            printf("}\n");
        } else {
            printf("model %s: %d layers, vocab %d, %d threads\n", path, h->n_layer, h->n_vocab,
                   model_get_threads(m));
            printf("prompt  %5ld tokens: %8.1f tok/s (%.3f s)\n", p, prompt_tps, tp);
            printf("decode  %5ld tokens: %8.1f tok/s (%.2f ms/token) from an empty cache, as "
                   "llama-bench's tg\n",
                   n, decode_tps, n ? t0d * 1e3 / (double)n : 0);
            printf("decode  %5ld tokens: %8.1f tok/s (%.2f ms/token) after the %ld-token prompt\n",
                   n, after_tps, n ? td * 1e3 / (double)n : 0, p);
            printf("weights read per token: %.1f MB -> %.1f GB/s achieved; machine reads %.1f GB/s "
                   "(%.0f%% of the roofline)\n",
                   bytes / 1e6, gbps, bw, bw > 0 ? 100 * gbps / bw : 0);
            printf("peak RSS %.0f MiB (the file is %.0f MiB: %+.1f %%), load %.2f s, weights %s\n",
                   rss_mb, file_mb, file_mb > 0 ? 100 * (rss_mb / file_mb - 1) : 0, load_s,
                   model_weights_locked(m) ? "locked in memory"
                                           : "not locked (no mlock privilege)");
            if (want_oracle)
                printf(
                    "decode  %5ld tokens: %8.1f tok/s with the first run's tokens as drafts, %ld "
                    "per evaluation (%.2fx after the prompt; tokens %s); routed experts per "
                    "MoE layer: %.1f per token, %.1f per batch\n",
                    n, n ? (double)n / tdd : 0, draft_k, tdd > 0 ? td / tdd : 0,
                    same ? "identical" : "DIFFER", ex_plain, ex_draft);
        }
    }
    free(prompt);
    free(logits);
    model_cache_free(c);
    model_free(m);
    return rc;
}
