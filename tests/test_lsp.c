/* tests/test_lsp.c — end to end: drives build/fimd over stdio as an editor would, with a
 * synthesized model. Lifecycle, incremental edits with characters outside the BMP (UTF-16
 * arithmetic checked through fimd/status's text hash), inline and regular completions equal to
 * fim_complete on the same buffer, cache reuse per keystroke, cancellation and supersession, and
 * bad input of every kind, each followed by a successful completion. */
#define _GNU_SOURCE
#include "fim/fim_internal.h"
#include "lsp/lsp.h"
#include "lsp/lsp_internal.h"
#include "tests/check.h"
#include "tests/tlsp.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- a minimal LSP client ---- */

typedef struct client {
    pid_t pid;
    int to, from;
    char *buf;
    size_t len, cap;
    char last[1 << 16]; /* the last message read, for messages in failures */
} client;

static const char *fimd_bin(void)
{
    const char *b = getenv("FIMD_BIN");
    return b && *b ? b : "build/fimd";
}

static void spawn(client *c, const char *model, const char *log)
{
    memset(c, 0, sizeof *c);
    int in[2], out[2];
    if (pipe(in) || pipe(out)) abort();
    c->pid = fork();
    if (c->pid == 0) {
        dup2(in[0], 0), dup2(out[1], 1);
        close(in[0]), close(in[1]), close(out[0]), close(out[1]);
        execl(fimd_bin(), "fimd", "--model", model, "--log", log, (char *)NULL);
        _exit(127);
    }
    close(in[0]), close(out[1]);
    c->to = in[1];
    c->from = out[0];
    signal(SIGPIPE, SIG_IGN);
}

static void send_bytes(client *c, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(c->to, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return;
        p += w, n -= (size_t)w;
    }
}

static void send_msg(client *c, const char *json)
{
    char hdr[64];
    int h = snprintf(hdr, sizeof hdr, "Content-Length: %zu\r\n\r\n", strlen(json));
    send_bytes(c, hdr, (size_t)h);
    send_bytes(c, json, strlen(json));
}

static void sendf(client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sendf(client *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s;
    if (vasprintf(&s, fmt, ap) < 0) abort();
    va_end(ap);
    send_msg(c, s);
    free(s);
}

/* Next message as a parsed document (d->s points into a malloc'd copy); false on timeout/EOF. */
static bool recv_msg(client *c, jdoc *d, int timeout_ms)
{
    for (;;) {
        char *end = c->len ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL;
        if (end) {
            size_t hlen = (size_t)(end - c->buf) + 4;
            size_t n = (size_t)strtoul(strcasestr(c->buf, "Content-Length:") + 15, NULL, 10);
            if (c->len >= hlen + n) {
                char *body = malloc(n + 1);
                memcpy(body, c->buf + hlen, n);
                body[n] = 0;
                memmove(c->buf, c->buf + hlen + n, c->len - hlen - n);
                c->len -= hlen + n;
                snprintf(c->last, sizeof c->last, "%s", body);
                if (lsp__json_parse(d, body, n)) {
                    free(body);
                    return false;
                }
                return true;
            }
        }
        struct pollfd p = {c->from, POLLIN, 0};
        if (poll(&p, 1, timeout_ms) <= 0) return false;
        if (c->len + 65536 > c->cap) {
            c->cap = (c->cap ? c->cap : 65536) * 2;
            c->buf = realloc(c->buf, c->cap);
        }
        ssize_t r = read(c->from, c->buf + c->len, 65536);
        if (r <= 0) return false;
        c->len += (size_t)r;
    }
}

/* Wait for the response with this raw id, skipping notifications and server requests. */
static bool response(client *c, const char *id, jdoc *d, int timeout_ms)
{
    while (recv_msg(c, d, timeout_ms)) {
        if (tlsp_answers(d, id)) return true;
        tlsp_done(d);
    }
    return false;
}

/* Request and expect an error code; returns true if it matched. */
static bool expect_error(client *c, const char *id, long code, const char *what)
{
    jdoc d;
    bool got = response(c, id, &d, 20000);
    long e = got ? tlsp_error_code(&d) : 0;
    CHECK(got && e == code, "%s: expected error %ld, got %ld (%s)", what, code, e,
          got ? c->last : "no answer");
    if (got) tlsp_done(&d);
    return got && e == code;
}

static long status_num(client *c, const char *path1, const char *path2)
{
    static int seq = 9000;
    char id[16];
    snprintf(id, sizeof id, "%d", ++seq);
    sendf(c, "{\"jsonrpc\":\"2.0\",\"id\":%s,\"method\":\"fimd/status\"}", id);
    jdoc d;
    double v = -1;
    if (response(c, id, &d, 20000)) {
        int r = lsp__jget(&d, 0, "result");
        int x = path2 ? lsp__jget(&d, lsp__jget(&d, r, path1), path2) : lsp__jget(&d, r, path1);
        if (!lsp__jnum(&d, x, &v) && lsp__jis(&d, x, JSMN_STRING)) {
            char *s = lsp__jstr(&d, x, NULL);
            v = (double)strtoull(s, NULL, 16);
            free(s);
        }
        tlsp_done(&d);
    }
    return (long)v;
}

static char *status_str(client *c, const char *key, int doc_index)
{
    sendf(c, "{\"jsonrpc\":\"2.0\",\"id\":\"st\",\"method\":\"fimd/status\"}");
    jdoc d;
    char *out = NULL;
    if (response(c, "\"st\"", &d, 20000)) {
        int r = lsp__jget(&d, 0, "result");
        if (doc_index >= 0) {
            int docs = lsp__jget(&d, r, "documents");
            int e = docs >= 0 && doc_index < d.t[docs].size ? docs + 1 : -1;
            for (int k = 0; e >= 0 && k < doc_index; k++) e = lsp__jskip(&d, e);
            out = e >= 0 ? lsp__jstr(&d, lsp__jget(&d, e, key), NULL) : NULL;
        } else {
            out = lsp__jstr(&d, lsp__jget(&d, lsp__jget(&d, r, "last"), key), NULL);
            if (!out) out = lsp__jstr(&d, lsp__jget(&d, r, key), NULL);
        }
        tlsp_done(&d);
    }
    return out ? out : strdup("");
}

static bool wait_ready(client *c)
{
    for (int i = 0; i < 600; i++) {
        char *st = status_str(c, "state", -1);
        bool ready = !strcmp(st, "ready"), failed = !strcmp(st, "failed");
        free(st);
        if (ready) return true;
        if (failed) return false;
        usleep(20000);
    }
    return false;
}

static int finish(client *c)
{
    sendf(c, "{\"jsonrpc\":\"2.0\",\"id\":\"bye\",\"method\":\"shutdown\"}");
    jdoc d;
    bool ok = response(c, "\"bye\"", &d, 20000);
    CHECK(ok && lsp__jget(&d, 0, "result") >= 0, "shutdown answered with a result");
    if (ok) tlsp_done(&d);
    sendf(c, "{\"jsonrpc\":\"2.0\",\"method\":\"exit\"}");
    int status = -1;
    pid_t done = 0;
    for (int i = 0; i < 500 && (done = waitpid(c->pid, &status, WNOHANG)) == 0; i++) usleep(10000);
    if (done == 0) { /* never leave a stuck server holding the runner's output pipe */
        kill(c->pid, SIGKILL);
        waitpid(c->pid, &status, 0);
        status = -1;
    }
    close(c->to), close(c->from);
    free(c->buf);
    return status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* ---- helpers on documents ---- */

static char *json_escape(const char *s, size_t n)
{
    jw w = {0};
    lsp__jw_str(&w, s, n);
    return w.p;
}

static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t k = 0; k < n; k++) h = (h ^ (uint8_t)s[k]) * 1099511628211ULL;
    return h;
}

