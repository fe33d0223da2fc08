/* fim/fim.h — from a document and a cursor to a completion: documents with incrementally parsed
 * syntax trees (tree-sitter, through parsers/), the DeepSeek FIM prompt cut at syntax boundaries
 * within token budgets with definitions from other open documents, a persistent latent cache per
 * document (only tokens after the longest common prefix with the previous request are evaluated),
 * decoding with syntax-aware stop rules, and post-processing. Knows nothing about JSON or stdio;
 * uses model/ and parsers/, and libcurl for remote backends.
 *
 * Threads: fim_doc objects belong to one thread (the LSP loop); a fim_context is a detached
 * snapshot that may be handed to another; a fim_engine is used by one thread at a time (the
 * inference worker). */
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
    int max_tokens;     /* generated tokens at most (default 64) */
    int prefix_tokens;  /* prompt budget before the cursor line (default 1024) */
    int suffix_tokens;  /* prompt budget after the cursor (default 256) */
    int related_tokens; /* prompt budget for definitions from other places (default 384) */
    size_t cache_bytes; /* latent caches of all documents together (default 1 GiB) */
    float temperature;  /* 0 = greedy (default) */
    float top_p;        /* nucleus sampling when temperature > 0 (default 0.95) */
    uint64_t seed;      /* sampling seed */
    /* For measuring context strategies (bench-quality --naive): instead of syntax-cut windows and
     * related code, a plain window of the same total budget, 3/4 before the cursor line and 1/4
     * after the cursor, in whole lines. */
    bool naive_window;
    /* Token healing (the cursor line's last token is spelled again by the first generated ones):
     * 0 (default) takes the best agreeing token of the whole vocabulary; N > 0 looks only at the
     * N best, which is all a serving engine sends back (FIM_HEAL_TOP of them), so a test can hold
     * the in-process model to the same rule. */
    int heal_top;
    /* Type-through (default on): when the user types the start of the middle last answered for a
     * document, and the rest of the document is as it was, the answer is that middle less what was
     * typed, with no model work. */
    bool type_through;
    /* Prefetch (default on): fim_prefetch computes the completion of the accepted branch ahead; a
     * request that reaches exactly that state (text, cursor, prompt) is answered from it. */
    bool prefetch;
    /* Drafts from the context (prompt lookup; in-process model only): at each step up to this many
     * tokens that followed the last generated 3- or 2-gram where it occurs earlier in the prompt or
     * the output are evaluated with the accepted token in one model step, and every one the engine
     * then chooses costs no step of its own. A generation starts with one draft per step and
     * doubles that while all are accepted. The choices are the same as without (0: off; default
     * FIM_DRAFTS, at most FIM_DRAFTS_MAX). */
    int drafts;
} fim_config;

enum { FIM_HEAL_TOP = 10 }; /* alternatives per token asked of a serving engine */
enum { FIM_DRAFTS = 8, FIM_DRAFTS_MAX = 16 };

void fim_config_default(fim_config *c);
/* Split one prompt budget B the way `--budget` does: 5B/16 for related code, B/4 suffix, the rest
 * prefix (minus the FIM markers). */
void fim_config_budget(fim_config *c, int budget);
/* Shrink the budgets, when they and max_tokens exceed a model's training context n_ctx, to the
 * same split of what fits (a small model trained on 256 tokens must not see positions it never
 * learned); larger contexts leave c unchanged. */
void fim_config_fit(fim_config *c, int n_ctx);

/* ---- documents and contexts ---- */

typedef struct fim_doc fim_doc;

/* A document: its text, language (parsers_detect on language_id, path, shebang) and, when the
 * language has a grammar and the text is at most FIM_PARSE_MAX bytes, a syntax tree that edits keep
 * up to date incrementally. path may be a file path or URI (for detection and snippet headers).
 * Returns NULL only when out of memory. The caller frees it with fim_doc_free. */
enum { FIM_PARSE_MAX = 8 << 20 };
fim_doc *fim_doc_new(const char *path, const char *language_id, const char *text, size_t len);
void fim_doc_free(fim_doc *d);
/* An independent copy (text, language, trees; NULL when out of memory): the server edits one to
 * make the context of a state the document has not reached yet (the accepted ghost text). */
