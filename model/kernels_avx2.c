/* model/kernels_avx2.c — AVX2/FMA/F16C dot products for the weight types a DeepSeek GGUF uses,
 * against activations quantized as llama.cpp does (Q8_0 or Q8_K). Same integer sums as the scalar
 * reference in quant.c, so results differ only in float summation order; tests/test_kernels.c
 * checks every kernel against the reference. Compiled with -mavx2 -mfma -mf16c and chosen at run
 * time. */
#include "model_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <math.h>
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

static inline int hsum_i32(__m256i x)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(x), _mm256_extracti128_si256(x, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/* signed x signed bytes -> 8 int32 sums of 4 products */
static inline __m256i dot_i8(__m256i x, __m256i y)
{
    const __m256i dot = _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
    return _mm256_madd_epi16(dot, _mm256_set1_epi16(1));
}

/* 16 bytes of nibbles -> 32 bytes: low nibbles first, then high nibbles (the 32-element order) */
static inline __m256i nibbles32(const uint8_t *p)
{
    const __m128i t = _mm_loadu_si128((const __m128i *)p);
    const __m256i b = _mm256_inserti128_si256(_mm256_castsi128_si256(t), _mm_srli_epi16(t, 4), 1);
    return _mm256_and_si256(b, _mm256_set1_epi8(0x0f));
}

/* 32 bits -> 32 bytes, 0xff where the bit is set */
static inline __m256i bits32(const uint8_t *p)
{
    uint32_t x;
    memcpy(&x, p, 4);
    const __m256i shuf =
        _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
    __m256i b = _mm256_shuffle_epi8(_mm256_set1_epi32((int)x), shuf);
    b = _mm256_or_si256(b, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
    return _mm256_cmpeq_epi8(b, _mm256_set1_epi64x(-1));
}

static float dot_q8_0(int n, const void *w, const void *x)
{
    const uint8_t *a = w, *b = x;
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < n / 32; i++, a += 34, b += 34) {
        const __m256i qa = _mm256_loadu_si256((const __m256i *)(a + 2));
        const __m256i qb = _mm256_loadu_si256((const __m256i *)(b + 2));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(a) * h2f(b)), _mm256_cvtepi32_ps(dot_i8(qa, qb)),
                              acc);
    }
    return hsum_ps(acc);
}

static float dot_q4_0(int n, const void *w, const void *x)
{
    const uint8_t *a = w, *b = x;
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < n / 32; i++, a += 18, b += 34) {
        const __m256i qa = _mm256_sub_epi8(nibbles32(a + 2), _mm256_set1_epi8(8));
        const __m256i qb = _mm256_loadu_si256((const __m256i *)(b + 2));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(a) * h2f(b)), _mm256_cvtepi32_ps(dot_i8(qa, qb)),
                              acc);
    }
    return hsum_ps(acc);
}

static float dot_q5_0(int n, const void *w, const void *x)
{
    const uint8_t *a = w, *b = x;
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < n / 32; i++, a += 22, b += 34) {
        /* bit set: the nibble is the value; bit clear: nibble - 16, i.e. nibble | 0xf0 as int8 */
        const __m256i hi = _mm256_andnot_si256(bits32(a + 2), _mm256_set1_epi8((char)0xf0));
        const __m256i qa = _mm256_or_si256(nibbles32(a + 6), hi);
        const __m256i qb = _mm256_loadu_si256((const __m256i *)(b + 2));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(a) * h2f(b)), _mm256_cvtepi32_ps(dot_i8(qa, qb)),
                              acc);
    }
    return hsum_ps(acc);
}

static float dot_iq4_nl(int n, const void *w, const void *x)
{
    static const int8_t kv[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                  1,    13,   25,  38,  53,  69,  89,  113};
    const __m256i table = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)kv));
    const uint8_t *a = w, *b = x;
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < n / 32; i++, a += 18, b += 34) {
        const __m256i qa = _mm256_shuffle_epi8(table, nibbles32(a + 2));
        const __m256i qb = _mm256_loadu_si256((const __m256i *)(b + 2));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(a) * h2f(b)), _mm256_cvtepi32_ps(dot_i8(qa, qb)),
                              acc);
    }
    return hsum_ps(acc);
}

