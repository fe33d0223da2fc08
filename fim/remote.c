/* fim/remote.c — the backend that sends fimd's own prompts to a serving engine (vLLM, SGLang,
 * llama.cpp server, Ollama) over HTTP with libcurl, on the inference worker's thread: the stream is
 * read token by token through fimd's stop rules and closed as soon as one ends the middle. */
#define _GNU_SOURCE
#include "fim/fim_internal.h"
#include "base/base.h"

#include <curl/curl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { POLL_MS = 10, DEFAULT_TIMEOUT_MS = 10000, ABORT_TIMEOUT_MS = 500, OLLAMA_MIN_CTX = 2048 };

typedef struct remote remote;

typedef struct token_item {
    int32_t id;
    int n_top;
    int32_t top[FIM_TOP_MAX];
} token_item;

/* One API: where to send, how the body looks, how its stream is framed and read. */
typedef struct api_desc {
    const char *name;
    bool sse;                  /* Server-Sent Events (else NDJSON) */
    bool ids;                  /* prompts may go as token ids */
    bool v1_base;              /* the URL may end in /v1 (the OpenAI base) */
    const char *gen_path;      /* from the root */
    const char *tokenize_path; /* the handshake's endpoint, or NULL */
    bool abort_rid;            /* SGLang: POST /abort_request {rid} when a stream is given up */
    void (*body)(const remote *r, fim_buf *b);
    void (*tokenize_body)(const remote *r, const char *probe, fim_buf *b);
    const char *tokenize_field;                 /* the answer's array of ids */
    int (*event)(remote *r, const fim_json *j); /* 0 go on, 1 the stream is complete, -1 an error */
} api_desc;

struct remote {
    fim_backend base;
    model_vocab *vocab;
    const api_desc *api;
    char *root, *gen_url, *tokenize_url, *abort_url;
    char *model_name, *ca_file;
    char *auth; /* "Authorization: Bearer ..." or NULL: never logged */
    int timeout_ms;
    bool ids_ok;  /* the server's tokenizer agrees: prompts go as ids */
    bool checked; /* the handshake has run */
    char health[512], note[512];
    /* the generation under way */
    fim_gen gen;
    fim_ids_vec ctx; /* the prompt and the tokens taken so far */
    int taken;
    char rid[48];
    unsigned long seq;
    CURLM *multi;
    CURL *easy;
    struct curl_slist *headers;
    fim_buf body, in; /* the request, and received bytes not yet read */
    size_t in_used;
    long http_status;
    bool transfer_done, stream_done, restart;
    bool
        restarted; /* healing continued in a second request: its cache figure is not the prompt's */
    CURLcode result;
    char server_error[256]; /* an error event in the stream */
    token_item *q;
    size_t q_head, q_n, q_cap;
    double t_request;
    int *server_cached; /* where the engine's stats want it */
};

/* ---- prompts as text (Ollama, or a tokenizer mismatch) ---- */

/* The text of ids: control tokens by name (BOS left to the server, which adds its own), text with
 * every control-token string removed, so code that contains "<｜fim▁hole｜>" cannot steer the
 * model. */
void fim__prompt_text(const model_vocab *v, const int32_t *ids, size_t n, fim_buf *out)
{
    model_fim_ids f;
    model_err me = {{0}};
    const char *marks[5] = {model_token_text(v, model_vocab_bos(v)),
                            model_token_text(v, model_vocab_eos(v))};
    int n_marks = 2;
    if (!model_vocab_fim(v, &f, &me)) {
        marks[2] = model_token_text(v, f.begin), marks[3] = model_token_text(v, f.hole),
        marks[4] = model_token_text(v, f.end);
        n_marks = 5;
    }
    fim_buf run = {0};
    for (size_t i = 0; i <= n; i++) {
        if (i < n && !model_token_is_control(v, ids[i])) {
            char b[256];
            int k = model_token_bytes(v, ids[i], b, sizeof b);
            if (k > 0) fim__buf_add(&run, b, (size_t)(k < (int)sizeof b ? k : (int)sizeof b));
            continue;
        }
        for (int m = 0; m < n_marks && run.n; m++) { /* drop marker strings from the user's text */
            size_t ml = marks[m] ? strlen(marks[m]) : 0;
            char *at;
            while (ml && (at = memmem(run.p, run.n, marks[m], ml))) {
                memmove(at, at + ml, run.n - (size_t)(at - run.p) - ml);
                run.n -= ml;
            }
        }
        if (run.n) fim__buf_add(out, run.p, run.n);
        run.n = 0;
        if (i < n && ids[i] != model_vocab_bos(v))
            fim__buf_add(out, model_token_text(v, ids[i]), strlen(model_token_text(v, ids[i])));
    }
    free(run.p);
    if (!out->p) fim__buf_add(out, "", 0);
}

