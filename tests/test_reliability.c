/* tests/test_reliability.c — issue 14: fimd under load and under faults, driven over stdio as an
 * editor would. A soak (completions with edits, cancels, supersessions, closes and reopens: every
 * request answered, RSS flat), caches under memory pressure, and disk and input faults. */
#define _GNU_SOURCE
#include "lsp/lsp.h"
#include "lsp/lsp_internal.h"
#include "model/model.h"
#include "tests/check.h"
#include "tests/tlsp.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *BUNDLED = "weights/fimd-tiny-code.gguf";

/* ---- a client that never blocks on a full pipe: it reads while it writes ---- */

typedef struct srv {
    pid_t pid;
    int to, from;
    char *buf;
    size_t len, cap;
    char last[2048]; /* the start of the last message read, for failure messages */
} srv;

static const char *fimd_bin(void)
{
    const char *b = getenv("FIMD_BIN");
    return b && *b ? b : "build/fimd";
}

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* The server with --model and --log; its stderr goes to err_path. env: "NAME=VALUE" or NULL. */
static void spawn(srv *c, const char *model, const char *name, const char *env)
{
    memset(c, 0, sizeof *c);
    int in[2], out[2];
    if (pipe(in) || pipe(out)) abort();
    char log[4096], err[4096];
    snprintf(log, sizeof log, "%s", check_tmp(name));
    snprintf(err, sizeof err, "%s.err", log);
    strcat(log, ".log");
    c->pid = fork();
    if (c->pid == 0) {
        int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(in[0], 0), dup2(out[1], 1);
        if (e >= 0) dup2(e, 2);
        close(in[0]), close(in[1]), close(out[0]), close(out[1]);
        if (env) putenv((char *)env);
        execl(fimd_bin(), "fimd", "--model", model, "--log", log, (char *)NULL);
        _exit(127);
    }
    close(in[0]), close(out[1]);
    c->to = in[1];
    c->from = out[0];
    fcntl(c->to, F_SETFL, O_NONBLOCK);
    signal(SIGPIPE, SIG_IGN);
}

/* Read what the server has written (waiting up to timeout_ms); false at end of output or timeout.
 */
static bool pump(srv *c, int timeout_ms)
{
    struct pollfd p = {c->from, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) <= 0) return false;
    if (c->len + 65536 > c->cap) {
        c->cap = (c->cap ? c->cap : 65536) * 2;
        c->buf = realloc(c->buf, c->cap);
    }
    ssize_t r = read(c->from, c->buf + c->len, 65536);
    if (r <= 0) return false;
    c->len += (size_t)r;
    return true;
}

static bool send_bytes(srv *c, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(c->to, p, n);
        if (w > 0) {
            p += w, n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno != EAGAIN && errno != EINTR) return false;
        /* the pipe is full: take the server's answers so that it can go on reading */
        struct pollfd fds[2] = {{c->to, POLLOUT, 0}, {c->from, POLLIN, 0}};
        if (poll(fds, 2, 30000) <= 0) return false;
        if (fds[1].revents & (POLLIN | POLLHUP) && !pump(c, 0) && (fds[1].revents & POLLHUP))
            return false;
    }
    return true;
}

static bool send_msg(srv *c, const char *json)
{
    char hdr[64];
    int h = snprintf(hdr, sizeof hdr, "Content-Length: %zu\r\n\r\n", strlen(json));
    return send_bytes(c, hdr, (size_t)h) && send_bytes(c, json, strlen(json));
}

