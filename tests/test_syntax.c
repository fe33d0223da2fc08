/* tests/test_syntax.c — syntax-aware context per language: for each grammar a document of five
 * definitions is parsed (without errors), then at a blank line in the third definition's body:
 * the middle is multi-line, inside a multi-line argument list it is one line, the prefix window
 * starts where a definition starts, the suffix ends where the third definition ends, and a
 * run-on output is cut at the end of the block. Also: languages without a grammar, detection,
 * incremental edits, definitions from other open documents, and post-processing. */
#define _GNU_SOURCE
#include "fim/fim.h"
#include "fim/fim_internal.h"
#include "parsers/parsers.h"
#include "tests/check.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static model *m;
static const model_vocab *v;
static model_fim_ids fi;

typedef struct lang_case {
    const char *file;      /* the file name languages are detected by */
    const char *grammar;   /* the grammar it must get */
    const char *prelude;   /* text before the definitions, or NULL */
    const char *head;      /* a definition's first lines; %1$s is its name */
    const char *stmt;      /* one statement of its body, with the body's indentation */
    const char *tail;      /* its last lines */
    const char *args_open; /* a statement whose argument list spans lines (NULL: none) */
    const char *args_close;
    bool braces; /* its blocks close with '}' */
} lang_case;

static const lang_case CASES[] = {
    {"t.c", "c", NULL, "int %1$s(int a)\n{\n", "    a = a + 1;\n", "    return a;\n}\n",
     "    a = add(a,\n", "        a);\n", true},
    {"t.cpp", "cpp", NULL, "template <typename T>\nT %1$s(T a)\n{\n", "    a = a + 1;\n",
     "    return a;\n}\n", "    a = add(a,\n", "        a);\n", true},
    {"t.cs", "c_sharp", NULL, "static class K%1$s\n{\n    static int F(int a)\n    {\n",
     "        a = a + 1;\n", "        return a;\n    }\n}\n", "        a = Add(a,\n",
     "            a);\n", true},
    {"t.java", "java", NULL, "class K%1$s {\n    int f(int a) {\n", "        a = a + 1;\n",
     "        return a;\n    }\n}\n", "        a = add(a,\n", "            a);\n", true},
    {"t.js", "javascript", NULL, "function %1$s(a) {\n", "  a = a + 1;\n", "  return a;\n}\n",
     "  a = add(a,\n", "    a);\n", true},
    {"t.ts", "typescript", NULL, "function %1$s(a: number): number {\n", "  a = a + 1;\n",
     "  return a;\n}\n", "  a = add(a,\n", "    a);\n", true},
    {"t.tsx", "tsx", NULL, "function %1$s(a: number): number {\n", "  a = a + 1;\n",
     "  return a;\n}\n", "  a = add(a,\n", "    a);\n", true},
    {"t.py", "python", NULL, "def %1$s(a):\n", "    a = a + 1\n", "    return a\n",
     "    a = add(a,\n", "            a)\n", false},
    {"t.go", "go", "package main\n\n", "func %1$s(a int) int {\n", "\ta = a + 1\n",
     "\treturn a\n}\n", "\ta = add(a,\n", "\t\ta)\n", true},
    {"t.rs", "rust", NULL, "fn %1$s(a: i32) -> i32 {\n", "    let b = a + 1;\n", "    a\n}\n",
     "    let c = add(a,\n", "        a);\n", true},
    {"t.rb", "ruby", NULL, "def %1$s(a)\n", "  a = a + 1\n", "  a\nend\n", "  a = add(a,\n",
     "    a)\n", false},
    {"t.php", "php", "<?php\n", "function %1$s($a) {\n", "    $a = $a + 1;\n",
     "    return $a;\n}\n", "    $a = add($a,\n", "        $a);\n", true},
    {"t.kt", "kotlin", NULL, "fun %1$s(a: Int): Int {\n", "    val b = a + 1\n",
     "    return a\n}\n", "    val c = add(a,\n", "        a)\n", true},
    {"t.swift", "swift", NULL, "func %1$s(a: Int) -> Int {\n", "    let b = a + 1\n",
     "    return a\n}\n", "    let c = add(a,\n", "        a)\n", true},
    {"t.scala", "scala", NULL, "def %1$s(a: Int): Int = {\n", "  val b = a + 1\n", "  a\n}\n",
     "  val c = add(a,\n", "    a)\n", true},
    {"t.lua", "lua", NULL, "function %1$s(a)\n", "  a = a + 1\n", "  return a\nend\n",
     "  a = add(a,\n", "    a)\n", false},
    {"t.sh", "bash", NULL, "%1$s() {\n", "  a=$((a + 1))\n", "  echo \"$a\"\n}\n", "  arr=(a\n",
     "    b)\n", true},
    {"t.dart", "dart", NULL, "int %1$s(int a) {\n", "  a = a + 1;\n", "  return a;\n}\n",
     "  a = add(a,\n", "      a);\n", true},
    {"t.R", "r", NULL, "%1$s <- function(a) {\n", "  a <- a + 1\n", "  a\n}\n", "  a <- add(a,\n",
     "    a)\n", true},
    {"t.jl", "julia", NULL, "function %1$s(a)\n", "    a = a + 1\n", "    return a\nend\n",
     "    a = add(a,\n", "        a)\n", false},
    {"t.hs", "haskell", NULL, "%1$s a = do\n", "  print a\n", "  return a\n", "  print [a,\n",
     "    a]\n", false},
    {"t.ml", "ocaml", NULL, "let %1$s a =\n", "  print_int a;\n", "  a\n",
     "  print_int (List.length [a;\n", "    a]);\n", false},
    {"t.ex", "elixir", NULL, "defmodule M%1$s do\n  def f(a) do\n", "    a = a + 1\n",
     "    a\n  end\nend\n", "    a = add(a,\n", "      a)\n", false},
    {"t.zig", "zig", NULL, "fn %1$s(a: i32) i32 {\n", "    _ = a + 1;\n", "    return a;\n}\n",
     "    _ = add(a,\n", "        a);\n", true},
    {"t.m", "objc", NULL, "int %1$s(int a)\n{\n", "    a = a + 1;\n", "    return a;\n}\n",
     "    a = add(a,\n", "        a);\n", true},
    {"t.sol", "solidity", NULL,
     "contract C%1$s {\n    function f(uint a) public returns (uint) {\n", "        a = a + 1;\n",
     "        return a;\n    }\n}\n", "        a = add(a,\n", "            a);\n", true},
    {"t.ps1", "powershell", NULL, "function %1$s($a) {\n", "    $a = $a + 1\n",
     "    return $a\n}\n", "    $b = @(1,\n", "        2)\n", true},
    {"t.fs", "fsharp", NULL, "let %1$s a =\n", "    printfn \"a\"\n", "    a\n", NULL, NULL, false},
    {"t.scad", "openscad", NULL, "module %1$s(a) {\n", "    cube(a);\n", "    sphere(a);\n}\n",
     "    translate([a,\n", "        a]) cube(a);\n", true},
    {"t.awk", "awk", NULL, "function %1$s(a) {\n", "    a = a + 1\n", "    return a\n}\n",
     "    a = add(a,\n", "        a)\n", true},
    {"Makefile", "make", NULL, "%1$s:\n", "\techo a\n", "\techo done\n", NULL, NULL, false},
    {"t.v", "verilog", NULL, "module %1$s(input a);\n", "  wire b;\n", "endmodule\n", NULL, NULL,
     false},
    {"t.css", "css", NULL, ".%1$s {\n", "  color: red;\n", "  margin: 0;\n}\n", NULL, NULL, true},
    {"t.scss", "scss", NULL, ".%1$s {\n", "  color: red;\n", "  margin: 0;\n}\n", NULL, NULL, true},
    {"t.el", "elisp", NULL, "(defun %1$s (a)\n", "  (setq a (+ a 1))\n", "  a)\n", "  (list a\n",
     "        a)\n", false},
    {"t.yaml", "yaml", NULL, "%1$s:\n", "  key: 1\n", "  end: 2\n", NULL, NULL, false},
    {"t.html", "html", NULL, "<div id=\"%1$s\">\n", "  <p>text</p>\n", "</div>\n", NULL, NULL,
     false},
    {"t.svelte", "svelte", NULL, "<div class=\"%1$s\">\n", "  <p>text</p>\n", "</div>\n", NULL,
     NULL, false},
    {"t.xml", "xml", "<?xml version=\"1.0\"?>\n<root>\n", "  <item name=\"%1$s\">\n",
     "    <v>1</v>\n", "  </item>\n", NULL, NULL, false},
    {"t.groovy", "groovy", NULL, "int %1$s(int a) {\n", "    a = a + 1;\n", "    return a;\n}\n",
     "    a = add(a,\n", "        a);\n", true},
    {"t.nix", "nix", "{\n", "  %1$s = a: {\n", "    b = a;\n", "  };\n", "    c = [ a\n",
     "      a ];\n", true},
    {"t.tex", "latex", NULL, "\\section{%1$s}\n", "Some text here.\n", "More text.\n", NULL, NULL,
     false},
    {"t.gradle", "groovy", NULL, "task %1$s {\n", "    a = a + 1;\n", "    println a;\n}\n", NULL,
     NULL, true},
    {"t.toml", "toml", NULL, "[%1$s]\n", "a = 1\n", "b = 2\n", "c = [1,\n", "  2]\n", false},
    /* without a grammar: indentation, brackets and the registry's comment tokens */
    {"t.pl", NULL, NULL, "sub %1$s {\n", "    my $b = $a + 1; # }\n", "    return $b;\n}\n",
     "    my $c = add($a,\n", "        $b);\n", true},
    {"t.f90", NULL, NULL, "subroutine %1$s(a)\n", "  a = a + 1\n", "  print *, a\nend subroutine\n",
     "  call add(a, &\n", "    a)\n", false},
};

