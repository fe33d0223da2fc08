/* model/kernels_avx512.c — AVX-512 (BW, VL, VNNI) kernels for the types of Q4_K_M and Q8_0 files
 * (Q4_K, Q6_K, Q8_0, Q5_0), each for 1..8 activation rows from one template, and the attention
 * over the latent cache for a group of heads. Same integer sums as the reference in quant.c;
 * compiled with -mavx512f -mavx512bw -mavx512vl -mavx512vnni and chosen at run time. */
#include "model_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <string.h>

/* Loops over tokens and sub-blocks must be unrolled so that each accumulator lives in a register.
 */
#define UNROLL _Pragma("GCC unroll 8")

/* Multi-row kernels: each row count 1..8 is its own instantiation of a template whose loops over
 * rows unroll completely (ROWS_CALL(c) is defined around each use). */
#define ROWS_SWITCH(nt)                                                                            \
    switch (nt) {                                                                                  \
    case 1:                                                                                        \
        ROWS_CALL(1);                                                                              \
        break;                                                                                     \
    case 2:                                                                                        \
        ROWS_CALL(2);                                                                              \
        break;                                                                                     \
    case 3:                                                                                        \
        ROWS_CALL(3);                                                                              \
        break;                                                                                     \
    case 4:                                                                                        \
        ROWS_CALL(4);                                                                              \
        break;                                                                                     \
    case 5:                                                                                        \
        ROWS_CALL(5);                                                                              \
        break;                                                                                     \
    case 6:                                                                                        \
        ROWS_CALL(6);                                                                              \
        break;                                                                                     \
    case 7:                                                                                        \
        ROWS_CALL(7);                                                                              \
        break;                                                                                     \
    default:                                                                                       \
        ROWS_CALL(8);                                                                              \
        break;                                                                                     \
    }

/* One-row products (decode) stream the weights from memory, two threads at once; the hardware
 * prefetcher alone left the kernels waiting. Ask for the bytes a block ahead of `a` needs. */
enum { PREFETCH_AHEAD = 2048 };

static inline void prefetch_ahead(const uint8_t *a, int bytes)
{
    for (int l = 0; l < bytes; l += 64)
        _mm_prefetch((const char *)(a + PREFETCH_AHEAD + l), _MM_HINT_T0);
}

static inline float h2f(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

static inline __m512i pair(__m256i lo, __m256i hi)
{
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

/* Q6_K rows against nt Q8_K activation rows (nt constant: 1, 4 or 8), as q4k_rows below: the
 * block's four 64-weight registers and their scales are made once for all rows. Stored values
 * are q + 32, so each row's sum starts at -32 * (scales . bsums). */
static inline __attribute__((always_inline)) void
q6k_rows(int n, const uint8_t *a, const uint8_t *b, size_t xs, float *out, const int nt)
{
    const __m512i m4 = _mm512_set1_epi8(0x0f), m2 = _mm512_set1_epi8(3);
    /* [s0 x8, s1 x8 | s2 x8, s3 x8] and [s4 x8, s5 x8 | s6 x8, s7 x8] from a half's 8 scales */
    const __m256i pick01 = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2,
                                            2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i pick23 = _mm256_add_epi8(pick01, _mm256_set1_epi8(4));
    __m512 acc[8];
    UNROLL for (int t = 0; t < nt; t++) acc[t] = _mm512_setzero_ps();
    for (int i = 0; i < n / 256; i++, a += 210, b += 292) {
        if (nt == 1) prefetch_ahead(a, 210);
        const __m128i sc8 = _mm_loadu_si128((const __m128i *)(a + 192));
        const __m256i sc16 = _mm256_cvtepi8_epi16(sc8);
        __m512i q[4], sc[4];
        UNROLL for (int h = 0; h < 2; h++)
        {
            const __m512i L = _mm512_loadu_si512((const void *)(a + 64 * h));
            const __m256i hb = _mm256_loadu_si256((const __m256i *)(a + 128 + 32 * h));
            const __m512i H01 = pair(hb, _mm256_srli_epi16(hb, 2)),
                          H23 = pair(_mm256_srli_epi16(hb, 4), _mm256_srli_epi16(hb, 6));
            q[2 * h] = _mm512_or_si512(_mm512_and_si512(L, m4),
                                       _mm512_slli_epi16(_mm512_and_si512(H01, m2), 4));
            q[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(L, 4), m4),
                                           _mm512_slli_epi16(_mm512_and_si512(H23, m2), 4));
            const __m256i sch = _mm256_broadcastsi128_si256(h ? _mm_srli_si128(sc8, 8) : sc8);
            sc[2 * h] = _mm512_cvtepi8_epi16(_mm256_shuffle_epi8(sch, pick01));
            sc[2 * h + 1] = _mm512_cvtepi8_epi16(_mm256_shuffle_epi8(sch, pick23));
        }
        const float d = h2f(a + 208);
        UNROLL for (int t = 0; t < nt; t++)
        {
            const uint8_t *bt = b + xs * (size_t)t;
            float dx;
            memcpy(&dx, bt, 4);
            const __m256i off =
                _mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i *)(bt + 260)));
            __m512i sumi = _mm512_zextsi256_si512(
                _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(off, 5)));
            UNROLL for (int k = 0; k < 4; k++) sumi = _mm512_dpwssd_epi32(
                sumi,
                _mm512_maddubs_epi16(q[k], _mm512_loadu_si512((const void *)(bt + 4 + 64 * k))),
                sc[k]);
            acc[t] = _mm512_fmadd_ps(_mm512_set1_ps(d * dx), _mm512_cvtepi32_ps(sumi), acc[t]);
        }
    }
    UNROLL for (int t = 0; t < nt; t++) out[t] = _mm512_reduce_add_ps(acc[t]);
}

