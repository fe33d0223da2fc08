/* cli/demo_cmd.c — `fimd demo`: a scripted LSP session against fimd itself, as an editor would run
 * it: initialize, wait for the model, open a file, type a word one keystroke at a time asking for
 * ghost text after each, and print every completion with its cache reuse and timings. */
#define _GNU_SOURCE
#include "cli/cli.h"
#include "base/base.h"
#include "lsp/lsp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void show(const char *label, const char *text)
{
    printf("%s", label);
    for (const char *p = text; *p; p++) {
        if (*p == '\n')
            fputs("\\n", stdout);
        else if (*p == '\t')
            fputs("\\t", stdout);
        else
            putchar(*p);
    }
    printf("\n");
}

int cmd_demo(int argc, char **argv)
{
    const char *model = NULL, *file = "tools/demo/sample.c", *typing = "total += square";
    long line = 12, character = 8;
    char *pass[16]; /* backend options, handed to the server as given */
    int n_pass = 0;
    cli_backend be;
    memset(&be, 0, sizeof be);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int at = i, bo = cli_backend_option(&be, argc, argv, &i);
        if (bo < 0) return 1;
        if (bo) {
            pass[n_pass++] = argv[at], pass[n_pass++] = argv[at + 1];
            continue;
        }
        if (a[0] != '-')
            file = a;
        else if (!v)
            return cli_fail("demo: %s needs a value", a);
        else if (!strcmp(a, "-m") || !strcmp(a, "--model"))
            model = v, i++;
        else if (!strcmp(a, "--line") && !cli_parse_int(v, 0, 1 << 30, &line))
            i++;
        else if (!strcmp(a, "--character") && !cli_parse_int(v, 0, 1 << 30, &character))
            i++;
        else if (!strcmp(a, "--type"))
            typing = v, i++;
        else
            return cli_fail("demo: unknown or malformed option '%s'", a);
    }
    if (!model) model = getenv("FIMD_MODEL");
    /* with no model given, the server is started without one and picks the bundled model itself,
     * as it does for an editor */
    bool bundled = !model || !*model;
    if (bundled) model = cli_bundled_model();
    if (!model)
        return cli_fail(
            "demo: no model: pass -m MODEL.gguf or set FIMD_MODEL (weights/%s is missing)",
            CLI_BUNDLED_NAME);
    char *text;
    size_t len;
    if (cli_read_file(file, &text, &len)) return 1;
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return cli_fail("demo: cannot find the fimd binary");
    self[n] = 0;
    char *args[24] = {self};
    int n_args = 1;
    if (!bundled) args[n_args++] = "--model", args[n_args++] = (char *)model;
    for (int k = 0; k < n_pass; k++) args[n_args++] = pass[k];
    args[n_args] = NULL;
    lsp_client *c = lsp_client_start(args);
    if (!c) return cli_fail("demo: cannot start the server");
    char err[512], params[8192];
    double t0 = base_now_ms();
    char *r = lsp_client_call(c, "initialize", "{\"processId\":null,\"capabilities\":{}}", 10000,
                              err, sizeof err);
    char *enc = r ? lsp_json_path(r, "capabilities.positionEncoding") : NULL;
    printf("initialize: %s (position encoding %s) in %.1f ms\n", r ? "ok" : err, enc ? enc : "?",
           base_now_ms() - t0);
    free(r), free(enc);
    lsp_client_notify(c, "initialized", "{}");
    char *state = NULL;
    for (int i = 0; i < 3000; i++) {
        free(state);
        r = lsp_client_call(c, "fimd/status", "{}", 10000, err, sizeof err);
        state = r ? lsp_json_path(r, "state") : NULL;
        free(r);
        if (!state || strcmp(state, "loading")) break;
        usleep(10000);
    }
    printf("model %s: %s after %.1f ms\n", model, state ? state : err, base_now_ms() - t0);
    r = lsp_client_call(c, "fimd/status", "{}", 10000, err, sizeof err);
    char *note = r ? lsp_json_path(r, "note") : NULL;
    if (note) printf("  (%s)\n", note);
    free(r), free(note);
    int rc = state && !strcmp(state, "ready") ? 0 : 1;
    free(state);
    char *quoted = lsp_json_quote(text, len);
    const char *uri = "file:///demo/sample.c";
    char *open = malloc(strlen(quoted) + 256);
    sprintf(open,
            "{\"textDocument\":{\"uri\":\"%s\",\"languageId\":\"c\",\"version\":1,\"text\":%s}}",
            uri, quoted);
    lsp_client_notify(c, "textDocument/didOpen", open);
    free(open), free(quoted);
    printf(
        "opened %s; typing \"%s\" at line %ld, character %ld, a completion after each keystroke:\n",
        file, typing, line + 1, character + 1);
    for (size_t k = 0; rc == 0 && k <= strlen(typing); k++) {
        if (k > 0) {
            char ch[8] = {typing[k - 1], 0};
            char *q = lsp_json_quote(ch, 1);
            snprintf(
                params, sizeof params,
                "{\"textDocument\":{\"uri\":\"%s\",\"version\":%zu},\"contentChanges\":[{\"range\":"
                "{\"start\":{\"line\":%ld,\"character\":%ld},\"end\":{\"line\":%ld,\"character\":%"
                "ld}},\"text\":%s}]}",
                uri, k + 1, line, character + (long)k - 1, line, character + (long)k - 1, q);
            free(q);
            lsp_client_notify(c, "textDocument/didChange", params);
        }
        snprintf(params, sizeof params,
                 "{\"textDocument\":{\"uri\":\"%s\"},\"position\":{\"line\":%ld,\"character\":%ld},"
                 "\"context\":{\"triggerKind\":2}}",
                 uri, line, character + (long)k);
        double t1 = base_now_ms();
        r = lsp_client_call(c, "textDocument/inlineCompletion", params, 60000, err, sizeof err);
        double ms = base_now_ms() - t1;
        char *ins = r ? lsp_json_path(r, "items.0.insertText") : NULL;
        free(r);
        r = lsp_client_call(c, "fimd/status", "{}", 10000, err, sizeof err);
        char *ev = r ? lsp_json_path(r, "last.tokensEvaluated") : NULL,
             *re = r ? lsp_json_path(r, "last.tokensReused") : NULL;
        char *pm = r ? lsp_json_path(r, "last.promptMs") : NULL,
             *gm = r ? lsp_json_path(r, "last.generationMs") : NULL;
        char *sc = r ? lsp_json_path(r, "last.serverCachedTokens") : NULL;
        if (sc)
            printf(
                "  [%-16.*s] %6.1f ms  (server cached %s prompt tokens; first token after %s ms)\n",
                (int)k, typing, ms, sc, pm ? pm : "?");
        else
            printf("  [%-16.*s] %6.1f ms  (prompt: %s reused, %s evaluated, %s ms; generation %s "
                   "ms)\n",
                   (int)k, typing, ms, re ? re : "?", ev ? ev : "?", pm ? pm : "?", gm ? gm : "?");
        show("      ghost text: ", ins ? ins : "(none)");
        free(r), free(ins), free(ev), free(re), free(pm), free(gm), free(sc);
    }
    int status = lsp_client_finish(c);
    printf("shutdown and exit: status %d\n", status);
    free(text);
    return rc || status;
}
