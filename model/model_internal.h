/* model/model_internal.h — what the files of model/ share (and white-box tests see): the GGUF
 * layout and writer, type traits, the kernel table, the pool, the product scheduler and the
 * cache's inside. Nothing outside model/ and tests/ includes this. */
#ifndef FIMD_MODEL_INTERNAL_H
#define FIMD_MODEL_INTERNAL_H

#include "model.h"

#include <stdarg.h>
#include <stdio.h>

/* printf into err->msg (err may be NULL); always returns -1 so callers can `return
 * model__fail(...)` */
int model__fail(model_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- GGUF reader ---- */

enum gguf_vtype {
    GGUF_U8 = 0,
    GGUF_I8,
    GGUF_U16,
    GGUF_I16,
    GGUF_U32,
    GGUF_I32,
    GGUF_F32,
    GGUF_BOOL,
    GGUF_STRING,
    GGUF_ARRAY,
    GGUF_U64,
    GGUF_I64,
    GGUF_F64,
    GGUF_VTYPE_COUNT
};

typedef struct gguf_str {
    const char *p; /* into the mmap, not NUL-terminated */
    uint64_t n;
} gguf_str;

typedef struct gguf_kv {
    gguf_str key;
    uint32_t type;      /* enum gguf_vtype */
    uint32_t arr_type;  /* element type when type == GGUF_ARRAY */
    uint64_t arr_n;     /* element count when type == GGUF_ARRAY */
    const uint8_t *raw; /* serialized value (after the type field) */
    uint64_t raw_len;
} gguf_kv;

typedef struct gguf_tensor {
    gguf_str name;
    int n_dims;
    int64_t ne[4]; /* unused dims are 1 */
    int type;      /* enum model_type */
    uint64_t offset;
    uint64_t nbytes;
    const uint8_t *data;
} gguf_tensor;

struct model_gguf {
    const uint8_t *base;
    uint64_t size;
    uint32_t version;
    uint64_t alignment;
    uint64_t n_kv, n_tensors;
    gguf_kv *kv;
    gguf_tensor *tensors;
    uint64_t data_start;
    char *path;
    int guard; /* the SIGBUS guard's slot for a file mapping, else -1 */
};

/* model_gguf_open for the engine: with hugepages the file is read into memory that may use 2 MB
 * pages (falling back to the mapping). Closed by model_gguf_close as usual. */
model_gguf *model__gguf_open_resident(const char *path, bool hugepages, model_err *err);
const gguf_kv *model__gguf_find(const model_gguf *g, const char *key);
const gguf_tensor *model__gguf_tensor(const model_gguf *g, const char *name);
/* Typed getters: return 0 and set *out, 1 when the key is absent, -1 (with message) when it has
 * the wrong type. Integer getters accept any integer type whose value fits. */
int model__gguf_u32(const model_gguf *g, const char *key, uint32_t *out, model_err *err);
int model__gguf_f32(const model_gguf *g, const char *key, float *out, model_err *err);
int model__gguf_bool(const model_gguf *g, const char *key, bool *out, model_err *err);
int model__gguf_str(const model_gguf *g, const char *key, gguf_str *out, model_err *err);
bool model__gguf_str_eq(gguf_str s, const char *c);
/* Iterate a string array: *pos starts at kv->raw; each call returns the next element. */
gguf_str model__gguf_arr_next_str(const uint8_t **pos);

/* ---- GGUF writer (used by synth and by tests that craft files) ---- */

typedef struct gguf_writer gguf_writer;

gguf_writer *model__gw_new(void);
void model__gw_free(gguf_writer *w);
void model__gw_u32(gguf_writer *w, const char *key, uint32_t v);
void model__gw_i32(gguf_writer *w, const char *key, int32_t v);
void model__gw_f32(gguf_writer *w, const char *key, float v);
void model__gw_bool(gguf_writer *w, const char *key, bool v);
void model__gw_str(gguf_writer *w, const char *key, const char *v);
void model__gw_str_arr(gguf_writer *w, const char *key, const char *const *v, const size_t *lens,
                       size_t n);
void model__gw_i32_arr(gguf_writer *w, const char *key, const int32_t *v, size_t n);
/* Copy a key/value parsed from another file, byte for byte. */
void model__gw_raw(gguf_writer *w, const gguf_kv *kv);
/* Append all key/values of src (in order) to dst. */
void model__gw_append(gguf_writer *dst, const gguf_writer *src);
void model__gw_tensor(gguf_writer *w, const char *name, int type, int n_dims, const int64_t ne[4]);
/* Write the header (magic .. padding before data); then exactly the tensors' bytes, in order,
 * each followed by model__gw_pad. */
int model__gw_write_header(gguf_writer *w, FILE *f, model_err *err);
int model__gw_pad(gguf_writer *w, FILE *f, uint64_t written, model_err *err);

/* ---- tensor types ---- */

typedef float (*vec_dot_fn)(int n, const void *w, const void *x);

/* One record per tensor type (quant.c): adding a type is one entry there and its functions. */
typedef struct type_traits {
    const char *name;
    int block;                                   /* elements per block */
    int bytes;                                   /* bytes per block */
    int vec_dot_type;                            /* activation type for dot products */
    void (*dequant)(const uint8_t *b, float *y); /* one block */
    void (*quant)(const float *x, uint8_t *b);   /* one block; NULL: fimd does not write the type */
    vec_dot_fn dot; /* the scalar reference against vec_dot_type (NULL for activation-only types) */
} type_traits;

/* NULL for a type fimd does not know. */
const type_traits *model__type(int type);
size_t model__row_bytes(int type, int64_t n);

float model__fp16_to_f32(uint16_t h);
uint16_t model__f32_to_fp16(float f);
float model__bf16_to_f32(uint16_t h);
uint16_t model__f32_to_bf16(float f);

/* Dequantize n elements (a multiple of the block size) starting at a block boundary. */
void model__dequant(int type, const void *src, float *dst, int64_t n);
/* Quantize n weights (a multiple of the block size). For weight types this is a simple, valid
 * quantizer (synth); for the activation types Q8_0/Q8_1/Q8_K/F16/BF16 it rounds exactly as
 * llama.cpp's CPU backend does. -1 (nothing written) for a type without a quantizer. */
int model__quant(int type, const float *src, void *dst, int64_t n);

/* ---- the low-bit types (256-element blocks, dotted with Q8_K activations) ----
 * quant_k23.c: Q2_K, Q3_K; quant_iq.c: IQ4_XS, IQ3_XXS, IQ3_S; quant_iq12.c: IQ2_XXS, IQ2_XS,
 * IQ2_S, IQ1_S, IQ1_M. Each: one block dequantized exactly as ggml's dequantize_row_*, and the
 * scalar reference dot of n weights against n Q8_K activations (ggml's vec_dot_*_q8_K). */
void model__deq_q2_k(const uint8_t *b, float *y);
void model__deq_q3_k(const uint8_t *b, float *y);
void model__deq_iq4_xs(const uint8_t *b, float *y);
void model__deq_iq3_xxs(const uint8_t *b, float *y);
void model__deq_iq3_s(const uint8_t *b, float *y);
void model__deq_iq2_xxs(const uint8_t *b, float *y);
void model__deq_iq2_xs(const uint8_t *b, float *y);
void model__deq_iq2_s(const uint8_t *b, float *y);
void model__deq_iq1_s(const uint8_t *b, float *y);
void model__deq_iq1_m(const uint8_t *b, float *y);
float model__dot_q2_k(int n, const void *w, const void *x);
float model__dot_q3_k(int n, const void *w, const void *x);
float model__dot_iq4_xs(int n, const void *w, const void *x);
float model__dot_iq3_xxs(int n, const void *w, const void *x);
float model__dot_iq3_s(int n, const void *w, const void *x);
float model__dot_iq2_xxs(int n, const void *w, const void *x);
float model__dot_iq2_xs(int n, const void *w, const void *x);
float model__dot_iq2_s(int n, const void *w, const void *x);
float model__dot_iq1_s(int n, const void *w, const void *x);
float model__dot_iq1_m(int n, const void *w, const void *x);
/* Weight quantizers for synth (one block of 256): valid blocks, simple rounding. */
void model__quant_q2_k(const float *x, uint8_t *b);
void model__quant_q3_k(const float *x, uint8_t *b);
void model__quant_iq4_xs(const float *x, uint8_t *b);

/* The kernel table, chosen once (model__kernels_init). vec_dot computes the dot product of n
 * elements of a weight row in `type` with an activation row already in its vec_dot_type. */
/* One weight row against 4 activation rows (vec_dot4), or against nt = 1..8 of them (vec_dotn),
 * xs bytes apart; each result bitwise equal to vec_dot's, so a token's logits never depend on the
 * batch it was evaluated in. */
typedef void (*vec_dot4_fn)(int n, const void *w, const void *x, size_t xs, float *out);
typedef void (*vec_dotn_fn)(int n, const void *w, const void *x, size_t xs, float *out, int nt);
/* Two weight rows (ws bytes apart) against nt = 1..8 activation rows: row r's results at out[8 r].
 */
typedef void (*vec_dotn2_fn)(int n, const void *w, size_t ws, const void *x, size_t xs, float *out,
                             int nt);
typedef struct model_kernels {
    vec_dot_fn vec_dot[MODEL_TYPE_COUNT];
    vec_dot4_fn vec_dot4[MODEL_TYPE_COUNT]; /* optional: prefill amortizes unpacking over tokens */
    vec_dotn_fn vec_dotn[MODEL_TYPE_COUNT]; /* optional, preferred to vec_dot4 */
    vec_dotn2_fn vec_dotn2[MODEL_TYPE_COUNT]; /* optional, with vec_dotn: pairs of weight rows */
    float (*dot_f32)(int n, const float *a, const float *b);        /* attention scores */
    void (*axpy_f32)(int n, float alpha, const float *x, float *y); /* y += alpha x */
    /* Optional, for G <= 8 heads against one latent row: out[g * os] = q_g . x (q_g qs floats
     * apart); and y_g = sum over s < S of p[g * ps + s] x_s (x_s xs floats apart, y_g ys apart). */
    void (*dot_f32_heads)(int n, const float *x, const float *q, size_t qs, int G, float *out,
                          size_t os);
    void (*mix_f32_heads)(int n, int S, const float *x, size_t xs, const float *p, size_t ps, int G,
                          float *y, size_t ys);
    /* Fast dequantization for some types (false: use model__dequant). Same values exactly. */
    bool (*dequant)(int type, const void *src, float *dst, int64_t n);
    /* Fast activation quantization for some types (false: use model__quant). Same bytes exactly. */
    bool (*quant_act)(int type, const float *src, void *dst, int64_t n);
    const char *name;
} model_kernels;

/* The best table this CPU runs, capped by `cap` (enum model_kernel_cap). */
const model_kernels *model__kernels(int cap);
/* Every kernel table this CPU can run (the scalar reference first); for tests. */
int model__kernel_tables(const model_kernels **out, int max);
/* Fill the AVX2 entries of k (kernels_avx2.c, compiled with -mavx2 -mfma -mf16c). */
void model__kernels_avx2(model_kernels *k);
/* Fill the AVX-512 entries of k (kernels_avx512.c, -mavx512f -mavx512bw -mavx512vl). */
void model__kernels_avx512(model_kernels *k);
/* The low-bit types' SIMD entries: Q2_K and Q3_K (kernels_{avx2,avx512}_k23.c), IQ4_XS, IQ3_S and
 * IQ3_XXS (kernels_{avx2,avx512}_iq.c). The IQ2 and IQ1 types use the scalar references. */
void model__kernels_avx2_k23(model_kernels *k);
void model__kernels_avx512_k23(model_kernels *k);
void model__kernels_avx2_iq(model_kernels *k);
void model__kernels_avx512_iq(model_kernels *k);

/* ---- thread pool ---- */

typedef struct model_pool model_pool;
/* fn(ctx, i0, i1, thread) handles items [i0, i1); thread is 0 (the caller) .. n-1. */
typedef void (*pool_fn)(void *ctx, int i0, int i1, int thread);
model_pool *model__pool_new(int n_threads);
void model__pool_free(model_pool *p);
int model__pool_threads(const model_pool *p);
/* Run fn over [0, total) on all threads, in chunks that shrink from a share of what is left down to
 * `grain` items; returns when all are done. */
void model__pool_for(model_pool *p, int total, int grain, pool_fn fn, void *ctx);

/* ---- matrix products (matmul.c) ---- */

/* One weight as the forward pass sees it: borrowed from the GGUF's memory, or owned by the model
 * (the k_b/v_b derived from a legacy kv_b). */
typedef struct wt {
    int type;
    int64_t ne[3]; /* ne0 = input features (contiguous), ne1 = outputs, ne2 = experts/heads */
    const uint8_t *data;
    size_t row_bytes; /* bytes of one ne0 row */
    size_t mat_bytes; /* bytes of one ne0 x ne1 matrix */
} wt;

/* One product in a batch: weight matrix w (expert e) times T activation rows. The caller fills the
 * first group of fields; the scheduler the rest. */
typedef struct mm_op {
    const wt *w;
    int e, T;
    const float *X; /* T rows, ldx floats apart */
    size_t ldx;
    float *Y; /* T rows, ldy floats apart */
    size_t ldy;
    /* X in the weight's vec_dot type (or X itself for f32), xstride bytes apart */
    const uint8_t *xq;
    size_t xstride;
    int row0;                   /* first row of this product in the batch's joint row range */
    const struct mm_op *shares; /* an earlier product whose quantized input this one reuses */
} mm_op;

/* The scheduler of the products: the kernel table, the pool it dispatches on (borrowed, must
 * outlive it) and its own grow-only buffers (quantized activations, sgemm tiles). */
typedef struct model_mm model_mm;
model_mm *model__mm_new(const model_kernels *k, model_pool *pool, bool sgemm);
void model__mm_free(model_mm *mm);
/* Y[t][n] = W_e[n] . X[t] for T rows of X (ldx floats apart); Y rows ldy floats apart. */
void model__matmul(model_mm *mm, const wt *w, int e, const float *X, int T, size_t ldx, float *Y,
                   size_t ldy);
/* The n products of ops in one dispatch over all their rows (each op's own fields as for
 * model__matmul; the scheduler writes the rest). */
void model__matmul_batch(model_mm *mm, mm_op *ops, int n);
/* Grow-only buffer: *p holds at least `need` bytes afterwards (old contents are not kept). */
void *model__grow(void **p, size_t *cap, size_t need);

/* ---- the latent cache's inside, for the forward pass (cache.c) ---- */

/* The model the cache was made for. */
const model *model__cache_model(const model_cache *c);
/* Room for `need` tokens (capacity doubles, up to the training context). */
int model__cache_reserve(model_cache *c, int need, model_err *err);
/* Layer il's rows: [capacity][R + Dr]. */
float *model__cache_rows(model_cache *c, int il);
/* The cache's capacity in tokens (the attention scratch is sized by it). */
int model__cache_cap(const model_cache *c);
/* Set the length after an evaluation appended rows up to n. */
void model__cache_set_len(model_cache *c, int n);

/* ---- tokenizer internals shared with synth (BPE training) ---- */

/* Split text into pre-tokenizer pieces (deepseek-llm rules). Calls fn(piece, len, ctx) for each. */
void model__pretokenize(const char *text, size_t len, void (*fn)(const char *, size_t, void *),
                        void *ctx);
/* GPT-2 byte-to-unicode: write the UTF-8 of byte b's code point into out (2 bytes max); returns
 * length */
int model__byte_to_utf8(uint8_t b, char out[4]);

#endif
