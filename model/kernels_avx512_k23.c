/* model/kernels_avx512_k23.c — AVX-512 (BW, VL, VNNI) dot products for Q2_K and Q3_K weights
 * against 1..8 Q8_K activation rows: the integer sums of the scalar references in quant_k23.c.
 * Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512vnni and chosen at run time. */
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

/* One-row products (decode) stream the weights from memory; the hardware prefetcher alone left
 * the kernels waiting (as in kernels_avx512.c). Ask for the bytes a block ahead of `a` needs. */
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

/* Both formats keep elements 128 h + 32 j + l (l < 32) at bits 2 j of byte 32 h + l of qs. With
 * P = [q | q >> 2] for half h's 32 bytes q, P & 3 holds elements 128 h + 0..63 in order and
 * (P >> 4) & 3 elements 128 h + 64..127: register k = 2 h + (0 or 1) holds elements 64 k .. 64 k +
 * 63, matching one 64-byte activation load, and its 128-bit lane i is sub-block 4 k + i. */
static inline void low_bits(const uint8_t *qs, __m512i w[4])
{
    const __m512i m3 = _mm512_set1_epi8(3);
    UNROLL for (int h = 0; h < 2; h++)
    {
        const __m256i q = _mm256_loadu_si256((const __m256i *)(qs + 32 * h));
        const __m512i p = pair(q, _mm256_srli_epi16(q, 2));
        w[2 * h] = _mm512_and_si512(p, m3);
        w[2 * h + 1] = _mm512_and_si512(_mm512_srli_epi16(p, 4), m3);
    }
}

/* 16-bit lanes of register k's scales: lane group i (one 128-bit lane) gets entry 4 k + i of the
 * 16 int16 scales in sc16. */
static inline __m512i lane_scales(__m256i sc16, int k)
{
    const __m512i idx = _mm512_add_epi16(
        _mm512_set1_epi16((short)(4 * k)),
        _mm512_inserti64x4(_mm512_castsi256_si512(
                               _mm256_setr_epi16(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1)),
                           _mm256_setr_epi16(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3), 1));
    return _mm512_permutexvar_epi16(idx, _mm512_zextsi256_si512(sc16));
}

/* Q2_K rows against nt Q8_K rows (nt constant: 1 for decode, up to 8 for prefill). The 4-bit
 * scales are folded into the weights once per block (scale * q <= 45 fits a byte, and each 16-bit
 * lane lies within one sub-block, so a 16-bit multiply makes the byte products), leaving one VNNI
 * dpbusd per 64 weights and row; the mins go through the activations' bsums. Each row's sums are
 * made by the same operations whatever nt is, so the results are bitwise those of one row. */
static inline __attribute__((always_inline)) void
q2k_rows(int n, const uint8_t *a, const uint8_t *b, size_t xs, float *out, const int nt)
{
    const __m128i m4 = _mm_set1_epi8(0x0f);
    __m512 acc[8];
    UNROLL for (int t = 0; t < nt; t++) acc[t] = _mm512_setzero_ps();
    for (int i = 0; i < n / 256; i++, a += 84, b += 292) {
        if (nt == 1) prefetch_ahead(a, 84);
        const __m128i sb = _mm_loadu_si128((const __m128i *)a);
        const __m256i sc16 = _mm256_cvtepu8_epi16(_mm_and_si128(sb, m4));
        const __m256i mn16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sb, 4), m4));
        __m512i w[4];
        low_bits(a + 16, w);
        UNROLL for (int k = 0; k < 4; k++) w[k] = _mm512_mullo_epi16(w[k], lane_scales(sc16, k));
        const float d = h2f(a + 80), dmin = h2f(a + 82);
        UNROLL for (int t = 0; t < nt; t++)
        {
            const uint8_t *bt = b + xs * (size_t)t;
            __m512i sumi = _mm512_setzero_si512();
            UNROLL for (int k = 0; k < 4; k++) sumi = _mm512_dpbusd_epi32(
                sumi, w[k], _mm512_loadu_si512((const void *)(bt + 4 + 64 * k)));
            float dx;
            memcpy(&dx, bt, 4);
            const __m256i mn =
                _mm256_madd_epi16(mn16, _mm256_loadu_si256((const __m256i *)(bt + 260)));
            acc[t] = _mm512_fmadd_ps(_mm512_set1_ps(d * dx), _mm512_cvtepi32_ps(sumi), acc[t]);
            acc[t] = _mm512_fmadd_ps(_mm512_set1_ps(-dmin * dx),
                                     _mm512_cvtepi32_ps(_mm512_zextsi256_si512(mn)), acc[t]);
        }
    }
    UNROLL for (int t = 0; t < nt; t++) out[t] = _mm512_reduce_add_ps(acc[t]);
}

/* Q3_K's 12 scale bytes -> 16 signed scales (-32..31), as ggml unpacks them: low nibbles from
 * bytes 0..7 (both halves), the top two bits from bytes 8..11. */
