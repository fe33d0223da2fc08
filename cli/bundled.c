/* cli/bundled.c — where the model comes from when none is given: -m, else FIMD_MODEL, else the
 * small model that ships with fimd, found beside the binary's tree (build/fimd -> weights/) or
 * under its install prefix (bin/fimd -> share/fimd/). */
#define _GNU_SOURCE
#include "cli/cli.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const BUNDLED_PLACES[] = {"../weights/", "../share/fimd/"};

const char *cli_bundled_model(void)
{
    static char found[PATH_MAX + 64];
    if (found[0]) return found;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return NULL;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash) return NULL;
    slash[1] = 0;
    for (size_t i = 0; i < sizeof BUNDLED_PLACES / sizeof *BUNDLED_PLACES; i++) {
        char path[PATH_MAX + 64];
        snprintf(path, sizeof path, "%s%s%s", exe, BUNDLED_PLACES[i], CLI_BUNDLED_NAME);
        if (access(path, R_OK) == 0 && realpath(path, found)) return found;
    }
    found[0] = 0;
    return NULL;
}

const char *cli_model_or_bundled(const char *given, const char *cmd)
{
    if (given && *given) return given;
    const char *env = getenv("FIMD_MODEL");
    if (env && *env) return env;
    const char *b = cli_bundled_model();
    if (b && cmd)
        fprintf(stderr,
                "fimd %s: no model given; using the bundled %s (a small model for trying fimd; "
                "use a DeepSeek-Coder-V2-Lite GGUF for real work)\n",
                cmd, b);
    return b;
}