fim_doc *fim_doc_copy(const fim_doc *d);
const char *fim_doc_text(const fim_doc *d, size_t *len);
/* The registry name of the language ("C", "Python"), or "" when unknown. */
const char *fim_doc_language(const fim_doc *d);
bool fim_doc_has_tree(const fim_doc *d);
/* Replace bytes [start, end) with text[0..n) (offsets are clamped); the tree is edited
 * (ts_tree_edit) and reparsed lazily, incrementally, when next needed. */
void fim_doc_replace(fim_doc *d, size_t start, size_t end, const char *text, size_t n);
/* Reparse now if edited (returns the parse time in ms, 0 when nothing to do). */
double fim_doc_sync(fim_doc *d);

/* Everything a completion at `cursor` needs, detached from the documents: a copy of the text, the
 * language, a copy of the syntax tree, and definitions from the `n_open` other documents whose
 * names occur near the cursor (`open` may include d itself; it is skipped). Returns NULL only when
 * out of memory. The caller frees it with fim_context_free. */
typedef struct fim_context fim_context;
fim_context *fim_context_new(fim_doc *d, size_t cursor, fim_doc *const *open, int n_open);
void fim_context_free(fim_context *c);
const char *fim_context_text(const fim_context *c, size_t *len);
size_t fim_context_cursor(const fim_context *c);
/* Multi-line or single line, as the syntax at the cursor says (see fim_stats.multi_line). */
bool fim_context_multi_line(const fim_context *c);

/* ---- engines and their backends ---- */

/* What evaluates prompts and produces tokens: the in-process model (its GGUF at model_path, with a
 * latent cache per document), or a serving engine over HTTP (remote.api set) that fimd sends its
 * own prompts to; then model_path names any GGUF with the same tokenizer (the model file itself, or
 * a vocabulary-only GGUF), or NULL for the bundled vocabulary with prompts sent as text. */
typedef struct fim_remote_config {
    const char *api;         /* "openai" (vLLM, SGLang, llama.cpp's /v1), "sglang" (openai, plus an
                                abort by request id on cancel), "llamacpp", "ollama"; NULL: in-process */
    const char *url;         /* http(s)://host:port[/v1] */
    const char *model;       /* the server's model name (openai, ollama), or NULL */
    const char *api_key_env; /* the environment variable that holds a bearer token, or NULL */
    const char *ca_file;     /* CA bundle for TLS verification, or NULL for the system's */
    int timeout_ms;          /* connect and first-token timeout (0: 10 s) */
} fim_remote_config;

typedef struct fim_backend_spec {
    const char *model_path;
    bool model_is_bundled; /* remote: model_path is fimd's own small model, whose tokenizer is not
                              the server's, so prompts go as text */
    int threads;           /* in-process matrix threads (0: the number of cores) */
    model_opts load;       /* in-process: how the weights are loaded (zero: the defaults) */
    fim_remote_config remote;
} fim_backend_spec;

/* For fimd/status and logs. Never holds the API key. */
typedef struct fim_backend_status {
    char kind[16]; /* "in-process", "openai", "sglang", "llamacpp", "ollama" */
    char url[512];
    char desc[256];   /* the model's shape, or the server and how prompts are sent */
    char health[512]; /* "ok", "unknown" (nothing asked yet), or the last failure */
    char note[512];   /* warnings: a tokenizer mismatch, plain http to another host */
    int threads;      /* in-process only */
    bool prompt_ids;  /* prompts go as token ids (else as text) */
    bool damaged;     /* the model's file changed under it: it must be loaded again */
} fim_backend_status;

typedef struct fim_engine fim_engine;

/* Open the backend the spec names (loading the model, or the vocabulary and the tokenizer handshake
 * with the server). NULL with a message on failure. The caller frees it with fim_engine_free. */
