/* model/kernels_avx2_k23.c — AVX2 dot products for Q2_K and Q3_K weights against 1..8 Q8_K
 * activation rows: the integer sums of the scalar references in quant_k23.c, so results differ
 * only in float summation order. Compiled with -mavx2 -mfma -mf16c and chosen at run time. */
#include "model_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <string.h>

/* Loops over tokens and sub-blocks must be unrolled so that each accumulator lives in a register
 * and the shift counts become constants. */
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

static inline float h2f(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

static inline float hsum_ps(__m256 x)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Both formats keep elements 128 h + 32 j + l (l < 32) at bits 2 j of byte 32 h + l of qs, so one
 * 32-byte load and a shift give 32 consecutive weights: two 16-element sub-blocks, the first in
 * the low 128-bit lane of maddubs' 16-bit sums and the second in the high one. The scales
 * multiply those sums with madd; `half` holds the 8 int16 scales of one half-block in both lanes,
 * and this picks [scale 2j x8 | scale 2j+1 x8] from it. */
static inline __m256i pick_pair(__m256i half, int j)
{
    const __m128i lo = _mm_set1_epi16((short)((4 * j) | (4 * j + 1) << 8));
    const __m128i hi = _mm_set1_epi16((short)((4 * j + 2) | (4 * j + 3) << 8));
    return _mm256_shuffle_epi8(half, _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1));
}

/* 16 int16 scales -> the 8 of half-block h, repeated in both 128-bit lanes */
static inline __m256i half_scales(__m256i sc16, int h)
{
    return h ? _mm256_permute2x128_si256(sc16, sc16, 0x11)
             : _mm256_permute2x128_si256(sc16, sc16, 0x00);
}

/* Q2_K rows against nt Q8_K rows, xs bytes apart: per block d * dx * sum(scale * q * x) minus
 * dmin * dx * sum(min * bsum). The block's weights and scales are made once for all rows; each
 * row's sums are made by the same operations whatever nt is, so results are bitwise those of one
 * row. */
static inline __attribute__((always_inline)) void
q2k_rows(int n, const uint8_t *a, const uint8_t *b, size_t xs, float *out, const int nt)
{
    const __m256i m3 = _mm256_set1_epi8(3);
    const __m128i m4 = _mm_set1_epi8(0x0f);
    __m256 acc[8];
    UNROLL for (int t = 0; t < nt; t++) acc[t] = _mm256_setzero_ps();
    for (int i = 0; i < n / 256; i++, a += 84, b += 292) {
        const __m128i sb = _mm_loadu_si128((const __m128i *)a);
        const __m256i sc16 = _mm256_cvtepu8_epi16(_mm_and_si128(sb, m4));
        const __m256i mn16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sb, 4), m4));
        __m256i sumi[8];
        UNROLL for (int t = 0; t < nt; t++) sumi[t] = _mm256_setzero_si256();
        UNROLL for (int h = 0; h < 2; h++)
        {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(a + 16 + 32 * h));
            const __m256i hs = half_scales(sc16, h);
            UNROLL for (int j = 0; j < 4; j++)
            {
                const __m256i w = _mm256_and_si256(_mm256_srli_epi16(q, 2 * j), m3);
                const __m256i s = pick_pair(hs, j);
                UNROLL for (int t = 0; t < nt; t++)
                {
                    const __m256i x = _mm256_loadu_si256(
                        (const __m256i *)(b + xs * (size_t)t + 4 + 128 * h + 32 * j));
                    sumi[t] =
                        _mm256_add_epi32(sumi[t], _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), s));
                }
            }
        }
        const float d = h2f(a + 80), dmin = h2f(a + 82);
        UNROLL for (int t = 0; t < nt; t++)
        {
            const uint8_t *bt = b + xs * (size_t)t;
            float dx;
            memcpy(&dx, bt, 4);
            const __m256i mn =
                _mm256_madd_epi16(mn16, _mm256_loadu_si256((const __m256i *)(bt + 260)));
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * dx), _mm256_cvtepi32_ps(sumi[t]), acc[t]);
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(-dmin * dx), _mm256_cvtepi32_ps(mn), acc[t]);
        }
    }
    UNROLL for (int t = 0; t < nt; t++) out[t] = hsum_ps(acc[t]);
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

/* Q3_K rows: the weights are taken unsigned, u = q + 4 (0..7: the low bits, plus 4 where the hmask
 * bit is set), so maddubs applies; the 4 is paid back per row through the activations' 16-element
 * sums: each sum starts at -4 * (scales . bsums). */
static inline __attribute__((always_inline)) void
q3k_rows(int n, const uint8_t *a, const uint8_t *b, size_t xs, float *out, const int nt)
{
    const __m256i m3 = _mm256_set1_epi8(3), four = _mm256_set1_epi8(4);
    __m256 acc[8];
    UNROLL for (int t = 0; t < nt; t++) acc[t] = _mm256_setzero_ps();
    for (int i = 0; i < n / 256; i++, a += 110, b += 292) {
        const __m256i sc16 = _mm256_cvtepi8_epi16(q3k_scales(a + 96));
        const __m256i hm = _mm256_loadu_si256((const __m256i *)a);
        __m256i sumi[8];
        UNROLL for (int t = 0; t < nt; t++)
        {
            const __m256i off = _mm256_madd_epi16(
                sc16, _mm256_loadu_si256((const __m256i *)(b + xs * (size_t)t + 260)));
            sumi[t] = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(off, 2));
        }
        UNROLL for (int h = 0; h < 2; h++)
        {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(a + 32 + 32 * h));
            const __m256i hs = half_scales(sc16, h);
            UNROLL for (int j = 0; j < 4; j++)
            {
                /* hmask bit 4h + j of each byte, moved to bit 2 */
                const int k = 4 * h + j;
                const __m256i hb =
                    k >= 2 ? _mm256_srli_epi16(hm, k - 2) : _mm256_slli_epi16(hm, 2 - k);
                const __m256i w = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 2 * j), m3),
                                                  _mm256_and_si256(hb, four));
                const __m256i s = pick_pair(hs, j);
                UNROLL for (int t = 0; t < nt; t++)
                {
                    const __m256i x = _mm256_loadu_si256(
                        (const __m256i *)(b + xs * (size_t)t + 4 + 128 * h + 32 * j));
                    sumi[t] =
                        _mm256_add_epi32(sumi[t], _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), s));
                }
            }
        }
        const float d = h2f(a + 108);
        UNROLL for (int t = 0; t < nt; t++)
        {
            float dx;
            memcpy(&dx, b + xs * (size_t)t, 4);
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * dx), _mm256_cvtepi32_ps(sumi[t]), acc[t]);
        }
    }
    UNROLL for (int t = 0; t < nt; t++) out[t] = hsum_ps(acc[t]);
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

void model__kernels_avx2_k23(model_kernels *k)
{
    k->vec_dot[MODEL_TYPE_Q2_K] = dot_q2_k;
    k->vec_dotn[MODEL_TYPE_Q2_K] = dotn_q2_k;
    k->vec_dot[MODEL_TYPE_Q3_K] = dot_q3_k;
    k->vec_dotn[MODEL_TYPE_Q3_K] = dotn_q3_k;
}
#else
void model__kernels_avx2_k23(model_kernels *k)
{
    (void)k;
}
#endif