static bool sendf(srv *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool sendf(srv *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s;
    if (vasprintf(&s, fmt, ap) < 0) abort();
    va_end(ap);
    bool ok = send_msg(c, s);
    free(s);
    return ok;
}

/* A complete message from the buffer, parsed (d->s is a malloc'd copy); false when none is there.
 */
static bool take_msg(srv *c, jdoc *d)
{
    char *end = c->len ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL;
    if (!end) return false;
    size_t hlen = (size_t)(end - c->buf) + 4;
    size_t n = (size_t)strtoul(strcasestr(c->buf, "Content-Length:") + 15, NULL, 10);
    if (c->len < hlen + n) return false;
    char *body = malloc(n + 1);
    memcpy(body, c->buf + hlen, n);
    body[n] = 0;
    memmove(c->buf, c->buf + hlen + n, c->len - hlen - n);
    c->len -= hlen + n;
    snprintf(c->last, sizeof c->last, "%s", body);
    if (lsp__json_parse(d, body, n)) {
        free(body);
        lsp__json_free(d);
        return false;
    }
    return true;
}

static bool recv_msg(srv *c, jdoc *d, int timeout_ms)
{
    double until = now_ms() + timeout_ms;
    while (!take_msg(c, d)) {
        int left = (int)(until - now_ms());
        if (!pump(c, left > 0 ? left : 0)) return false;
    }
    return true;
}

/* Wait for the response with this raw id (skipping everything else). */
static bool response(srv *c, const char *id, jdoc *d, int timeout_ms)
{
    double until = now_ms() + timeout_ms;
    for (int left = timeout_ms; left > 0; left = (int)(until - now_ms())) {
        if (!recv_msg(c, d, left)) return false;
        if (tlsp_answers(d, id)) return true;
        tlsp_done(d);
    }
    return false;
}

/* initialize with these initializationOptions, then initialized. */
static bool start(srv *c, const char *options)
{
    sendf(c,
          "{\"jsonrpc\":\"2.0\",\"id\":\"init\",\"method\":\"initialize\",\"params\":{"
          "\"processId\":null,\"capabilities\":{},\"initializationOptions\":%s}}",
          options);
    jdoc d;
    bool ok = response(c, "\"init\"", &d, 20000);
    if (ok) tlsp_done(&d);
    sendf(c, "{\"jsonrpc\":\"2.0\",\"method\":\"initialized\",\"params\":{}}");
    return ok;
}

/* fimd/status as a parsed message (the caller frees it with tlsp_done); false without an answer. */
static bool status(srv *c, jdoc *d)
{
    sendf(c, "{\"jsonrpc\":\"2.0\",\"id\":\"status\",\"method\":\"fimd/status\"}");
    return response(c, "\"status\"", d, 20000);
}

/* A string or number of the status, formatted (malloc'd; "" when absent). */
static char *status_field(srv *c, const char *key)
{
    jdoc d;
    char *out = NULL;
    if (status(c, &d)) {
        int i = lsp__jget(&d, lsp__jget(&d, 0, "result"), key);
        out = lsp__jstr(&d, i, NULL);
        if (!out && i >= 0) out = strndup(d.s + d.t[i].start, (size_t)(d.t[i].end - d.t[i].start));
        tlsp_done(&d);
    }
    return out ? out : strdup("");
}

static long status_num(srv *c, const char *key)
{
    char *s = status_field(c, key);
    long v = *s ? strtol(s, NULL, 10) : -1;
    free(s);
    return v;
}

/* Wait until the model state is no longer "loading"; returns the state (malloc'd). */
static char *wait_loaded(srv *c)
{
    for (int i = 0; i < 1500; i++) {
        char *st = status_field(c, "state");
        if (strcmp(st, "loading") && strcmp(st, "none")) return st;
        free(st);
        usleep(20000);
    }
    return strdup("timeout");
}

static bool wait_ready(srv *c)
{
    char *st = wait_loaded(c);
    bool ok = !strcmp(st, "ready");
    free(st);
    return ok;
}

static void open_doc(srv *c, const char *uri, const char *text, size_t len)
{
    jw w = {0};
    lsp__jw_str(&w, text, len);
    jw m = {0};
    lsp__jw_fmt(&m,
                "{\"jsonrpc\":\"2.0\",\"method\":\"textDocument/didOpen\",\"params\":{"
                "\"textDocument\":{\"uri\":\"%s\",\"languageId\":\"c\",\"version\":1,\"text\":",
                uri);
    lsp__jw_raw(&m, w.p, w.n);
    lsp__jw_lit(&m, "}}}");
    lsp__jw_lit(&m, "\0");
    send_msg(c, m.p);
    lsp__jw_free(&w), lsp__jw_free(&m);
}

static void close_doc(srv *c, const char *uri)
{
    sendf(c,
          "{\"jsonrpc\":\"2.0\",\"method\":\"textDocument/didClose\",\"params\":{"
          "\"textDocument\":{\"uri\":\"%s\"}}}",
          uri);
}

/* Replace [from, to) (positions in UTF-16) with text. */
static void edit(srv *c, const char *uri, int version, lsp_pos a, lsp_pos b, const char *text)
{
    jw t = {0};
    lsp__jw_str(&t, text, strlen(text));
    sendf(c,
          "{\"jsonrpc\":\"2.0\",\"method\":\"textDocument/didChange\",\"params\":{"
          "\"textDocument\":{\"uri\":\"%s\",\"version\":%d},\"contentChanges\":[{\"range\":{"
          "\"start\":{\"line\":%ld,\"character\":%ld},\"end\":{\"line\":%ld,\"character\":%ld}},"
          "\"text\":%.*s}]}}",
          uri, version, a.line, a.character, b.line, b.character, (int)t.n, t.p);
    lsp__jw_free(&t);
}

static void request(srv *c, const char *id, const char *uri, lsp_pos p)
{
    sendf(c,
          "{\"jsonrpc\":\"2.0\",\"id\":%s,\"method\":\"textDocument/inlineCompletion\",\"params\":"
          "{\"textDocument\":{\"uri\":\"%s\"},\"position\":{\"line\":%ld,\"character\":%ld},"
          "\"context\":{\"triggerKind\":2}}}",
          id, uri, p.line, p.character);
}

/* The inline completion's text (malloc'd; "" for no items); NULL with *code set on an error (0 when
 * there was no answer). */
static char *complete(srv *c, const char *id, const char *uri, lsp_pos p, long *code)
{
    request(c, id, uri, p);
    jdoc d;
    *code = 0;
    if (!response(c, id, &d, 120000)) return NULL;
    int items = lsp__jget(&d, lsp__jget(&d, 0, "result"), "items");
    char *out = NULL;
    if (lsp__jis(&d, items, JSMN_ARRAY))
        out = d.t[items].size ? lsp__jstr(&d, lsp__jget(&d, items + 1, "insertText"), NULL)
                              : strdup("");
    else
        *code = tlsp_error_code(&d);
    tlsp_done(&d);
    return out;
}

/* shutdown and exit: the exit status (-1 when it had to be killed or died of a signal). */
static int finish(srv *c)
{
    sendf(c, "{\"jsonrpc\":\"2.0\",\"id\":\"bye\",\"method\":\"shutdown\"}");
    jdoc d;
    if (response(c, "\"bye\"", &d, 60000)) tlsp_done(&d);
    sendf(c, "{\"jsonrpc\":\"2.0\",\"method\":\"exit\"}");
    int status = -1;
    pid_t done = 0;
    for (int i = 0; i < 3000 && (done = waitpid(c->pid, &status, WNOHANG)) == 0; i++) usleep(10000);
    if (done == 0) {
        kill(c->pid, SIGKILL);
        waitpid(c->pid, &status, 0);
        status = -1;
    }
    close(c->to), close(c->from);
    free(c->buf);
    return status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The server's stderr (malloc'd, "" when empty). */
static char *server_stderr(const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s.err", check_tmp(name));
    char *s = check_read(path, NULL);
    return s ? s : strdup("");
}

static long rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1) break;
    if (f) fclose(f);
    return kb;
}

