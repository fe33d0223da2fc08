/* tests/test_remote.c — fimd in front of a serving engine. No engine installs here, so each API is
 * spoken by tests/mock_engine (its wire format as documented, its tokens from fimd's own in-process
 * engine on the bundled model): completions equal the in-process ones, stop rules close the stream,
 * cancellation closes it at once, every kind of server failure gets a clear answer, and the API key
 * never reaches a log or fimd/status. */
#define _GNU_SOURCE
#include "fim/fim_internal.h"
#include "lsp/lsp.h"
#include "tests/check.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *MODEL = "weights/fimd-tiny-code.gguf";
static const char *SAMPLE = "tests/data/sample.c";
static char mock_bin[4096];

typedef struct mock {
    pid_t pid;
    int port;
    char log[512];
    char url[128];
} mock;

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* Start a mock engine: extra options as a NULL-terminated list. */
static bool mock_start(mock *m, const char *api, const char *const *extra)
{
    static int seq;
    memset(m, 0, sizeof *m);
    char port_file[512];
    snprintf(port_file, sizeof port_file, "%s", check_tmp("mock.port"));
    snprintf(m->log, sizeof m->log, "%s.%d", check_tmp("mock.log"), ++seq);
    unlink(port_file);
    unlink(m->log);
    const char *wire = !strcmp(api, "sglang") ? "openai" : api; /* SGLang speaks OpenAI's format */
    char *argv[32] = {mock_bin,      "--api",   (char *)wire, "-m",  (char *)MODEL,
                      "--port-file", port_file, "--log",      m->log};
    int n = 9;
    for (int k = 0; extra && extra[k] && n < 30; k++) argv[n++] = (char *)extra[k];
    m->pid = fork();
    if (m->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive a crashed test */
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) dup2(null, 1);
        execv(mock_bin, argv);
        _exit(127);
    }
    for (int t = 0; t < 500; t++) {
        FILE *f = fopen(port_file, "r");
        if (f) {
            int ok = fscanf(f, "%d", &m->port);
            fclose(f);
            if (ok == 1) break;
        }
        usleep(10000);
    }
    snprintf(m->url, sizeof m->url, "http://127.0.0.1:%d%s", m->port,
             !strcmp(api, "openai") || !strcmp(api, "sglang") ? "/v1" : "");
    return CHECK(m->port > 0, "mock engine %s started", api);
}

static void mock_stop(mock *m)
{
    if (m->pid <= 0) return;
    kill(m->pid, SIGTERM);
    waitpid(m->pid, NULL, 0);
    m->pid = 0;
}

static char *mock_log(const mock *m)
{
    size_t n;
    char *s = check_read(m->log, &n);
    return s ? s : strdup("");
}

static fim_engine *remote_engine(const char *api, const mock *m, const char *key_env,
                                 int timeout_ms, fim_err *err)
{
    fim_backend_spec spec = {.model_path = MODEL};
    spec.remote = (fim_remote_config){.api = api,
                                      .url = m->url,
                                      .model = "mock",
                                      .api_key_env = key_env,
                                      .timeout_ms = timeout_ms};
    return fim_engine_open(&spec, err);
}

/* A completion at (line, character) of the sample; NULL on error (message in err). */

static char *complete_at(fim_engine *e, const char *text, long line, int character, int max_tokens,
                         const atomic_int *cancel, fim_stats *st, fim_err *err, int *rc)
{
    size_t at = 0;
    for (long l = 0; l < line; l++) at = (size_t)(strchr(text + at, '\n') - text) + 1;
    fim_config cfg;
    fim_config_default(&cfg);
    cfg.max_tokens = max_tokens;
    cfg.heal_top =
        FIM_HEAL_TOP; /* the in-process reference heals as an engine's alternatives allow */
    fim_request r = {.doc = "file:///sample.c",
                     .text = text,
                     .len = strlen(text),
                     .cursor = at + (size_t)character,
                     .language = "c"};
    char *out = NULL;
    *rc = fim_complete(e, &r, &cfg, cancel, &out, st, err);
    return out;
}

