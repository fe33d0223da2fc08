/* cli/model_env.c — the engine's environment switches (FIMD_MLOCK, FIMD_HUGEPAGES, FIMD_SGEMM,
 * FIMD_KERNELS), read once here and handed to the model library as model_opts: nothing below the
 * CLI reads the environment for them. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static bool env_is(const char *name, const char *value)
{
    const char *e = getenv(name);
    return e && !strcmp(e, value);
}

/* An unknown FIMD_KERNELS value means no cap, as before the options existed. */
static enum model_kernel_cap kernel_cap(void)
{
    if (env_is("FIMD_KERNELS", "scalar")) return MODEL_KERNELS_SCALAR;
    if (env_is("FIMD_KERNELS", "avx2")) return MODEL_KERNELS_AVX2;
    return MODEL_KERNELS_BEST;
}

const model_opts *cli_model_opts(void)
{
    static model_opts o;
    static bool read;
    if (!read) { /* the CLI asks from its main thread only */
        o.no_mlock = env_is("FIMD_MLOCK", "0");
        o.no_hugepages = env_is("FIMD_HUGEPAGES", "0");
        o.sgemm = env_is("FIMD_SGEMM", "1");
        o.kernels = kernel_cap();
        read = true;
    }
    return &o;
}