static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t k = 0; k < n; k++) h = (h ^ (uint8_t)s[k]) * 1099511628211ULL;
    return h;
}

/* The fnv1a the status reports for uri (0 when the document is not listed). */
static uint64_t status_hash(srv *c, const char *uri, size_t *bytes)
{
    jdoc d;
    uint64_t h = 0;
    if (!status(c, &d)) return 0;
    int docs = lsp__jget(&d, lsp__jget(&d, 0, "result"), "documents");
    for (int k = 0, e = docs + 1; docs >= 0 && k < d.t[docs].size; k++, e = lsp__jskip(&d, e))
        if (lsp__jstr_eq(&d, lsp__jget(&d, e, "uri"), uri)) {
            char *s = lsp__jstr(&d, lsp__jget(&d, e, "fnv1a"), NULL);
            long b = 0;
            lsp__jint(&d, lsp__jget(&d, e, "bytes"), &b);
            h = s ? strtoull(s, NULL, 16) : 0;
            *bytes = (size_t)b;
            free(s);
        }
    tlsp_done(&d);
    return h;
}

/* A C file of about `size` bytes, different for each k, with a blank line in main's loop body where
 * the tests type; *line is that line. */
static char *c_source(int k, size_t size, long *line)
{
    size_t cap = size + 4096, n = 0;
    char *s = malloc(cap);
    n += (size_t)snprintf(s + n, cap - n, "/* module %d */\n#include <stdio.h>\n\n", k);
    long lines = 3;
    for (int i = 0; n + 600 < size; i++) {
        n += (size_t)snprintf(s + n, cap - n,
                              "static int step_%d_%d(int value, int count)\n{\n"
                              "    int acc = value * %d;\n"
                              "    for (int j = 0; j < count; j++) acc += j %% %d;\n"
                              "    return acc;\n}\n\n",
                              k, i, i + 1, k + 2);
        lines += 7;
    }
    n += (size_t)snprintf(s + n, cap - n,
                          "int main(void)\n{\n    int total = 0;\n    for (int i = 0; i < 10; "
                          "i++) {\n        \n    }\n    printf(\"%%d\\n\", total);\n"
                          "    return 0;\n}\n");
    *line = lines + 4;
    return s;
}

/* ---- the soak ---- */

enum { SOAK_DOCS = 8, WINDOW = 8 };

typedef struct soak_doc {
    char uri[64];
    char *base; /* the text as opened */
    char *text; /* the client's copy */
    size_t cap; /* of text */
    long line;  /* where the typing happens, after 8 spaces */
    int typed;  /* characters of `word` typed so far */
    char word[32];
    int version;
} soak_doc;

typedef struct soak_counts {
    long sent, results, cancelled, modified, other, dup, outstanding;
    char *state; /* per id: 0 unsent, 1 waiting, 2 answered */
} soak_counts;

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static unsigned rnd(unsigned n)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (unsigned)(rng % n);
}

/* Offset of the typing position in the client's copy. */
static size_t typing_offset(const soak_doc *d)
{
    size_t off = 0;
    for (long l = 0; l < d->line; l++) off = (size_t)(strchr(d->text + off, '\n') - d->text) + 1;
    return off + 8 + (size_t)d->typed;
}

static void keystroke(srv *c, soak_doc *d)
{
    size_t at = typing_offset(d), len = strlen(d->text);
    lsp_pos p = {d->line, 8 + d->typed};
    if (d->typed < (int)strlen(d->word) && (d->typed == 0 || rnd(4))) {
        char ch[2] = {d->word[d->typed], 0};
        edit(c, d->uri, ++d->version, p, p, ch);
        memmove(d->text + at + 1, d->text + at, len - at + 1);
        d->text[at] = ch[0];
        d->typed++;
    } else {
        lsp_pos a = {d->line, 8 + d->typed - 1};
        edit(c, d->uri, ++d->version, a, p, "");
        memmove(d->text + at - 1, d->text + at, len - at + 1);
        d->typed--;
    }
}