/* "prompt": ids, or the text */
static void put_prompt(const remote *r, fim_buf *b, const char *key)
{
    fim__buf_fmt(b, "\"%s\":", key);
    if (r->ids_ok) {
        fim__buf_add(b, "[", 1);
        for (size_t i = 0; i < r->ctx.n; i++) fim__buf_fmt(b, i ? ",%d" : "%d", r->ctx.v[i]);
        fim__buf_add(b, "]", 1);
        return;
    }
    fim_buf t = {0};
    fim__prompt_text(r->base.vocab, r->ctx.v, r->ctx.n, &t);
    fim__buf_json_str(b, t.p, t.n);
    free(t.p);
}

static int remaining(const remote *r)
{
    int left = r->gen.max_tokens - r->taken;
    return left > 1 ? left : 1;
}

/* ---- request bodies ---- */

static void body_llamacpp(const remote *r, fim_buf *b)
{
    fim__buf_add(b, "{", 1);
    put_prompt(r, b, "prompt");
    fim__buf_fmt(b,
                 ",\"n_predict\":%d,\"stream\":true,\"cache_prompt\":true,\"return_tokens\":true,"
                 "\"timings_per_token\":true,\"temperature\":%g,\"top_p\":%g,\"seed\":%llu",
                 remaining(r), r->gen.temperature, r->gen.top_p,
                 (unsigned long long)(r->gen.seed & 0x7fffffff));
    if (r->gen.want_top) fim__buf_fmt(b, ",\"n_probs\":%d", r->gen.want_top);
    fim__buf_add(b, "}", 1);
}

static void body_openai(const remote *r, fim_buf *b)
{
    fim__buf_add(b, "{\"model\":", 9);
    const char *m = r->model_name ? r->model_name : "";
    fim__buf_json_str(b, m, strlen(m));
    fim__buf_add(b, ",", 1);
    put_prompt(r, b, "prompt");
    fim__buf_fmt(b,
                 ",\"max_tokens\":%d,\"stream\":true,\"temperature\":%g,\"top_p\":%g,\"seed\":%llu,"
                 "\"stream_options\":{\"include_usage\":true,\"continuous_usage_stats\":true}",
                 remaining(r), r->gen.temperature, r->gen.top_p,
                 (unsigned long long)(r->gen.seed & 0x7fffffff));
    if (r->ids_ok) /* vLLM names each streamed token by id: "token_id:123" */
        fim__buf_fmt(b, ",\"logprobs\":%d,\"return_tokens_as_token_ids\":true",
                     r->gen.want_top ? r->gen.want_top : 1);
    if (r->api->abort_rid) fim__buf_fmt(b, ",\"rid\":\"%s\"", r->rid);
    fim__buf_add(b, "}", 1);
}

/* Ollama sizes its context per request and reloads the model when num_ctx changes, so it comes
 * from the stable prompt budget (a power of two), not from this prompt's length. */
static void body_ollama(const remote *r, fim_buf *b)
{
    int need = r->gen.text_budget + r->gen.max_tokens, num_ctx = OLLAMA_MIN_CTX;
    while (num_ctx < need) num_ctx *= 2;
    fim__buf_add(b, "{\"model\":", 9);
    const char *m = r->model_name ? r->model_name : "";
    fim__buf_json_str(b, m, strlen(m));
    fim__buf_add(b, ",", 1);
    put_prompt(r, b, "prompt");
    fim__buf_fmt(b,
                 ",\"raw\":true,\"stream\":true,\"keep_alive\":\"30m\",\"options\":{\"num_ctx\":%d,"
                 "\"num_predict\":%d,\"temperature\":%g,\"top_p\":%g,\"seed\":%llu}}",
                 num_ctx, remaining(r), r->gen.temperature, r->gen.top_p,
                 (unsigned long long)(r->gen.seed & 0x7fffffff));
}

