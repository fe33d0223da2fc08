/* model/quant_iq.c — the importance-matrix types IQ4_XS, IQ3_XXS and IQ3_S: one block dequantized
 * exactly as ggml's dequantize_row_*, the scalar reference dots against Q8_K (ggml's generic
 * vec_dot_*_q8_K, same integer sums and float steps), and a simple IQ4_XS weight quantizer. */
#include "model_internal.h"
#include "iq3_grids.h"

#include <math.h>
#include <string.h>

enum { QKK = 256, Q8K_BYTES = 292 }; /* Q8_K: float d, int8 qs[256], int16 bsums[16] */

static const int8_t kvalues_iq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                         1,    13,   25,  38,  53,  69,  89,  113};

static float h2f(const uint8_t *p)
{
    return model__fp16_to_f32((uint16_t)(p[0] | p[1] << 8));
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static float q8k_d(const uint8_t *x)
{
    float d;
    memcpy(&d, x, 4);
    return d;
}

static int dot32(const int8_t *q, const uint8_t *x)
{
    int s = 0;
    for (int j = 0; j < 32; j++) s += q[j] * (int8_t)x[j];
    return s;
}

/* ---- IQ4_XS: fp16 d, u16 scales_h, u8 scales_l[4], qs[128] ----
 * Sub-block ib (32 weights) has the 6-bit scale ls = low nibble from scales_l, 2 high bits from
 * scales_h, and weights d * (ls - 32) * kvalues_iq4nl[index]: 16 bytes, weight j in the low
 * nibble of byte j and weight 16 + j in its high nibble (IQ4_NL's order). */

static int iq4xs_ls(const uint8_t *b, int ib)
{
    const int h = b[2] | b[3] << 8;
    return ((b[4 + ib / 2] >> 4 * (ib % 2)) & 15) | ((h >> 2 * ib) & 3) << 4;
}

static void iq4xs_sub(const uint8_t *b, int ib, int8_t q[32])
{
    const uint8_t *qs = b + 8 + 16 * ib;
    for (int j = 0; j < 16; j++)
        q[j] = kvalues_iq4nl[qs[j] & 15], q[j + 16] = kvalues_iq4nl[qs[j] >> 4];
}

void model__deq_iq4_xs(const uint8_t *b, float *y)
{
    const float d = h2f(b);
    for (int ib = 0; ib < 8; ib++, y += 32) {
        const float dl = d * (float)(iq4xs_ls(b, ib) - 32);
        int8_t q[32];
        iq4xs_sub(b, ib, q);
        for (int j = 0; j < 32; j++) y[j] = dl * (float)q[j];
    }
}

/* As ggml's generic kernel: one float product per sub-block, summed in order. */
float model__dot_iq4_xs(int n, const void *w, const void *x)
{
    const uint8_t *a = w, *b = x;
    float s = 0;
    for (int i = 0; i < n / QKK; i++, a += 136, b += Q8K_BYTES) {
        const float d = h2f(a) * q8k_d(b);
        for (int ib = 0; ib < 8; ib++) {
            int8_t q[32];
            iq4xs_sub(a, ib, q);
            s += d * (float)(iq4xs_ls(a, ib) - 32) * (float)dot32(q, b + 4 + 32 * ib);
        }
    }
    return s;
}

/* ---- the IQ3 types: groups of 4 magnitudes from a grid, one sign bit per weight ---- */

/* Eight signed weights from two grid entries (byte k of an entry is weight k's magnitude) and a
 * byte of signs (bit j set: weight j is negative). */
static void iq3_group8(uint32_t g1, uint32_t g2, unsigned signs, int8_t q[8])
{
    for (int j = 0; j < 4; j++) {
        const int v1 = (int)(g1 >> 8 * j & 255), v2 = (int)(g2 >> 8 * j & 255);
        q[j] = (int8_t)(signs >> j & 1 ? -v1 : v1);
        q[j + 4] = (int8_t)(signs >> (j + 4) & 1 ? -v2 : v2);
    }
}

/* IQ3_XXS: fp16 d, qs[64] grid indices (8 per sub-block), then a u32 per sub-block: four 7-bit
 * sign fields (bits 7l..7l+6 for weights 8l..8l+6) and the 4-bit scale in bits 28..31. The eighth
 * sign makes the count of minus signs even (ggml's ksigns_iq2xs table: i | parity(i) << 7). */
static unsigned iq3xxs_signs(uint32_t s7)
{
    return s7 | (unsigned)__builtin_parity(s7) << 7;
}

/* Sub-block ib's 32 signed weights; returns its 4-bit scale. */
static int iq3xxs_sub(const uint8_t *b, int ib, int8_t q[32])
{
    const uint8_t *qs = b + 2 + 8 * ib;
    const uint32_t aux = le32(b + 66 + 4 * ib);
    for (int l = 0; l < 4; l++)
        iq3_group8(iq3xxs_grid[qs[2 * l]], iq3xxs_grid[qs[2 * l + 1]],
                   iq3xxs_signs(aux >> 7 * l & 127), q + 8 * l);
    return (int)(aux >> 28);
}

void model__deq_iq3_xxs(const uint8_t *b, float *y)
{
    const float d = h2f(b);
    for (int ib = 0; ib < 8; ib++, y += 32) {
        int8_t q[32];
        const int ls = iq3xxs_sub(b, ib, q);
        const float db = d * (0.5f + (float)ls) * 0.5f;
        for (int j = 0; j < 32; j++) y[j] = db * (float)q[j];
    }
}

/* The scale is (2 ls + 1) / 4: odd integer factors in the block sum, the quarter at the end. */
float model__dot_iq3_xxs(int n, const void *w, const void *x)
{
    const uint8_t *a = w, *b = x;
    float s = 0;
    for (int i = 0; i < n / QKK; i++, a += 98, b += Q8K_BYTES) {
        int bsum = 0;
        for (int ib = 0; ib < 8; ib++) {
            int8_t q[32];
            const int ls = iq3xxs_sub(a, ib, q);
            bsum += dot32(q, b + 4 + 32 * ib) * (2 * ls + 1);
        }
        s += h2f(a) * q8k_d(b) * (float)bsum;
    }
    return 0.25f * s;
}

/* IQ3_S: fp16 d, qs[64] low 8 bits of the grid indices, qh[8] (byte ib, bit g: the ninth bit of
 * group g of sub-block ib), signs[32] (bit j of byte 4 ib + l: weight 8 l + j of sub-block ib),
 * scales[4] (a nibble per sub-block: d * (1 + 2 s)). */
static void iq3s_sub(const uint8_t *b, int ib, int8_t q[32])
{
    const uint8_t *qs = b + 2 + 8 * ib, *signs = b + 74 + 4 * ib;
    const unsigned qh = b[66 + ib];
    for (int l = 0; l < 4; l++)
        iq3_group8(iq3s_grid[qs[2 * l] | (qh << (8 - 2 * l) & 256)],
                   iq3s_grid[qs[2 * l + 1] | (qh << (7 - 2 * l) & 256)], signs[l], q + 8 * l);
}

static int iq3s_ls(const uint8_t *b, int ib)
{
    return b[106 + ib / 2] >> 4 * (ib % 2) & 15;
}

void model__deq_iq3_s(const uint8_t *b, float *y)
{
    const float d = h2f(b);
    for (int ib = 0; ib < 8; ib++, y += 32) {
        int8_t q[32];
        iq3s_sub(b, ib, q);
        const float db = d * (float)(1 + 2 * iq3s_ls(b, ib));
        for (int j = 0; j < 32; j++) y[j] = db * (float)q[j];
    }
}

float model__dot_iq3_s(int n, const void *w, const void *x)
{
    const uint8_t *a = w, *b = x;
    float s = 0;
    for (int i = 0; i < n / QKK; i++, a += 110, b += Q8K_BYTES) {
        int bsum = 0;
        for (int ib = 0; ib < 8; ib++) {
            int8_t q[32];
            iq3s_sub(a, ib, q);
            bsum += dot32(q, b + 4 + 32 * ib) * (1 + 2 * iq3s_ls(a, ib));
        }
        s += h2f(a) * q8k_d(b) * (float)bsum;
    }
    return s;
}

/* ---- IQ4_XS weight quantizer (synth): no importance matrix, a small search per sub-block ---- */

/* The nearest of the 16 sorted values (the lower one on a tie): a binary search, since synth
 * calls this some 15 times per weight. */
static int iq4_nearest(float v)
{
    if (v <= (float)kvalues_iq4nl[0]) return 0;
    if (v >= (float)kvalues_iq4nl[15]) return 15;
    int lo = 0, hi = 15;
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (v < (float)kvalues_iq4nl[mid])
            hi = mid;
        else
            lo = mid;
    }
    return v - (float)kvalues_iq4nl[lo] <= (float)kvalues_iq4nl[hi] - v ? lo : hi;
}