/* Shuffle mask that replicates 16-bit element i of a 128-bit lane across the register. */
static inline __m256i rep16(int i)
{
    return _mm256_set1_epi16((short)((2 * i) | ((2 * i + 1) << 8)));
}

/* Sub-blocks 2j (lo) and 2j+1 (hi) of a Q4_K/Q5_K block as bytes: the nibbles, plus the fifth
 * bit from hbits for Q5_K. */
static inline void k45_weights(const uint8_t *qs, __m256i hbits, int j, bool five, __m256i *lo,
                               __m256i *hi)
{
    const __m256i m4 = _mm256_set1_epi8(0x0f), one = _mm256_set1_epi8(1);
    const __m256i q4 = _mm256_loadu_si256((const __m256i *)(qs + 32 * j));
    *lo = _mm256_and_si256(q4, m4);
    *hi = _mm256_and_si256(_mm256_srli_epi16(q4, 4), m4);
    if (five) {
        *lo = _mm256_add_epi8(
            *lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hbits, 2 * j), one), 4));
        *hi = _mm256_add_epi8(
            *hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hbits, 2 * j + 1), one), 4));
    }
}

static float dot_k45(int n, const void *w, const void *x, bool five)
{
    const uint8_t *a = w, *b = x;
    const int bytes = five ? 176 : 144;
    __m256 acc = _mm256_setzero_ps();
    __m128 accm = _mm_setzero_ps();
    for (int i = 0; i < n / 256; i++, a += bytes, b += 292) {
        float dx;
        memcpy(&dx, b, 4);
        /* the 12 scale bytes -> 8 scales (utmp[0..1]) and 8 mins (utmp[2..3]), as ggml unpacks them
         */
        uint32_t u[4];
        memcpy(u, a + 4, 12);
        u[3] = ((u[2] >> 4) & 0x0f0f0f0f) | (((u[1] >> 6) & 0x03030303) << 4);
        const uint32_t aux = u[1] & 0x3f3f3f3f;
        u[1] = (u[2] & 0x0f0f0f0f) | (((u[0] >> 6) & 0x03030303) << 4);
        u[2] = aux;
        u[0] &= 0x3f3f3f3f;
        const __m256i ms =
            _mm256_cvtepu8_epi16(_mm_set_epi32((int)u[3], (int)u[2], (int)u[1], (int)u[0]));
        /* mins . (pairwise sums of bsums) */
        const __m256i bs = _mm256_loadu_si256((const __m256i *)(b + 260));
        const __m128i q8s =
            _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
        const __m128i prod = _mm_madd_epi16(_mm256_extracti128_si256(ms, 1), q8s);
        accm = _mm_fmadd_ps(_mm_set1_ps(-h2f(a + 2) * dx), _mm_cvtepi32_ps(prod), accm);
        const __m128i sc128 = _mm256_castsi256_si128(ms);
        const __m256i scales = _mm256_inserti128_si256(_mm256_castsi128_si256(sc128), sc128, 1);
        const uint8_t *qs = a + (five ? 48 : 16);
        const int8_t *q8 = (const int8_t *)(b + 4);
        const __m256i hbits =
            five ? _mm256_loadu_si256((const __m256i *)(a + 16)) : _mm256_setzero_si256();
        __m256i sumi = _mm256_setzero_si256();
        UNROLL for (int j = 0; j < 4; j++)
        {
            __m256i lo, hi;
            k45_weights(qs, hbits, j, five, &lo, &hi);
            const __m256i pl =
                _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(q8 + 64 * j)));
            const __m256i ph =
                _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(q8 + 64 * j + 32)));
            sumi = _mm256_add_epi32(
                sumi, _mm256_madd_epi16(pl, _mm256_shuffle_epi8(scales, rep16(2 * j))));
            sumi = _mm256_add_epi32(
                sumi, _mm256_madd_epi16(ph, _mm256_shuffle_epi8(scales, rep16(2 * j + 1))));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(a) * dx), _mm256_cvtepi32_ps(sumi), acc);
    }
    accm = _mm_add_ps(accm, _mm_movehl_ps(accm, accm));
    accm = _mm_add_ss(accm, _mm_movehdup_ps(accm));
    return hsum_ps(acc) + _mm_cvtss_f32(accm);
}