static float dot_q6_k(int n, const void *w, const void *x)
{
    float r;
    q6k_rows(n, w, x, 0, &r, 1);
    return r;
}

static void dotn_q6_k(int n, const void *w, const void *x, size_t xs, float *out, int nt)
{
#define ROWS_CALL(c) q6k_rows(n, w, x, xs, out, c)
    ROWS_SWITCH(nt)
#undef ROWS_CALL
}

/* Q4_K rows against nt Q8_K activation rows (nt is a constant at each call: 1 for decode, 4 or 8
 * for prefill). A 64-byte register holds two 32-element sub-blocks, so one maddubs and one VNNI
 * dpwssd (which applies the two sub-blocks' scales) cover 64 weights; the block is unpacked once
 * for all nt rows, and each row's sums are made by the same operations whatever nt is, so the
 * multi-row results are bitwise those of the 1-row kernel. */
static inline __attribute__((always_inline)) void
q4k_rows(int n, const uint8_t *a, const uint8_t *b, size_t xs, float *out, const int nt)
{
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    /* byte shuffles of [scale0..7, min0..7] (u8) into 16-bit lanes: the scales of sub-blocks 2j
     * (first 256 bits) and 2j+1 (last 256), and each 16-element bsum's min */
    __m512i pick_sc[4];
    UNROLL for (int j = 0; j < 4; j++)
    {
        const __m256i lo = _mm256_set1_epi16((short)(0x8000 | (2 * j))),
                      hi = _mm256_set1_epi16((short)(0x8000 | (2 * j + 1)));
        pick_sc[j] = pair(lo, hi);
    }
    const __m256i pick_min = _mm256_setr_epi8(
        8, -128, 8, -128, 9, -128, 9, -128, 10, -128, 10, -128, 11, -128, 11, -128, 12, -128, 12,
        -128, 13, -128, 13, -128, 14, -128, 14, -128, 15, -128, 15, -128);
    __m512 acc[8];
    UNROLL for (int t = 0; t < nt; t++) acc[t] = _mm512_setzero_ps();
    for (int i = 0; i < n / 256; i++, a += 144, b += 292) {
        /* the 12 scale bytes [u0 u1 u2] -> 8 scales and 8 mins of 6 bits, as ggml unpacks them:
         * [u0 & 3f, (u2 & 0f) | (u0 >> 2 & 30), u1 & 3f, (u2 >> 4 & 0f) | (u1 >> 2 & 30)] */
        if (nt == 1) prefetch_ahead(a, 144);
        const __m128i v =
            _mm_loadu_si128((const __m128i *)(a + 4)); /* the last 4 bytes are unused */
        const __m128i X = _mm_srlv_epi32(_mm_shuffle_epi32(v, 0x98), _mm_setr_epi32(0, 0, 0, 4));
        const __m128i Y = _mm_srli_epi32(_mm_shuffle_epi32(v, 0x50), 2);
        const __m128i sm = _mm_or_si128(
            _mm_and_si128(X, _mm_setr_epi32(0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f)),
            _mm_and_si128(Y, _mm_setr_epi32(0, 0x30303030, 0, 0x30303030)));
        const __m512i ms = _mm512_broadcast_i32x4(sm);
        const __m256i mins = _mm256_shuffle_epi8(_mm512_castsi512_si256(ms), pick_min);
        __m512i sumi[8];
        UNROLL for (int t = 0; t < nt; t++) sumi[t] = _mm512_setzero_si512();
        UNROLL for (int j = 0; j < 4; j++)
        {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(a + 16 + 32 * j));
            const __m512i w = _mm512_and_si512(pair(q, _mm256_srli_epi16(q, 4)), m4);
            const __m512i sc = _mm512_shuffle_epi8(ms, pick_sc[j]);
            UNROLL for (int t = 0; t < nt; t++)
            {
                const __m512i x =
                    _mm512_loadu_si512((const void *)(b + xs * (size_t)t + 4 + 64 * j));
                sumi[t] = _mm512_dpwssd_epi32(sumi[t], _mm512_maddubs_epi16(w, x), sc);
            }
        }
        const float d = h2f(a), dmin = h2f(a + 2);
        UNROLL for (int t = 0; t < nt; t++)
        {
            const uint8_t *bt = b + xs * (size_t)t;
            float dx;
            memcpy(&dx, bt, 4);
            const __m256i mn =
                _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(bt + 260)), mins);
            acc[t] = _mm512_fmadd_ps(_mm512_set1_ps(d * dx), _mm512_cvtepi32_ps(sumi[t]), acc[t]);
            acc[t] = _mm512_fmadd_ps(_mm512_set1_ps(-dmin * dx),
                                     _mm512_cvtepi32_ps(_mm512_zextsi256_si512(mn)), acc[t]);
        }
    }
    UNROLL for (int t = 0; t < nt; t++) out[t] = _mm512_reduce_add_ps(acc[t]);
}