/* ---- building the document ---- */

typedef struct doc {
    char text[8192];
    size_t len;
    size_t cursor;      /* blank line in the third definition's body */
    size_t args_cursor; /* blank line inside the argument list (or SIZE_MAX) */
    size_t starts[5];   /* where each definition starts */
    size_t ends[5];     /* and ends (after its last newline) */
} doc;

static void add(doc *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(doc *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    d->len += (size_t)vsnprintf(d->text + d->len, sizeof d->text - d->len, fmt, ap);
    va_end(ap);
}

static size_t indent_len(const char *s)
{
    size_t n = 0;
    while (s[n] == ' ' || s[n] == '\t') n++;
    return n;
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
static void build_doc(const lang_case *c, doc *d)
{
    static const char *names[] = {"alpha", "beta", "gamma", "delta", "epsilon"};
    memset(d, 0, sizeof *d);
    d->args_cursor = SIZE_MAX;
    if (c->prelude) add(d, "%s", c->prelude);
    for (int i = 0; i < 5; i++) {
        d->starts[i] = d->len;
        add(d, c->head, names[i]);
        add(d, "%s", c->stmt), add(d, "%s", c->stmt);
        if (i == 2) {
            size_t ind = indent_len(c->stmt);
            add(d, "%.*s", (int)ind, c->stmt);
            d->cursor = d->len;
            add(d, "\n");
            add(d, "%s", c->stmt);
            if (c->args_open) {
                add(d, "%s", c->args_open);
                add(d, "%.*s", (int)indent_len(c->args_close), c->args_close);
                d->args_cursor = d->len;
                add(d, "\n%s", c->args_close);
            }
        }
        add(d, "%s", c->tail);
        d->ends[i] = d->len;
        add(d, "\n");
    }
    if (c->grammar && !strcmp(c->grammar, "xml")) add(d, "</root>\n");
    if (c->grammar && !strcmp(c->grammar, "nix")) add(d, "}\n");
}
#pragma GCC diagnostic pop

/* ---- helpers ---- */

static int count_tokens(const char *s, size_t n)
{
    int32_t *ids;
    size_t k;
    model_err me = {{0}};
    model_tokenize(v, s, n, false, false, &ids, &k, &me);
    free(ids);
    return (int)k;
}

/* Tokens the prompt builder counts for text[a, b) taken line by line. */
static int line_tokens(const char *t, size_t a, size_t b)
{
    int n = 0;
    while (a < b) {
        const char *nl = memchr(t + a, '\n', b - a);
        size_t e = nl ? (size_t)(nl - t) + 1 : b;
        n += count_tokens(t + a, e - a);
        a = e;
    }
    return n;
}

static size_t find(const int32_t *ids, size_t n, int32_t id)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] == id) return i;
    return n;
}

