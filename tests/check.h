/* tests/check.h — the check macros every test program uses: each CHECK prints the failing
 * condition with its values; check_done() prints "N passed, N failed" and gives the exit status.
 * Also: where the shared reference fixtures are (or why conformance tests are skipped). */
#ifndef FIMD_CHECK_H
#define FIMD_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

extern int check_passed, check_failed;

bool check_report(bool ok, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* CHECK(cond, "fmt", args): counts one check; on failure prints the message. */
#define CHECK(cond, ...) check_report((cond), __FILE__, __LINE__, __VA_ARGS__)

int check_done(void);

/* Case names on the command line: `build/tests/test_fim sessions` runs that case only, no names run
 * them all. check_args checks the names against the program's cases (an unknown one: a message
 * listing them, and false: exit 2); check_want says whether a case runs. */
bool check_args(int argc, char **argv, const char *const *cases, int n);
bool check_want(const char *name);
#define CHECK_CASES(argv_cases) (int)(sizeof(argv_cases) / sizeof *(argv_cases))

/* The shared fixtures folder (FIMD_SHARED/fixtures, default ../shared/fixtures), or NULL with a
 * "skipped: ..." line printed naming the tests that cannot run. */
const char *check_fixtures(const char *what);
/* A path inside the test scratch folder (FIMD_TMP, default /tmp/fimd-test); static buffer rotation.
 */
const char *check_tmp(const char *name);
/* A tiny synthesized Q8_0 model (seed 4, 400 merges learned from the two files), written to the
 * scratch folder as `name` and loaded; NULL after a failed check. The caller frees it. */
struct model;
struct model *check_tiny_model(const char *name, const char *merges_a, const char *merges_b);
/* The fixture model folders under fx/models (names without a dot), sorted, at most max; each
 * name malloc'd (the caller frees them). -1 after a failed check when the folder cannot be read. */
int check_model_dirs(const char *fx, char **names, int max);
/* Whole file, malloc'd and NUL-terminated; NULL if unreadable. */
char *check_read(const char *path, size_t *len);

#endif