/* A sub-block's float scale: each candidate maps the largest magnitude near -127 (the value
 * table's widest end), the rounding it gives is refitted by least squares, and the fit that
 * explains the most of x (largest (x.q)^2 / q.q) wins. */
static float iq4_sub_scale(const float *x)
{
    float max = 0;
    for (int j = 0; j < 32; j++)
        if (fabsf(x[j]) > fabsf(max)) max = x[j];
    if (max == 0) return 0;
    float best = -max / 127.0f, best_num = 0, best_den = 1;
    for (int t = -7; t <= 7; t++) {
        const float id = ((float)t - 127.0f) / max;
        float sqx = 0, sqq = 0;
        for (int j = 0; j < 32; j++) {
            const float q = kvalues_iq4nl[iq4_nearest(id * x[j])];
            sqx += q * x[j], sqq += q * q;
        }
        if (sqx * sqx * best_den > best_num * sqq)
            best = sqx / sqq, best_num = sqx * sqx, best_den = sqq;
    }
    return best;
}

void model__quant_iq4_xs(const float *x, uint8_t *b)
{
    float s[8], smax = 0;
    for (int ib = 0; ib < 8; ib++) {
        s[ib] = iq4_sub_scale(x + 32 * ib);
        if (fabsf(s[ib]) > fabsf(smax)) smax = s[ib];
    }
    /* ls - 32 spans -32..31, so the largest sub-block scale becomes -32 steps of d */
    const uint16_t dh = model__f32_to_fp16(-smax / 32.0f);
    b[0] = (uint8_t)dh, b[1] = (uint8_t)(dh >> 8);
    const float d = h2f(b);
    unsigned sh = 0;
    memset(b + 4, 0, 4);
    for (int ib = 0; ib < 8; ib++) {
        int l = d != 0 ? (int)lrintf(s[ib] / d) : 0;
        l = l < -32 ? -32 : l > 31 ? 31 : l;
        b[4 + ib / 2] |= (uint8_t)(((l + 32) & 15) << 4 * (ib % 2));
        sh |= (unsigned)((l + 32) >> 4) << 2 * ib;
        /* the weights are rounded for the scale actually stored */
        const float dl = d * (float)l, id = dl != 0 ? 1.0f / dl : 0;
        const float *xs = x + 32 * ib;
        uint8_t *qs = b + 8 + 16 * ib;
        for (int j = 0; j < 16; j++)
            qs[j] = (uint8_t)(iq4_nearest(xs[j] * id) | iq4_nearest(xs[j + 16] * id) << 4);
    }
    b[2] = (uint8_t)sh, b[3] = (uint8_t)(sh >> 8);
}