static void open_doc(client *c, const char *uri, const char *text, size_t len)
{
    char *t = json_escape(text, len);
    sendf(c,
          "{\"jsonrpc\":\"2.0\",\"method\":\"textDocument/didOpen\",\"params\":{\"textDocument\":"
          "{\"uri\":\"%s\",\"languageId\":\"c\",\"version\":1,\"text\":%s}}}",
          uri, t);
    free(t);
}

static void insert(client *c, const char *uri, int version, long line, long ch, const char *text)
{
    char *t = json_escape(text, strlen(text));
    sendf(c,
          "{\"jsonrpc\":\"2.0\",\"method\":\"textDocument/"
          "didChange\",\"params\":{\"textDocument\":{\"uri\":\"%s\","
          "\"version\":%d},\"contentChanges\":[{\"range\":{\"start\":{\"line\":%ld,\"character\":%"
          "ld},\"end\":"
          "{\"line\":%ld,\"character\":%ld}},\"text\":%s}]}}",
          uri, version, line, ch, line, ch, t);
    free(t);
}

static void request(client *c, const char *id, const char *method, const char *uri, long line,
                    long ch)
{
    sendf(c,
          "{\"jsonrpc\":\"2.0\",\"id\":%s,\"method\":\"%s\",\"params\":{\"textDocument\":{\"uri\":"
          "\"%s\"},"
          "\"position\":{\"line\":%ld,\"character\":%ld},\"context\":{\"triggerKind\":2}}}",
          id, method, uri, line, ch);
}

/* The inline completion text (malloc'd; "" for no items), or NULL on error/timeout. */
static char *inline_text(client *c, const char *id, const char *uri, long line, long ch)
{
    request(c, id, "textDocument/inlineCompletion", uri, line, ch);
    jdoc d;
    if (!response(c, id, &d, 60000)) return NULL;
    int items = lsp__jget(&d, lsp__jget(&d, 0, "result"), "items");
    char *out = NULL;
    if (lsp__jis(&d, items, JSMN_ARRAY)) {
        out = d.t[items].size ? lsp__jstr(&d, lsp__jget(&d, items + 1, "insertText"), NULL)
                              : strdup("");
    }
    tlsp_done(&d);
    return out;
}

/* ---- the model and the reference completion ---- */

static model *ref_model;
static fim_engine *ref_engine;

static char *reference(const char *text, size_t len, size_t cursor)
{
    fim_config cfg;
    fim_config_default(&cfg);
    fim_request r = {.doc = "ref", .text = text, .len = len, .cursor = cursor, .language = "c"};
    fim_stats st;
    fim_err err = {{0}};
    char *out = NULL;
    fim_engine_close_doc(ref_engine, "ref");
    if (fim_complete(ref_engine, &r, &cfg, NULL, &out, &st, &err)) return strdup("<error>");
    return out;
}

static char *make_model(const char *name, int embd, int layers, int ff)
{
    model_synth_opts o;
    model_synth_preset(&o, "tiny");
    static const char *files[] = {"tests/data/ds2.c", "tests/data/tokenizer.c"};
    o.merge_files = files;
    o.n_merge_files = 2;
    o.n_merges = 400;
    o.seed = 4;
    o.type = MODEL_TYPE_Q8_0;
    if (embd) o.hp.n_embd = embd, o.hp.n_layer = layers, o.hp.n_ff = ff, o.hp.n_ff_exp = ff / 2;
    char *path = strdup(check_tmp(name));
    model_err err = {{0}};
    CHECK(model_synth(&o, path, &err) == 0, "synth %s: %s", name, err.msg);
    return path;
}