/* Take every answer the server has written (waiting up to timeout_ms for the first). */
static void drain(srv *c, soak_counts *k, int timeout_ms)
{
    jdoc d;
    bool first = true;
    while (recv_msg(c, &d, first ? timeout_ms : 0)) {
        first = false;
        int i = lsp__jget(&d, 0, "id");
        long id = -1;
        if (i >= 0 && lsp__jget(&d, 0, "method") < 0 && lsp__jint(&d, i, &id) && id > 0 &&
            id <= k->sent) {
            if (k->state[id] != 1) {
                k->dup++;
            } else {
                k->state[id] = 2;
                k->outstanding--;
                long code = lsp__jget(&d, 0, "result") >= 0 ? 0 : tlsp_error_code(&d);
                if (code == 0)
                    k->results++;
                else if (code == -32800)
                    k->cancelled++;
                else if (code == -32801)
                    k->modified++;
                else if (k->other++ < 5)
                    printf("unexpected answer: %s\n", c->last);
            }
        }
        tlsp_done(&d);
    }
}

static long soak_request(srv *c, soak_counts *k, const soak_doc *d)
{
    long id = ++k->sent;
    char ids[32];
    snprintf(ids, sizeof ids, "%ld", id);
    k->state[id] = 1;
    k->outstanding++;
    request(c, ids, d->uri, (lsp_pos){d->line, 8 + d->typed});
    return id;
}

static void soak(void)
{
    const char *e = getenv("FIMD_SOAK_REQUESTS"), *model = getenv("FIMD_SOAK_MODEL");
    long n = e && *e ? strtol(e, NULL, 10) : 1000;
    if (!model || !*model) model = BUNDLED;
    if (n < 100) n = 100;
    printf("soak: %ld requests over %d documents, model %s\n", n, SOAK_DOCS, model);
    srv c;
    spawn(&c, model, "soak", NULL);
    CHECK(start(&c, "{\"maxTokens\":16,\"threads\":1}") && wait_ready(&c), "soak: model loads");
    soak_doc docs[SOAK_DOCS];
    for (int i = 0; i < SOAK_DOCS; i++) {
        soak_doc *d = &docs[i];
        snprintf(d->uri, sizeof d->uri, "file:///soak/doc%d.c", i);
        d->base = c_source(i, 2500 + 700 * (size_t)i, &d->line);
        d->cap = strlen(d->base) + 64;
        d->text = malloc(d->cap);
        strcpy(d->text, d->base);
        snprintf(d->word, sizeof d->word, "total += step_%d_1(i, %d);", i, i);
        d->typed = 0, d->version = 1;
        open_doc(&c, d->uri, d->text, strlen(d->text));
    }
    soak_counts k = {0};
    k.state = calloc((size_t)n + 16, 1);
    long rss_first = -1, rss_max = 0, closes = 0, cancels = 0, supersede = 0, edits = 0;
    double t0 = now_ms();
    while (k.sent < n) {
        soak_doc *d = &docs[rnd(SOAK_DOCS)];
        unsigned r = rnd(100);
        if (r < 50) { /* a keystroke, then the editor asks */
            keystroke(&c, d), edits++;
            soak_request(&c, &k, d);
        } else if (r < 62) { /* asked twice: the first is superseded */
            soak_request(&c, &k, d);
            soak_request(&c, &k, d), supersede++;
        } else if (r < 72) { /* asked, then cancelled */
            char ids[64];
            snprintf(ids, sizeof ids, "{\"id\":%ld}", soak_request(&c, &k, d));
            sendf(&c, "{\"jsonrpc\":\"2.0\",\"method\":\"$/cancelRequest\",\"params\":%s}", ids);
            cancels++;
        } else if (r < 74) { /* asked, closed while it runs, reopened as it was at first */
            soak_request(&c, &k, d);
            close_doc(&c, d->uri), closes++;
            strcpy(d->text, d->base);
            d->typed = 0, d->version = 1;
            open_doc(&c, d->uri, d->text, strlen(d->text));
            soak_request(&c, &k, d);
        } else {
            soak_request(&c, &k, d);
        }
        drain(&c, &k, 0);
        if (k.outstanding >= WINDOW) drain(&c, &k, 30000);
        if (rnd(5) < 2) /* the typist pauses: what is under way finishes */
            for (long before = -1; k.outstanding > 0 && k.outstanding != before;) {
                before = k.outstanding;
                drain(&c, &k, 30000);
            }
        if (rss_first < 0 && k.sent >= n / 10) { /* warmed up: every cache has been filled */
            for (long before = -1; k.outstanding > 0 && k.outstanding != before;) {
                before = k.outstanding;
                drain(&c, &k, 30000);
            }
            rss_first = rss_kb(c.pid);
        }
        if (k.sent % 500 == 0) {
            long r2 = rss_kb(c.pid);
            if (r2 > rss_max) rss_max = r2;
        }
    }
    for (long before = -1; k.outstanding > 0 && k.outstanding != before;) {
        before = k.outstanding;
        drain(&c, &k, 60000);
    }
    double secs = (now_ms() - t0) / 1e3;
    long rss_last = rss_kb(c.pid);
    char *state = status_field(&c, "state");
    bool hashes = true;
    for (int i = 0; i < SOAK_DOCS; i++) {
        size_t bytes = 0;
        hashes &= status_hash(&c, docs[i].uri, &bytes) == fnv1a(docs[i].text, strlen(docs[i].text));
    }
    long lost = 0;
    for (long id = 1; id <= k.sent; id++) lost += k.state[id] != 2;
    printf(
        "soak: %ld requests in %.1f s (%.0f/s): %ld results, %ld lost; errors -32800 "
        "(cancelled) %ld, -32801 (content modified) %ld, other %ld; %ld edits, %ld supersessions,"
        " %ld cancels, %ld close+reopen\n",
        k.sent, secs, (double)k.sent / secs, k.results, lost, k.cancelled, k.modified, k.other,
        edits, supersede, cancels, closes);
    printf("soak: server RSS %ld kB after warm-up -> %ld kB at the end (%+.1f%%, peak sampled %ld "
           "kB)\n",
           rss_first, rss_last, 100.0 * (double)(rss_last - rss_first) / (double)rss_first,
           rss_max);
    CHECK(lost == 0, "soak: every request answered (%ld lost)", lost);
    CHECK(k.dup == 0, "soak: no request answered twice (%ld)", k.dup);
    CHECK(k.other == 0, "soak: only results, -32800 and -32801 (%ld others)", k.other);
    CHECK(k.results >= k.sent / 5, "soak: completions are produced, not only cancelled (%ld)",
          k.results);
    CHECK(!strcmp(state, "ready"), "soak: fimd/status still answers at the end (state '%s')",
          state);
    CHECK(hashes, "soak: every document's text equals the client's copy");
    CHECK(rss_first > 0 && rss_last <= rss_first + rss_first / 10,
          "soak: RSS after warm-up within +10%% (%ld -> %ld kB)", rss_first, rss_last);
    free(state);
    CHECK(finish(&c) == 0, "soak: clean exit after shutdown");
    char *err = server_stderr("soak");
    CHECK(!strstr(err, "Sanitizer"), "soak: no sanitizer report from the server (no leak): %.2000s",
          err);
    free(err);
    for (int i = 0; i < SOAK_DOCS; i++) free(docs[i].base), free(docs[i].text);
    free(k.state);
}

