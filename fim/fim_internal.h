/* fim/fim_internal.h — what the files of fim/ share with each other and with white-box tests:
 * the prompt builder and the decoder (stop rules and post-processing on the generated text). */
#ifndef FIMD_FIM_INTERNAL_H
#define FIMD_FIM_INTERNAL_H

#include "fim/fim.h"
#include "parsers/parsers.h"

int fim__fail(fim_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

typedef struct fim_ids_vec {
    int32_t *v;
    size_t n, cap;
} fim_ids_vec;

void fim__ids_push(fim_ids_vec *b, const int32_t *ids, size_t n);

/* ---- documents, contexts and what the syntax says ----
 *
 * Five files, each calling only the ones listed before it (no circle):
 *   brackets.c  the bracket scanner (also used by decode.c)
 *   doc.c       documents and their trees, incremental edits, parsing
 *   shape.c     depths, one line or a block, block depth, middle line depth (brackets, doc)
 *   related.c   definitions, windows, snippets, identifier hashes, relevance, and the
 *               per-document cache of definitions (doc)
 *   context.c   fim_context_new and its accessors: on top of documents, shape and related code
 * prompt.c and decode.c sit above them all. */

enum {
    FIM__PARSE_TIMEOUT_US = 3000000
}; /* a pathological buffer gets no tree rather than a hung loop */

/* The related code's cache of a document's definitions (related.c's; opaque to doc.c). */
typedef struct fim_related_cache fim_related_cache;

/* A document (doc.c). Only doc.c writes it, except the `related` slot, which related.c fills; the
 * others read path, text, lang and the trees after fim_doc_sync. */
struct fim_doc {
    char *path;
    char *text;
    size_t len, cap;
    const parsers_lang *lang;
    const TSLanguage *grammar;
    TSParser *parser;
    TSTree *tree;        /* matches text once synced */
    TSTree *good;        /* the last tree without errors, kept aligned by the same edits: where
                          * definitions are found while code being typed has errors */
    bool dirty;          /* edited since the last parse */
    unsigned long edits; /* edits so far: a cache made at another count is stale */
    /* Who frees what: related.c creates the cache on first use and sets related_free; doc.c never
     * looks inside and, in fim_doc_free, hands it to related_free. */
    fim_related_cache *related;
    void (*related_free)(fim_related_cache *rc);
};

typedef struct fim_snippet {
    char *path; /* where it comes from (for the header comment) */
    char *name; /* the defined name */
    char *text; /* the definition's text, trimmed to a few lines */
    const parsers_lang *lang;
    size_t order;     /* stable position: document index << 32 | start byte */
    size_t order_end; /* ... and end byte */
    double score;     /* relevance: which snippets get the budget */
    int follows;      /* > 0: what followed a match of the anchor, agreeing over this many lines */
} fim_snippet;

typedef struct fim_hashes {
    uint32_t *v; /* sorted, distinct identifier hashes */
    size_t n;
} fim_hashes;
typedef struct fim_query {
    fim_hashes near, similar;
} fim_query;

/* What followed the same lines elsewhere. The anchor is the last FIM_ANCHOR_LINES non-blank lines
 * above the cursor line (compared without leading and trailing blanks; never the cursor line, so
 * typing there changes nothing). Where another text has the anchor's last line, the lines after it
 * are likely what comes next here, the more so the more lines above agree too: files that share
 * code (commands, handlers, examples, tests) go on alike. */
enum { FIM_ANCHOR_LINES = 8, FIM_FOLLOW_LINES = 3, FIM_ANCHOR_MIN_CHARS = 8 };
/* Their snippets' order (fim_snippet.order) starts here: after all others, nearest the prefix, so
 * that the most relevant code is nearest the cursor and the lines that change with the anchor are
 * the last of the related code (what precedes them stays in the cache). */
#define FIM_FOLLOW_ORDER ((size_t)1 << 48)
typedef struct fim_anchor {
    uint32_t h[FIM_ANCHOR_LINES]; /* line hashes, the nearest last */
    int n;
    size_t last_chars; /* the last line's, without blanks */
} fim_anchor;
struct fim_context {
    char *path;
    char *text;
    size_t len, cursor;
    const parsers_lang *lang; /* may be NULL */
    TSTree *tree;             /* a private copy matching text, or NULL */
    TSTree *defs_tree;  /* the document's last tree without errors (edited to match), or NULL */
    fim_snippet *snips; /* definitions from other documents named near the cursor */
    int n_snips;
    long cursor_line;  /* the cursor's line number (0-based) */
    fim_query query;   /* what makes code relevant to this cursor */
    fim_anchor anchor; /* the lines above the cursor line, for fim__follow */
};

/* The document's tree, reparsed first if edited (owned by the document). */
TSTree *fim__doc_tree(fim_doc *d);
/* Row and byte column of offset `at` in t; the point after s[0..n) from `from` (tree edits). */
TSPoint fim__point_at(const char *t, size_t at);
TSPoint fim__point_after(TSPoint from, const char *s, size_t n);
/* Does the node's type contain `part`? */
bool fim__type_has(TSNode n, const char *part);

/* A context made from plain text (parsed here); NULL when out of memory. */
fim_context *fim__context_from_text(const char *path, const char *language_id, const char *text,
                                    size_t len, size_t cursor);

/* How deep the syntax is at a line: the outermost node that starts at the line's first non-blank
 * byte (by tree, or by indentation without one), -1 when the line is blank or starts inside a
 * node (a string, a comment, a continued expression). Error nodes (code being typed) are not
 * counted. Smaller is a better place to cut. */
int fim__depth_at_line_start(const fim_context *c, size_t line_start);
/* The same for the outermost node ending at the line's last non-blank byte (before `line_end`). */
int fim__depth_at_line_end(const fim_context *c, size_t line_start, size_t line_end);
/* Single line or multi-line, from the syntax at the cursor. */
bool fim__multi_line(const fim_context *c);
/* The depth of statements at the cursor: one below the innermost node around it (-1: no tree). */
int fim__block_depth(const fim_context *c);
/* With the middle mid[0..n) inserted at the cursor and the tree reparsed incrementally: the depth
 * of the outermost node starting on the middle's line at offset `line`, or -1 (blank, no tree, or
 * inside an error). *parser is created on first use; the caller deletes it. */
int fim__middle_line_depth(const fim_context *c, TSParser **parser, const char *mid, size_t n,
                           size_t line);
/* Does the language mark blocks by indentation (Python, YAML, ...) rather than brackets? */
bool fim__indent_blocks(const parsers_lang *l);

/* Definitions in a document (functions, types, classes and their members, top-level names). */
typedef struct fim_def {
    size_t start, end; /* the definition, with an adjacent leading comment */
    size_t name_start, name_end;
} fim_def;
int fim__defs(const char *text, size_t len, TSTree *tree, fim_def **out); /* count; malloc'd */
/* Overlapping windows of WINDOW_LINES lines (as fim_def without a name), for similar code. */
int fim__windows(const char *text, size_t len, fim_def **out);
/* The document's first run of top-level imports (Python's import and from-import, Go's, Java's,
 * Rust's use, JavaScript's import, ...; comments between them included) as a fim_def without a
 * name; false when there is none. C's #include is not one: it names files, not what the code
 * uses. */
bool fim__imports(TSTree *tree, fim_def *out);
/* The snippet text of a definition: at most SNIPPET_LINES lines (malloc'd). */
char *fim__def_snippet(const char *text, const fim_def *d, const parsers_lang *l);

/* Relevance of definitions to the cursor: a definition named near the cursor (40 lines above to
 * 10 below; not the cursor line, so that typing there leaves the choice alone) scores 2 plus the
 * fraction of its identifiers that do not occur there (2 to 3); others
 * score the Jaccard similarity of their identifiers with those of the 48 lines above the cursor (in
 * steps of 8 lines, so that typing does not change it), when at least MIN_SIMILARITY; 0 means not
 * relevant. */
void fim__ident_hashes(const char *t, size_t from, size_t to, fim_hashes *out);
void fim__hashes_free(fim_hashes *h);
/* `line` is the cursor's line number (0-based). */
void fim__query_init(fim_query *q, const char *text, size_t len, size_t cursor, long line);
void fim__query_free(fim_query *q);
double fim__def_score(const fim_query *q, const char *text, const fim_def *d,
                      const fim_hashes *ids);
/* The identifiers of a definition's snippet lines. */
void fim__def_hashes(const char *text, const fim_def *d, fim_hashes *out);
void fim__anchor_init(fim_anchor *a, const char *text, size_t cursor_line_start);
/* The match in text that agrees with the anchor over the most lines (the first of equals), as the
 * matched line and the FIM_FOLLOW_LINES non-blank lines after it, skipping those that overlap
 * [lo, hi); the line that starts at `skip` (the cursor line, in the cursor's own document; SIZE_MAX
 * elsewhere) counts as blank. Returns how many lines agree; 0 when none matched, or when only the
 * last line did and it has fewer than FIM_ANCHOR_MIN_CHARS characters without blanks. */
int fim__follow(const fim_anchor *a, const char *text, size_t len, size_t skip, size_t lo,
                size_t hi, fim_def *out);

/* A document's definitions and windows with their identifiers (synced first), from the cache
 * related.c keeps in d->related, remade after an edit. Owned by the cache: valid until the next
 * call for d or fim_doc_free(d), which frees the cache through d->related_free. */
const fim_def *fim__related_defs(fim_doc *d, int *n, const fim_hashes **ids);
/* fim__follow over another document (none over 1 MB), kept in its cache while the anchor and the
 * document stay the same: typing within a line scans no other document again. While the matches
 * of new anchors walk down the lines it answered last, with one still to come, the answer stays. */
int fim__doc_follow(fim_doc *d, const fim_anchor *a, fim_def *out);

/* A bracket scanner that skips strings and comments (the registry's comment tokens). */
typedef struct fim_brackets {
    const parsers_lang *lang;
    char stack[256];
    int depth; /* entries on stack (saturates at 256, counted in extra) */
    int extra;
    int underflow; /* closers that found the stack empty */
    int mode;      /* 0 code, 1 line comment, 2 block comment, 3 string */
    char quote;
    bool backtick, multiline_backtick;
} fim_brackets;
void fim__brackets_init(fim_brackets *b, const parsers_lang *l);
/* Scan text[from, to) (text[0..n) is visible for lookahead). Returns the offset of the first
 * closer that found the stack empty when stop_on_underflow, else `to`. */
size_t fim__brackets_scan(fim_brackets *b, const char *text, size_t n, size_t from, size_t to,
                          bool stop_on_underflow);

/* BOS <fim_begin> [definitions] prefix <fim_hole> suffix <fim_end> line-before-cursor, within the
 * budgets. The prefix ends at the start of the cursor line and begins at a syntax boundary near a
 * line that moves in steps, so typing within a line (or adding a few lines) changes only the tail
 * of the prompt. Definitions (other documents', then the document's own outside the window) come
 * in a stable order under comment headers; what they leave of their budget goes to the prefix.
 * `memo` (may be NULL) keeps a document's last cut points: they stay while they still fit, so a
 * transient parse error (an unclosed quote while typing) cannot move the windows. */
typedef struct fim_window_memo {
    bool valid;
    long prefix_line;                   /* the line the prefix began at */
    long suffix_lines;                  /* the suffix's last line, counted from the cursor line */
    long line;                          /* the cursor line then */
    int reserve;                        /* and the prefix budget kept for it */
    int entry_reserve;                  /* which was this when the cursor came to the line */
    int slack;                          /* and the tokens the windows' cuts left to related code */
    long seen_lines;                    /* and the suffix's lines below the cursor line then */
    struct fim_snippet_cache *snippets; /* candidates' tokens and identifiers, kept between
                                           requests (made on first use; the memo's owner frees it
                                           with fim__snippet_cache_free) */
} fim_window_memo;
struct fim_snippet_cache *fim__snippet_cache_new(void);
void fim__snippet_cache_free(struct fim_snippet_cache *sc);
int fim__build_prompt(const model_vocab *v, const fim_context *c, const fim_config *cfg,
                      fim_window_memo *memo, fim_ids_vec *out, fim_err *err);

/* The shape of the middle and the decoder that applies the stop rules as text arrives. */
typedef struct fim_decoder {
    char *buf; /* generated bytes so far */
    size_t len, cap;
    const parsers_lang *lang;
    bool multi_line;       /* false: stop at the end of the cursor line */
    bool statement_level;  /* the cursor starts a statement (a blank line before it) */
    bool line_start;       /* ... at column 0: the middle's first line brings its own indentation */
    bool indent_blocks;    /* blocks by indentation (Python, ...) */
    int cursor_indent;     /* indentation of the cursor line (columns) */
    const char *cursor_ws; /* the cursor line's leading whitespace, as the document has it */
    size_t cursor_ws_len;
    int allowed_closers; /* brackets open before the cursor that the suffix does not close */
    bool in_literal;     /* the cursor is inside a string or comment: no bracket rules */
    const char *suffix;  /* text after the cursor */
    size_t suffix_len;
    const char *next_line; /* first non-blank line after the cursor line (trimmed), or NULL */
    size_t next_line_len;
    bool doc_tabs;    /* the document indents with tabs */
    int doc_unit;     /* else with this many spaces per level */
    size_t checked;   /* bytes of buf whose lines were already checked */
    size_t closed_at; /* the middle closed the enclosing block here (0 = not yet; offset+1) */
    const fim_context *ctx;
    int block_depth;  /* statements at the cursor are this deep in the tree (-1: no tree) */
    TSParser *parser; /* for reparsing with the middle inserted */
    enum fim_stop stop;
    bool stopped;
} fim_decoder;

void fim__decoder_init(fim_decoder *d, const fim_context *c);
/* Feed generated bytes; returns true when a stop rule fired (then stop decoding). */
bool fim__decoder_push(fim_decoder *d, const char *bytes, size_t n);
/* Drop the last n bytes (the model's tokens repeated the suffix's) and stop. */
void fim__decoder_cut_tail(fim_decoder *d, size_t n, enum fim_stop why);
/* The post-processed completion (malloc'd): cut at the stop, trailing partial UTF-8 and control
 * characters removed, lines and text that duplicate the start of the suffix removed, the middle's
 * indentation re-expressed in the document's unit level by level (lines after the first; the first
 * too when the cursor is at column 0). */
char *fim__decoder_finish(fim_decoder *d);
void fim__decoder_free(fim_decoder *d);

/* ---- backends (engine.c drives them; local.c, remote.c and the replay in engine.c) ---- */

enum { FIM_TOP_MAX = 16 };

/* One generation: the prompt and how to sample. */
typedef struct fim_gen {
    const char *doc;    /* the document's key: selects its cache */
    const int32_t *ids; /* the prompt */
    size_t n;
    int max_tokens;
    float temperature, top_p;
    uint64_t seed;
    int want_top;       /* alternatives per token wanted (token healing on a remote engine) */
    size_t cache_bytes; /* in-process caches' budget */
    int text_budget;    /* prompt tokens at most (sizes a remote context, e.g. Ollama's num_ctx) */
    int drafts;         /* draft tokens per step at most (fim_config.drafts) */
} fim_gen;

/* A step: the logits to choose from (in-process), or the backend's own choice with alternatives. */
typedef struct fim_step {
    int32_t token;       /* -1: choose from logits */
    const float *logits; /* [n_vocab] when token is -1 */
    int n_top;
    int32_t top[FIM_TOP_MAX]; /* alternatives, best first */
} fim_step;

typedef struct fim_backend fim_backend;
typedef struct fim_backend_ops {
    /* Make ready for g: evaluate the prompt, or send the request. 0, 1 cancelled, -1 error. Sets
     * st->reused and st->evaluated (or server_cached) when known. */
    int (*start)(fim_backend *b, const fim_gen *g, const atomic_int *cancel, fim_stats *st,
                 fim_err *err);
    /* The next step. 0; 1 cancelled; 2 no more tokens (the stream ended); -1 error (nothing came).
     */
    int (*next)(fim_backend *b, fim_step *s, const atomic_int *cancel, fim_stats *st, fim_err *err);
    /* The engine took tok at this step and wants the one after it. 0, 1 cancelled, -1 error. */
    int (*accept)(fim_backend *b, int32_t tok, const atomic_int *cancel, fim_err *err);
    /* Generation is over (a stop rule, the limit, cancellation or an error): close what is open. */
    void (*finish)(fim_backend *b, bool cancelled, fim_stats *st);
    void (*close_doc)(fim_backend *b, const char *doc);
    size_t (*cache_bytes)(const fim_backend *b);
    int (*n_docs)(const fim_backend *b);
    void (*status)(const fim_backend *b, fim_backend_status *out);
    void (*free)(fim_backend *b);
} fim_backend_ops;

/* The common head of every backend. */
struct fim_backend {
    const fim_backend_ops *ops;
    const model_vocab *vocab;
    int n_ctx; /* training context (0: unknown) */
};

/* The in-process backend on a loaded model (borrowed: it must outlive the backend). */
fim_backend *fim__local_new(model *m, fim_err *err);
/* A backend on a serving engine; takes ownership of vocab. */
fim_backend *fim__remote_new(const fim_remote_config *rc, model_vocab *vocab, int n_ctx,
                             bool vocab_is_bundled, fim_err *err);
/* A prompt as text, for engines that take text (Ollama) or tokenize differently: control tokens by
 * name except BOS (the server adds its own), and every control-token string removed from the
 * user's text between them. Appends to out. */
typedef struct fim_buf fim_buf;
void fim__prompt_text(const model_vocab *v, const int32_t *ids, size_t n, fim_buf *out);
/* An engine over a backend (owned by the engine from then on). */
fim_engine *fim__engine_new(fim_backend *b, fim_err *err);
/* For tests: an engine on a loaded model (borrowed). */
fim_engine *fim__engine_with_model(model *m, fim_err *err);
/* The prompt fim_complete would build for req, as token ids (malloc'd); for tests. */
int fim__engine_prompt(fim_engine *e, const fim_request *req, const fim_config *cfg, int32_t **ids,
                       size_t *n, fim_err *err);

/* ---- JSON reading for remote answers (json.c; jsmn underneath) ---- */

typedef struct fim_json fim_json;
/* Parse text[0..n); NULL when it is not JSON (or out of memory). Free with fim__json_free. */
fim_json *fim__json_parse(const char *text, size_t n);
void fim__json_free(fim_json *j);
/* The value at a dotted path from the root ("choices.0.text"), or -1. */
int fim__json_at(const fim_json *j, const char *path);
/* The same from value `from`. */
int fim__json_at_from(const fim_json *j, int from, const char *path);
int fim__json_len(const fim_json *j, int arr); /* elements of an array, -1 when not one */
bool fim__json_long(const fim_json *j, int i, long *out);
bool fim__json_double(const fim_json *j, int i, double *out);
bool fim__json_true(const fim_json *j, int i);
bool fim__json_is_null(const fim_json *j, int i);
/* A string value decoded (escapes, \u with surrogate pairs) into a malloc'd buffer. */
char *fim__json_string(const fim_json *j, int i, size_t *len);
/* The raw key text of the k-th member of an object (not decoded), or NULL. */
const char *fim__json_key(const fim_json *j, int obj, int k, size_t *len);
/* The value of the k-th member of an object, or -1. */
int fim__json_member(const fim_json *j, int obj, int k);
/* A JSON string literal of s[0..n) appended to a growing buffer. */
struct fim_buf {
    char *p;
    size_t n, cap;
};
void fim__buf_add(fim_buf *b, const char *s, size_t n);
void fim__buf_fmt(fim_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void fim__buf_json_str(fim_buf *b, const char *s, size_t n);

#endif
