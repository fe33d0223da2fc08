/* tests/test_fim.c — the completion path without the server: the PSM prompt's layout and budgets
 * (cut at line boundaries, prefix window moving in steps), the stop rules and post-processing on
 * crafted model outputs, the per-document caches (reuse, LRU eviction, close) and cancellation;
 * drafts from the context change no choice (every fixture model, the bundled one). */
#define _GNU_SOURCE
#include "fim/fim.h"
#include "fim/fim_internal.h"
#include "tests/check.h"

#include <stdlib.h>
#include <string.h>

static model *m;
static const model_vocab *v;
static model_fim_ids fi;

/* Run the decoder on text with the cursor at the '|' and the model "output" out. */
static char *decode(const char *path, const char *with_cursor, const char *out, enum fim_stop *why)
{
    const char *bar = strchr(with_cursor, '|');
    size_t cursor = (size_t)(bar - with_cursor), len = strlen(with_cursor) - 1;
    char *text = malloc(len + 1);
    memcpy(text, with_cursor, cursor);
    memcpy(text + cursor, bar + 1, len - cursor + 1);
    fim_decoder d;
    fim_context *c = fim__context_from_text(path, NULL, text, len, cursor);
    fim__decoder_init(&d, c);
    /* feed in small pieces, as tokens arrive */
    for (const char *p = out; *p;) {
        size_t k = strlen(p) < 3 ? strlen(p) : 3;
        if (fim__decoder_push(&d, p, k)) break;
        p += k;
    }
    char *res = fim__decoder_finish(&d);
    if (why) *why = d.stop;
    fim__decoder_free(&d);
    fim_context_free(c);
    free(text);
    return res;
}

static void expect(const char *what, const char *text, const char *out, const char *want, int stop)
{
    enum fim_stop why;
    char *got = decode("t.c", text, out, &why);
    CHECK(!strcmp(got, want) && (stop < 0 || (int)why == stop), "%s: got [%s] (stop %s), want [%s]",
          what, got, fim_stop_name(why), want);
    free(got);
}

static void stop_rules(void)
{
    expect("single line: the rest of the line is code", "x = foo(|);\n", "a, b)\nmore();", "a, b",
           FIM_STOP_UNBALANCED);
    expect("single line keeps trailing space before the suffix", "return |value;\n", "x + ", "x + ",
           -1);
    expect("multi-line when the rest of the line is blank", "int f(void)\n{\n    |\n}\n",
           "int a = 1;\n    return a;\n}\n", "int a = 1;\n    return a;", FIM_STOP_UNBALANCED);
    expect("indentation drop ends the block", "    if (x) {|\n    }\n",
           "\n        y();\n    z();\nw();", "\n        y();\n    z();", FIM_STOP_INDENT);
    expect("a line repeating the next suffix line", "for (;;) {\n    |\n    done();\n}\n",
           "step();\n    done();\n    more();", "step();", FIM_STOP_SUFFIX_REPEAT);
    expect("overlap with the suffix removed", "call(|)\n", "a, b)", "a, b", -1);
    expect("overlap with the suffix removed (multi-char)", "x = [|];\n", "1, 2];", "1, 2", -1);
    expect("control character cuts", "s = |\n",
           "abc\x01"
           "def",
           "abc", FIM_STOP_CONTROL);
    expect("NUL cuts", "s = |\n", "ab\0cd", "ab", -1);
    expect("incomplete UTF-8 at the end is dropped", "s = |\n", "caf\xc3", "caf", -1);
    expect("invalid UTF-8 cuts", "s = |\n",
           "ok\xff\xfe"
           "no",
           "ok", -1);
    expect("complete UTF-8 kept", "s = |\n", "caf\xc3\xa9 😀", "caf\xc3\xa9 😀", -1);
    expect("multi-line trailing whitespace trimmed", "    |\n", "a();\n    \n", "a();", -1);
    expect("tabs count as indentation", "\t\t|\n\t}\n", "x();\n\t\ty();\n\tz();", "x();\n\t\ty();",
           FIM_STOP_INDENT);
    /* a blank line in a body: nested blocks and the statements after them, to the body's end */
    expect("a loop then the return, re-indented with the document's tabs",
           "int f(int a)\n{\n\tint s = 0;\n\t|\n}\n",
           "while (a) {\n        s += a--;\n    }\n    return s;\n}\n",
           "while (a) {\n\t\ts += a--;\n\t}\n\treturn s;", FIM_STOP_UNBALANCED);
    expect(
        "if/else, then statements up to the suffix's next line",
        "int f(int a)\n{\n    |\n    return a;\n}\n",
        "if (a) {\n        a = 1;\n    } else {\n        a = 2;\n    }\n    a++;\n    return a;\n}",
        "if (a) {\n        a = 1;\n    } else {\n        a = 2;\n    }\n    a++;",
        FIM_STOP_SUFFIX_REPEAT);
    expect("an empty block right after its opener is not a smaller unit",
           "int f(int a)\n{\n    |\n    return a;\n}\n", "while (a--) {\n    }\n    a++;\n",
           "while (a--) {\n    }\n    a++;", -1);
    expect("the middle closes the body the suffix leaves open", "int f(int a)\n{\n    |\n",
           "for (;;) {\n        a++;\n    }\n    return a;\n}\nint g;\n",
           "for (;;) {\n        a++;\n    }\n    return a;\n}", FIM_STOP_BLOCK_END);
}

