/* model/kernels_avx2_iq.c — AVX2 dot products for IQ4_XS, IQ3_S and IQ3_XXS weights against Q8_K
 * activations, for 1..8 activation rows: the integer sums of the scalar references in quant_iq.c,
 * so results differ only in float summation order. Compiled with -mavx2 -mfma -mf16c. */
#include "model_internal.h"

#if defined(__x86_64__)
#include "iq3_grids.h"

#include <immintrin.h>
#include <string.h>

/* Loops over tokens and sub-blocks must be unrolled so that each accumulator lives in a register.
 */
#define UNROLL _Pragma("GCC unroll 8")

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

/* 32 bits (each 32-bit lane of v holds them) -> 32 bytes, 0xff where the bit is set */
static inline __m256i bits32(__m256i v)
{
    const __m256i shuf =
        _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
    const __m256i b =
        _mm256_or_si256(_mm256_shuffle_epi8(v, shuf), _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
    return _mm256_cmpeq_epi8(b, _mm256_set1_epi64x(-1));
}

/* Multi-row kernels: each row count 1..8 is its own instantiation of a template whose loops over
 * rows unroll completely (ROWS_CALL(c) is defined around each use). The weights are unpacked once
 * per block for all rows, and each row's sums are made by the same operations whatever the row
 * count, so every result is bitwise the one-row kernel's. */
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

/* IQ4_XS: two sub-blocks (32 bytes of nibbles) at a time. Within 16 bytes the low nibbles are
 * weights 0..15 and the high nibbles 16..31, so after splitting the nibbles one lane exchange puts
 * each sub-block's weights in element order. The values are signed on both sides: maddubs gets
 * |w| and x with w's sign (no pair of products exceeds 2 * 127 * 127). */
static inline __attribute__((always_inline)) void
iq4xs_rows(int n, const uint8_t *a, const uint8_t *b, size_t xs, float *out, const int nt)
{
    static const int8_t kv[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                  1,    13,   25,  38,  53,  69,  89,  113};
    const __m256i table = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)kv));
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    __m256 acc[8];
    UNROLL for (int t = 0; t < nt; t++) acc[t] = _mm256_setzero_ps();
    for (int i = 0; i < n / 256; i++, a += 136, b += 292) {
        const unsigned sh = (unsigned)(a[2] | a[3] << 8);
        __m256i sumi[8];
        UNROLL for (int t = 0; t < nt; t++) sumi[t] = _mm256_setzero_si256();
        UNROLL for (int k = 0; k < 4; k++)
        {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(a + 8 + 32 * k));
            const __m256i lo = _mm256_and_si256(q, m4),
                          hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
            const __m256i w0 = _mm256_shuffle_epi8(table, _mm256_permute2x128_si256(lo, hi, 0x20));
            const __m256i w1 = _mm256_shuffle_epi8(table, _mm256_permute2x128_si256(lo, hi, 0x31));
            const __m256i a0 = _mm256_sign_epi8(w0, w0), a1 = _mm256_sign_epi8(w1, w1);
            const __m256i s0 =
                _mm256_set1_epi16((short)(((a[4 + k] & 15) | (sh >> 4 * k & 3) << 4) - 32));
            const __m256i s1 =
                _mm256_set1_epi16((short)(((a[4 + k] >> 4) | (sh >> (4 * k + 2) & 3) << 4) - 32));
            UNROLL for (int t = 0; t < nt; t++)
            {
                const uint8_t *q8 = b + xs * (size_t)t + 4 + 64 * k;
                const __m256i x0 = _mm256_loadu_si256((const __m256i *)q8);
                const __m256i x1 = _mm256_loadu_si256((const __m256i *)(q8 + 32));
                const __m256i p0 = _mm256_maddubs_epi16(a0, _mm256_sign_epi8(x0, w0));
                const __m256i p1 = _mm256_maddubs_epi16(a1, _mm256_sign_epi8(x1, w1));
                sumi[t] = _mm256_add_epi32(sumi[t], _mm256_madd_epi16(p0, s0));
                sumi[t] = _mm256_add_epi32(sumi[t], _mm256_madd_epi16(p1, s1));
            }
        }
        const float d = h2f(a);
        UNROLL for (int t = 0; t < nt; t++)
        {
            float dx;
            memcpy(&dx, b + xs * (size_t)t, 4);
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * dx), _mm256_cvtepi32_ps(sumi[t]), acc[t]);
        }
    }
    UNROLL for (int t = 0; t < nt; t++) out[t] = hsum_ps(acc[t]);
}

