/* model/kernels_avx512.c — AVX-512BW versions of the hottest decode kernel (Q6_K, the output head
 * of a Q4_K_M file), two 32-byte chunks per instruction; the other types keep their AVX2 kernels
 * (a 512-bit Q4_K measured slower than the AVX2 one here, so there is none).
 * Same integer sums as the reference; compiled with -mavx512f -mavx512bw -mavx512vl, chosen at
 * run time. */
#include "model_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <string.h>

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

static float dot_q6_k(int n, const void *w, const void *x)
{
    const uint8_t *a = w, *b = x;
    const __m512i m4 = _mm512_set1_epi8(0x0f), m2 = _mm512_set1_epi8(3);
    /* [s0 x8, s1 x8 | s2 x8, s3 x8] and [s4 x8, s5 x8 | s6 x8, s7 x8] from a half's 8 scales */
    const __m256i pick01 = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2,
                                            3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i pick23 = _mm256_add_epi8(pick01, _mm256_set1_epi8(4));
    __m512 acc = _mm512_setzero_ps();
    for (int i = 0; i < n / 256; i++, a += 210, b += 292) {
        float dx;
        memcpy(&dx, b, 4);
        const int8_t *q8 = (const int8_t *)(b + 4);
        const __m128i sc8 = _mm_loadu_si128((const __m128i *)(a + 192));
        const __m256i off = _mm256_madd_epi16(_mm256_cvtepi8_epi16(sc8), _mm256_loadu_si256((const __m256i *)(b + 260)));
        __m512i sumi = _mm512_castsi256_si512(_mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(off, 5)));
        sumi = _mm512_inserti64x4(sumi, _mm256_setzero_si256(), 1);
        for (int h = 0; h < 2; h++) {
            const __m512i L = _mm512_loadu_si512((const void *)(a + 64 * h));
            const __m256i hb = _mm256_loadu_si256((const __m256i *)(a + 128 + 32 * h));
            const __m512i H01 = pair(hb, _mm256_srli_epi16(hb, 2)), H23 = pair(_mm256_srli_epi16(hb, 4), _mm256_srli_epi16(hb, 6));
            const __m512i q01 = _mm512_or_si512(_mm512_and_si512(L, m4), _mm512_slli_epi16(_mm512_and_si512(H01, m2), 4));
            const __m512i q23 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(L, 4), m4),
                                                _mm512_slli_epi16(_mm512_and_si512(H23, m2), 4));
            const __m256i sch = _mm256_broadcastsi128_si256(h ? _mm_srli_si128(sc8, 8) : sc8);
            const __m512i s01 = _mm512_cvtepi8_epi16(_mm256_shuffle_epi8(sch, pick01));
            const __m512i s23 = _mm512_cvtepi8_epi16(_mm256_shuffle_epi8(sch, pick23));
            const __m512i p01 = _mm512_maddubs_epi16(q01, _mm512_loadu_si512((const void *)(q8 + 128 * h)));
            const __m512i p23 = _mm512_maddubs_epi16(q23, _mm512_loadu_si512((const void *)(q8 + 128 * h + 64)));
            sumi = _mm512_add_epi32(sumi, _mm512_madd_epi16(p01, s01));
            sumi = _mm512_add_epi32(sumi, _mm512_madd_epi16(p23, s23));
        }
        acc = _mm512_fmadd_ps(_mm512_set1_ps(h2f(a + 208) * dx), _mm512_cvtepi32_ps(sumi), acc);
    }
    return _mm512_reduce_add_ps(acc);
}

void model__kernels_avx512(model_kernels *k)
{
    k->vec_dot[MODEL_TYPE_Q6_K] = dot_q6_k;
    k->name = "avx512";
}
#else
void model__kernels_avx512(model_kernels *k)
{
    (void)k;
}
#endif