/* fim__build_prompt on a context made from the request's text. */
static int build(const fim_request *r, const fim_config *cfg, fim_ids_vec *p, fim_err *err)
{
    fim_context *c = fim__context_from_text(r->doc, r->language, r->text, r->len, r->cursor);
    int rc = fim__build_prompt(v, c, cfg, NULL, p, err);
    fim_context_free(c);
    return rc;
}

static size_t find(const int32_t *ids, size_t n, int32_t id)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] == id) return i;
    return (size_t)-1;
}

static void prompt_layout(void)
{
    const char *text = "int a;\nint b;\nint f(void) {\n    ret\n}\nint c;\n";
    size_t cursor = (size_t)(strstr(text, "ret") + 3 - text);
    fim_config cfg;
    fim_config_default(&cfg);
    fim_ids_vec p = {0};
    fim_err err = {{0}};
    fim_request r = {.doc = "d", .text = text, .len = strlen(text), .cursor = cursor};
    CHECK(build(&r, &cfg, &p, &err) == 0, "prompt: %s", err.msg);
    size_t b = find(p.v, p.n, fi.begin), h = find(p.v, p.n, fi.hole), e = find(p.v, p.n, fi.end);
    CHECK(p.v[0] == model_vocab_bos(v) && b == 1 && h > b && e > h && e < p.n,
          "BOS <begin> prefix <hole> suffix <end> line");
    /* each segment is exactly the tokenization of its text */
    int32_t *ids;
    size_t n;
    model_err me = {{0}};
    const char *l0 = strstr(text, "    ret");
    model_tokenize(v, text, (size_t)(l0 - text), false, false, &ids, &n, &me);
    CHECK(n == h - b - 1 && !memcmp(ids, p.v + b + 1, n * 4),
          "prefix = text before the cursor line");
    free(ids);
    model_tokenize(v, text + cursor, strlen(text) - cursor, false, false, &ids, &n, &me);
    CHECK(n == e - h - 1 && !memcmp(ids, p.v + h + 1, n * 4), "suffix = text after the cursor");
    free(ids);
    model_tokenize(v, l0, 7, false, false, &ids, &n, &me);
    CHECK(n == p.n - e - 1 && !memcmp(ids, p.v + e + 1, n * 4),
          "after <end>: the cursor line before the cursor");
    free(ids);
    /* marker text typed by the user is text, not markers */
    const char *inj = "x = \"<｜fim▁hole｜>\";\n";
    fim_request ri = {.doc = "d", .text = inj, .len = strlen(inj), .cursor = 4};
    build(&ri, &cfg, &p, &err);
    int holes = 0;
    for (size_t i = 0; i < p.n; i++) holes += p.v[i] == fi.hole;
    CHECK(holes == 1, "FIM marker text in the document cannot inject markers (%d holes)", holes);
    free(p.v);
}