static void tokenize_llamacpp(const remote *r, const char *probe, fim_buf *b)
{
    (void)r;
    fim__buf_add(b, "{\"content\":", 11);
    fim__buf_json_str(b, probe, strlen(probe));
    fim__buf_add(b, ",\"add_special\":false,\"parse_special\":true}", 42);
}

static void tokenize_openai(const remote *r, const char *probe, fim_buf *b)
{
    fim__buf_add(b, "{\"model\":", 9);
    const char *m = r->model_name ? r->model_name : "";
    fim__buf_json_str(b, m, strlen(m));
    fim__buf_add(b, ",\"prompt\":", 10);
    fim__buf_json_str(b, probe, strlen(probe));
    fim__buf_add(b, ",\"add_special_tokens\":false}", 28);
}

/* ---- reading streamed tokens ---- */

static token_item *push_token(remote *r, int32_t id)
{
    if (r->q_n == r->q_cap) {
        size_t cap = r->q_cap ? r->q_cap * 2 : 32;
        token_item *p = base_xrealloc(r->q, sizeof *p * cap);
        r->q = p;
        r->q_cap = cap;
    }
    token_item *t = &r->q[r->q_n++];
    t->id = id;
    t->n_top = 0;
    return t;
}

/* Text whose token ids the server did not send: tokenized here (the bytes are what count). */
static void push_text(remote *r, const fim_json *j, int at)
{
    size_t n;
    char *text = fim__json_string(j, at, &n);
    int32_t *ids = NULL;
    size_t k = 0;
    model_err me = {{0}};
    if (text && n && !model_tokenize(r->base.vocab, text, n, false, false, &ids, &k, &me))
        for (size_t i = 0; i < k; i++) push_token(r, ids[i]);
    free(ids);
    free(text);
}

/* An error object or string in an answer: its message. */
static bool error_message(const fim_json *j, int from, char *out, size_t cap)
{
    int e = fim__json_at_from(j, from, "error");
    if (e < 0) return false;
    int m = fim__json_at_from(j, e, "message");
    char *msg = fim__json_string(j, m >= 0 ? m : e, NULL);
    snprintf(out, cap, "%s", msg ? msg : "an error without a message");
    free(msg);
    return true;
}

static void note_cached(remote *r, const fim_json *j, const char *path)
{
    long v;
    if (r->server_cached && !r->restarted && fim__json_long(j, fim__json_at(j, path), &v))
        *r->server_cached = (int)v;
}

static int event_llamacpp(remote *r, const fim_json *j)
{
    if (error_message(j, 0, r->server_error, sizeof r->server_error)) return -1;
    note_cached(r, j, "timings.cache_n");
    int toks = fim__json_at(j, "tokens"), n = fim__json_len(j, toks);
    if (r->ids_ok && n > 0) {
        for (int k = 0; k < n; k++) {
            char path[64];
            long id;
            snprintf(path, sizeof path, "%d", k);
            if (!fim__json_long(j, fim__json_at_from(j, toks, path), &id)) continue;
            token_item *t = push_token(r, (int32_t)id);
            snprintf(path, sizeof path, "completion_probabilities.%d.top_logprobs", k);
            int top = fim__json_at(j, path), nt = fim__json_len(j, top);
            for (int a = 0; a < nt && t->n_top < FIM_TOP_MAX; a++) {
                snprintf(path, sizeof path, "%d.id", a);
                if (fim__json_long(j, fim__json_at_from(j, top, path), &id))
                    t->top[t->n_top++] = (int32_t)id;
            }
        }
    } else {
        push_text(r, j, fim__json_at(j, "content"));
    }
    return fim__json_true(j, fim__json_at(j, "stop")) ? 1 : 0;
}

static bool token_id_name(const char *s, size_t n, long *id)
{
    if (n <= 9 || memcmp(s, "token_id:", 9)) return false;
    char buf[24];
    if (n - 9 >= sizeof buf) return false;
    memcpy(buf, s + 9, n - 9);
    buf[n - 9] = 0;
    char *end;
    *id = strtol(buf, &end, 10);
    return *end == 0 && end != buf;
}

