/* cli/complete_cmd.c — `fimd complete`: the completion an editor would get at a cursor, through the
 * same code path as the server (LSP position arithmetic, fim prompt, cache, stop rules). Prints the
 * completion text exactly (no newline added); --stats adds one line of figures on stderr. */
#include "cli/cli.h"
#include "fim/fim.h"
#include "lsp/lsp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_complete(int argc, char **argv)
{
    const char *model_path = NULL, *file = NULL;
    long line = -1, character = -1, v;
    bool stats = false;
    fim_config cfg;
    fim_config_default(&cfg);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--stats")) {
            stats = true;
            continue;
        }
        if (a[0] != '-') {
            if (file) return cli_fail("complete: more than one FILE");
            file = a;
            continue;
        }
        if (!val) return cli_fail("complete: %s needs a value (or is unknown)", a);
        i++;
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) model_path = val;
        else if (!strcmp(a, "--line")) {
            if (cli_parse_int(val, 0, 1L << 30, &line)) return cli_fail("complete: --line needs a line number");
        } else if (!strcmp(a, "--character")) {
            if (cli_parse_int(val, 0, 1L << 30, &character)) return cli_fail("complete: --character needs a number");
        } else if (!strcmp(a, "--max-tokens")) {
            if (cli_parse_int(val, 1, 4096, &v)) return cli_fail("complete: --max-tokens needs 1..4096");
            cfg.max_tokens = (int)v;
        } else if (!strcmp(a, "--prefix-tokens")) {
            if (cli_parse_int(val, 0, 1 << 20, &v)) return cli_fail("complete: --prefix-tokens needs a count");
            cfg.prefix_tokens = (int)v;
        } else if (!strcmp(a, "--suffix-tokens")) {
            if (cli_parse_int(val, 0, 1 << 20, &v)) return cli_fail("complete: --suffix-tokens needs a count");
            cfg.suffix_tokens = (int)v;
        } else {
            return cli_fail("complete: unknown option '%s'", a);
        }
    }
    if (!model_path) model_path = getenv("FIMD_MODEL");
    if (!model_path || !file || line < 0 || character < 0)
        return cli_fail("complete: usage: fimd complete -m MODEL FILE --line L --character C");
    char *text;
    size_t len;
    if (cli_read_file(file, &text, &len)) return 1;
    model_err me = {{0}};
    fim_err fe = {{0}};
    model *m = model_load(model_path, &me);
    fim_engine *e = m ? fim_engine_new(m, &fe) : NULL;
    int rc = 0;
    if (!m) rc = cli_fail("%s", me.msg);
    else if (!e) rc = cli_fail("%s", fe.msg);
    if (!rc) {
        size_t cursor;
        lsp_offset_of(text, len, (lsp_pos){line, character}, LSP_UTF16, &cursor);
        fim_request req = {file, text, len, cursor, 0};
        fim_stats st;
        char *out = NULL;
        if (fim_complete(e, &req, &cfg, NULL, &out, &st, &fe)) {
            rc = cli_fail("complete: %s", fe.msg);
        } else {
            fputs(out, stdout);
            if (stats)
                fprintf(stderr, "prompt %d tokens (%d evaluated) %.1f ms, generated %d tokens %.1f ms, %s, stop: %s\n",
                        st.prompt_tokens, st.evaluated, st.prompt_ms, st.generated, st.gen_ms,
                        st.multi_line ? "multi-line" : "single line", fim_stop_name(st.stop));
        }
        free(out);
    }
    fim_engine_free(e);
    model_free(m);
    free(text);
    return rc;
}