static void budgets(void)
{
    /* 400 numbered lines; the cursor on line 300 */
    char *text = malloc(60000);
    size_t len = 0, cursor = 0;
    for (int i = 0; i < 900; i++) {
        if (i == 300) cursor = len + 4;
        len += (size_t)sprintf(text + len, "    value_%03d = %d;\n", i, i * 3);
    }
    fim_config cfg;
    fim_config_default(&cfg);
    cfg.prefix_tokens = 200;
    cfg.suffix_tokens = 60;
    cfg.related_tokens = 0;
    fim_ids_vec p = {0};
    fim_err err = {{0}};
    fim_request r = {.doc = "d", .text = text, .len = len, .cursor = cursor};
    build(&r, &cfg, &p, &err);
    size_t b = find(p.v, p.n, fi.begin), h = find(p.v, p.n, fi.hole), e = find(p.v, p.n, fi.end);
    CHECK(h - b - 1 <= 200 && h - b - 1 > 100, "prefix within its budget (%zu tokens)", h - b - 1);
    CHECK(e - h - 1 <= 60 + 200 - (h - b - 1) && e - h - 1 > 20,
          "suffix within its budget and what the prefix left (%zu tokens)", e - h - 1);
    /* the prefix starts at a line start, and the window stays put while typing moves down 3 lines
     */
    char *dec = malloc(100000);
    size_t dl = 0;
    for (size_t i = b + 1; i < h; i++) dl += (size_t)model_token_bytes(v, p.v[i], dec + dl, 1000);
    dec[dl] = 0;
    CHECK(!strncmp(dec, "    value_", 10), "prefix starts at a line start: [%.20s]", dec);
    /* at the default budget, moving down line by line changes the window start every 16 lines */
    cfg.prefix_tokens = 1024;
    int changes = 0;
    char prev[32] = "";
    for (int k = 0; k < 32; k++) {
        size_t cur = (size_t)(strstr(text, "    value_600") - text) +
                     (size_t)k * strlen("    value_600 = 1800;\n") + 4;
        fim_request rk = {.doc = "d", .text = text, .len = len, .cursor = cur};
        build(&rk, &cfg, &p, &err);
        size_t bk = find(p.v, p.n, fi.begin);
        char head[32];
        size_t hl = 0;
        for (size_t i = bk + 1; i < bk + 6 && hl < 20; i++)
            hl += (size_t)model_token_bytes(v, p.v[i], head + hl, 8);
        head[hl < 20 ? hl : 20] = 0;
        if (k && strcmp(head, prev)) changes++;
        snprintf(prev, sizeof prev, "%s", head);
    }
    CHECK(changes <= 3, "prefix window start changed %d times over 32 lines", changes);
    /* first_line shifts the step grid like a window of a longer document would */
    free(p.v);
    free(dec);
    free(text);
}

