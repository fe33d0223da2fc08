/* model/quant_k23.c — the 2- and 3-bit K-quant tensor types, Q2_K and Q3_K: one block dequantized
 * exactly as ggml does, the scalar reference dot against Q8_K activations behind the kernel table,
 * and least-squares weight quantizers for synthesized models. */
#include "model_internal.h"

#include <math.h>
#include <string.h>

#define QKK 256

/* Block layouts (ggml's block_q2_K / block_q3_K, little-endian):
 * Q2_K (84 bytes): scales[16] (low nibble: scale, high nibble: min), qs[64], d, dmin (fp16).
 * Q3_K (110 bytes): hmask[32], qs[64], scales[12] (sixteen 6-bit values, biased by 32), d (fp16).
 * In both, element e = 128 n + 32 j + l (l < 32) keeps its low two bits at bit 2 j of qs[32 n + l]
 * and Q3_K its third bit at bit 4 n + j of hmask[l]; sub-block e / 16 gives its scale. */
enum { Q2_QS = 16, Q2_D = 80, Q2_DMIN = 82, Q3_QS = 32, Q3_SC = 96, Q3_D = 108 };

static float h2f(const uint8_t *p)
{
    return model__fp16_to_f32((uint16_t)(p[0] | p[1] << 8));
}

static void f2h(uint8_t *p, float f)
{
    uint16_t h = model__f32_to_fp16(f);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

/* The 2-bit fields of a block's qs, in element order (shared by both layouts). */
static void low_bits(const uint8_t *qs, int8_t q[QKK])
{
    for (int h = 0; h < 2; h++)
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 32; l++)
                q[128 * h + 32 * j + l] = (int8_t)(qs[32 * h + l] >> (2 * j) & 3);
}

/* Q3_K values -4..3 in element order: a clear hmask bit means "minus 4". */
static void q3_values(const uint8_t *b, int8_t q[QKK])
{
    low_bits(b + Q3_QS, q);
    for (int k = 0; k < 8; k++)
        for (int l = 0; l < 32; l++)
            q[32 * k + l] = (int8_t)(q[32 * k + l] - (b[l] >> k & 1 ? 0 : 4));
}

/* Q3_K's sixteen 6-bit scales, unbiased (-32..31): low nibbles in bytes 0..7 (sub-blocks 8..15 in
 * the high halves), top two bits in bytes 8..11, two bits per sub-block j at 2 (j / 4). */
static void q3_scales(const uint8_t *s, int sc[16])
{
    for (int j = 0; j < 16; j++) {
        int lo = j < 8 ? s[j] & 15 : s[j - 8] >> 4;
        sc[j] = (lo | (s[8 + j % 4] >> (2 * (j / 4)) & 3) << 4) - 32;
    }
}

static void q3_pack_scales(uint8_t *s, const int sc[16])
{
    memset(s, 0, 12);
    for (int j = 0; j < 16; j++) {
        int u = sc[j] + 32;
        s[j % 8] |= (uint8_t)((u & 15) << (j < 8 ? 0 : 4));
        s[8 + j % 4] |= (uint8_t)((u >> 4) << (2 * (j / 4)));
    }
}

/* ---- dequantization: ggml's float operations in its order (d * sc first, then * q, - min) ---- */

void model__deq_q2_k(const uint8_t *b, float *y)
{
    float d = h2f(b + Q2_D), dmin = h2f(b + Q2_DMIN);
    int8_t q[QKK];
    low_bits(b + Q2_QS, q);
    for (int g = 0; g < 16; g++) {
        float dl = d * (float)(b[g] & 15), ml = dmin * (float)(b[g] >> 4);
        for (int e = 16 * g; e < 16 * g + 16; e++) y[e] = dl * (float)q[e] - ml;
    }
}

