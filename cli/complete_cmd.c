/* cli/complete_cmd.c — `fimd complete` and `fimd context`: what an editor would get at a cursor,
 * through the server's code path (LSP position arithmetic, documents with syntax trees, related
 * definitions from --open files, the FIM prompt, cache, stop rules). `complete` prints the
 * completion exactly (no newline added; --stats adds a line of figures on stderr), and with
 * --assume-output FILE runs everything after the model on that text instead of sampling.
 * `context` prints the exact prompt text with special tokens as their text; only a vocabulary is
 * needed (any GGUF with one). */
#include "cli/cli.h"
#include "fim/fim.h"
#include "lsp/lsp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_OPEN = 256 };

typedef struct at_cursor {
    const char *model, *file, *language, *assume;
    const char *open[MAX_OPEN];
    int n_open;
    long line, character;
    bool stats;
    fim_config cfg;
    cli_backend be;
} at_cursor;

static int parse_count(const char *cmd, const char *opt, const char *val, long lo, long hi,
                       int *out)
{
    long v;
    if (cli_parse_int(val, lo, hi, &v))
        return cli_fail("%s: %s needs a number in %ld..%ld", cmd, opt, lo, hi);
    *out = (int)v;
    return 0;
}

static int parse_at_cursor(const char *cmd, int argc, char **argv, at_cursor *o)
{
    memset(o, 0, sizeof *o);
    o->line = o->character = -1;
    fim_config_default(&o->cfg);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0, budget = 0;
        if (!strcmp(a, "--stats") || !strcmp(a, "--no-drafts")) {
            if (a[2] == 's')
                o->stats = true;
            else
                o->cfg.drafts = 0;
            continue;
        }
        int bo = cli_backend_option(&o->be, argc, argv, &i);
        if (bo < 0) return 1;
        if (bo) continue;
        if (a[0] != '-') {
            if (o->file) return cli_fail("%s: more than one FILE", cmd);
            o->file = a;
            continue;
        }
        if (!val) return cli_fail("%s: %s needs a value (or is unknown)", cmd, a);
        i++;
        if (!strcmp(a, "-m") || !strcmp(a, "--model"))
            o->model = val;
        else if (!strcmp(a, "--line")) {
            if (cli_parse_int(val, 0, 1L << 30, &o->line))
                return cli_fail("%s: --line needs a line number", cmd);
        } else if (!strcmp(a, "--character")) {
            if (cli_parse_int(val, 0, 1L << 30, &o->character))
                return cli_fail("%s: --character needs a number", cmd);
        } else if (!strcmp(a, "--open")) {
            if (o->n_open == MAX_OPEN)
                return cli_fail("%s: at most %d --open files", cmd, MAX_OPEN);
            o->open[o->n_open++] = val;
        } else if (!strcmp(a, "--language"))
            o->language = val;
        else if (!strcmp(a, "--assume-output"))
            o->assume = val;
        else if (!strcmp(a, "--budget")) {
            bad = parse_count(cmd, a, val, 16, 1 << 20, &budget);
            if (!bad) fim_config_budget(&o->cfg, budget);
        } else if (!strcmp(a, "--max-tokens"))
            bad = parse_count(cmd, a, val, 1, 4096, &o->cfg.max_tokens);
        else if (!strcmp(a, "--prefix-tokens"))
            bad = parse_count(cmd, a, val, 0, 1 << 20, &o->cfg.prefix_tokens);
        else if (!strcmp(a, "--suffix-tokens"))
            bad = parse_count(cmd, a, val, 0, 1 << 20, &o->cfg.suffix_tokens);
        else if (!strcmp(a, "--related-tokens"))
            bad = parse_count(cmd, a, val, 0, 1 << 20, &o->cfg.related_tokens);
        else
            return cli_fail("%s: unknown option '%s'", cmd, a);
        if (bad) return 1;
    }
    o->model = cli_model_or_bundled(o->model, NULL);
    if (!o->model)
        return cli_fail(
            "%s: no model: pass -m MODEL.gguf or set FIMD_MODEL (the bundled %s was not found)",
            cmd, CLI_BUNDLED_NAME);
    if (!o->file || o->line < 0 || o->character < 0)
        return cli_fail(
            "%s: usage: fimd %s -m MODEL FILE --line L --character C [--open OTHER ...] "
            "[--no-drafts] [--stats]",
            cmd, cmd);
    return 0;
}

