/* cli/main.c — the one fimd binary: dispatches subcommands (tokenize, detokenize, logits,
 * generate, info, tensor, synth). Every command reports bad input as a message on stderr and
 * exit status 1; usage errors exit 2. */
#define _GNU_SOURCE
#include "cli/cli.h"
#include "lsp/lsp.h"
#include "base/base.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int cli_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("fimd: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

int cli_parse_int(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max) return -1;
    *out = v;
    return 0;
}

/* Parse "ID ID ..." (spaces, tabs, newlines or commas between ids). */
int cli_parse_ids(const char *s, int32_t **ids, size_t *n)
{
    size_t cap = 16, k = 0;
    int32_t *v = malloc(cap * sizeof *v);
    if (!v) return -1;
    while (*s) {
        while (*s == ' ' || *s == '\t' || *s == '\n' || *s == ',') s++;
        if (!*s) break;
        char *end;
        errno = 0;
        long x = strtol(s, &end, 10);
        if (errno || end == s || x < 0 || x > INT32_MAX ||
            (*end && *end != ' ' && *end != '\t' && *end != '\n' && *end != ',')) {
            free(v);
            return -1;
        }
        if (k == cap) {
            int32_t *p = realloc(v, (cap *= 2) * sizeof *v);
            if (!p) {
                free(v);
                return -1;
            }
            v = p;
        }
        v[k++] = (int32_t)x;
        s = end;
    }
    *ids = v;
    *n = k;
    return 0;
}

int cli_read_file(const char *path, char **data, size_t *len)
{
    FILE *f = path ? fopen(path, "rb") : stdin;
    if (!f) return cli_fail("%s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) break;
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (n < cap) break;
        char *p = realloc(buf, cap *= 2);
        if (!p) {
            free(buf);
            buf = NULL;
        }
        buf = p;
    }
    bool bad = ferror(f);
    if (path) fclose(f);
    if (!buf || bad) {
        free(buf);
        return cli_fail("%s: read error", path ? path : "stdin");
    }
    *data = buf;
    *len = n;
    return 0;
}

/* `fimd [--model PATH] [--threads N] [--log FILE]`: serve LSP on stdin/stdout. */
static int serve(int argc, char **argv)
{
    lsp_options o = {0};
    o.model = getenv("FIMD_MODEL");
    o.in_fd = 0;
    o.out_fd = 1;
    cli_backend be;
    memset(&be, 0, sizeof be);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        long v;
        if (!strcmp(a, "--stdio")) continue; /* what some clients pass by habit */
        if (!strcmp(a, "--no-type-through")) {
            o.no_type_through = true;
            continue;
        }
        if (!strcmp(a, "--no-prefetch")) {
            o.no_prefetch = true;
            continue;
        }
        int bo = cli_backend_option(&be, argc, argv, &i);
        if (bo < 0) return 1;
        if (bo) continue;
        if (!val) return cli_fail("%s needs a value (or is unknown)", a);
        i++;
        if (!strcmp(a, "--model") || !strcmp(a, "-m"))
            o.model = val;
        else if (!strcmp(a, "--log"))
            o.log_path = val;
        else if (!strcmp(a, "--threads")) {
            if (cli_parse_int(val, 0, 1024, &v)) return cli_fail("--threads needs a number");
            o.threads = (int)v;
        } else {
            return cli_fail("unknown option '%s'", a);
        }
    }
    o.bundled_model = cli_bundled_model();
    o.load = *cli_model_opts();
    if (cli_backend_remote(&be)) {
        o.backend_api = be.api, o.backend_url = be.url, o.backend_model = be.model_name;
        o.api_key_env = be.api_key_env, o.ca_file = be.ca_file, o.timeout_ms = be.timeout_ms;
    }
    return lsp_serve(&o);
}

static void usage(FILE *f)
{
    fputs(
        "usage: fimd [--model PATH] [--threads N] [--log FILE] [--no-type-through] "
        "[--no-prefetch]\n"
        "            [BACKEND]   serve LSP on stdio\n"
        "       (no model given: FIMD_MODEL, else the bundled weights/fimd-tiny-code.gguf)\n"
        "       BACKEND: --backend API:URL [--backend-model NAME] [--api-key-env VAR] [--ca-file "
        "F]\n"
        "       [--timeout-ms N]: a serving engine runs the model (API: openai, sglang, llamacpp,\n"
        "       ollama); -m then names a GGUF with its tokenizer. Also for complete, bench-typing, "
        "demo.\n"
        "       fimd <command> [options]\n"
        "  tokenize   -m MODEL.gguf [--no-bos] [--special] [--nul] [FILE]\n"
        "  detokenize -m MODEL.gguf IDS...\n"
        "  logits     -m MODEL.gguf --tokens \"ID ...\" [--chunk N] -o OUT.f32\n"
        "  generate   -m MODEL.gguf --tokens \"ID ...\" -n N\n"
        "  info       -m MODEL.gguf\n"
        "  tensor     -m MODEL.gguf NAME -o OUT.f32\n"
        "  complete   -m MODEL FILE --line L --character C [--open OTHER ...] [--budget N]\n"
        "             [--language ID] [--max-tokens N] [--assume-output TEXTFILE] [--no-drafts]\n"
        "             [--stats]\n"
        "  context    -m MODEL FILE --line L --character C [--open OTHER ...] [--budget N] "
        "[--stats]\n"
        "             the exact prompt text (needs only a vocabulary)\n"
        "  bench-context -m MODEL --budget B [--naive] [--verbose] [--prompts] FILE...\n"
        "             identifier recall of the prompt\n"
        "  bench-quality -m MODEL [--budget N] [--naive] [--json] [--verbose] [-t N] FILE...\n"
        "             exact match and edit similarity of completions at sampled cursors\n"
        "  languages  [--grammars]   the language registry (name, grammar, extensions)\n"
        "  demo       [-m MODEL] [FILE --line L --character C --type TEXT]   a scripted LSP "
        "session\n"
        "  bench      -m MODEL [-p 512] [-n 64] [-t N] [--draft-oracle [--draft-k K]] [--json]\n"
        "             prompt/decode speed, GB/s, RSS; verification of drafts\n"
        "  bench-typing -m MODEL FILE --line L [--lines 3] [--n-predict 16] [--accept]\n"
        "             [--no-type-through] [--no-prefetch] [--no-drafts] [--json]\n"
        "             latency per keystroke (or accept), model steps per completion\n"
        "  synth      --like lite|full|tiny [shape options] --type TYPE [--vocab-from FILE]\n"
        "             [--merges-from FILE ...] --seed S -o OUT.gguf   (fimd synth --help)\n",
        f);
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {
        {"tokenize", cmd_tokenize},
        {"detokenize", cmd_detokenize},
        {"logits", cmd_logits},
        {"generate", cmd_generate},
        {"info", cmd_info},
        {"tensor", cmd_tensor},
        {"synth", cmd_synth},
        {"complete", cmd_complete},
        {"demo", cmd_demo},
        {"bench", cmd_bench},
        {"bench-typing", cmd_bench_typing},
        {"context", cmd_context},
        {"bench-context", cmd_bench_context},
        {"languages", cmd_languages},
        {"bench-quality", cmd_bench_quality},
    };
    if (argc < 2 || argv[1][0] == '-') {
        if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
            usage(stdout);
            return 0;
        }
        return serve(argc, argv);
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++)
        if (!strcmp(argv[1], cmds[i].name)) return cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "fimd: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
