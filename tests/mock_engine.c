/* tests/mock_engine.c — a stand-in LLM serving engine for the remote-backend tests
 * (tests/remote.sh): local HTTP/1.1 in the wire formats of the llama.cpp server, an
 * OpenAI-compatible server (vLLM, SGLang) and Ollama, its tokens decoded by fimd's own engine. */

/* No serving engine can be installed where the tests run, so this program answers as one would,
 * and its completions are exactly what fimd's in-process greedy decoding gives for the same prompt
 * ids: a test knows the expected text.
 *
 *   --api llamacpp  GET /health, POST /tokenize, POST /completion (llama.cpp's own format, with
 *                   n_probs), POST /v1/completions (the OpenAI format plus "timings").
 *   --api openai    GET /health, GET /v1/models, POST /tokenize (vLLM's), POST /v1/completions
 *                   (logprobs, return_tokens_as_token_ids, stream_options.include_usage, SGLang's
 *                   "rid"), POST /abort_request (SGLang's).
 *   --api ollama    GET /, GET /api/version, POST /api/generate (raw prompts, NDJSON stream).
 *
 * Decoding: one latent cache for all requests, kept on the longest common prefix of the new prompt
 * with the tokens it holds (reported as the server's cached prompt tokens); the rest is evaluated
 * in chunks of 128, then greedy argmax (lowest id on ties) until EOS or a control token (neither is
 * emitted) or the token limit, as fim/engine.c does. temperature, top_p, seeds, stop strings and
 * the like are accepted and ignored: decoding is always greedy. "Until EOS" stops after 512 tokens.
 *
 * Limits: one connection at a time (accept, read one request, answer, close: always "Connection:
 * close", and a stream ends with the connection); bodies need Content-Length (no chunked uploads);
 * a prompt is a string or one array of token ids (no batches), and there is one choice. Errors are
 * {"error":{"code":N,"message":"...","type":"..."}} for every API. A client that half-closes its
 * side after the request counts as gone. --fail misbehaves on purpose and --log records each
 * request for the test to check (see usage()). */
#define _GNU_SOURCE
#include "lsp/lsp_internal.h"
#include "model/model.h"

#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAX_HEAD (64 * 1024)        /* request line and headers */
#define MAX_BODY (16 * 1024 * 1024) /* request body */
#define EVAL_CHUNK 128              /* prompt tokens per model_eval, as fim/engine.c */
#define MAX_PREDICT 512             /* "until EOS" (and any larger limit) stops here */
#define MAX_PROBS 50                /* top alternatives per token at most */
#define OLLAMA_CTX 2048             /* Ollama's default num_ctx: longer prompts lose their head */
#define TOKEN_CAP 256               /* bytes of one token kept */

#define RAW(w, s) lsp__jw_raw((w), (s), strlen(s)) /* a string as it is */

enum api { API_LLAMACPP, API_OPENAI, API_OLLAMA, API_COUNT };
enum fail {
    FAIL_NONE,
    FAIL_HTTP500,
    FAIL_HTTP400,
    FAIL_MALFORMED,
    FAIL_TRUNCATE,
    FAIL_UTF8,
    FAIL_VOCAB,
    FAIL_COUNT
};

static const char *const api_names[API_COUNT] = {"llamacpp", "openai", "ollama"};
static const char *const fail_names[FAIL_COUNT] = {"none",     "http500",    "http400", "malformed",
                                                   "truncate", "utf8-error", "vocab"};

static volatile sig_atomic_t stop_flag;

typedef struct server {
    enum api api;
    enum fail fail;
    int token_delay_ms, first_delay_ms;
    const char *api_key;
    FILE *log;
    model *m;
    const model_vocab *v;
    int n_vocab, n_ctx;
    model_cache *cache;
    int32_t *held; /* the ids the cache holds (n_ctx at most) */
    size_t n_held;
    float *logits;
    unsigned long n_cmpl; /* OpenAI completion ids */
} server;

typedef struct request {
    char method[16], path[1024], auth[1024];
    bool has_auth, expect_continue;
    long content_length; /* -1 when absent */
    char *body;
    size_t len;
} request;

/* One exchange: the connection, the request, and what its log line says. */
typedef struct exch {
    server *s;
    int fd;
    bool gone; /* the client closed, or a send failed */
    request rq;
    jdoc d; /* the body of a POST */
    int prompt, reused, evaluated, sent, status;
    const char *end;
    char rid[128], num_ctx[32];
} exch;

/* ---- small helpers ---- */

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static void sleep_ms(int ms)
{
    if (ms <= 0) return;
    struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&t, &t) && errno == EINTR && !stop_flag) continue;
}

static bool jbool_or(const jdoc *d, int obj, const char *key, bool dflt)
{
    bool b;
    return lsp__jbool(d, lsp__jget(d, obj, key), &b) ? b : dflt;
}

static long jint_or(const jdoc *d, int obj, const char *key, long dflt)
{
    long v;
    return lsp__jint(d, lsp__jget(d, obj, key), &v) ? v : dflt;
}

/* A token limit as the engines take it: negative means until EOS; MAX_PREDICT at most. */
static int predict_limit(long n)
{
    return n < 0 || n > MAX_PREDICT ? MAX_PREDICT : (int)n;
}

static void write_ids(jw *w, const int32_t *ids, size_t n)
{
    RAW(w, "[");
    for (size_t i = 0; i < n; i++) lsp__jw_fmt(w, "%s%d", i ? "," : "", ids[i]);
    RAW(w, "]");
}

/* ---- HTTP ---- */

static int send_all(exch *x, const char *p, size_t n)
{
    while (n > 0 && !x->gone) {
        ssize_t k = send(x->fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            x->gone = true;
            break;
        }
        p += k;
        n -= (size_t)k;
    }
    return x->gone ? -1 : 0;
}

static int send_jw(exch *x, jw *w)
{
    int r = send_all(x, w->p ? w->p : "", w->n);
    lsp__jw_free(w);
    return r;
}

static const char *status_text(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    default:
        return "Internal Server Error";
    }
}

/* The status line and headers; length -1 for a body that ends with the connection (a stream). */
static void send_head(exch *x, int status, const char *type, long length)
{
    char h[512];
    int n = snprintf(h, sizeof h, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n", status,
                     status_text(status), type);
    if (length >= 0)
        n += snprintf(h + n, sizeof h - (size_t)n, "Content-Length: %ld\r\n", length);
    else
        n += snprintf(h + n, sizeof h - (size_t)n, "Cache-Control: no-cache\r\n");
    n += snprintf(h + n, sizeof h - (size_t)n, "Connection: close\r\n\r\n");
    x->status = status;
    send_all(x, h, (size_t)n);
}

