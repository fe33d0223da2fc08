/* lsp/lsp.h — fimd's Language Server: Content-Length framing on stdio, JSON-RPC over jsmn, a libev
 * loop, documents kept in sync incrementally, and completion requests answered by an inference
 * worker thread (fim/). Also the position arithmetic (UTF-8/16/32 <-> byte offsets) that
 * `fimd complete` shares with the server. */
#ifndef FIMD_LSP_H
#define FIMD_LSP_H

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
    const char *model;     /* --model or FIMD_MODEL; initializationOptions.model overrides */
    int threads;           /* 0 = default */
    const char *log_path;  /* --log FILE, or NULL */
    int in_fd, out_fd;     /* normally 0 and 1 */
    size_t max_message;    /* bytes; 0 = 64 MiB */
} lsp_options;

/* Serve until `exit` (or end of input). Returns the process exit status: 0 after shutdown+exit,
 * 1 otherwise. */
int lsp_serve(const lsp_options *opt);

#endif