/* ---- memory pressure ---- */

/* `fimd complete` at the cursor with the other files open (malloc'd stdout, NULL on failure). */
static char *cli_complete(const char *model, char **files, int n, int k, long line)
{
    size_t cap = 8192 + (size_t)n * 4200, len = 0;
    char *cmd = malloc(cap);
    len += (size_t)snprintf(cmd + len, cap - len,
                            "%s complete -m %s %s --line %ld --character 16 --max-tokens 8 "
                            "--prefix-tokens 512 --suffix-tokens 128 --related-tokens 128",
                            fimd_bin(), model, files[k], line);
    for (int i = 0; i < n; i++)
        if (i != k) len += (size_t)snprintf(cmd + len, cap - len, " --open %s", files[i]);
    FILE *p = popen(cmd, "r");
    free(cmd);
    if (!p) return NULL;
    char *out = calloc(1, 1 << 16);
    size_t got = fread(out, 1, (1 << 16) - 1, p);
    out[got] = 0;
    if (pclose(p) != 0) {
        free(out);
        return NULL;
    }
    return out;
}

enum { PRESSURE_DOCS = 20 };

static void memory_pressure(void)
{
    /* a model with a wide latent cache: 3 layers x (512 + 64) floats = 6.75 KiB per token, so 20
     * documents' prompts (about 650 tokens each with the budgets below) need some 90 MB; one head
     * keeps the prefills quick */
    model_synth_opts o;
    model_synth_preset(&o, "tiny");
    static const char *files[] = {"tests/data/ds2.c", "tests/data/tokenizer.c"};
    o.merge_files = files, o.n_merge_files = 2, o.n_merges = 400, o.seed = 7;
    o.type = MODEL_TYPE_Q8_0;
    o.hp.kv_lora_rank = 512, o.hp.qk_rope = 64, o.hp.n_head = 1;
    char model[4096];
    snprintf(model, sizeof model, "%s", check_tmp("wide-cache.gguf"));
    model_err me = {{0}};
    if (!CHECK(model_synth(&o, model, &me) == 0, "pressure: synth: %s", me.msg)) return;
    srv c;
    spawn(&c, model, "pressure", NULL);
    CHECK(start(&c, "{\"cacheMegabytes\":64,\"maxTokens\":8,\"threads\":1,\"prefixTokens\":512,"
                    "\"suffixTokens\":128,\"relatedTokens\":128}") &&
              wait_ready(&c),
          "pressure: model loads");
    char dir[4096], *paths[PRESSURE_DOCS], uri[4200];
    snprintf(dir, sizeof dir, "%s", check_tmp("pressure"));
    mkdir(dir, 0755);
    long line[PRESSURE_DOCS];
    for (int k = 0; k < PRESSURE_DOCS; k++) {
        char *text = c_source(k, 9000, &line[k]), path[4200];
        snprintf(path, sizeof path, "%s/m%02d.c", dir, k);
        FILE *f = fopen(path, "w");
        fputs(text, f);
        fclose(f);
        paths[k] = realpath(path, NULL);
        snprintf(uri, sizeof uri, "file://%s", paths[k]);
        open_doc(&c, uri, text, strlen(text));
        free(text);
    }
    char *first[PRESSURE_DOCS] = {0};
    long max_bytes = 0, one_doc = 0;
    int over = 0, differ = 0, failed = 0, nonempty = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int k = 0; k < PRESSURE_DOCS; k++) {
            char id[32];
            long code;
            snprintf(id, sizeof id, "%d", 100 * pass + k + 1);
            snprintf(uri, sizeof uri, "file://%s", paths[k]);
            /* the cursor in "    int total = |0;": a one-line middle this random model fills */
            char *got = complete(&c, id, uri, (lsp_pos){line[k] - 2, 16}, &code);
            long bytes = status_num(&c, "cacheBytes");
            if (pass == 0 && k == 0) one_doc = bytes;
            if (bytes > max_bytes) max_bytes = bytes;
            over += bytes > 64L << 20;
            failed += !got;
            if (pass == 0) {
                first[k] = got ? got : strdup("<none>");
                nonempty += got && *got;
            } else {
                differ += !got || strcmp(got, first[k]);
                free(got);
            }
        }
    long cached = status_num(&c, "cachedDocuments");
    printf("pressure: one document's cache %.1f MB, %d documents would need %.0f MB; the largest "
           "total seen %.1f MB, %ld documents cached at the end; %d of %d completions non-empty\n",
           (double)one_doc / 1048576, PRESSURE_DOCS, (double)one_doc * PRESSURE_DOCS / 1048576,
           (double)max_bytes / 1048576, cached, nonempty, PRESSURE_DOCS);
    CHECK(one_doc * PRESSURE_DOCS > 64L << 20,
          "pressure: 20 documents' caches exceed the cap (%ld bytes each)", one_doc);
    CHECK(failed == 0, "pressure: every completion answered (%d failed)", failed);
    CHECK(over == 0 && max_bytes > 0, "pressure: the caches stay under 64 MB (%d times over)",
          over);
    CHECK(cached > 0 && cached < PRESSURE_DOCS, "pressure: documents were evicted (%ld cached)",
          cached);
    CHECK(differ == 0, "pressure: after eviction each completion equals the first one (%d differ)",
          differ);
    int cli_differ = 0;
    for (int k = 0; k < PRESSURE_DOCS; k++) {
        char *want = cli_complete(model, paths, PRESSURE_DOCS, k, line[k] - 2);
        if (!want || strcmp(want, first[k])) {
            if (cli_differ++ < 3)
                printf("document %d: server '%s', fimd complete '%s'\n", k, first[k],
                       want ? want : "(failed)");
        }
        free(want);
    }
    CHECK(cli_differ == 0,
          "pressure: every completion equals `fimd complete` with the same files open (%d differ)",
          cli_differ);
    CHECK(finish(&c) == 0, "pressure: clean exit");
    for (int k = 0; k < PRESSURE_DOCS; k++) free(first[k]), free(paths[k]);
}