static void reply(exch *x, int status, const char *type, const char *body, size_t n)
{
    send_head(x, status, type, (long)n);
    send_all(x, body, n);
}

static void reply_json(exch *x, int status, jw *w)
{
    reply(x, status, "application/json", w->p ? w->p : "", w->n);
    lsp__jw_free(w);
}

static const char *error_type(int status)
{
    switch (status) {
    case 400:
        return "invalid_request_error";
    case 401:
        return "authentication_error";
    case 404:
        return "not_found_error";
    case 405:
        return "invalid_request_error";
    default:
        return "server_error";
    }
}

static void error_json(jw *w, int status, const char *msg)
{
    lsp__jw_fmt(w, "{\"error\":{\"code\":%d,\"message\":", status);
    lsp__jw_str(w, msg, strlen(msg));
    lsp__jw_fmt(w, ",\"type\":\"%s\"}}", error_type(status));
}

static void reply_error(exch *x, int status, const char *msg)
{
    jw w = {0};
    error_json(&w, status, msg);
    reply_json(x, status, &w);
    x->end = "error";
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t')) s[--n] = 0;
    return s;
}

/* One header line ("Name: value", NUL-terminated): 0, or -1 with why. */
static int parse_header(request *rq, char *line, char *why, size_t cap)
{
    char *colon = strchr(line, ':');
    if (!colon || colon == line) return snprintf(why, cap, "malformed header line"), -1;
    *colon = 0;
    char *v = trim(colon + 1);
    if (!strcasecmp(line, "content-length")) {
        char *end;
        errno = 0;
        unsigned long n = strtoul(v, &end, 10);
        if (!*v || *v < '0' || *v > '9' || *end || errno || n > MAX_BODY)
            return snprintf(why, cap, "bad Content-Length '%s'", v), -1;
        rq->content_length = (long)n;
    } else if (!strcasecmp(line, "transfer-encoding")) {
        return snprintf(why, cap, "Transfer-Encoding is not supported: send Content-Length"), -1;
    } else if (!strcasecmp(line, "authorization")) {
        if (strlen(v) >= sizeof rq->auth) return snprintf(why, cap, "Authorization too long"), -1;
        strcpy(rq->auth, v);
        rq->has_auth = true;
    } else if (!strcasecmp(line, "expect")) {
        rq->expect_continue = !strcasecmp(v, "100-continue");
    }
    return 0;
}

/* The request line and headers, each line ending in CRLF, NUL-terminated: 0, or -1 with why. */
static int parse_head(request *rq, char *p, char *why, size_t cap)
{
    char *eol = strstr(p, "\r\n");
    if (!eol) return snprintf(why, cap, "malformed request"), -1;
    *eol = 0;
    char *sp1 = strchr(p, ' '), *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (!sp2 || sp1 == p || sp2 == sp1 + 1 || strncmp(sp2 + 1, "HTTP/1.", 7) ||
        (size_t)(sp1 - p) >= sizeof rq->method || (size_t)(sp2 - sp1 - 1) >= sizeof rq->path)
        return snprintf(why, cap, "malformed request line"), -1;
    memcpy(rq->method, p, (size_t)(sp1 - p));
    memcpy(rq->path, sp1 + 1, (size_t)(sp2 - sp1 - 1));
    rq->path[strcspn(rq->path, "?#")] = 0;
    for (p = eol + 2; *p; p = eol + 2) {
        eol = strstr(p, "\r\n");
        if (!eol) break;
        *eol = 0;
        if (parse_header(rq, p, why, cap)) return -1;
    }
    if (!strcmp(rq->method, "POST") && rq->content_length < 0)
        return snprintf(why, cap, "a POST needs Content-Length"), -1;
    return 0;
}

static int recv_some(exch *x, char *buf, size_t cap)
{
    for (;;) {
        ssize_t k = recv(x->fd, buf, cap, 0);
        if (k < 0 && errno == EINTR && !stop_flag) continue;
        return k > 0 ? (int)k : -1;
    }
}

/* Read one request: 0; 400 with why for a malformed one; -1 when the client went away. */
static int read_request(exch *x, char *why, size_t cap)
{
    request *rq = &x->rq;
    rq->content_length = -1;
    char *buf = malloc(MAX_HEAD + 1);
    if (!buf) return -1;
    size_t n = 0;
    char *eoh = NULL;
    while (!eoh) {
        int k = n < MAX_HEAD ? recv_some(x, buf + n, MAX_HEAD - n) : 0;
        if (k == 0) snprintf(why, cap, "request headers too large");
        if (k <= 0) {
            free(buf);
            return k == 0 ? 400 : -1;
        }
        n += (size_t)k;
        eoh = memmem(buf, n, "\r\n\r\n", 4);
    }
    size_t head = (size_t)(eoh - buf) + 4;
    eoh[2] = 0;
    if (parse_head(rq, buf, why, cap)) {
        free(buf);
        return 400;
    }
    rq->len = rq->content_length > 0 ? (size_t)rq->content_length : 0;
    rq->body = malloc(rq->len + 1);
    size_t got = n - head < rq->len ? n - head : rq->len;
    if (rq->body) memcpy(rq->body, buf + head, got);
    free(buf);
    if (!rq->body) return -1;
    if (got < rq->len && rq->expect_continue) send_all(x, "HTTP/1.1 100 Continue\r\n\r\n", 25u);
    while (got < rq->len) {
        int k = recv_some(x, rq->body + got, rq->len - got);
        if (k < 0) return -1;
        got += (size_t)k;
    }
    rq->body[rq->len] = 0;
    return 0;
}

/* ---- the engine ---- */

/* Bring the cache to the prompt, evaluating only what differs from the ids it holds (the last
 * prompt token always, for its logits). 0, or -1 with why. */
