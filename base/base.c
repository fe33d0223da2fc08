/* base/base.c — allocation that ends the process on failure, and the monotonic clock. */
#define _GNU_SOURCE
#include "base/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void *checked(void *p, size_t n)
{
    if (!p) {
        fprintf(stderr, "fimd: out of memory (%zu bytes)\n", n);
        abort();
    }
    return p;
}

void *base_xmalloc(size_t n)
{
    return checked(malloc(n ? n : 1), n);
}

void *base_xcalloc(size_t count, size_t size)
{
    return checked(calloc(count ? count : 1, size ? size : 1), count * size);
}

void *base_xrealloc(void *p, size_t n)
{
    return checked(realloc(p, n ? n : 1), n);
}

char *base_xstrdup(const char *s)
{
    return checked(strdup(s), strlen(s) + 1);
}

double base_now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}