static char *text_of(const int32_t *ids, size_t n)
{
    char *s = malloc(n * 64 + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += (size_t)model_token_bytes(v, ids[i], s + k, 64);
    s[k] = 0;
    return s;
}

/* The prompt's prefix and suffix text for a context and budgets (related definitions off). */
static void prompt_parts(const fim_context *c, int prefix, int suffix, char **pre, char **suf)
{
    fim_config cfg;
    fim_config_default(&cfg);
    cfg.prefix_tokens = prefix;
    cfg.suffix_tokens = suffix;
    cfg.related_tokens = 0;
    int32_t *ids = NULL;
    size_t n = 0;
    fim_err err = {{0}};
    fim_prompt_ids(v, c, &cfg, &ids, &n, &err);
    size_t b = find(ids, n, fi.begin), h = find(ids, n, fi.hole), e = find(ids, n, fi.end);
    *pre = text_of(ids + b + 1, h - b - 1);
    *suf = text_of(ids + h + 1, e - h - 1);
    free(ids);
}

/* Run the stop rules and post-processing on `out` as if generated at the context's cursor. */
static char *decode(const fim_context *c, const char *out, enum fim_stop *why)
{
    fim_decoder d;
    fim__decoder_init(&d, c);
    for (const char *p = out; *p;) {
        size_t k = strlen(p) < 3 ? strlen(p) : 3;
        if (fim__decoder_push(&d, p, k)) break;
        p += k;
    }
    char *res = fim__decoder_finish(&d);
    if (why) *why = d.stop;
    fim__decoder_free(&d);
    return res;
}

static bool has_error(const char *grammar, const char *text, size_t len)
{
    TSParser *p = ts_parser_new();
    ts_parser_set_language(p, parsers_grammar_by_name(grammar));
    TSTree *t = ts_parser_parse_string(p, NULL, text, (uint32_t)len);
    bool err = !t || ts_node_has_error(ts_tree_root_node(t));
    if (t) ts_tree_delete(t);
    ts_parser_delete(p);
    return err;
}

static bool starts_with_line(const char *s, const char *t, size_t at)
{
    const char *nl = strchr(t + at, '\n');
    size_t n = nl ? (size_t)(nl - t) - at : strlen(t + at);
    return !strncmp(s, t + at, n);
}

/* ---- per language ---- */

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
static void one_language(const lang_case *lc)
{
    doc d;
    build_doc(lc, &d);
    const char *g = lc->grammar ? lc->grammar : lc->file;
    const parsers_lang *l = parsers_detect(NULL, lc->file, d.text, d.len);
    if (lc->grammar) {
        CHECK(l && l->grammar && !strcmp(l->grammar, g), "%s: detected %s (grammar %s)", lc->file,
              l ? l->name : "nothing", l && l->grammar ? l->grammar : "-");
        CHECK(!has_error(g, d.text, d.len), "%s: the test document parses without errors", g);
    } else {
        CHECK(l && !parsers_grammar(l), "%s: detected %s, a language without a grammar", lc->file,
              l ? l->name : "nothing");
    }
    fim_doc *fd = fim_doc_new(lc->file, NULL, d.text, d.len);
    fim_doc_sync(fd);
    CHECK(fim_doc_has_tree(fd) == (lc->grammar != NULL),
          "%s: a syntax tree exactly when there is a grammar", g);
    fim_context *c = fim_context_new(fd, d.cursor, NULL, 0);

    /* the shape of the middle */
    CHECK(fim_context_multi_line(c), "%s: a blank line in a block body is multi-line", g);
    if (d.args_cursor != SIZE_MAX) {
        fim_context *ca = fim_context_new(fd, d.args_cursor, NULL, 0);
        CHECK(!fim_context_multi_line(ca), "%s: a blank line inside an argument list is one line",
              g);
        fim_context_free(ca);
    } else { /* no list to test: the middle of a statement is one line */
        size_t mid = d.starts[2] + strlen(lc->head) + 4;
        fim_context *ca = fim_context_new(fd, mid, NULL, 0);
        CHECK(!fim_context_multi_line(ca), "%s: the middle of a line is one line", g);
        fim_context_free(ca);
    }

    /* the prefix window reaches into the first definition: it must start at the next one */
    size_t l0 = d.cursor;
    while (l0 > 0 && d.text[l0 - 1] != '\n') l0--;
    size_t a_last = d.ends[0] - 1;
    while (a_last > 0 && d.text[a_last - 1] != '\n') a_last--;
    int lt = count_tokens(d.text + l0, d.cursor - l0);
    /* the cursor line's share is reserved in steps of prefix/32 tokens (8 to 32) */
    int base = line_tokens(d.text, a_last, l0), pb = base + lt;
    for (int k = 0; k < 3; k++) {
        int rs = pb / 32 < 8 ? 8 : pb / 32 > 32 ? 32 : pb / 32;
        pb = base + (lt + rs - 1) / rs * rs;
    }
    /* the suffix window reaches into the fourth definition: it must end with the third */
    size_t d_two = d.starts[3];
    for (int k = 0; k < 2; k++) d_two = (size_t)(strchr(d.text + d_two, '\n') - d.text) + 1;
    int sb = line_tokens(d.text, d.cursor, d_two);
    char *pre, *suf, *unused;
    prompt_parts(c, pb, 0, &pre,
                 &unused); /* (each alone: what a prefix leaves goes to the suffix) */
    free(unused);
    prompt_parts(c, 0, sb, &unused, &suf);
    free(unused);
    bool at_def =
        starts_with_line(pre, d.text, d.starts[1]) || starts_with_line(pre, d.text, d.starts[2]);
    CHECK(at_def, "%s: the prefix starts where a definition starts: [%.30s]", g, pre);
    size_t want_end = d.ends[2] - d.cursor, sl = strlen(suf);
    while (sl > 0 && (suf[sl - 1] == '\n' || suf[sl - 1] == ' ')) sl--;
    while (want_end > 0 &&
           (d.text[d.cursor + want_end - 1] == '\n' || d.text[d.cursor + want_end - 1] == ' '))
        want_end--;
    CHECK(sl == want_end,
          "%s: the suffix ends where the definition ends (%zu bytes, want %zu): [...%.30s]", g, sl,
          want_end, sl > 30 ? suf + sl - 30 : suf);
    free(pre), free(suf);

    /* a run-on middle stops at the end of the block */
    char stmt[256], run_on[1024];
    snprintf(stmt, sizeof stmt, "%s", lc->stmt + indent_len(lc->stmt));
    stmt[strcspn(stmt, "\n")] = 0;
    /* a statement the document does not have (else it repeats the suffix's next line) */
    for (const char *ch = "abev"; *ch; ch++) {
        char *p = strchr(stmt, *ch);
        if (p) {
            *p = 'q';
            break;
        }
    }
    int k = snprintf(run_on, sizeof run_on, "%s\n\n", stmt);
    k += snprintf(run_on + k, sizeof run_on - (size_t)k, lc->head, "extra");
    snprintf(run_on + k, sizeof run_on - (size_t)k, "%s", lc->stmt);
    enum fim_stop why;
    char *got = decode(c, run_on, &why);
    CHECK(!strcmp(got, stmt), "%s: a run-on middle ends with its block: [%s] (%s)", g, got,
          fim_stop_name(why));
    free(got);
    if (lc->braces) { /* a closer the suffix already has ends the middle, even badly indented */
        snprintf(run_on, sizeof run_on, "%s\n%.*s}\n%s", stmt, (int)indent_len(lc->stmt), lc->stmt,
                 lc->stmt);
        got = decode(c, run_on, &why);
        CHECK(!strcmp(got, stmt) && why == FIM_STOP_UNBALANCED,
              "%s: the block's closer in the suffix ends the middle: [%s] (%s)", g, got,
              fim_stop_name(why));
        free(got);
    }
    fim_context_free(c);
    fim_doc_free(fd);
}
#pragma GCC diagnostic pop

static void languages(void)
{
    int distinct = 0;
    const char *seen[64];
    for (size_t i = 0; i < sizeof CASES / sizeof *CASES; i++) {
        one_language(&CASES[i]);
        if (!CASES[i].grammar) continue;
        bool dup = false;
        for (int k = 0; k < distinct; k++) dup |= !strcmp(seen[k], CASES[i].grammar);
        if (!dup && distinct < 64) seen[distinct++] = CASES[i].grammar;
    }
    CHECK(distinct >= 40, "per-language tests cover %d grammars", distinct);
    CHECK(parsers_grammar_count() >= 45, "%d grammars compiled in", parsers_grammar_count());
}

/* ---- detection and the registry ---- */

static const char *detect(const char *id, const char *path, const char *text)
{
    const parsers_lang *l = parsers_detect(id, path, text, text ? strlen(text) : 0);
    return l ? l->name : "-";
}

static void detection(void)
{
    struct {
        const char *id, *path, *text, *want;
    } t[] = {
        {"python", "x.txt", NULL, "Python"},   /* the language id first */
        {"prog", "src/main.rs", NULL, "Rust"}, /* eglot's "prog": falls through to the path */
        {"c++", NULL, NULL, "C++"},            /* an editor alias */
        {"typescriptreact", NULL, NULL, "TSX"},
        {NULL, "file:///home/u/proj/Makefile", NULL, "Makefile"},
        {NULL, "/a/b/CMakeLists.txt", NULL, "CMake"},
        {NULL, "/a/b/Dockerfile", NULL, "Docker"}, /* the list has both names */
        {NULL, "view.html.erb", NULL, "HTML ERB"}, /* the longest extension wins */
        {NULL, "model.R", NULL, "R"},
        {NULL, "lib.h", NULL, "C"}, /* several claim .h: the first that fits */
        {NULL, "run", "#!/usr/bin/env python3 -u\nprint(1)\n", "Python"},
        {NULL, "run", "#!/bin/bash\necho\n", "Shell"},
        {NULL, "run", "#!/usr/bin/env -S node --harmony\n", "JavaScript"},
        {NULL, "notes", "just words\n", "-"},
        {"", "", "", "-"},
    };
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        const char *got = detect(t[i].id, t[i].path, t[i].text);
        CHECK(!strcmp(got, t[i].want), "detect(%s, %s) = %s, want %s", t[i].id ? t[i].id : "NULL",
              t[i].path ? t[i].path : "NULL", got, t[i].want);
    }
    int with_grammar = 0;
    for (int i = 0; i < parsers_lang_count(); i++) {
        const parsers_lang *l = parsers_lang_at(i);
        if (l->grammar && !parsers_grammar(l))
            CHECK(false, "%s names grammar %s, which is not compiled in", l->name, l->grammar);
        with_grammar += parsers_grammar(l) != NULL;
    }
    CHECK(parsers_lang_count() >= 338, "the registry has %d languages", parsers_lang_count());
    CHECK(with_grammar >= 70, "%d languages have a grammar (their own or a host's)", with_grammar);
    for (int i = 0; i < parsers_grammar_count(); i++) {
        TSParser *p = ts_parser_new();
        bool ok = ts_parser_set_language(p, parsers_grammar_by_name(parsers_grammar_name(i)));
        ts_parser_delete(p);
        if (!ok) CHECK(false, "grammar %s does not load (ABI)", parsers_grammar_name(i));
    }
    /* every name of DeepSeek-Coder-V2's list, when the shared docs are beside the clone */
    const char *fx = check_fixtures("the supported_langs.txt conformance check");
    if (!fx) return;
    char path[1024];
    snprintf(path, sizeof path, "%s/../docs/supported_langs.txt", fx);
    size_t n;
    char *list = check_read(path, &n);
    if (!CHECK(list != NULL, "read %s", path)) return;
    int names = 0, missing = 0;
    for (char *line = strtok(list, "\n"); line; line = strtok(NULL, "\n")) {
        names++;
        if (!parsers_lang_by_name(line)) {
            missing++;
            CHECK(false, "%s is not in the registry", line);
        }
    }
    CHECK(names == 338 && missing == 0,
          "all %d supported languages are in the registry (%d missing)", names, missing);
    free(list);
}