static int prefill(server *s, const int32_t *ids, size_t n, int *reused, int *evaluated, char *why,
                   size_t cap)
{
    size_t lcp = 0, held = (size_t)model_cache_len(s->cache);
    if (held > s->n_held) held = s->n_held;
    while (lcp < held && lcp < n && s->held[lcp] == ids[lcp]) lcp++;
    if (lcp == n) lcp--;
    model_cache_truncate(s->cache, (int)lcp);
    s->n_held = lcp;
    *reused = (int)lcp;
    *evaluated = 0;
    for (size_t at = lcp; at < n; at += EVAL_CHUNK) {
        int k = (int)(n - at < EVAL_CHUNK ? n - at : EVAL_CHUNK);
        bool last = at + (size_t)k == n;
        model_err me = {{0}};
        if (model_eval(s->m, s->cache, ids + at, k, s->logits,
                       last ? MODEL_LOGITS_LAST : MODEL_LOGITS_NONE, NULL, &me))
            return snprintf(why, cap, "model_eval: %s", me.msg), -1;
        memcpy(s->held + s->n_held, ids + at, sizeof *ids * (size_t)k);
        s->n_held += (size_t)k;
        *evaluated += k;
    }
    return 0;
}

/* Evaluate one generated token for the next one's logits. */
static int eval_token(server *s, int32_t tok)
{
    model_err me = {{0}};
    if (model_eval(s->m, s->cache, &tok, 1, s->logits, MODEL_LOGITS_LAST, NULL, &me)) {
        fprintf(stderr, "mock_engine: model_eval: %s\n", me.msg);
        return -1;
    }
    s->held[s->n_held++] = tok;
    return 0;
}

static int32_t argmax(const float *l, int n)
{
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (l[i] > l[best]) best = i;
    return best;
}

static double log_sum_exp(const float *l, int n)
{
    double mx = l[argmax(l, n)], sum = 0;
    for (int i = 0; i < n; i++) sum += exp((double)l[i] - mx);
    return mx + log(sum);
}

/* The k best ids by logit, best first (lowest id first among equals). */
static int top_ids(const float *l, int nv, int k, int32_t *top)
{
    int n = 0;
    for (int i = 0; i < nv; i++) {
        if (n == k && l[i] <= l[top[n - 1]]) continue;
        int j = n < k ? n++ : n - 1;
        while (j > 0 && l[top[j - 1]] < l[i]) top[j] = top[j - 1], j--;
        top[j] = i;
    }
    return n;
}

/* ---- generation, independent of the wire format ---- */

typedef struct step {
    int32_t id;
    int nb; /* its bytes (TOKEN_CAP at most kept) */
    char b[TOKEN_CAP];
    size_t off; /* where they start in the completion */
    double lp;  /* log-probability, with the alternatives when asked */
    int n_top;
    int32_t top[MAX_PROBS];
    double top_lp[MAX_PROBS];
} step;

typedef struct gen gen;

/* A wire format: the events of a stream and the answer without one. */
typedef struct format {
    const char *type;                                   /* Content-Type of a stream */
    void (*token)(jw *w, const gen *g, const step *st); /* one token's event */
    const char *bad;                                    /* --fail malformed: an event cut short */
    void (*final)(jw *w, const gen *g);                 /* what ends a stream */
    void (*whole)(jw *w, const gen *g);                 /* the answer without streaming */
} format;

struct gen {
    exch *x;
    const format *f;
    /* the request */
    int32_t *prompt;
    size_t n_prompt;
    int n_predict;
    int n_probs; /* alternatives per token, or -1 when no probabilities are asked */
    bool stream, no_cache, ids_as_tokens, include_usage, timings;
    bool per_token; /* timings_per_token (llama.cpp), continuous_usage_stats (vLLM): figures in
                       every chunk */
    char id[32];
    /* the result */
    int reused, evaluated, k;
    bool eos; /* else the token limit */
    double t_start, t_prompt, t_end;
    step *steps;
};

static void fill_step(const server *s, gen *g, step *st, int32_t tok)
{
    st->id = tok;
    int nb = model_token_bytes(s->v, tok, st->b, sizeof st->b);
    st->nb = nb < 0 ? 0 : nb > TOKEN_CAP ? TOKEN_CAP : nb;
    st->off = g->k ? g->steps[g->k - 1].off + (size_t)g->steps[g->k - 1].nb : 0;
    st->n_top = 0;
    if (g->n_probs < 0) return;
    double lse = log_sum_exp(s->logits, s->n_vocab);
    st->lp = s->logits[tok] - lse;
    int k = g->n_probs < 1 ? 1 : g->n_probs > MAX_PROBS ? MAX_PROBS : g->n_probs;
    st->n_top = top_ids(s->logits, s->n_vocab, k, st->top);
    for (int j = 0; j < st->n_top; j++) st->top_lp[j] = s->logits[st->top[j]] - lse;
}

