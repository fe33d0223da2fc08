/* model/kernels_avx512_iq.c — AVX-512 (BW, VL, VNNI) kernels for IQ4_XS, IQ3_S and IQ3_XXS weights
 * against Q8_K activations, each for 1..8 activation rows from one template: the integer sums of
 * the scalar references in quant_iq.c. Compiled with -mavx512{f,bw,vl,vnni}, chosen at run time. */
#include "model_internal.h"

#if defined(__x86_64__)
#include "iq3_grids.h"

#include <immintrin.h>
#include <string.h>

/* Loops over tokens and sub-blocks must be unrolled so that each accumulator lives in a register.
 */
#define UNROLL _Pragma("GCC unroll 8")

/* Each row count 1..8 is its own instantiation of a template whose loops over rows unroll
 * completely (ROWS_CALL(c) is defined around each use). */
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

/* One-row products stream the weights from memory: ask for the bytes a block ahead needs (as
 * kernels_avx512.c does). */
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

/* [s0 x16 | s1 x16] as 16-bit lanes: the scales of the two sub-blocks in a 64-weight register */
static inline __m512i scale_pair(int s0, int s1)
{
    return pair(_mm256_set1_epi16((short)s0), _mm256_set1_epi16((short)s1));
}

/* nt rows (a constant at each call) of one row's blocks: each 64-byte register holds two 32-weight
 * sub-blocks; its magnitudes |w| (unsigned) and a mask of negative weights are made once for all
 * rows, every row's activations take the mask's signs, and maddubs + VNNI dpwssd (which applies
 * the two sub-blocks' scales) sum them. A row's sums are the same operations whatever nt is, so
 * multi-row results are bitwise those of the 1-row kernel. */

/* IQ4_XS: the 32 bytes of nibbles of sub-blocks 2j, 2j+1 become [lo(A) hi(A) lo(B) hi(B)] — each
 * sub-block's weights in element order — by one 128-bit lane permutation. */
static inline __attribute__((always_inline)) void
iq4xs_rows(int n, const uint8_t *a, const uint8_t *b, size_t xs, float *out, const int nt)
{
    static const int8_t kv[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                  1,    13,   25,  38,  53,  69,  89,  113};
    const __m512i table = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)kv));
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    __m512 acc[8];
    UNROLL for (int t = 0; t < nt; t++) acc[t] = _mm512_setzero_ps();
    for (int i = 0; i < n / 256; i++, a += 136, b += 292) {
        if (nt == 1) prefetch_ahead(a, 136);
        const unsigned sh = (unsigned)(a[2] | a[3] << 8);
        __m512i wa[4], sc[4];
        __mmask64 neg[4];
        UNROLL for (int j = 0; j < 4; j++)
        {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(a + 8 + 32 * j));
            __m512i v = pair(q, _mm256_srli_epi16(q, 4));
            v = _mm512_and_si512(_mm512_shuffle_i64x2(v, v, 0xd8), m4);
            const __m512i wv = _mm512_shuffle_epi8(table, v);
            neg[j] = _mm512_movepi8_mask(wv);
            wa[j] = _mm512_abs_epi8(wv);
            sc[j] = scale_pair(((a[4 + j] & 15) | (sh >> 4 * j & 3) << 4) - 32,
                               ((a[4 + j] >> 4) | (sh >> (4 * j + 2) & 3) << 4) - 32);
        }
        const float d = h2f(a);
        UNROLL for (int t = 0; t < nt; t++)
        {
            const uint8_t *bt = b + xs * (size_t)t;
            __m512i sumi = _mm512_setzero_si512();
            UNROLL for (int j = 0; j < 4; j++)
            {
                const __m512i xv = _mm512_loadu_si512((const void *)(bt + 4 + 64 * j));
                const __m512i xsg = _mm512_mask_sub_epi8(xv, neg[j], _mm512_setzero_si512(), xv);
                sumi = _mm512_dpwssd_epi32(sumi, _mm512_maddubs_epi16(wa[j], xsg), sc[j]);
            }
            float dx;
            memcpy(&dx, bt, 4);
            acc[t] = _mm512_fmadd_ps(_mm512_set1_ps(d * dx), _mm512_cvtepi32_ps(sumi), acc[t]);
        }
    }
    UNROLL for (int t = 0; t < nt; t++) out[t] = _mm512_reduce_add_ps(acc[t]);
}

/* IQ3_XXS's sign bits of a whole block (64-bit lane j: sub-blocks 2j, 2j+1): each of the 8 u32 at
 * p holds four 7-bit sign fields; they go to the low bits of four bytes, and bit 7 of each byte is
 * the parity of its seven (ggml's ksigns_iq2xs table), from a nibble parity table. */
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

