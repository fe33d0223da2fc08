/* cli/model_cmds.c — the engine's tools: tokenize, detokenize, logits, generate, info and tensor.
 * Scripts compare their output with llama.cpp's, so formats are exact: ids space-separated on one
 * line, logits as little-endian float32 [n_pos][n_vocab]. */
#define _GNU_SOURCE
#include "cli/cli.h"
#include "model/model.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Common options: -m MODEL, -o OUT, --tokens IDS, -n N, --chunk N, flags; the rest positional. */
typedef struct opts {
    const char *model, *out, *tokens;
    long n, chunk;
    bool no_bos, special, nul;
    char **pos;
    int n_pos;
} opts;

static int parse_opts(int argc, char **argv, opts *o, const char *allowed)
{
    memset(o, 0, sizeof *o);
    o->n = -1;
    o->pos = calloc((size_t)argc + 1, sizeof(char *));
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_val = i + 1 < argc;
#define OPT(flag, key) (!strcmp(a, flag) && strstr(allowed, key))
        if (OPT("-m", "m") || OPT("--model", "m")) {
            if (!has_val) return cli_fail("%s needs a value", a);
            o->model = argv[++i];
        } else if (OPT("-o", "o")) {
            if (!has_val) return cli_fail("-o needs a value");
            o->out = argv[++i];
        } else if (OPT("--tokens", "t")) {
            if (!has_val) return cli_fail("--tokens needs a value");
            o->tokens = argv[++i];
        } else if (OPT("-n", "n")) {
            if (!has_val || cli_parse_int(argv[++i], 0, 1 << 20, &o->n))
                return cli_fail("-n needs a count from 0 to %d", 1 << 20);
        } else if (OPT("--chunk", "c")) {
            if (!has_val || cli_parse_int(argv[++i], 1, 1 << 20, &o->chunk))
                return cli_fail("--chunk needs a positive count");
        } else if (OPT("--no-bos", "b")) {
            o->no_bos = true;
        } else if (OPT("--special", "s")) {
            o->special = true;
        } else if (OPT("--nul", "z")) {
            o->nul = true;
        } else if (a[0] == '-' && a[1] && strcmp(a, "-") && !(a[1] >= '0' && a[1] <= '9')) {
            return cli_fail("%s: unknown option '%s'", argv[0], a);
        } else {
            o->pos[o->n_pos++] = argv[i];
        }
#undef OPT
    }
    if (!o->model) return cli_fail("%s: -m MODEL.gguf is required", argv[0]);
    return 0;
}

static model_vocab *open_vocab(const char *path)
{
    model_err err = {{0}};
    model_gguf *g = model_gguf_open(path, &err);
    model_vocab *v = g ? model_vocab_load(g, &err) : NULL;
    model_gguf_close(g);
    if (!v) cli_fail("%s", err.msg);
    return v;
}

static model *open_model(const char *path)
{
    model_err err = {{0}};
    model *m = model_load_opts(path, cli_model_opts(), &err);
    if (!m) cli_fail("%s", err.msg);
    return m;
}

/* One line of ids for text[0..len). */
static int print_ids(model_vocab *v, const char *text, size_t len, const opts *o)
{
    int32_t *ids;
    size_t n;
    model_err err = {{0}};
    if (model_tokenize(v, text, len, !o->no_bos, o->special, &ids, &n, &err))
        return cli_fail("%s", err.msg);
    for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
    printf("\n");
    free(ids);
    return 0;
}

/* --nul: the input is pieces separated by NUL bytes (the training corpus tokenizes thousands of
 * files and FIM parts in one process); each piece gets its own line. */
int cmd_tokenize(int argc, char **argv)
{
    opts o;
    int rc = parse_opts(argc, argv, &o, "m b s z");
    if (!rc && o.n_pos > 1) rc = cli_fail("tokenize: at most one FILE");
    model_vocab *v = rc ? NULL : open_vocab(o.model);
    char *text = NULL;
    size_t len = 0;
    if (!rc && !v) rc = 1;
    if (!rc) rc = cli_read_file(o.n_pos ? o.pos[0] : NULL, &text, &len);
    if (!rc && !o.nul) rc = print_ids(v, text, len, &o);
    for (size_t at = 0; !rc && o.nul && at < len;) {
        const char *end = memchr(text + at, 0, len - at);
        size_t n = end ? (size_t)(end - (text + at)) : len - at;
        rc = print_ids(v, text + at, n, &o);
        at += n + 1;
    }
    free(text);
    model_vocab_free(v);
    free(o.pos);
    return rc;
}