void model__deq_q3_k(const uint8_t *b, float *y)
{
    float d = h2f(b + Q3_D);
    int sc[16];
    int8_t q[QKK];
    q3_scales(b + Q3_SC, sc);
    q3_values(b, q);
    for (int g = 0; g < 16; g++) {
        float dl = d * (float)sc[g];
        for (int e = 16 * g; e < 16 * g + 16; e++) y[e] = dl * (float)q[e];
    }
}

/* ---- scalar reference dots against Q8_K (d f32, qs[256], bsums[16]; 292 bytes) ---- */

float model__dot_q2_k(int n, const void *w, const void *x)
{
    const uint8_t *a = w, *b = x;
    float s = 0;
    for (int i = 0; i < n / QKK; i++, a += 84, b += 292) {
        const int8_t *qx = (const int8_t *)(b + 4);
        int16_t bs[16];
        memcpy(bs, b + 260, sizeof bs);
        float dx;
        memcpy(&dx, b, 4);
        int8_t q[QKK];
        low_bits(a + Q2_QS, q);
        /* the min term needs only the activations' 16-element sums */
        int isum = 0, msum = 0;
        for (int g = 0; g < 16; g++) {
            int sub = 0;
            for (int e = 16 * g; e < 16 * g + 16; e++) sub += q[e] * qx[e];
            isum += (a[g] & 15) * sub;
            msum += (a[g] >> 4) * bs[g];
        }
        s += dx * h2f(a + Q2_D) * (float)isum - dx * h2f(a + Q2_DMIN) * (float)msum;
    }
    return s;
}

float model__dot_q3_k(int n, const void *w, const void *x)
{
    const uint8_t *a = w, *b = x;
    float s = 0;
    for (int i = 0; i < n / QKK; i++, a += 110, b += 292) {
        const int8_t *qx = (const int8_t *)(b + 4);
        float dx;
        memcpy(&dx, b, 4);
        int sc[16], isum = 0;
        int8_t q[QKK];
        q3_scales(a + Q3_SC, sc);
        q3_values(a, q);
        for (int g = 0; g < 16; g++) {
            int sub = 0;
            for (int e = 16 * g; e < 16 * g + 16; e++) sub += q[e] * qx[e];
            isum += sc[g] * sub;
        }
        s += h2f(a + Q3_D) * dx * (float)isum;
    }
    return s;
}

/* ---- weight quantizers (synth) ---- */