/* ---- incremental parsing ---- */

static uint64_t rng = 88172645463325252ull;
static uint64_t next(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return rng;
}

static void incremental(void)
{
    doc d;
    build_doc(&CASES[0], &d);
    fim_doc *fd = fim_doc_new("t.c", "c", d.text, d.len);
    fim__doc_tree(fd);
    static const char *pieces[] = {"x",  "\n",           "{",       "}",     "(",
                                   "  ", "int y = 2;\n", "/* c */", "\"s\"", "é"};
    bool same = true;
    for (int k = 0; k < 300 && same; k++) {
        size_t len;
        fim_doc_text(fd, &len);
        size_t a = (size_t)(next() % (len + 1)), b = a + (size_t)(next() % 4);
        const char *p = pieces[next() % (sizeof pieces / sizeof *pieces)];
        fim_doc_replace(fd, a, b, p, next() % 3 ? strlen(p) : 0);
        if (k % 10) continue; /* several edits between parses, as fast typing gives */
        TSTree *inc = fim__doc_tree(fd);
        const char *t = fim_doc_text(fd, &len);
        TSParser *ps = ts_parser_new();
        ts_parser_set_language(ps, parsers_grammar_by_name("c"));
        TSTree *fresh = ts_parser_parse_string(ps, NULL, t, (uint32_t)len);
        char *x = ts_node_string(ts_tree_root_node(inc)),
             *y = ts_node_string(ts_tree_root_node(fresh));
        same = !strcmp(x, y);
        free(x), free(y);
        ts_tree_delete(fresh);
        ts_parser_delete(ps);
    }
    CHECK(same, "300 random edits: the incrementally edited tree equals a fresh parse");
    fim_doc_free(fd);
}

/* ---- definitions from other open documents ---- */

static char *full_prompt(const fim_context *c, const fim_config *cfg)
{
    int32_t *ids;
    size_t n;
    fim_err err = {{0}};
    if (fim_prompt_ids(v, c, cfg, &ids, &n, &err)) return strdup("");
    char *s = text_of(ids, n);
    free(ids);
    return s;
}

static void imports(const char *path, const char *lang, const char *head, const char *filler,
                    const char *tail, bool shown);

static void related(void)
{
    const char *util = "#include <stdio.h>\n\n"
                       "/* Adds two numbers, saturating at INT_MAX. */\n"
                       "int add_numbers(int a, int b)\n{\n    return a + b;\n}\n\n"
                       "static int unrelated_helper(void)\n{\n    return 42;\n}\n\n"
                       "struct point {\n    int x, y;\n};\n";
    const char *main_c = "#include \"util.h\"\n\nint main(void)\n{\n    struct point p = {1, 2};\n"
                         "    int total = add_numbers(p.x, p.y);\n    \n    return total;\n}\n";
    const char *py = "def scale(v, k):\n    return [x * k for x in v]\n";
    fim_doc *a = fim_doc_new("/src/util.c", "c", util, strlen(util));
    fim_doc *b = fim_doc_new("/src/main.c", "c", main_c, strlen(main_c));
    fim_doc *p = fim_doc_new("/src/tools/scale.py", "python", py, strlen(py));
    fim_doc *open[] = {b, p, a};
    size_t cursor = (size_t)(strstr(main_c, "    \n") - main_c) + 4;
    fim_context *c = fim_context_new(b, cursor, open, 3);
    fim_config cfg;
    fim_config_default(&cfg);
    char *s = full_prompt(c, &cfg);
    CHECK(strstr(s, "int add_numbers(int a, int b)\n{\n    return a + b;\n}") != NULL,
          "the definition of a function called at the cursor is in the prompt");
    CHECK(strstr(s, "Adds two numbers") != NULL, "with its comment");
    CHECK(strstr(s, "// src/util.c\n") != NULL, "under a comment naming its file");
    CHECK(strstr(s, "struct point {") != NULL, "a type used near the cursor is in the prompt");
    CHECK(!strstr(s, "unrelated_helper") && !strstr(s, "def scale"),
          "definitions not named near the cursor are not");
    char *defs_end = strstr(s, "#include \"util.h\"");
    CHECK(defs_end && strstr(s, "add_numbers(int a") < defs_end,
          "definitions come before the prefix");
    CHECK(strstr(s, "int add_numbers") < strstr(s, "struct point {"), "in their document's order");
    /* typing at the cursor keeps the definitions, and so the cached tokens, in place */
    fim_doc_replace(b, cursor, cursor, "printf", 6);
    fim_context *c2 = fim_context_new(b, cursor + 6, open, 3);
    char *s2 = full_prompt(c2, &cfg);
    size_t same = 0;
    while (s[same] && s[same] == s2[same]) same++;
    CHECK(defs_end && same >= (size_t)(defs_end - s),
          "the definitions part of the prompt is unchanged by typing");
    /* a budget too small for them leaves them out, and the prompt within the budget */
    fim_config small;
    fim_config_default(&small);
    fim_config_budget(&small, 48);
    int32_t *ids;
    size_t n;
    fim_err err = {{0}};
    fim_prompt_ids(v, c, &small, &ids, &n, &err);
    CHECK(n <= 48, "a 48-token budget gives %zu tokens", n);
    free(ids);
    /* the document's own definitions far above the window count too */
    char big[60000];
    size_t k = (size_t)snprintf(big, sizeof big,
                                "static int far_away_helper(int q)\n{\n    return q * 7;\n}\n\n");
    for (int i = 0; i < 300; i++)
        k +=
            (size_t)snprintf(big + k, sizeof big - k, "int filler_%d(void) { return %d; }\n", i, i);
    k += (size_t)snprintf(big + k, sizeof big - k,
                          "int main(void)\n{\n    int r = far_away_helper(3);\n    \n}\n");
    fim_doc *own = fim_doc_new("/src/big.c", "c", big, k);
    fim_context *c3 = fim_context_new(own, k - 3, NULL, 0);
    char *s3 = full_prompt(c3, &cfg);
    CHECK(strstr(s3, "static int far_away_helper(int q)\n{\n    return q * 7;\n}") != NULL,
          "a definition of the same document outside the window is in the prompt");
    free(s), free(s2), free(s3);
    fim_context_free(c), fim_context_free(c2), fim_context_free(c3);
    fim_doc_free(a), fim_doc_free(b), fim_doc_free(p), fim_doc_free(own);
    imports("/src/far.py", "python", "import os\nfrom json import dumps as to_json\n\n",
            "def filler_%d():\n    return %d\n\n", "def main():\n    x = 1\n    ", true);
    imports("/src/far.go", "go", "package main\n\nimport \"strings\"\n\n",
            "func filler%d() int {\n\treturn %d\n}\n\n", "func main() {\n\tx := 1\n\t", true);
    imports("/src/far.c", "c", "#include <stdio.h>\n\n", "int filler_%d(void) { return %d; }\n",
            "int main(void)\n{\n    int x = 1;\n    ", false);
}

/* The windows grow into the related budget when the lines beyond them are worth more than a
 * snippet: the locals declared at the top of a long function, just above what the prefix's own
 * share reaches, win over the body of a called function that brings no name the prompt lacks. */
