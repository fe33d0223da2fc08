/* cli/cli.h — shared helpers of fimd's subcommands and the commands' entry points. Each command
 * gets argv starting at its own name and returns the process exit status. */
#ifndef FIMD_CLI_H
#define FIMD_CLI_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Print "fimd: <message>" to stderr; returns 1 (the exit status for bad input). */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int cli_parse_int(const char *s, long min, long max, long *out);
/* "ID ID ..." -> malloc'd ids; -1 on a malformed list */
int cli_parse_ids(const char *s, int32_t **ids, size_t *n);
/* Monotonic clock in milliseconds, for timings. */
double cli_now_ms(void);
/* Whole file (or stdin for NULL) -> malloc'd buffer; returns 0 or 1 after printing the error */
int cli_read_file(const char *path, char **data, size_t *len);

int cmd_tokenize(int argc, char **argv);
int cmd_detokenize(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_tensor(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_complete(int argc, char **argv);
int cmd_context(int argc, char **argv);
int cmd_bench_context(int argc, char **argv);
int cmd_languages(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_bench_typing(int argc, char **argv);

#endif