/* IQ3_XXS's sign bytes of a whole block at once (lane ib: sub-block ib's 32 sign bits): each of
 * the 8 u32 at p holds four 7-bit sign fields; they go to the low bits of four bytes, and bit 7 of
 * each byte is the parity of its seven (ggml's ksigns_iq2xs table), from a nibble parity table. */
static inline __m256i iq3xxs_signs(const uint8_t *p)
{
    const __m256i aux = _mm256_loadu_si256((const __m256i *)p);
    const __m256i f01 =
        _mm256_or_si256(_mm256_and_si256(aux, _mm256_set1_epi32(0x7f)),
                        _mm256_and_si256(_mm256_slli_epi32(aux, 1), _mm256_set1_epi32(0x7f00)));
    const __m256i f23 =
        _mm256_or_si256(_mm256_and_si256(_mm256_slli_epi32(aux, 2), _mm256_set1_epi32(0x7f0000)),
                        _mm256_and_si256(_mm256_slli_epi32(aux, 3), _mm256_set1_epi32(0x7f000000)));
    const __m256i s = _mm256_or_si256(f01, f23), m4 = _mm256_set1_epi8(0x0f);
    const __m256i par = _mm256_broadcastsi128_si256(
        _mm_setr_epi8(0, -128, -128, 0, -128, 0, 0, -128, -128, 0, 0, -128, 0, -128, -128, 0));
    return _mm256_or_si256(
        s,
        _mm256_xor_si256(_mm256_shuffle_epi8(par, _mm256_and_si256(s, m4)),
                         _mm256_shuffle_epi8(par, _mm256_and_si256(_mm256_srli_epi16(s, 4), m4))));
}

/* The IQ3 types' sub-block ib: 32 unsigned magnitudes from 8 grid entries, a byte mask of the
 * negative weights and the scale's odd factor 2 s + 1. IQ3_S: 9-bit indices (the ninth bit of
 * group g is bit g of qh[ib]), stored signs. IQ3_XXS: 8-bit indices, signs from iq3xxs_signs (in
 * xsigns), the scale in the top 4 bits of the sub-block's u32. The grid entries are inserted one
 * by one: on AMD Zen that measured faster than an AVX2 gather. */
static inline __attribute__((always_inline)) void iq3_sub(const uint8_t *a, int ib, const bool xxs,
                                                          __m256i xsigns, __m256i *g, __m256i *neg,
                                                          __m256i *sc)
{
    const uint8_t *q = a + 2 + 8 * ib;
    if (xxs) {
        *g = _mm256_setr_epi32((int)iq3xxs_grid[q[0]], (int)iq3xxs_grid[q[1]],
                               (int)iq3xxs_grid[q[2]], (int)iq3xxs_grid[q[3]],
                               (int)iq3xxs_grid[q[4]], (int)iq3xxs_grid[q[5]],
                               (int)iq3xxs_grid[q[6]], (int)iq3xxs_grid[q[7]]);
        *neg = bits32(_mm256_permutevar8x32_epi32(xsigns, _mm256_set1_epi32(ib)));
        *sc = _mm256_set1_epi16((short)(1 + 2 * (a[66 + 4 * ib + 3] >> 4)));
    } else {
        const unsigned h = a[66 + ib];
        uint32_t s;
        memcpy(&s, a + 74 + 4 * ib, 4);
        *g = _mm256_setr_epi32(
            (int)iq3s_grid[q[0] | (h << 8 & 256)], (int)iq3s_grid[q[1] | (h << 7 & 256)],
            (int)iq3s_grid[q[2] | (h << 6 & 256)], (int)iq3s_grid[q[3] | (h << 5 & 256)],
            (int)iq3s_grid[q[4] | (h << 4 & 256)], (int)iq3s_grid[q[5] | (h << 3 & 256)],
            (int)iq3s_grid[q[6] | (h << 2 & 256)], (int)iq3s_grid[q[7] | (h << 1 & 256)]);
        *neg = bits32(_mm256_set1_epi32((int)s));
        *sc = _mm256_set1_epi16((short)(1 + 2 * (a[106 + ib / 2] >> 4 * (ib % 2) & 15)));
    }
}

