/* cli/backend_opts.c — the options every completing command shares for running on a serving
 * engine instead of the in-process model: --backend API:URL, --backend-model NAME, --api-key-env
 * VAR, --ca-file FILE, --timeout-ms N (FIMD_BACKEND stands in for --backend). */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>

static int set_backend(cli_backend *b, const char *val)
{
    const char *colon = strchr(val, ':');
    size_t n = colon ? (size_t)(colon - val) : 0;
    if (!colon || !n || n >= sizeof b->api || !colon[1])
        return cli_fail(
            "--backend needs API:URL (API is openai, sglang, llamacpp or ollama), not '%s'", val);
    memcpy(b->api, val, n);
    b->api[n] = 0;
    b->url = colon + 1;
    return 0;
}

int cli_backend_option(cli_backend *b, int argc, char **argv, int *i)
{
    const char *a = argv[*i], *val = *i + 1 < argc ? argv[*i + 1] : NULL;
    static const char *const names[] = {"--backend", "--backend-model", "--api-key-env",
                                        "--ca-file", "--timeout-ms"};
    int which = -1;
    for (int k = 0; k < (int)(sizeof names / sizeof *names); k++)
        if (!strcmp(a, names[k])) which = k;
    if (which < 0) return 0;
    if (!val) return cli_fail("%s needs a value", a), -1;
    ++*i;
    long v;
    switch (which) {
    case 0:
        return set_backend(b, val) ? -1 : 1;
    case 1:
        b->model_name = val;
        return 1;
    case 2:
        b->api_key_env = val;
        return 1;
    case 3:
        b->ca_file = val;
        return 1;
    default:
        if (cli_parse_int(val, 1, 600000, &v))
            return cli_fail("--timeout-ms needs milliseconds"), -1;
        b->timeout_ms = (int)v;
        return 1;
    }
}

bool cli_backend_remote(cli_backend *b)
{
    const char *env = getenv("FIMD_BACKEND");
    if (!b->api[0] && env && *env && set_backend(b, env)) return false;
    return b->api[0] != 0;
}

fim_backend_spec cli_backend_spec(const cli_backend *b, const char *model_path, int threads)
{
    fim_backend_spec s = {.model_path = model_path, .threads = threads, .load = *cli_model_opts()};
    if (!b->api[0]) return s;
    const char *bundled = cli_bundled_model();
    s.model_is_bundled = model_path && bundled && !strcmp(model_path, bundled);
    s.remote = (fim_remote_config){.api = b->api,
                                   .url = b->url,
                                   .model = b->model_name,
                                   .api_key_env = b->api_key_env,
                                   .ca_file = b->ca_file,
                                   .timeout_ms = b->timeout_ms};
    return s;
}
