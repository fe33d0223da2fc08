/* lsp/server.c — the Language Server: a libev loop reads stdin, frames and parses messages, keeps
 * documents in sync, and hands completion jobs to the inference worker; answers come back through
 * ev_async. The loop never waits on the model. One `server` struct holds all state. */
#define _GNU_SOURCE
#include "lsp/lsp_internal.h"

#include <ev.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FIMD_VERSION "0.1.0"

enum {
    ERR_PARSE = -32700,
    ERR_INVALID_REQUEST = -32600,
    ERR_METHOD = -32601,
    ERR_PARAMS = -32602,
    ERR_INTERNAL = -32603,
    ERR_NOT_INITIALIZED = -32002,
    ERR_CANCELLED = -32800,
    ERR_MODIFIED = -32801,
};

enum { MAX_CONTEXT_DOCS = 64 }; /* open documents that may contribute definitions */

typedef struct server {
    struct ev_loop *loop;
    ev_io in_w;
    ev_async done_w;
    lsp_options opt;
    lsp_reader rd;
    enum { ST_NEW, ST_READY, ST_SHUT_DOWN } state;
    bool exiting;
    int exit_code;
    enum lsp_encoding enc;
    bool client_progress;
    lsp_docs docs;
    lsp_worker *worker;
    fim_config cfg;
    lsp_backend_cfg be; /* the model (or the remote backend and its vocabulary) to load */
    int progress_seq;
    char progress_token[64];
    /* the last completion, for fimd/status */
    bool have_last;
    fim_stats last;
    long requests, answered, cancelled;
    long shown, accepted; /* inline completions with text, and those the editor reported accepted */
    long type_through_hits, prefetch_hits; /* answers from a kept completion (no model work) */
    FILE *log;
    bool fuzzing; /* lsp__fuzz_feed: never load a model named by the input */
} server;

/* ---- output ---- */

static void logf_(server *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(server *s, const char *fmt, ...)
{
    if (!s->log) return;
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    fprintf(s->log, "%lld.%03ld ", (long long)t.tv_sec, t.tv_nsec / 1000000);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(s->log, fmt, ap);
    va_end(ap);
    fputc('\n', s->log);
    fflush(s->log);
}

static void send_raw(server *s, const jw *body)
{
    char hdr[64];
    int h = snprintf(hdr, sizeof hdr, "Content-Length: %zu\r\n\r\n", body->n);
    const char *parts[2] = {hdr, body->p};
    size_t lens[2] = {(size_t)h, body->n};
    for (int k = 0; k < 2; k++) {
        size_t off = 0;
        while (off < lens[k]) {
            ssize_t w = write(s->opt.out_fd, parts[k] + off, lens[k] - off);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) {
                logf_(s, "write failed: %s", strerror(errno));
                s->exiting = true;
                ev_break(s->loop, EVBREAK_ALL);
                return;
            }
            off += (size_t)w;
        }
    }
}

