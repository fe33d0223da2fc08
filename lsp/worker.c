/* lsp/worker.c — the inference worker: one thread owns the model and the fim engine and runs jobs
 * one at a time (load a model, complete, forget a document's cache). The main thread submits jobs,
 * cancels them by document or id, and collects finished ones after `notify` (an ev_async_send). */
#define _GNU_SOURCE
#include "lsp/lsp_internal.h"
#include "base/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lsp_worker {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job *pending, *done, *running;
    bool quit;
    bool started; /* the thread runs (it starts with the first job) */
    void (*notify)(void *);
    void *ctx;
    worker_status status; /* guarded by mu */
    /* owned by the worker thread */
    fim_engine *engine;
};

void lsp__job_free(job *j)
{
    if (!j) return;
    free(j->id);
    free(j->doc);
    fim_context_free(j->ctx);
    free(j->out);
    lsp__backend_cfg_free(&j->backend);
    free(j);
}

static void append(job **list, job *j)
{
    j->next = NULL;
    while (*list) list = &(*list)->next;
    *list = j;
}

void lsp__backend_cfg_copy(lsp_backend_cfg *dst, const lsp_backend_cfg *src)
{
    *dst = *src;
    char **f[] = {&dst->model_path, &dst->api,         &dst->url,
                  &dst->model_name, &dst->api_key_env, &dst->ca_file};
    for (size_t i = 0; i < sizeof f / sizeof *f; i++)
        if (*f[i]) *f[i] = base_xstrdup(*f[i]);
}

void lsp__backend_cfg_free(lsp_backend_cfg *c)
{
    free(c->model_path), free(c->api), free(c->url), free(c->model_name), free(c->api_key_env),
        free(c->ca_file);
    memset(c, 0, sizeof *c);
}

fim_backend_spec lsp__backend_spec(const lsp_backend_cfg *c)
{
    fim_backend_spec s = {.model_path = c->model_path,
                          .model_is_bundled = c->bundled,
                          .threads = c->threads,
                          .load = c->load};
    s.remote = (fim_remote_config){.api = c->api,
                                   .url = c->url,
                                   .model = c->model_name,
                                   .api_key_env = c->api_key_env,
                                   .ca_file = c->ca_file,
                                   .timeout_ms = c->timeout_ms};
    return s;
}

static void unload(lsp_worker *w)
{
    fim_engine_free(w->engine);
    w->engine = NULL;
}

static void run_load(lsp_worker *w, job *j)
{
    unload(w);
    fim_err fe = {{0}};
    fim_backend_spec spec = lsp__backend_spec(&j->backend);
    fim_engine *e = fim_engine_open(&spec, &fe);
    pthread_mutex_lock(&w->mu);
    snprintf(w->status.model, sizeof w->status.model, "%s",
             j->backend.model_path ? j->backend.model_path : "");
    memset(&w->status.backend, 0, sizeof w->status.backend);
    if (e) {
        w->engine = e;
        w->status.state = LOAD_READY;
        w->status.error[0] = 0;
        fim_engine_status(e, &w->status.backend);
        j->status = 0;
    } else {
        w->status.state = LOAD_FAILED;
        snprintf(w->status.error, sizeof w->status.error, "%s", fe.msg);
        snprintf(j->err, sizeof j->err, "%s", w->status.error);
        j->status = -1;
    }
    pthread_mutex_unlock(&w->mu);
}

static void run_complete(lsp_worker *w, job *j)
{
    if (!w->engine) {
        pthread_mutex_lock(&w->mu);
        snprintf(j->err, sizeof j->err, "no model is loaded%s%.400s",
                 w->status.error[0] ? ": " : "", w->status.error);
        pthread_mutex_unlock(&w->mu);
        j->status = -1;
        return;
    }
    fim_request req = {.doc = j->doc, .ctx = j->ctx};
    fim_err fe = {{0}};
    j->status = fim_complete(w->engine, &req, &j->cfg, &j->cancel, &j->out, &j->st, &fe);
    if (j->status < 0) snprintf(j->err, sizeof j->err, "%s", fe.msg);
    fim_backend_status bs;
    fim_engine_status(w->engine, &bs);
    if (bs.damaged) { /* the weights' file was truncated: unusable until loaded again */
        unload(w);
        pthread_mutex_lock(&w->mu);
        w->status.state = LOAD_FAILED;
        snprintf(w->status.error, sizeof w->status.error, "%.300s: %.200s", w->status.model,
                 bs.health);
        w->status.cache_bytes = 0;
        w->status.cached_docs = 0;
        pthread_mutex_unlock(&w->mu);
        if (j->status >= 0) {
            free(j->out), j->out = NULL;
            j->status = -1;
        }
        snprintf(j->err, sizeof j->err, "%s", w->status.error);
    }
}

