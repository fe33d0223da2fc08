/* model/quant.c — tensor types: block layouts, fp16/bf16, dequantization (exactly ggml's), simple
 * weight quantizers for synthesized models, activation quantizers that round as llama.cpp's CPU
 * backend does, and the scalar reference dot products behind the kernel table. */
#include "model_internal.h"

#include <math.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define QK 32
#define QKK 256

static const type_traits traits[MODEL_TYPE_COUNT]; /* the records, at the end of this file */

static const int8_t kvalues_iq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                         1,    13,   25,  38,  53,  69,  89,  113};

const type_traits *model__type(int type)
{
    if (type < 0 || type >= MODEL_TYPE_COUNT || !traits[type].name) return NULL;
    return &traits[type];
}

const char *model_type_name(int type)
{
    const type_traits *t = model__type(type);
    return t ? t->name : NULL;
}

int model_type_from_name(const char *name)
{
    for (int i = 0; i < MODEL_TYPE_COUNT; i++) {
        if (!traits[i].name) continue;
        const char *a = traits[i].name, *b = name;
        while (*a && *b && (*a == *b || (*a >= 'A' && *a <= 'Z' && *a + 32 == *b))) a++, b++;
        if (!*a && !*b) return i;
    }
    return -1;
}

bool model_type_writable(int type)
{
    const type_traits *t = model__type(type);
    return t && t->quant;
}

size_t model__row_bytes(int type, int64_t n)
{
    const type_traits *t = model__type(type);
    return (size_t)(n / t->block) * (size_t)t->bytes;
}

/* ---- half precision ---- */

float model__fp16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 31, man = h & 1023, u;
    if (exp == 31) {
        u = sign | 0x7f800000u | man << 13;
    } else if (exp) {
        u = sign | (exp + 112) << 23 | man << 13;
    } else if (man) { /* subnormal: normalise */
        int e = -1;
        do {
            man <<= 1;
            e++;
        } while (!(man & 1024));
        u = sign | (uint32_t)(112 - e) << 23 | (man & 1023) << 13;
    } else {
        u = sign;
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Round to nearest even, as F16C and ggml's reference do. */
uint16_t model__f32_to_fp16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000;
    uint32_t a = u & 0x7fffffff;
    if (a >= 0x7f800000) return (uint16_t)(sign | 0x7c00 | (a > 0x7f800000 ? 0x200 : 0));
    if (a >= 0x477ff000) return (uint16_t)(sign | 0x7c00); /* rounds to >= 65520: inf */
    if (a < 0x38800000) {                                  /* subnormal or zero in half */
        float af;
        memcpy(&af, &a, 4);
        /* scale so that the half subnormal unit (2^-24) becomes 1, then round-to-even */
        uint32_t m = (uint32_t)nearbyintf(af * 16777216.0f);
        return (uint16_t)(sign | m);
    }
    uint32_t r = a + 0xfff + ((a >> 13) & 1); /* round mantissa to 10 bits, ties to even */
    return (uint16_t)(sign | ((r - 0x38000000) >> 13));
}

float model__bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t model__f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffff) > 0x7f800000) return (uint16_t)((u >> 16) | 64); /* quiet NaN */
    return (uint16_t)((u + (0x7fff + ((u >> 16) & 1))) >> 16);
}

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

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- K-quant scale unpacking (Q4_K, Q5_K) ---- */

static void kscale(const uint8_t *s, int k, int *sc, int *mn)
{
    if (k < 4) {
        *sc = s[k] & 63;
        *mn = s[k + 4] & 63;
    } else {
        *sc = (s[k + 4] & 0x0F) | ((s[k - 4] >> 6) << 4);
        *mn = (s[k + 4] >> 4) | ((s[k] >> 6) << 4);
    }
}

