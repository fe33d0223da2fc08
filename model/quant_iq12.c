/* model/quant_iq12.c — the 2-bit and 1.5-bit i-quants IQ2_XXS, IQ2_XS, IQ2_S, IQ1_S and IQ1_M:
 * one block dequantized exactly as ggml's dequantize_row_*, and the scalar reference dots against
 * Q8_K activations, as ggml's generic vec_dot_*_q8_K (same integer sums, same float operations). */
#include "model_internal.h"
#include "iq12_grids.h"

#include <string.h>

#define QKK 256
#define Q8K_BYTES 292    /* float d, int8 qs[256], int16 bsums[16] */
#define IQ1_DELTA 0.125f /* ggml's IQ1S_DELTA, which IQ1M_DELTA equals */

/* A block unpacked, shared by dequantization and dot: q holds the signed grid values, sc the raw
 * scale of each 16 elements (4 bits for IQ2, 3 for IQ1; ggml's 32-element scales are repeated),
 * dsign (IQ1 only) the sign, +1 or -1, of the delta of each 8 elements. */
typedef struct {
    int8_t q[QKK];
    uint8_t sc[16];
    int8_t dsign[32];
} iq_block;

/* Fills u from block b; returns the block's scale d. */
typedef float (*unpack_fn)(const uint8_t *b, iq_block *u);

static uint16_t le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ggml's ksigns_iq2xs[i]: blocks store 7 sign bits per 8 values; the eighth is implied, making
 * the number of negatives even. */
static unsigned signs8(unsigned i)
{
    unsigned p = i ^ i >> 4;
    p ^= p >> 2;
    p ^= p >> 1;
    return i | (p & 1) << 7;
}

/* Byte j of the result is 0xff where bit j of s is set: s copied to every byte, each byte keeps
 * its own bit, and a nonzero byte becomes 0xff. */
static uint64_t byte_mask(unsigned s)
{
    uint64_t x = (uint64_t)s * 0x0101010101010101u & 0x8040201008040201u;
    return (((x + 0x7f7f7f7f7f7f7f7fu) & 0x8080808080808080u) >> 7) * 0xff;
}

/* The 8 int8 values of grid entry g, value j negated where bit j of signs is set: per byte ~v + 1,
 * eight at a time (IQ2's values are at most 43, so no carry crosses a byte). The bytes are stored
 * in memory order, element j from bits 8j.., on little-endian hosts as the rest of fimd. IQ1's
 * entries are int8 already and take no signs. */
static void put8(int8_t *q, uint64_t g, unsigned signs)
{
    uint64_t m = byte_mask(signs);
    g = (g ^ m) + (m & 0x0101010101010101u);
    memcpy(q, &g, 8);
}

/* ---- unpacking, one per type ---- */

/* IQ2_XXS (66 bytes): fp16 d, then per 32 elements 4 grid-index bytes and a uint32 holding four
 * 7-bit sign indices and the 4-bit scale (top bits). */
static float unpack_iq2_xxs(const uint8_t *b, iq_block *u)
{
    for (int ib = 0; ib < 8; ib++) {
        const uint8_t *p = b + 2 + 8 * ib;
        uint32_t aux = le32(p + 4);
        for (int l = 0; l < 4; l++)
            put8(u->q + 32 * ib + 8 * l, iq2xxs_grid[p[l]], signs8(aux >> 7 * l & 127));
        u->sc[2 * ib] = u->sc[2 * ib + 1] = (uint8_t)(aux >> 28);
    }
    return model__fp16_to_f32(le16(b));
}

/* IQ2_XS (74 bytes): fp16 d, 32 uint16 (9-bit grid index, 7-bit sign index), 8 scale bytes (two
 * 4-bit scales, one per 16 elements). */
static float unpack_iq2_xs(const uint8_t *b, iq_block *u)
{
    for (int k = 0; k < 32; k++) {
        uint16_t v = le16(b + 2 + 2 * k);
        put8(u->q + 8 * k, iq2xs_grid[v & 511], signs8(v >> 9));
    }
    for (int g = 0; g < 16; g++) u->sc[g] = (uint8_t)(b[66 + g / 2] >> 4 * (g % 2) & 15);
    return model__fp16_to_f32(le16(b));
}