static const char *SAMPLE = "#include <stdio.h>\n"
                            "\n"
                            "/* 😀 emoji outside the BMP: two UTF-16 units each 😀 */\n"
                            "static int square(int x)\n"
                            "{\n"
                            "    return x * x;\n"
                            "}\n"
                            "\n"
                            "int main(void)\n"
                            "{\n"
                            "    int total = 0; /* 𝄞 */\n"
                            "    for (int i = 0; i < 10; i++) {\n"
                            "        \n"
                            "    }\n"
                            "    printf(\"%d\\n\", total);\n"
                            "    return 0;\n"
                            "}\n";

/* ---- the scenarios ---- */

static void session(const char *model_path)
{
    client c;
    spawn(&c, model_path, check_tmp("lsp-session.log"));
    sendf(&c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"processId\":"
              "null,\"capabilities\":"
              "{\"window\":{\"workDoneProgress\":true}},\"initializationOptions\":{\"maxTokens\":"
              "48,\"threads\":1}}}");
    jdoc d;
    bool ok = response(&c, "1", &d, 20000);
    int caps = ok ? lsp__jget(&d, lsp__jget(&d, 0, "result"), "capabilities") : -1;
    CHECK(ok && lsp__jstr_eq(&d, lsp__jget(&d, caps, "positionEncoding"), "utf-16"),
          "utf-16 by default: %s", c.last);
    CHECK(ok && lsp__jget(&d, caps, "inlineCompletionProvider") >= 0 &&
              lsp__jget(&d, caps, "completionProvider") >= 0,
          "advertises inline and regular completion");
    if (ok) tlsp_done(&d);
    sendf(&c, "{\"jsonrpc\":\"2.0\",\"method\":\"initialized\",\"params\":{}}");
    /* progress: the server asks to create a token, then reports begin/end */
    bool created = false;
    for (int i = 0; i < 5 && recv_msg(&c, &d, 20000); i++) {
        created |= lsp__jstr_eq(&d, lsp__jget(&d, 0, "method"), "window/workDoneProgress/create");
        tlsp_done(&d);
        if (created) break;
    }
    CHECK(created, "window/workDoneProgress/create sent while the model loads");
    CHECK(wait_ready(&c), "model loads");
    CHECK(status_num(&c, "threads", NULL) == 1,
          "the threads setting reaches the model (status threads %ld)",
          status_num(&c, "threads", NULL));

    /* open, then type on line 12 after 8 spaces, and add text after an emoji on line 2 */
    const char *uri = "file:///tmp/sample.c";
    open_doc(&c, uri, SAMPLE, strlen(SAMPLE));
    insert(&c, uri, 2, 12, 8, "tot");
    insert(&c, uri, 3, 2, 5, "X"); // after the comment opener and the emoji: 3 + 2 units
    insert(&c, uri, 4, 2, 54,
           "Y"); /* just before the closing "*" + "/": the second emoji counts 2 */
    insert(&c, uri, 5, 10, 25, "!"); /* after the treble clef (2 units) and " " */
    char expected[4096];
    snprintf(expected, sizeof expected, "%s", SAMPLE);
    /* apply the same edits by bytes */
    char *p = strstr(expected, "        \n    }");
    memmove(p + 11, p + 8, strlen(p + 8) + 1), memcpy(p + 8, "tot", 3);
    p = strstr(expected, "/* 😀 emoji") + 7; // the opener, a space and 4 bytes of emoji
    memmove(p + 1, p, strlen(p) + 1), *p = 'X';
    p = strstr(expected, "each 😀 */") + 9;
    memmove(p + 1, p, strlen(p) + 1), *p = 'Y';
    p = strstr(expected, "/* 𝄞 */") + 8;
    memmove(p + 1, p, strlen(p) + 1), *p = '!';
    char want_hash[32];
    snprintf(want_hash, sizeof want_hash, "%016llx",
             (unsigned long long)fnv1a(expected, strlen(expected)));
    char *hash = status_str(&c, "fnv1a", 0);
    CHECK(!strcmp(hash, want_hash),
          "server text equals the edited buffer (UTF-16 edits around non-BMP characters)");
    free(hash);

    /* inline completion = fim_complete on the same text and cursor; the cursor is the end of the
     * typed word, or the first line end after it where this random model writes something */
    size_t cursor = (size_t)(strstr(expected, "        tot") + 11 - expected);
    long cl = 12, cc = 11;
    char *want = reference(expected, strlen(expected), cursor);
    for (long line = 13; !*want && line < 17; line++) {
        lsp_pos pe = {line, 100};
        lsp_offset_of(expected, strlen(expected), pe, LSP_UTF16, &cursor);
        free(want);
        want = reference(expected, strlen(expected), cursor);
        cl = line, cc = lsp_pos_of(expected, strlen(expected), cursor, LSP_UTF16).character;
    }
    char *got = inline_text(&c, "10", uri, cl, cc);
    CHECK(got && !strcmp(got, want), "inline completion equals fim_complete: '%s' vs '%s'", got,
          want);
    CHECK(strlen(want) > 0, "the reference completion is not empty");
    free(got);

    /* regular completion: isIncomplete, label = first line, textEdit inserts it */
    request(&c, "11", "textDocument/completion", uri, cl, cc);
    ok = response(&c, "11", &d, 60000);
    int res = ok ? lsp__jget(&d, 0, "result") : -1, items = lsp__jget(&d, res, "items");
    bool inc = false;
    lsp__jbool(&d, lsp__jget(&d, res, "isIncomplete"), &inc);
    char *nt =
        lsp__jis(&d, items, JSMN_ARRAY) && d.t[items].size
            ? lsp__jstr(&d, lsp__jget(&d, lsp__jget(&d, items + 1, "textEdit"), "newText"), NULL)
            : NULL;
    char *label = nt ? lsp__jstr(&d, lsp__jget(&d, items + 1, "label"), NULL) : NULL;
    CHECK(inc && nt && !strcmp(nt, want), "completion textEdit inserts the same text: %s", c.last);
    CHECK(label && !strncmp(want, label, strlen(label)) && !strchr(label, '\n'),
          "label is the first line");
    free(nt), free(label), free(want);
    if (ok) tlsp_done(&d);

    /* cache reuse: one more character on the cursor line re-evaluates only that line's tokens */
    free(inline_text(&c, "11b", uri, 12, 11));
    insert(&c, uri, 6, 12, 11, "a");
    free(inline_text(&c, "12", uri, 12, 12));
    long evaluated = status_num(&c, "last", "tokensEvaluated"),
         reused = status_num(&c, "last", "tokensReused");
    long prompt = status_num(&c, "last", "promptTokens");
    int32_t *ids;
    size_t n_line;
    model_err me = {{0}};
    model_tokenize(model_get_vocab(ref_model), "        tota", 12, false, false, &ids, &n_line,
                   &me);
    free(ids);
    CHECK(evaluated >= 1 && evaluated <= (long)n_line + 2,
          "a keystroke evaluates %ld tokens (cursor line has %zu)", evaluated, n_line);
    CHECK(reused + evaluated == prompt && reused >= prompt - (long)n_line - 2,
          "the prefix and suffix are reused (%ld of %ld)", reused, prompt);
    /* drafts from the context are counted, and the setting turns them off */
    long drafted = status_num(&c, "drafted", NULL), taken = status_num(&c, "draftAccepted", NULL);
    printf("drafts so far %ld, %ld accepted\n", drafted, taken);
    CHECK(drafted >= taken && taken >= 0, "status counts drafts (%ld, %ld accepted)", drafted,
          taken);
    sendf(&c, "{\"jsonrpc\":\"2.0\",\"method\":\"workspace/didChangeConfiguration\",\"params\":"
              "{\"settings\":{\"fimd\":{\"drafts\":false}}}}");
    insert(&c, uri, 7, 12, 12, "l");
    free(inline_text(&c, "12b", uri, 12, 13));
    CHECK(status_num(&c, "drafted", NULL) == drafted, "drafts: false drafts nothing");

    /* a position inside a surrogate pair clamps to the character's start; past the line end clamps
     * to it */
    got = inline_text(&c, "13", uri, 2, 4);
    CHECK(got != NULL, "position inside a surrogate pair is answered");
    free(got);
    got = inline_text(&c, "14", uri, 12, 500);
    CHECK(got != NULL, "position past the line end is answered");
    free(got);
    got = inline_text(&c, "15", uri, 5000, 3);
    CHECK(got != NULL, "position past the document end is answered");
    free(got);
    CHECK(status_num(&c, "openDocuments", NULL) == 1, "one open document");
    sendf(&c,
          "{\"jsonrpc\":\"2.0\",\"method\":\"textDocument/"
          "didClose\",\"params\":{\"textDocument\":{\"uri\":\"%s\"}}}",
          uri);
    CHECK(status_num(&c, "openDocuments", NULL) == 0, "didClose forgets the document");
    request(&c, "16", "textDocument/inlineCompletion", uri, 1, 0);
    expect_error(&c, "16", -32602, "completion on a closed document");
    sendf(&c, "{\"jsonrpc\":\"2.0\",\"method\":\"workspace/"
              "didChangeConfiguration\",\"params\":{\"settings\":"
              "{\"fimd\":{\"threads\":2}}}}");
    CHECK(wait_ready(&c) && status_num(&c, "threads", NULL) == 2,
          "changing threads at run time applies it (%ld)", status_num(&c, "threads", NULL));
    CHECK(finish(&c) == 0, "exit after shutdown gives status 0");
}