/* Integer values of one block, in element order, for the 32-element formats with an int offset. */
static void unpack_q32(int type, const uint8_t *b, int8_t q[QK])
{
    const uint8_t *qs;
    uint32_t qh = 0;
    switch (type) {
    case MODEL_TYPE_Q4_0:
    case MODEL_TYPE_IQ4_NL:
        qs = b + 2;
        break;
    case MODEL_TYPE_Q4_1:
        qs = b + 4;
        break;
    case MODEL_TYPE_Q5_0:
        qh = le32(b + 2), qs = b + 6;
        break;
    default:
        qh = le32(b + 4), qs = b + 8;
        break; /* Q5_1 */
    }
    for (int j = 0; j < 16; j++) {
        int lo = qs[j] & 15, hi = qs[j] >> 4;
        switch (type) {
        case MODEL_TYPE_Q4_0:
            lo -= 8, hi -= 8;
            break;
        case MODEL_TYPE_IQ4_NL:
            lo = kvalues_iq4nl[lo], hi = kvalues_iq4nl[hi];
            break;
        case MODEL_TYPE_Q5_0:
            lo = (lo | (int)((qh >> j) & 1) << 4) - 16;
            hi = (hi | (int)((qh >> (j + 16)) & 1) << 4) - 16;
            break;
        case MODEL_TYPE_Q5_1:
            lo |= (int)((qh >> j) & 1) << 4;
            hi |= (int)((qh >> (j + 16)) & 1) << 4;
            break;
        default:
            break;
        }
        q[j] = (int8_t)lo;
        q[j + 16] = (int8_t)hi;
    }
}

/* Q4_K / Q5_K block -> unsigned values [256], scales sc[8], mins mn[8] */
static void unpack_k45(int type, const uint8_t *b, uint8_t q[QKK], int sc[8], int mn[8])
{
    const uint8_t *s = b + 4, *qh = b + 16, *qs = type == MODEL_TYPE_Q5_K ? b + 48 : b + 16;
    for (int k = 0; k < 8; k++) kscale(s, k, &sc[k], &mn[k]);
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
            int lo = qs[32 * c + l] & 15, hi = qs[32 * c + l] >> 4;
            if (type == MODEL_TYPE_Q5_K) {
                lo += (qh[l] >> (2 * c) & 1) << 4;
                hi += (qh[l] >> (2 * c + 1) & 1) << 4;
            }
            q[64 * c + l] = (uint8_t)lo;
            q[64 * c + 32 + l] = (uint8_t)hi;
        }
}

/* Q6_K block -> signed values [256] (scale index of element i is i/16) */
static void unpack_q6k(const uint8_t *b, int8_t q[QKK])
{
    for (int n = 0; n < 2; n++) {
        const uint8_t *L = b + 64 * n, *H = b + 128 + 32 * n;
        int8_t *y = q + 128 * n;
        for (int l = 0; l < 32; l++) {
            y[l] = (int8_t)(((L[l] & 15) | ((H[l] >> 0 & 3) << 4)) - 32);
            y[l + 32] = (int8_t)(((L[l + 32] & 15) | ((H[l] >> 2 & 3) << 4)) - 32);
            y[l + 64] = (int8_t)(((L[l] >> 4) | ((H[l] >> 4 & 3) << 4)) - 32);
            y[l + 96] = (int8_t)(((L[l + 32] >> 4) | ((H[l] >> 6 & 3) << 4)) - 32);
        }
    }
}

/* ---- dequantization, one block per call ---- */

