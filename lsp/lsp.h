/* lsp/lsp.h — fimd's Language Server: Content-Length framing on stdio, JSON-RPC over jsmn, a libev
 * loop, documents kept in sync incrementally, and completion requests answered by an inference
 * worker thread (fim/). Also the position arithmetic (UTF-8/16/32 <-> byte offsets) that
 * `fimd complete` shares with the server. */
#ifndef FIMD_LSP_H
#define FIMD_LSP_H

#include "model/model.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum lsp_encoding { LSP_UTF16 = 0, LSP_UTF8 = 1, LSP_UTF32 = 2 };

typedef struct lsp_pos {
    long line, character;
} lsp_pos;

/* Byte offset of an LSP position in text. Positions past the end of a line clamp to the line's end,
 * lines past the end clamp to the end of the text, a position inside a character (a UTF-16 offset
 * between the halves of a surrogate pair) moves back to the character's start. Returns false when
 * it had to clamp (the offset is still usable). */
bool lsp_offset_of(const char *text, size_t len, lsp_pos p, enum lsp_encoding enc, size_t *offset);
/* The LSP position of a byte offset (clamped to len). */
lsp_pos lsp_pos_of(const char *text, size_t len, size_t offset, enum lsp_encoding enc);

typedef struct lsp_options {
    const char *model;         /* --model or FIMD_MODEL; initializationOptions.model overrides */
    const char *bundled_model; /* used when no model is configured at all (NULL: none) */
    int threads;               /* 0 = default */
    model_opts load;           /* how the in-process model is loaded (zero: the defaults) */
    /* A serving engine instead of the in-process model (--backend API:URL); `model` then names the
     * GGUF whose vocabulary builds the prompts. */
    const char *backend_api, *backend_url, *backend_model, *api_key_env, *ca_file;
    int timeout_ms;
    const char *log_path; /* --log FILE, or NULL */
    int in_fd, out_fd;    /* normally 0 and 1 */
    size_t max_message;   /* bytes; 0 = 64 MiB */
    /* --no-type-through, --no-prefetch: start with these off (settings may turn them on) */
    bool no_type_through, no_prefetch;
} lsp_options;

/* Serve until `exit` (or end of input). Returns the process exit status: 0 after shutdown+exit,
 * 1 otherwise. */
int lsp_serve(const lsp_options *opt);

/* ---- a scripted client, for tools (fimd demo) ---- */

typedef struct lsp_client lsp_client;

/* Start argv[0] with argv as an LSP server on pipes; NULL on failure. */
lsp_client *lsp_client_start(char *const argv[]);
void lsp_client_notify(lsp_client *c, const char *method, const char *params_json);
/* Send a request and wait for its answer (skipping notifications, answering server requests with
 * null). Returns the malloc'd JSON of the result, or NULL with the error's message in err. */
char *lsp_client_call(lsp_client *c, const char *method, const char *params_json, int timeout_ms,
                      char *err, size_t errcap);
/* The same in two steps: send a request (its id), then wait for that id's answer (answers to other
 * ids that arrive meanwhile are dropped). */
int lsp_client_send(lsp_client *c, const char *method, const char *params_json);
char *lsp_client_wait(lsp_client *c, int id, int timeout_ms, char *err, size_t errcap);
/* shutdown, exit, wait: the server's exit status (-1 if it had to be killed). Frees c. */
int lsp_client_finish(lsp_client *c);

/* The value at a dotted path ("items.0.insertText") of a JSON text: decoded when a string, raw JSON
 * otherwise; malloc'd, or NULL when absent. */
char *lsp_json_path(const char *json, const char *path);
/* s as a JSON string literal (malloc'd). */
char *lsp_json_quote(const char *s, size_t n);

#endif