static void sessions(void)
{
    fim_err err = {{0}};
    fim_engine *e = fim__engine_with_model(m, &err);
    fim_config cfg;
    fim_config_default(&cfg);
    cfg.max_tokens = 8;
    const char *a = "int main(void)\n{\n    \n}\n";
    fim_request r = {.doc = "a", .text = a, .len = strlen(a), .cursor = 20};
    fim_stats st;
    char *out;
    CHECK(fim_complete(e, &r, &cfg, NULL, &out, &st, &err) == 0, "complete: %s", err.msg);
    CHECK(st.reused == 0 && st.evaluated == st.prompt_tokens,
          "first request evaluates the whole prompt");
    free(out);
    fim_complete(e, &r, &cfg, NULL, &out, &st, &err);
    CHECK(st.reused == st.prompt_tokens - 1 && st.evaluated == 1,
          "the same request again evaluates one token (%d)", st.evaluated);
    free(out);
    /* token healing: the cursor line's last token is spelled again by the first generated tokens,
     * so the evaluated prompt is the built one less that token; at a line start nothing is healed
     */
    int32_t *built = NULL;
    size_t n_built = 0;
    fim__engine_prompt(e, &r, &cfg, &built, &n_built, &err);
    fim_complete(e, &r, &cfg, NULL, &out, &st, &err), free(out);
    CHECK(st.prompt_tokens == (int)n_built - 1,
          "healing: the cursor line's last token is left out (%d of %zu)", st.prompt_tokens,
          n_built);
    free(built);
    const char *b0 = "int main(void)\n{\n\n}\n";
    fim_request r0 = {.doc = "a", .text = b0, .len = strlen(b0), .cursor = 17};
    fim__engine_prompt(e, &r0, &cfg, &built, &n_built, &err);
    fim_complete(e, &r0, &cfg, NULL, &out, &st, &err), free(out);
    CHECK(st.prompt_tokens == (int)n_built, "healing: nothing to heal at a line start (%d of %zu)",
          st.prompt_tokens, n_built);
    free(built);
    size_t one = fim_engine_cache_bytes(e);
    fim_request r2 = {.doc = "b", .text = a, .len = strlen(a), .cursor = 20},
                r3 = {.doc = "c", .text = a, .len = strlen(a), .cursor = 20};
    fim_complete(e, &r2, &cfg, NULL, &out, &st, &err), free(out);
    CHECK(fim_engine_n_docs(e) == 2, "a cache per document");
    cfg.cache_bytes = one + one / 2; /* room for one cache: the least recently used go */
    fim_complete(e, &r3, &cfg, NULL, &out, &st, &err), free(out);
    CHECK(fim_engine_n_docs(e) == 1, "LRU eviction under the byte cap (%d docs)",
          fim_engine_n_docs(e));
    fim_engine_close_doc(e, "c");
    CHECK(fim_engine_n_docs(e) == 0 && fim_engine_cache_bytes(e) == 0, "close frees the cache");
    atomic_int cancel = 1;
    CHECK(fim_complete(e, &r, &cfg, &cancel, &out, &st, &err) == 1 &&
              st.stop == FIM_STOP_CANCELLED && !out,
          "a cancelled request returns 1 and no text");
    cfg.temperature = 0.8f;
    cfg.max_tokens = 16;
    char *s1, *s2;
    fim_complete(e, &r, &cfg, NULL, &s1, &st, &err);
    fim_complete(e, &r, &cfg, NULL, &s2, &st, &err);
    CHECK(!strcmp(s1, s2), "sampling is reproducible for a fixed seed");
    free(s1), free(s2);
    fim_engine_free(e);
}

/* ---- kept completions: type-through and prefetch ---- */

/* A completion of text with s[0..n) inserted at cursor, the cursor after it (malloc'd). */
static char *ask_at(fim_engine *e, const char *doc, const char *text, size_t cursor, const char *s,
                    size_t n, const fim_config *cfg, fim_stats *st)
{
    size_t len = strlen(text);
    char *t = malloc(len + n + 1);
    memcpy(t, text, cursor), memcpy(t + cursor, s, n),
        memcpy(t + cursor + n, text + cursor, len - cursor + 1);
    fim_request r = {.doc = doc, .text = t, .len = len + n, .cursor = cursor + n, .language = "c"};
    fim_err err = {{0}};
    char *out = NULL;
    if (fim_complete(e, &r, cfg, NULL, &out, st, &err)) out = strdup("<error>");
    free(t);
    return out;
}

static int prefetch_at(fim_engine *e, const char *text, size_t cursor, const char *s,
                       const fim_config *cfg, fim_stats *st)
{
    size_t len = strlen(text), n = strlen(s);
    char *t = malloc(len + n + 1);
    memcpy(t, text, cursor), memcpy(t + cursor, s, n),
        memcpy(t + cursor + n, text + cursor, len - cursor + 1);
    fim_request r = {.doc = "k", .text = t, .len = len + n, .cursor = cursor + n, .language = "c"};
    fim_err err = {{0}};
    int rc = fim_prefetch(e, &r, cfg, NULL, st, &err);
    free(t);
    return rc;
}

static const char *KEPT_TEXT =
    "int main(void)\n{\n    int total = 0;\n    \n    return total;\n}\n";