/* vLLM's alternatives: an object {"token_id:5": logprob, ...}, put best first. */
static void openai_top(const fim_json *j, int obj, token_item *t)
{
    double lp[FIM_TOP_MAX];
    size_t kl;
    const char *key;
    for (int k = 0; (key = fim__json_key(j, obj, k, &kl)) && t->n_top < FIM_TOP_MAX; k++) {
        long id;
        double v;
        if (!token_id_name(key, kl, &id)) continue;
        if (!fim__json_double(j, fim__json_member(j, obj, k), &v)) v = -INFINITY;
        int at = t->n_top++;
        while (at > 0 && lp[at - 1] < v) t->top[at] = t->top[at - 1], lp[at] = lp[at - 1], at--;
        t->top[at] = (int32_t)id, lp[at] = v;
    }
}

static int event_openai(remote *r, const fim_json *j)
{
    if (error_message(j, 0, r->server_error, sizeof r->server_error)) return -1;
    note_cached(r, j, "usage.prompt_tokens_details.cached_tokens");
    note_cached(r, j, "timings.cache_n"); /* llama.cpp's /v1 */
    int ch = fim__json_at(j, "choices.0");
    if (ch < 0) return 0;
    int names = fim__json_at_from(j, ch, "logprobs.tokens"), n = fim__json_len(j, names);
    bool by_id = r->ids_ok && n > 0;
    for (int k = 0; by_id && k < n; k++) {
        char path[32];
        snprintf(path, sizeof path, "%d", k);
        size_t len;
        char *s = fim__json_string(j, fim__json_at_from(j, names, path), &len);
        long id;
        by_id = s && token_id_name(s, len, &id);
        free(s);
    }
    if (by_id) {
        for (int k = 0; k < n; k++) {
            char path[48];
            snprintf(path, sizeof path, "%d", k);
            size_t len;
            char *s = fim__json_string(j, fim__json_at_from(j, names, path), &len);
            long id = 0;
            token_id_name(s, len, &id);
            free(s);
            token_item *t = push_token(r, (int32_t)id);
            snprintf(path, sizeof path, "logprobs.top_logprobs.%d", k);
            openai_top(j, fim__json_at_from(j, ch, path), t);
        }
    } else {
        push_text(r, j, fim__json_at_from(j, ch, "text"));
    }
    return 0; /* the end is [DONE] */
}

static int event_ollama(remote *r, const fim_json *j)
{
    if (error_message(j, 0, r->server_error, sizeof r->server_error)) return -1;
    push_text(r, j, fim__json_at(j, "response"));
    return fim__json_true(j, fim__json_at(j, "done")) ? 1 : 0;
}

static const api_desc apis[] = {
    {"openai", true, true, true, "/v1/completions", "/tokenize", false, body_openai,
     tokenize_openai, "tokens", event_openai},
    {"sglang", true, true, true, "/v1/completions", "/tokenize", true, body_openai, tokenize_openai,
     "tokens", event_openai},
    {"llamacpp", true, true, false, "/completion", "/tokenize", false, body_llamacpp,
     tokenize_llamacpp, "tokens", event_llamacpp},
    {"ollama", false, false, false, "/api/generate", NULL, false, body_ollama, NULL, NULL,
     event_ollama},
};

/* ---- transport ---- */

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    remote *r = ud;
    if (!r->http_status) curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->http_status);
    fim__buf_add(&r->in, p, size * n);
    return size * n;
}

static CURL *new_easy(const remote *r, const char *url, const fim_buf *body,
                      struct curl_slist *headers)
{
    CURL *e = curl_easy_init();
    if (!e) return NULL;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body->p);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)body->n);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)r->timeout_ms);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    if (r->ca_file) curl_easy_setopt(e, CURLOPT_CAINFO, r->ca_file);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    return e;
}

static struct curl_slist *json_headers(const remote *r)
{
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    h = curl_slist_append(h, "Expect:"); /* no 100-continue round trip */
    if (r->auth) h = curl_slist_append(h, r->auth);
    return h;
}

/* A short blocking POST (the handshake, SGLang's abort): the answer's body, or -1 with a message.
 */