/* Cancellation, supersession and status during a long job, on a slower model. */
static void cancellation(const char *slow_model)
{
    client c;
    spawn(&c, slow_model, check_tmp("lsp-cancel.log"));
    sendf(&c,
          "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"capabilities\":{},"
          "\"initializationOptions\":{\"maxTokens\":4000,\"prefixTokens\":4000}}}");
    jdoc d;
    if (response(&c, "1", &d, 20000)) tlsp_done(&d);
    sendf(&c, "{\"jsonrpc\":\"2.0\",\"method\":\"initialized\",\"params\":{}}");
    CHECK(wait_ready(&c), "slow model loads");
    /* a long document: prefill alone takes a while */
    size_t len = 0;
    char *text = malloc(200000);
    for (int i = 0; len < 24000; i++)
        len += (size_t)sprintf(text + len, "int value_%d = compute(%d, %d);\n", i, i, i * 7);
    len += (size_t)sprintf(text + len, "    ");
    open_doc(&c, "file:///long.c", text, len);
    long last_line = 0;
    for (size_t i = 0; i < len; i++) last_line += text[i] == '\n';
    request(&c, "20", "textDocument/inlineCompletion", "file:///long.c", last_line, 4);
    usleep(50000);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char *state = status_str(&c, "state", -1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    CHECK(!strcmp(state, "ready") && ms < 1000,
          "fimd/status answers at once during a long job (%.1f ms)", ms);
    free(state);
    sendf(&c, "{\"jsonrpc\":\"2.0\",\"method\":\"$/cancelRequest\",\"params\":{\"id\":20}}");
    expect_error(&c, "20", -32800, "$/cancelRequest");
    long generated = status_num(&c, "last", "tokensGenerated");
    char *stop = status_str(&c, "stop", -1);
    CHECK(!strcmp(stop, "cancelled") && generated < 4000,
          "the cancelled job stopped early (%ld tokens, %s)", generated, stop);
    free(stop);
    /* a newer request supersedes the older one; an edit cancels with ContentModified */
    request(&c, "21", "textDocument/inlineCompletion", "file:///long.c", last_line, 4);
    usleep(20000);
    request(&c, "22", "textDocument/inlineCompletion", "file:///long.c", last_line, 4);
    expect_error(&c, "21", -32800, "superseded request");
    usleep(20000);
    insert(&c, "file:///long.c", 2, last_line, 4, "x");
    expect_error(&c, "22", -32801, "request invalidated by an edit");
    CHECK(status_num(&c, "cancelled", NULL) >= 3, "cancellations counted");
    free(text);
    CHECK(finish(&c) == 0, "clean exit after cancellations");
}

static void raw(client *c, const char *s)
{
    send_bytes(c, s, strlen(s));
}

/* A completion that must succeed after each bad input. */
static void still_works(client *c, const char *after)
{
    static int seq = 100;
    char id[16];
    snprintf(id, sizeof id, "%d", ++seq);
    char *got = inline_text(c, id, "file:///ok.c", 1, 4);
    CHECK(got != NULL, "a completion succeeds after %s", after);
    free(got);
}

static void bad_input(const char *model_path)
{
    client c;
    spawn(&c, model_path, check_tmp("lsp-bad.log"));
    sendf(&c, "{\"jsonrpc\":\"2.0\",\"id\":\"early\",\"method\":\"textDocument/"
              "completion\",\"params\":{}}");
    expect_error(&c, "\"early\"", -32002, "request before initialize");
    sendf(&c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
              "\"capabilities\":{\"general\":"
              "{\"positionEncodings\":[\"utf-32\",\"utf-16\"]}}}}");
    jdoc d;
    bool ok = response(&c, "1", &d, 20000);
    CHECK(ok &&
              lsp__jstr_eq(&d,
                           lsp__jget(&d, lsp__jget(&d, lsp__jget(&d, 0, "result"), "capabilities"),
                                     "positionEncoding"),
                           "utf-32"),
          "utf-32 chosen when offered");
    if (ok) tlsp_done(&d);
    sendf(&c, "{\"jsonrpc\":\"2.0\",\"method\":\"initialized\",\"params\":{}}");
    CHECK(wait_ready(&c), "model loads");
    const char *ok_text = "int f(void)\n{\n    \n}\n";
    open_doc(&c, "file:///ok.c", ok_text, strlen(ok_text));
    still_works(&c, "opening");

    sendf(&c, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"initialize\",\"params\":{}}");
    expect_error(&c, "2", -32600, "second initialize");
    still_works(&c, "a second initialize");
    raw(&c, "Content-Length: 13\r\n\r\n{\"jsonrpc\": 2");
    expect_error(&c, "null", -32700, "invalid JSON");
    still_works(&c, "invalid JSON");
    raw(&c, "Content-Type: application/json\r\n\r\n{\"jsonrpc\":\"2.0\"}");
    expect_error(&c, "null", -32700, "missing Content-Length");
    still_works(&c, "a missing Content-Length");
    raw(&c, "Content-Length: twelve\r\n\r\n");
    expect_error(&c, "null", -32700, "non-numeric Content-Length");
    still_works(&c, "a non-numeric Content-Length");
    raw(&c, "Content-Length: -5\r\n\r\n");
    expect_error(&c, "null", -32700, "negative Content-Length");
    still_works(&c, "a negative Content-Length");
    raw(&c, "Content-Length: 99999999999999\r\n\r\n");
    expect_error(&c, "null", -32700, "absurd Content-Length");
    still_works(&c, "an absurd Content-Length");
    /* over the 64 MiB cap: rejected and skipped as it streams, never buffered */
    size_t big = (64u << 20) + 1000;
    char hdr[64];
    snprintf(hdr, sizeof hdr, "Content-Length: %zu\r\n\r\n", big);
    raw(&c, hdr);
    char *junk = malloc(1 << 20);
    memset(junk, 'x', 1 << 20);
    for (size_t sent = 0; sent < big; sent += 1 << 20)
        send_bytes(&c, junk, big - sent < (1u << 20) ? big - sent : 1 << 20);
    free(junk);
    expect_error(&c, "null", -32600, "message over the cap");
    still_works(&c, "a message over the cap");
    sendf(&c, "[1,2,3]");
    expect_error(&c, "null", -32600, "array message");
    sendf(&c, "\"just a string\"");
    expect_error(&c, "null", -32600, "string message");
    sendf(&c, "42");
    expect_error(&c, "null", -32600, "number message");
    still_works(&c, "non-object messages");
    sendf(&c, "{\"jsonrpc\":\"2.0\",\"id\":\"esc\",\"method\":\"fimd\\/status\",\"params\":null}");
    ok = response(&c, "\"esc\"", &d, 20000);
    CHECK(ok && lsp__jget(&d, 0, "result") >= 0,
          "a method written with \\/ (as Neovim sends it) and null params");
    if (ok) tlsp_done(&d);
    sendf(&c, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"no/such/method\",\"params\":{}}");
    expect_error(&c, "3", -32601, "unknown method");
    sendf(&c, "{\"jsonrpc\":\"2.0\",\"method\":\"no/such/notification\",\"params\":{}}");
    still_works(&c, "unknown methods");
    sendf(&c, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"textDocument/"
              "inlineCompletion\",\"params\":{\"textDocument\":"
              "{\"uri\":\"file:///ok.c\"},\"position\":{\"line\":-1,\"character\":2}}}");
    expect_error(&c, "4", -32602, "negative line");
    sendf(&c, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"textDocument/"
              "inlineCompletion\",\"params\":{\"textDocument\":"
              "{\"uri\":\"file:///ok.c\"},\"position\":{\"line\":\"one\",\"character\":2}}}");
    expect_error(&c, "5", -32602, "non-numeric position");
    sendf(&c, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"textDocument/"
              "inlineCompletion\",\"params\":\"nope\"}");
    expect_error(&c, "6", -32602, "params not an object");
    sendf(&c, "{\"jsonrpc\":\"2.0\",\"id\":[1],\"method\":\"fimd/status\"}");
    expect_error(&c, "null", -32600, "id of the wrong type");
    still_works(&c, "invalid params");
    insert(&c, "file:///never-opened.c", 2, 0, 0, "x");
    still_works(&c, "an edit to an unknown document");
    insert(&c, "file:///ok.c", 2, 99, 99, "tail");
    still_works(&c, "an edit past the end of the document");
    /* NUL and invalid UTF-8 bytes in a document */
    /* raw invalid bytes inside the JSON string (jsmn passes them through) */
    sendf(&c, "{\"jsonrpc\":\"2.0\",\"method\":\"textDocument/"
              "didOpen\",\"params\":{\"textDocument\":{\"uri\":\"file:///w.c\","
              "\"languageId\":\"c\",\"version\":1,\"text\":\"int a;\\n\xff\xfe bad \xc3 bytes\\n   "
              " x = 1;\\n\"}}}");
    sendf(&c, "{\"jsonrpc\":\"2.0\",\"method\":\"textDocument/"
              "didOpen\",\"params\":{\"textDocument\":{\"uri\":\"file:///n.c\","
              "\"languageId\":\"c\",\"version\":1,\"text\":\"int b; /* \\u0000 nul */\\n\"}}}");
    char *g1 = inline_text(&c, "30", "file:///w.c", 2, 8),
         *g2 = inline_text(&c, "31", "file:///n.c", 0, 12);
    CHECK(g1 && g2, "documents with invalid UTF-8 and NUL bytes are completed");
    free(g1), free(g2);
    still_works(&c, "invalid UTF-8 and NUL bytes");
    /* a 10 MB document */
    size_t n = 10u << 20;
    char *huge = malloc(n + 1);
    for (size_t i = 0; i < n; i++) huge[i] = i % 64 == 63 ? '\n' : (char)('a' + i % 26);
    huge[n] = 0;
    open_doc(&c, "file:///huge.c", huge, n);
    char *gh = inline_text(&c, "32", "file:///huge.c", 80000, 10);
    CHECK(gh != NULL, "a 10 MB document is completed");
    free(gh);
    free(huge);
    still_works(&c, "a 10 MB document");
    CHECK(finish(&c) == 0, "clean exit");

    /* exit without shutdown: status 1 */
    spawn(&c, model_path, check_tmp("lsp-exit.log"));
    sendf(&c, "{\"jsonrpc\":\"2.0\",\"method\":\"exit\"}");
    int status = -1;
    for (int i = 0; i < 500 && waitpid(c.pid, &status, WNOHANG) == 0; i++) usleep(10000);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 1, "exit without shutdown gives status 1");
    close(c.to), close(c.from);
    free(c.buf);
}