/* ---- input faults ---- */

static void small_doc(srv *c, const char *uri, long *line)
{
    char *text = c_source(1, 1500, line);
    open_doc(c, uri, text, strlen(text));
    free(text);
}

/* Waits (reading its output) for the server to end within ms; the wait status, or -1. */
static int wait_exit(srv *c, int ms, double *took)
{
    double t0 = now_ms();
    int status = -1;
    while (now_ms() - t0 < ms) {
        if (waitpid(c->pid, &status, WNOHANG) == c->pid) {
            *took = now_ms() - t0;
            return status;
        }
        pump(c, 10), c->len = 0;
    }
    kill(c->pid, SIGKILL);
    waitpid(c->pid, &status, 0);
    *took = now_ms() - t0;
    return -1;
}

/* The client closes stdin in the middle of a message, with a completion under way. */
static void stdin_eof(void)
{
    srv c;
    spawn(&c, BUNDLED, "eof", NULL);
    CHECK(start(&c, "{\"threads\":1}") && wait_ready(&c), "eof: model loads");
    long line;
    small_doc(&c, "file:///eof.c", &line);
    request(&c, "1", "file:///eof.c", (lsp_pos){line, 8});
    const char *part = "Content-Length: 300\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":2,\"meth";
    send_bytes(&c, part, strlen(part));
    close(c.to);
    double took;
    int st = wait_exit(&c, 10000, &took);
    printf("eof: exit status %d after %.0f ms\n", st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1,
           took);
    CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 1,
          "eof: the server exits with status 1 (no shutdown) in %.0f ms, not by a signal or hang "
          "(wait status %d)",
          took, st);
    char *err = server_stderr("eof");
    CHECK(strstr(err, "end of input") && strstr(err, "middle of a message"),
          "eof: it says why on stderr: '%s'", err);
    free(err);
    close(c.from);
    free(c.buf);
}