static void window_growth(void)
{
    char text[16384], helper[4096];
    size_t k = (size_t)snprintf(text, sizeof text,
                                "int long_function(int n)\n{\n"
                                "    int alpha_count = 0, beta_total = 0, gamma_index = 0;\n"
                                "    double delta_ratio = 0.5, epsilon_scale = 2.0;\n");
    for (int i = 0; i < 48; i++) k += (size_t)snprintf(text + k, sizeof text - k, "    n++;\n");
    k += (size_t)snprintf(text + k, sizeof text - k, "    n = apply_step(n);\n    ");
    size_t cursor = k;
    k += (size_t)snprintf(text + k, sizeof text - k, "\n    return n;\n}\n");
    size_t h = (size_t)snprintf(helper, sizeof helper, "int apply_step(int n)\n{\n");
    for (int i = 0; i < 12; i++)
        h += (size_t)snprintf(helper + h, sizeof helper - h, "    n = n + 1;\n");
    h += (size_t)snprintf(helper + h, sizeof helper - h, "    return n;\n}\n");
    fim_doc *d = fim_doc_new("/src/long.c", "c", text, k);
    fim_doc *o = fim_doc_new("/src/step.c", "c", helper, h);
    fim_doc *open[] = {o};
    fim_context *c = fim_context_new(d, cursor, open, 1);
    fim_config cfg;
    fim_config_default(&cfg);
    fim_config_budget(&cfg, 512);
    char *s = full_prompt(c, &cfg);
    CHECK(strstr(s, "int alpha_count = 0, beta_total") != NULL,
          "the locals above the prefix's share are in the prompt: [%.60s]", s);
    int32_t *ids;
    size_t n;
    fim_err err = {{0}};
    CHECK(!fim_prompt_ids(v, c, &cfg, &ids, &n, &err) && n <= 512, "within the budget: %zu", n);
    free(ids), free(s);
    fim_context_free(c);
    fim_doc_free(d), fim_doc_free(o);
}

/* The lines that followed the lines above the cursor elsewhere: in another open document that
 * shares code, and far above in the document itself, they are in the prompt (once, not from
 * within the windows), and the cursor line's own text plays no part. */
static size_t filler(char *t, size_t cap, size_t k, int lines, const char *prefix)
{
    for (int i = 0; i < lines; i++)
        k += (size_t)snprintf(t + k, cap - k, "    %s_%d = compute_%d(%s_%d, %d);\n", prefix, i, i,
                              prefix, i + 1, i * 7);
    return k;
}

static int occurrences(const char *s, const char *w)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, w)); p += strlen(w)) n++;
    return n;
}

static void follows(void)
{
    static char other[32768], text[32768];
    size_t o = (size_t)snprintf(other, sizeof other, "int run_one(void)\n{\n");
    o = filler(other, sizeof other, o, 40, "left");
    o += (size_t)snprintf(other + o, sizeof other - o,
                          "    if (enc_ctx != NULL) {\n"
                          "        destroy_encryption_context(enc_ctx);\n"
                          "        release_key_manager(mngr);\n    }\n    return 0;\n}\n");
    size_t k = (size_t)snprintf(text, sizeof text,
                                "int run_two(void)\n{\n"
                                "    if (session != NULL) {\n"
                                "        close_session_handle(session);\n"
                                "    }\n");
    k = filler(text, sizeof text, k, 200, "right");
    k += (size_t)snprintf(text + k, sizeof text - k, "    if (session != NULL) {\n        ");
    size_t cursor = k;
    k += (size_t)snprintf(text + k, sizeof text - k, "\n    if (enc_ctx != NULL) {\n");
    size_t cursor2 = k;
    k += (size_t)snprintf(text + k, sizeof text - k, "\n    }\n    return 1;\n}\n");
    fim_doc *d = fim_doc_new("/src/two.c", "c", text, k);
    fim_doc *od = fim_doc_new("/src/one.c", "c", other, o);
    fim_doc *open[] = {od};
    fim_config cfg;
    fim_config_default(&cfg);
    fim_config_budget(&cfg, 512);
    fim_context *c = fim_context_new(d, cursor, open, 1);
    char *s = full_prompt(c, &cfg);
    CHECK(occurrences(s, "close_session_handle(session);") == 1,
          "what followed the same line far above is in the prompt once: [%.300s]", s);
    free(s);
    fim_context_free(c);
    c = fim_context_new(d, cursor2, open, 1);
    s = full_prompt(c, &cfg);
    CHECK(strstr(s, "destroy_encryption_context(enc_ctx);") != NULL,
          "what followed the same line in another document is in the prompt: [%.300s]", s);
    free(s);
    fim_context_free(c);
    /* typed text on the cursor line that matches a line elsewhere changes nothing before it */
    fim_doc_replace(d, cursor2, cursor2, "if (session != NULL) {", 22);
    c = fim_context_new(d, cursor2 + 22, open, 1);
    s = full_prompt(c, &cfg);
    CHECK(strstr(s, "destroy_encryption_context(enc_ctx);") != NULL,
          "the cursor line's text does not change what follows: [%.300s]", s);
    free(s);
    fim_context_free(c);
    fim_doc_free(d), fim_doc_free(od);
}

/* fim__follow's rules, white-box: a short line alone is no evidence, more agreeing lines win, the
 * cursor line counts as blank, and another document's answer stays while new lines walk down it. */
static void follow_rules(void)
{
    const char *other =
        "x = 1;\n}\nclose_all(handles);\nfirst();\n\nsecond();\nthird();\nfourth();\n"
        "open_all(handles);\nclose_all(handles);\nfifth();\nsixth();\nseventh();\n"
        "eighth();\nninth();\n";
    fim_anchor a;
    fim_def f;
    const char *t1 = "int y;\n}\n";
    fim__anchor_init(&a, t1, strlen(t1));
    CHECK(fim__follow(&a, other, strlen(other), SIZE_MAX, 0, 0, &f) == 0,
          "a short line ('}') alone matches nothing");
    const char *t2 = "    close_all(handles);\n    ";
    fim__anchor_init(&a, t2, strlen(t2) - 4);
    int agree = fim__follow(&a, other, strlen(other), SIZE_MAX, 0, 0, &f);
    CHECK(agree == 1 && !strncmp(other + f.start, "close_all", 9) && f.start < 20 &&
              !strncmp(other + f.end - 9, "third();\n", 9),
          "one long line: the first match and three non-blank lines after it (%d, [%.*s])", agree,
          (int)(f.end - f.start), other + f.start);
    const char *t3 = "  open_all(handles);\n  close_all(handles);\n";
    fim__anchor_init(&a, t3, strlen(t3));
    agree = fim__follow(&a, other, strlen(other), SIZE_MAX, 0, 0, &f);
    CHECK(agree == 2 && !strncmp(other + f.end - 11, "seventh();\n", 11),
          "the match that agrees over more lines wins (%d, [%.*s])", agree, (int)(f.end - f.start),
          other + f.start);
    /* the cursor line of the document itself is not a match (the anchor's own line lies in the
     * windows, [0, 17) here) */
    const char *t4 = "one_two_three();\none_two_three();\nnext_line();\n";
    fim__anchor_init(&a, t4, 17);
    CHECK(fim__follow(&a, t4, strlen(t4), SIZE_MAX, 0, 17, &f) == 1 &&
              fim__follow(&a, t4, strlen(t4), 17, 0, 17, &f) == 0,
          "the cursor line is a match unless skipped");
    /* typing new lines along another document keeps its answer while it still has lines to come */
    fim_doc *od = fim_doc_new("/src/other.c", "c", other, strlen(other));
    const char *typed[] = {
        "open_all(handles);\nclose_all(handles);\n",
        "open_all(handles);\nclose_all(handles);\nfifth();\n",
        "open_all(handles);\nclose_all(handles);\nfifth();\nsixth();\n",
        "open_all(handles);\nclose_all(handles);\nfifth();\nsixth();\nseventh();\n"};
    size_t starts[4];
    for (int i = 0; i < 4; i++) {
        fim__anchor_init(&a, typed[i], strlen(typed[i]));
        CHECK(fim__doc_follow(od, &a, &f) > 0, "typed line %d matches", i);
        starts[i] = f.start;
    }
    CHECK(starts[0] == starts[1] && starts[1] == starts[2] && starts[3] > starts[2],
          "the answer stays for two new lines, then moves on (%zu %zu %zu %zu)", starts[0],
          starts[1], starts[2], starts[3]);
    fim_doc_free(od);
}

