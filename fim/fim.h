/* fim/fim.h — from a document and a cursor to a completion: the DeepSeek FIM prompt within token
 * budgets, a persistent latent cache per document (only tokens after the longest common prefix with
 * the previous request are evaluated), decoding with stop rules, and post-processing. Knows nothing
 * about JSON or stdio; uses model/ only.
 *
 * Threads: a fim_engine is used by one thread at a time (the inference worker). */
#ifndef FIMD_FIM_H
#define FIMD_FIM_H

#include "model/model.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct fim_err {
    char msg[512];
} fim_err;

typedef struct fim_config {
    int max_tokens;         /* generated tokens at most (default 64) */
    int prefix_tokens;      /* prompt budget before the cursor line (default 1024) */
    int suffix_tokens;      /* prompt budget after the cursor (default 256) */
    size_t cache_bytes;     /* latent caches of all documents together (default 1 GiB) */
    float temperature;      /* 0 = greedy (default) */
    float top_p;            /* nucleus sampling when temperature > 0 (default 0.95) */
    uint64_t seed;          /* sampling seed */
} fim_config;

void fim_config_default(fim_config *c);

typedef struct fim_engine fim_engine;

/* The engine borrows `m` (which must outlive it). */
fim_engine *fim_engine_new(model *m, fim_err *err);
void fim_engine_free(fim_engine *e);
/* Forget a document's cache (didClose). */
void fim_engine_close_doc(fim_engine *e, const char *doc);
size_t fim_engine_cache_bytes(const fim_engine *e);
int fim_engine_n_docs(const fim_engine *e);

typedef struct fim_request {
    const char *doc;   /* the document's key (its URI); selects the cache */
    const char *text;  /* the document, or a window of it that starts at a line start */
    size_t len;
    size_t cursor;     /* byte offset of the cursor in text (clamped to len) */
    long first_line;   /* line number of text[0] in the document (0 for the whole document) */
} fim_request;

enum fim_stop {
    FIM_STOP_EOS, FIM_STOP_MAX_TOKENS, FIM_STOP_LINE_END, FIM_STOP_INDENT, FIM_STOP_SUFFIX_REPEAT,
    FIM_STOP_CONTROL, FIM_STOP_CANCELLED,
};
const char *fim_stop_name(enum fim_stop s);

typedef struct fim_stats {
    int prompt_tokens;   /* tokens in the prompt */
    int reused;          /* of them, kept from the document's cache */
    int evaluated;       /* of them, computed now */
    int generated;       /* tokens generated */
    double prompt_ms, gen_ms;
    bool multi_line;
    enum fim_stop stop;
} fim_stats;

/* Complete at the cursor. On success *out is the malloc'd completion (valid UTF-8, possibly empty;
 * the caller frees it). A cancel flag that becomes non-zero stops within one token: then the result
 * is 1 with stats->stop = FIM_STOP_CANCELLED and *out NULL. Errors return -1 with a message. */
int fim_complete(fim_engine *e, const fim_request *req, const fim_config *cfg,
                 const atomic_int *cancel, char **out, fim_stats *stats, fim_err *err);

/* The prompt fim_complete would evaluate, as token ids (malloc'd); for tools and tests. */
int fim_prompt(fim_engine *e, const fim_request *req, const fim_config *cfg, int32_t **ids,
               size_t *n, fim_err *err);

#endif
