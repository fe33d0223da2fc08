/* model/model.h — the public face of fimd's inference engine: GGUF files, the DeepSeek
 * byte-level BPE vocabulary, the deepseek2 forward pass (MLA + DeepSeekMoE + YaRN) and the
 * latent KV cache. Knows nothing about documents, JSON or editors.
 *
 * Errors: functions that can fail take a `model_err *` and return NULL or a negative value;
 * the message names the problem. Ownership: every `*_open`/`*_new` pairs with a `*_close`/
 * `*_free` that accepts NULL; buffers returned through out-parameters are malloc'd and the
 * caller frees them with free(). */
#ifndef FIMD_MODEL_H
#define FIMD_MODEL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct model_err {
    char msg[512];
} model_err;

/* ---- GGUF container (read-only mmap; every offset checked against the file size) ---- */

typedef struct model_gguf model_gguf;

model_gguf *model_gguf_open(const char *path, model_err *err);
void model_gguf_close(model_gguf *g);
/* True once the file under a mapping was found truncated (its pages past the new end read as zeros
 * since, rather than killing the process with SIGBUS): what was computed from it is garbage and the
 * file must be loaded again. Always false for a file read into memory. */
bool model_gguf_damaged(const model_gguf *g);

/* Dequantize tensor `name` to float32 in GGUF order (ne0 fastest). *out is malloc'd (caller
 * frees); ne[0..3] receive the dimensions (unused ones 1), *n_dims their count. */
int model_gguf_tensor_f32(const model_gguf *g, const char *name, float **out, int64_t ne[4],
                          int *n_dims, model_err *err);

/* `<general.architecture>.context_length`, or 0 when absent (a vocabulary-only GGUF). */
int model_gguf_context_length(const model_gguf *g);

/* How many tensors of each type (counts indexed by enum model_type, MODEL_TYPE_COUNT long). */
void model_gguf_type_counts(const model_gguf *g, int *counts);

/* ---- Tensor types ---- */

enum model_type {
    MODEL_TYPE_F32 = 0,
    MODEL_TYPE_F16 = 1,
    MODEL_TYPE_Q4_0 = 2,
    MODEL_TYPE_Q4_1 = 3,
    MODEL_TYPE_Q5_0 = 6,
    MODEL_TYPE_Q5_1 = 7,
    MODEL_TYPE_Q8_0 = 8,
    MODEL_TYPE_Q8_1 = 9,
    MODEL_TYPE_Q2_K = 10,
    MODEL_TYPE_Q3_K = 11,
    MODEL_TYPE_Q4_K = 12,
    MODEL_TYPE_Q5_K = 13,
    MODEL_TYPE_Q6_K = 14,
    MODEL_TYPE_Q8_K = 15,
    MODEL_TYPE_IQ2_XXS = 16,
    MODEL_TYPE_IQ2_XS = 17,
    MODEL_TYPE_IQ3_XXS = 18,
    MODEL_TYPE_IQ1_S = 19,
    MODEL_TYPE_IQ4_NL = 20,
    MODEL_TYPE_IQ3_S = 21,
    MODEL_TYPE_IQ2_S = 22,
    MODEL_TYPE_IQ4_XS = 23,
    MODEL_TYPE_IQ1_M = 29,
    MODEL_TYPE_BF16 = 30,
    MODEL_TYPE_COUNT = 40,
};

/* Name of a type ("Q4_K"), or NULL when fimd does not support it. */
const char *model_type_name(int type);
/* Type id for a name (case-insensitive), or -1. */
int model_type_from_name(const char *name);
/* Whether fimd can write the type (synth has a quantizer for it). */
bool model_type_writable(int type);

/* ---- Vocabulary and tokenizer (gpt2 byte-level BPE, deepseek-llm pre-tokenizer) ---- */

typedef struct model_vocab model_vocab;

/* Load the tokenizer.* keys of an open GGUF. The vocab copies what it needs: `g` may be closed
 * afterwards. */
model_vocab *model_vocab_load(const model_gguf *g, model_err *err);
void model_vocab_free(model_vocab *v);