static const struct {
    long line;
    int character;
} cursors[] = {{12, 8}, {12, 0}, {11, 4}, {13, 4}, {5, 4}, {16, 0}};
enum { N_CURSORS = sizeof cursors / sizeof *cursors };

/* The in-process answers at every cursor, the reference for every API (healing from the best
 * FIM_HEAL_TOP tokens, as with an engine). */
static char *expected[N_CURSORS];

static void reference(const char *text)
{
    fim_err err = {{0}};
    fim_backend_spec spec = {.model_path = MODEL};
    fim_engine *e = fim_engine_open(&spec, &err);
    if (!CHECK(e != NULL, "in-process engine: %s", err.msg)) return;
    for (int k = 0; k < N_CURSORS; k++) {
        fim_stats st;
        int rc;
        expected[k] =
            complete_at(e, text, cursors[k].line, cursors[k].character, 24, NULL, &st, &err, &rc);
    }
    fim_engine_free(e);
}

static void equality(const char *api, const char *text)
{
    mock m;
    if (!mock_start(&m, api, NULL)) return;
    fim_err err = {{0}};
    fim_engine *e = remote_engine(api, &m, NULL, 5000, &err);
    if (CHECK(e != NULL, "%s engine: %s", api, err.msg)) {
        fim_backend_status bs;
        fim_engine_status(e, &bs);
        bool health_ok =
            !strcmp(bs.health, "ok") || (!strcmp(api, "ollama") && !strcmp(bs.health, "unknown"));
        CHECK(!strcmp(bs.kind, api) && health_ok, "%s status: kind %s health %s", api, bs.kind,
              bs.health);
        CHECK(bs.prompt_ids == (strcmp(api, "ollama") != 0),
              "%s: prompts as ids unless Ollama (%d)", api, bs.prompt_ids);
        /* Text prompts (Ollama) get no alternatives back, so token healing (mid-line cursors) can
         * only keep the engine's choice or fall back to the typed token: equality is checked where
         * nothing is healed (line starts), an answer everywhere. */
        bool text_only = !bs.prompt_ids;
        for (int k = 0; k < N_CURSORS; k++) {
            fim_stats st;
            int rc;
            char *got = complete_at(e, text, cursors[k].line, cursors[k].character, 24, NULL, &st,
                                    &err, &rc);
            bool eq = rc == 0 && got && expected[k] && !strcmp(got, expected[k]);
            if (text_only && cursors[k].character > 0)
                CHECK(rc == 0 && got, "%s at %ld:%d: an answer ([%s])", api, cursors[k].line,
                      cursors[k].character, got ? got : err.msg);
            else
                CHECK(eq, "%s at %ld:%d: [%s] equals the in-process [%s] (%s)", api,
                      cursors[k].line, cursors[k].character, got ? got : "(null)",
                      expected[k] ? expected[k] : "(null)", rc ? err.msg : "ok");
            free(got);
        }
    }
    fim_engine_free(e);
    char *log = mock_log(&m);
    CHECK(strstr(log, "end=disconnect") != NULL,
          "%s: fimd closed streams its stop rules ended (log: %.300s)", api, log);
    free(log);
    mock_stop(&m);
}

/* Typing in a line: each keystroke's prompt is the last one's plus a few tokens, and the server
 * says it had the rest cached. */