static bool client_gone(exch *x)
{
    char c;
    ssize_t r = x->gone ? 0 : recv(x->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
        x->gone = true;
    return x->gone;
}

/* Stream a token's event, and what --fail adds after the second: 0, or -1 when the stream ends. */
static void utf8_error(exch *x);

static int stream_token(gen *g, const step *st)
{
    exch *x = g->x;
    jw w = {0};
    g->f->token(&w, g, st);
    if (send_jw(x, &w)) return x->end = "disconnect", -1;
    x->sent++;
    if (x->sent == 2 && x->s->fail == FAIL_MALFORMED) send_all(x, g->f->bad, strlen(g->f->bad));
    if (x->sent == 2 && x->s->fail == FAIL_TRUNCATE) return x->end = "truncated", -1;
    if (x->sent == 2 && x->s->fail == FAIL_UTF8 && x->s->api == API_LLAMACPP)
        return utf8_error(x), -1;
    return 0;
}

/* llama.cpp's answer when the generated text stops being valid UTF-8: an error event after the
 * tokens so far (here after the second), then the end of the stream. */
static void utf8_error(exch *x)
{
    jw w = {0};
    RAW(&w, "data: ");
    error_json(&w, 500,
               "Failed to parse input: the generated text does not match the expected Content-only "
               "format");
    RAW(&w, "\n\n");
    x->end = "error";
    send_jw(x, &w);
}

/* Greedy decoding into g->steps (streamed as they come): 0, or -1 when the exchange ended early. */
static int decode(gen *g)
{
    exch *x = g->x;
    server *s = x->s;
    while (g->k < g->n_predict) {
        int32_t tok = argmax(s->logits, s->n_vocab);
        if (tok == model_vocab_eos(s->v) || model_token_is_control(s->v, tok)) {
            g->eos = true;
            break;
        }
        step *st = &g->steps[g->k];
        fill_step(s, g, st, tok);
        if (g->k == 0) sleep_ms(s->first_delay_ms);
        sleep_ms(s->token_delay_ms);
        if (stop_flag) return x->end = "error", -1;
        if (client_gone(x)) return x->end = "disconnect", -1;
        g->k++;
        if (g->stream && stream_token(g, st)) return -1;
        if (g->k < g->n_predict && eval_token(s, tok)) {
            if (!g->stream) reply_error(x, 500, "model_eval failed");
            return x->end = "error", -1;
        }
    }
    return 0;
}

/* The answer without streaming; --fail malformed sends half of it as the whole body, truncate sends
 * half and closes. */
static void finish_whole(gen *g)
{
    exch *x = g->x;
    enum fail f = x->s->fail;
    if (f == FAIL_UTF8 && x->s->api == API_LLAMACPP) {
        reply_error(x, 500, "the generated text does not match the expected Content-only format");
        return;
    }
    jw w = {0};
    g->f->whole(&w, g);
    size_t half = w.n / 2;
    if (f == FAIL_MALFORMED || f == FAIL_TRUNCATE) {
        send_head(x, 200, "application/json", (long)(f == FAIL_MALFORMED ? half : w.n));
        send_all(x, w.p, half);
        if (f == FAIL_TRUNCATE) x->end = "truncated";
        lsp__jw_free(&w);
        return;
    }
    reply_json(x, 200, &w);
    if (!x->gone) x->sent = g->k;
}

/* The end of a stream, or what --fail sends instead. */
static void finish_stream(gen *g)
{
    exch *x = g->x;
    enum fail f = x->s->fail;
    if (f == FAIL_MALFORMED && x->sent < 2) send_all(x, g->f->bad, strlen(g->f->bad));
    if (f == FAIL_TRUNCATE) {
        x->end = "truncated";
        return;
    }
    if (f == FAIL_UTF8 && x->s->api == API_LLAMACPP) {
        if (x->end == NULL || strcmp(x->end, "error")) utf8_error(x);
        return;
    }
    jw w = {0};
    g->f->final(&w, g);
    if (send_jw(x, &w)) x->end = "disconnect";
}

static void run(gen *g)
{
    exch *x = g->x;
    server *s = x->s;
    if (s->fail == FAIL_HTTP500 || s->fail == FAIL_HTTP400) {
        int status = s->fail == FAIL_HTTP500 ? 500 : 400;
        reply_error(x, status,
                    status == 500 ? "mock failure (--fail http500)"
                                  : "mock failure (--fail http400)");
        return;
    }
    if (g->no_cache) s->n_held = 0;
    char why[600];
    g->t_start = now_ms();
    if (prefill(s, g->prompt, g->n_prompt, &g->reused, &g->evaluated, why, sizeof why)) {
        reply_error(x, 500, why);
        return;
    }
    x->reused = g->reused;
    x->evaluated = g->evaluated;
    g->t_prompt = now_ms();
    if (g->stream) send_head(x, 200, g->f->type, -1);
    int r = decode(g);
    g->t_end = now_ms();
    if (r) return;
    if (g->stream)
        finish_stream(g);
    else
        finish_whole(g);
}

/* Check the prompt against the context, then generate and answer. Frees the prompt. */
static void generate(exch *x, gen *g)
{
    server *s = x->s;
    char why[256];
    x->prompt = (int)g->n_prompt;
    int room = s->n_ctx - (int)g->n_prompt;
    if (g->n_prompt == 0) {
        reply_error(x, 400, "the prompt is empty");
    } else if (room < 0) {
        snprintf(why, sizeof why,
                 "the request exceeds the available context size (%zu > %d tokens)", g->n_prompt,
                 s->n_ctx);
        reply_error(x, 400, why);
    } else {
        if (g->n_predict > room) g->n_predict = room > 1 ? room : 1;
        g->steps = calloc(g->n_predict > 0 ? (size_t)g->n_predict : 1, sizeof *g->steps);
        if (g->steps) run(g);
    }
    free(g->steps);
    free(g->prompt);
}

/* ---- reading requests ---- */

static int tokenize(exch *x, const char *text, size_t len, bool add_bos, bool parse_special,
                    int32_t **ids, size_t *n)
{
    model_err me = {{0}};
    if (!model_tokenize(x->s->v, text, len, add_bos, parse_special, ids, n, &me)) return 0;
    reply_error(x, 400, me.msg);
    return -1;
}

/* The prompt at value index i: a string (tokenized with the FIM markers as their tokens, BOS when
 * add_bos) or an array of token ids. Answers 400 and returns -1 when it is neither. */
static int read_prompt(exch *x, gen *g, int i, bool add_bos)
{
    const jdoc *d = &x->d;
    if (lsp__jis(d, i, JSMN_STRING)) {
        size_t len;
        char *text = lsp__jstr(d, i, &len);
        int r = text ? tokenize(x, text, len, add_bos, true, &g->prompt, &g->n_prompt) : -1;
        free(text);
        return r;
    }
    if (!lsp__jis(d, i, JSMN_ARRAY)) {
        reply_error(x, 400, "\"prompt\" must be a string or an array of token ids");
        return -1;
    }
    int n = d->t[i].size;
    g->prompt = malloc(sizeof *g->prompt * (size_t)(n > 0 ? n : 1));
    g->n_prompt = 0;
    for (int k = 0, e = i + 1; k < n && g->prompt; k++, e = lsp__jskip(d, e)) {
        long id;
        if (!lsp__jint(d, e, &id) || id < 0 || id >= x->s->n_vocab) {
            reply_error(x, 400, "\"prompt\" holds something that is not a token id of the model");
            free(g->prompt);
            g->prompt = NULL;
            return -1;
        }
        g->prompt[g->n_prompt++] = (int32_t)id;
    }
    return g->prompt ? 0 : -1;
}

/* ---- the endpoints ---- */

static void h_health_llamacpp(exch *x)
{
    reply(x, 200, "application/json", "{\"status\":\"ok\"}", 15);
}

static void h_health_empty(exch *x)
{
    reply(x, 200, "text/plain", "", 0);
}

static void h_models(exch *x)
{
    jw w = {0};
    lsp__jw_fmt(
        &w,
        "{\"object\":\"list\",\"data\":[{\"id\":\"mock\",\"object\":\"model\",\"created\":0,"
        "\"owned_by\":\"fimd\",\"max_model_len\":%d}]}",
        x->s->n_ctx);
    reply_json(x, 200, &w);
}

static void h_ollama_root(exch *x)
{
    reply(x, 200, "text/plain; charset=utf-8", "Ollama is running", 17);
}

static void h_ollama_version(exch *x)
{
    reply(x, 200, "application/json", "{\"version\":\"0.0.0-mock\"}", 24);
}

static void h_abort(exch *x)
{
    reply(x, 200, "application/json", "{}", 2);
}

/* llama.cpp: {"content", "add_special" (false), "parse_special" (true)}; vLLM: {"prompt",
 * "add_special_tokens" (true)}. --fail vocab shifts every id by one. */
static void h_tokenize(exch *x)
{
    const jdoc *d = &x->d;
    bool llama = x->s->api == API_LLAMACPP;
    int i = lsp__jget(d, 0, llama ? "content" : "prompt");
    size_t len;
    char *text = lsp__jstr(d, i, &len);
    if (!text) {
        reply_error(x, 400, llama ? "\"content\" must be a string" : "\"prompt\" must be a string");
        return;
    }
    bool add = jbool_or(d, 0, llama ? "add_special" : "add_special_tokens", !llama);
    bool special = !llama || jbool_or(d, 0, "parse_special", true);
    int32_t *ids = NULL;
    size_t n = 0;
    if (!tokenize(x, text, len, add, special, &ids, &n)) {
        for (size_t k = 0; k < n && x->s->fail == FAIL_VOCAB; k++) ids[k]++;
        jw w = {0};
        if (llama)
            RAW(&w, "{\"tokens\":");
        else
            lsp__jw_fmt(&w, "{\"count\":%zu,\"max_model_len\":%d,\"tokens\":", n, x->s->n_ctx);
        write_ids(&w, ids, n);
        RAW(&w, "}");
        reply_json(x, 200, &w);
    }
    free(ids);
    free(text);
}

/* ---- llama.cpp's /completion format ---- */

static void write_bytes(jw *w, const char *b, int n)
{
    RAW(w, "[");
    for (int i = 0; i < n; i++) lsp__jw_fmt(w, "%s%u", i ? "," : "", (unsigned char)b[i]);
    RAW(w, "]");
}

/* "id", "token", "bytes" and "logprob" of one token. */
static void llama_token_fields(jw *w, const model_vocab *v, int32_t id, double lp)
{
    char b[TOKEN_CAP];
    int nb = model_token_bytes(v, id, b, sizeof b);
    nb = nb < 0 ? 0 : nb > TOKEN_CAP ? TOKEN_CAP : nb;
    lsp__jw_fmt(w, "\"id\":%d,\"token\":", id);
    lsp__jw_str(w, b, (size_t)nb);
    RAW(w, ",\"bytes\":");
    write_bytes(w, b, nb);
    lsp__jw_fmt(w, ",\"logprob\":%.6f", lp);
}

static void llama_probs(jw *w, const gen *g, const step *st, int n)
{
    const model_vocab *v = g->x->s->v;
    RAW(w, ",\"completion_probabilities\":[");
    for (int i = 0; i < n; i++) {
        RAW(w, i ? ",{" : "{");
        llama_token_fields(w, v, st[i].id, st[i].lp);
        RAW(w, ",\"top_logprobs\":[");
        for (int j = 0; j < st[i].n_top; j++) {
            RAW(w, j ? ",{" : "{");
            llama_token_fields(w, v, st[i].top[j], st[i].top_lp[j]);
            RAW(w, "}");
        }
        RAW(w, "]}");
    }
    RAW(w, "]");
}

static void write_timings(jw *w, const gen *g)
{
    lsp__jw_fmt(
        w,
        ",\"timings\":{\"cache_n\":%d,\"prompt_n\":%d,\"prompt_ms\":%.3f,\"predicted_n\":%d,"
        "\"predicted_ms\":%.3f}",
        g->reused, g->evaluated, g->t_prompt - g->t_start, g->k, g->t_end - g->t_prompt);
}

/* The completion's text, bytes as generated (invalid UTF-8 becomes U+FFFD). */
static void write_text(jw *w, const gen *g)
{
    jw t = {0};
    for (int i = 0; i < g->k; i++) lsp__jw_raw(&t, g->steps[i].b, (size_t)g->steps[i].nb);
    lsp__jw_str(w, t.p ? t.p : "", t.n);
    lsp__jw_free(&t);
}

static void llama_token(jw *w, const gen *g, const step *st)
{
    RAW(w, "data: {\"index\":0,\"content\":");
    lsp__jw_str(w, st->b, (size_t)st->nb);
    lsp__jw_fmt(w,
                ",\"tokens\":[%d],\"stop\":false,\"id_slot\":0,\"tokens_predicted\":%d,"
                "\"tokens_evaluated\":%zu",
                st->id, g->k, g->n_prompt);
    if (g->n_probs > 0) llama_probs(w, g, st, 1);
    if (g->per_token)
        lsp__jw_fmt(
            w,
            ",\"timings\":{\"cache_n\":%d,\"prompt_n\":%d,\"prompt_ms\":%.3f,\"predicted_n\":%d}",
            g->reused, g->evaluated, g->t_prompt - g->t_start, g->k);
    RAW(w, "}\n\n");
}

/* What a final answer adds: how it stopped, the counts and the timings. */
static void llama_tail(jw *w, const gen *g)
{
    lsp__jw_fmt(w,
                ",\"stop\":true,\"id_slot\":0,\"stop_type\":\"%s\",\"tokens_predicted\":%d,"
                "\"tokens_evaluated\":%zu,\"tokens_cached\":%d",
                g->eos ? "eos" : "limit", g->k, g->n_prompt, g->reused + g->evaluated + g->k);
    write_timings(w, g);
}

static void llama_final(jw *w, const gen *g)
{
    RAW(w, "data: {\"index\":0,\"content\":\"\",\"tokens\":[]");
    llama_tail(w, g);
    RAW(w, "}\n\n");
}

static void llama_whole(jw *w, const gen *g)
{
    RAW(w, "{\"index\":0,\"content\":");
    write_text(w, g);
    RAW(w, ",\"tokens\":[");
    for (int i = 0; i < g->k; i++) lsp__jw_fmt(w, "%s%d", i ? "," : "", g->steps[i].id);
    RAW(w, "]");
    if (g->n_probs > 0) llama_probs(w, g, g->steps, g->k);
    llama_tail(w, g);
    RAW(w, "}");
}

static const format fmt_llama = {"text/event-stream", llama_token, "data: {\"content\": \"x\n\n",
                                 llama_final, llama_whole};

static void h_completion(exch *x)
{
    const jdoc *d = &x->d;
    gen g = {.x = x, .f = &fmt_llama};
    if (read_prompt(x, &g, lsp__jget(d, 0, "prompt"), true)) return;
    g.n_predict = predict_limit(jint_or(d, 0, "n_predict", -1));
    long np = jint_or(d, 0, "n_probs", 0);
    g.n_probs = np > 0 ? (int)(np < MAX_PROBS ? np : MAX_PROBS) : -1;
    g.stream = jbool_or(d, 0, "stream", false);
    g.no_cache = !jbool_or(d, 0, "cache_prompt", true);
    g.per_token = jbool_or(d, 0, "timings_per_token", false);
    generate(x, &g);
}

/* ---- the OpenAI /v1/completions format (vLLM, SGLang, llama.cpp) ---- */

static void oai_head(jw *w, const gen *g)
{
    lsp__jw_fmt(w,
                "{\"id\":\"%s\",\"object\":\"text_completion\",\"created\":0,\"model\":\"mock\","
                "\"choices\":[",
                g->id);
}

/* A token as logprobs name it: "token_id:ID" or its text. */
static void oai_name(jw *w, const gen *g, int32_t id)
{
    char b[TOKEN_CAP];
    if (g->ids_as_tokens) {
        lsp__jw_fmt(w, "\"token_id:%d\"", id);
        return;
    }
    int nb = model_token_bytes(g->x->s->v, id, b, sizeof b);
    lsp__jw_str(w, b, (size_t)(nb < 0 ? 0 : nb > TOKEN_CAP ? TOKEN_CAP : nb));
}

static void oai_logprobs(jw *w, const gen *g, const step *st, int n)
{
    if (g->n_probs < 0) {
        RAW(w, ",\"logprobs\":null");
        return;
    }
    RAW(w, ",\"logprobs\":{\"tokens\":[");
    for (int i = 0; i < n; i++) {
        if (i) RAW(w, ",");
        oai_name(w, g, st[i].id);
    }
    RAW(w, "],\"token_logprobs\":[");
    for (int i = 0; i < n; i++) lsp__jw_fmt(w, "%s%.6f", i ? "," : "", st[i].lp);
    RAW(w, "],\"top_logprobs\":[");
    for (int i = 0; i < n; i++) {
        RAW(w, i ? ",{" : "{");
        for (int j = 0; j < st[i].n_top; j++) {
            if (j) RAW(w, ",");
            oai_name(w, g, st[i].top[j]);
            lsp__jw_fmt(w, ":%.6f", st[i].top_lp[j]);
        }
        RAW(w, "}");
    }
    RAW(w, "],\"text_offset\":[");
    for (int i = 0; i < n; i++) lsp__jw_fmt(w, "%s%zu", i ? "," : "", st[i].off);
    RAW(w, "]}");
}

static void oai_usage(jw *w, const gen *g)
{
    lsp__jw_fmt(w,
                "\"usage\":{\"prompt_tokens\":%zu,\"completion_tokens\":%d,\"total_tokens\":%zu,"
                "\"prompt_tokens_details\":{\"cached_tokens\":%d}}",
                g->n_prompt, g->k, g->n_prompt + (size_t)g->k, g->reused);
}

static void oai_token(jw *w, const gen *g, const step *st)
{
    RAW(w, "data: ");
    oai_head(w, g);
    RAW(w, "{\"index\":0,\"text\":");
    lsp__jw_str(w, st->b, (size_t)st->nb);
    oai_logprobs(w, g, st, 1);
    RAW(w, ",\"finish_reason\":null}]");
    if (g->per_token && g->include_usage) {
        RAW(w, ",");
        oai_usage(w, g);
    }
    RAW(w, "}\n\n");
}

static void oai_final(jw *w, const gen *g)
{
    RAW(w, "data: ");
    oai_head(w, g);
    lsp__jw_fmt(w, "{\"index\":0,\"text\":\"\",\"logprobs\":null,\"finish_reason\":\"%s\"}]",
                g->eos ? "stop" : "length");
    if (g->timings) write_timings(w, g);
    RAW(w, "}\n\n");
    if (g->include_usage) {
        RAW(w, "data: ");
        oai_head(w, g);
        RAW(w, "],");
        oai_usage(w, g);
        RAW(w, "}\n\n");
    }
    RAW(w, "data: [DONE]\n\n");
}

static void oai_whole(jw *w, const gen *g)
{
    oai_head(w, g);
    RAW(w, "{\"index\":0,\"text\":");
    write_text(w, g);
    oai_logprobs(w, g, g->steps, g->k);
    lsp__jw_fmt(w, ",\"finish_reason\":\"%s\"}],", g->eos ? "stop" : "length");
    oai_usage(w, g);
    if (g->timings) write_timings(w, g);
    RAW(w, "}");
}

static const format fmt_oai = {"text/event-stream", oai_token,
                               "data: {\"choices\": [{\"text\": \"x\n\n", oai_final, oai_whole};

/* max_tokens: vLLM's default is 16 (null: until EOS), llama.cpp's until EOS. */
static void h_oai_completions(exch *x)
{
    const jdoc *d = &x->d;
    server *s = x->s;
    bool llama = s->api == API_LLAMACPP;
    gen g = {.x = x, .f = &fmt_oai, .timings = llama};
    if (read_prompt(x, &g, lsp__jget(d, 0, "prompt"), true)) return;
    int mt = lsp__jget(d, 0, "max_tokens");
    bool null = lsp__jis(d, mt, JSMN_PRIMITIVE) && d->s[d->t[mt].start] == 'n';
    g.n_predict = predict_limit(null ? -1 : jint_or(d, 0, "max_tokens", llama ? -1 : 16));
    long lp;
    g.n_probs = lsp__jint(d, lsp__jget(d, 0, "logprobs"), &lp) && lp >= 0
                    ? (int)(lp < MAX_PROBS ? lp : MAX_PROBS)
                    : -1;
    g.ids_as_tokens = !llama && jbool_or(d, 0, "return_tokens_as_token_ids", false);
    g.stream = jbool_or(d, 0, "stream", false);
    g.include_usage = jbool_or(d, lsp__jget(d, 0, "stream_options"), "include_usage", false);
    g.per_token = jbool_or(d, lsp__jget(d, 0, "stream_options"), "continuous_usage_stats", false);
    snprintf(g.id, sizeof g.id, "cmpl-%lu", ++s->n_cmpl);
    generate(x, &g);
}

/* ---- Ollama's /api/generate format ---- */

static void ollama_head(jw *w)
{
    RAW(w, "{\"model\":\"mock\",\"created_at\":\"2026-01-01T00:00:00Z\",\"response\":");
}

static void ollama_token(jw *w, const gen *g, const step *st)
{
    (void)g;
    ollama_head(w);
    lsp__jw_str(w, st->b, (size_t)st->nb);
    RAW(w, ",\"done\":false}\n");
}

static void ollama_tail(jw *w, const gen *g)
{
    lsp__jw_fmt(w,
                ",\"done\":true,\"done_reason\":\"%s\",\"total_duration\":%.0f,\"load_duration\":0,"
                "\"prompt_eval_count\":%d,\"prompt_eval_duration\":%.0f,\"eval_count\":%d,"
                "\"eval_duration\":%.0f}",
                g->eos ? "stop" : "length", (g->t_end - g->t_start) * 1e6, g->evaluated,
                (g->t_prompt - g->t_start) * 1e6, g->k, (g->t_end - g->t_prompt) * 1e6);
}

static void ollama_final(jw *w, const gen *g)
{
    ollama_head(w);
    RAW(w, "\"\"");
    ollama_tail(w, g);
    RAW(w, "\n");
}

static void ollama_whole(jw *w, const gen *g)
{
    ollama_head(w);
    write_text(w, g);
    ollama_tail(w, g);
}

static const format fmt_ollama = {"application/x-ndjson", ollama_token, "{\"response\": \"x\n",
                                  ollama_final, ollama_whole};

/* Raw prompts only. Without options.num_ctx the prompt keeps its last OLLAMA_CTX tokens, as Ollama
 * truncates to its default context (with num_ctx, that many; either at most the model's trained
 * context, as Ollama caps num_ctx). */
static void h_generate(exch *x)
{
    const jdoc *d = &x->d;
    gen g = {.x = x, .f = &fmt_ollama, .n_probs = -1};
    if (!jbool_or(d, 0, "raw", false)) {
        reply_error(x, 400, "mock_engine serves raw prompts only (\"raw\": true)");
        return;
    }
    if (!lsp__jis(d, lsp__jget(d, 0, "prompt"), JSMN_STRING)) {
        reply_error(x, 400, "\"prompt\" must be a string");
        return;
    }
    if (read_prompt(x, &g, lsp__jget(d, 0, "prompt"), true)) return;
    int opt = lsp__jget(d, 0, "options");
    long num_ctx;
    if (lsp__jint(d, lsp__jget(d, opt, "num_ctx"), &num_ctx) && num_ctx > 0)
        snprintf(x->num_ctx, sizeof x->num_ctx, "%ld", num_ctx);
    else
        num_ctx = OLLAMA_CTX;
    if (num_ctx > x->s->n_ctx) num_ctx = x->s->n_ctx; /* Ollama caps it at the trained context */
    if (g.n_prompt > (size_t)num_ctx) {
        size_t drop = g.n_prompt - (size_t)num_ctx;
        memmove(g.prompt, g.prompt + drop, sizeof *g.prompt * (size_t)num_ctx);
        g.n_prompt = (size_t)num_ctx;
    }
    g.n_predict = predict_limit(jint_or(d, opt, "num_predict", -1));
    g.stream = jbool_or(d, 0, "stream", true);
    generate(x, &g);
}

/* ---- dispatch ---- */

typedef struct route {
    enum api api;
    const char *method, *path;
    void (*fn)(exch *x);
} route;

static const route routes[] = {
    {API_LLAMACPP, "GET", "/health", h_health_llamacpp},
    {API_LLAMACPP, "POST", "/tokenize", h_tokenize},
    {API_LLAMACPP, "POST", "/completion", h_completion},
    {API_LLAMACPP, "POST", "/v1/completions", h_oai_completions},
    {API_OPENAI, "GET", "/health", h_health_empty},
    {API_OPENAI, "GET", "/v1/models", h_models},
    {API_OPENAI, "POST", "/tokenize", h_tokenize},
    {API_OPENAI, "POST", "/v1/completions", h_oai_completions},
    {API_OPENAI, "POST", "/abort_request", h_abort},
    {API_OLLAMA, "GET", "/", h_ollama_root},
    {API_OLLAMA, "GET", "/api/version", h_ollama_version},
    {API_OLLAMA, "POST", "/api/generate", h_generate},
};

static bool authorized(const exch *x)
{
    const char *key = x->s->api_key;
    const char *a = x->rq.auth;
    return !key || (x->rq.has_auth && !strncmp(a, "Bearer ", 7) && !strcmp(a + 7, key));
}

static void dispatch(exch *x)
{
    if (!authorized(x)) {
        reply_error(x, 401, "invalid or missing API key (Authorization: Bearer KEY)");
        return;
    }
    const route *rt = NULL;
    bool known = false;
    for (size_t i = 0; i < sizeof routes / sizeof *routes && !rt; i++) {
        if (routes[i].api != x->s->api || strcmp(routes[i].path, x->rq.path)) continue;
        known = true;
        if (!strcmp(routes[i].method, x->rq.method)) rt = &routes[i];
    }
    if (!rt) {
        reply_error(x, known ? 405 : 404, known ? "method not allowed" : "not found");
        return;
    }
    if (!strcmp(rt->method, "POST")) {
        if (lsp__json_parse(&x->d, x->rq.body, x->rq.len) || !lsp__jis(&x->d, 0, JSMN_OBJECT)) {
            reply_error(x, 400, "the body is not a JSON object");
            return;
        }
        char *rid = lsp__jstr(&x->d, lsp__jget(&x->d, 0, "rid"), NULL);
        if (rid) snprintf(x->rid, sizeof x->rid, "%s", rid);
        free(rid);
    }
    rt->fn(x);
}

/* ---- the log ---- */

/* " key=value" with control characters as '?' ("-" for an empty value). */
static void log_field(FILE *f, const char *key, const char *v)
{
    fprintf(f, "%s%s=", strcmp(key, "path") ? " " : "", key);
    if (!v || !*v) v = "-";
    for (; *v; v++) fputc((unsigned char)*v < 0x20 || *v == 0x7f ? '?' : *v, f);
}

static void write_log(const exch *x)
{
    FILE *f = x->s->log;
    if (!f) return;
    log_field(f, "path", x->rq.path);
    log_field(f, "auth", x->rq.has_auth ? x->rq.auth : "-");
    fprintf(f, " prompt=%d reused=%d evaluated=%d sent=%d end=%s", x->prompt, x->reused,
            x->evaluated, x->sent, x->end);
    log_field(f, "rid", x->rid);
    if (x->s->api == API_OLLAMA) log_field(f, "num_ctx", x->num_ctx);
    if (x->status)
        fprintf(f, " status=%d\n", x->status);
    else
        fprintf(f, " status=-\n"); /* nothing was answered */
    fflush(f);
}

/* ---- the server ---- */

/* Half-close, then read what the client still sends (briefly) so that closing sends no reset that
 * could destroy the answer before the client reads it. */
static void close_gently(int fd)
{
    struct timeval tv = {0, 200000};
    char buf[4096];
    shutdown(fd, SHUT_WR);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    for (int i = 0; i < 16 && recv(fd, buf, sizeof buf, 0) > 0; i++) continue;
    close(fd);
}

static void serve_one(server *s, int fd)
{
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    exch x = {.s = s, .fd = fd, .end = "done", .rid = "-", .num_ctx = "-"};
    char why[256];
    int r = read_request(&x, why, sizeof why);
    if (r > 0) reply_error(&x, 400, why);
    if (r == 0) dispatch(&x);
    if (r >= 0) write_log(&x);
    if (x.gone)
        close(fd);
    else
        close_gently(fd);
    lsp__json_free(&x.d);
    free(x.rq.body);
}

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static int write_port_file(const char *path, int port)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return -1;
    fprintf(f, "%d\n", port);
    if (fclose(f) || rename(tmp, path)) return -1;
    return 0;
}