static int post_once(remote *r, const char *url, const fim_buf *body, long timeout_ms,
                     fim_buf *answer, long *status, char *why, size_t cap)
{
    struct curl_slist *h = json_headers(r);
    remote tmp = *r; /* on_data writes into tmp.in */
    tmp.in = (fim_buf){0};
    tmp.http_status = 0;
    CURL *e = new_easy(r, url, body, h);
    if (!e) {
        curl_slist_free_all(h);
        snprintf(why, cap, "out of memory");
        return -1;
    }
    tmp.easy = e;
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &tmp);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    CURLcode rc = curl_easy_perform(e);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(e);
    curl_slist_free_all(h);
    *answer = tmp.in;
    if (rc != CURLE_OK) {
        snprintf(why, cap, "%s: %s", url, curl_easy_strerror(rc));
        return -1;
    }
    return 0;
}

static void close_stream(remote *r)
{
    if (r->easy) {
        curl_multi_remove_handle(r->multi, r->easy); /* closes the connection: the server stops */
        curl_easy_cleanup(r->easy);
    }
    curl_slist_free_all(r->headers);
    r->easy = NULL;
    r->headers = NULL;
}

static int open_stream(remote *r, fim_err *err)
{
    close_stream(r);
    r->body.n = r->in.n = r->in_used = 0;
    r->http_status = 0;
    r->transfer_done = r->stream_done = r->restart = false;
    r->server_error[0] = 0;
    r->q_head = r->q_n = 0;
    r->api->body(r, &r->body);
    r->headers = json_headers(r);
    r->easy = new_easy(r, r->gen_url, &r->body, r->headers);
    if (!r->easy) return fim__fail(err, "out of memory");
    curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
    curl_multi_add_handle(r->multi, r->easy);
    r->t_request = base_now_ms();
    return 0;
}

/* Read the complete events (SSE "data:" lines, or NDJSON lines) received so far. */
static void read_events(remote *r)
{
    while (!r->stream_done && r->http_status < 400 && r->in_used < r->in.n) {
        char *line = r->in.p + r->in_used, *nl = memchr(line, '\n', r->in.n - r->in_used);
        if (!nl) return;
        r->in_used = (size_t)(nl - r->in.p) + 1;
        size_t n = (size_t)(nl - line);
        if (n && line[n - 1] == '\r') n--;
        if (r->api->sse) {
            if (n < 5 || memcmp(line, "data:", 5))
                continue; /* event:, id:, comments, blank lines */
            line += 5, n -= 5;
            if (n && *line == ' ') line++, n--;
            if (n == 6 && !memcmp(line, "[DONE]", 6)) {
                r->stream_done = true;
                return;
            }
        }
        if (!n) continue;
        fim_json *j = fim__json_parse(line, n);
        if (!j) { /* kept going: a server may recover, and the tokens so far stand */
            snprintf(r->server_error, sizeof r->server_error, "malformed JSON in the stream: %.80s",
                     line);
            continue;
        }
        int rc = r->api->event(r, j);
        fim__json_free(j);
        if (rc) r->stream_done = true;
    }
}

/* The server's error body, for a 4xx/5xx answer. */
static void http_error(remote *r, char *out, size_t cap)
{
    char msg[256] = "";
    fim_json *j = r->in.n ? fim__json_parse(r->in.p, r->in.n) : NULL;
    if (j && !error_message(j, 0, msg, sizeof msg)) {
        char *m = fim__json_string(j, fim__json_at(j, "message"), NULL);
        if (m) snprintf(msg, sizeof msg, "%s", m);
        free(m);
    }
    fim__json_free(j);
    if (!msg[0] && r->in.n) snprintf(msg, sizeof msg, "%.200s", r->in.p);
    snprintf(out, cap, "%s answered HTTP %ld%s%s", r->gen_url, r->http_status, msg[0] ? ": " : "",
             msg);
}

/* Drive the transfer until a token is queued, the stream ends, cancellation or a timeout. */
static int pump(remote *r, const atomic_int *cancel, fim_err *err)
{
    for (;;) {
        read_events(r);
        if (r->q_head < r->q_n || r->stream_done || r->transfer_done) return 0;
        if (cancel && atomic_load_explicit(cancel, memory_order_relaxed)) return 1;
        if (base_now_ms() - r->t_request > r->timeout_ms)
            return fim__fail(err, "%s: no token within %d ms", r->gen_url, r->timeout_ms);
        int running = 0;
        curl_multi_perform(r->multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(r->multi, &left)))
            if (m->msg == CURLMSG_DONE) r->transfer_done = true, r->result = m->data.result;
        if (!running) r->transfer_done = true;
        if (!r->transfer_done)
            curl_multi_poll(r->multi, NULL, 0, POLL_MS, NULL);
        else
            read_events(r);
    }
}