/* Sub-blocks 2j and 2j+1 of an IQ3 block: 64 unsigned magnitudes from 16 gathered grid entries,
 * the mask of negative weights and the scales' odd factors 2 s + 1. IQ3_S: 9-bit indices (the ninth
 * bits are the 16 bits of the two qh bytes), stored signs that are already the mask. IQ3_XXS: 8-bit
 * indices, signs from iq3xxs_signs (in xsigns), scales in the top 4 bits of each sub-block's u32.
 */
static inline __attribute__((always_inline)) void iq3_pair(const uint8_t *a, int j, const bool xxs,
                                                           const uint64_t *xsigns, __m512i *g,
                                                           __mmask64 *neg, __m512i *sc)
{
    const __m512i idx = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(a + 2 + 16 * j)));
    if (xxs) {
        *g = _mm512_i32gather_epi32(idx, (const void *)iq3xxs_grid, 4);
        *neg = (__mmask64)xsigns[j];
        *sc = scale_pair(1 + 2 * (a[69 + 8 * j] >> 4), 1 + 2 * (a[73 + 8 * j] >> 4));
    } else {
        const __mmask16 hi = (__mmask16)(a[66 + 2 * j] | a[67 + 2 * j] << 8);
        uint64_t s;
        memcpy(&s, a + 74 + 8 * j, 8);
        *g = _mm512_i32gather_epi32(_mm512_mask_or_epi32(idx, hi, idx, _mm512_set1_epi32(256)),
                                    (const void *)iq3s_grid, 4);
        *neg = (__mmask64)s;
        *sc = scale_pair(1 + 2 * (a[106 + j] & 15), 1 + 2 * (a[106 + j] >> 4));
    }
}

/* IQ3_S / IQ3_XXS rows: the signs negate the activations, so maddubs sees the unsigned magnitudes
 * (<= 62) and signed activations. IQ3_XXS's scale is (2 s + 1) / 4: the quarter is applied to the
 * final sum, as ggml does. Here gathers beat inserting the grid entries one by one (AMD Zen). */
static inline __attribute__((always_inline)) void iq3_rows(int n, const uint8_t *a,
                                                           const uint8_t *b, size_t xs, float *out,
                                                           const int nt, const bool xxs)
{
    const int bytes = xxs ? 98 : 110;
    __m512 acc[8];
    UNROLL for (int t = 0; t < nt; t++) acc[t] = _mm512_setzero_ps();
    for (int i = 0; i < n / 256; i++, a += bytes, b += 292) {
        if (nt == 1) prefetch_ahead(a, bytes);
        uint64_t xsigns[4] = {0};
        if (xxs) _mm256_storeu_si256((__m256i *)xsigns, iq3xxs_signs(a + 66));
        __m512i g[4], sc[4];
        __mmask64 neg[4];
        UNROLL for (int j = 0; j < 4; j++) iq3_pair(a, j, xxs, xsigns, &g[j], &neg[j], &sc[j]);
        const float d = h2f(a);
        UNROLL for (int t = 0; t < nt; t++)
        {
            const uint8_t *bt = b + xs * (size_t)t;
            __m512i sumi = _mm512_setzero_si512();
            UNROLL for (int j = 0; j < 4; j++)
            {
                const __m512i xv = _mm512_loadu_si512((const void *)(bt + 4 + 64 * j));
                const __m512i xsg = _mm512_mask_sub_epi8(xv, neg[j], _mm512_setzero_si512(), xv);
                sumi = _mm512_dpwssd_epi32(sumi, _mm512_maddubs_epi16(g[j], xsg), sc[j]);
            }
            float dx;
            memcpy(&dx, bt, 4);
            acc[t] = _mm512_fmadd_ps(_mm512_set1_ps(d * dx), _mm512_cvtepi32_ps(sumi), acc[t]);
        }
    }
    UNROLL for (int t = 0; t < nt; t++) out[t] =
        xxs ? 0.25f * _mm512_reduce_add_ps(acc[t]) : _mm512_reduce_add_ps(acc[t]);
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

/* This table's kernels for a type; another table's multi-row kernels would not match its vec_dot
 * bitwise. */
static void set_type(model_kernels *k, int type, vec_dot_fn one, vec_dotn_fn many)
{
    k->vec_dot[type] = one;
    k->vec_dotn[type] = many;
    k->vec_dot4[type] = NULL;
}

void model__kernels_avx512_iq(model_kernels *k)
{
    set_type(k, MODEL_TYPE_IQ4_XS, dot_iq4_xs, dotn_iq4_xs);
    set_type(k, MODEL_TYPE_IQ3_S, dot_iq3_s, dotn_iq3_s);
    set_type(k, MODEL_TYPE_IQ3_XXS, dot_iq3_xxs, dotn_iq3_xxs);
}
#else
void model__kernels_avx512_iq(model_kernels *k)
{
    (void)k;
}
#endif