static float dot_q4_k(int n, const void *w, const void *x)
{
    float r;
    q4k_rows(n, w, x, 0, &r, 1);
    return r;
}

static void dotn_q4_k(int n, const void *w, const void *x, size_t xs, float *out, int nt)
{
#define ROWS_CALL(c) q4k_rows(n, w, x, xs, out, c)
    ROWS_SWITCH(nt)
#undef ROWS_CALL
}

/* 32 signed weights of one Q8_0 or Q5_0 block */
static inline __m256i q32_weights(const uint8_t *a, bool q8)
{
    if (q8) return _mm256_loadu_si256((const __m256i *)(a + 2));
    uint32_t hb;
    memcpy(&hb, a + 2, 4);
    const __m128i t = _mm_loadu_si128((const __m128i *)(a + 6));
    const __m256i nib = _mm256_and_si256(
        _mm256_inserti128_si256(_mm256_castsi128_si256(t), _mm_srli_epi16(t, 4), 1),
        _mm256_set1_epi8(0x0f));
    /* bit clear: the value is nibble - 16, i.e. nibble | 0xf0 as int8 */
    const __mmask32 set = (__mmask32)hb;
    return _mm256_mask_blend_epi8(set, _mm256_or_si256(nib, _mm256_set1_epi8((char)0xf0)), nib);
}

/* [h(p0) x8, h(p1) x8] as floats, from two fp16 scales */
static inline __m512 scale_pair(const uint8_t *p0, const uint8_t *p1)
{
    uint16_t h0, h1;
    memcpy(&h0, p0, 2);
    memcpy(&h1, p1, 2);
    const __m256i v =
        _mm256_mask_blend_epi16(0xff00, _mm256_set1_epi16((short)h0), _mm256_set1_epi16((short)h1));
    return _mm512_cvtph_ps(v);
}

/* nr (1 or 2) Q8_0 / Q5_0 weight rows, ws bytes apart, against nt Q8_0 activation rows, two
 * blocks per 64-byte register; row r's results go to out[8 r .. 8 r + nt). VNNI's dpbusd wants one
 * unsigned operand: the activations are made unsigned (x + 128) and each sum starts from
 * -128 * (sum of the weights), computed once per block pair for all nt rows, so the 32-bit lane
 * sums are exact. Two weight rows share the activation loads and scales; each (row, token) result
 * is made by the same float steps whatever nr and nt are (bitwise equal results). */