/* ---- the handshake: does the server tokenize as the local vocabulary does? ---- */

static void handshake(remote *r)
{
    if (r->checked || !r->api->tokenize_path) {
        r->checked = true;
        return;
    }
    const model_vocab *v = r->base.vocab;
    model_fim_ids f;
    model_err me = {{0}};
    if (model_vocab_fim(v, &f, &me)) {
        r->checked = true;
        r->ids_ok = false;
        snprintf(r->note, sizeof r->note, "the vocabulary has no FIM tokens; prompts go as text");
        return;
    }
    char probe[512];
    snprintf(probe, sizeof probe,
             "%sdef f(x):\n    return x  # caf\xc3\xa9 \xe6\xbc\xa2\xe5\xad\x97 "
             "\xf0\x9f\x99\x82%s\n%s\tif",
             model_token_text(v, f.begin), model_token_text(v, f.hole), model_token_text(v, f.end));
    fim_buf body = {0}, answer = {0};
    r->api->tokenize_body(r, probe, &body);
    long status = 0;
    char why[400];
    int rc = post_once(r, r->tokenize_url, &body, r->timeout_ms, &answer, &status, why, sizeof why);
    free(body.p);
    if (rc) { /* unreachable: tried again at the next request */
        snprintf(r->health, sizeof r->health, "unreachable: %s", why);
        free(answer.p);
        return;
    }
    r->checked = true;
    int32_t *mine = NULL;
    size_t n_mine = 0;
    model_tokenize(v, probe, strlen(probe), false, true, &mine, &n_mine, &me);
    fim_json *j = status == 200 && answer.n ? fim__json_parse(answer.p, answer.n) : NULL;
    int arr = j ? fim__json_at(j, r->api->tokenize_field) : -1, n = j ? fim__json_len(j, arr) : -1;
    bool same = n >= 0 && (size_t)n == n_mine;
    for (int k = 0; same && k < n; k++) {
        char path[16];
        long id;
        snprintf(path, sizeof path, "%d", k);
        same = fim__json_long(j, fim__json_at_from(j, arr, path), &id) && id == mine[k];
    }
    r->ids_ok = same;
    if (!same && n < 0)
        snprintf(r->note, sizeof r->note,
                 "%s did not tokenize the probe (HTTP %ld); prompts go as text", r->tokenize_url,
                 status);
    else if (!same)
        snprintf(r->note, sizeof r->note,
                 "tokenizer mismatch: the server's ids for the FIM probe differ from the "
                 "local vocabulary's (-m names a GGUF of another model?); prompts go as text");
    snprintf(r->health, sizeof r->health, "ok");
    fim__json_free(j);
    free(mine);
    free(answer.p);
}

/* ---- the backend ---- */

static int remote_start(fim_backend *b, const fim_gen *g, const atomic_int *cancel, fim_stats *st,
                        fim_err *err)
{
    (void)cancel;
    remote *r = (remote *)b;
    handshake(r);
    r->gen = *g;
    r->ctx.n = 0;
    fim__ids_push(&r->ctx, g->ids, g->n);
    r->taken = 0;
    r->restarted = false;
    r->server_cached = &st->server_cached;
    snprintf(r->rid, sizeof r->rid, "fimd-%d-%lu", (int)getpid(), ++r->seq);
    return open_stream(r, err);
}

static void give_up_stream(remote *r)
{
    bool unfinished = r->easy && !r->transfer_done;
    close_stream(r);
    if (!unfinished || !r->api->abort_rid) return;
    fim_buf body = {0}, answer = {0};
    fim__buf_fmt(&body, "{\"rid\":\"%s\"}", r->rid);
    long status;
    char why[256];
    post_once(r, r->abort_url, &body, ABORT_TIMEOUT_MS, &answer, &status, why, sizeof why);
    free(body.p);
    free(answer.p);
}

