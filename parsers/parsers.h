/* parsers/parsers.h — the language registry (DeepSeek-Coder-V2's 338 languages plus formats editors
 * open that its list lacks) and the tree-sitter grammars compiled into fimd from pinned npm
 * packages. Everything here is static, read-only data: safe from any thread. */
#ifndef FIMD_PARSERS_H
#define FIMD_PARSERS_H

#include <stdbool.h>
#include <stddef.h>
#include <tree_sitter/api.h>

typedef struct parsers_lang {
    const char *name;          /* as in supported_langs.txt, e.g. "C++" */
    const char *lsp_ids;       /* comma-separated LSP language ids and editor aliases */
    const char *extensions;    /* comma-separated, with the dot: ".cpp,.hpp" */
    const char *file_names;    /* comma-separated exact names: "Makefile,GNUmakefile" */
    const char *shebangs;      /* comma-separated interpreters: "python,python3" */
    const char *line_comment;  /* "//", or NULL */
    const char *block_comment; /* opener, a space, closer (e.g. "(* *)"), or NULL */
    const char *grammar;       /* tree-sitter grammar name, or NULL */
    bool approx;               /* the grammar is a host language's, used for structure only */
    bool indent_blocks;        /* blocks by indentation (Python, YAML, ...) rather than brackets */
} parsers_lang;

int parsers_lang_count(void);
const parsers_lang *parsers_lang_at(int i);
/* Case-insensitive match on the registry name; NULL when unknown. */
const parsers_lang *parsers_lang_by_name(const char *name);

/* The language of a document: by LSP language id (ids no entry claims, such as eglot's "prog",
 * fall through), then by the file name or extension of `path` (a path or a file:// URI; may be
 * NULL), then by a "#!" line at the start of text. NULL when nothing matches. */
const parsers_lang *parsers_detect(const char *language_id, const char *path, const char *text,
                                   size_t len);

/* The compiled grammar of a language (NULL when it has none or it is not compiled in). */
const TSLanguage *parsers_grammar(const parsers_lang *l);
int parsers_grammar_count(void);
const char *parsers_grammar_name(int i);
const TSLanguage *parsers_grammar_by_name(const char *name);

#endif