/* One Q4_K/Q5_K row against 4 activation rows: the block is unpacked once; each token's sums are
 * made by exactly the operations of dot_k45, so every result is bitwise the single-row one. */
static void dot4_k45(int n, const void *w, const void *x, size_t xs, float *out, bool five)
{
    const uint8_t *a = w, *b = x;
    const int bytes = five ? 176 : 144;
    __m256 acc[4];
    __m128 accm[4];
    UNROLL for (int t = 0; t < 4; t++) acc[t] = _mm256_setzero_ps(), accm[t] = _mm_setzero_ps();
    for (int i = 0; i < n / 256; i++, a += bytes, b += 292) {
        uint32_t u[4];
        memcpy(u, a + 4, 12);
        u[3] = ((u[2] >> 4) & 0x0f0f0f0f) | (((u[1] >> 6) & 0x03030303) << 4);
        const uint32_t aux = u[1] & 0x3f3f3f3f;
        u[1] = (u[2] & 0x0f0f0f0f) | (((u[0] >> 6) & 0x03030303) << 4);
        u[2] = aux;
        u[0] &= 0x3f3f3f3f;
        const __m256i ms =
            _mm256_cvtepu8_epi16(_mm_set_epi32((int)u[3], (int)u[2], (int)u[1], (int)u[0]));
        const __m128i mins = _mm256_extracti128_si256(ms, 1), sc128 = _mm256_castsi256_si128(ms);
        const __m256i scales = _mm256_inserti128_si256(_mm256_castsi128_si256(sc128), sc128, 1);
        const float d = h2f(a), dmin = h2f(a + 2);
        float dx[4];
        __m256i sumi[4];
        UNROLL for (int t = 0; t < 4; t++)
        {
            const uint8_t *bt = b + xs * (size_t)t;
            memcpy(&dx[t], bt, 4);
            const __m256i bs = _mm256_loadu_si256((const __m256i *)(bt + 260));
            const __m128i q8s =
                _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
            accm[t] = _mm_fmadd_ps(_mm_set1_ps(-dmin * dx[t]),
                                   _mm_cvtepi32_ps(_mm_madd_epi16(mins, q8s)), accm[t]);
            sumi[t] = _mm256_setzero_si256();
        }
        const uint8_t *qs = a + (five ? 48 : 16);
        const __m256i hbits =
            five ? _mm256_loadu_si256((const __m256i *)(a + 16)) : _mm256_setzero_si256();
        UNROLL for (int j = 0; j < 4; j++)
        {
            __m256i lo, hi;
            k45_weights(qs, hbits, j, five, &lo, &hi);
            const __m256i sl = _mm256_shuffle_epi8(scales, rep16(2 * j)),
                          sh = _mm256_shuffle_epi8(scales, rep16(2 * j + 1));
            UNROLL for (int t = 0; t < 4; t++)
            {
                const int8_t *q8 = (const int8_t *)(b + xs * (size_t)t + 4);
                const __m256i pl =
                    _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(q8 + 64 * j)));
                const __m256i ph = _mm256_maddubs_epi16(
                    hi, _mm256_loadu_si256((const __m256i *)(q8 + 64 * j + 32)));
                sumi[t] = _mm256_add_epi32(sumi[t], _mm256_madd_epi16(pl, sl));
                sumi[t] = _mm256_add_epi32(sumi[t], _mm256_madd_epi16(ph, sh));
            }
        }
        UNROLL for (int t = 0; t < 4; t++) acc[t] =
            _mm256_fmadd_ps(_mm256_set1_ps(d * dx[t]), _mm256_cvtepi32_ps(sumi[t]), acc[t]);
    }
    for (int t = 0; t < 4; t++) {
        __m128 m = _mm_add_ps(accm[t], _mm_movehl_ps(accm[t], accm[t]));
        m = _mm_add_ss(m, _mm_movehdup_ps(m));
        out[t] = hsum_ps(acc[t]) + _mm_cvtss_f32(m);
    }
}