/* IQ2_S (82 bytes): fp16 d, 32 low bytes of the 10-bit grid indices, 32 explicit sign bytes, 8
 * bytes of the indices' top 2 bits (four per 32 elements), 8 scale bytes as IQ2_XS. */
static float unpack_iq2_s(const uint8_t *b, iq_block *u)
{
    const uint8_t *qs = b + 2, *signs = b + 34, *qh = b + 66;
    for (int k = 0; k < 32; k++) {
        int idx = qs[k] | (qh[k / 4] << (8 - 2 * (k % 4)) & 0x300);
        put8(u->q + 8 * k, iq2s_grid[idx], signs[k]);
    }
    for (int g = 0; g < 16; g++) u->sc[g] = (uint8_t)(b[74 + g / 2] >> 4 * (g % 2) & 15);
    return model__fp16_to_f32(le16(b));
}

/* IQ1_S (50 bytes): fp16 d, 32 low bytes of the 11-bit grid indices, then per 32 elements a
 * uint16: four 3-bit index tops, a 3-bit scale (bits 12..14) and the delta's sign (bit 15). */
static float unpack_iq1_s(const uint8_t *b, iq_block *u)
{
    for (int ib = 0; ib < 8; ib++) {
        uint16_t h = le16(b + 34 + 2 * ib);
        for (int l = 0; l < 4; l++) {
            put8(u->q + 32 * ib + 8 * l, iq1s_grid[b[2 + 4 * ib + l] | (h >> 3 * l & 7) << 8], 0);
            u->dsign[4 * ib + l] = (int8_t)(h >> 15 ? -1 : 1);
        }
        u->sc[2 * ib] = u->sc[2 * ib + 1] = (uint8_t)(h >> 12 & 7);
    }
    return model__fp16_to_f32(le16(b));
}

/* IQ1_M (56 bytes): 32 low index bytes, 16 bytes of nibbles (3-bit index top, delta sign bit 3)
 * one per 8 elements, 4 uint16 of 3-bit scales, one per 16 elements in bits 0..11. There is no d
 * field: its fp16 bits are the four uint16s' top nibbles. */
static float unpack_iq1_m(const uint8_t *b, iq_block *u)
{
    uint16_t sc[4];
    for (int k = 0; k < 4; k++) sc[k] = le16(b + 48 + 2 * k);
    for (int k = 0; k < 32; k++) {
        unsigned nib = b[32 + k / 2] >> 4 * (k % 2);
        put8(u->q + 8 * k, iq1s_grid[b[k] | (nib & 7) << 8], 0);
        u->dsign[k] = (int8_t)(nib & 8 ? -1 : 1);
    }
    for (int g = 0; g < 16; g++) u->sc[g] = (uint8_t)(sc[g / 4] >> 3 * (g % 4) & 7);
    uint16_t d =
        (uint16_t)(sc[0] >> 12 | (sc[1] >> 8 & 0x00f0) | (sc[2] >> 4 & 0x0f00) | (sc[3] & 0xf000));
    return model__fp16_to_f32(d);
}

/* ---- dequantization ---- */

/* IQ2: value = d * (0.5 + scale) / 4 * grid value, rounded as ggml computes it. */
static void deq_iq2(unpack_fn unpack, const uint8_t *b, float *y)
{
    iq_block u;
    float d = unpack(b, &u);
    for (int g = 0; g < 16; g++) {
        float db = d * (0.5f + u.sc[g]) * 0.25f;
        for (int j = 0; j < 16; j++) y[16 * g + j] = db * u.q[16 * g + j];
    }
}

/* IQ1: value = d * (2 scale + 1) * (grid value ± delta). */
static void deq_iq1(unpack_fn unpack, const uint8_t *b, float *y)
{
    iq_block u;
    float d = unpack(b, &u);
    for (int g = 0; g < 16; g++) {
        float dl = d * (2 * u.sc[g] + 1);
        for (int j = 0; j < 16; j++) {
            int k = 16 * g + j;
            y[k] = dl * (u.q[k] + u.dsign[k / 8] * IQ1_DELTA); /* exactly ggml's +-IQ1S_DELTA */
        }
    }
}