/* A cursor of KEPT_TEXT where the model suggests at least 3 bytes; its suggestion in *ghost. */
static size_t find_ghost(fim_engine *e, const fim_config *cfg, char **ghost)
{
    fim_stats st;
    size_t len = strlen(KEPT_TEXT);
    for (size_t c = 0; c < len; c++) {
        if (KEPT_TEXT[c] != '\n') continue;
        fim_engine_close_doc(e, "k");
        *ghost = ask_at(e, "k", KEPT_TEXT, c, "", 0, cfg, &st);
        if (strlen(*ghost) >= 3 && ((unsigned char)(*ghost)[1] & 0xc0) != 0x80) return c;
        free(*ghost);
    }
    *ghost = NULL;
    return 0;
}

static void type_through(void)
{
    fim_err err = {{0}};
    fim_engine *e = fim__engine_with_model(m, &err), *ref = fim__engine_with_model(m, &err);
    fim_config cfg;
    fim_config_default(&cfg);
    cfg.max_tokens = 12;
    cfg.prefetch = false;
    char *g;
    size_t c = find_ghost(e, &cfg, &g);
    if (!CHECK(g != NULL, "some cursor has a ghost text")) goto out;
    size_t n = strlen(g);
    fim_stats st;
    for (size_t k = 1; k < n; k++) { /* every keystroke into the ghost text, the last one too */
        if (((unsigned char)g[k] & 0xc0) == 0x80) continue;
        char *got = ask_at(e, "k", KEPT_TEXT, c, g, k, &cfg, &st);
        CHECK(!strcmp(got, g + k) && st.source == FIM_FROM_TYPE_THROUGH && st.evaluated == 0 &&
                  st.generated == 0,
              "typed %zu of [%s]: [%s] from type-through with no model work", k, g, got);
        free(got);
    }
    /* typed to the end: a fresh completion, as an engine without type-through gives it */
    char *got = ask_at(e, "k", KEPT_TEXT, c, g, n, &cfg, &st);
    fim_engine_close_doc(ref, "k");
    cfg.type_through = false;
    char *want = ask_at(ref, "k", KEPT_TEXT, c, g, n, &cfg, &st);
    CHECK(!strcmp(got, want) && st.source == FIM_FROM_MODEL,
          "typed through to the end: a new completion [%s] = [%s]", got, want);
    free(got), free(want);
    /* a diverging keystroke is computed afresh (the ghost text is now the first state's again) */
    cfg.type_through = true;
    free(ask_at(e, "k", KEPT_TEXT, c, "", 0, &cfg, &st));
    char other[2] = {g[0] == 'q' ? 'z' : 'q', 0};
    free(ask_at(e, "k", KEPT_TEXT, c, other, 1, &cfg, &st));
    CHECK(st.source == FIM_FROM_MODEL && st.generated > 0, "a diverging keystroke runs the model");
    /* the same keystroke with the text after the cursor changed: no hit either */
    free(ask_at(e, "k", KEPT_TEXT, c, "", 0, &cfg, &st));
    char *edited = strdup(KEPT_TEXT);
    edited[strlen(edited) - 2] = ' '; /* the closing brace */
    free(ask_at(e, "k", edited, c, g, 1, &cfg, &st));
    CHECK(st.source == FIM_FROM_MODEL, "an edit after the cursor is not typed through");
    free(edited);
    /* switched off */
    free(ask_at(e, "k", KEPT_TEXT, c, "", 0, &cfg, &st));
    cfg.type_through = false;
    free(ask_at(e, "k", KEPT_TEXT, c, g, 1, &cfg, &st));
    CHECK(st.source == FIM_FROM_MODEL && st.generated > 0, "type_through off: the model runs");
out:
    free(g);
    fim_engine_free(e);
    fim_engine_free(ref);
}