fim_engine *fim_engine_open(const fim_backend_spec *spec, fim_err *err);
void fim_engine_free(fim_engine *e);
/* Forget a document's cache (didClose). */
void fim_engine_close_doc(fim_engine *e, const char *doc);
size_t fim_engine_cache_bytes(const fim_engine *e);
int fim_engine_n_docs(const fim_engine *e);
void fim_engine_status(const fim_engine *e, fim_backend_status *out);
/* The prompt's vocabulary (owned by the engine) and the context the model was trained on (0 when
 * unknown). */
const model_vocab *fim_engine_vocab(const fim_engine *e);
int fim_engine_n_ctx(const fim_engine *e);

typedef struct fim_request {
    const char *doc;  /* the document's key (its URI); selects the cache */
    const char *text; /* the document, or a window of it that starts at a line start */
    size_t len;
    size_t cursor; /* byte offset of the cursor in text (clamped to len) */
    /* When set, the context replaces text, len and cursor (it carries the syntax tree
     * and related definitions). When NULL, a context is made from text: the language comes from
     * `language` (an LSP id, may be NULL) and the doc key as a path, and the text is parsed. */
    const fim_context *ctx;
    const char *language;
    /* Tools only: instead of sampling, take the tokens of this text as if the model had produced
     * them, one by one, through the same stop rules and post-processing (no model evaluation). */
    const char *assume_output;
    size_t assume_len;
} fim_request;

enum fim_stop {
    FIM_STOP_EOS,
    FIM_STOP_MAX_TOKENS,
    FIM_STOP_LINE_END,
    FIM_STOP_INDENT,
    FIM_STOP_SUFFIX_REPEAT,
    FIM_STOP_CONTROL,
    FIM_STOP_CANCELLED,
    FIM_STOP_BLOCK_END,
    FIM_STOP_UNBALANCED,
    FIM_STOP_REPETITION,
};
const char *fim_stop_name(enum fim_stop s);

/* Where an answer came from: the model, or a kept completion with no model work. */
enum fim_source { FIM_FROM_MODEL, FIM_FROM_TYPE_THROUGH, FIM_FROM_PREFETCH };

typedef struct fim_stats {
    int prompt_tokens; /* tokens in the prompt */
    int reused;        /* of them, kept from the document's cache */
    int evaluated;     /* of them, computed now */
    int generated;     /* tokens generated */
    double prompt_ms, gen_ms;
    double first_token_ms; /* from the request to the first generated token */
    int server_cached; /* prompt tokens the serving engine reports it had cached (-1: not told) */
    bool multi_line;
    enum fim_stop stop;
    enum fim_source source;
    int steps;      /* model evaluations during generation (in-process) */
    int drafted;    /* draft tokens evaluated ahead of the engine's choice */
    int accepted;   /* of them, the ones the engine chose (each saved a step) */
    char note[256]; /* what a remote stream did besides tokens (an error after them, a retry) */
} fim_stats;

/* Complete at the cursor. On success *out is the malloc'd completion (valid UTF-8, possibly empty;
 * the caller frees it). A cancel flag that becomes non-zero stops within one token: then the result
 * is 1 with stats->stop = FIM_STOP_CANCELLED and *out NULL. Errors return -1 with a message. */
int fim_complete(fim_engine *e, const fim_request *req, const fim_config *cfg,
                 const atomic_int *cancel, char **out, fim_stats *stats, fim_err *err);

/* Compute ahead the completion at req's state (the document with the shown middle accepted) and
 * keep it for the document: a later fim_complete at exactly that state answers from it. Nothing is
 * done when cfg->prefetch is off or that state's completion is already kept. The last answered
 * middle (for type-through) is left alone. Returns as fim_complete, without the text. */
int fim_prefetch(fim_engine *e, const fim_request *req, const fim_config *cfg,
                 const atomic_int *cancel, fim_stats *stats, fim_err *err);

/* The same prompt built with only a vocabulary (no weights needed), as token ids (malloc'd). */
int fim_prompt_ids(const model_vocab *v, const fim_context *ctx, const fim_config *cfg,
                   int32_t **ids, size_t *n, fim_err *err);

#endif