static void server_cache(const char *text)
{
    mock m;
    if (!mock_start(&m, "llamacpp", NULL)) return;
    fim_err err = {{0}};
    fim_engine *e = remote_engine("llamacpp", &m, NULL, 5000, &err);
    char *doc = strdup(text);
    size_t at = (size_t)(strstr(doc, "        \n") - doc) + 8;
    int prev_prompt = 0, ok = 0, asked = 0;
    const char *typed = "total";
    for (size_t k = 0; e && k <= strlen(typed); k++) {
        char *d = malloc(strlen(doc) + 8);
        sprintf(d, "%.*s%.*s%s", (int)at, doc, (int)k, typed, doc + at);
        fim_config cfg;
        fim_config_default(&cfg);
        cfg.max_tokens = 8;
        fim_request r = {
            .doc = "typing", .text = d, .len = strlen(d), .cursor = at + k, .language = "c"};
        fim_stats st;
        char *out = NULL;
        fim_complete(e, &r, &cfg, NULL, &out, &st, &err);
        if (k > 0) {
            asked++;
            ok += st.server_cached >= prev_prompt - 5 && st.server_cached > 0;
            CHECK(st.server_cached >= prev_prompt - 5,
                  "keystroke %zu: the server had %d of %d prompt tokens cached", k,
                  st.server_cached, st.prompt_tokens);
        }
        prev_prompt = st.prompt_tokens;
        free(out);
        free(d);
    }
    CHECK(asked > 0 && ok == asked, "every in-line keystroke reused the server's cache (%d of %d)",
          ok, asked);
    free(doc);
    fim_engine_free(e);
    mock_stop(&m);
}

typedef struct cancel_run {
    fim_engine *e;
    const char *text;
    atomic_int cancel;
    int rc;
    double took;
} cancel_run;

static void *run_cancelled(void *arg)
{
    cancel_run *c = arg;
    fim_stats st;
    fim_err err = {{0}};
    double t0 = now_ms();
    char *out = complete_at(c->e, c->text, 12, 8, 64, &c->cancel, &st, &err, &c->rc);
    c->took = now_ms() - t0;
    free(out);
    return NULL;
}

/* Cancel (and supersede: the server's cancel) mid-stream, several times under a slow stream, then a
 * request completes normally. SGLang also gets its abort by request id. */
static void cancellation(const char *api, const char *text)
{
    const char *slow[] = {"--token-delay-ms", "40", NULL};
    mock m;
    if (!mock_start(&m, api, slow)) return;
    fim_err err = {{0}};
    fim_engine *e = remote_engine(api, &m, NULL, 5000, &err);
    int quick = 0;
    for (int round = 0; e && round < 4; round++) {
        cancel_run c = {.e = e, .text = text};
        pthread_t t;
        pthread_create(&t, NULL, run_cancelled, &c);
        usleep((useconds_t)(60 + 30 * round) * 1000);
        double t0 = now_ms();
        atomic_store(&c.cancel, 1);
        pthread_join(t, NULL);
        double after = now_ms() - t0;
        /* the rest of the stream would take about 2 s (64 tokens, 40 ms each): well under that
         * means the cancel closed it, with room for a loaded machine */
        quick += c.rc == 1 && after < 1000;
        CHECK(c.rc == 1 && after < 1000, "%s round %d: cancelled (rc %d) %.0f ms after the flag",
              api, round, c.rc, after);
    }
    CHECK(quick == 4, "%s: every cancel took effect at once", api);
    fim_stats st;
    int rc;
    char *out = e ? complete_at(e, text, 12, 8, 8, NULL, &st, &err, &rc) : NULL;
    CHECK(e && rc == 0 && out, "%s: the next request completes after the cancels (%s)", api,
          err.msg);
    free(out);
    fim_engine_free(e);
    usleep(100000);
    char *log = mock_log(&m);
    int disconnects = 0;
    for (char *p = log; (p = strstr(p, "end=disconnect")); p++) disconnects++;
    CHECK(disconnects >= 4, "%s: the server saw %d cancelled streams closed", api, disconnects);
    if (!strcmp(api, "sglang"))
        CHECK(strstr(log, "path=/abort_request") && strstr(log, "rid=fimd-"),
              "sglang: fimd sent /abort_request with its rid");
    free(log);
    mock_stop(&m);
}