static void deq_f32(const uint8_t *b, float *y)
{
    memcpy(y, b, 4);
}
static void deq_f16(const uint8_t *b, float *y)
{
    y[0] = h2f(b);
}
static void deq_bf16(const uint8_t *b, float *y)
{
    y[0] = model__bf16_to_f32((uint16_t)(b[0] | b[1] << 8));
}
static void deq_q8_0(const uint8_t *b, float *y)
{
    for (int j = 0; j < QK; j++) y[j] = (float)(int8_t)b[2 + j] * h2f(b);
}
static void deq_q8_1(const uint8_t *b, float *y)
{
    for (int j = 0; j < QK; j++) y[j] = (float)(int8_t)b[4 + j] * h2f(b);
}
static void deq_q32(int type, const uint8_t *b, float *y)
{
    int8_t q[QK];
    unpack_q32(type, b, q);
    bool affine = type == MODEL_TYPE_Q4_1 || type == MODEL_TYPE_Q5_1;
    for (int j = 0; j < QK; j++)
        y[j] = affine ? (float)q[j] * h2f(b) + h2f(b + 2) : (float)q[j] * h2f(b);
}
static void deq_q4_0(const uint8_t *b, float *y)
{
    deq_q32(MODEL_TYPE_Q4_0, b, y);
}
static void deq_q5_0(const uint8_t *b, float *y)
{
    deq_q32(MODEL_TYPE_Q5_0, b, y);
}
static void deq_iq4_nl(const uint8_t *b, float *y)
{
    deq_q32(MODEL_TYPE_IQ4_NL, b, y);
}
static void deq_q4_1(const uint8_t *b, float *y)
{
    deq_q32(MODEL_TYPE_Q4_1, b, y);
}
static void deq_q5_1(const uint8_t *b, float *y)
{
    deq_q32(MODEL_TYPE_Q5_1, b, y);
}
static void deq_k45(int type, const uint8_t *b, float *y)
{
    float d = h2f(b), dmin = h2f(b + 2);
    uint8_t u[QKK];
    int sc[8], mn[8];
    unpack_k45(type, b, u, sc, mn);
    for (int j = 0; j < QKK; j++)
        y[j] = d * (float)sc[j / 32] * (float)u[j] - dmin * (float)mn[j / 32];
}
static void deq_q4_k(const uint8_t *b, float *y)
{
    deq_k45(MODEL_TYPE_Q4_K, b, y);
}
static void deq_q5_k(const uint8_t *b, float *y)
{
    deq_k45(MODEL_TYPE_Q5_K, b, y);
}
static void deq_q6_k(const uint8_t *b, float *y)
{
    int8_t q[QKK];
    float d = h2f(b + 208);
    unpack_q6k(b, q);
    for (int j = 0; j < QKK; j++) y[j] = d * (float)(int8_t)b[192 + j / 16] * (float)q[j];
}
static void deq_q8_k(const uint8_t *b, float *y)
{
    float d;
    memcpy(&d, b, 4);
    for (int j = 0; j < QKK; j++) y[j] = d * (float)(int8_t)b[4 + j];
}

void model__dequant(int type, const void *src, float *dst, int64_t n)
{
    const uint8_t *b = src;
    const type_traits *t = model__type(type);
    if (!t || !t->dequant) { /* loading refuses such types; never leave dst undefined */
        for (int64_t i = 0; i < n; i++) dst[i] = NAN;
        return;
    }
    for (int64_t i = 0; i < n / t->block; i++, b += t->bytes, dst += t->block) t->dequant(b, dst);
}

/* ---- quantizers ---- */

static float amax_of(const float *x, int n)
{
    float m = 0;
    for (int j = 0; j < n; j++) m = fmaxf(m, fabsf(x[j]));
    return m;
}

/* Activation Q8_0/Q8_1 as ggml's x86 path: q = rint(x * 127/amax), d = fp16(amax/127). */
static void quant_q8(int type, const float *x, uint8_t *b)
{
    float amax = amax_of(x, QK), d = amax / 127.0f, id = amax != 0 ? 127.0f / amax : 0;
    int8_t *qs = (int8_t *)(b + (type == MODEL_TYPE_Q8_1 ? 4 : 2));
    int sum = 0;
    for (int j = 0; j < QK; j++) {
        qs[j] = (int8_t)rintf(x[j] * id);
        sum += qs[j];
    }
    f2h(b, d);
    if (type == MODEL_TYPE_Q8_1) f2h(b + 2, d * (float)sum);
}

/* Q8_K as quantize_row_q8_K_ref: scale from the signed element of largest magnitude, d in f32 */
static void quant_q8k(const float *x, uint8_t *b)
{
    float max = 0, amax = 0;
    for (int j = 0; j < QKK; j++)
        if (fabsf(x[j]) > amax) amax = fabsf(x[j]), max = x[j];
    int8_t *qs = (int8_t *)(b + 4);
    int16_t bs[16];
    float d = 0;
    if (amax == 0) {
        memset(qs, 0, QKK);
    } else {
        float iscale = -127.0f / max;
        for (int j = 0; j < QKK; j++) {
            int v = (int)rintf(iscale * x[j]);
            qs[j] = (int8_t)(v < 127 ? v : 127);
        }
        d = 1 / iscale;
    }
    for (int g = 0; g < 16; g++) {
        int s = 0;
        for (int j = 0; j < 16; j++) s += qs[16 * g + j];
        bs[g] = (int16_t)s;
    }
    memcpy(b, &d, 4);
    memcpy(b + 260, bs, sizeof bs);
}

/* Weight quantizers: plain min/max rounding. They only have to produce valid blocks for
 * synthesized models; accuracy against llama-quantize is not a goal. */