/* The completion of the accepted branch: the engine keeps it (there is no answer to send). */
static void run_prefetch(lsp_worker *w, job *j)
{
    if (!w->engine) {
        j->status = -1;
        return;
    }
    fim_request req = {.doc = j->doc, .ctx = j->ctx};
    fim_err fe = {{0}};
    j->status = fim_prefetch(w->engine, &req, &j->cfg, &j->cancel, &j->st, &fe);
    if (j->status < 0) snprintf(j->err, sizeof j->err, "%s", fe.msg);
}

/* The next job: the oldest that is not a prefetch, else the oldest prefetch. Called with mu held.
 */
static job *take_next(lsp_worker *w)
{
    job **p = &w->pending;
    while (*p && (*p)->kind == JOB_PREFETCH) p = &(*p)->next;
    if (!*p) p = &w->pending;
    job *j = *p;
    *p = j->next;
    return j;
}

static void *worker_main(void *arg)
{
    lsp_worker *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->pending && !w->quit) pthread_cond_wait(&w->cv, &w->mu);
        if (w->quit) break;
        job *j = take_next(w);
        w->running = j;
        pthread_mutex_unlock(&w->mu);
        if (j->kind == JOB_LOAD)
            run_load(w, j);
        else if (j->kind == JOB_COMPLETE)
            run_complete(w, j);
        else if (j->kind == JOB_PREFETCH)
            run_prefetch(w, j);
        else if (w->engine)
            fim_engine_close_doc(w->engine, j->doc);
        pthread_mutex_lock(&w->mu);
        w->running = NULL;
        if (j->kind == JOB_COMPLETE && j->status >= 0)
            w->status.drafted += j->st.drafted, w->status.draft_accepted += j->st.accepted;
        if (w->engine) {
            w->status.cache_bytes = fim_engine_cache_bytes(w->engine);
            w->status.cached_docs = fim_engine_n_docs(w->engine);
            fim_engine_status(w->engine, &w->status.backend);
        }
        append(&w->done, j);
        pthread_mutex_unlock(&w->mu);
        w->notify(w->ctx);
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

lsp_worker *lsp__worker_start(void (*notify)(void *), void *ctx)
{
    lsp_worker *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->notify = notify;
    w->ctx = ctx;
    return w;
}

/* The thread starts with the first job, so a server that only syncs documents, or a fuzzed input,
 * never pays for one. Called with mu held. A job that cannot get a thread is answered at once. */
static void ensure_thread(lsp_worker *w, job *j)
{
    if (w->started || w->quit) return;
    if (pthread_create(&w->thread, NULL, worker_main, w) == 0) {
        w->started = true;
        return;
    }
    j->status = -1;
    snprintf(j->err, sizeof j->err, "cannot start the worker thread");
    if (j->kind == JOB_LOAD) {
        w->status.state = LOAD_FAILED;
        snprintf(w->status.error, sizeof w->status.error, "%s", j->err);
    }
}

void lsp__worker_stop(lsp_worker *w)
{
    if (!w || w->quit) return;
    pthread_mutex_lock(&w->mu);
    w->quit = true;
    if (w->running) atomic_store(&w->running->cancel, 1);
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    if (w->started) pthread_join(w->thread, NULL);
    unload(w);
    w->status.state = LOAD_NONE;
    w->status.cache_bytes = 0;
    w->status.cached_docs = 0;
}

void lsp__worker_free(lsp_worker *w)
{
    if (!w) return;
    lsp__worker_stop(w);
    while (w->pending) {
        job *j = w->pending;
        w->pending = j->next;
        lsp__job_free(j);
    }
    while (w->done) {
        job *j = w->done;
        w->done = j->next;
        lsp__job_free(j);
    }
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
}