static void dot4_q4_k(int n, const void *w, const void *x, size_t xs, float *out)
{
    dot4_k45(n, w, x, xs, out, false);
}

static void dot4_q5_k(int n, const void *w, const void *x, size_t xs, float *out)
{
    dot4_k45(n, w, x, xs, out, true);
}

/* Q8_0 / Q5_0 rows against 4 Q8_0 activation rows, each sum made as in the single-row kernels. */
static void dot4_q32(int n, const void *w, const void *x, size_t xs, float *out, int type)
{
    const uint8_t *a = w, *b = x;
    const int bytes = type == MODEL_TYPE_Q8_0 ? 34 : 22;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                     _mm256_setzero_ps()};
    for (int i = 0; i < n / 32; i++, a += bytes, b += 34) {
        __m256i qa;
        if (type == MODEL_TYPE_Q8_0)
            qa = _mm256_loadu_si256((const __m256i *)(a + 2));
        else
            qa = _mm256_or_si256(nibbles32(a + 6),
                                 _mm256_andnot_si256(bits32(a + 2), _mm256_set1_epi8((char)0xf0)));
        const float da = h2f(a);
        UNROLL for (int t = 0; t < 4; t++)
        {
            const uint8_t *bt = b + xs * (size_t)t;
            const __m256i qb = _mm256_loadu_si256((const __m256i *)(bt + 2));
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(da * h2f(bt)),
                                     _mm256_cvtepi32_ps(dot_i8(qa, qb)), acc[t]);
        }
    }
    for (int t = 0; t < 4; t++) out[t] = hsum_ps(acc[t]);
}

static void dot4_q8_0(int n, const void *w, const void *x, size_t xs, float *out)
{
    dot4_q32(n, w, x, xs, out, MODEL_TYPE_Q8_0);
}

static void dot4_q5_0(int n, const void *w, const void *x, size_t xs, float *out)
{
    dot4_q32(n, w, x, xs, out, MODEL_TYPE_Q5_0);
}

static float dot_q4_k(int n, const void *w, const void *x)
{
    return dot_k45(n, w, x, false);
}

static float dot_q5_k(int n, const void *w, const void *x)
{
    return dot_k45(n, w, x, true);
}

/* The four 32-weight runs of one Q6_K half-block (stored values 0..63, i.e. q + 32), from its
 * two 32-byte runs of low nibbles and its 32 bytes of high bit pairs. */
static inline void q6k_half(__m256i l1, __m256i l2, __m256i hb, __m256i q[4])
{
    const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(3);
    q[0] =
        _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_slli_epi16(_mm256_and_si256(hb, m2), 4));
    q[1] = _mm256_or_si256(_mm256_and_si256(l2, m4),
                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2), m2), 4));
    q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 4), m2), 4));
    q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l2, 4), m4),
                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 6), m2), 4));
}

