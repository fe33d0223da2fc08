/* lsp/lsp_internal.h — what the files of lsp/ share: JSON reading (jsmn tokens) and writing, the
 * resumable Content-Length framer, the document store and the inference worker. */
#ifndef FIMD_LSP_INTERNAL_H
#define FIMD_LSP_INTERNAL_H

#include "fim/fim.h"
#include "lsp/lsp.h"

#define JSMN_HEADER
#define JSMN_STRICT
#include <jsmn.h>
#include <pthread.h>
#include <stdarg.h>

/* ---- JSON reading ---- */

typedef struct jdoc {
    const char *s;
    jsmntok_t *t;
    int n;
} jdoc;

int lsp__json_parse(jdoc *d, const char *s, size_t len); /* 0, or -1 for invalid JSON */
void lsp__json_free(jdoc *d);
int lsp__jskip(const jdoc *d, int i);
int lsp__jget(const jdoc *d, int obj, const char *key); /* value index, or -1 */
int lsp__jelem(const jdoc *d, int arr, int k);          /* k-th element index, or -1 */
bool lsp__jstr_eq(const jdoc *d, int i, const char *s);
/* Decoded string (escapes, surrogate pairs; lone surrogates become U+FFFD); malloc'd; NULL when
 * i is not a string. */
char *lsp__jstr(const jdoc *d, int i, size_t *len);
bool lsp__jint(const jdoc *d, int i, long *out); /* an integral JSON number */
bool lsp__jnum(const jdoc *d, int i, double *out);
bool lsp__jbool(const jdoc *d, int i, bool *out);
bool lsp__jis(const jdoc *d, int i, jsmntype_t type);

/* ---- JSON writing ---- */

typedef struct jw {
    char *p;
    size_t n, cap;
} jw;