/* IQ3_S / IQ3_XXS rows: the signs negate the activations, so maddubs sees the unsigned magnitudes
 * (<= 62) and signed activations as it wants. IQ3_XXS's scale is (2 s + 1) / 4: the quarter is
 * applied to the final sum, as ggml does. */
static inline __attribute__((always_inline)) void iq3_rows(int n, const uint8_t *a,
                                                           const uint8_t *b, size_t xs, float *out,
                                                           const int nt, const bool xxs)
{
    const int bytes = xxs ? 98 : 110;
    __m256 acc[8];
    UNROLL for (int t = 0; t < nt; t++) acc[t] = _mm256_setzero_ps();
    for (int i = 0; i < n / 256; i++, a += bytes, b += 292) {
        const __m256i xsigns = xxs ? iq3xxs_signs(a + 66) : _mm256_setzero_si256();
        __m256i sumi[8];
        UNROLL for (int t = 0; t < nt; t++) sumi[t] = _mm256_setzero_si256();
        UNROLL for (int ib = 0; ib < 8; ib++)
        {
            __m256i g, neg, sc;
            iq3_sub(a, ib, xxs, xsigns, &g, &neg, &sc);
            UNROLL for (int t = 0; t < nt; t++)
            {
                const __m256i xv =
                    _mm256_loadu_si256((const __m256i *)(b + xs * (size_t)t + 4 + 32 * ib));
                const __m256i xsg = _mm256_sub_epi8(_mm256_xor_si256(xv, neg), neg);
                sumi[t] =
                    _mm256_add_epi32(sumi[t], _mm256_madd_epi16(_mm256_maddubs_epi16(g, xsg), sc));
            }
        }
        const float d = h2f(a);
        UNROLL for (int t = 0; t < nt; t++)
        {
            float dx;
            memcpy(&dx, b + xs * (size_t)t, 4);
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * dx), _mm256_cvtepi32_ps(sumi[t]), acc[t]);
        }
    }
    UNROLL for (int t = 0; t < nt; t++) out[t] = xxs ? 0.25f * hsum_ps(acc[t]) : hsum_ps(acc[t]);
}

static float dot_iq4_xs(int n, const void *w, const void *x)
{
    float r;
    iq4xs_rows(n, w, x, 0, &r, 1);
    return r;
}

static void dotn_iq4_xs(int n, const void *w, const void *x, size_t xs, float *out, int nt)
{
#define ROWS_CALL(c) iq4xs_rows(n, w, x, xs, out, c)
    ROWS_SWITCH(nt)
#undef ROWS_CALL
}

static float dot_iq3_s(int n, const void *w, const void *x)
{
    float r;
    iq3_rows(n, w, x, 0, &r, 1, false);
    return r;
}

static void dotn_iq3_s(int n, const void *w, const void *x, size_t xs, float *out, int nt)
{
#define ROWS_CALL(c) iq3_rows(n, w, x, xs, out, c, false)
    ROWS_SWITCH(nt)
#undef ROWS_CALL
}

static float dot_iq3_xxs(int n, const void *w, const void *x)
{
    float r;
    iq3_rows(n, w, x, 0, &r, 1, true);
    return r;
}

static void dotn_iq3_xxs(int n, const void *w, const void *x, size_t xs, float *out, int nt)
{
#define ROWS_CALL(c) iq3_rows(n, w, x, xs, out, c, true)
    ROWS_SWITCH(nt)
#undef ROWS_CALL
}

void model__kernels_avx2_iq(model_kernels *k)
{
    k->vec_dot[MODEL_TYPE_IQ4_XS] = dot_iq4_xs;
    k->vec_dotn[MODEL_TYPE_IQ4_XS] = dotn_iq4_xs;
    k->vec_dot[MODEL_TYPE_IQ3_S] = dot_iq3_s;
    k->vec_dotn[MODEL_TYPE_IQ3_S] = dotn_iq3_s;
    k->vec_dot[MODEL_TYPE_IQ3_XXS] = dot_iq3_xxs;
    k->vec_dotn[MODEL_TYPE_IQ3_XXS] = dotn_iq3_xxs;
}
#else
void model__kernels_avx2_iq(model_kernels *k)
{
    (void)k;
}
#endif