int cmd_detokenize(int argc, char **argv)
{
    opts o;
    int rc = parse_opts(argc, argv, &o, "m");
    model_vocab *v = rc ? NULL : open_vocab(o.model);
    if (!rc && !v) rc = 1;
    for (int i = 0; !rc && i < o.n_pos; i++) {
        int32_t *ids;
        size_t n;
        if (cli_parse_ids(o.pos[i], &ids, &n)) {
            rc = cli_fail("detokenize: '%s' is not a token id", o.pos[i]);
            break;
        }
        for (size_t k = 0; k < n && !rc; k++) {
            char buf[512];
            int len = model_token_bytes(v, ids[k], buf, sizeof buf);
            if (len < 0)
                rc = cli_fail("detokenize: token id %d is outside the vocabulary (0..%d)", ids[k],
                              model_vocab_size(v) - 1);
            else
                fwrite(buf, 1, (size_t)(len < (int)sizeof buf ? len : (int)sizeof buf), stdout);
        }
        free(ids);
    }
    free(o.pos);
    model_vocab_free(v);
    return rc;
}

static int load_tokens(const opts *o, int32_t **ids, size_t *n)
{
    if (!o->tokens) return cli_fail("--tokens \"ID ...\" is required");
    if (cli_parse_ids(o->tokens, ids, n)) return cli_fail("--tokens: malformed id list");
    if (*n == 0) {
        free(*ids);
        *ids = NULL;
        return cli_fail("--tokens: no token ids given");
    }
    return 0;
}

int cmd_logits(int argc, char **argv)
{
    opts o;
    int rc = parse_opts(argc, argv, &o, "m o t c");
    int32_t *ids = NULL;
    size_t n = 0;
    if (!rc && !o.out) rc = cli_fail("logits: -o OUT.f32 is required");
    if (!rc && o.n_pos) rc = cli_fail("logits: unexpected argument '%s'", o.pos[0]);
    if (!rc) rc = load_tokens(&o, &ids, &n);
    model *m = rc ? NULL : open_model(o.model);
    if (!rc && !m) rc = 1;
    model_cache *c = NULL;
    float *logits = NULL;
    FILE *f = NULL;
    model_err err = {{0}};
    if (!rc) {
        int nv = model_get_hparams(m)->n_vocab;
        size_t chunk = o.chunk ? (size_t)o.chunk : n;
        c = model_cache_new(m, &err);
        logits = malloc(sizeof(float) * (size_t)nv * (chunk < n ? chunk : n));
        f = fopen(o.out, "wb");
        if (!c || !logits)
            rc = cli_fail("logits: %s", c ? "out of memory" : err.msg);
        else if (!f)
            rc = cli_fail("%s: %s", o.out, strerror(errno));
        for (size_t at = 0; !rc && at < n; at += chunk) {
            int k = (int)(n - at < chunk ? n - at : chunk);
            if (model_eval(m, c, ids + at, k, logits, MODEL_LOGITS_ALL, NULL, &err))
                rc = cli_fail("logits: %s", err.msg);
            else if (fwrite(logits, sizeof(float) * (size_t)nv, (size_t)k, f) != (size_t)k)
                rc = cli_fail("%s: write failed", o.out);
        }
        if (f && fclose(f) && !rc) rc = cli_fail("%s: write failed", o.out);
    }
    free(logits);
    model_cache_free(c);
    model_free(m);
    free(ids);
    free(o.pos);
    return rc;
}