static void positions(void)
{
    const char *t = "a😀b\r\nxy\n";
    size_t off;
    CHECK(lsp_offset_of(t, strlen(t), (lsp_pos){0, 3}, LSP_UTF16, &off) && off == 5,
          "utf-16: after the emoji");
    CHECK(!lsp_offset_of(t, strlen(t), (lsp_pos){0, 2}, LSP_UTF16, &off) && off == 1,
          "utf-16: inside the pair -> start");
    CHECK(lsp_offset_of(t, strlen(t), (lsp_pos){0, 2}, LSP_UTF32, &off) && off == 5,
          "utf-32: code points");
    CHECK(lsp_offset_of(t, strlen(t), (lsp_pos){0, 5}, LSP_UTF8, &off) && off == 5, "utf-8: bytes");
    CHECK(!lsp_offset_of(t, strlen(t), (lsp_pos){0, 40}, LSP_UTF16, &off) && off == 6,
          "past the line end: before \\r\\n");
    CHECK(!lsp_offset_of(t, strlen(t), (lsp_pos){7, 0}, LSP_UTF16, &off) && off == strlen(t),
          "past the end: end");
    lsp_pos p = lsp_pos_of(t, strlen(t), 9, LSP_UTF16);
    CHECK(p.line == 1 && p.character == 1, "offset -> position");
}