static inline __m128i q3k_scales(const uint8_t *s)
{
    uint32_t u[3];
    memcpy(u, s, 12);
    const uint32_t m4 = 0x0f0f0f0f, m2 = 0x03030303;
    const __m128i v = _mm_setr_epi32((int)((u[0] & m4) | (u[2] & m2) << 4),
                                     (int)((u[1] & m4) | (u[2] >> 2 & m2) << 4),
                                     (int)((u[0] >> 4 & m4) | (u[2] >> 4 & m2) << 4),
                                     (int)((u[1] >> 4 & m4) | (u[2] >> 6 & m2) << 4));
    return _mm_sub_epi8(v, _mm_set1_epi8(32));
}

/* Q3_K rows: weights taken unsigned, u = q + 4 (the low bits plus 4 where the hmask bit is set),
 * so maddubs applies and VNNI's dpwssd adds the signed scales' products; the 4 is paid back
 * through the bsums: each row's sum starts at -4 * (scales . bsums). The hmask bit of element
 * 128 h + 32 j + l is bit 4 h + j of byte l: with H = [hm | hm >> 1], register k's bits sit at
 * bit 2 k of H. */
static inline __attribute__((always_inline)) void
q3k_rows(int n, const uint8_t *a, const uint8_t *b, size_t xs, float *out, const int nt)
{
    const __m512i four = _mm512_set1_epi8(4);
    __m512 acc[8];
    UNROLL for (int t = 0; t < nt; t++) acc[t] = _mm512_setzero_ps();
    for (int i = 0; i < n / 256; i++, a += 110, b += 292) {
        if (nt == 1) prefetch_ahead(a, 110);
        const __m256i sc16 = _mm256_cvtepi8_epi16(q3k_scales(a + 96));
        const __m256i hm = _mm256_loadu_si256((const __m256i *)a);
        const __m512i H = pair(hm, _mm256_srli_epi16(hm, 1));
        __m512i w[4], sc[4];
        low_bits(a + 32, w);
        UNROLL for (int k = 0; k < 4; k++)
        {
            const __m512i hb = k == 0   ? _mm512_slli_epi16(H, 2)
                               : k == 1 ? H
                                        : _mm512_srli_epi16(H, 2 * k - 2);
            w[k] = _mm512_or_si512(w[k], _mm512_and_si512(hb, four));
            sc[k] = lane_scales(sc16, k);
        }
        const float d = h2f(a + 108);
        UNROLL for (int t = 0; t < nt; t++)
        {
            const uint8_t *bt = b + xs * (size_t)t;
            const __m256i off =
                _mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i *)(bt + 260)));
            __m512i sumi = _mm512_zextsi256_si512(
                _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(off, 2)));
            UNROLL for (int k = 0; k < 4; k++) sumi = _mm512_dpwssd_epi32(
                sumi,
                _mm512_maddubs_epi16(w[k], _mm512_loadu_si512((const void *)(bt + 4 + 64 * k))),
                sc[k]);
            float dx;
            memcpy(&dx, bt, 4);
            acc[t] = _mm512_fmadd_ps(_mm512_set1_ps(d * dx), _mm512_cvtepi32_ps(sumi), acc[t]);
        }
    }
    UNROLL for (int t = 0; t < nt; t++) out[t] = _mm512_reduce_add_ps(acc[t]);
}

static float dot_q2_k(int n, const void *w, const void *x)
{
    float r;
    q2k_rows(n, w, x, 0, &r, 1);
    return r;
}

static void dotn_q2_k(int n, const void *w, const void *x, size_t xs, float *out, int nt)
{
#define ROWS_CALL(c) q2k_rows(n, w, x, xs, out, c)
    ROWS_SWITCH(nt)
#undef ROWS_CALL
}

static float dot_q3_k(int n, const void *w, const void *x)
{
    float r;
    q3k_rows(n, w, x, 0, &r, 1);
    return r;
}

static void dotn_q3_k(int n, const void *w, const void *x, size_t xs, float *out, int nt)
{
#define ROWS_CALL(c) q3k_rows(n, w, x, xs, out, c)
    ROWS_SWITCH(nt)
#undef ROWS_CALL
}

/* This table's kernels for a type; the AVX2 multi-row kernels would not match these bitwise. */
static void set_type(model_kernels *k, int type, vec_dot_fn one, vec_dotn_fn many)
{
    k->vec_dot[type] = one;
    k->vec_dotn[type] = many;
    k->vec_dot4[type] = NULL;
}

void model__kernels_avx512_k23(model_kernels *k)
{
    set_type(k, MODEL_TYPE_Q2_K, dot_q2_k, dotn_q2_k);
    set_type(k, MODEL_TYPE_Q3_K, dot_q3_k, dotn_q3_k);
}
#else
void model__kernels_avx512_k23(model_kernels *k)
{
    (void)k;
}
#endif