void lsp__jw_raw(jw *w, const char *s, size_t n);
/* A string literal, its length counted by the compiler. */
#define lsp__jw_lit(w, lit) lsp__jw_raw((w), "" lit, sizeof(lit) - 1)
void lsp__jw_fmt(jw *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A JSON string: quotes, escapes, control characters; invalid UTF-8 becomes U+FFFD. */
void lsp__jw_str(jw *w, const char *s, size_t n);
void lsp__jw_free(jw *w);

/* ---- framing ---- */

typedef struct lsp_reader {
    char *buf;
    size_t len, cap;
    size_t max_message;
    size_t discard; /* bytes of a rejected body still to drop */
    size_t pending; /* bytes of the last message handed out, dropped at the next call */
} lsp_reader;

enum lsp_frame { FRAME_NEED_MORE = 0, FRAME_MESSAGE = 1, FRAME_BAD_HEADER = 2, FRAME_TOO_BIG = 3 };

void lsp__reader_feed(lsp_reader *r, const char *data, size_t n);
/* Next framed message: FRAME_MESSAGE sets body/len (valid until the next call); FRAME_BAD_HEADER
 * and FRAME_TOO_BIG describe the problem in why (the reader has already resynchronized). */
enum lsp_frame lsp__reader_next(lsp_reader *r, const char **body, size_t *len, char *why,
                                size_t cap);
void lsp__reader_free(lsp_reader *r);

/* ---- documents ---- */

typedef struct lsp_doc {
    char *uri;
    fim_doc *fd;      /* owns the text and its syntax tree */
    const char *text; /* fim_doc_text(fd), refreshed after each edit */
    size_t len;
    long version;
    char *language;
} lsp_doc;

typedef struct lsp_docs {
    lsp_doc *v;
    int n, cap;
} lsp_docs;

lsp_doc *lsp__doc_find(lsp_docs *s, const char *uri);
lsp_doc *lsp__doc_open(lsp_docs *s, const char *uri, const char *text, size_t len, long version,
                       const char *language);
void lsp__doc_close(lsp_docs *s, const char *uri);
/* Replace [start, end) byte range with text. */
void lsp__doc_edit(lsp_doc *d, size_t start, size_t end, const char *text, size_t n);
void lsp__docs_free(lsp_docs *s);

/* ---- the inference worker ---- */

/* JOB_PREFETCH: the completion of the accepted branch, computed ahead at low priority (run only
 * when nothing else waits); any edit or request on its document that leaves that branch cancels it.
 * It answers nothing: the engine keeps the result for the request that reaches its state. */
enum job_kind { JOB_LOAD, JOB_COMPLETE, JOB_CLOSE_DOC, JOB_PREFETCH };

/* What to run completions on: settings and options as the server holds them (owned strings). */
typedef struct lsp_backend_cfg {
    char *model_path; /* weights, or the remote model's vocabulary */
    bool bundled;     /* model_path is the bundled small model */
    int threads;
    model_opts load; /* in-process load options (no strings: copied as is) */
    char *api, *url, *model_name, *api_key_env, *ca_file; /* api NULL: in-process */
    int timeout_ms;
} lsp_backend_cfg;

void lsp__backend_cfg_copy(lsp_backend_cfg *dst, const lsp_backend_cfg *src);
void lsp__backend_cfg_free(lsp_backend_cfg *c);
/* The fim spec over c's strings (valid while c is). */
fim_backend_spec lsp__backend_spec(const lsp_backend_cfg *c);
enum load_state { LOAD_NONE, LOAD_LOADING, LOAD_READY, LOAD_FAILED };

typedef struct job {
    enum job_kind kind;
    struct job *next;
    /* request */
    char *id;         /* raw JSON of the request id */
    char *doc;        /* document URI */
    bool inline_kind; /* inlineCompletion (else completion) */
    fim_context *ctx; /* the document at the cursor, its tree and related definitions */
    lsp_pos pos;      /* the cursor as the client sent it (after clamping) */
    fim_config cfg;
    lsp_backend_cfg backend; /* JOB_LOAD */
    atomic_int cancel;       /* set by the main thread; the worker stops within one token */
    int cancel_code;         /* -32800 or -32801 */
    /* result */
    int status; /* 0 done, 1 cancelled, -1 error */
    char *out;
    fim_stats st;
    char err[512];
} job;

typedef struct worker_status {
    enum load_state state;
    char model[1024];
    char error[512];
    size_t cache_bytes;
    int cached_docs;
    int prefetching;              /* prefetch jobs pending or running */
    long drafted, draft_accepted; /* draft tokens over all completions, and those accepted */
    fim_backend_status backend;   /* of the loaded engine */
} worker_status;

typedef struct lsp_worker lsp_worker;

/* Makes the worker; its thread starts with the first submitted job. `notify(ctx)` is called
 * whenever a job is done, from the worker (the server passes ev_async_send). */
lsp_worker *lsp__worker_start(void (*notify)(void *), void *ctx);
/* Stop the thread (cancelling what runs), free the model and every cache, and return finished jobs
 * through lsp__worker_take. */
void lsp__worker_stop(lsp_worker *w);
void lsp__worker_free(lsp_worker *w);
void lsp__worker_submit(lsp_worker *w, job *j);
/* Finished jobs (a list, oldest first); the caller frees them with lsp__job_free. */
job *lsp__worker_take(lsp_worker *w);
/* Pending completion jobs for doc (all if doc is NULL) are removed and returned (not run); a
 * running one gets cancel set with `code`. Pending loads and closes are kept. */
job *lsp__worker_cancel_doc(lsp_worker *w, const char *doc, int code);
/* Prefetch jobs for doc (every document's when NULL) are cancelled, except one whose state is
 * exactly text[0..len) with the cursor at `cursor` (any cursor when SIZE_MAX; keep nothing when
 * text is NULL) that runs, or is pending when keep_pending: pending ones are removed and returned
 * (the caller frees them), a running one gets cancel set. *kept tells whether one was kept. */
job *lsp__worker_cancel_prefetch(lsp_worker *w, const char *doc, const char *text, size_t len,
                                 size_t cursor, bool keep_pending, bool *kept);
/* Cancel one request by id: returns the pending job (removed), or NULL after flagging a running
 * one. */
job *lsp__worker_cancel_id(lsp_worker *w, const char *id, int code);
void lsp__worker_status(lsp_worker *w, worker_status *out);
void lsp__job_free(job *j);

/* Fuzzing: one server (no model), bytes through framing and dispatch, answers to out_fd. */
int lsp__fuzz_feed(const char *data, size_t n, int out_fd);

#endif