static void quant_q32_weights(int type, const float *x, uint8_t *b)
{
    uint8_t q[QK];
    float mn = x[0], mx = x[0];
    for (int j = 1; j < QK; j++) mn = fminf(mn, x[j]), mx = fmaxf(mx, x[j]);
    bool affine = type == MODEL_TYPE_Q4_1 || type == MODEL_TYPE_Q5_1;
    int levels = (type == MODEL_TYPE_Q5_0 || type == MODEL_TYPE_Q5_1) ? 32 : 16;
    float d, m = 0;
    if (affine) {
        d = (mx - mn) / (float)(levels - 1);
        m = mn;
    } else if (type == MODEL_TYPE_IQ4_NL) {
        d = amax_of(x, QK) / 127.0f;
    } else {
        d = amax_of(x, QK) / (float)(levels / 2 - 1);
    }
    float id = d != 0 ? 1 / d : 0;
    for (int j = 0; j < QK; j++) {
        int v;
        if (type == MODEL_TYPE_IQ4_NL) {
            int best = 0;
            for (int k = 1; k < 16; k++)
                if (fabsf(x[j] * id - kvalues_iq4nl[k]) < fabsf(x[j] * id - kvalues_iq4nl[best]))
                    best = k;
            v = best;
        } else if (affine) {
            v = (int)lrintf((x[j] - m) * id);
        } else {
            v = (int)lrintf(x[j] * id) + levels / 2;
        }
        q[j] = (uint8_t)(v < 0 ? 0 : v > levels - 1 ? levels - 1 : v);
    }
    f2h(b, d);
    uint8_t *qs = b + 2;
    if (affine) f2h(b + 2, m), qs = b + 4;
    if (levels == 32) {
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            qh |= (uint32_t)(q[j] >> 4) << j;
            qh |= (uint32_t)(q[j + 16] >> 4) << (j + 16);
        }
        for (int k = 0; k < 4; k++) qs[k] = (uint8_t)(qh >> (8 * k));
        qs += 4;
    }
    for (int j = 0; j < 16; j++) qs[j] = (uint8_t)((q[j] & 15) | (q[j + 16] & 15) << 4);
}

static void pack_kscales(uint8_t *s, const int sc[8], const int mn[8])
{
    for (int k = 0; k < 4; k++) {
        s[k] = (uint8_t)((sc[k] & 63) | ((sc[k + 4] >> 4) << 6));
        s[k + 4] = (uint8_t)((mn[k] & 63) | ((mn[k + 4] >> 4) << 6));
        s[k + 8] = (uint8_t)((sc[k + 4] & 15) | ((mn[k + 4] & 15) << 4));
    }
}

static void quant_k45_weights(int type, const float *x, uint8_t *b)
{
    int maxq = type == MODEL_TYPE_Q5_K ? 31 : 15;
    float scale[8], mins[8], max_scale = 0, max_min = 0;
    for (int k = 0; k < 8; k++) {
        float lo = 0, hi = 0; /* the min is <= 0 as in ggml (dmin*mn is subtracted) */
        for (int j = 0; j < 32; j++) lo = fminf(lo, x[32 * k + j]), hi = fmaxf(hi, x[32 * k + j]);
        scale[k] = (hi - lo) / (float)maxq;
        mins[k] = -lo;
        max_scale = fmaxf(max_scale, scale[k]);
        max_min = fmaxf(max_min, mins[k]);
    }
    float d = max_scale / 63.0f, dmin = max_min / 63.0f;
    f2h(b, d);
    f2h(b + 2, dmin);
    d = h2f(b), dmin = h2f(b + 2);
    int sc[8], mn[8];
    for (int k = 0; k < 8; k++) {
        sc[k] = d > 0 ? (int)lrintf(scale[k] / d) : 0;
        mn[k] = dmin > 0 ? (int)lrintf(mins[k] / dmin) : 0;
        if (sc[k] > 63) sc[k] = 63;
        if (mn[k] > 63) mn[k] = 63;
    }
    pack_kscales(b + 4, sc, mn);
    uint8_t q[QKK];
    for (int j = 0; j < QKK; j++) {
        int k = j / 32;
        float step = d * (float)sc[k];
        int v = step > 0 ? (int)lrintf((x[j] + dmin * (float)mn[k]) / step) : 0;
        q[j] = (uint8_t)(v < 0 ? 0 : v > maxq ? maxq : v);
    }
    uint8_t *qh = b + 16, *qs = type == MODEL_TYPE_Q5_K ? b + 48 : b + 16;
    if (type == MODEL_TYPE_Q5_K) memset(qh, 0, 32);
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
            uint8_t lo = q[64 * c + l], hi = q[64 * c + 32 + l];
            qs[32 * c + l] = (uint8_t)((lo & 15) | (hi & 15) << 4);
            if (type == MODEL_TYPE_Q5_K)
                qh[l] |= (uint8_t)(((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1)));
        }
}