static inline __attribute__((always_inline)) void q32_rows(int n, const uint8_t *a, size_t ws,
                                                           const uint8_t *b, size_t xs, float *out,
                                                           const int nr, const int nt,
                                                           const bool q8)
{
    const int wb = q8 ? 34 : 22, nb = n / 32;
    const __m512i bias = _mm512_set1_epi8((char)0x80);
    __m512 acc[2][8];
    UNROLL for (int r = 0; r < nr; r++) UNROLL for (int t = 0; t < nt; t++) acc[r][t] =
        _mm512_setzero_ps();
    for (int i = 0; i < nb; i += 2, a += 2 * wb, b += 68) {
        const bool two = i + 1 < nb; /* an odd count ends with one block in the low half */
        __m512i w[2], start[2];
        __m512 dw[2];
        UNROLL for (int r = 0; r < nr; r++)
        {
            const uint8_t *ar = a + ws * (size_t)r;
            w[r] =
                pair(q32_weights(ar, q8), two ? q32_weights(ar + wb, q8) : _mm256_setzero_si256());
            start[r] = _mm512_sub_epi32(_mm512_setzero_si512(),
                                        _mm512_dpbusd_epi32(_mm512_setzero_si512(), bias, w[r]));
            dw[r] = scale_pair(ar, two ? ar + wb : ar);
        }
        UNROLL for (int t = 0; t < nt; t++)
        {
            const uint8_t *bt = b + xs * (size_t)t;
            const __m256i x0 = _mm256_loadu_si256((const __m256i *)(bt + 2));
            const __m256i x1 =
                two ? _mm256_loadu_si256((const __m256i *)(bt + 36)) : _mm256_setzero_si256();
            const __m512i xu = _mm512_xor_si512(pair(x0, x1), bias);
            const __m512 dx = scale_pair(bt, two ? bt + 34 : bt);
            UNROLL for (int r = 0; r < nr; r++)
            {
                const __m512i s = _mm512_dpbusd_epi32(start[r], xu, w[r]);
                acc[r][t] =
                    _mm512_fmadd_ps(_mm512_mul_ps(dw[r], dx), _mm512_cvtepi32_ps(s), acc[r][t]);
            }
        }
    }
    UNROLL for (int r = 0; r < nr; r++) UNROLL for (int t = 0; t < nt; t++) out[8 * r + t] =
        _mm512_reduce_add_ps(acc[r][t]);
}

static float dot_q8_0(int n, const void *w, const void *x)
{
    float r;
    q32_rows(n, w, 0, x, 0, &r, 1, 1, true);
    return r;
}

static void dotn_q8_0(int n, const void *w, const void *x, size_t xs, float *out, int nt)
{
#define ROWS_CALL(c) q32_rows(n, w, 0, x, xs, out, 1, c, true)
    ROWS_SWITCH(nt)
#undef ROWS_CALL
}

static float dot_q5_0(int n, const void *w, const void *x)
{
    float r;
    q32_rows(n, w, 0, x, 0, &r, 1, 1, false);
    return r;
}

static void dotn_q5_0(int n, const void *w, const void *x, size_t xs, float *out, int nt)
{
#define ROWS_CALL(c) q32_rows(n, w, 0, x, xs, out, 1, c, false)
    ROWS_SWITCH(nt)
#undef ROWS_CALL
}

/* ---- attention over the latent cache, G heads at a time ---- */

/* out[g * os] = q_g . x (n elements) for G query rows qs floats apart: x is loaded once for all. */
static inline __attribute__((always_inline)) void
dots_g(int n, const float *x, const float *q, size_t qs, float *out, size_t os, const int G)
{
    __m512 acc[8];
    UNROLL for (int g = 0; g < G; g++) acc[g] = _mm512_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 v = _mm512_loadu_ps(x + i);
        UNROLL for (int g = 0; g < G; g++) acc[g] =
            _mm512_fmadd_ps(_mm512_loadu_ps(q + (size_t)g * qs + i), v, acc[g]);
    }
    if (i < n) { /* the tail, masked */
        const __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
        const __m512 v = _mm512_maskz_loadu_ps(k, x + i);
        UNROLL for (int g = 0; g < G; g++) acc[g] =
            _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, q + (size_t)g * qs + i), v, acc[g]);
    }
    UNROLL for (int g = 0; g < G; g++) out[(size_t)g * os] = _mm512_reduce_add_ps(acc[g]);
}

static void dot_f32_heads(int n, const float *x, const float *q, size_t qs, int G, float *out,
                          size_t os)
{
    switch (G) {
    case 8:
        dots_g(n, x, q, qs, out, os, 8);
        break;
    case 4:
        dots_g(n, x, q, qs, out, os, 4);
        break;
    case 2:
        dots_g(n, x, q, qs, out, os, 2);
        break;
    default:
        for (int g = 0; g < G; g++)
            dots_g(n, x, q + (size_t)g * qs, qs, out + (size_t)g * os, os, 1);
    }
}