static void prefetch(void)
{
    fim_err err = {{0}};
    fim_engine *e = fim__engine_with_model(m, &err), *ref = fim__engine_with_model(m, &err);
    fim_config cfg;
    fim_config_default(&cfg);
    cfg.max_tokens = 12;
    char *g;
    size_t c = find_ghost(e, &cfg, &g), n = g ? strlen(g) : 0;
    if (!CHECK(g != NULL, "some cursor has a ghost text")) goto out;
    fim_stats st;
    CHECK(prefetch_at(e, KEPT_TEXT, c, g, &cfg, &st) == 0 && st.generated > 0,
          "the accepted branch is computed ahead (%d generated)", st.generated);
    char *got = ask_at(e, "k", KEPT_TEXT, c, g, n, &cfg, &st);
    CHECK(st.source == FIM_FROM_PREFETCH && st.evaluated == 0 && st.generated == 0,
          "accepting is answered from the prefetch with no model work");
    /* the same requests on an engine without prefetch */
    fim_config off = cfg;
    off.prefetch = false;
    fim_stats rst;
    free(ask_at(ref, "k", KEPT_TEXT, c, "", 0, &off, &rst));
    char *want = ask_at(ref, "k", KEPT_TEXT, c, g, n, &off, &rst);
    CHECK(!strcmp(got, want) && rst.source == FIM_FROM_MODEL,
          "the prefetched answer is the fresh one: [%s] vs [%s]", got, want);
    free(got), free(want);
    /* prefetched, then an edit elsewhere: no stale answer */
    free(ask_at(e, "k", KEPT_TEXT, c, "", 0, &cfg, &st));
    prefetch_at(e, KEPT_TEXT, c, g, &cfg, &st);
    char *edited = strdup(KEPT_TEXT);
    edited[0] = 'I';
    free(ask_at(e, "k", edited, c, g, n, &cfg, &st));
    CHECK(st.source == FIM_FROM_MODEL, "an edit elsewhere is not answered from the prefetch");
    free(edited);
    /* a prefetch of a state already kept costs nothing; with prefetch off nothing is computed */
    prefetch_at(e, KEPT_TEXT, c, g, &cfg, &st);
    prefetch_at(e, KEPT_TEXT, c, g, &cfg, &st);
    CHECK(st.generated == 0 && st.evaluated == 0, "the same branch again is not recomputed");
    fim_engine_close_doc(e, "k");
    CHECK(prefetch_at(e, KEPT_TEXT, c, g, &off, &st) == 0 && st.generated == 0 && st.evaluated == 0,
          "prefetch off: fim_prefetch does nothing");
    free(ask_at(e, "k", KEPT_TEXT, c, g, n, &cfg, &st));
    CHECK(st.source == FIM_FROM_MODEL, "prefetch off: nothing kept to answer from");
out:
    free(g);
    fim_engine_free(e);
    fim_engine_free(ref);
}

/* ---- drafts from the context: the same choices as without ---- */

static int32_t argmax(const float *l, int n)
{
    int32_t b = 0;
    for (int i = 1; i < n; i++)
        if (l[i] > l[b]) b = i;
    return b;
}

enum { DRAFT_GEN = 48 };

/* Greedy ids from the in-process backend, driven as the engine drives it (next, choose, accept;
 * the last choice is not accepted). Returns how many; the backend's counts land in *st. */
static int backend_greedy(model *mm, const int32_t *prompt, size_t n, int drafts, int32_t *out,
                          fim_stats *st)
{
    fim_err err = {{0}};
    fim_backend *b = fim__local_new(mm, &err);
    fim_gen g = {.doc = "d",
                 .ids = prompt,
                 .n = n,
                 .max_tokens = DRAFT_GEN,
                 .cache_bytes = (size_t)1 << 30,
                 .drafts = drafts};
    int nv = model_get_hparams(mm)->n_vocab, k = 0;
    memset(st, 0, sizeof *st);
    if (b && b->ops->start(b, &g, NULL, st, &err) == 0)
        for (;;) {
            fim_step step = {.token = -1};
            if (b->ops->next(b, &step, NULL, st, &err)) break;
            out[k] = argmax(step.logits, nv);
            if (++k == DRAFT_GEN || b->ops->accept(b, out[k - 1], NULL, &err)) break;
        }
    CHECK(k == DRAFT_GEN, "greedy run: %d tokens (%s)", k, err.msg);
    if (b) b->ops->finish(b, false, st), b->ops->free(b);
    return k;
}

