/* lsp/client.c — a small scripted LSP client for fimd's own tools (`fimd demo`): spawns a server on
 * pipes, sends framed messages, waits for answers with a timeout, and reads values out of results.
 */
#define _GNU_SOURCE
#include "lsp/lsp_internal.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct lsp_client {
    pid_t pid;
    int to, from;
    lsp_reader rd;
    int seq;
};

lsp_client *lsp_client_start(char *const argv[])
{
    int in[2], out[2];
    if (pipe(in)) return NULL;
    if (pipe(out)) {
        close(in[0]), close(in[1]);
        return NULL;
    }
    pid_t pid = fork();
    if (pid < 0) return NULL;
    if (pid == 0) {
        dup2(in[0], 0), dup2(out[1], 1);
        close(in[0]), close(in[1]), close(out[0]), close(out[1]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(in[0]), close(out[1]);
    signal(SIGPIPE, SIG_IGN);
    lsp_client *c = calloc(1, sizeof *c);
    c->pid = pid;
    c->to = in[1];
    c->from = out[0];
    return c;
}

static void send_msg(lsp_client *c, const jw *body)
{
    char hdr[64];
    int h = snprintf(hdr, sizeof hdr, "Content-Length: %zu\r\n\r\n", body->n);
    const char *parts[2] = {hdr, body->p};
    size_t lens[2] = {(size_t)h, body->n};
    for (int k = 0; k < 2; k++)
        for (size_t off = 0; off < lens[k];) {
            ssize_t w = write(c->to, parts[k] + off, lens[k] - off);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) return;
            off += (size_t)w;
        }
}

void lsp_client_notify(lsp_client *c, const char *method, const char *params_json)
{
    jw w = {0};
    lsp__jw_fmt(&w, "{\"jsonrpc\":\"2.0\",\"method\":\"%s\",\"params\":%s}", method,
                params_json ? params_json : "{}");
    send_msg(c, &w);
    lsp__jw_free(&w);
}

/* Next message body (malloc'd) or NULL on timeout/EOF. */
static char *next_message(lsp_client *c, int timeout_ms)
{
    for (;;) {
        const char *body;
        size_t len;
        char why[128];
        enum lsp_frame f = lsp__reader_next(&c->rd, &body, &len, why, sizeof why);
        if (f == FRAME_MESSAGE) {
            char *m = malloc(len + 1);
            memcpy(m, body, len);
            m[len] = 0;
            return m;
        }
        if (f != FRAME_NEED_MORE) continue;
        struct pollfd p = {c->from, POLLIN, 0};
        if (poll(&p, 1, timeout_ms) <= 0) return NULL;
        char buf[65536];
        ssize_t n = read(c->from, buf, sizeof buf);
        if (n <= 0) return NULL;
        lsp__reader_feed(&c->rd, buf, (size_t)n);
    }
}

int lsp_client_send(lsp_client *c, const char *method, const char *params_json)
{
    int id = ++c->seq;
    jw w = {0};
    lsp__jw_fmt(&w, "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"%s\",\"params\":%s}", id, method,
                params_json ? params_json : "{}");
    send_msg(c, &w);
    lsp__jw_free(&w);
    return id;
}

char *lsp_client_call(lsp_client *c, const char *method, const char *params_json, int timeout_ms,
                      char *err, size_t errcap)
{
    return lsp_client_wait(c, lsp_client_send(c, method, params_json), timeout_ms, err, errcap);
}

char *lsp_client_wait(lsp_client *c, int id, int timeout_ms, char *err, size_t errcap)
{
    for (char *m; (m = next_message(c, timeout_ms)); free(m)) {
        jdoc d;
        if (lsp__json_parse(&d, m, strlen(m))) {
            lsp__json_free(&d);
            continue;
        }
        int idt = lsp__jget(&d, 0, "id"), mt = lsp__jget(&d, 0, "method");
        long got;
        if (idt >= 0 && mt >= 0) { /* a request from the server: answer null */
            jw r = {0};
            lsp__jw_fmt(&r, "{\"jsonrpc\":\"2.0\",\"id\":%.*s,\"result\":null}",
                        d.t[idt].end - d.t[idt].start + 2 * (d.t[idt].type == JSMN_STRING),
                        d.s + d.t[idt].start - (d.t[idt].type == JSMN_STRING));
            send_msg(c, &r);
            lsp__jw_free(&r);
        } else if (idt >= 0 && lsp__jint(&d, idt, &got) && got == id) {
            int res = lsp__jget(&d, 0, "result");
            char *out = NULL;
            if (res >= 0) {
                out = strndup(d.s + d.t[res].start - (d.t[res].type == JSMN_STRING),
                              (size_t)(d.t[res].end - d.t[res].start) +
                                  2 * (d.t[res].type == JSMN_STRING));
            } else if (err) {
                char *msg =
                    lsp__jstr(&d, lsp__jget(&d, lsp__jget(&d, 0, "error"), "message"), NULL);
                snprintf(err, errcap, "%s", msg ? msg : "error");
                free(msg);
            }
            lsp__json_free(&d);
            free(m);
            return out;
        }
        lsp__json_free(&d);
    }
    if (err) snprintf(err, errcap, "no answer within %d ms", timeout_ms);
    return NULL;
}

int lsp_client_finish(lsp_client *c)
{
    char err[128];
    free(lsp_client_call(c, "shutdown", "null", 20000, err, sizeof err));
    lsp_client_notify(c, "exit", "null");
    close(c->to);
    int status = -1;
    for (int i = 0; i < 500 && waitpid(c->pid, &status, WNOHANG) == 0; i++) usleep(10000);
    if (status == -1) {
        kill(c->pid, SIGKILL);
        waitpid(c->pid, NULL, 0);
    }
    close(c->from);
    lsp__reader_free(&c->rd);
    free(c);
    return status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

char *lsp_json_path(const char *json, const char *path)
{
    jdoc d;
    if (lsp__json_parse(&d, json, strlen(json))) {
        lsp__json_free(&d);
        return NULL;
    }
    int at = 0;
    char key[128];
    for (const char *p = path; at >= 0 && *p;) {
        size_t n = strcspn(p, ".");
        snprintf(key, sizeof key, "%.*s", (int)n, p);
        p += n + (p[n] == '.');
        if (lsp__jis(&d, at, JSMN_ARRAY)) {
            char *e;
            long k = strtol(key, &e, 10);
            at = *e || k < 0 ? -1 : lsp__jelem(&d, at, (int)k);
        } else {
            at = lsp__jget(&d, at, key);
        }
    }
    char *out = NULL;
    if (at >= 0)
        out = d.t[at].type == JSMN_STRING
                  ? lsp__jstr(&d, at, NULL)
                  : strndup(d.s + d.t[at].start, (size_t)(d.t[at].end - d.t[at].start));
    lsp__json_free(&d);
    return out;
}

char *lsp_json_quote(const char *s, size_t n)
{
    jw w = {0};
    lsp__jw_str(&w, s, n);
    return w.p;
}