/* Every saved fuzzing input (seeds and past crashes) replays cleanly through framing and dispatch.
 */
static void fuzz_corpus(void)
{
    DIR *dir = opendir("tests/fuzz/seeds/lsp");
    int out = open("/dev/null", O_WRONLY), n = 0;
    for (struct dirent *e; dir && (e = readdir(dir));) {
        if (e->d_name[0] == '.') continue;
        char path[512];
        snprintf(path, sizeof path, "tests/fuzz/seeds/lsp/%s", e->d_name);
        size_t len;
        char *data = check_read(path, &len);
        CHECK(data && lsp__fuzz_feed(data, len, out) == 0, "fuzz input %s replays", e->d_name);
        free(data);
        n++;
    }
    CHECK(n >= 2, "fuzz corpus found (%d inputs)", n);
    if (dir) closedir(dir);
    close(out);
    /* the fuzzer drives the server's own frame loop: an oversized message gets the same -32600 */
    char big[128], answer[4096] = "";
    int len = snprintf(big, sizeof big, "Content-Length: %d\r\n\r\n{}", 1 << 20);
    FILE *f = tmpfile();
    CHECK(f && lsp__fuzz_feed(big, (size_t)len, fileno(f)) == 0,
          "oversized message through the fuzz entry");
    if (f) {
        rewind(f);
        size_t got = fread(answer, 1, sizeof answer - 1, f);
        answer[got] = 0;
        fclose(f);
    }
    CHECK(strstr(answer, "-32600") != NULL,
          "fuzz entry answers an oversized message -32600 as the server does: %s", answer);
}

/* A server on model_path, initialized, its model loaded (a check). */
static void start_ready(client *c, const char *model_path, const char *log)
{
    spawn(c, model_path, check_tmp(log));
    sendf(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"processId\":"
             "null,\"capabilities\":{}}}");
    jdoc d;
    if (response(c, "1", &d, 20000)) tlsp_done(&d);
    sendf(c, "{\"jsonrpc\":\"2.0\",\"method\":\"initialized\",\"params\":{}}");
    CHECK(wait_ready(c), "model loads");
}