static int32_t argmax(const float *x, int n)
{
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

int cmd_generate(int argc, char **argv)
{
    opts o;
    int rc = parse_opts(argc, argv, &o, "m t n");
    int32_t *ids = NULL;
    size_t n = 0;
    if (!rc && o.n < 0) rc = cli_fail("generate: -n N is required");
    if (!rc) rc = load_tokens(&o, &ids, &n);
    model *m = rc ? NULL : open_model(o.model);
    if (!rc && !m) rc = 1;
    model_err err = {{0}};
    model_cache *c = rc ? NULL : model_cache_new(m, &err);
    float *logits = rc ? NULL : malloc(sizeof(float) * (size_t)model_get_hparams(m)->n_vocab);
    if (!rc && (!c || !logits)) rc = cli_fail("generate: out of memory");
    if (!rc && o.n > 0) {
        int nv = model_get_hparams(m)->n_vocab;
        int32_t tok;
        if (model_eval(m, c, ids, (int)n, logits, MODEL_LOGITS_LAST, NULL, &err))
            rc = cli_fail("generate: %s", err.msg);
        for (long i = 0; !rc && i < o.n; i++) {
            tok = argmax(logits, nv);
            printf(i ? " %d" : "%d", tok);
            if (i + 1 < o.n && model_eval(m, c, &tok, 1, logits, MODEL_LOGITS_LAST, NULL, &err))
                rc = cli_fail("generate: %s", err.msg);
        }
    }
    if (!rc) printf("\n");
    free(logits);
    model_cache_free(c);
    model_free(m);
    free(ids);
    free(o.pos);
    return rc;
}

int cmd_info(int argc, char **argv)
{
    opts o;
    int rc = parse_opts(argc, argv, &o, "m");
    model *m = rc ? NULL : open_model(o.model);
    if (!rc && !m) rc = 1;
    if (!rc) {
        const model_hparams *h = model_get_hparams(m);
        printf("architecture: deepseek2 (%s)\n",
               h->q_lora_rank ? "full: q-LoRA" : "lite: no q-LoRA");
        printf("layers: %d (%d dense)\nembedding: %d\nheads: %d\nvocab: %d\ncontext: %d\n",
               h->n_layer, h->n_dense, h->n_embd, h->n_head, h->n_vocab, h->n_ctx_train);
        printf("q_lora_rank: %d\nkv_lora_rank: %d\nqk_nope: %d\nqk_rope: %d\nv_head: %d\n",
               h->q_lora_rank, h->kv_lora_rank, h->qk_nope, h->qk_rope, h->v_head);
        printf("attention tensors: %s\n",
               h->legacy_kvb ? "legacy attn_kv_b (split at load)" : "attn_k_b / attn_v_b");
        printf(
            "dense ff: %d\nexperts: %d (%d used, %d shared, ff %d)\nexpert groups: %d (%d used)\n",
            h->n_ff, h->n_expert, h->n_expert_used, h->n_shared, h->n_ff_exp, h->n_group,
            h->n_group_used);
        printf("gating: %s\nexpert weights: norm %s, scale %g\n",
               h->gating == 2 ? "sigmoid" : "softmax", h->weights_norm ? "yes" : "no",
               h->weights_scale);
        printf("rope: base %g, yarn factor %g, original context %d, log multiplier %g\n",
               h->rope_base, h->rope_factor, h->yarn_orig_ctx, h->yarn_log_mul);
        printf("kq_scale: %.10f\nrms_eps: %g\n", h->kq_scale, h->rms_eps);
        int counts[MODEL_TYPE_COUNT] = {0};
        model_gguf_type_counts(model_get_gguf(m), counts);
        printf("tensor types:");
        for (int t = 0; t < MODEL_TYPE_COUNT; t++)
            if (counts[t]) printf(" %s=%d", model_type_name(t), counts[t]);
        size_t bpt = model_cache_bytes_per_token(m);
        printf("\nlatent cache: (%d + %d) x %d layers x 4 bytes (f32) = %zu bytes per token\n",
               h->kv_lora_rank, h->qk_rope, h->n_layer, bpt);
    }
    model_free(m);
    free(o.pos);
    return rc;
}

int cmd_tensor(int argc, char **argv)
{
    opts o;
    int rc = parse_opts(argc, argv, &o, "m o");
    if (!rc && (o.n_pos != 1 || !o.out))
        rc = cli_fail("tensor: usage: fimd tensor -m MODEL NAME -o OUT.f32");
    model_err err = {{0}};
    model_gguf *g = rc ? NULL : model_gguf_open(o.model, &err);
    if (!rc && !g) rc = cli_fail("%s", err.msg);
    float *data = NULL;
    int64_t ne[4];
    int nd;
    if (!rc && model_gguf_tensor_f32(g, o.pos[0], &data, ne, &nd, &err))
        rc = cli_fail("%s", err.msg);
    if (!rc) {
        FILE *f = fopen(o.out, "wb");
        size_t count = (size_t)(ne[0] * ne[1] * ne[2] * ne[3]);
        if (!f)
            rc = cli_fail("%s: %s", o.out, strerror(errno));
        else if (fwrite(data, sizeof(float), count, f) != count || fclose(f))
            rc = cli_fail("%s: write failed", o.out);
    }
    free(data);
    model_gguf_close(g);
    free(o.pos);
    return rc;
}
