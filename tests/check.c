/* tests/check.c — implementation of the shared check helpers (see check.h). */
#define _GNU_SOURCE
#include "tests/check.h"
#include "model/model.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int check_passed, check_failed;

bool check_report(bool ok, const char *file, int line, const char *fmt, ...)
{
    if (ok) {
        check_passed++;
        return true;
    }
    check_failed++;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stdout, "FAIL %s:%d: ", file, line);
    vfprintf(stdout, fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
    fflush(stdout);
    return false;
}

int check_done(void)
{
    printf("%d passed, %d failed\n", check_passed, check_failed);
    return check_failed ? 1 : 0;
}

static char **wanted;
static int n_wanted;

bool check_args(int argc, char **argv, const char *const *cases, int n)
{
    for (int i = 1; i < argc; i++) {
        bool known = false;
        for (int k = 0; k < n; k++) known |= !strcmp(argv[i], cases[k]);
        if (!known) {
            fprintf(stderr, "%s: unknown case '%s'; the cases are:", argv[0], argv[i]);
            for (int k = 0; k < n; k++) fprintf(stderr, " %s", cases[k]);
            fputc('\n', stderr);
            return false;
        }
    }
    wanted = argv + 1;
    n_wanted = argc - 1;
    return true;
}

bool check_want(const char *name)
{
    if (n_wanted <= 0) return true;
    for (int i = 0; i < n_wanted; i++)
        if (!strcmp(wanted[i], name)) return true;
    return false;
}

const char *check_fixtures(const char *what)
{
    static char path[4096];
    const char *shared = getenv("FIMD_SHARED");
    snprintf(path, sizeof path, "%s/fixtures", shared && *shared ? shared : "../shared");
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return path;
    printf("skipped: %s (no reference fixtures at %s)\n", what, path);
    return NULL;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int check_model_dirs(const char *fx, char **names, int max)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/models", fx);
    DIR *d = opendir(dir);
    if (!CHECK(d != NULL, "open %s", dir)) return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) && n < max;)
        if (e->d_name[0] != '.' && !strchr(e->d_name, '.')) names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_name);
    return n;
}

const char *check_tmp(const char *name)
{
    static char bufs[8][4096];
    static int k;
    const char *dir = getenv("FIMD_TMP");
    if (!dir || !*dir) dir = "/tmp/fimd-test";
    mkdir(dir, 0755);
    char *b = bufs[k++ % 8];
    snprintf(b, 4096, "%s/%s", dir, name);
    return b;
}

char *check_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) buf[n] = 0;
    if (len) *len = (size_t)n;
    return buf;
}

model *check_tiny_model(const char *name, const char *merges_a, const char *merges_b)
{
    model_synth_opts o;
    model_synth_preset(&o, "tiny");
    const char *files[] = {merges_a, merges_b};
    o.merge_files = files, o.n_merge_files = 2, o.n_merges = 400, o.seed = 4,
    o.type = MODEL_TYPE_Q8_0;
    const char *path = check_tmp(name);
    model_err me = {{0}};
    if (!CHECK(model_synth(&o, path, &me) == 0, "synth: %s", me.msg)) return NULL;
    model *m = model_load(path, &me);
    CHECK(m != NULL, "load: %s", me.msg);
    return m;
}