/* A document whose imports lie far above the cursor: the prompt shows them (Python, Go), but not
 * C's includes, which name files rather than what the code uses. */
static void imports(const char *path, const char *lang, const char *head, const char *filler,
                    const char *tail, bool shown)
{
    char text[60000];
    size_t k = (size_t)snprintf(text, sizeof text, "%s", head);
    for (int i = 0; i < 200; i++) k += (size_t)snprintf(text + k, sizeof text - k, filler, i, i);
    k += (size_t)snprintf(text + k, sizeof text - k, "%s", tail);
    fim_doc *d = fim_doc_new(path, lang, text, k);
    fim_context *c = fim_context_new(d, k, NULL, 0);
    fim_config cfg;
    fim_config_default(&cfg);
    fim_config_budget(&cfg, 512);
    char *s = full_prompt(c, &cfg);
    const char *line = strchr(head, '\n') + 1; /* the imports, past a first line (Go's package) */
    if (!strncmp(head, "import", 6) || head[0] == '#') line = head;
    while (*line == '\n') line++;
    size_t n = strcspn(line, "\n");
    char *want = strndup(line, n);
    CHECK(!strstr(s, want) == !shown, "%s: the import '%s' far above the cursor is %sin the prompt",
          lang, want, shown ? "" : "not ");
    free(want), free(s);
    fim_context_free(c);
    fim_doc_free(d);
}

/* ---- post-processing on crafted model outputs ---- */

static void expect(const char *file, const char *with_cursor, const char *out, const char *want,
                   int stop)
{
    const char *bar = strchr(with_cursor, '|');
    size_t cursor = (size_t)(bar - with_cursor), len = strlen(with_cursor) - 1;
    char text[4096];
    memcpy(text, with_cursor, cursor);
    memcpy(text + cursor, bar + 1, len - cursor + 1);
    fim_doc *d = fim_doc_new(file, NULL, text, len);
    fim_context *c = fim_context_new(d, cursor, NULL, 0);
    enum fim_stop why;
    char *got = decode(c, out, &why);
    CHECK(!strcmp(got, want) && (stop < 0 || (int)why == stop),
          "%s %s: got [%s] (stop %s), want [%s]", file, with_cursor, got, fim_stop_name(why), want);
    free(got);
    fim_context_free(c);
    fim_doc_free(d);
}

static void post_processing(void)
{
    /* duplicated suffix lines */
    expect("t.py", "def f(a):\n    |\n    return a\n", "b = a * 2\n    return a\n", "b = a * 2",
           FIM_STOP_SUFFIX_REPEAT);
    expect("t.c", "int f(int a)\n{\n    |\n    g(a);\n    return a;\n}\n",
           "a++;\n    g(a);\n    return a;\n}", "a++;", -1);
    expect("t.c", "int f(int a)\n{\n    |\n}\n", "a++;\n    return a;\n}\n", "a++;\n    return a;",
           FIM_STOP_UNBALANCED);
    /* in a body the middle goes on after a nested block; at the top level one block completes it */
    expect("t.c", "int f(int a)\n{\n    |\n    return a;\n}\n",
           "if (a > 0) {\n        a--;\n    }\n    a *= 2;\n    a += 1;\n",
           "if (a > 0) {\n        a--;\n    }\n    a *= 2;\n    a += 1;", -1);
    expect("t.py", "def f(a):\n    |\n", "if a:\n        a -= 1\n    a *= 2\n",
           "if a:\n        a -= 1\n    a *= 2", -1);
    expect("t.c", "int x;\n|\n", "int f(void)\n{\n    return 1;\n}\nint g(void)\n{\n",
           "int f(void)\n{\n    return 1;\n}", FIM_STOP_BLOCK_END);
    expect("t.py", "x = 1\n|\n", "def f():\n    return 1\ndef g():\n    pass\n",
           "def f():\n    return 1", FIM_STOP_BLOCK_END);
    expect("t.rb", "def f(a)\n  |\nend\n", "a += 1\nend\n\ndef g\n", "a += 1", -1);
    expect("t.c", "int f(int a)\n{\n    if (a) {|\n    return a;\n}\n",
           "\n        a = 0;\n    }\n    a++;\n", "\n        a = 0;\n    }",
           FIM_STOP_BLOCK_END); /* the suffix lacks the "}": the middle brings it */
    /* wrong indentation: converted to the document's */
    expect("t.go", "func f(a int) int {\n\tif a > 0 {\n\t\ta--\n\t}\n\t|\n}\n",
           "for a > 0 {\n        a--\n    }\n    return a", "for a > 0 {\n\t\ta--\n\t}\n\treturn a",
           -1);
    expect("t.js", "function f(a) {\n  if (a) {\n    a--;\n  }\n  |\n}\n",
           "while (a) {\n      a--;\n  }\n  return a;", "while (a) {\n    a--;\n  }\n  return a;",
           -1);
    expect("t.py", "def f(a):\n    if a:\n        a -= 1\n    |\n",
           "for i in range(a):\n\t\tprint(i)\n", "for i in range(a):\n        print(i)", -1);
    /* unbalanced brackets */
    expect("t.c", "x = foo(|);\n", "a, b));", "a, b", FIM_STOP_UNBALANCED);
    expect("t.js", "const v = [1, |];\n", "2, 3]];", "2, 3", FIM_STOP_UNBALANCED);
    expect("t.c", "x = foo(|\n", "a, b);", "a, b);", -1); /* the suffix lacks the ')': kept */
    expect("t.c", "s = \"|\";\n", "a ) b", "a ) b",
           -1); /* inside a string: one line, nothing to balance */
    expect("t.c", "int f(void)\n{\n    |\n}\n", "x = 1; /* } */\n    y = 2;",
           "x = 1; /* } */\n    y = 2;", -1);
    /* repetition */
    expect("t.c", "int f(void)\n{\n    |\n}\n", "x++;\n    x++;\n    x++;\n    x++;\n", "x++;",
           FIM_STOP_REPETITION);
    expect("t.c", "x = f(|);\n", "a, a, a, a, a, a, a, a, a, a, a, a", "a, ", FIM_STOP_REPETITION);
    /* without a grammar, by indentation */
    expect("t.f90", "subroutine f(a)\n  |\nend subroutine\n",
           "a = a + 1\n  print *, a\nend subroutine\n\nsubroutine g", "a = a + 1\n  print *, a",
           FIM_STOP_INDENT);
}

/* ---- indentation in the document's style (issue 15) ---- */