void lsp__worker_submit(lsp_worker *w, job *j)
{
    pthread_mutex_lock(&w->mu);
    if (j->kind == JOB_LOAD) w->status.state = LOAD_LOADING;
    ensure_thread(w, j);
    bool failed = j->status < 0;
    append(failed ? &w->done : &w->pending, j);
    /* a prefetch has low priority: a request on another document preempts it (on its own
     * document the server decides, by lsp__worker_cancel_prefetch: the request may want it) */
    job *r = w->running;
    if (j->kind == JOB_COMPLETE && r && r->kind == JOB_PREFETCH && strcmp(r->doc, j->doc))
        atomic_store(&r->cancel, 1);
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    if (failed) w->notify(w->ctx);
}

job *lsp__worker_take(lsp_worker *w)
{
    pthread_mutex_lock(&w->mu);
    job *list = w->done;
    w->done = NULL;
    pthread_mutex_unlock(&w->mu);
    return list;
}

job *lsp__worker_cancel_doc(lsp_worker *w, const char *doc, int code)
{
    job *removed = NULL;
    pthread_mutex_lock(&w->mu);
    for (job **p = &w->pending; *p;) {
        job *j = *p;
        if (j->kind == JOB_COMPLETE && (!doc || !strcmp(j->doc, doc))) {
            *p = j->next;
            append(&removed, j);
        } else {
            p = &j->next;
        }
    }
    job *r = w->running;
    if (r && r->kind == JOB_COMPLETE && (!doc || !strcmp(r->doc, doc)) &&
        !atomic_load(&r->cancel)) {
        r->cancel_code = code; /* read by the main thread only, after the job is done */
        atomic_store(&r->cancel, 1);
    }
    pthread_mutex_unlock(&w->mu);
    return removed;
}

/* Is the prefetch job j for doc and, when text is given, at exactly that state? */
static bool prefetch_of(const job *j, const char *doc, const char *text, size_t len, size_t cursor,
                        bool same_state)
{
    if (j->kind != JOB_PREFETCH || (doc && strcmp(j->doc, doc))) return false;
    if (!same_state) return true;
    size_t n;
    const char *t = text ? fim_context_text(j->ctx, &n) : NULL;
    return t && n == len && (cursor == SIZE_MAX || cursor == fim_context_cursor(j->ctx)) &&
           !memcmp(t, text, len);
}

job *lsp__worker_cancel_prefetch(lsp_worker *w, const char *doc, const char *text, size_t len,
                                 size_t cursor, bool keep_pending, bool *kept)
{
    job *removed = NULL;
    *kept = false;
    pthread_mutex_lock(&w->mu);
    for (job **p = &w->pending; *p;) {
        job *j = *p;
        if (!prefetch_of(j, doc, NULL, 0, 0, false)) {
            p = &j->next;
        } else if (keep_pending && prefetch_of(j, doc, text, len, cursor, true)) {
            *kept = true;
            p = &j->next;
        } else {
            *p = j->next;
            append(&removed, j);
        }
    }
    job *r = w->running;
    if (r && prefetch_of(r, doc, NULL, 0, 0, false) && !atomic_load(&r->cancel)) {
        if (prefetch_of(r, doc, text, len, cursor, true))
            *kept = true;
        else
            atomic_store(&r->cancel, 1);
    }
    pthread_mutex_unlock(&w->mu);
    return removed;
}

job *lsp__worker_cancel_id(lsp_worker *w, const char *id, int code)
{
    job *found = NULL;
    pthread_mutex_lock(&w->mu);
    for (job **p = &w->pending; *p; p = &(*p)->next)
        if ((*p)->id && !strcmp((*p)->id, id)) {
            found = *p;
            *p = found->next;
            found->next = NULL;
            break;
        }
    job *r = w->running;
    if (!found && r && r->id && !strcmp(r->id, id) && !atomic_load(&r->cancel)) {
        r->cancel_code = code;
        atomic_store(&r->cancel, 1);
    }
    pthread_mutex_unlock(&w->mu);
    return found;
}

void lsp__worker_status(lsp_worker *w, worker_status *out)
{
    pthread_mutex_lock(&w->mu);
    *out = w->status;
    out->prefetching = w->running && w->running->kind == JOB_PREFETCH;
    for (job *j = w->pending; j; j = j->next) out->prefetching += j->kind == JOB_PREFETCH;
    pthread_mutex_unlock(&w->mu);
}