/* Each failure mode: a clear error, or the tokens that came and a note; the engine serves on. */
static void failures(const char *text)
{
    static const struct {
        const char *api, *mode;
        int want_rc;       /* 0: a (possibly partial) completion with a note, -1: an error */
        const char *words; /* expected in the error or the note */
    } cases[] = {
        {"llamacpp", "http500", -1, "HTTP 500"},
        {"openai", "http400", -1, "HTTP 400"},
        {"ollama", "http500", -1, "HTTP 500"},
        {"llamacpp", "malformed", 0, "malformed JSON"},
        {"openai", "malformed", 0, "malformed JSON"},
        {"llamacpp", "truncate", 0, "without its final message"},
        {"ollama", "truncate", 0, "without its final message"},
        {"llamacpp", "utf8-error", 0, "Content-only"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        const char *extra[] = {"--fail", cases[k].mode, NULL};
        mock m;
        if (!mock_start(&m, cases[k].api, extra)) continue;
        fim_err err = {{0}};
        fim_engine *e = remote_engine(cases[k].api, &m, NULL, 3000, &err);
        fim_stats st;
        int rc = -2;
        char *out = e ? complete_at(e, text, 12, 8, 24, NULL, &st, &err, &rc) : NULL;
        const char *said = rc < 0 ? err.msg : st.note;
        CHECK(rc == cases[k].want_rc && strstr(said, cases[k].words),
              "%s --fail %s: rc %d (want %d), said [%s]", cases[k].api, cases[k].mode, rc,
              cases[k].want_rc, said);
        if (rc == 0 && !strcmp(cases[k].mode, "malformed"))
            CHECK(out && *out, "%s malformed: the tokens before the bad chunk are kept ([%s])",
                  cases[k].api, out ? out : "");
        free(out);
        fim_engine_free(e);
        mock_stop(&m);
    }
}

static void unreachable_and_slow(const char *text)
{
    mock m;
    if (!mock_start(&m, "llamacpp", NULL)) return;
    mock_stop(&m); /* nothing listens on its port now */
    fim_err err = {{0}};
    fim_engine *e = remote_engine("llamacpp", &m, NULL, 1000, &err);
    CHECK(e != NULL, "a backend opens while its server is down (to be retried): %s", err.msg);
    fim_backend_status bs;
    if (e) fim_engine_status(e, &bs);
    CHECK(e && strstr(bs.health, "unreachable"), "status says the server is unreachable: [%s]",
          e ? bs.health : "");
    fim_stats st;
    int rc = 0;
    char *out = e ? complete_at(e, text, 12, 8, 8, NULL, &st, &err, &rc) : NULL;
    CHECK(rc == -1 && strstr(err.msg, "onnect"), "connection refused is a clear error: [%s]",
          err.msg);
    free(out);
    fim_engine_free(e);

    const char *slow[] = {"--first-delay-ms", "3000", NULL};
    if (!mock_start(&m, "llamacpp", slow)) return;
    e = remote_engine("llamacpp", &m, NULL, 400, &err);
    double t0 = now_ms();
    out = e ? complete_at(e, text, 12, 8, 8, NULL, &st, &err, &rc) : NULL;
    double took = now_ms() - t0;
    CHECK(rc == -1 && strstr(err.msg, "no token within 400 ms") && took < 1500,
          "a slow first token times out after the setting (%.0f ms): [%s]", took, err.msg);
    free(out);
    fim_engine_free(e);
    mock_stop(&m);
}

static void vocab_mismatch(const char *text)
{
    const char *extra[] = {"--fail", "vocab", NULL};
    mock m;
    if (!mock_start(&m, "llamacpp", extra)) return;
    fim_err err = {{0}};
    fim_engine *e = remote_engine("llamacpp", &m, NULL, 3000, &err);
    fim_backend_status bs;
    if (e) fim_engine_status(e, &bs);
    CHECK(e && !bs.prompt_ids && strstr(bs.note, "tokenizer mismatch"),
          "a vocabulary mismatch is named: [%s]", e ? bs.note : err.msg);
    fim_stats st;
    int rc = -1;
    char *out = e ? complete_at(e, text, 12, 0, 24, NULL, &st, &err, &rc) : NULL;
    CHECK(rc == 0 && out && expected[1] && !strcmp(out, expected[1]),
          "with text prompts the completion is still the in-process one: [%s] vs [%s]",
          out ? out : "", expected[1]);
    free(out);
    fim_engine_free(e);
    mock_stop(&m);
}

/* Ollama takes text: FIM marker strings typed in the code must not reach it as markers. */
static void ollama_markers(void)
{
    model_err me = {{0}};
    model_gguf *g = model_gguf_open(MODEL, &me);
    model_vocab *v = g ? model_vocab_load(g, &me) : NULL;
    model_gguf_close(g);
    if (!CHECK(v != NULL, "vocab: %s", me.msg)) return;
    model_fim_ids f;
    model_vocab_fim(v, &f, &me);
    char code[256];
    snprintf(code, sizeof code, "x = \"%s\"; y = 1;", model_token_text(v, f.hole));
    int32_t *ids = NULL;
    size_t n = 0;
    model_tokenize(v, code, strlen(code), false, false, &ids, &n, &me);
    int32_t all[300] = {model_vocab_bos(v), f.begin};
    size_t k = 2;
    for (size_t i = 0; i < n && k < 290; i++) all[k++] = ids[i];
    all[k++] = f.hole, all[k++] = f.end;
    fim_buf text = {0};
    fim__prompt_text(v, all, k, &text);
    const char *hole = model_token_text(v, f.hole);
    char *first = memmem(text.p, text.n, hole, strlen(hole));
    CHECK(first && !memmem(first + 1, text.n - (size_t)(first + 1 - text.p), hole, strlen(hole)),
          "only the prompt's own <fim_hole> is in the text: [%s]", text.p);
    CHECK(strstr(text.p, "x = \"\"; y = 1;") != NULL,
          "the user's code keeps everything but the marker");
    CHECK(!strstr(text.p, model_token_text(v, model_vocab_bos(v))), "BOS is left to the server");
    free(text.p);
    free(ids);
    model_vocab_free(v);
}

/* fimd serving LSP on a backend at m, initialized and ready (NULL after a failed check). */
static lsp_client *start_server(const mock *m, const char *log, const char *key_env)
{
    char fimd[4096], backend[256];
    const char *bin = getenv("FIMD_BIN");
    snprintf(fimd, sizeof fimd, "%s", bin && *bin ? bin : "build/fimd");
    snprintf(backend, sizeof backend, "llamacpp:%s", m->url);
    char *argv[] = {fimd,
                    "--model",
                    (char *)MODEL,
                    "--log",
                    (char *)log,
                    "--backend",
                    backend,
                    key_env ? "--api-key-env" : NULL,
                    (char *)key_env,
                    NULL};
    lsp_client *c = lsp_client_start(argv);
    char err[512];
    char *r = lsp_client_call(c, "initialize", "{\"processId\":null,\"capabilities\":{}}", 10000,
                              err, sizeof err);
    free(r);
    lsp_client_notify(c, "initialized", "{}");
    char *state = NULL;
    for (int i = 0; i < 500; i++) {
        free(state);
        r = lsp_client_call(c, "fimd/status", "{}", 10000, err, sizeof err);
        state = r ? lsp_json_path(r, "state") : NULL;
        free(r);
        if (!state || strcmp(state, "loading")) break;
        usleep(10000);
    }
    bool ok = CHECK(state && !strcmp(state, "ready"), "server with a remote backend is ready (%s)",
                    state ? state : err);
    free(state);
    if (!ok) lsp_client_finish(c);
    return ok ? c : NULL;
}

static void open_sample(lsp_client *c)
{
    size_t len;
    char *text = check_read(SAMPLE, &len), *q = lsp_json_quote(text, len);
    char *open = malloc(len * 2 + 512);
    sprintf(open,
            "{\"textDocument\":{\"uri\":\"file:///"
            "s.c\",\"languageId\":\"c\",\"version\":1,\"text\":%s}}",
            q);
    lsp_client_notify(c, "textDocument/didOpen", open);
    free(text), free(q), free(open);
}

/* Typing fast over LSP against a slow stream: each keystroke supersedes the request before it,
 * whose stream is closed; the last gets its answer and the server serves on. */
static void supersede(void)
{
    const char *slow[] = {"--token-delay-ms", "30", NULL};
    mock m;
    if (!mock_start(&m, "llamacpp", slow)) return;
    lsp_client *c = start_server(&m, check_tmp("remote-supersede.log"), NULL);
    if (!c) {
        mock_stop(&m);
        return;
    }
    open_sample(c);
    int ids[8], n = 0;
    const char *typed = "total";
    for (int k = 0; k < 5; k++) {
        char p[512];
        snprintf(p, sizeof p,
                 "{\"textDocument\":{\"uri\":\"file:///"
                 "s.c\",\"version\":%d},\"contentChanges\":[{\"range\":"
                 "{\"start\":{\"line\":12,\"character\":%d},\"end\":{\"line\":12,\"character\":%d}}"
                 ",\"text\":\"%c\"}]}",
                 k + 2, 8 + k, 8 + k, typed[k]);
        lsp_client_notify(c, "textDocument/didChange", p);
        snprintf(p, sizeof p,
                 "{\"textDocument\":{\"uri\":\"file:///"
                 "s.c\"},\"position\":{\"line\":12,\"character\":%d},"
                 "\"context\":{\"triggerKind\":2}}",
                 9 + k);
        ids[n++] = lsp_client_send(c, "textDocument/inlineCompletion", p);
        usleep(60000); /* mid-stream: a few tokens in */
    }
    int superseded = 0;
    char err[512];
    for (int k = 0; k < n; k++) {
        err[0] = 0;
        char *r = lsp_client_wait(c, ids[k], 20000, err, sizeof err);
        if (k < n - 1)
            superseded += !r && (strstr(err, "cancelled") || strstr(err, "modified"));
        else
            CHECK(r != NULL, "the newest request is answered (%s)", r ? "ok" : err);
        free(r);
    }
    CHECK(superseded == n - 1, "%d of %d older requests were superseded", superseded, n - 1);
    char *r = lsp_client_call(c, "fimd/status", "{}", 10000, err, sizeof err);
    char *health = r ? lsp_json_path(r, "backend.health") : NULL;
    CHECK(health && !strcmp(health, "ok"), "still serving, backend healthy (%s)",
          health ? health : err);
    free(health), free(r);
    CHECK(lsp_client_finish(c) == 0, "server exits cleanly");
    char *log = mock_log(&m);
    int disconnects = 0;
    for (char *p = log; (p = strstr(p, "end=disconnect")); p++) disconnects++;
    CHECK(disconnects >= 3, "the server saw the superseded streams closed (%d)", disconnects);
    free(log);
    mock_stop(&m);
}

/* The API key: sent as a bearer token, never in fimd/status or fimd's log. */
static void api_key(void)
{
    const char *key = "sk-test-7f3a9c";
    setenv("FIMD_TEST_API_KEY", key, 1);
    const char *extra[] = {"--api-key", key, NULL};
    mock m;
    if (!mock_start(&m, "llamacpp", extra)) return;
    char log[512], err[512];
    snprintf(log, sizeof log, "%s", check_tmp("remote-server.log"));
    unlink(log);
    lsp_client *c = start_server(&m, log, "FIMD_TEST_API_KEY");
    if (!c) {
        mock_stop(&m);
        return;
    }
    open_sample(c);
    char *r = lsp_client_call(
        c, "textDocument/inlineCompletion",
        "{\"textDocument\":{\"uri\":\"file:///s.c\"},\"position\":{\"line\":12,\"character\":8},"
        "\"context\":{\"triggerKind\":2}}",
        20000, err, sizeof err);
    char *ins = r ? lsp_json_path(r, "items.0.insertText") : NULL;
    CHECK(ins && expected[0] && !strcmp(ins, expected[0]),
          "LSP inline completion through the backend: [%s] vs [%s]", ins ? ins : (r ? r : err),
          expected[0] ? expected[0] : "");
    free(ins), free(r);
    r = lsp_client_call(c, "fimd/status", "{}", 10000, err, sizeof err);
    char *kind = r ? lsp_json_path(r, "backend.kind") : NULL,
         *health = r ? lsp_json_path(r, "backend.health") : NULL;
    char *ttft = r ? lsp_json_path(r, "last.firstTokenMs") : NULL;
    CHECK(kind && !strcmp(kind, "llamacpp") && health && !strcmp(health, "ok") && ttft,
          "fimd/status: backend %s, health %s, first token %s ms", kind ? kind : "?",
          health ? health : "?", ttft ? ttft : "?");
    CHECK(r && !strstr(r, key), "the API key is not in fimd/status");
    free(kind), free(health), free(ttft), free(r);
    /* switching back to the in-process model at run time */
    lsp_client_notify(c, "workspace/didChangeConfiguration",
                      "{\"settings\":{\"fimd\":{\"backend\":{\"api\":\"local\"}}}}");
    for (int i = 0; i < 500; i++) {
        r = lsp_client_call(c, "fimd/status", "{}", 10000, err, sizeof err);
        kind = r ? lsp_json_path(r, "backend.kind") : NULL;
        free(r);
        bool done = kind && !strcmp(kind, "in-process");
        free(kind);
        if (done) break;
        usleep(10000);
    }
    r = lsp_client_call(
        c, "textDocument/inlineCompletion",
        "{\"textDocument\":{\"uri\":\"file:///s.c\"},\"position\":{\"line\":12,\"character\":8},"
        "\"context\":{\"triggerKind\":2}}",
        20000, err, sizeof err);
    ins = r ? lsp_json_path(r, "items.0.insertText") : NULL;
    /* the server heals indentation from the whole vocabulary, so only an answer is asked here */
    CHECK(ins && *ins, "after switching to in-process: a completion [%s]", ins ? ins : "");
    free(ins), free(r);
    CHECK(lsp_client_finish(c) == 0, "server exits cleanly");
    size_t len;
    char *logged = check_read(log, &len);
    CHECK(logged && !strstr(logged, key), "the API key is not in fimd's log");
    free(logged);
    char *mlog = mock_log(&m);
    char want[128];
    snprintf(want, sizeof want, "auth=Bearer %s", key);
    CHECK(strstr(mlog, want) != NULL, "the key went to the server as a bearer token");
    free(mlog);
    mock_stop(&m);
}

int main(int argc, char **argv)
{
    static const char *const cases[] = {"equality",       "server_cache", "cancellation",
                                        "failures",       "unreachable",  "vocab_mismatch",
                                        "ollama_markers", "supersede",    "api_key"};
    if (!check_args(argc, argv, cases, CHECK_CASES(cases))) return 2;
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n > 0 ? n : 0] = 0;
    char *slash = strrchr(self, '/');
    if (slash) *slash = 0;
    snprintf(mock_bin, sizeof mock_bin, "%s/mock_engine", self);
    signal(SIGPIPE, SIG_IGN);
    size_t len;
    char *text = check_read(SAMPLE, &len);
    if (!CHECK(text && access(MODEL, R_OK) == 0 && access(mock_bin, X_OK) == 0,
               "sample, bundled model and mock engine"))
        return check_done();
    reference(text);
    if (check_want("equality")) {
        equality("llamacpp", text);
        equality("openai", text);
        equality("ollama", text);
    }
    if (check_want("server_cache")) server_cache(text);
    if (check_want("cancellation")) {
        cancellation("llamacpp", text);
        cancellation("sglang", text);
        cancellation("ollama", text);
    }
    if (check_want("failures")) failures(text);
    if (check_want("unreachable")) unreachable_and_slow(text);
    if (check_want("vocab_mismatch")) vocab_mismatch(text);
    if (check_want("ollama_markers")) ollama_markers();
    if (check_want("supersede")) supersede();
    if (check_want("api_key")) api_key();
    for (int k = 0; k < N_CURSORS; k++) free(expected[k]);
    free(text);
    return check_done();
}