static void quant_q6k_weights(const float *x, uint8_t *b)
{
    float gmax = 0, sub[16];
    for (int g = 0; g < 16; g++) {
        sub[g] = amax_of(x + 16 * g, 16) / 31.0f;
        gmax = fmaxf(gmax, sub[g]);
    }
    float d = gmax / 127.0f;
    f2h(b + 208, d);
    d = h2f(b + 208);
    int8_t *scales = (int8_t *)(b + 192);
    int8_t q[QKK];
    for (int g = 0; g < 16; g++) {
        int s = d > 0 ? (int)lrintf(sub[g] / d) : 0;
        scales[g] = (int8_t)(s > 127 ? 127 : s);
        float step = d * (float)scales[g];
        for (int j = 0; j < 16; j++) {
            int v = step > 0 ? (int)lrintf(x[16 * g + j] / step) : 0;
            q[16 * g + j] = (int8_t)(v < -32 ? -32 : v > 31 ? 31 : v);
        }
    }
    memset(b, 0, 192);
    for (int n = 0; n < 2; n++) {
        uint8_t *L = b + 64 * n, *H = b + 128 + 32 * n;
        const int8_t *y = q + 128 * n;
        for (int l = 0; l < 32; l++) {
            int q1 = y[l] + 32, q2 = y[l + 32] + 32, q3 = y[l + 64] + 32, q4 = y[l + 96] + 32;
            L[l] = (uint8_t)((q1 & 15) | (q3 & 15) << 4);
            L[l + 32] = (uint8_t)((q2 & 15) | (q4 & 15) << 4);
            H[l] = (uint8_t)((q1 >> 4) | (q2 >> 4) << 2 | (q3 >> 4) << 4 | (q4 >> 4) << 6);
        }
    }
}

static void q_f32(const float *x, uint8_t *b)
{
    memcpy(b, x, 4);
}
static void q_f16(const float *x, uint8_t *b)
{
    f2h(b, x[0]);
}
static void q_bf16(const float *x, uint8_t *b)
{
    uint16_t h = model__f32_to_bf16(x[0]);
    b[0] = (uint8_t)h, b[1] = (uint8_t)(h >> 8);
}
static void q_q8_0(const float *x, uint8_t *b)
{
    quant_q8(MODEL_TYPE_Q8_0, x, b);
}
static void q_q8_1(const float *x, uint8_t *b)
{
    quant_q8(MODEL_TYPE_Q8_1, x, b);
}
static void q_q4_0(const float *x, uint8_t *b)
{
    quant_q32_weights(MODEL_TYPE_Q4_0, x, b);
}
static void q_q4_1(const float *x, uint8_t *b)
{
    quant_q32_weights(MODEL_TYPE_Q4_1, x, b);
}
static void q_q5_0(const float *x, uint8_t *b)
{
    quant_q32_weights(MODEL_TYPE_Q5_0, x, b);
}
static void q_q5_1(const float *x, uint8_t *b)
{
    quant_q32_weights(MODEL_TYPE_Q5_1, x, b);
}
static void q_iq4_nl(const float *x, uint8_t *b)
{
    quant_q32_weights(MODEL_TYPE_IQ4_NL, x, b);
}
static void q_q4_k(const float *x, uint8_t *b)
{
    quant_k45_weights(MODEL_TYPE_Q4_K, x, b);
}
static void q_q5_k(const float *x, uint8_t *b)
{
    quant_k45_weights(MODEL_TYPE_Q5_K, x, b);
}

int model__quant(int type, const float *src, void *dst, int64_t n)
{
    const type_traits *t = model__type(type);
    if (!t || !t->quant) return -1;
    uint8_t *b = dst;
    for (int64_t i = 0; i < n / t->block; i++, b += t->bytes, src += t->block) t->quant(src, b);
    return 0;
}

/* ---- scalar reference dot products (weight row · activation row in its vec_dot type) ---- */