/* y_g[0..n) = sum over s < S of p[g * ps + s] * x_s[0..n), x_s xs floats apart: 16 columns of
 * every head stay in registers while the rows stream by. The rows come in blocks that are first
 * fetched in order (a column at a time across rows would miss the cache on every row at long
 * contexts); each column's sum still runs over s in order, so blocking does not change it. */
enum { MIX_BLOCK = 32 };

static inline __attribute__((always_inline)) void mix_g(int n, int S, const float *x, size_t xs,
                                                        const float *p, size_t ps, float *y,
                                                        size_t ys, const int G)
{
    for (int s0 = 0; s0 < S; s0 += MIX_BLOCK) {
        const int s1 = S - s0 < MIX_BLOCK ? S : s0 + MIX_BLOCK;
        for (int s = s0; s < s1; s++)
            for (int i = 0; i < n; i += 16)
                _mm_prefetch((const char *)(x + (size_t)s * xs + i), _MM_HINT_T0);
        for (int i = 0; i < n; i += 16) {
            const __mmask16 k = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
            __m512 acc[8];
            UNROLL for (int g = 0; g < G; g++) acc[g] =
                s0 ? _mm512_maskz_loadu_ps(k, y + (size_t)g * ys + i) : _mm512_setzero_ps();
            for (int s = s0; s < s1; s++) {
                const __m512 v = _mm512_maskz_loadu_ps(k, x + (size_t)s * xs + i);
                UNROLL for (int g = 0; g < G; g++) acc[g] =
                    _mm512_fmadd_ps(_mm512_set1_ps(p[(size_t)g * ps + s]), v, acc[g]);
            }
            UNROLL for (int g = 0; g < G; g++)
                _mm512_mask_storeu_ps(y + (size_t)g * ys + i, k, acc[g]);
        }
    }
}

static void mix_f32_heads(int n, int S, const float *x, size_t xs, const float *p, size_t ps, int G,
                          float *y, size_t ys)
{
    switch (G) {
    case 8:
        mix_g(n, S, x, xs, p, ps, y, ys, 8);
        break;
    case 4:
        mix_g(n, S, x, xs, p, ps, y, ys, 4);
        break;
    case 2:
        mix_g(n, S, x, xs, p, ps, y, ys, 2);
        break;
    default:
        for (int g = 0; g < G; g++)
            mix_g(n, S, x, xs, p + (size_t)g * ps, ps, y + (size_t)g * ys, ys, 1);
    }
}

static void dotn2_q8_0(int n, const void *w, size_t ws, const void *x, size_t xs, float *out,
                       int nt)
{
#define ROWS_CALL(c) q32_rows(n, w, ws, x, xs, out, 2, c, true)
    ROWS_SWITCH(nt)
#undef ROWS_CALL
}

static void dotn2_q5_0(int n, const void *w, size_t ws, const void *x, size_t xs, float *out,
                       int nt)
{
#define ROWS_CALL(c) q32_rows(n, w, ws, x, xs, out, 2, c, false)
    ROWS_SWITCH(nt)
#undef ROWS_CALL
}

/* This table's kernels for a type; AVX2's 4-row kernel would not match its vec_dot bitwise. */
static void set_type(model_kernels *k, int type, vec_dot_fn one, vec_dotn_fn many)
{
    k->vec_dot[type] = one;
    k->vec_dotn[type] = many;
    k->vec_dot4[type] = NULL;
}

void model__kernels_avx512(model_kernels *k)
{
    set_type(k, MODEL_TYPE_Q4_K, dot_q4_k, dotn_q4_k);
    set_type(k, MODEL_TYPE_Q6_K, dot_q6_k, dotn_q6_k);
    set_type(k, MODEL_TYPE_Q8_0, dot_q8_0, dotn_q8_0);
    set_type(k, MODEL_TYPE_Q5_0, dot_q5_0, dotn_q5_0);
    k->vec_dotn2[MODEL_TYPE_Q8_0] = dotn2_q8_0;
    k->vec_dotn2[MODEL_TYPE_Q5_0] = dotn2_q5_0;
    k->dot_f32_heads = dot_f32_heads;
    k->mix_f32_heads = mix_f32_heads;
    k->name = "avx512";
}
#else
void model__kernels_avx512(model_kernels *k)
{
    (void)k;
}
#endif