/* A prompt that repeats itself (so n-grams recur): 12 tokens three times, then 5 of them. */
static size_t repeating_prompt(int nv, int32_t *p)
{
    size_t n = 0;
    for (int r = 0; r < 3; r++)
        for (int i = 0; i < 12; i++) p[n++] = (int32_t)((i * 37 + 11) % (nv - 8)) + 3;
    for (int i = 0; i < 5; i++) p[n++] = p[i];
    return n;
}

/* Drafts on and off give the same ids; returns the drafts' counts. */
static fim_stats same_with_drafts(model *mm, const char *what)
{
    int32_t p[64], plain[DRAFT_GEN], drafted[DRAFT_GEN];
    size_t n = repeating_prompt(model_get_hparams(mm)->n_vocab, p);
    fim_stats off, on;
    int a = backend_greedy(mm, p, n, 0, plain, &off), b = backend_greedy(mm, p, n, 8, drafted, &on);
    CHECK(a == b && !memcmp(plain, drafted, sizeof *plain * (size_t)a),
          "%s: greedy ids identical with drafts (%d of %d drafts accepted)", what, on.accepted,
          on.drafted);
    CHECK(off.drafted == 0 && off.steps == DRAFT_GEN - 1 && on.steps + on.accepted == off.steps,
          "%s: each accepted draft saves a step (%d steps, %d with drafts, %d accepted)", what,
          off.steps, on.steps, on.accepted);
    return on;
}

/* Every fixture model (each weight type): identical ids, drafts accepted by some and rejected
 * by some (the cache is then cut back to the agreed tokens, and what follows must still agree).
 */
static void drafts_fixtures(void)
{
    const char *fx = check_fixtures("drafts on every fixture model");
    if (!fx) return;
    char *names[64];
    int n = check_model_dirs(fx, names, 64), accepting = 0, rejecting = 0;
    for (int i = 0; i < n; i++) {
        char path[8192];
        snprintf(path, sizeof path, "%s/models/%s/model.gguf", fx, names[i]);
        model_err me = {{0}};
        model *mm = model_load(path, &me);
        if (CHECK(mm != NULL, "load %s: %s", path, me.msg)) {
            model_set_threads(mm, 1); /* tiny: a second thread costs more than it brings */
            fim_stats st = same_with_drafts(mm, names[i]);
            accepting += st.accepted > 0, rejecting += st.drafted > st.accepted;
        }
        model_free(mm);
        free(names[i]);
    }
    printf("drafts: accepted on %d of %d fixture models, rejected on %d\n", accepting, n,
           rejecting);
    CHECK(n >= 16 && accepting >= n / 4 && rejecting > 0,
          "drafts accepted on %d of %d models, rejected on %d", accepting, n, rejecting);
}

/* The bundled model (no fixtures needed): the same ids from the backend and the same
 * completions through fim_complete, where a block repeating the one above it accepts drafts. */
static void drafts_bundled(void)
{
    model_err me = {{0}};
    model *mm = model_load("weights/fimd-tiny-code.gguf", &me);
    if (!CHECK(mm != NULL, "load the bundled model: %s", me.msg)) return;
    same_with_drafts(mm, "bundled");
    fim_err err = {{0}};
    fim_engine *e = fim__engine_with_model(mm, &err);
    const char *t = "static int sum(const int *v, int n)\n{\n    int s = 0;\n"
                    "    for (int i = 0; i < n; i++)\n        s += v[i];\n    return s;\n}\n\n"
                    "static int sum2(const int *v, int n)\n{\n    int s = 0;\n    ";
    fim_config cfg;
    fim_config_default(&cfg);
    cfg.max_tokens = 32;
    fim_request r = {.doc = "s.c", .text = t, .len = strlen(t), .cursor = strlen(t)};
    fim_stats on, off;
    char *a = NULL, *b = NULL;
    fim_complete(e, &r, &cfg, NULL, &a, &on, &err);
    cfg.drafts = 0;
    fim_complete(e, &r, &cfg, NULL, &b, &off, &err);
    CHECK(a && b && !strcmp(a, b) && on.generated == off.generated,
          "bundled: the same completion with and without drafts ([%s] / [%s])", a ? a : "",
          b ? b : "");
    printf("bundled: %d of %d drafts accepted, %d steps (%d without) for %d tokens\n", on.accepted,
           on.drafted, on.steps, off.steps, on.generated);
    CHECK(on.accepted > 0 && on.steps < off.steps && off.drafted == 0,
          "bundled: drafts from the block above are accepted (%d of %d; %d steps, %d without)",
          on.accepted, on.drafted, on.steps, off.steps);
    free(a), free(b);
    fim_engine_free(e);
    model_free(mm);
}