/* Two open documents: the server's completion in one is fim_complete on a context that holds the
 * other's definition of the function called at the cursor. */
static void cross_file(const char *model_path)
{
    client c;
    start_ready(&c, model_path, "lsp-cross.log");
    const char *util =
        "/* Adds two numbers. */\nint add_numbers(int a, int b)\n{\n    return a + b;\n}\n";
    const char *main_c = "#include \"util.h\"\n\nint main(void)\n{\n    int t = add_numbers(1, "
                         "2);\n    \n    return t;\n}\n";
    const char *u1 = "file:///tmp/proj/util.c", *u2 = "file:///tmp/proj/main.c";
    open_doc(&c, u1, util, strlen(util));
    open_doc(&c, u2, main_c, strlen(main_c));
    char *got = inline_text(&c, "2", u2, 5, 4);

    fim_doc *a = fim_doc_new(u1, "c", util, strlen(util)),
            *b = fim_doc_new(u2, "c", main_c, strlen(main_c));
    fim_doc *open[] = {a, b};
    size_t cursor;
    lsp_offset_of(main_c, strlen(main_c), (lsp_pos){5, 4}, LSP_UTF16, &cursor);
    fim_context *ctx = fim_context_new(b, cursor, open, 2);
    fim_config cfg;
    fim_config_default(&cfg);
    int32_t *ids;
    size_t n;
    fim_err err = {{0}};
    fim_prompt_ids(model_get_vocab(ref_model), ctx, &cfg, &ids, &n, &err);
    char *prompt = calloc(n * 64 + 1, 1);
    for (size_t i = 0, k = 0; i < n; i++)
        k += (size_t)model_token_bytes(model_get_vocab(ref_model), ids[i], prompt + k, 64);
    CHECK(strstr(prompt, "int add_numbers(int a, int b)") != NULL,
          "the other document's definition is in the prompt");
    fim_request r = {.doc = "ref-cross", .ctx = ctx};
    fim_stats st;
    char *want = NULL;
    fim_engine_close_doc(ref_engine, "ref-cross");
    fim_complete(ref_engine, &r, &cfg, NULL, &want, &st, &err);
    CHECK(got && want && !strcmp(got, want),
          "with two documents open, the server completes as fim_complete does: '%s' vs '%s'",
          got ? got : "(none)", want ? want : "(none)");
    free(got), free(want), free(ids), free(prompt);
    fim_context_free(ctx);
    fim_doc_free(a), fim_doc_free(b);
    finish(&c);
}

/* ---- type-through, fimd.accept and the prefetched branch ---- */

/* An inline completion's text and its command's arguments (raw JSON), both malloc'd. */
static char *inline_args(client *c, const char *id, const char *uri, lsp_pos p, char **args)
{
    char *text = inline_text(c, id, uri, p.line, p.character);
    *args = text && *text ? lsp_json_path(c->last, "result.items.0.command.arguments") : NULL;
    return text;
}

/* text with s inserted at byte `at` (malloc'd). */
static char *with_insert(const char *text, size_t at, const char *s)
{
    size_t len = strlen(text), n = strlen(s);
    char *t = malloc(len + n + 1);
    memcpy(t, text, at), memcpy(t + at, s, n), memcpy(t + at + n, text + at, len - at + 1);
    return t;
}

static void accept_cmd(client *c, const char *id, const char *args, long want_error)
{
    sendf(c,
          "{\"jsonrpc\":\"2.0\",\"id\":%s,\"method\":\"workspace/executeCommand\",\"params\":{"
          "\"command\":\"fimd.accept\"%s%s}}",
          id, args ? ",\"arguments\":" : "", args ? args : "");
    if (want_error) {
        expect_error(c, id, want_error, args ? args : "fimd.accept without arguments");
        return;
    }
    jdoc d;
    bool ok = response(c, id, &d, 20000);
    CHECK(ok && lsp__jget(&d, 0, "result") >= 0, "fimd.accept answered: %s", c->last);
    if (ok) tlsp_done(&d);
}

/* The end of a line of SAMPLE where the reference model suggests at least 2 ASCII bytes. */
static size_t ghost_cursor(void)
{
    size_t len = strlen(SAMPLE);
    for (size_t at = 0; at < len; at++) {
        if (SAMPLE[at] != '\n') continue;
        char *g = reference(SAMPLE, len, at);
        bool ok = strlen(g) >= 2 && (unsigned char)g[0] < 0x80 && (unsigned char)g[1] < 0x80;
        free(g);
        if (ok) return at;
    }
    return 0;
}