static int remote_next(fim_backend *b, fim_step *step, const atomic_int *cancel, fim_stats *st,
                       fim_err *err)
{
    remote *r = (remote *)b;
    if (r->restart && open_stream(r, err)) return -1;
    int rc = pump(r, cancel, err);
    if (rc) {
        if (rc < 0) snprintf(r->health, sizeof r->health, "%s", err->msg);
        return rc;
    }
    if (r->server_error[0] && !st->note[0]) /* kept going: the tokens so far stand */
        snprintf(st->note, sizeof st->note,
                 "the server's stream said: %.200s (after %d tokens, kept)", r->server_error,
                 st->generated);
    if (r->q_head < r->q_n) {
        const token_item *t = &r->q[r->q_head];
        step->token = t->id;
        step->n_top = t->n_top;
        memcpy(step->top, t->top, sizeof t->top[0] * (size_t)t->n_top);
        return 0;
    }
    /* the stream is over: say how, when it was not a clean end */
    char why[512] = "";
    if (r->http_status >= 400)
        http_error(r, why, sizeof why);
    else if (r->transfer_done && r->result != CURLE_OK)
        snprintf(why, sizeof why, "%s: %s", r->gen_url, curl_easy_strerror(r->result));
    else if (r->server_error[0])
        snprintf(why, sizeof why, "the server's stream said: %s", r->server_error);
    else if (!r->stream_done)
        snprintf(why, sizeof why, "the stream ended without its final message");
    snprintf(r->health, sizeof r->health, "%s", why[0] ? why : "ok");
    if (!why[0]) return 2;
    bool failed = r->http_status >= 400 || (r->transfer_done && r->result != CURLE_OK);
    if (failed && st->generated == 0) return fim__fail(err, "%s", why);
    if (!st->note[0] || !r->server_error[0])
        snprintf(st->note, sizeof st->note, "%.200s (after %d tokens, kept)", why, st->generated);
    return 2;
}

static int remote_accept(fim_backend *b, int32_t tok, const atomic_int *cancel, fim_err *err)
{
    (void)cancel, (void)err;
    remote *r = (remote *)b;
    fim__ids_push(&r->ctx, &tok, 1);
    r->taken++;
    if (r->q_head < r->q_n && r->q[r->q_head].id == tok) {
        r->q_head++;
        return 0;
    }
    /* the engine chose another token (healing): continue from it in a new request */
    give_up_stream(r);
    r->restart = r->restarted = true;
    return 0;
}

static void remote_finish(fim_backend *b, bool cancelled, fim_stats *st)
{
    (void)cancelled, (void)st;
    remote *r = (remote *)b;
    give_up_stream(r);
    r->server_cached = NULL;
}

static void remote_close_doc(fim_backend *b, const char *doc)
{
    (void)b, (void)doc; /* the server keeps its own caches */
}

static size_t remote_cache_bytes(const fim_backend *b)
{
    (void)b;
    return 0;
}

static int remote_n_docs(const fim_backend *b)
{
    (void)b;
    return 0;
}

static void remote_status(const fim_backend *b, fim_backend_status *out)
{
    const remote *r = (const remote *)b;
    snprintf(out->kind, sizeof out->kind, "%s", r->api->name);
    snprintf(out->url, sizeof out->url, "%s", r->root);
    snprintf(out->desc, sizeof out->desc, "%s at %s, prompts as %s", r->api->name, r->root,
             r->ids_ok ? "token ids (tokenizer checked)" : "text");
    snprintf(out->health, sizeof out->health, "%s", r->health);
    snprintf(out->note, sizeof out->note, "%s", r->note);
    out->prompt_ids = r->ids_ok;
}

static void remote_free(fim_backend *b)
{
    remote *r = (remote *)b;
    if (!r) return;
    close_stream(r);
    if (r->multi) curl_multi_cleanup(r->multi);
    model_vocab_free(r->vocab);
    free(r->root), free(r->gen_url), free(r->tokenize_url), free(r->abort_url);
    free(r->model_name), free(r->ca_file);
    if (r->auth) explicit_bzero(r->auth, strlen(r->auth));
    free(r->auth);
    free(r->ctx.v), free(r->body.p), free(r->in.p), free(r->q);
    free(r);
}

static const fim_backend_ops remote_ops = {
    .start = remote_start,
    .next = remote_next,
    .accept = remote_accept,
    .finish = remote_finish,
    .close_doc = remote_close_doc,
    .cache_bytes = remote_cache_bytes,
    .n_docs = remote_n_docs,
    .status = remote_status,
    .free = remote_free,
};