/* Tokens forced on the backend (an engine may choose anything): the logits it serves, from
 * drafts or not, equal a plain evaluation's bit for bit, through accepted drafts, a rejected
 * one and the steps after it. */
static void drafts_exact(void)
{
    int nv = model_get_hparams(m)->n_vocab;
    int32_t p[64], forced[24];
    size_t n = repeating_prompt(nv, p);
    for (int i = 0; i < 24; i++) forced[i] = p[(5 + i) % 12]; /* the pattern goes on ... */
    forced[9] = (forced[9] + 1) % nv, forced[17] = (forced[17] + 5) % nv; /* ... but not twice */
    fim_err err = {{0}};
    model_err me = {{0}};
    fim_backend *b = fim__local_new(m, &err);
    model_cache *ref = model_cache_new(m, &me);
    float *want = malloc(sizeof(float) * (size_t)nv);
    fim_gen g = {
        .doc = "x", .ids = p, .n = n, .max_tokens = 64, .cache_bytes = 1 << 30, .drafts = 8};
    fim_stats st = {0};
    int same = 0, steps = 0;
    model_eval(m, ref, p, (int)n, want, MODEL_LOGITS_LAST, NULL, &me);
    if (b->ops->start(b, &g, NULL, &st, &err) == 0)
        for (; steps <= 24; steps++) {
            fim_step step = {.token = -1};
            if (b->ops->next(b, &step, NULL, &st, &err)) break;
            same += !memcmp(step.logits, want, sizeof(float) * (size_t)nv);
            if (steps == 24 || b->ops->accept(b, forced[steps], NULL, &err)) break;
            model_eval(m, ref, &forced[steps], 1, want, MODEL_LOGITS_LAST, NULL, &me);
        }
    b->ops->finish(b, false, &st);
    CHECK(same == 25, "served logits equal a plain evaluation's at %d of 25 steps", same);
    CHECK(st.accepted > 0 && st.drafted > st.accepted && st.steps < 24,
          "forced tokens: %d of %d drafts accepted, %d steps for 24 tokens", st.accepted,
          st.drafted, st.steps);
    free(want);
    model_cache_free(ref);
    b->ops->free(b);
}

int main(int argc, char **argv)
{
    static const char *const cases[] = {"stop_rules",   "prompt_layout",  "budgets",
                                        "sessions",     "type_through",   "prefetch",
                                        "drafts_exact", "drafts_bundled", "drafts_fixtures"};
    if (!check_args(argc, argv, cases, CHECK_CASES(cases))) return 2;
    m = check_tiny_model("fim-model.gguf", "tests/data/ds2.c", "tests/data/tokenizer.c");
    if (!m) return check_done();
    model_err me = {{0}};
    v = model_get_vocab(m);
    model_vocab_fim(v, &fi, &me);
    if (check_want("stop_rules")) stop_rules();
    if (check_want("prompt_layout")) prompt_layout();
    if (check_want("budgets")) budgets();
    if (check_want("sessions")) sessions();
    if (check_want("type_through")) type_through();
    if (check_want("prefetch")) prefetch();
    if (check_want("drafts_exact")) drafts_exact();
    if (check_want("drafts_bundled")) drafts_bundled();
    if (check_want("drafts_fixtures")) drafts_fixtures();
    model_free(m);
    return check_done();
}