/* 127.0.0.1 on an ephemeral port, written to port_file: the socket, or -1. */
static int listen_local(const char *port_file)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0) return perror("mock_engine: socket"), -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 16) ||
        getsockname(fd, (struct sockaddr *)&a, &len)) {
        perror("mock_engine: listen");
        close(fd);
        return -1;
    }
    if (write_port_file(port_file, ntohs(a.sin_port))) {
        fprintf(stderr, "mock_engine: cannot write %s: %s\n", port_file, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static int load(server *s, const char *path)
{
    model_err me = {{0}};
    s->m = model_load(path, &me);
    if (!s->m) return fprintf(stderr, "mock_engine: %s\n", me.msg), -1;
    s->v = model_get_vocab(s->m);
    s->n_vocab = model_get_hparams(s->m)->n_vocab;
    s->n_ctx = model_get_hparams(s->m)->n_ctx_train;
    s->cache = model_cache_new(s->m, &me);
    s->logits = malloc(sizeof *s->logits * (size_t)s->n_vocab);
    s->held = malloc(sizeof *s->held * (size_t)(s->n_ctx > 0 ? s->n_ctx : 1));
    if (!s->cache || !s->logits || !s->held)
        return fprintf(stderr, "mock_engine: %s\n", me.msg), -1;
    return 0;
}

static void unload(server *s)
{
    model_cache_free(s->cache);
    model_free(s->m);
    free(s->logits);
    free(s->held);
    if (s->log) fclose(s->log);
}

static int usage(void)
{
    fprintf(
        stderr,
        "usage: mock_engine --api llamacpp|openai|ollama -m MODEL.gguf --port-file FILE\n"
        "                   [--log FILE] [--fail MODE] [--token-delay-ms N] [--first-delay-ms N]\n"
        "                   [--api-key KEY]\n"
        "  serves 127.0.0.1 on an ephemeral port (written to FILE) until SIGTERM or SIGINT\n"
        "  --log FILE        one line per request: path= auth= prompt= reused= evaluated= sent=\n"
        "                    end=done|disconnect|truncated|error rid= [num_ctx=] status=\n"
        "  --fail MODE       http500 | http400 | malformed | truncate | utf8-error | vocab\n"
        "  --token-delay-ms  sleep before each token; --first-delay-ms before the first\n"
        "  --api-key KEY     require Authorization: Bearer KEY\n");
    return 2;
}

static int name_index(const char *const *names, int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(names[i], s)) return i;
    return -1;
}

static bool parse_ms(const char *s, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < 0 || v > 600000) return false;
    *out = (int)v;
    return true;
}