/* didOpen with 100 MB of text: over the 64 MiB message cap, refused with -32600 as it streams. */
static void huge_document(void)
{
    srv c;
    spawn(&c, BUNDLED, "huge", NULL);
    CHECK(start(&c, "{\"threads\":1}") && wait_ready(&c), "huge: model loads");
    size_t n = 100u << 20;
    const char *head = "{\"jsonrpc\":\"2.0\",\"method\":\"textDocument/didOpen\",\"params\":{"
                       "\"textDocument\":{\"uri\":\"file:///huge.c\",\"languageId\":\"c\","
                       "\"version\":1,\"text\":\"";
    const char *tail = "\"}}}";
    char *msg = malloc(n + 1024);
    size_t len = (size_t)sprintf(msg, "%s", head);
    static const char line[] = "int value = compute(1, 2);\\n";
    while (len < n) memcpy(msg + len, line, sizeof line - 1), len += sizeof line - 1;
    len += (size_t)sprintf(msg + len, "%s", tail);
    double t0 = now_ms();
    char hdr[64];
    int h = snprintf(hdr, sizeof hdr, "Content-Length: %zu\r\n\r\n", len);
    send_bytes(&c, hdr, (size_t)h);
    bool sent = send_bytes(&c, msg, len);
    free(msg);
    jdoc d;
    bool got = response(&c, "null", &d, 60000);
    long code = got ? tlsp_error_code(&d) : 0;
    double ms = now_ms() - t0;
    CHECK(sent && got && code == -32600 && strstr(c.last, "exceeds"),
          "huge: a 100 MB didOpen gets -32600 naming the limit in %.0f ms: %s", ms,
          got ? c.last : "(no answer)");
    printf("huge: %zu-byte didOpen answered in %.0f ms: %s\n", len, ms, got ? c.last : "-");
    if (got) tlsp_done(&d);
    CHECK(ms < 60000, "huge: bounded time (%.0f ms)", ms);
    long err;
    char *r = complete(&c, "1", "file:///huge.c", (lsp_pos){0, 0}, &err);
    CHECK(!r && err == -32602, "huge: the refused document is unknown afterwards (%ld)", err);
    free(r);
    /* under the cap (60 MB of code): opened, parsed and completed in bounded time */
    n = 60u << 20;
    char *big = malloc(n + 1);
    for (size_t k = 0; k < n; k += 64)
        snprintf(big + k, 65, "%-63s\n",
                 k % 4096 ? "    total += compute(1, 2);" : "}\nint f(void)\n{");
    big[n] = 0;
    t0 = now_ms();
    open_doc(&c, "file:///big.c", big, n);
    r = complete(&c, "3", "file:///big.c", (lsp_pos){(long)(n / 64 / 2), 4}, &err);
    ms = now_ms() - t0;
    printf("huge: a %zu-byte document opened and completed in %.0f ms\n", n, ms);
    CHECK(r != NULL && ms < 120000,
          "huge: a 60 MB document (under the cap) is completed (%ld) in "
          "%.0f ms",
          err, ms);
    free(r), free(big);
    long l;
    small_doc(&c, "file:///after.c", &l);
    r = complete(&c, "2", "file:///after.c", (lsp_pos){l, 8}, &err);
    CHECK(r != NULL, "huge: a completion succeeds afterwards (%ld)", err);
    free(r);
    CHECK(finish(&c) == 0, "huge: clean exit");
}

/* Position (UTF-16) of a byte offset in the client's copy. */
static lsp_pos pos_of(const char *t, size_t off)
{
    return lsp_pos_of(t, strlen(t), off, LSP_UTF16);
}

/* 10,000 didChange edits (inserts and deletes, multi-byte characters among them). */
static void change_storm(void)
{
    srv c;
    spawn(&c, BUNDLED, "storm", NULL);
    CHECK(start(&c, "{\"threads\":1}") && wait_ready(&c), "storm: model loads");
    long line;
    char *base = c_source(2, 4000, &line);
    size_t cap = 1 << 20;
    char *t = calloc(1, cap);
    strcpy(t, base);
    free(base);
    open_doc(&c, "file:///storm.c", t, strlen(t));
    static const char *pieces[] = {"x", "ab", "\n", "é", "😀", "  ", "{}", ";\n"};
    double t0 = now_ms();
    for (int i = 0; i < 10000; i++) {
        size_t len = strlen(t), a = rnd((unsigned)len + 1);
        while (a < len && ((unsigned char)t[a] & 0xC0) == 0x80) a--; /* a character's start */
        if (rnd(2) || len < 3000) { /* the text stays around 3 KB */
            const char *p = pieces[rnd(8)];
            edit(&c, "file:///storm.c", i + 2, pos_of(t, a), pos_of(t, a), p);
            memmove(t + a + strlen(p), t + a, len - a + 1);
            memcpy(t + a, p, strlen(p));
        } else {
            size_t b = a;
            for (unsigned k = 1 + rnd(5); k && b < len; k--) do
                    b++;
                while (b < len && ((unsigned char)t[b] & 0xC0) == 0x80);
            edit(&c, "file:///storm.c", i + 2, pos_of(t, a), pos_of(t, b), "");
            memmove(t + a, t + b, len - b + 1);
        }
    }
    size_t bytes = 0;
    uint64_t h = status_hash(&c, "file:///storm.c", &bytes);
    double ms = now_ms() - t0;
    printf("storm: 10,000 edits applied in %.0f ms, %zu bytes at the end\n", ms, strlen(t));
    CHECK(h == fnv1a(t, strlen(t)) && bytes == strlen(t),
          "storm: after 10,000 edits the server's text equals the expected text (%zu bytes vs "
          "%zu) in %.0f ms",
          bytes, strlen(t), ms);
    long err;
    char *r = complete(&c, "1", "file:///storm.c", pos_of(t, strlen(t) / 2), &err);
    CHECK(r != NULL, "storm: a completion answers after the storm (%ld)", err);
    free(r);
    free(t);
    CHECK(finish(&c) == 0, "storm: clean exit");
}