static float dot_f32(int n, const void *w, const void *x)
{
    const float *a = w, *b = x;
    float s = 0;
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static float dot_f16(int n, const void *w, const void *x)
{
    const uint8_t *a = w, *b = x;
    float s = 0;
    for (int i = 0; i < n; i++) s += h2f(a + 2 * i) * h2f(b + 2 * i);
    return s;
}

static float dot_bf16(int n, const void *w, const void *x)
{
    const uint16_t *a = w, *b = x;
    float s = 0;
    for (int i = 0; i < n; i++) s += model__bf16_to_f32(a[i]) * model__bf16_to_f32(b[i]);
    return s;
}

/* Q4_0, Q5_0, IQ4_NL, Q8_0 against Q8_0: integer sums per block, scaled by both fp16 d's */
static float dot_q32_q80(int type, int n, const void *w, const void *x)
{
    const type_traits *t = model__type(type);
    const uint8_t *a = w, *b = x;
    float s = 0;
    for (int i = 0; i < n / QK; i++, a += t->bytes, b += 34) {
        int8_t q[QK];
        if (type == MODEL_TYPE_Q8_0)
            memcpy(q, a + 2, QK);
        else
            unpack_q32(type, a, q);
        int sum = 0;
        for (int j = 0; j < QK; j++) sum += q[j] * (int8_t)b[2 + j];
        s += (float)sum * (h2f(a) * h2f(b));
    }
    return s;
}

static float dot_q4_0(int n, const void *w, const void *x)
{
    return dot_q32_q80(MODEL_TYPE_Q4_0, n, w, x);
}
static float dot_q5_0(int n, const void *w, const void *x)
{
    return dot_q32_q80(MODEL_TYPE_Q5_0, n, w, x);
}
static float dot_q8_0(int n, const void *w, const void *x)
{
    return dot_q32_q80(MODEL_TYPE_Q8_0, n, w, x);
}
static float dot_iq4_nl(int n, const void *w, const void *x)
{
    return dot_q32_q80(MODEL_TYPE_IQ4_NL, n, w, x);
}

/* Q4_1, Q5_1 against Q8_1: d_w*d_x*sum(q_w*q_x) + m_w*s_x */
static float dot_q32_q81(int type, int n, const void *w, const void *x)
{
    const type_traits *t = model__type(type);
    const uint8_t *a = w, *b = x;
    float s = 0;
    for (int i = 0; i < n / QK; i++, a += t->bytes, b += 36) {
        int8_t q[QK];
        unpack_q32(type, a, q);
        int sum = 0;
        for (int j = 0; j < QK; j++) sum += (uint8_t)q[j] * (int8_t)b[4 + j];
        s += (h2f(a) * h2f(b)) * (float)sum + h2f(a + 2) * h2f(b + 2);
    }
    return s;
}

static float dot_q4_1(int n, const void *w, const void *x)
{
    return dot_q32_q81(MODEL_TYPE_Q4_1, n, w, x);
}
static float dot_q5_1(int n, const void *w, const void *x)
{
    return dot_q32_q81(MODEL_TYPE_Q5_1, n, w, x);
}

static float dot_k45(int type, int n, const void *w, const void *x)
{
    const uint8_t *a = w, *b = x;
    int bytes = model__type(type)->bytes;
    float s = 0;
    for (int i = 0; i < n / QKK; i++, a += bytes, b += 292) {
        uint8_t q[QKK];
        int sc[8], mn[8];
        unpack_k45(type, a, q, sc, mn);
        const int8_t *qx = (const int8_t *)(b + 4);
        int16_t bs[16];
        memcpy(bs, b + 260, sizeof bs);
        float dx;
        memcpy(&dx, b, 4);
        int isum = 0, msum = 0;
        for (int k = 0; k < 8; k++) {
            int sub = 0;
            for (int j = 0; j < 32; j++) sub += q[32 * k + j] * qx[32 * k + j];
            isum += sc[k] * sub;
            msum += mn[k] * (bs[2 * k] + bs[2 * k + 1]);
        }
        s += h2f(a) * dx * (float)isum - h2f(a + 2) * dx * (float)msum;
    }
    return s;
}

static float dot_q4_k(int n, const void *w, const void *x)
{
    return dot_k45(MODEL_TYPE_Q4_K, n, w, x);
}
static float dot_q5_k(int n, const void *w, const void *x)
{
    return dot_k45(MODEL_TYPE_Q5_K, n, w, x);
}

static float dot_q6_k(int n, const void *w, const void *x)
{
    const uint8_t *a = w, *b = x;
    float s = 0;
    for (int i = 0; i < n / QKK; i++, a += 210, b += 292) {
        int8_t q[QKK];
        unpack_q6k(a, q);
        const int8_t *qx = (const int8_t *)(b + 4);
        float dx;
        memcpy(&dx, b, 4);
        int isum = 0;
        for (int g = 0; g < 16; g++) {
            int sub = 0;
            for (int j = 0; j < 16; j++) sub += q[16 * g + j] * qx[16 * g + j];
            isum += (int8_t)a[192 + g] * sub;
        }
        s += h2f(a + 208) * dx * (float)isum;
    }
    return s;
}

static float dot_f32_f32(int n, const float *a, const float *b)
{
    float s = 0;
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static void axpy_f32(int n, float alpha, const float *x, float *y)
{
    for (int i = 0; i < n; i++) y[i] += alpha * x[i];
}

/* ---- the records: one per type; a new type is one entry here and its functions ---- */

#define T(ID, NAME, BLOCK, BYTES, DOT_TYPE, DEQ, Q, DOT)                                           \
    [ID] = {NAME, BLOCK, BYTES, DOT_TYPE, DEQ, Q, DOT}
static const type_traits traits[MODEL_TYPE_COUNT] = {
    T(MODEL_TYPE_F32, "F32", 1, 4, MODEL_TYPE_F32, deq_f32, q_f32, dot_f32),
    T(MODEL_TYPE_F16, "F16", 1, 2, MODEL_TYPE_F16, deq_f16, q_f16, dot_f16),
    T(MODEL_TYPE_BF16, "BF16", 1, 2, MODEL_TYPE_BF16, deq_bf16, q_bf16, dot_bf16),
    T(MODEL_TYPE_Q4_0, "Q4_0", QK, 18, MODEL_TYPE_Q8_0, deq_q4_0, q_q4_0, dot_q4_0),
    T(MODEL_TYPE_Q4_1, "Q4_1", QK, 20, MODEL_TYPE_Q8_1, deq_q4_1, q_q4_1, dot_q4_1),
    T(MODEL_TYPE_Q5_0, "Q5_0", QK, 22, MODEL_TYPE_Q8_0, deq_q5_0, q_q5_0, dot_q5_0),
    T(MODEL_TYPE_Q5_1, "Q5_1", QK, 24, MODEL_TYPE_Q8_1, deq_q5_1, q_q5_1, dot_q5_1),
    T(MODEL_TYPE_Q8_0, "Q8_0", QK, 34, MODEL_TYPE_Q8_0, deq_q8_0, q_q8_0, dot_q8_0),
    T(MODEL_TYPE_Q8_1, "Q8_1", QK, 36, MODEL_TYPE_Q8_1, deq_q8_1, q_q8_1, NULL),
    T(MODEL_TYPE_Q2_K, "Q2_K", QKK, 84, MODEL_TYPE_Q8_K, model__deq_q2_k, model__quant_q2_k,
      model__dot_q2_k),
    T(MODEL_TYPE_Q3_K, "Q3_K", QKK, 110, MODEL_TYPE_Q8_K, model__deq_q3_k, model__quant_q3_k,
      model__dot_q3_k),
    T(MODEL_TYPE_Q4_K, "Q4_K", QKK, 144, MODEL_TYPE_Q8_K, deq_q4_k, q_q4_k, dot_q4_k),
    T(MODEL_TYPE_Q5_K, "Q5_K", QKK, 176, MODEL_TYPE_Q8_K, deq_q5_k, q_q5_k, dot_q5_k),
    T(MODEL_TYPE_Q6_K, "Q6_K", QKK, 210, MODEL_TYPE_Q8_K, deq_q6_k, quant_q6k_weights, dot_q6_k),
    T(MODEL_TYPE_Q8_K, "Q8_K", QKK, 292, MODEL_TYPE_Q8_K, deq_q8_k, quant_q8k, NULL),
    T(MODEL_TYPE_IQ2_XXS, "IQ2_XXS", QKK, 66, MODEL_TYPE_Q8_K, model__deq_iq2_xxs, NULL,
      model__dot_iq2_xxs),
    T(MODEL_TYPE_IQ2_XS, "IQ2_XS", QKK, 74, MODEL_TYPE_Q8_K, model__deq_iq2_xs, NULL,
      model__dot_iq2_xs),
    T(MODEL_TYPE_IQ3_XXS, "IQ3_XXS", QKK, 98, MODEL_TYPE_Q8_K, model__deq_iq3_xxs, NULL,
      model__dot_iq3_xxs),
    T(MODEL_TYPE_IQ1_S, "IQ1_S", QKK, 50, MODEL_TYPE_Q8_K, model__deq_iq1_s, NULL,
      model__dot_iq1_s),
    T(MODEL_TYPE_IQ4_NL, "IQ4_NL", QK, 18, MODEL_TYPE_Q8_0, deq_iq4_nl, q_iq4_nl, dot_iq4_nl),
    T(MODEL_TYPE_IQ3_S, "IQ3_S", QKK, 110, MODEL_TYPE_Q8_K, model__deq_iq3_s, NULL,
      model__dot_iq3_s),
    T(MODEL_TYPE_IQ2_S, "IQ2_S", QKK, 82, MODEL_TYPE_Q8_K, model__deq_iq2_s, NULL,
      model__dot_iq2_s),
    T(MODEL_TYPE_IQ4_XS, "IQ4_XS", QKK, 136, MODEL_TYPE_Q8_K, model__deq_iq4_xs,
      model__quant_iq4_xs, model__dot_iq4_xs),
    T(MODEL_TYPE_IQ1_M, "IQ1_M", QKK, 56, MODEL_TYPE_Q8_K, model__deq_iq1_m, NULL,
      model__dot_iq1_m),
};
#undef T

static model_kernels scalar_kernels = {
    .dot_f32 = dot_f32_f32,
    .axpy_f32 = axpy_f32,
    .name = "scalar",
};

static model_kernels avx2_kernels, avx512_kernels;
static pthread_once_t kernels_once = PTHREAD_ONCE_INIT;
static bool have_avx2, have_avx512;

#if defined(__x86_64__)
/* From CPUID, as not every compiler's __builtin_cpu_supports knows "f16c" and "avx512vnni" (the
 * operating system's support for the wide registers is checked through "avx2" and "avx512f"):
 * leaf 1 ECX bit 29, leaf 7 ECX bit 11. */
static bool have_f16c(void)
{
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c >> 29 & 1);
}

static bool have_avx512_vnni(void)
{
    unsigned a, b, c, d;
    return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (c >> 11 & 1);
}
#endif

static void init_kernels(void)
{
    for (int t = 0; t < MODEL_TYPE_COUNT; t++) scalar_kernels.vec_dot[t] = traits[t].dot;
#if defined(__x86_64__)
    __builtin_cpu_init();
    have_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && have_f16c();
    have_avx512 = have_avx2 && __builtin_cpu_supports("avx512f") &&
                  __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                  have_avx512_vnni();
#endif
    if (have_avx2) {
        avx2_kernels = scalar_kernels; /* types without a SIMD kernel keep the reference */
        model__kernels_avx2(&avx2_kernels);
        model__kernels_avx2_k23(&avx2_kernels);
        model__kernels_avx2_iq(&avx2_kernels);
    }
    if (have_avx512) {
        avx512_kernels = avx2_kernels; /* AVX-512 replaces only what it does better */
        model__kernels_avx512(&avx512_kernels);
        model__kernels_avx512_k23(&avx512_kernels);
        model__kernels_avx512_iq(&avx512_kernels);
    }
}

/* The one dispatch point, decided once from the CPU's features (the cap, from the load options,
 * rules out a kernel or compares two). */
const model_kernels *model__kernels(int cap)
{
    pthread_once(&kernels_once, init_kernels);
    if (cap == MODEL_KERNELS_SCALAR) return &scalar_kernels;
    if (have_avx512 && cap != MODEL_KERNELS_AVX2) return &avx512_kernels;
    if (have_avx2) return &avx2_kernels;
    return &scalar_kernels;
}

int model__kernel_tables(const model_kernels **out, int max)
{
    pthread_once(&kernels_once, init_kernels);
    int n = 0;
    if (n < max) out[n++] = &scalar_kernels;
    if (have_avx2 && n < max) out[n++] = &avx2_kernels;
    if (have_avx512 && n < max) out[n++] = &avx512_kernels;
    return n;
}