typedef struct opts {
    const char *model, *port_file, *log;
} opts;

static int parse_args(int argc, char **argv, server *s, opts *o)
{
    int api = -1, fail = FAIL_NONE;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) return fprintf(stderr, "mock_engine: %s needs a value\n", a), -1;
        i++;
        bool ok = true;
        if (!strcmp(a, "--api"))
            ok = (api = name_index(api_names, API_COUNT, v)) >= 0;
        else if (!strcmp(a, "-m") || !strcmp(a, "--model"))
            o->model = v;
        else if (!strcmp(a, "--port-file"))
            o->port_file = v;
        else if (!strcmp(a, "--log"))
            o->log = v;
        else if (!strcmp(a, "--fail"))
            ok = (fail = name_index(fail_names, FAIL_COUNT, v)) >= 0;
        else if (!strcmp(a, "--token-delay-ms"))
            ok = parse_ms(v, &s->token_delay_ms);
        else if (!strcmp(a, "--first-delay-ms"))
            ok = parse_ms(v, &s->first_delay_ms);
        else if (!strcmp(a, "--api-key"))
            s->api_key = v;
        else
            return fprintf(stderr, "mock_engine: unknown option '%s'\n", a), -1;
        if (!ok) return fprintf(stderr, "mock_engine: bad value '%s' for %s\n", v, a), -1;
    }
    if (api < 0 || !o->model || !o->port_file)
        return fprintf(stderr, "mock_engine: --api, -m and --port-file are required\n"), -1;
    s->api = (enum api)api;
    s->fail = (enum fail)fail;
    return 0;
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: poll and sleeps return early */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int main(int argc, char **argv)
{
    static server s;
    opts o = {0};
    if (parse_args(argc, argv, &s, &o)) return usage();
    install_signals();
    if (o.log && !(s.log = fopen(o.log, "a"))) {
        fprintf(stderr, "mock_engine: cannot open %s: %s\n", o.log, strerror(errno));
        return 1;
    }
    int lfd = -1;
    if (load(&s, o.model) || (lfd = listen_local(o.port_file)) < 0) {
        unload(&s);
        return 1;
    }
    while (!stop_flag) {
        struct pollfd p = {.fd = lfd, .events = POLLIN};
        if (poll(&p, 1, 200) <= 0) continue;
        int fd = accept(lfd, NULL, NULL);
        if (fd >= 0) serve_one(&s, fd);
    }
    close(lfd);
    unload(&s);
    return 0;
}