/* ---- disk faults: the model file truncated, then replaced, while the server runs ---- */

static bool copy_file(const char *from, const char *to)
{
    size_t n;
    char *b = check_read(from, &n);
    FILE *f = b ? fopen(to, "wb") : NULL;
    bool ok = f && fwrite(b, 1, n, f) == n;
    if (f) ok &= fclose(f) == 0;
    free(b);
    return ok;
}

static void reload(srv *c, int threads)
{
    sendf(c,
          "{\"jsonrpc\":\"2.0\",\"method\":\"workspace/didChangeConfiguration\",\"params\":{"
          "\"settings\":{\"fimd\":{\"threads\":%d}}}}",
          threads);
}

static void model_file(const char *what, const char *env)
{
    char path[4096], spare[4096], name[64];
    snprintf(name, sizeof name, "fault-%s", what);
    snprintf(path, sizeof path, "%s.gguf", check_tmp(name));
    snprintf(spare, sizeof spare, "%s.spare.gguf", check_tmp(name));
    if (!CHECK(copy_file(BUNDLED, path) && copy_file(BUNDLED, spare), "%s: copies", what)) return;
    struct stat st;
    stat(path, &st);
    srv c;
    spawn(&c, path, name, env);
    CHECK(start(&c, "{\"threads\":1,\"maxTokens\":16}") && wait_ready(&c), "%s: model loads", what);
    long line, code;
    small_doc(&c, "file:///m.c", &line);
    lsp_pos at = {line + 1, 0}; /* before the loop's closing brace: the model writes a line */
    char *want = complete(&c, "1", "file:///m.c", at, &code);
    CHECK(want && *want, "%s: a completion before the fault: '%s' (%ld)", what, want ? want : "",
          code);

    /* truncated in place while loaded */
    CHECK(truncate(path, st.st_size / 2) == 0, "%s: truncate", what);
    char *got = complete(&c, "2", "file:///m.c", at, &code);
    CHECK(got || code == -32603,
          "%s: the next completion is answered (a result, or -32603 saying why): %s", what, c.last);
    printf("%s: completion after truncation: %s\n", what, c.last);
    free(got);
    CHECK(waitpid(c.pid, NULL, WNOHANG) == 0, "%s: the server is alive after the truncation", what);
    reload(&c, 2);
    char *state = wait_loaded(&c), *error = status_field(&c, "error");
    CHECK(!strcmp(state, "failed") && strstr(error, path),
          "%s: the next load reports the damaged file: state %s, error '%s'", what, state, error);
    free(state), free(error);
    got = complete(&c, "3", "file:///m.c", at, &code);
    CHECK(!got && code == -32603 && strstr(c.last, "no model is loaded"),
          "%s: completions then say no model is loaded: %s", what, c.last);
    free(got);

    /* replaced (a new file renamed over it): the next load takes it */
    CHECK(rename(spare, path) == 0, "%s: rename", what);
    reload(&c, 1);
    CHECK(wait_ready(&c), "%s: the next load after the file is replaced succeeds", what);
    got = complete(&c, "4", "file:///m.c", at, &code);
    CHECK(got && want && !strcmp(got, want), "%s: and completes as before: '%s' vs '%s'", what,
          got ? got : "(none)", want ? want : "(none)");
    free(got), free(want);
    CHECK(finish(&c) == 0, "%s: clean exit", what);
}

static void model_file_faults(void)
{
    model_file("resident", NULL);             /* the weights read into memory (the default) */
    model_file("mapped", "FIMD_HUGEPAGES=0"); /* the weights mapped from the file */
}

int main(int argc, char **argv)
{
    static const char *const cases[] = {"soak",          "memory_pressure", "stdin_eof",
                                        "huge_document", "change_storm",    "model_file"};
    if (!check_args(argc, argv, cases, CHECK_CASES(cases))) return 2;
    if (check_want("soak")) soak();
    if (check_want("memory_pressure")) memory_pressure();
    if (check_want("stdin_eof")) stdin_eof();
    if (check_want("huge_document")) huge_document();
    if (check_want("change_storm")) change_storm();
    if (check_want("model_file")) model_file_faults();
    return check_done();
}