/* The document at the cursor and the other open ones, as a context (NULL after printing why). */
static fim_context *open_context(const at_cursor *o)
{
    char *text;
    size_t len;
    if (cli_read_file(o->file, &text, &len)) return NULL;
    fim_doc *docs[MAX_OPEN + 1] = {0};
    int n = 0;
    docs[n++] = fim_doc_new(o->file, o->language, text, len);
    free(text);
    for (int i = 0; i < o->n_open; i++) {
        if (cli_read_file(o->open[i], &text, &len)) {
            for (int k = 0; k < n; k++) fim_doc_free(docs[k]);
            return NULL;
        }
        docs[n++] = fim_doc_new(o->open[i], NULL, text, len);
        free(text);
    }
    const char *t = fim_doc_text(docs[0], &len);
    size_t cursor;
    lsp_offset_of(t, len, (lsp_pos){o->line, o->character}, LSP_UTF16, &cursor);
    fim_context *c = fim_context_new(docs[0], cursor, docs, n);
    for (int k = 0; k < n; k++) fim_doc_free(docs[k]);
    return c;
}

int cmd_complete(int argc, char **argv)
{
    at_cursor o;
    if (parse_at_cursor("complete", argc, argv, &o)) return 1;
    char *assumed = NULL;
    size_t assumed_len = 0;
    if (o.assume && cli_read_file(o.assume, &assumed, &assumed_len)) return 1;
    fim_context *ctx = open_context(&o);
    if (!ctx) {
        free(assumed);
        return 1;
    }
    fim_err fe = {{0}};
    cli_backend_remote(&o.be);
    fim_backend_spec spec = cli_backend_spec(&o.be, o.model, 0);
    fim_engine *e = fim_engine_open(&spec, &fe);
    int rc = e ? 0 : cli_fail("%s", fe.msg);
    if (e && o.stats) {
        fim_backend_status bs;
        fim_engine_status(e, &bs);
        if (bs.note[0]) fprintf(stderr, "fimd: %s\n", bs.note);
    }
    if (!rc) {
        fim_request req = {
            .doc = o.file, .ctx = ctx, .assume_output = assumed, .assume_len = assumed_len};
        fim_stats st;
        char *out = NULL;
        if (fim_complete(e, &req, &o.cfg, NULL, &out, &st, &fe)) {
            rc = cli_fail("complete: %s", fe.msg);
        } else {
            fputs(out, stdout);
            if (o.stats)
                fprintf(stderr,
                        "prompt %d tokens (%d evaluated, %d cached by the server) %.1f ms, first "
                        "token %.1f ms, "
                        "generated %d tokens %.1f ms in %d steps (%d of %d drafts accepted), "
                        "%s, stop: %s%s%s\n",
                        st.prompt_tokens, st.evaluated, st.server_cached, st.prompt_ms,
                        st.first_token_ms, st.generated, st.gen_ms, st.steps, st.accepted,
                        st.drafted, st.multi_line ? "multi-line" : "single line",
                        fim_stop_name(st.stop), st.note[0] ? "; " : "", st.note);
        }
        free(out);
    }
    fim_engine_free(e);
    fim_context_free(ctx);
    free(assumed);
    return rc;
}

int cmd_context(int argc, char **argv)
{
    at_cursor o;
    if (parse_at_cursor("context", argc, argv, &o)) return 1;
    model_err me = {{0}};
    model_gguf *g = model_gguf_open(o.model, &me);
    model_vocab *v = g ? model_vocab_load(g, &me) : NULL;
    if (!v) {
        model_gguf_close(g);
        return cli_fail("%s", me.msg);
    }
    fim_context *ctx = open_context(&o);
    int rc = ctx ? 0 : 1;
    int32_t *ids = NULL;
    size_t n = 0;
    fim_err fe = {{0}};
    if (ctx && fim_prompt_ids(v, ctx, &o.cfg, &ids, &n, &fe)) rc = cli_fail("context: %s", fe.msg);
    for (size_t i = 0; !rc && i < n; i++) {
        if (model_token_is_control(v, ids[i])) {
            fputs(model_token_text(v, ids[i]), stdout);
            continue;
        }
        char buf[256];
        int k = model_token_bytes(v, ids[i], buf, sizeof buf);
        fwrite(buf, 1, (size_t)(k < (int)sizeof buf ? k : (int)sizeof buf), stdout);
    }
    if (!rc && o.stats)
        fprintf(stderr, "%zu tokens (prefix %d, suffix %d, related %d), %s\n", n,
                o.cfg.prefix_tokens, o.cfg.suffix_tokens, o.cfg.related_tokens,
                fim_context_multi_line(ctx) ? "multi-line" : "single line");
    free(ids);
    fim_context_free(ctx);
    model_vocab_free(v);
    model_gguf_close(g);
    return rc;
}