static int clampi(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* Fit one 16-element group as x ~ s * q - m, q in 0..3, s >= 0, m >= 0 (ggml's form, where the
 * offset never exceeds zero): for step counts around 3 over the range, round, then solve the
 * least-squares scale and offset for that rounding; keep the fit of least squared error. */
static void q2_fit_group(const float *x, float *s_out, float *m_out)
{
    float lo = 0, hi = x[0];
    for (int i = 0; i < 16; i++) lo = fminf(lo, x[i]), hi = fmaxf(hi, x[i]);
    *s_out = 0, *m_out = -lo;
    if (hi <= lo) return; /* constant (and not positive): the offset alone is exact */
    float best = INFINITY;
    for (int k = 0; k <= 15; k++) {
        float iscale = (2.5f + 0.1f * (float)k) / (hi - lo);
        float sl = 0, sll = 0, sx = 0, sxl = 0;
        int l[16];
        for (int i = 0; i < 16; i++) {
            l[i] = clampi((int)lrintf(iscale * (x[i] - lo)), 0, 3);
            sl += (float)l[i], sll += (float)(l[i] * l[i]), sx += x[i], sxl += x[i] * (float)l[i];
        }
        float D = 16 * sll - sl * sl;
        if (D <= 0) continue;
        float s = (16 * sxl - sx * sl) / D, off = (sll * sx - sl * sxl) / D;
        if (off > 0) off = 0, s = sxl / sll; /* the offset must stay <= 0 */
        if (s < 0) continue;
        float err = 0;
        for (int i = 0; i < 16; i++)
            err += (s * (float)l[i] + off - x[i]) * (s * (float)l[i] + off - x[i]);
        if (err < best) best = err, *s_out = s, *m_out = -off;
    }
}

void model__quant_q2_k(const float *x, uint8_t *b)
{
    float s[16], m[16], smax = 0, mmax = 0;
    for (int g = 0; g < 16; g++) {
        q2_fit_group(x + 16 * g, &s[g], &m[g]);
        smax = fmaxf(smax, s[g]), mmax = fmaxf(mmax, m[g]);
    }
    /* the 4-bit scales and mins are steps of the fp16 d and dmin as stored */
    f2h(b + Q2_D, smax / 15);
    f2h(b + Q2_DMIN, mmax / 15);
    float d = h2f(b + Q2_D), dmin = h2f(b + Q2_DMIN);
    for (int g = 0; g < 16; g++) {
        int sc = d > 0 ? clampi((int)lrintf(s[g] / d), 0, 15) : 0;
        int mn = dmin > 0 ? clampi((int)lrintf(m[g] / dmin), 0, 15) : 0;
        b[g] = (uint8_t)(sc | mn << 4);
    }
    memset(b + Q2_QS, 0, 64);
    for (int e = 0; e < QKK; e++) { /* round again against the scales as stored */
        float dl = d * (float)(b[e / 16] & 15), ml = dmin * (float)(b[e / 16] >> 4);
        int q = dl > 0 ? clampi((int)lrintf((x[e] + ml) / dl), 0, 3) : 0;
        b[Q2_QS + 32 * (e / 128) + e % 32] |= (uint8_t)(q << (2 * (e / 32 % 4)));
    }
}

/* The scale s of x ~ s * q, q in lo..hi (hi = -lo - 1), chosen as ggml's make_qx_quants does:
 * the signed extreme maps to about lo (the longer side), trying steps near it and keeping the
 * rounding whose least-squares scale explains the most of x (largest sum(xq)^2 / sum(q^2)). */
static float qx_fit(const float *x, int n, int lo, const float *w)
{
    float mx = 0;
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > fabsf(mx)) mx = x[i];
    if (fabsf(mx) < 1e-15f) return 0;
    float best = 0, scale = 0;
    for (int k = -9; k <= 9; k++) {
        float iscale = ((float)lo + 0.1f * (float)k) / mx, sxl = 0, sll = 0;
        for (int i = 0; i < n; i++) {
            int l = clampi((int)lrintf(iscale * x[i]), lo, -lo - 1);
            float wi = w ? w[i] : 1;
            sxl += wi * x[i] * (float)l, sll += wi * (float)(l * l);
        }
        if (sll > 0 && sxl * sxl > best * sll) best = sxl * sxl / sll, scale = sxl / sll;
    }
    return scale;
}

void model__quant_q3_k(const float *x, uint8_t *b)
{
    float s[16], sw[16];
    for (int g = 0; g < 16; g++) {
        s[g] = qx_fit(x + 16 * g, 16, -4, NULL);
        sw[g] = 0; /* weight each group's scale by its energy: big groups matter most */
        for (int i = 0; i < 16; i++) sw[g] += x[16 * g + i] * x[16 * g + i];
    }
    f2h(b + Q3_D, qx_fit(s, 16, -32, sw));
    float d = h2f(b + Q3_D);
    int sc[16];
    for (int g = 0; g < 16; g++) sc[g] = d != 0 ? clampi((int)lrintf(s[g] / d), -32, 31) : 0;
    q3_pack_scales(b + Q3_SC, sc);
    memset(b, 0, Q3_SC);
    for (int e = 0; e < QKK; e++) {
        float dl = d * (float)sc[e / 16];
        int q = dl != 0 ? clampi((int)lrintf(x[e] / dl), -4, 3) : 0;
        b[Q3_QS + 32 * (e / 128) + e % 32] |= (uint8_t)(((q + 4) & 3) << (2 * (e / 32 % 4)));
        b[e % 32] |= (uint8_t)(((q + 4) >> 2) << (e / 32));
    }
}