static float dot_q6_k(int n, const void *w, const void *x)
{
    const uint8_t *a = w, *b = x;
    /* byte shuffles giving [s(2k) x8 | s(2k+1) x8] from the 16 scales of a half-block */
    __m128i pick[4];
    for (int k = 0; k < 4; k++)
        pick[k] =
            _mm_set_epi8((char)(2 * k + 1), (char)(2 * k + 1), (char)(2 * k + 1), (char)(2 * k + 1),
                         (char)(2 * k + 1), (char)(2 * k + 1), (char)(2 * k + 1), (char)(2 * k + 1),
                         (char)(2 * k), (char)(2 * k), (char)(2 * k), (char)(2 * k), (char)(2 * k),
                         (char)(2 * k), (char)(2 * k), (char)(2 * k));
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < n / 256; i++, a += 210, b += 292) {
        float dx;
        memcpy(&dx, b, 4);
        const int8_t *q8 = (const int8_t *)(b + 4);
        const __m128i sc8 = _mm_loadu_si128((const __m128i *)(a + 192));
        /* stored values are q + 32: subtract 32 * sum(scale * bsum) */
        const __m256i off = _mm256_madd_epi16(_mm256_cvtepi8_epi16(sc8),
                                              _mm256_loadu_si256((const __m256i *)(b + 260)));
        __m256i sumi = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(off, 5));
        UNROLL for (int h = 0; h < 2; h++)
        {
            const uint8_t *L = a + 64 * h, *H = a + 128 + 32 * h;
            const __m256i l1 = _mm256_loadu_si256((const __m256i *)L),
                          l2 = _mm256_loadu_si256((const __m256i *)(L + 32));
            const __m256i hb = _mm256_loadu_si256((const __m256i *)H);
            const __m128i sch =
                h ? _mm_srli_si128(sc8, 8) : sc8; /* this half's 8 scales in the low bytes */
            __m256i q[4];
            q6k_half(l1, l2, hb, q);
            UNROLL for (int k = 0; k < 4; k++)
            {
                const __m256i p = _mm256_maddubs_epi16(
                    q[k], _mm256_loadu_si256((const __m256i *)(q8 + 128 * h + 32 * k)));
                const __m256i sc = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sch, pick[k]));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, sc));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(a + 208) * dx), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum_ps(acc);
}

static float dot_f16(int n, const void *w, const void *x)
{
    const uint16_t *a = w, *b = x;
    __m256 acc = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8)
        acc = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i))),
                              _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b + i))), acc);
    float s = hsum_ps(acc);
    for (; i < n; i++) s += _cvtsh_ss(a[i]) * _cvtsh_ss(b[i]);
    return s;
}

static float dot_f32v(int n, const float *a, const float *b)
{
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), a1);
    }
    for (; i + 8 <= n; i += 8)
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), a0);
    float s = hsum_ps(_mm256_add_ps(a0, a1));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

static float dot_f32(int n, const void *w, const void *x)
{
    return dot_f32v(n, w, x);
}

static void axpy(int n, float alpha, const float *x, float *y)
{
    const __m256 va = _mm256_set1_ps(alpha);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i,
                         _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += alpha * x[i];
}

/* ---- dequantization (prefill tiles for sgemm) ---- */

static void store_i8x32(float *y, __m256i q, float d) /* y[0..31] = d * q */
{
    const __m256 vd = _mm256_set1_ps(d);
    const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    _mm256_storeu_ps(y, _mm256_mul_ps(vd, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo))));
    _mm256_storeu_ps(
        y + 8, _mm256_mul_ps(vd, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)))));
    _mm256_storeu_ps(y + 16, _mm256_mul_ps(vd, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi))));
    _mm256_storeu_ps(
        y + 24, _mm256_mul_ps(vd, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)))));
}

static void store_u8x32(float *y, __m256i q, float d, float m) /* y = d * q - m, q unsigned bytes */
{
    const __m256 vd = _mm256_set1_ps(d), vm = _mm256_set1_ps(m);
    const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    _mm256_storeu_ps(y, _mm256_fmsub_ps(vd, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(lo)), vm));
    _mm256_storeu_ps(
        y + 8,
        _mm256_fmsub_ps(vd, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8))), vm));
    _mm256_storeu_ps(y + 16, _mm256_fmsub_ps(vd, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(hi)), vm));
    _mm256_storeu_ps(
        y + 24,
        _mm256_fmsub_ps(vd, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8))), vm));
}