int model_vocab_size(const model_vocab *v);
int32_t model_vocab_bos(const model_vocab *v);
int32_t model_vocab_eos(const model_vocab *v);
bool model_vocab_add_bos(const model_vocab *v);

typedef struct model_fim_ids {
    int32_t begin, hole, end; /* <｜fim▁begin｜>, <｜fim▁hole｜>, <｜fim▁end｜> */
} model_fim_ids;
/* The FIM tokens, found by their text. Fails with a clear message when the vocab has none. */
int model_vocab_fim(const model_vocab *v, model_fim_ids *out, model_err *err);

/* Tokenize `len` bytes of `text`. add_bos prepends BOS when the vocab's add_bos_token says so;
 * parse_special matches CONTROL tokens in the text (USER_DEFINED ones always match, as in
 * llama.cpp). *ids is malloc'd; *n_ids receives its length. */
int model_tokenize(const model_vocab *v, const char *text, size_t len, bool add_bos,
                   bool parse_special, int32_t **ids, size_t *n_ids, model_err *err);

/* The bytes of token `id` (byte-level mapping undone). Returns the byte count (which may exceed
 * cap: then buf holds a truncated copy), or -1 for an id outside the vocab. */
int model_token_bytes(const model_vocab *v, int32_t id, char *buf, size_t cap);
/* True for CONTROL tokens (BOS, EOS, the FIM markers): never part of generated text. */
bool model_token_is_control(const model_vocab *v, int32_t id);
/* The token's text as stored in the vocab (GPT-2 byte-to-unicode form), NUL-terminated. */
const char *model_token_text(const model_vocab *v, int32_t id);

/* ---- deepseek2 model ---- */

typedef struct model_hparams {
    int n_layer, n_embd, n_head, n_vocab, n_ctx_train;
    int q_lora_rank;  /* 0 = Lite (attn_q), else attn_q_a/attn_q_b */
    int kv_lora_rank; /* R: latent width */
    int qk_nope, qk_rope, v_head;
    int n_ff;    /* dense FFN width */
    int n_dense; /* leading dense layers */
    int n_expert, n_expert_used, n_group, n_group_used, n_shared, n_ff_exp;
    int gating; /* 1 softmax, 2 sigmoid */
    bool weights_norm;
    float weights_scale;
    float rms_eps, rope_base, rope_factor, yarn_log_mul;
    int yarn_orig_ctx;
    bool legacy_kvb; /* file had attn_kv_b; k_b/v_b derived at load */
    float kq_scale;  /* mscale^2 / sqrt(qk_nope + qk_rope) */
} model_hparams;

/* A model: immutable weights (the file, bound and checked) plus a run context (activation scratch,
 * the matrix products' buffers and the thread pool) that model_eval reuses. One thread at a time.
 */
typedef struct model model;

/* Which kernel table the engine uses: the best this CPU runs, or a cap below it (to compare, or
 * to rule a kernel out). */
enum model_kernel_cap {
    MODEL_KERNELS_BEST = 0,
    MODEL_KERNELS_AVX2 = 1,   /* no AVX-512 */
    MODEL_KERNELS_SCALAR = 2, /* the scalar references only */
};

/* How model_load treats the machine. A zeroed struct is the default; the library reads no
 * environment: the CLI maps FIMD_MLOCK, FIMD_HUGEPAGES, FIMD_SGEMM and FIMD_KERNELS onto this. */
typedef struct model_opts {
    bool no_mlock;     /* do not lock the weights in memory (FIMD_MLOCK=0) */
    bool no_hugepages; /* map the file instead of reading it into 2 MB pages (FIMD_HUGEPAGES=0) */
    bool sgemm; /* prefill through dequantized tiles and OpenBLAS (FIMD_SGEMM=1): logits then depend
                   on how a prompt is chunked, within ~1e-5 */
    enum model_kernel_cap kernels; /* FIMD_KERNELS=avx2 or scalar */
} model_opts;

