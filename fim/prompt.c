/* fim/prompt.c — the DeepSeek PSM prompt: BOS <｜fim▁begin｜> prefix <｜fim▁hole｜> suffix
 * <｜fim▁end｜> followed by the cursor line's text before the cursor. The FIM markers are added by
 * id, and user text is tokenized without special-token parsing, so code containing the marker
 * strings cannot inject markers. Pieces never cross a newline in DeepSeek's pre-tokenizer, so the
 * prompt is built line by line and trimmed at line boundaries within the budgets. */
#include "fim/fim_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Prefix windows start on lines that are multiples of a step (budget/64 lines: 16 at the default
 * 1024 tokens), so the tokens of the prefix, and the cache built on them, stay the same while the
 * user types several lines; a step proportional to the budget never shrinks the window by more than
 * about a quarter. */
enum { LINE_BEFORE_MAX_TOKENS = 512 };

int fim__fail(fim_err *err, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

void fim__ids_push(fim_ids_vec *b, const int32_t *ids, size_t n)
{
    if (n == 0) return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap *= 2;
        int32_t *p = realloc(b->v, cap * sizeof *p);
        if (!p) abort();
        b->v = p;
        b->cap = cap;
    }
    memcpy(b->v + b->n, ids, n * sizeof *ids);
    b->n += n;
}

static int tok(const model_vocab *v, const char *s, size_t n, fim_ids_vec *out, fim_err *err)
{
    int32_t *ids;
    size_t k;
    model_err me = {{0}};
    if (model_tokenize(v, s, n, false, false, &ids, &k, &me)) return fim__fail(err, "%s", me.msg);
    fim__ids_push(out, ids, k);
    free(ids);
    return 0;
}

/* One line of text ending at `end` (exclusive): where it starts. */
static size_t line_start(const char *t, size_t end)
{
    while (end > 0 && t[end - 1] != '\n') end--;
    return end;
}

static size_t line_end(const char *t, size_t len, size_t at) /* after the '\n', or len */
{
    const char *nl = memchr(t + at, '\n', len - at);
    return nl ? (size_t)(nl - t) + 1 : len;
}

/* Tokens of the prefix: whole lines walking back from `end` while they fit the budget; the start
 * line then rounds up to a multiple of PREFIX_LINE_STEP (in absolute line numbers). */
static int prefix_tokens(const model_vocab *v, const fim_request *r, size_t end, int budget,
                         fim_ids_vec *out, fim_err *err)
{
    /* line numbers: count lines before `end` once */
    long line_no = r->first_line;
    for (size_t i = 0; i < end; i++) line_no += r->text[i] == '\n';
    fim_ids_vec tmp = {0};
    size_t start = end;
    long start_line = line_no, used = 0;
    while (start > 0) {
        size_t s = line_start(r->text, start - 1);
        tmp.n = 0;
        if (tok(v, r->text + s, start - s, &tmp, err)) {
            free(tmp.v);
            return -1;
        }
        if (used + (long)tmp.n > budget) break;
        used += (long)tmp.n;
        start = s;
        start_line--;
    }
    long step = budget / 64 > 1 ? budget / 64 : 1;
    if (start > 0) { /* trimmed: step the start forward to a stable line */
        while (start < end && start_line % step != 0) {
            start = line_end(r->text, end, start);
            start_line++;
        }
    }
    tmp.n = 0;
    int rc = tok(v, r->text + start, end - start, &tmp, err);
    if (!rc && (long)tmp.n > budget) { /* a single huge line: keep its tail */
        memmove(tmp.v, tmp.v + tmp.n - (size_t)budget, sizeof(int32_t) * (size_t)budget);
        tmp.n = (size_t)budget;
    }
    if (!rc) fim__ids_push(out, tmp.v, tmp.n);
    free(tmp.v);
    return rc;
}

/* Tokens of the suffix: the rest of the cursor line, then whole lines while they fit. */
static int suffix_tokens(const model_vocab *v, const fim_request *r, size_t from, int budget,
                         fim_ids_vec *out, fim_err *err)
{
    fim_ids_vec tmp = {0};
    size_t at = from;
    int used = 0;
    while (at < r->len) {
        size_t e = line_end(r->text, r->len, at);
        size_t before = tmp.n;
        if (tok(v, r->text + at, e - at, &tmp, err)) {
            free(tmp.v);
            return -1;
        }
        if (used + (int)(tmp.n - before) > budget) {
            if (at == from) used = budget, tmp.n = (size_t)budget; /* huge first line: its head */
            else tmp.n = before;
            break;
        }
        used += (int)(tmp.n - before);
        at = e;
    }
    fim__ids_push(out, tmp.v, tmp.n);
    free(tmp.v);
    return 0;
}

int fim__build_prompt(const model_vocab *v, const fim_request *req, const fim_config *cfg,
                      fim_ids_vec *out, fim_err *err)
{
    model_fim_ids f;
    model_err me = {{0}};
    if (model_vocab_fim(v, &f, &me)) return fim__fail(err, "%s", me.msg);
    size_t cursor = req->cursor < req->len ? req->cursor : req->len;
    size_t l0 = line_start(req->text, cursor);
    out->n = 0;
    if (model_vocab_add_bos(v)) {
        int32_t bos = model_vocab_bos(v);
        fim__ids_push(out, &bos, 1);
    }
    fim__ids_push(out, &f.begin, 1);
    if (prefix_tokens(v, req, l0, cfg->prefix_tokens, out, err)) return -1;
    fim__ids_push(out, &f.hole, 1);
    if (suffix_tokens(v, req, cursor, cfg->suffix_tokens, out, err)) return -1;
    fim__ids_push(out, &f.end, 1);
    fim_ids_vec line = {0};
    if (tok(v, req->text + l0, cursor - l0, &line, err)) return -1;
    size_t skip = line.n > LINE_BEFORE_MAX_TOKENS ? line.n - LINE_BEFORE_MAX_TOKENS : 0;
    fim__ids_push(out, line.v + skip, line.n - skip);
    free(line.v);
    return 0;
}
