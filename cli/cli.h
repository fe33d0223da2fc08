/* cli/cli.h — shared helpers of fimd's subcommands and the commands' entry points. Each command
 * gets argv starting at its own name and returns the process exit status. */
#ifndef FIMD_CLI_H
#define FIMD_CLI_H

#include "fim/fim.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Print "fimd: <message>" to stderr; returns 1 (the exit status for bad input). */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int cli_parse_int(const char *s, long min, long max, long *out);
/* "ID ID ..." -> malloc'd ids; -1 on a malformed list */
int cli_parse_ids(const char *s, int32_t **ids, size_t *n);
/* Whole file (or stdin for NULL) -> malloc'd buffer; returns 0 or 1 after printing the error */
int cli_read_file(const char *path, char **data, size_t *len);

/* Text scanning for the benchmarks' cursors (cli/text_scan.c). Line ends are the '\n' (or len);
 * indentation counts a tab as 4. cli_body_end: the end of the last non-blank line of the block
 * body whose first line ends at first_line_end, ended by a line indented less than ind (at most
 * max_lines lines). */
bool cli_ident_start(unsigned char c);
bool cli_ident_byte(unsigned char c);
size_t cli_line_end(const char *t, size_t len, size_t at);
int cli_indent(const char *t, size_t at, size_t e);
bool cli_blank_line(const char *t, size_t at, size_t e);
size_t cli_body_end(const char *t, size_t len, size_t first_line_end, int ind, int max_lines);
/* Whether two paths name files of the same folder (the benchmarks open a file's neighbours). */
bool cli_same_dir(const char *a, const char *b);

/* The model that ships with fimd (weights/ beside build/, or share/fimd/ under the install
 * prefix): its path, or NULL when it is not there. */
#define CLI_BUNDLED_NAME "fimd-tiny-code.gguf"
const char *cli_bundled_model(void);
/* `given` when set, else FIMD_MODEL, else the bundled model (saying so on stderr, naming `cmd`,
 * unless cmd is NULL); NULL when there is none. */
const char *cli_model_or_bundled(const char *given, const char *cmd);

/* How the model library loads weights, from FIMD_MLOCK=0, FIMD_HUGEPAGES=0, FIMD_SGEMM=1 and
 * FIMD_KERNELS=scalar|avx2 (cli/model_env.c): read at the first call, the same struct after. */
const model_opts *cli_model_opts(void);

/* Options for a serving engine (cli/backend_opts.c); the strings point into argv or the
 * environment. */
typedef struct cli_backend {
    char api[16];
    const char *url, *model_name, *api_key_env, *ca_file;
    int timeout_ms;
} cli_backend;
#define CLI_BACKEND_USAGE                                                                          \
    "[--backend API:URL [--backend-model NAME] [--api-key-env VAR] [--ca-file F] [--timeout-ms "   \
    "N]]"
/* Consume argv[*i] (and its value) when it is a backend option: 1; 0 when it is not one; -1 after
 * printing what is wrong. */
int cli_backend_option(cli_backend *b, int argc, char **argv, int *i);
/* Whether a backend was given (options, else FIMD_BACKEND); false also after a malformed
 * FIMD_BACKEND (printed). */
bool cli_backend_remote(cli_backend *b);
/* The spec for fim_engine_open: in-process on model_path, or remote with model_path's vocabulary
 * (the bundled model's means prompts go as text). */
fim_backend_spec cli_backend_spec(const cli_backend *b, const char *model_path, int threads);

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
int cmd_bench_quality(int argc, char **argv);

#endif