/* Load a deepseek2 GGUF: hyper-parameters, every tensor checked for type and shape, and the
 * vocabulary. The file is read into memory that may use 2 MB pages when it fits in what the system
 * has available (else it is mapped), read-only until model_free, and locked in memory when the
 * process may lock that much. model_load uses the default options; opts may be NULL for them. */
model *model_load(const char *path, model_err *err);
model *model_load_opts(const char *path, const model_opts *opts, model_err *err);
void model_free(model *m);

const model_hparams *model_get_hparams(const model *m);
const model_vocab *model_get_vocab(const model *m);
const model_gguf *model_get_gguf(const model *m);
/* Weight bytes one decoded token reads: everything but the routed experts, plus the used share of
 * them (n_expert_used / n_expert), plus one embedding row. For achieved-bandwidth figures. */
size_t model_weight_bytes_per_token(const model *m);
/* Whether the weights are locked in memory (tried at load unless opts.no_mlock). */
bool model_weights_locked(const model *m);
/* Threads for the matrix products (0 = the number of cores). */
void model_set_threads(model *m, int n);
int model_get_threads(const model *m);

/* Routed experts the last model_eval ran, summed over its MoE layers: a batch of tokens reads each
 * expert once for all the tokens routed to it (for figures on batched verification). */
int model_last_experts(const model *m);

/* Bytes of latent cache one token occupies across all layers. */
size_t model_cache_bytes_per_token(const model *m);

/* The latent KV cache: per layer per token one row [normed c_kv (R) | roped k_pe (rope)], f32.
 * Independent of the model object's lifetime only in that it must be freed before the model. */
typedef struct model_cache model_cache;

model_cache *model_cache_new(const model *m, model_err *err);
void model_cache_free(model_cache *c);
int model_cache_len(const model_cache *c);
/* Keep only the first n tokens (n larger than the length is a no-op). */
void model_cache_truncate(model_cache *c, int n);
size_t model_cache_bytes(const model_cache *c);

enum model_logits_mode {
    MODEL_LOGITS_NONE = 0, /* only fill the cache */
    MODEL_LOGITS_LAST = 1, /* logits[n_vocab] of the last token */
    MODEL_LOGITS_ALL = 2,  /* logits[n][n_vocab] */
};

/* Run n tokens at positions len(c) .. len(c)+n-1 on top of the cache, appending their latent
 * rows. `logits` must hold what `mode` asks for. A non-NULL `cancel` that another thread sets stops
 * between layers (the cache then keeps its old length and -2 is returned). */
int model_eval(model *m, model_cache *c, const int32_t *tokens, int n, float *logits,
               enum model_logits_mode mode, const atomic_int *cancel, model_err *err);

/* ---- Writing models: GGUF writer behind a seeded random deepseek2 synthesizer ---- */

typedef struct model_synth_opts {
    model_hparams hp;       /* shape; kq_scale and derived fields ignored */
    int type;               /* weight type for matrices (norms and router stay F32) */
    const char *mix;        /* llama-quantize-like mix (Q4_K_M, Q5_K_M, Q3_K_S, Q3_K_M, Q3_K_L,
                               Q2_K, IQ4_XS): some tensors at more bits; NULL: `type` for all */
    const char *vocab_from; /* copy tokenizer.* keys from this GGUF, or NULL */
    const char *const *merge_files; /* without vocab_from: learn BPE merges from these files */
    int n_merge_files;
    int n_merges; /* how many merges to learn (default 256) */
    uint64_t seed;
    bool omit_q_lora_key; /* write no q_lora_rank key (as converters do for Lite) */
} model_synth_opts;

/* Fill `o` with a preset: "lite" (DeepSeek-Coder-V2-Lite dims), "full" (236B dims) or "tiny"
 * (the fixtures' small Lite-like shape). Returns -1 for an unknown name. */
int model_synth_preset(model_synth_opts *o, const char *like);
/* Write the model to `path`, streaming tensors (memory stays small for any shape). */
int model_synth(const model_synth_opts *o, const char *path, model_err *err);
/* The base type of a named mix, or -1 when `name` is not one. */
int model_synth_mix_base(const char *name);

#endif