static void indentation(void)
{
    /* the document indents with tabs, the middle with spaces */
    expect("t.py", "def f(a):\n\tif a:\n\t\ta -= 1\n\t|\n\treturn a\n",
           "for i in range(a):\n        print(i)\n    a += 1\n",
           "for i in range(a):\n\t\tprint(i)\n\ta += 1", -1);
    /* ... with the cursor at column 0 of an empty line: the first line is the middle's too */
    expect("t.py", "def f(a):\n\tif a:\n\t\ta -= 1\n|\n\treturn a\n",
           "    for i in range(a):\n        print(i)\n    a += 1\n",
           "\tfor i in range(a):\n\t\tprint(i)\n\ta += 1", -1);
    expect("t.go", "func f(a int) int {\n\ts := 0\n|\n\treturn s\n}\n",
           "    for i := 0; i < a; i++ {\n        s += i\n    }\n",
           "\tfor i := 0; i < a; i++ {\n\t\ts += i\n\t}", -1);
    /* the document indents with 4 spaces, the middle with tabs */
    expect("t.py", "def f(a):\n    if a:\n        a -= 1\n    |\n    return a\n",
           "for i in range(a):\n\t\tprint(i)\n\ta += 1\n",
           "for i in range(a):\n        print(i)\n    a += 1", -1);
    expect("t.c", "int f(int a)\n{\n    int s = 0;\n|\n    return s;\n}\n",
           "\twhile (a) {\n\t\ts += a--;\n\t}\n", "    while (a) {\n        s += a--;\n    }", -1);
    /* ... with 2 spaces, counted from the cursor's indentation or from column 0 */
    expect("t.c", "int f(int a)\n{\n    |\n    return a;\n}\n",
           "while (a) {\n      a--;\n    }\n    a++;\n",
           "while (a) {\n        a--;\n    }\n    a++;", -1);
    expect("t.py",
           "class K:\n    def f(self, a):\n        if a:\n            a -= 1\n        |\n"
           "        return a\n",
           "for i in range(a):\n      print(i)\n    a += 1\n",
           "for i in range(a):\n            print(i)\n        a += 1", -1);
    /* the document indents with 2 spaces, the middle with tabs */
    expect("t.c", "int f(int a)\n{\n  if (a) {\n    a--;\n  }\n  |\n  return a;\n}\n",
           "while (a > 1) {\n\t\ta /= 2;\n\t}\n\ta++;\n",
           "while (a > 1) {\n    a /= 2;\n  }\n  a++;", -1);
    /* the same style: nothing changes, alignment included */
    expect("t.c", "int f(int a)\n{\n    |\n    return a;\n}\n",
           "a = add(a,\n            a);\n    a++;\n", "a = add(a,\n            a);\n    a++;", -1);
}

/* ---- blocks that go on to the end of the enclosing block (issue 15) ---- */

static void continuation(void)
{
    /* a loop, then the return: kept; the function's closing brace is the suffix's */
    expect("t.c", "int f(int a)\n{\n    int s = 0;\n    |\n}\n",
           "for (int i = 0; i < a; i++) {\n        s += i;\n    }\n    return s;\n}\n",
           "for (int i = 0; i < a; i++) {\n        s += i;\n    }\n    return s;",
           FIM_STOP_UNBALANCED);
    expect("t.go", "package main\n\nfunc f(a int) int {\n\ts := 0\n\t|\n}\n",
           "for i := 0; i < a; i++ {\n\t\ts += i\n\t}\n\treturn s\n}\n\nfunc g() {\n",
           "for i := 0; i < a; i++ {\n\t\ts += i\n\t}\n\treturn s", FIM_STOP_UNBALANCED);
    expect("t.rs", "fn f(a: i32) -> i32 {\n    let mut s = 0;\n    |\n}\n",
           "for i in 0..a {\n        s += i;\n    }\n    s\n}\n",
           "for i in 0..a {\n        s += i;\n    }\n    s", FIM_STOP_UNBALANCED);
    /* a nested if, then more statements, up to the suffix's next line */
    expect("t.js", "function f(a) {\n  let b = 0;\n  |\n  return b;\n}\n",
           "if (a > 0) {\n    if (a > 1) {\n      b = 2;\n    }\n    b++;\n  }\n  b *= 2;\n"
           "  return b;\n}\n",
           "if (a > 0) {\n    if (a > 1) {\n      b = 2;\n    }\n    b++;\n  }\n  b *= 2;",
           FIM_STOP_SUFFIX_REPEAT);
    expect("t.java", "class K {\n    int f(int a) {\n        |\n    }\n}\n",
           "if (a > 0) {\n            a--;\n        }\n        return a;\n    }\n}\n",
           "if (a > 0) {\n            a--;\n        }\n        return a;", FIM_STOP_UNBALANCED);
    /* Python: nested blocks kept, a line dedenting below the cursor's level ends the middle */
    expect(
        "t.py", "def f(a):\n    s = 0\n    |\n\nprint(f(3))\n",
        "for i in range(a):\n        if i % 2:\n            s += i\n        s *= 2\n"
        "    return s\n\ndef g():\n    pass\n",
        "for i in range(a):\n        if i % 2:\n            s += i\n        s *= 2\n    return s",
        FIM_STOP_INDENT);
    expect("t.py", "class K:\n    def f(self, a):\n        |\n\n    def g(self):\n        pass\n",
           "while a:\n            a -= 1\n        return a\n    def h(self):\n",
           "while a:\n            a -= 1\n        return a", FIM_STOP_INDENT);
    /* without a grammar (Perl): by brackets and indentation */
    expect("t.pl", "sub f {\n    my $s = 0;\n    |\n}\n",
           "for my $i (1..3) {\n        $s += $i;\n    }\n    return $s;\n}\n",
           "for my $i (1..3) {\n        $s += $i;\n    }\n    return $s;", FIM_STOP_UNBALANCED);
    /* single-line rules are unchanged */
    expect("t.c", "int f(int a)\n{\n    a = g(|);\n}\n", "a, 1);\n    return a;", "a, 1",
           FIM_STOP_UNBALANCED);
}

/* ---- cache stability while typing ---- */

/* Type lines of a real file back one character at a time, as bench-typing does, and count the
 * prompt tokens after the longest common prefix with the previous prompt: what the cache must
 * evaluate. Within a line that must stay a handful, whatever the parse errors of the moment. */
/* Types `lines` lines (FIMD_TYPING_LINES instead, when set) of a file from line `first`. */
static void typing(const char *path, int first, int lines, const char *others, int budget)
{
    const char *env = getenv("FIMD_TYPING_LINES");
    if (env && atoi(env) > 0) lines = atoi(env);
    model_fim_ids fim;
    model_err me = {{0}};
    if (!CHECK(!model_vocab_fim(v, &fim, &me), "FIM ids: %s", me.msg)) return;
    size_t len;
    char *orig = check_read(path, &len);
    if (!CHECK(orig != NULL, "read %s", path)) return;
    size_t from = 0;
    for (int l = 0; l < first && from < len; from++) l += orig[from] == '\n';
    size_t to = from;
    for (int l = 0; l < lines && to < len; to++) l += orig[to] == '\n';
    fim_doc *d = fim_doc_new(path, NULL, orig, len);
    fim_doc_replace(d, from, to, "", 0);
    size_t ol = 0;
    char *other_text = others ? check_read(others, &ol) : NULL;
    fim_doc *o = other_text ? fim_doc_new(others, NULL, other_text, ol) : NULL;
    fim_doc *open[] = {d, o};
    fim_config cfg;
    fim_config_default(&cfg);
    if (budget) fim_config_budget(&cfg, budget);
    int32_t *prev = NULL;
    size_t np = 0, cursor = from;
    int worst = 0, keys = 0, differ = 0, heads_changed = 0, new_lines = 0, last_steps = 0;
    int step = cfg.prefix_tokens / 16 < 4    ? 4
               : cfg.prefix_tokens / 16 > 64 ? 64
                                             : cfg.prefix_tokens / 16;
    double new_line_tokens = 0;
    fim_window_memo memo = {0}; /* as the engine keeps per document */
    double sum = 0;
    for (size_t k = 0; k <= to - from; k++) {
        if (k > 0) {
            fim_doc_replace(d, cursor, cursor, orig + from + k - 1, 1);
            cursor++;
        }
        fim_context *c = fim_context_new(d, cursor, open, o ? 2 : 1);
        fim_ids_vec p = {0}, fresh = {0};
        fim_err err = {{0}};
        fim_window_memo uncached = memo; /* the same request without the kept snippet tokens */
        uncached.snippets = NULL;
        fim__build_prompt(v, c, &cfg, &memo, &p, &err);
        fim__build_prompt(v, c, &cfg, &uncached, &fresh, &err);
        fim__snippet_cache_free(uncached.snippets);
        differ += fresh.n != p.n || (p.n && memcmp(fresh.v, p.v, sizeof *p.v * p.n));
        free(fresh.v);
        int32_t *ids = p.v;
        size_t n = p.n;
        size_t lcp = 0;
        while (lcp < n && lcp < np && ids[lcp] == prev[lcp]) lcp++;
        bool in_line = k > 1 && orig[from + k - 1] != '\n' && orig[from + k - 2] != '\n';
        if (k > 0 && orig[from + k - 1] == '\n') new_line_tokens += (double)(n - lcp), new_lines++;
        /* the cursor line's share of the budget, which grows a step as the line's tokens pass it
         * (see fim/prompt.c) */
        size_t end = 0;
        while (end < n && ids[end] != fim.end) end++;
        int line_tokens = (int)(n - end - 1),
            steps = line_tokens > 0 ? (line_tokens - 1) / step : 0;
        if (in_line) {
            int ev = (int)(n - lcp);
            if (steps == last_steps && ev > worst) worst = ev;
            size_t hole = 0;
            while (hole < n && ids[hole] != fim.hole) hole++;
            heads_changed += lcp <= hole;
            sum += ev;
            keys++;
        }
        last_steps = steps;
        free(prev);
        prev = ids;
        np = n;
        fim_context_free(c);
    }
    /* not asserted (it depends on the code typed): what a new line costs the cache */
    printf("note: %s, budget %d, others %s: a new line evaluated %.0f tokens on average (%d)\n",
           path, budget, others ? others : "none", new_lines ? new_line_tokens / new_lines : 0,
           new_lines);
    CHECK(differ == 0,
          "%s: the snippet tokens kept between keystrokes give the same prompts "
          "as computed afresh (%d differ)",
          path, differ);
    /* A keystroke changes a handful of tokens. The cursor line's share grows in steps (prefix/16
     * tokens, 4 to 64) as a long line is typed, and each step takes tokens from the end of the
     * suffix (the budget is fixed): that keystroke may change more, but never what comes before
     * the suffix, and on average a keystroke changes at most 2. */
    CHECK(keys > 20 && sum / keys <= 2 && worst <= 5,
          "%s: typing %d lines at budget %d, a keystroke within a line changes %.2f prompt tokens "
          "on average, %d at most (step keystrokes aside)",
          path, lines, budget, keys ? sum / keys : 0, worst);
    CHECK(heads_changed == 0,
          "%s: at budget %d, %d keystrokes within a line changed the prompt before the suffix",
          path, budget, heads_changed);
    free(prev);
    fim__snippet_cache_free(memo.snippets);
    fim_doc_free(d);
    fim_doc_free(o);
    free(orig);
    free(other_text);
}