static bool dequant(int type, const void *src, float *y, int64_t n)
{
    const uint8_t *a = src;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    switch (type) {
    case MODEL_TYPE_Q8_0:
        for (int64_t i = 0; i < n / 32; i++, a += 34, y += 32)
            store_i8x32(y, _mm256_loadu_si256((const __m256i *)(a + 2)), h2f(a));
        return true;
    case MODEL_TYPE_Q4_0:
        for (int64_t i = 0; i < n / 32; i++, a += 18, y += 32)
            store_i8x32(y, _mm256_sub_epi8(nibbles32(a + 2), _mm256_set1_epi8(8)), h2f(a));
        return true;
    case MODEL_TYPE_Q5_0:
        for (int64_t i = 0; i < n / 32; i++, a += 22, y += 32) {
            const __m256i hi = _mm256_andnot_si256(bits32(a + 2), _mm256_set1_epi8((char)0xf0));
            store_i8x32(y, _mm256_or_si256(nibbles32(a + 6), hi), h2f(a));
        }
        return true;
    case MODEL_TYPE_Q4_K:
        for (int64_t i = 0; i < n / 256; i++, a += 144) {
            float d = h2f(a), dmin = h2f(a + 2);
            const uint8_t *s = a + 4;
            for (int j = 0; j < 4; j++, y += 64) {
                int k0 = 2 * j, k1 = 2 * j + 1;
                int sc0 = k0 < 4 ? s[k0] & 63 : (s[k0 + 4] & 0x0f) | ((s[k0 - 4] >> 6) << 4);
                int mn0 = k0 < 4 ? s[k0 + 4] & 63 : (s[k0 + 4] >> 4) | ((s[k0] >> 6) << 4);
                int sc1 = k1 < 4 ? s[k1] & 63 : (s[k1 + 4] & 0x0f) | ((s[k1 - 4] >> 6) << 4);
                int mn1 = k1 < 4 ? s[k1 + 4] & 63 : (s[k1 + 4] >> 4) | ((s[k1] >> 6) << 4);
                const __m256i q = _mm256_loadu_si256((const __m256i *)(a + 16 + 32 * j));
                store_u8x32(y, _mm256_and_si256(q, m4), d * (float)sc0, dmin * (float)mn0);
                store_u8x32(y + 32, _mm256_and_si256(_mm256_srli_epi16(q, 4), m4), d * (float)sc1,
                            dmin * (float)mn1);
            }
        }
        return true;
    case MODEL_TYPE_Q6_K: {
        const __m256i o32 = _mm256_set1_epi8(32);
        for (int64_t i = 0; i < n / 256; i++, a += 210) {
            float d = h2f(a + 208);
            const int8_t *S = (const int8_t *)(a + 192);
            for (int h = 0; h < 2; h++, y += 128) {
                const uint8_t *L = a + 64 * h, *H = a + 128 + 32 * h;
                const __m256i l1 = _mm256_loadu_si256((const __m256i *)L),
                              l2 = _mm256_loadu_si256((const __m256i *)(L + 32));
                const __m256i hb = _mm256_loadu_si256((const __m256i *)H);
                __m256i q[4];
                q6k_half(l1, l2, hb, q);
                for (int k = 0; k < 4; k++) {
                    /* 32 values: the first 16 use scale 2k, the next 16 scale 2k+1 (of this half)
                     */
                    float tmp[32];
                    store_i8x32(tmp, _mm256_sub_epi8(q[k], o32), 1.0f);
                    float s0 = d * (float)S[8 * h + 2 * k], s1 = d * (float)S[8 * h + 2 * k + 1];
                    for (int l = 0; l < 16; l++)
                        y[32 * k + l] = tmp[l] * s0, y[32 * k + 16 + l] = tmp[16 + l] * s1;
                }
            }
        }
        return true;
    }
    default:
        return false;
    }
}

/* ---- activation quantization (bitwise the reference quantizers in quant.c) ---- */

static inline float hmax_ps(__m256 x)
{
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

/* 32 floats times `scale`, rounded half to even, to 32 int8 (the values fit: |x * scale| <= 127) */
static inline __m256i round_i8x32(const float *x, __m256 scale)
{
    __m256i v[4];
    for (int k = 0; k < 4; k++)
        v[k] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * k), scale),
                                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    const __m256i p =
        _mm256_packs_epi16(_mm256_packs_epi32(v[0], v[1]), _mm256_packs_epi32(v[2], v[3]));
    return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