static void reply_result(server *s, const char *id, const jw *result)
{
    jw w = {0};
    lsp__jw_fmt(&w, "{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":", id ? id : "null");
    lsp__jw_raw(&w, result->p, result->n);
    lsp__jw_lit(&w, "}");
    send_raw(s, &w);
    lsp__jw_free(&w);
    s->answered++;
}

static void reply_error(server *s, const char *id, int code, const char *msg)
{
    jw w = {0};
    lsp__jw_fmt(&w, "{\"jsonrpc\":\"2.0\",\"id\":%s,\"error\":{\"code\":%d,\"message\":",
                id ? id : "null", code);
    lsp__jw_str(&w, msg, strlen(msg));
    lsp__jw_lit(&w, "}}");
    send_raw(s, &w);
    lsp__jw_free(&w);
    logf_(s, "error %d for id %s: %s", code, id ? id : "null", msg);
    s->answered++;
}

static void notify(server *s, const char *method, const jw *params)
{
    jw w = {0};
    lsp__jw_fmt(&w, "{\"jsonrpc\":\"2.0\",\"method\":\"%s\",\"params\":", method);
    lsp__jw_raw(&w, params->p, params->n);
    lsp__jw_lit(&w, "}");
    send_raw(s, &w);
    lsp__jw_free(&w);
}

/* window/logMessage: 1 error, 2 warning, 3 info, 4 log */
static void log_message(server *s, int type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void log_message(server *s, int type, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    logf_(s, "%s", msg);
    jw p = {0};
    lsp__jw_fmt(&p, "{\"type\":%d,\"message\":", type);
    lsp__jw_str(&p, msg, strlen(msg));
    lsp__jw_lit(&p, "}");
    notify(s, "window/logMessage", &p);
    lsp__jw_free(&p);
}

static void progress(server *s, const char *kind, const char *title, const char *message)
{
    if (!s->progress_token[0]) return;
    jw p = {0};
    lsp__jw_fmt(&p, "{\"token\":\"%s\",\"value\":{\"kind\":\"%s\"", s->progress_token, kind);
    if (title) lsp__jw_lit(&p, ",\"title\":"), lsp__jw_str(&p, title, strlen(title));
    if (message) lsp__jw_lit(&p, ",\"message\":"), lsp__jw_str(&p, message, strlen(message));
    lsp__jw_lit(&p, "}}");
    notify(s, "$/progress", &p);
    lsp__jw_free(&p);
    if (!strcmp(kind, "end")) s->progress_token[0] = 0;
}

/* ---- configuration ---- */

/* Replace *field with the string at value i when it differs; true when it changed. A JSON null or
 * "" clears it. */
static bool set_str(char **field, const jdoc *d, int i)
{
    if (i < 0) return false;
    char *v = lsp__jstr(d, i, NULL);
    if (v && !*v) free(v), v = NULL;
    if (!v && !lsp__jis(d, i, JSMN_PRIMITIVE)) return false; /* not a string or null: ignored */
    bool same = (!v && !*field) || (v && *field && !strcmp(v, *field));
    if (same) {
        free(v);
        return false;
    }
    free(*field);
    *field = v;
    return true;
}

/* `backend: {api, url, model, apiKeyEnv, caFile, timeoutMs}` (api "" or "local": in-process). */
static bool apply_backend(server *s, const jdoc *d, int obj)
{
    lsp_backend_cfg *b = &s->be;
    if (!lsp__jis(d, obj, JSMN_OBJECT)) return false;
    bool changed = set_str(&b->api, d, lsp__jget(d, obj, "api"));
    if (b->api && !strcmp(b->api, "local")) free(b->api), b->api = NULL;
    changed |= set_str(&b->url, d, lsp__jget(d, obj, "url"));
    changed |= set_str(&b->model_name, d, lsp__jget(d, obj, "model"));
    changed |= set_str(&b->api_key_env, d, lsp__jget(d, obj, "apiKeyEnv"));
    changed |= set_str(&b->ca_file, d, lsp__jget(d, obj, "caFile"));
    long v;
    if (lsp__jint(d, lsp__jget(d, obj, "timeoutMs"), &v) && v > 0 && v <= 600000 &&
        v != b->timeout_ms)
        b->timeout_ms = (int)v, changed = true;
    return changed;
}

/* Apply the keys of a settings object; returns true when what to load changed. */
static bool apply_config(server *s, const jdoc *d, int obj)
{
    if (!lsp__jis(d, obj, JSMN_OBJECT)) return false;
    int nested = lsp__jget(d, obj, "fimd");
    if (lsp__jis(d, nested, JSMN_OBJECT)) obj = nested;
    long v;
    double f;
    bool changed = false;
    if (lsp__jint(d, lsp__jget(d, obj, "maxTokens"), &v) && v > 0 && v <= 4096)
        s->cfg.max_tokens = (int)v;
    if (lsp__jint(d, lsp__jget(d, obj, "prefixTokens"), &v) && v >= 0 && v <= 1 << 20)
        s->cfg.prefix_tokens = (int)v;
    if (lsp__jint(d, lsp__jget(d, obj, "suffixTokens"), &v) && v >= 0 && v <= 1 << 20)
        s->cfg.suffix_tokens = (int)v;
    if (lsp__jint(d, lsp__jget(d, obj, "relatedTokens"), &v) && v >= 0 && v <= 1 << 20)
        s->cfg.related_tokens = (int)v;
    if (lsp__jint(d, lsp__jget(d, obj, "cacheMegabytes"), &v) && v > 0)
        s->cfg.cache_bytes = (size_t)v << 20;
    if (lsp__jnum(d, lsp__jget(d, obj, "temperature"), &f) && f >= 0 && f <= 10)
        s->cfg.temperature = (float)f;
    if (lsp__jnum(d, lsp__jget(d, obj, "topP"), &f) && f > 0 && f <= 1) s->cfg.top_p = (float)f;
    lsp__jbool(d, lsp__jget(d, obj, "typeThrough"), &s->cfg.type_through);
    lsp__jbool(d, lsp__jget(d, obj, "prefetch"), &s->cfg.prefetch);
    bool on;
    if (lsp__jbool(d, lsp__jget(d, obj, "drafts"), &on)) s->cfg.drafts = on ? FIM_DRAFTS : 0;
    if (lsp__jint(d, lsp__jget(d, obj, "threads"), &v) && v >= 0 && v <= 1024 && v != s->be.threads)
        s->be.threads = (int)v, changed = true;
    char *model = lsp__jstr(d, lsp__jget(d, obj, "model"), NULL);
    if (model && *model && (!s->be.model_path || strcmp(model, s->be.model_path))) {
        free(s->be.model_path);
        s->be.model_path = model;
        s->be.bundled = false;
        changed = true;
    } else {
        free(model);
    }
    changed |= apply_backend(s, d, lsp__jget(d, obj, "backend"));
    return changed;
}

static void start_load(server *s)
{
    if (s->fuzzing) return;
    if ((!s->be.model_path || !*s->be.model_path) && s->opt.bundled_model) {
        free(s->be.model_path);
        s->be.model_path = strdup(s->opt.bundled_model);
        s->be.bundled = true;
        if (!s->be.api)
            log_message(s, 3,
                        "fimd: no model configured; using the bundled fimd-tiny-code, a small "
                        "model for trying "
                        "fimd. For real work set `model` (or FIMD_MODEL, --model) to a "
                        "DeepSeek-Coder-V2-Lite GGUF");
    }
    if (!s->be.model_path || !*s->be.model_path) {
        log_message(
            s, 2,
            "fimd: no model configured; set FIMD_MODEL, --model or initializationOptions.model "
            "to a DeepSeek-Coder-V2 GGUF");
        return;
    }
    /* drop every cached answer first: they belong to the old model */
    job *stale = lsp__worker_cancel_doc(s->worker, NULL, ERR_CANCELLED);
    while (stale) {
        job *n = stale->next;
        reply_error(s, stale->id, ERR_CANCELLED, "cancelled: the model is being replaced");
        lsp__job_free(stale);
        stale = n;
    }
    job *j = calloc(1, sizeof *j);
    j->kind = JOB_LOAD;
    lsp__backend_cfg_copy(&j->backend, &s->be);
    if (s->client_progress) {
        snprintf(s->progress_token, sizeof s->progress_token, "fimd-load-%d", ++s->progress_seq);
        jw p = {0};
        lsp__jw_fmt(&p,
                    "{\"jsonrpc\":\"2.0\",\"id\":\"fimd-progress-%d\",\"method\":\"window/"
                    "workDoneProgress/create\","
                    "\"params\":{\"token\":\"%s\"}}",
                    s->progress_seq, s->progress_token);
        send_raw(s, &p);
        lsp__jw_free(&p);
        progress(s, "begin", "fimd: loading model", s->be.api ? s->be.url : s->be.model_path);
    }
    if (s->be.api)
        logf_(s, "backend %s at %s, vocabulary %s", s->be.api, s->be.url ? s->be.url : "(no url)",
              s->be.model_path);
    else
        logf_(s, "loading %s", s->be.model_path);
    lsp__worker_submit(s->worker, j);
}

/* ---- requests ---- */

static const char *enc_name(enum lsp_encoding e)
{
    return e == LSP_UTF8 ? "utf-8" : e == LSP_UTF32 ? "utf-32" : "utf-16";
}

static void on_initialize(server *s, const jdoc *d, int params, const char *id)
{
    if (s->state != ST_NEW) {
        reply_error(s, id, ERR_INVALID_REQUEST, "initialize was already received");
        return;
    }
    int caps = lsp__jget(d, params, "capabilities");
    int encs = lsp__jget(d, lsp__jget(d, caps, "general"), "positionEncodings");
    bool u8 = false, u32 = false;
    if (lsp__jis(d, encs, JSMN_ARRAY))
        for (int i = encs + 1, k = 0; k < d->t[encs].size; k++, i = lsp__jskip(d, i)) {
            u8 |= lsp__jstr_eq(d, i, "utf-8");
            u32 |= lsp__jstr_eq(d, i, "utf-32");
        }
    s->enc = u8 ? LSP_UTF8 : u32 ? LSP_UTF32 : LSP_UTF16;
    bool wdp = false;
    lsp__jbool(d, lsp__jget(d, lsp__jget(d, caps, "window"), "workDoneProgress"), &wdp);
    s->client_progress = wdp;
    apply_config(s, d, lsp__jget(d, params, "initializationOptions"));
    s->state = ST_READY;
    jw r = {0};
    lsp__jw_fmt(
        &r,
        "{\"capabilities\":{\"positionEncoding\":\"%s\","
        "\"textDocumentSync\":{\"openClose\":true,\"change\":2,\"save\":{\"includeText\":false}},"
        "\"completionProvider\":{\"resolveProvider\":false,\"triggerCharacters\":[]},"
        "\"inlineCompletionProvider\":true,"
        "\"executeCommandProvider\":{\"commands\":[\"fimd.accept\"]}},"
        "\"serverInfo\":{\"name\":\"fimd\",\"version\":\"" FIMD_VERSION "\"}}",
        enc_name(s->enc));
    reply_result(s, id, &r);
    lsp__jw_free(&r);
    logf_(s, "initialized: position encoding %s, progress %s", enc_name(s->enc),
          wdp ? "yes" : "no");
}

static void on_shutdown(server *s, const char *id)
{
    /* all cleanup happens here: some clients kill the process right after `exit` */
    job *pending = lsp__worker_cancel_doc(s->worker, NULL, ERR_CANCELLED);
    lsp__worker_stop(s->worker); /* joins the thread; the model and caches are freed */
    for (int pass = 0; pass < 2; pass++) {
        for (job *j = pass ? lsp__worker_take(s->worker) : pending, *next; j; j = next) {
            next = j->next;
            if (j->kind == JOB_COMPLETE)
                reply_error(s, j->id, ERR_CANCELLED, "cancelled: server shutting down");
            lsp__job_free(j);
        }
    }
    s->state = ST_SHUT_DOWN;
    jw r = {0};
    lsp__jw_lit(&r, "null");
    reply_result(s, id, &r);
    lsp__jw_free(&r);
}

/* textDocument + position of a request, validated. Returns the document or NULL after replying. */
static lsp_doc *request_doc(server *s, const jdoc *d, int params, const char *id, lsp_pos *pos)
{
    char *uri = lsp__jstr(d, lsp__jget(d, lsp__jget(d, params, "textDocument"), "uri"), NULL);
    int p = lsp__jget(d, params, "position");
    if (!uri || !lsp__jint(d, lsp__jget(d, p, "line"), &pos->line) ||
        !lsp__jint(d, lsp__jget(d, p, "character"), &pos->character) || pos->line < 0 ||
        pos->character < 0) {
        reply_error(
            s, id, ERR_PARAMS,
            "expected textDocument.uri and a position with non-negative line and character");
        free(uri);
        return NULL;
    }
    lsp_doc *doc = lsp__doc_find(&s->docs, uri);
    if (!doc) reply_error(s, id, ERR_PARAMS, "unknown document (not opened with didOpen)");
    free(uri);
    return doc;
}

static void answer_cancelled(server *s, job *list, int code, const char *why)
{
    while (list) {
        job *n = list->next;
        reply_error(s, list->id, code, why);
        s->cancelled++;
        lsp__job_free(list);
        list = n;
    }
}

/* The documents that may contribute definitions to a context. */
static int open_docs(server *s, fim_doc **open)
{
    int n = 0;
    for (int i = 0; i < s->docs.n && n < MAX_CONTEXT_DOCS; i++) open[n++] = s->docs.v[i].fd;
    return n;
}

/* Jobs taken back from the worker that nobody waits for (prefetches). */
static void drop_jobs(job *list)
{
    while (list) {
        job *n = list->next;
        lsp__job_free(list);
        list = n;
    }
}

/* After ghost text `mid` is shown at `cursor`, compute the next completion as if it were accepted
 * (llama.vim does the same): a low-priority job on a copy of the document with mid inserted. A
 * prefetch of the same branch already pending or running is kept; others of the document go. */
static void prefetch_branch(server *s, lsp_doc *doc, size_t cursor, const char *mid, size_t n)
{
    if (!s->cfg.prefetch || !n || s->fuzzing) return;
    fim_doc *branch = fim_doc_copy(doc->fd);
    if (!branch) return;
    fim_doc_replace(branch, cursor, cursor, mid, n);
    size_t len;
    const char *text = fim_doc_text(branch, &len);
    bool kept;
    drop_jobs(lsp__worker_cancel_prefetch(s->worker, doc->uri, text, len, cursor + n, true, &kept));
    if (!kept) {
        fim_doc *open[MAX_CONTEXT_DOCS];
        int n_open = 0;
        for (int i = 0, all = open_docs(s, open); i < all; i++) /* not the document's old self */
            if (open[i] != doc->fd) open[n_open++] = open[i];
        job *j = calloc(1, sizeof *j);
        j->kind = JOB_PREFETCH;
        j->doc = strdup(doc->uri);
        j->ctx = fim_context_new(branch, cursor + n, open, n_open);
        j->cfg = s->cfg;
        if (!j->ctx) abort();
        lsp__worker_submit(s->worker, j);
    }
    fim_doc_free(branch);
}

static void on_completion(server *s, const jdoc *d, int params, const char *id, bool inline_kind)
{
    lsp_pos pos;
    lsp_doc *doc = request_doc(s, d, params, id, &pos);
    if (!doc) return;
    /* a newer request for the same document supersedes the older one */
    answer_cancelled(s, lsp__worker_cancel_doc(s->worker, doc->uri, ERR_CANCELLED), ERR_CANCELLED,
                     "cancelled: superseded by a newer request");
    size_t cursor;
    lsp_offset_of(doc->text, doc->len, pos, s->enc, &cursor);
    pos = lsp_pos_of(doc->text, doc->len, cursor, s->enc); /* clamped, as the reply will use it */
    /* a prefetch of another state of this document is stale; one of this very state that runs is
     * kept, and this request, queued behind it, gets its answer (a pending one would run after this
     * request, which computes the same itself) */
    bool kept;
    drop_jobs(lsp__worker_cancel_prefetch(s->worker, doc->uri, doc->text, doc->len, cursor, false,
                                          &kept));
    fim_doc *open[MAX_CONTEXT_DOCS];
    int n_open = open_docs(s, open);
    job *j = calloc(1, sizeof *j);
    j->kind = JOB_COMPLETE;
    j->id = strdup(id);
    j->doc = strdup(doc->uri);
    j->inline_kind = inline_kind;
    j->ctx = fim_context_new(doc->fd, cursor, open, n_open);
    if (!j->ctx) abort();
    j->pos = pos;
    j->cfg = s->cfg;
    s->requests++;
    lsp__worker_submit(s->worker, j);
}

static void write_range(jw *w, lsp_pos p)
{
    lsp__jw_fmt(
        w, "{\"start\":{\"line\":%ld,\"character\":%ld},\"end\":{\"line\":%ld,\"character\":%ld}}",
        p.line, p.character, p.line, p.character);
}

static void answer_job(server *s, job *j)
{
    if (j->status >= 0) { /* done or cancelled: both are "the last completion" for fimd/status */
        s->last = j->st;
        s->have_last = true;
    }
    if (j->status == 1) {
        reply_error(s, j->id, j->cancel_code ? j->cancel_code : ERR_CANCELLED,
                    j->cancel_code == ERR_MODIFIED ? "content modified" : "request cancelled");
        s->cancelled++;
        return;
    }
    if (j->status < 0) {
        reply_error(s, j->id, ERR_INTERNAL, j->err);
        return;
    }
    logf_(s,
          "completion %s: %d prompt tokens (%d reused, %d evaluated, %d cached by the server) %.1f "
          "ms, first token "
          "%.1f ms, %d generated %.1f ms, stop %s",
          j->id, j->st.prompt_tokens, j->st.reused, j->st.evaluated, j->st.server_cached,
          j->st.prompt_ms, j->st.first_token_ms, j->st.generated, j->st.gen_ms,
          fim_stop_name(j->st.stop));
    if (j->st.note[0]) logf_(s, "completion %s: %s", j->id, j->st.note);
    s->type_through_hits += j->st.source == FIM_FROM_TYPE_THROUGH;
    s->prefetch_hits += j->st.source == FIM_FROM_PREFETCH;
    size_t n = strlen(j->out);
    jw r = {0};
    if (j->inline_kind) {
        lsp__jw_lit(&r, "{\"items\":[");
        if (n) {
            lsp__jw_lit(&r, "{\"insertText\":");
            lsp__jw_str(&r, j->out, n);
            lsp__jw_lit(&r, ",\"range\":");
            write_range(&r, j->pos);
            /* the editor runs this command when the user accepts: fimd counts acceptances and
             * makes sure the accepted branch is being prefetched */
            lsp__jw_lit(&r, ",\"command\":{\"title\":\"fimd: accepted\",\"command\":\"fimd."
                            "accept\",\"arguments\":[{\"uri\":");
            lsp__jw_str(&r, j->doc, strlen(j->doc));
            lsp__jw_fmt(&r, ",\"line\":%ld,\"character\":%ld,\"text\":", j->pos.line,
                        j->pos.character);
            lsp__jw_str(&r, j->out, n);
            lsp__jw_fmt(&r, ",\"shown\":%ld}]}}", ++s->shown);
        }
        lsp__jw_lit(&r, "]}");
    } else {
        lsp__jw_lit(&r, "{\"isIncomplete\":true,\"items\":[");
        if (n) {
            const char *nl = memchr(j->out, '\n', n);
            size_t first = nl ? (size_t)(nl - j->out) : n;
            lsp__jw_lit(&r, "{\"label\":");
            lsp__jw_str(&r, j->out, first);
            lsp__jw_lit(&r, ",\"kind\":1,\"detail\":\"fimd\",\"insertTextFormat\":1,\"filterText\":"
                            "\"\",\"textEdit\":{\"range\":");
            write_range(&r, j->pos);
            lsp__jw_lit(&r, ",\"newText\":");
            lsp__jw_str(&r, j->out, n);
            lsp__jw_lit(&r, "}}");
        }
        lsp__jw_lit(&r, "]}");
    }
    reply_result(s, j->id, &r);
    lsp__jw_free(&r);
    lsp_doc *doc = lsp__doc_find(&s->docs, j->doc);
    size_t len, cursor = fim_context_cursor(j->ctx);
    const char *asked = fim_context_text(j->ctx, &len);
    if (j->inline_kind && doc && doc->len == len && !memcmp(doc->text, asked, len))
        prefetch_branch(s, doc, cursor, j->out, n); /* the document is still as it was asked */
}

/* The backend part of fimd/status: never the API key (only the variable's name). */
static void write_backend(jw *r, const fim_backend_status *b, bool ready)
{
    const char *kind = b->kind[0] ? b->kind : "none";
    lsp__jw_fmt(r, ",\"threads\":%d,\"backend\":{\"kind\":", b->threads);
    lsp__jw_str(r, kind, strlen(kind));
    lsp__jw_lit(r, ",\"url\":");
    lsp__jw_str(r, b->url, strlen(b->url));
    const char *health = ready ? b->health : "not loaded";
    lsp__jw_lit(r, ",\"health\":");
    lsp__jw_str(r, health, strlen(health));
    lsp__jw_lit(r, ",\"note\":");
    lsp__jw_str(r, b->note, strlen(b->note));
    lsp__jw_fmt(r, ",\"promptIds\":%s}", b->prompt_ids ? "true" : "false");
}

static void log_ready(server *s, const lsp_backend_cfg *b)
{
    worker_status ws;
    lsp__worker_status(s->worker, &ws);
    if (b->api)
        log_message(s, 3, "fimd: backend ready: %s", ws.backend.desc);
    else
        log_message(s, 3, "fimd: model ready: %s", b->model_path);
    if (ws.backend.note[0]) log_message(s, 2, "fimd: %s", ws.backend.note);
    if (b->api && strcmp(ws.backend.health, "ok"))
        log_message(s, 2, "fimd: backend health: %s", ws.backend.health);
}

static void on_status(server *s, const char *id)
{
    worker_status ws;
    lsp__worker_status(s->worker, &ws);
    static const char *states[] = {"none", "loading", "ready", "failed"};
    jw r = {0};
    lsp__jw_lit(&r, "{\"model\":");
    const char *mp = ws.model[0] ? ws.model : s->be.model_path ? s->be.model_path : "";
    lsp__jw_str(&r, mp, strlen(mp));
    lsp__jw_fmt(&r, ",\"bundledModel\":%s", s->be.bundled ? "true" : "false");
    if (s->be.bundled && !s->be.api)
        lsp__jw_fmt(
            &r, ",\"note\":\"%s\"",
            "the bundled small model, for trying fimd; use DeepSeek-Coder-V2-Lite for real work");
    lsp__jw_fmt(&r, ",\"state\":\"%s\",\"description\":", states[ws.state]);
    lsp__jw_str(&r, ws.backend.desc, strlen(ws.backend.desc));
    write_backend(&r, &ws.backend, ws.state == LOAD_READY);
    lsp__jw_lit(&r, ",\"error\":");
    lsp__jw_str(&r, ws.error, strlen(ws.error));
    lsp__jw_fmt(&r,
                ",\"positionEncoding\":\"%s\",\"openDocuments\":%d,\"cachedDocuments\":%d,"
                "\"cacheBytes\":%zu,"
                "\"requests\":%ld,\"cancelled\":%ld,\"shown\":%ld,\"accepted\":%ld,"
                "\"type_through_hits\":%ld,\"prefetch_hits\":%ld,\"typeThrough\":%s,"
                "\"prefetch\":%s,\"prefetching\":%d,\"drafted\":%ld,\"draftAccepted\":%ld",
                enc_name(s->enc), s->docs.n, ws.cached_docs, ws.cache_bytes, s->requests,
                s->cancelled, s->shown, s->accepted, s->type_through_hits, s->prefetch_hits,
                s->cfg.type_through ? "true" : "false", s->cfg.prefetch ? "true" : "false",
                ws.prefetching, ws.drafted, ws.draft_accepted);
    lsp__jw_lit(&r, ",\"documents\":[");
    for (int i = 0; i < s->docs.n; i++) {
        const lsp_doc *doc = &s->docs.v[i];
        uint64_t h = 1469598103934665603ULL; /* FNV-1a of the text: lets clients check sync */
        for (size_t k = 0; k < doc->len; k++) h = (h ^ (uint8_t)doc->text[k]) * 1099511628211ULL;
        lsp__jw_raw(&r, i ? ",{\"uri\":" : "{\"uri\":", i ? 8 : 7);
        lsp__jw_str(&r, doc->uri, strlen(doc->uri));
        lsp__jw_fmt(&r, ",\"version\":%ld,\"bytes\":%zu,\"fnv1a\":\"%016llx\"}", doc->version,
                    doc->len, (unsigned long long)h);
    }
    lsp__jw_lit(&r, "]");
    if (s->have_last) {
        lsp__jw_fmt(
            &r,
            ",\"last\":{\"promptTokens\":%d,\"tokensReused\":%d,\"tokensEvaluated\":%d,"
            "\"tokensGenerated\":%d,\"promptMs\":%.2f,\"generationMs\":%.2f,\"firstTokenMs\":%.2f,"
            "\"totalMs\":%.2f,\"multiLine\":%s,\"stop\":\"%s\"",
            s->last.prompt_tokens, s->last.reused, s->last.evaluated, s->last.generated,
            s->last.prompt_ms, s->last.gen_ms, s->last.first_token_ms,
            s->last.prompt_ms + s->last.gen_ms, s->last.multi_line ? "true" : "false",
            fim_stop_name(s->last.stop));
        if (s->last.server_cached >= 0)
            lsp__jw_fmt(&r, ",\"serverCachedTokens\":%d", s->last.server_cached);
        lsp__jw_lit(&r, "}");
    }
    lsp__jw_lit(&r, "}");
    reply_result(s, id, &r);
    lsp__jw_free(&r);
}

/* The user accepted `text` at pos. Editors run the command before or after their edit arrives:
 * before, the text is not there yet and the branch is prefetched from the document as it is (kept
 * if already under way); after, the document is the branch and the next request computes it. */
static void on_accept(server *s, lsp_doc *doc, lsp_pos pos, const char *text, size_t n,
                      const char *id)
{
    s->accepted++;
    size_t at;
    lsp_offset_of(doc->text, doc->len, pos, s->enc, &at);
    if (n > doc->len - at || memcmp(doc->text + at, text, n)) prefetch_branch(s, doc, at, text, n);
    jw r = {0};
    lsp__jw_lit(&r, "null");
    reply_result(s, id, &r);
    lsp__jw_free(&r);
}

static void on_execute(server *s, const jdoc *d, int params, const char *id)
{
    if (!lsp__jstr_eq(d, lsp__jget(d, params, "command"), "fimd.accept")) {
        reply_error(s, id, ERR_PARAMS, "unknown command (fimd offers fimd.accept)");
        return;
    }
    int a = lsp__jelem(d, lsp__jget(d, params, "arguments"), 0);
    char *uri = lsp__jstr(d, lsp__jget(d, a, "uri"), NULL);
    size_t n;
    char *text = lsp__jstr(d, lsp__jget(d, a, "text"), &n);
    lsp_pos pos;
    lsp_doc *doc = uri ? lsp__doc_find(&s->docs, uri) : NULL;
    if (!uri || !text || !lsp__jint(d, lsp__jget(d, a, "line"), &pos.line) ||
        !lsp__jint(d, lsp__jget(d, a, "character"), &pos.character) || pos.line < 0 ||
        pos.character < 0)
        reply_error(s, id, ERR_PARAMS,
                    "fimd.accept expects the arguments fimd sent with the inline completion: "
                    "[{uri, line, character, text}]");
    else if (!doc)
        reply_error(s, id, ERR_PARAMS, "fimd.accept: unknown document (not opened with didOpen)");
    else
        on_accept(s, doc, pos, text, n, id);
    free(uri);
    free(text);
}

/* ---- notifications ---- */

static void on_did_open(server *s, const jdoc *d, int params)
{
    int td = lsp__jget(d, params, "textDocument");
    size_t len;
    char *uri = lsp__jstr(d, lsp__jget(d, td, "uri"), NULL);
    char *text = lsp__jstr(d, lsp__jget(d, td, "text"), &len);
    char *lang = lsp__jstr(d, lsp__jget(d, td, "languageId"), NULL);
    long version = 0;
    lsp__jint(d, lsp__jget(d, td, "version"), &version);
    if (uri && text) {
        lsp__doc_open(&s->docs, uri, text, len, version, lang);
        logf_(s, "open %s (%zu bytes, %s)", uri, len, lang ? lang : "?");
    } else {
        log_message(s, 2, "fimd: didOpen without textDocument.uri and text ignored");
    }
    free(uri);
    free(text);
    free(lang);
}

static void on_did_change(server *s, const jdoc *d, int params)
{
    int td = lsp__jget(d, params, "textDocument");
    char *uri = lsp__jstr(d, lsp__jget(d, td, "uri"), NULL);
    lsp_doc *doc = uri ? lsp__doc_find(&s->docs, uri) : NULL;
    int changes = lsp__jget(d, params, "contentChanges");
    if (!doc || !lsp__jis(d, changes, JSMN_ARRAY)) {
        log_message(s, 2, "fimd: didChange for %s ignored",
                    doc ? "malformed changes" : "an unknown document");
        free(uri);
        return;
    }
    /* edits stop generation for this document within one token */
    answer_cancelled(s, lsp__worker_cancel_doc(s->worker, doc->uri, ERR_MODIFIED), ERR_MODIFIED,
                     "content modified");
    long version;
    if (lsp__jint(d, lsp__jget(d, td, "version"), &version)) doc->version = version;
    for (int i = changes + 1, k = 0; k < d->t[changes].size; k++, i = lsp__jskip(d, i)) {
        size_t n;
        char *text = lsp__jstr(d, lsp__jget(d, i, "text"), &n);
        int range = lsp__jget(d, i, "range");
        if (!text) continue;
        if (range < 0) {
            lsp__doc_edit(doc, 0, doc->len, text, n);
        } else {
            lsp_pos a, b;
            int st = lsp__jget(d, range, "start"), en = lsp__jget(d, range, "end");
            if (lsp__jint(d, lsp__jget(d, st, "line"), &a.line) &&
                lsp__jint(d, lsp__jget(d, st, "character"), &a.character) &&
                lsp__jint(d, lsp__jget(d, en, "line"), &b.line) &&
                lsp__jint(d, lsp__jget(d, en, "character"), &b.character) && a.line >= 0 &&
                a.character >= 0 && b.line >= 0 && b.character >= 0) {
                size_t oa, ob;
                lsp_offset_of(doc->text, doc->len, a, s->enc, &oa);
                lsp_offset_of(doc->text, doc->len, b, s->enc, &ob);
                lsp__doc_edit(doc, oa, ob < oa ? oa : ob, text, n);
            } else {
                log_message(s, 2, "fimd: change with an invalid range ignored");
            }
        }
        free(text);
    }
    /* an edit cancels the document's prefetch, unless it made the document that very branch (the
     * accepted text arrived): then the request that follows gets its answer */
    bool kept;
    drop_jobs(lsp__worker_cancel_prefetch(s->worker, doc->uri, doc->text, doc->len, SIZE_MAX, true,
                                          &kept));
    free(uri);
}

static void on_did_close(server *s, const jdoc *d, int params)
{
    char *uri = lsp__jstr(d, lsp__jget(d, lsp__jget(d, params, "textDocument"), "uri"), NULL);
    if (uri && lsp__doc_find(&s->docs, uri)) {
        answer_cancelled(s, lsp__worker_cancel_doc(s->worker, uri, ERR_MODIFIED), ERR_MODIFIED,
                         "document closed");
        bool kept;
        drop_jobs(lsp__worker_cancel_prefetch(s->worker, uri, NULL, 0, 0, false, &kept));
        lsp__doc_close(&s->docs, uri);
        job *j = calloc(1, sizeof *j);
        j->kind = JOB_CLOSE_DOC;
        j->doc = strdup(uri);
        lsp__worker_submit(s->worker, j);
    }
    free(uri);
}

static void on_cancel(server *s, const jdoc *d, int params)
{
    int idt = lsp__jget(d, params, "id");
    if (idt < 0) return;
    char id[256];
    int n = d->t[idt].end - d->t[idt].start;
    if (n <= 0 || n >= (int)sizeof id - 2) return;
    /* ids are compared as the raw JSON the request carried */
    if (d->t[idt].type == JSMN_STRING)
        snprintf(id, sizeof id, "\"%.*s\"", n, d->s + d->t[idt].start);
    else
        snprintf(id, sizeof id, "%.*s", n, d->s + d->t[idt].start);
    job *j = lsp__worker_cancel_id(s->worker, id, ERR_CANCELLED);
    if (j) answer_cancelled(s, j, ERR_CANCELLED, "request cancelled");
}

/* ---- dispatch ---- */

/* ---- the method table: a new method is one line here and its handler ---- */

static void m_exit(server *s, const jdoc *d, int params, const char *id)
{
    (void)d, (void)params, (void)id;
    s->exit_code = s->state == ST_SHUT_DOWN ? 0 : 1;
    s->exiting = true;
    ev_break(s->loop, EVBREAK_ALL);
}
static void m_shutdown(server *s, const jdoc *d, int params, const char *id)
{
    (void)d, (void)params;
    on_shutdown(s, id);
}
static void m_inline(server *s, const jdoc *d, int params, const char *id)
{
    on_completion(s, d, params, id, true);
}
static void m_completion(server *s, const jdoc *d, int params, const char *id)
{
    on_completion(s, d, params, id, false);
}
static void m_status(server *s, const jdoc *d, int params, const char *id)
{
    (void)d, (void)params;
    on_status(s, id);
}
static void m_initialized(server *s, const jdoc *d, int params, const char *id)
{
    (void)d, (void)params, (void)id;
    start_load(s);
}
static void m_configuration(server *s, const jdoc *d, int params, const char *id)
{
    (void)id;
    if (apply_config(s, d, lsp__jget(d, params, "settings"))) start_load(s);
}
#define NOTIFICATION(fn)                                                                           \
    static void m_##fn(server *s, const jdoc *d, int params, const char *id)                       \
    {                                                                                              \
        (void)id;                                                                                  \
        fn(s, d, params);                                                                          \
    }
NOTIFICATION(on_did_open)
NOTIFICATION(on_did_change)
NOTIFICATION(on_did_close)
NOTIFICATION(on_cancel)
#undef NOTIFICATION

typedef struct lsp_method {
    const char *name;
    void (*fn)(server *s, const jdoc *d, int params, const char *id); /* id: "" for notifications */
    bool request;     /* a request (has an id) rather than a notification */
    bool before_init; /* accepted before `initialize` */
    bool any_state;   /* accepted even after `shutdown` */
} lsp_method;

static const lsp_method methods[] = {
    {"initialize", on_initialize, true, true, false},
    {"shutdown", m_shutdown, true, false, false},
    {"textDocument/inlineCompletion", m_inline, true, false, false},
    {"textDocument/completion", m_completion, true, false, false},
    {"fimd/status", m_status, true, false, false},
    {"workspace/executeCommand", on_execute, true, false, false},
    {"exit", m_exit, false, true, true},
    {"initialized", m_initialized, false, false, false},
    {"textDocument/didOpen", m_on_did_open, false, false, false},
    {"textDocument/didChange", m_on_did_change, false, false, false},
    {"textDocument/didClose", m_on_did_close, false, false, false},
    {"$/cancelRequest", m_on_cancel, false, false, false},
    {"workspace/didChangeConfiguration", m_configuration, false, false, false},
};

static const lsp_method *find_method(const char *name, bool request)
{
    for (size_t i = 0; i < sizeof methods / sizeof *methods; i++)
        if (!strcmp(methods[i].name, name) &&
            (methods[i].request == request || methods[i].any_state))
            return &methods[i];
    return NULL;
}

static void handle(server *s, const char *body, size_t len)
{
    jdoc d;
    if (lsp__json_parse(&d, body, len)) {
        reply_error(s, NULL, ERR_PARSE, "parse error: the message is not valid JSON");
        lsp__json_free(&d);
        return;
    }
    char id[256] = "";
    int idt = lsp__jget(&d, 0, "id"), mt = lsp__jget(&d, 0, "method"),
        params = lsp__jget(&d, 0, "params");
    if (!lsp__jis(&d, 0, JSMN_OBJECT)) {
        reply_error(s, NULL, ERR_INVALID_REQUEST,
                    "invalid request: a message must be a JSON object");
        goto out;
    }
    if (idt >= 0) {
        int n = d.t[idt].end - d.t[idt].start;
        bool ok = (d.t[idt].type == JSMN_STRING || lsp__jnum(&d, idt, &(double){0})) &&
                  n < (int)sizeof id - 2;
        if (!ok) {
            reply_error(s, NULL, ERR_INVALID_REQUEST,
                        "invalid request: id must be a number or a string");
            goto out;
        }
        if (d.t[idt].type == JSMN_STRING)
            snprintf(id, sizeof id, "\"%.*s\"", n, d.s + d.t[idt].start);
        else
            snprintf(id, sizeof id, "%.*s", n, d.s + d.t[idt].start);
    }
    if (mt < 0) {
        if (idt >= 0 && (lsp__jget(&d, 0, "result") >= 0 || lsp__jget(&d, 0, "error") >= 0))
            goto out; /* a response */
        reply_error(s, idt >= 0 ? id : NULL, ERR_INVALID_REQUEST, "invalid request: no method");
        goto out;
    }
    if (!lsp__jis(&d, mt, JSMN_STRING)) {
        reply_error(s, idt >= 0 ? id : NULL, ERR_INVALID_REQUEST,
                    "invalid request: method must be a string");
        goto out;
    }
    char method[128];
    char *decoded = lsp__jstr(&d, mt, NULL); /* decoded: some clients escape '/' as "\/" */
    snprintf(method, sizeof method, "%s", decoded ? decoded : "");
    free(decoded);
    bool request = idt >= 0;
    logf_(s, "<- %s %s", method, request ? id : "");
    if (params >= 0 && d.t[params].type == JSMN_PRIMITIVE && d.s[d.t[params].start] == 'n')
        params = -1; /* "params": null, as jsonrpc.el sends it: the same as absent */
    if (params >= 0 && !lsp__jis(&d, params, JSMN_OBJECT) && !lsp__jis(&d, params, JSMN_ARRAY)) {
        if (request) reply_error(s, id, ERR_PARAMS, "params must be an object or an array");
        goto out;
    }
    const lsp_method *m = find_method(method, request);
    if (m && m->any_state) {
        m->fn(s, &d, params, id);
        goto out;
    }
    if (s->state == ST_NEW && !(m && m->before_init)) {
        if (request) reply_error(s, id, ERR_NOT_INITIALIZED, "server not initialized");
        goto out;
    }
    if (s->state == ST_SHUT_DOWN) {
        if (request) reply_error(s, id, ERR_INVALID_REQUEST, "the server is shut down");
        goto out;
    }
    if (m)
        m->fn(s, &d, params, id);
    else if (request)
        reply_error(s, id, ERR_METHOD, "method not found");
    /* unknown notifications (didSave, $/setTrace, other $/ ones) need nothing */
out:
    lsp__json_free(&d);
}

/* ---- the loop ---- */

static void on_done(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)loop, (void)revents;
    server *s = w->data;
    for (job *j = lsp__worker_take(s->worker); j;) {
        job *next = j->next;
        if (j->kind == JOB_COMPLETE) {
            answer_job(s, j);
        } else if (j->kind == JOB_PREFETCH) {
            logf_(s, "prefetch %s: %s, %d evaluated, %d generated", j->doc,
                  j->status ? (j->status == 1 ? "cancelled" : j->err) : "kept", j->st.evaluated,
                  j->st.generated);
        } else if (j->kind == JOB_LOAD) {
            progress(s, "end", NULL, j->status ? "failed" : "ready");
            if (j->status)
                log_message(s, 1, "fimd: could not load the model: %s", j->err);
            else
                log_ready(s, &j->backend);
        }
        lsp__job_free(j);
        j = next;
    }
}

/* The one frame loop (the fuzzer drives it too): every complete message the reader holds. */
static void handle_frames(server *s)
{
    for (;;) {
        const char *body;
        size_t len;
        char why[256];
        enum lsp_frame f = lsp__reader_next(&s->rd, &body, &len, why, sizeof why);
        if (f == FRAME_NEED_MORE) break;
        if (f == FRAME_MESSAGE)
            handle(s, body, len);
        else
            reply_error(s, NULL, f == FRAME_TOO_BIG ? ERR_INVALID_REQUEST : ERR_PARSE, why);
        if (s->exiting) break;
    }
}

static void on_input(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    server *s = w->data;
    char buf[65536];
    ssize_t n = read(w->fd, buf, sizeof buf);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) { /* end of input: the client is gone */
        /* said on stderr too (editors show it in their server log): a client that died mid-message
         * leaves a partial frame, one that quit without `exit` leaves none */
        size_t unread = s->rd.len - s->rd.pending + s->rd.discard;
        char why[160];
        if (n < 0)
            snprintf(why, sizeof why, "read error on input (%s)", strerror(errno));
        else if (unread)
            snprintf(why, sizeof why, "end of input in the middle of a message (%zu bytes unread)",
                     unread);
        else
            snprintf(why, sizeof why, "end of input before `exit`");
        fprintf(stderr, "fimd: %s; exiting\n", why);
        logf_(s, "%s", why);
        s->exiting = true;
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    lsp__reader_feed(&s->rd, buf, (size_t)n);
    handle_frames(s);
}

static void wake(void *ctx)
{
    server *s = ctx;
    ev_async_send(s->loop, &s->done_w);
}

/* Set up a server (loop and worker created, not run). */
static int server_init(server *s, const lsp_options *opt)
{
    memset(s, 0, sizeof *s);
    s->opt = *opt;
    s->exit_code = 1;
    s->rd.max_message = opt->max_message;
    fim_config_default(&s->cfg);
    s->cfg.type_through = !opt->no_type_through;
    s->cfg.prefetch = !opt->no_prefetch;
    lsp_backend_cfg be = {.model_path = (char *)opt->model,
                          .threads = opt->threads,
                          .load = opt->load,
                          .api = (char *)opt->backend_api,
                          .url = (char *)opt->backend_url,
                          .model_name = (char *)opt->backend_model,
                          .api_key_env = (char *)opt->api_key_env,
                          .ca_file = (char *)opt->ca_file,
                          .timeout_ms = opt->timeout_ms};
    if (be.model_path && !*be.model_path) be.model_path = NULL;
    lsp__backend_cfg_copy(&s->be, &be);
    if (opt->log_path) s->log = fopen(opt->log_path, "a");
    s->loop = ev_loop_new(EVFLAG_AUTO);
    if (!s->loop) return -1;
    ev_io_init(&s->in_w, on_input, opt->in_fd, EV_READ);
    s->in_w.data = s;
    ev_async_init(&s->done_w, on_done);
    s->done_w.data = s;
    if (opt->in_fd >= 0) ev_io_start(s->loop, &s->in_w);
    ev_async_start(s->loop, &s->done_w);
    s->worker = lsp__worker_start(wake, s);
    return s->worker ? 0 : -1;
}

static void server_free(server *s)
{
    lsp__worker_free(s->worker);
    lsp__docs_free(&s->docs);
    lsp__reader_free(&s->rd);
    lsp__backend_cfg_free(&s->be);
    if (s->log) fclose(s->log);
    ev_loop_destroy(s->loop);
}

int lsp__fuzz_feed(const char *data, size_t n, int out_fd)
{
    server s;
    lsp_options o = {.in_fd = -1, .out_fd = out_fd, .max_message = 1 << 16};
    if (server_init(&s, &o)) return -1;
    s.fuzzing = true;
    lsp__reader_feed(&s.rd, data, n);
    handle_frames(&s);
    lsp__worker_stop(s.worker);
    on_done(s.loop, &s.done_w, 0); /* answer what the worker finished */
    server_free(&s);
    return 0;
}

int lsp_serve(const lsp_options *opt)
{
    server s;
    if (server_init(&s, opt)) return 1;
    logf_(&s, "fimd %s serving LSP", FIMD_VERSION);
    ev_run(s.loop, 0);
    logf_(&s, "exit %d", s.exit_code);
    int code = s.exit_code;
    server_free(&s);
    return code;
}