static void accept(const char *model_path)
{
    client c;
    start_ready(&c, model_path, "lsp-accept.log");
    const char *uri = "file:///tmp/accept.c";
    open_doc(&c, uri, SAMPLE, strlen(SAMPLE));
    size_t at = ghost_cursor();
    lsp_pos p = lsp_pos_of(SAMPLE, strlen(SAMPLE), at, LSP_UTF16);
    char *args, *g = inline_args(&c, "10", uri, p, &args);
    if (!CHECK(g && strlen(g) >= 2 && args, "a ghost text with its command: %s", c.last)) goto out;
    free(args);
    /* type its first character: the rest, from type-through, with new arguments to accept it */
    char first[2] = {g[0], 0};
    insert(&c, uri, 2, p.line, p.character, first);
    char *rest = inline_args(&c, "11", uri, (lsp_pos){p.line, p.character + 1}, &args);
    CHECK(rest && !strcmp(rest, g + 1) && status_num(&c, "type_through_hits", NULL) == 1,
          "typing into the ghost text answers the rest from type-through: [%s] of [%s]",
          rest ? rest : "(none)", g);
    /* the user pauses (the prefetch of the accepted branch finishes), then accepts the rest: the
     * command first (as nvim and Emacs send it), then the edit */
    for (int i = 0; i < 1000 && status_num(&c, "prefetching", NULL) != 0; i++) usleep(10000);
    accept_cmd(&c, "12", args, 0);
    char *branch = with_insert(SAMPLE, at, g);
    size_t end = at + strlen(g);
    lsp_pos pe = lsp_pos_of(branch, strlen(branch), end, LSP_UTF16);
    insert(&c, uri, 3, p.line, p.character + 1, g + 1);
    char *next = inline_text(&c, "13", uri, pe.line, pe.character),
         *want = reference(branch, strlen(branch), end);
    CHECK(next && !strcmp(next, want) && status_num(&c, "prefetch_hits", NULL) == 1,
          "after the accept the prefetched branch answers (%ld hits), the same as a fresh "
          "completion: [%s] vs [%s]",
          status_num(&c, "prefetch_hits", NULL), next ? next : "(none)", want);
    CHECK(status_num(&c, "accepted", NULL) == 1, "the accept is counted");
    /* an edit that leaves the new branch cancels its prefetch: the answer is fresh, not stale */
    char other[2] = {next && next[0] == 'x' ? 'y' : 'x', 0};
    insert(&c, uri, 4, pe.line, pe.character, other);
    char *edited = with_insert(branch, end, other), *got;
    free(want);
    want = reference(edited, strlen(edited), end + 1);
    got = inline_text(&c, "14", uri, pe.line, pe.character + 1);
    char *args2 = got && *got ? lsp_json_path(c.last, "result.items.0.command.arguments") : NULL;
    CHECK(got && !strcmp(got, want) && status_num(&c, "prefetch_hits", NULL) == 1,
          "after a diverging edit: a fresh completion [%s] = [%s]", got ? got : "(none)", want);
    /* accepted the other way round, as VS Code does: the edit, then the command */
    if (args2) {
        for (int i = 0; i < 1000 && status_num(&c, "prefetching", NULL) != 0; i++) usleep(10000);
        insert(&c, uri, 5, pe.line, pe.character + 1, got);
        accept_cmd(&c, "15", args2, 0);
        char *branch2 = with_insert(edited, end + 1, got);
        size_t end2 = end + 1 + strlen(got);
        lsp_pos p2 = lsp_pos_of(branch2, strlen(branch2), end2, LSP_UTF16);
        char *next2 = inline_text(&c, "16", uri, p2.line, p2.character),
             *want2 = reference(branch2, strlen(branch2), end2);
        CHECK(next2 && !strcmp(next2, want2) && status_num(&c, "prefetch_hits", NULL) == 2,
              "edit then accept: the prefetched branch answers too: [%s] vs [%s]",
              next2 ? next2 : "(none)", want2);
        /* switched off by settings: typing into a ghost text runs the model */
        sendf(&c,
              "{\"jsonrpc\":\"2.0\",\"method\":\"workspace/didChangeConfiguration\","
              "\"params\":{\"settings\":{\"fimd\":{\"typeThrough\":false,\"prefetch\":false}}}}");
        if (next2 && *next2 && (unsigned char)next2[0] < 0x80) {
            char typed[2] = {next2[0], 0};
            insert(&c, uri, 6, p2.line, p2.character, typed);
            free(inline_text(&c, "17", uri, p2.line, p2.character + 1));
            CHECK(status_num(&c, "type_through_hits", NULL) == 1 &&
                      status_num(&c, "last", "tokensGenerated") > 0,
                  "typeThrough false: the model answers");
        }
        free(branch2), free(next2), free(want2), free(args2);
    }
    free(got), free(want), free(edited), free(branch), free(next), free(rest), free(args);
    /* bad arguments get a clear error, and the server goes on */
    accept_cmd(&c, "20", NULL, -32602);
    accept_cmd(&c, "21", "[1]", -32602);
    accept_cmd(&c, "22", "[{\"uri\":\"file:///nope.c\",\"line\":0,\"character\":0,\"text\":\"x\"}]",
               -32602);
    accept_cmd(&c, "23", "[{\"uri\":\"file:///tmp/accept.c\",\"line\":-1,\"character\":0}]",
               -32602);
    char *after = inline_text(&c, "24", uri, 0, 0);
    CHECK(after != NULL, "a completion succeeds after bad fimd.accept arguments");
    free(after);
out:
    free(g);
    CHECK(finish(&c) == 0, "exit after shutdown gives status 0");
}

int main(int argc, char **argv)
{
    static const char *const cases[] = {"positions", "fuzz_corpus",  "session", "cross_file",
                                        "bad_input", "cancellation", "accept"};
    if (!check_args(argc, argv, cases, CHECK_CASES(cases))) return 2;
    if (check_want("positions")) positions();
    if (check_want("fuzz_corpus")) fuzz_corpus();
    char *m = make_model("lsp-model.gguf", 0, 0, 0), *slow = NULL;
    model_err me = {{0}};
    fim_err fe = {{0}};
    ref_model = model_load(m, &me);
    ref_engine = ref_model ? fim__engine_with_model(ref_model, &fe) : NULL;
    if (CHECK(ref_engine != NULL, "reference engine: %s %s", me.msg, fe.msg)) {
        if (check_want("session")) session(m);
        if (check_want("cross_file")) cross_file(m);
        if (check_want("bad_input")) bad_input(m);
        if (check_want("accept")) accept(m);
        if (check_want("cancellation")) {
            slow = make_model("lsp-slow.gguf", 512, 4, 2048);
            cancellation(slow);
        }
    }
    free(m);
    free(slow);
    fim_engine_free(ref_engine);
    model_free(ref_model);
    return check_done();
}