static __m256 abs_ps(__m256 x)
{
    return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
}

static void quant_q8_0(const float *x, uint8_t *b)
{
    __m256 m = _mm256_setzero_ps();
    for (int k = 0; k < 4; k++) m = _mm256_max_ps(m, abs_ps(_mm256_loadu_ps(x + 8 * k)));
    const float amax = hmax_ps(m), d = amax / 127.0f, id = amax != 0 ? 127.0f / amax : 0;
    _mm256_storeu_si256((__m256i *)(b + 2), round_i8x32(x, _mm256_set1_ps(id)));
    const uint16_t h = model__f32_to_fp16(d);
    memcpy(b, &h, 2);
}

static void quant_q8_k(const float *x, uint8_t *b)
{
    __m256 m = _mm256_setzero_ps();
    for (int k = 0; k < 32; k++) m = _mm256_max_ps(m, abs_ps(_mm256_loadu_ps(x + 8 * k)));
    const float amax = hmax_ps(m);
    float d = 0;
    if (amax == 0) {
        memset(b + 4, 0, 256);
    } else {
        int j =
            0; /* the first element of largest magnitude sets the sign, as the reference's scan */
        while (fabsf(x[j]) != amax) j++;
        const float iscale = -127.0f / x[j];
        /* the reference clamps at 127 (rounding can reach 127 + epsilon); packing saturates
         * likewise */
        for (int k = 0; k < 8; k++)
            _mm256_storeu_si256((__m256i *)(b + 4 + 32 * k),
                                round_i8x32(x + 32 * k, _mm256_set1_ps(iscale)));
        d = 1 / iscale;
    }
    memcpy(b, &d, 4);
    for (int g = 0; g < 16; g++) { /* bsums: 16-element sums */
        const __m256i q = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b + 4 + 16 * g)));
        const int16_t s = (int16_t)hsum_i32(_mm256_madd_epi16(q, _mm256_set1_epi16(1)));
        memcpy(b + 260 + 2 * g, &s, 2);
    }
}

static bool quant_act(int type, const float *x, void *dst, int64_t n)
{
    uint8_t *b = dst;
    if (type == MODEL_TYPE_Q8_0) {
        for (int64_t i = 0; i < n / 32; i++) quant_q8_0(x + 32 * i, b + 34 * i);
        return true;
    }
    if (type == MODEL_TYPE_Q8_K) {
        for (int64_t i = 0; i < n / 256; i++) quant_q8_k(x + 256 * i, b + 292 * i);
        return true;
    }
    return false;
}

void model__kernels_avx2(model_kernels *k)
{
    k->dequant = dequant;
    k->quant_act = quant_act;
    k->vec_dot4[MODEL_TYPE_Q4_K] = dot4_q4_k;
    k->vec_dot4[MODEL_TYPE_Q5_K] = dot4_q5_k;
    k->vec_dot4[MODEL_TYPE_Q8_0] = dot4_q8_0;
    k->vec_dot4[MODEL_TYPE_Q5_0] = dot4_q5_0;
    k->vec_dot[MODEL_TYPE_F32] = dot_f32;
    k->vec_dot[MODEL_TYPE_F16] = dot_f16;
    k->vec_dot[MODEL_TYPE_Q8_0] = dot_q8_0;
    k->vec_dot[MODEL_TYPE_Q4_0] = dot_q4_0;
    k->vec_dot[MODEL_TYPE_Q5_0] = dot_q5_0;
    k->vec_dot[MODEL_TYPE_IQ4_NL] = dot_iq4_nl;
    k->vec_dot[MODEL_TYPE_Q4_K] = dot_q4_k;
    k->vec_dot[MODEL_TYPE_Q5_K] = dot_q5_k;
    k->vec_dot[MODEL_TYPE_Q6_K] = dot_q6_k;
    k->dot_f32 = dot_f32v;
    k->axpy_f32 = axpy;
    k->name = "avx2";
}
#else
void model__kernels_avx2(model_kernels *k)
{
    (void)k;
}
#endif
