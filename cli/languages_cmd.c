/* cli/languages_cmd.c — `fimd languages`: the language registry as a table (name, grammar or "-",
 * LSP ids, extensions), or with --grammars the compiled grammars, one per line; and
 * `fimd languages --detect PATH [--language ID]` prints what detection picks for a file. */
#define _GNU_SOURCE
#include "cli/cli.h"
#include "parsers/parsers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_languages(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "--grammars")) {
        for (int i = 0; i < parsers_grammar_count(); i++) printf("%s\n", parsers_grammar_name(i));
        return 0;
    }
    if (argc >= 3 && !strcmp(argv[1], "--detect")) {
        const char *id = argc >= 5 && !strcmp(argv[3], "--language") ? argv[4] : NULL;
        char *text = NULL;
        size_t len = 0;
        FILE *f = fopen(argv[2], "rb");
        if (f) { /* the first line, for a shebang; a missing file is detected by name alone */
            char line[512];
            if (fgets(line, sizeof line, f)) text = strdup(line), len = strlen(line);
            fclose(f);
        }
        const parsers_lang *l = parsers_detect(id, argv[2], text, len);
        free(text);
        if (!l) return cli_fail("languages: no language for %s", argv[2]);
        printf("%s\t%s\n", l->name, parsers_grammar(l) ? l->grammar : "-");
        return 0;
    }
    if (argc > 1)
        return cli_fail(
            "languages: usage: fimd languages [--grammars | --detect PATH [--language ID]]");
    for (int i = 0; i < parsers_lang_count(); i++) {
        const parsers_lang *l = parsers_lang_at(i);
        printf("%s\t%s%s\t%s\t%s\n", l->name, parsers_grammar(l) ? l->grammar : "-",
               l->approx ? " (approx)" : "", l->lsp_ids ? l->lsp_ids : "-",
               l->extensions ? l->extensions : "-");
    }
    return 0;
}