void model__deq_iq2_xxs(const uint8_t *b, float *y)
{
    deq_iq2(unpack_iq2_xxs, b, y);
}
void model__deq_iq2_xs(const uint8_t *b, float *y)
{
    deq_iq2(unpack_iq2_xs, b, y);
}
void model__deq_iq2_s(const uint8_t *b, float *y)
{
    deq_iq2(unpack_iq2_s, b, y);
}
void model__deq_iq1_s(const uint8_t *b, float *y)
{
    deq_iq1(unpack_iq1_s, b, y);
}
void model__deq_iq1_m(const uint8_t *b, float *y)
{
    deq_iq1(unpack_iq1_m, b, y);
}

/* ---- dot products against Q8_K ---- */

static int sum16(const int8_t *a, const int8_t *x)
{
    int s = 0;
    for (int j = 0; j < 16; j++) s += a[j] * x[j];
    return s;
}

/* The integer sum of (2 scale + 1) * q * x over a block. */
static int scaled_sum(const iq_block *u, const int8_t *qx)
{
    int s = 0;
    for (int g = 0; g < 16; g++) s += (2 * u->sc[g] + 1) * sum16(u->q + 16 * g, qx + 16 * g);
    return s;
}

/* IQ2: ggml's d_w d_x * the scaled sum per block, and the 1/8 (its (0.5 + s) / 4 = (2 s + 1) / 8)
 * applied once at the end. */
static float dot_iq2(unpack_fn unpack, int bytes, int n, const void *w, const void *x)
{
    const uint8_t *a = w, *b = x;
    float sumf = 0;
    for (int i = 0; i < n / QKK; i++, a += bytes, b += Q8K_BYTES) {
        iq_block u;
        float dx;
        memcpy(&dx, b, 4);
        float d = unpack(a, &u) * dx;
        sumf += d * scaled_sum(&u, (const int8_t *)(b + 4));
    }
    return 0.125f * sumf;
}

float model__dot_iq2_xxs(int n, const void *w, const void *x)
{
    return dot_iq2(unpack_iq2_xxs, 66, n, w, x);
}
float model__dot_iq2_xs(int n, const void *w, const void *x)
{
    return dot_iq2(unpack_iq2_xs, 74, n, w, x);
}
float model__dot_iq2_s(int n, const void *w, const void *x)
{
    return dot_iq2(unpack_iq2_s, 82, n, w, x);
}

/* IQ1: the integer sums of (2 scale + 1) * q * x and of (2 scale + 1) * the delta's sign * x,
 * combined as ggml does: d_w d_x (sumi + delta * sumd). */
static float iq1_block(float dw, const uint8_t *b, int sumi, int sumd)
{
    float dx;
    memcpy(&dx, b, 4);
    return dw * dx * (sumi + IQ1_DELTA * sumd);
}

/* IQ1_S's delta sign covers 32 elements, so (as ggml) its term takes Q8_K's 16-element bsums. */
float model__dot_iq1_s(int n, const void *w, const void *x)
{
    const uint8_t *a = w, *b = x;
    float sumf = 0;
    for (int i = 0; i < n / QKK; i++, a += 50, b += Q8K_BYTES) {
        iq_block u;
        float d = unpack_iq1_s(a, &u);
        int16_t bs[16];
        memcpy(bs, b + 260, sizeof bs);
        int sumd = 0;
        for (int g = 0; g < 16; g++) sumd += (2 * u.sc[g] + 1) * u.dsign[2 * g] * bs[g];
        sumf += iq1_block(d, b, scaled_sum(&u, (const int8_t *)(b + 4)), sumd);
    }
    return sumf;
}

static int sum8(const int8_t *x)
{
    int s = 0;
    for (int j = 0; j < 8; j++) s += x[j];
    return s;
}

/* IQ1_M's delta sign changes every 8 elements: sums of 8 activations. */
float model__dot_iq1_m(int n, const void *w, const void *x)
{
    const uint8_t *a = w, *b = x;
    float sumf = 0;
    for (int i = 0; i < n / QKK; i++, a += 56, b += Q8K_BYTES) {
        iq_block u;
        float d = unpack_iq1_m(a, &u);
        const int8_t *qx = (const int8_t *)(b + 4);
        int s8[32], sumd = 0;
        for (int k = 0; k < 32; k++) s8[k] = sum8(qx + 8 * k);
        for (int k = 0; k < 32; k++) sumd += (2 * u.sc[k / 2] + 1) * u.dsign[k] * s8[k];
        sumf += iq1_block(d, b, scaled_sum(&u, qx), sumd);
    }
    return sumf;
}
