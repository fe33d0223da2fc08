/* base/base.h — what every module shares and none owns: allocation that cannot fail (running out
 * of memory ends the process with a message, the one place fimd gives up) and the monotonic clock.
 * Below model/; depends on nothing but libc. */
#ifndef FIMD_BASE_H
#define FIMD_BASE_H

#include <stddef.h>

/* malloc, calloc, realloc and strdup that never return NULL: on failure they print
 * "fimd: out of memory (N bytes)" and abort. The caller frees the result with free(). A zero size
 * still gives a unique pointer. */
void *base_xmalloc(size_t n);
void *base_xcalloc(size_t count, size_t size);
void *base_xrealloc(void *p, size_t n);
char *base_xstrdup(const char *s);

/* Milliseconds on the monotonic clock, for timings. */
double base_now_ms(void);

#endif