/* ---- opening ---- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static char *joined(const char *a, const char *b)
{
    char *s = NULL;
    return asprintf(&s, "%s%s", a, b) < 0 ? NULL : s;
}

/* Plain http is fine to this machine; anywhere else code and the API key travel readable. */
static bool loopback(const char *url)
{
    const char *h = strstr(url, "://");
    h = h ? h + 3 : url;
    static const char *const local[] = {"localhost", "127.", "[::1]"};
    for (size_t i = 0; i < sizeof local / sizeof *local; i++)
        if (!strncmp(h, local[i], strlen(local[i]))) return true;
    return false;
}

static int set_urls(remote *r, const char *url, fim_err *err)
{
    if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))
        return fim__fail(err, "backend URL '%s' must start with http:// or https://", url);
    r->root = strdup(url);
    if (!r->root) return fim__fail(err, "out of memory");
    size_t n = strlen(r->root);
    while (n > 8 && r->root[n - 1] == '/') r->root[--n] = 0;
    if (r->api->v1_base && n > 3 && !strcmp(r->root + n - 3, "/v1")) r->root[n -= 3] = 0;
    r->gen_url = joined(r->root, r->api->gen_path);
    r->tokenize_url = joined(r->root, r->api->tokenize_path ? r->api->tokenize_path : "");
    r->abort_url = joined(r->root, "/abort_request");
    if (!r->gen_url || !r->tokenize_url || !r->abort_url) return fim__fail(err, "out of memory");
    if (!strncmp(url, "http://", 7) && !loopback(url))
        snprintf(r->note, sizeof r->note,
                 "warning: %s is plain http to another host: code%s travel unencrypted", r->root,
                 r->auth ? " and the API key" : "");
    return 0;
}

static int set_key(remote *r, const char *env, fim_err *err)
{
    if (!env || !*env) return 0;
    const char *key = getenv(env);
    if (!key || !*key) {
        snprintf(r->note, sizeof r->note,
                 "apiKeyEnv names %s, which is not set: no API key is sent", env);
        return 0;
    }
    if (strpbrk(key, "\r\n")) return fim__fail(err, "the API key in %s contains a line break", env);
    if (asprintf(&r->auth, "Authorization: Bearer %s", key) < 0)
        return fim__fail(err, "out of memory");
    return 0;
}

fim_backend *fim__remote_new(const fim_remote_config *rc, model_vocab *vocab, int n_ctx,
                             bool vocab_is_bundled, fim_err *err)
{
    const api_desc *api = NULL;
    for (size_t i = 0; i < sizeof apis / sizeof *apis; i++)
        if (!strcmp(apis[i].name, rc->api)) api = &apis[i];
    if (!api) {
        model_vocab_free(vocab);
        fim__fail(err, "unknown backend API '%s' (openai, sglang, llamacpp or ollama)", rc->api);
        return NULL;
    }
    pthread_once(&curl_once, curl_init);
    remote *r = calloc(1, sizeof *r);
    if (!r) {
        model_vocab_free(vocab);
        fim__fail(err, "out of memory");
        return NULL;
    }
    r->base.ops = &remote_ops;
    r->base.vocab = r->vocab = vocab;
    r->base.n_ctx = n_ctx;
    r->api = api;
    r->ids_ok = api->ids;
    r->timeout_ms = rc->timeout_ms > 0 ? rc->timeout_ms : DEFAULT_TIMEOUT_MS;
    r->model_name = rc->model ? strdup(rc->model) : NULL;
    r->ca_file = rc->ca_file && *rc->ca_file ? strdup(rc->ca_file) : NULL;
    snprintf(r->health, sizeof r->health, "unknown");
    r->multi = curl_multi_init();
    if (!r->multi || set_key(r, rc->api_key_env, err) || set_urls(r, rc->url ? rc->url : "", err)) {
        if (!r->multi) fim__fail(err, "libcurl could not start");
        remote_free(&r->base);
        return NULL;
    }
    if (vocab_is_bundled) {
        r->ids_ok = false, r->checked = true;
        snprintf(r->note, sizeof r->note,
                 "no -m vocabulary given: the bundled one counts tokens and prompts go as text");
    }
    handshake(r);
    return &r->base;
}