/* An editor closing a bracket after the cursor lengthens the suffix: the prompt up to the hole
 * (related code, whose share takes what the suffix's cut leaves, and the prefix) stays as it was,
 * and so do the cached tokens. */
static void autoclose(const char *path, const char *others)
{
    size_t len, ol;
    char *text = check_read(path, &len), *other_text = check_read(others, &ol);
    if (!CHECK(text && other_text, "read %s and %s", path, others)) return;
    fim_doc *o = fim_doc_new(others, NULL, other_text, ol);
    fim_config cfg;
    fim_config_default(&cfg);
    fim_config_budget(&cfg, 512);
    int moved = 0, runs = 0;
    for (size_t at = 4000; at < len; at += 2711) {
        size_t cursor = at;
        while (cursor < len && text[cursor] != '\n') cursor++; /* typing at a line's end */
        fim_doc *d = fim_doc_new(path, NULL, text, len);
        fim_doc *open[] = {d, o};
        fim_window_memo memo = {0};
        fim_ids_vec p[2] = {{0}};
        fim_err err = {{0}};
        for (int step = 0; step < 2; step++) {
            if (step) fim_doc_replace(d, cursor, cursor, "))", 2);
            fim_context *c = fim_context_new(d, cursor, open, 2);
            fim__build_prompt(v, c, &cfg, &memo, &p[step], &err);
            fim_context_free(c);
        }
        size_t hole = 0, lcp = 0;
        while (hole < p[0].n && p[0].v[hole] != fi.hole) hole++;
        while (lcp < p[0].n && lcp < p[1].n && p[0].v[lcp] == p[1].v[lcp]) lcp++;
        moved += lcp < hole;
        runs++;
        free(p[0].v), free(p[1].v);
        fim__snippet_cache_free(memo.snippets);
        fim_doc_free(d);
    }
    CHECK(runs >= 5 && moved == 0,
          "%s: brackets closed after the cursor at %d places changed the prompt before the hole "
          "at %d",
          path, runs, moved);
    fim_doc_free(o);
    free(text), free(other_text);
}

/* ---- budgets ---- */

/* The prompt never exceeds its budget, whatever the position, the budget and the related code. */
static void budgets(void)
{
    static const char *files[] = {"tests/data/server.c", "tests/data/syntax.c",
                                  "tests/data/test_syntax.c", "tests/data/languages.tsv"};
    enum { NF = sizeof files / sizeof *files };
    fim_doc *docs[NF];
    for (int i = 0; i < NF; i++) {
        size_t len;
        char *t = check_read(files[i], &len);
        docs[i] = fim_doc_new(files[i], NULL, t ? t : "", t ? len : 0);
        free(t);
    }
    static const int budget[] = {16, 64, 200, 512, 1024, 2048};
    int over = 0, runs = 0;
    size_t worst = 0;
    for (int f = 0; f < NF; f++) {
        size_t len;
        fim_doc_text(docs[f], &len);
        for (size_t at = 0; at < len; at += 1499) {
            fim_context *c = fim_context_new(docs[f], at, docs, NF);
            for (size_t b = 0; b < sizeof budget / sizeof *budget; b++) {
                fim_config cfg;
                fim_config_default(&cfg);
                fim_config_budget(&cfg, budget[b]);
                int32_t *ids;
                size_t n;
                fim_err err = {{0}};
                if (fim_prompt_ids(v, c, &cfg, &ids, &n, &err)) continue;
                runs++;
                if (n > (size_t)budget[b])
                    over++, worst = n - (size_t)budget[b] > worst ? n - (size_t)budget[b] : worst;
                free(ids);
            }
            fim_context_free(c);
        }
    }
    CHECK(runs > 200 && over == 0,
          "%d prompts at budgets 16 to 2048: %d over their budget (by %zu tokens at most)", runs,
          over, worst);
    for (int i = 0; i < NF; i++) fim_doc_free(docs[i]);
}

int main(int argc, char **argv)
{
    static const char *const cases[] = {"languages",     "detection",       "incremental",
                                        "related",       "post_processing", "indentation",
                                        "continuation",  "budgets",         "typing",
                                        "window_growth", "follows",         "follow_rules"};
    if (!check_args(argc, argv, cases, CHECK_CASES(cases))) return 2;
    m = check_tiny_model("syntax-model.gguf", "tests/data/ds2.c", "tests/data/syntax.c");
    if (!m) return check_done();
    model_err me = {{0}};
    v = model_get_vocab(m);
    model_vocab_fim(v, &fi, &me);
    if (check_want("languages")) languages();
    if (check_want("detection")) detection();
    if (check_want("incremental")) incremental();
    if (check_want("related")) related();
    if (check_want("window_growth")) window_growth();
    if (check_want("follows")) follows();
    if (check_want("follow_rules")) follow_rules();
    if (check_want("post_processing")) post_processing();
    if (check_want("indentation")) indentation();
    if (check_want("continuation")) continuation();
    if (check_want("budgets")) budgets();
    if (check_want("typing")) {
        typing("tests/data/server.c", 150, 3, NULL, 0);
        /* lines of more than 64 tokens: the cursor line's share grows a step at the default budget
         */
        typing("tests/data/server.c", 199, 3, NULL, 0);
        typing("tests/data/prompt.c", 120, 4, "tests/data/syntax.c", 0);
        typing("tests/data/test_syntax.c", 200, 3, NULL, 0);
        /* along another document with the same code, whose lines become related code */
        typing("tests/data/prompt.c", 120, 4, "tests/data/prompt.c", 0);
        /* a small budget reserves the cursor line's share in small steps, which long lines pass */
        typing("tests/data/prompt.c", 120, 12, "tests/data/syntax.c", 512);
        typing("tests/data/server.c", 150, 12, "tests/data/syntax.c", 512);
        autoclose("tests/data/prompt.c", "tests/data/syntax.c");
        autoclose("tests/data/server.c", "tests/data/syntax.c");
    }
    model_free(m);
    return check_done();
}
