/* tests/test_kernels.c — every dot-product kernel in the dispatch table against a float64 dot of
 * the dequantized operands, on random data; the activation quantizers' defining properties; the
 * weight quantizers' round-trip error; and fp16/bf16 edge cases. */
#define _GNU_SOURCE
#include "model/model_internal.h"
#include "tests/check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 88172645463325252ULL;

static float frand(void) /* roughly normal: sum of uniforms */
{
    float s = 0;
    for (int i = 0; i < 4; i++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        s += (float)(rng >> 40) / (float)(1 << 24) - 0.5f;
    }
    return s;
}

static const int weight_types[] = {
    MODEL_TYPE_F32,     MODEL_TYPE_F16,   MODEL_TYPE_BF16,    MODEL_TYPE_Q8_0,   MODEL_TYPE_Q4_0,
    MODEL_TYPE_Q4_1,    MODEL_TYPE_Q5_0,  MODEL_TYPE_Q5_1,    MODEL_TYPE_Q2_K,   MODEL_TYPE_Q3_K,
    MODEL_TYPE_Q4_K,    MODEL_TYPE_Q5_K,  MODEL_TYPE_Q6_K,    MODEL_TYPE_IQ4_NL, MODEL_TYPE_IQ4_XS,
    MODEL_TYPE_IQ3_XXS, MODEL_TYPE_IQ3_S, MODEL_TYPE_IQ2_XXS, MODEL_TYPE_IQ2_XS, MODEL_TYPE_IQ2_S,
    MODEL_TYPE_IQ1_S,   MODEL_TYPE_IQ1_M};

static uint8_t byte_rand(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint8_t)(rng >> 32);
}

/* A weight row in `type`: quantized from w when fimd has a quantizer; else (the IQ types llama
 * quantizes with an importance matrix) random blocks, every index and sign valid by construction,
 * with the fp16 scale set to a sane value of w's magnitude. */
static void make_weights(int type, const float *w, void *wq, int n)
{
    const type_traits *tt = model__type(type);
    if (!model__quant(type, w, wq, n)) return;
    uint8_t *b = wq;
    float amax = 0;
    for (int i = 0; i < n; i++) amax = fmaxf(amax, fabsf(w[i]));
    uint16_t d = model__f32_to_fp16(amax / 8 + 1e-3f);
    for (int blk = 0; blk < n / tt->block; blk++, b += tt->bytes) {
        for (int j = 0; j < tt->bytes; j++) b[j] = byte_rand();
        if (type == MODEL_TYPE_IQ1_M) { /* its scale is the top nibbles of its four u16 scales */
            for (int k = 0; k < 4; k++)
                b[48 + 2 * k + 1] =
                    (uint8_t)((b[48 + 2 * k + 1] & 0x0F) | ((d >> (4 * k)) & 15) << 4);
        } else {
            b[0] = (uint8_t)d, b[1] = (uint8_t)(d >> 8);
        }
    }
}

static void dot_vs_reference(const model_kernels *k, int type, int n)
{
    const type_traits *tt = model__type(type);
    float *w = malloc(sizeof(float) * n), *x = malloc(sizeof(float) * n);
    float *wd = malloc(sizeof(float) * n), *xd = malloc(sizeof(float) * n);
    void *wq = malloc(sizeof(float) * n + 64), *xq = malloc(sizeof(float) * n + 64);
    int worst_trial = -1;
    double worst = 0;
    for (int trial = 0; trial < 20; trial++) {
        float scale = trial % 5 == 4 ? 1e-3f : trial % 5 == 3 ? 30.0f : 1.0f;
        for (int i = 0; i < n; i++)
            w[i] = frand() * scale, x[i] = frand() * (trial % 2 ? 4.0f : 0.25f);
        if (trial == 7) memset(x, 0, sizeof(float) * n); /* an all-zero activation block */
        make_weights(type, w, wq, n);
        model__dequant(type, wq, wd, n);
        const void *xa = x;
        if (tt->vec_dot_type != MODEL_TYPE_F32) {
            model__quant(tt->vec_dot_type, x, xq, n);
            model__dequant(tt->vec_dot_type, xq, xd, n);
            xa = xq;
        } else {
            memcpy(xd, x, sizeof(float) * n);
        }
        double ref = 0, mag = 0;
        for (int i = 0; i < n; i++)
            ref += (double)wd[i] * xd[i], mag += fabs((double)wd[i] * xd[i]);
        /* Q4_1/Q5_1 use s = fp16(d * sum q) from the activation block: a rounding the dequantized
         * product does not have, bounded by 2^-11 of |m| * |sum x| per block */
        double tol = 1e-5 * mag + 1e-6;
        if (tt->vec_dot_type == MODEL_TYPE_Q8_1) tol += 2e-3 * mag + 1e-3;
        double got = k->vec_dot[type](n, wq, xa), err = fabs(got - ref) / (tol > 0 ? tol : 1);
        if (err > worst) worst = err, worst_trial = trial;
    }
    CHECK(worst <= 1.0, "%s kernel %s n=%d: error %.2f x tolerance (trial %d)", k->name, tt->name,
          n, worst, worst_trial);
    free(w), free(x), free(wd), free(xd), free(wq), free(xq);
}

static void weight_round_trip(int type)
{
    const int n = 1024;
    float x[1024], y[1024];
    char q[4096 + 64];
    for (int i = 0; i < n; i++) x[i] = frand();
    model__quant(type, x, q, n);
    model__dequant(type, q, y, n);
    double e = 0, s = 0;
    for (int i = 0; i < n; i++)
        e += (x[i] - y[i]) * (double)(x[i] - y[i]), s += (double)x[i] * x[i];
    double rel = sqrt(e / s);
    double limit = type == MODEL_TYPE_F32                              ? 0
                   : type == MODEL_TYPE_F16 || type == MODEL_TYPE_BF16 ? 0.005
                   : type == MODEL_TYPE_Q2_K                           ? 0.45
                                                                       : 0.25;
    CHECK(rel <= limit, "%s quantize/dequantize relative RMS error %.4f > %.4f",
          model_type_name(type), rel, limit);
}

static void activation_quantizers(void)
{
    float x[256], y[256];
    uint8_t q[292];
    for (int i = 0; i < 256; i++) x[i] = frand();
    x[77] = -3.0f; /* the largest magnitude, negative */
    model__quant(MODEL_TYPE_Q8_K, x, q, 256);
    float d;
    memcpy(&d, q, 4);
    CHECK(fabsf(d - 3.0f / 127.0f) < 1e-9f && (int8_t)q[4 + 77] == -127,
          "Q8_K scale from the signed extreme: d=%g q=%d", d, (int8_t)q[4 + 77]);
    int16_t bs[16];
    memcpy(bs, q + 260, sizeof bs);
    bool sums = true;
    for (int g = 0; g < 16; g++) {
        int s = 0;
        for (int j = 0; j < 16; j++) s += (int8_t)q[4 + 16 * g + j];
        sums &= s == bs[g];
    }
    CHECK(sums, "Q8_K bsums are the 16-element group sums");
    model__dequant(MODEL_TYPE_Q8_K, q, y, 256);
    float me = 0;
    for (int i = 0; i < 256; i++) me = fmaxf(me, fabsf(x[i] - y[i]));
    CHECK(me <= d * 0.5001f, "Q8_K error within half a step (%g)", me);
    uint8_t b[36];
    model__quant(MODEL_TYPE_Q8_0, x, b, 32);
    model__dequant(MODEL_TYPE_Q8_0, b, y, 32);
    float amax = 0;
    for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(x[i]));
    me = 0;
    for (int i = 0; i < 32; i++) me = fmaxf(me, fabsf(x[i] - y[i]));
    CHECK(me <= amax / 127 * 0.51f + 1e-3f * amax, "Q8_0 error within half a step");
    /* ties round to even on the x86 path: 0.5 * 127/amax steps */
    float t[32] = {0};
    t[0] = 127.0f, t[1] = 0.5f, t[2] = 1.5f, t[3] = -2.5f;
    model__quant(MODEL_TYPE_Q8_0, t, b, 32);
    CHECK((int8_t)b[3] == 0 && (int8_t)b[4] == 2 && (int8_t)b[5] == -2,
          "Q8_0 rounds half to even (%d %d %d)", (int8_t)b[3], (int8_t)b[4], (int8_t)b[5]);
    memset(t, 0, sizeof t);
    model__quant(MODEL_TYPE_Q8_1, t, b, 32);
    CHECK(b[0] == 0 && b[1] == 0 && b[2] == 0 && b[3] == 0, "Q8_1 of zeros has d = s = 0");
}

static void halves(void)
{
    CHECK(model__f32_to_fp16(1.0f) == 0x3c00 && model__f32_to_fp16(-2.0f) == 0xc000,
          "fp16 of 1 and -2");
    CHECK(model__f32_to_fp16(65504.0f) == 0x7bff && model__f32_to_fp16(65520.0f) == 0x7c00,
          "fp16 max and overflow");
    CHECK(model__f32_to_fp16(INFINITY) == 0x7c00 && (model__f32_to_fp16(NAN) & 0x7c00) == 0x7c00 &&
              (model__f32_to_fp16(NAN) & 0x3ff),
          "fp16 inf and nan");
    CHECK(model__f32_to_fp16(5.960464477539063e-08f) == 1 &&
              model__fp16_to_f32(1) == 5.960464477539063e-08f,
          "smallest fp16 subnormal both ways");
    CHECK(model__f32_to_fp16(2.98e-8f) == 0, "below half the smallest subnormal rounds to zero");
    CHECK(model__fp16_to_f32(0x3555) == 0.333251953125f, "fp16 1/3");
    CHECK(model__f32_to_bf16(1.00390625f) == 0x3f80 && model__f32_to_bf16(1.01171875f) == 0x3f82,
          "bf16 rounds half to even");
    CHECK(model__bf16_to_f32(0x4049) == 3.140625f, "bf16 to f32");
}

/* The 4-row and 1..8-row kernels give bitwise the single-row results (batch invariance), for n
 * elements. */
static void multi_row_exact(const model_kernels *k, int n)
{
    for (size_t i = 0; i < sizeof weight_types / sizeof *weight_types; i++) {
        int t = weight_types[i];
        const type_traits *tt = model__type(t);
        if (n % tt->block) continue;
        float w[2816], x[8][2816];
        static char wq[16384], xq[8][16384];
        char *wq2 = wq + 8192; /* the second row of a pair, inside the same buffer */
        for (int j = 0; j < n; j++) w[j] = frand();
        make_weights(t, w, wq, n);
        for (int r = 0; r < 8; r++) {
            for (int j = 0; j < n; j++) x[r][j] = frand() * (float)(r + 1);
            model__quant(tt->vec_dot_type, x[r], xq[r], n);
        }
        bool same = true;
        if (k->vec_dot4[t]) {
            float many[4];
            k->vec_dot4[t](n, wq, xq[0], sizeof xq[0], many);
            for (int r = 0; r < 4; r++) {
                float one = k->vec_dot[t](n, wq, xq[r]);
                same &= !memcmp(&one, &many[r], sizeof one);
            }
            CHECK(same, "%s 4-row %s kernel is bitwise the single-row one (n %d)", k->name,
                  tt->name, n);
        }
        if (k->vec_dotn2[t]) { /* a second weight row: the first row's weights scaled */
            float w2[2816];
            for (int j = 0; j < n; j++) w2[j] = w[j] * 0.5f + 0.01f;
            make_weights(t, w2, wq2, n);
        }
        for (int nt = 1; k->vec_dotn2[t] && nt <= 8; nt++) {
            float many[16];
            k->vec_dotn2[t](n, wq, (size_t)(wq2 - wq), xq[0], sizeof xq[0], many, nt);
            same = true;
            for (int r = 0; r < nt; r++) {
                float one = k->vec_dot[t](n, wq, xq[r]), two = k->vec_dot[t](n, wq2, xq[r]);
                same &=
                    !memcmp(&one, &many[r], sizeof one) && !memcmp(&two, &many[8 + r], sizeof two);
            }
            CHECK(same, "%s 2x%d-row %s kernel is bitwise the single-row one (n %d)", k->name, nt,
                  tt->name, n);
        }
        for (int nt = 1; k->vec_dotn[t] && nt <= 8; nt++) {
            float many[8];
            k->vec_dotn[t](n, wq, xq[0], sizeof xq[0], many, nt);
            same = true;
            for (int r = 0; r < nt; r++) {
                float one = k->vec_dot[t](n, wq, xq[r]);
                same &= !memcmp(&one, &many[r], sizeof one);
            }
            CHECK(same, "%s %d-row %s kernel is bitwise the single-row one (n %d)", k->name, nt,
                  tt->name, n);
        }
    }
}

/* The fast dequantizers give exactly the reference values. */
static void dequant_exact(const model_kernels *k)
{
    if (!k->dequant) return;
    for (size_t i = 0; i < sizeof weight_types / sizeof *weight_types; i++) {
        int t = weight_types[i];
        float x[2048], ref[2048], got[2048];
        char q[8192];
        for (int j = 0; j < 2048; j++) x[j] = frand();
        make_weights(t, x, q, 2048);
        model__dequant(t, q, ref, 2048);
        if (!k->dequant(t, q, got, 2048)) continue;
        CHECK(!memcmp(ref, got, sizeof ref), "%s dequant %s equals the reference exactly", k->name,
              model_type_name(t));
    }
}

/* The fast activation quantizers give the reference's bytes exactly: random rows, rows with
 * ties at .5 steps, a negative extreme, repeated extremes of both signs, and zeros. */
static void quant_act_exact(const model_kernels *k)
{
    if (!k->quant_act) return;
    static const int types[] = {MODEL_TYPE_Q8_0, MODEL_TYPE_Q8_K};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        int t = types[i];
        bool same = true;
        for (int round = 0; round < 6; round++) {
            float x[2048];
            for (int j = 0; j < 2048; j++) x[j] = frand() * (float)(round + 1);
            if (round == 1)
                for (int j = 0; j < 2048; j++) x[j] = (float)((j % 255) - 127) * 0.5f;
            if (round == 2) x[77] = -40.0f;
            if (round == 3) x[5] = 9.0f, x[6] = -9.0f, x[300] = -9.0f;
            if (round == 4) memset(x, 0, sizeof x);
            static uint8_t ref[4096], got[4096];
            memset(got, 0xa5, sizeof got);
            model__quant(t, x, ref, 2048);
            if (!k->quant_act(t, x, got, 2048)) continue;
            same &= !memcmp(ref, got, model__row_bytes(t, 2048));
        }
        CHECK(same, "%s activation quantizer %s equals the reference bytes", k->name,
              model_type_name(t));
    }
}

static void f32_helpers(const model_kernels *k)
{
    float a[577], b[577], y[577], y2[577];
    for (int i = 0; i < 577; i++) a[i] = frand(), b[i] = frand(), y[i] = y2[i] = frand();
    double ref = 0;
    for (int i = 0; i < 577; i++) ref += (double)a[i] * b[i];
    CHECK(fabs(k->dot_f32(577, a, b) - ref) < 1e-4, "%s dot_f32", k->name);
    k->axpy_f32(577, 0.5f, a, y);
    float md = 0;
    for (int i = 0; i < 577; i++) md = fmaxf(md, fabsf(y[i] - (y2[i] + 0.5f * a[i])));
    CHECK(md < 1e-6f, "%s axpy_f32", k->name);
}

/* The multi-head attention kernels against double-precision sums, for every head count the
 * model uses (1, 2, 4, 8) and lengths with a tail. */
static void head_kernels(const model_kernels *k)
{
    if (!k->dot_f32_heads || !k->mix_f32_heads) return;
    enum { N = 579, S = 37 };
    static float q[8][N], x[S][N], p[8][S], out[8 * 3], y[8][N];
    for (int g = 0; g < 8; g++)
        for (int i = 0; i < N; i++) q[g][i] = frand();
    for (int s = 0; s < S; s++)
        for (int i = 0; i < N; i++) x[s][i] = frand();
    for (int g = 0; g < 8; g++)
        for (int s = 0; s < S; s++) p[g][s] = frand();
    static const int gs[] = {1, 2, 4, 8};
    for (size_t c = 0; c < sizeof gs / sizeof *gs; c++) {
        int G = gs[c];
        double worst = 0, worst_mix = 0;
        for (int n = N - 16; n <= N; n += 8) { /* tails of 3, 11 and 0 elements mod 16 */
            k->dot_f32_heads(n, x[3], q[0], N, G, out, 3);
            k->mix_f32_heads(n, S, x[0], N, p[0], S, G, y[0], N);
            for (int g = 0; g < G; g++) {
                double ref = 0;
                for (int i = 0; i < n; i++) ref += (double)q[g][i] * x[3][i];
                worst = fmax(worst, fabs(out[3 * g] - ref));
                for (int i = 0; i < n; i++) {
                    double r = 0;
                    for (int s = 0; s < S; s++) r += (double)p[g][s] * x[s][i];
                    worst_mix = fmax(worst_mix, fabs(y[g][i] - r));
                }
            }
        }
        CHECK(worst < 1e-4, "%s dot_f32_heads with %d heads (error %g)", k->name, G, worst);
        CHECK(worst_mix < 1e-4, "%s mix_f32_heads with %d heads (error %g)", k->name, G, worst_mix);
    }
}

/* The pool: many back-to-back dispatches of varying sizes; every item runs exactly once. */
typedef struct pool_probe {
    int *hits;
} pool_probe;

static void count_items(void *ctx, int i0, int i1, int thread)
{
    (void)thread;
    pool_probe *p = ctx;
    for (int i = i0; i < i1; i++) __atomic_fetch_add(&p->hits[i], 1, __ATOMIC_RELAXED);
}

static void pool_stress(void)
{
    model_pool *pool = model__pool_new(4);
    int *hits = calloc(5000, sizeof *hits);
    pool_probe probe = {hits};
    int bad = 0;
    for (int round = 0; round < 60000; round++) {
        int total = 1 + (round * 7919) % 4999, grain = 1 + (round * 31) % 64;
        memset(hits, 0, sizeof(int) * (size_t)total);
        model__pool_for(pool, total, grain, count_items, &probe);
        for (int i = 0; i < total; i++) bad += hits[i] != 1;
    }
    CHECK(bad == 0, "pool: 60000 dispatches, every item exactly once (%d wrong)", bad);
    model__pool_free(pool);
    free(hits);
}

int main(int argc, char **argv)
{
    static const char *const cases[] = {"pool", "kernels", "quantizers", "names"};
    if (!check_args(argc, argv, cases, CHECK_CASES(cases))) return 2;
    if (check_want("pool")) pool_stress();
    const model_kernels *tables[8];
    int n_tables = model__kernel_tables(tables, 8);
    printf("kernel tables on this CPU:");
    for (int i = 0; i < n_tables; i++) printf(" %s", tables[i]->name);
    printf("\n");
    for (int k = 0; k < n_tables && check_want("kernels"); k++) {
        for (size_t i = 0; i < sizeof weight_types / sizeof *weight_types; i++) {
            int t = weight_types[i];
            CHECK(tables[k]->vec_dot[t] != NULL, "%s has a kernel", model_type_name(t));
            if (!tables[k]->vec_dot[t]) continue;
            dot_vs_reference(tables[k], t, 256);
            dot_vs_reference(tables[k], t, 2816);
            if (model__type(t)->block <= 32)
                dot_vs_reference(tables[k], t, 224); /* odd block count */
        }
        f32_helpers(tables[k]);
        head_kernels(tables[k]);
        dequant_exact(tables[k]);
        quant_act_exact(tables[k]);
        multi_row_exact(tables[k], 2816);
        multi_row_exact(tables[k], 224);
    }
    if (check_want("quantizers")) {
        for (size_t i = 0; i < sizeof weight_types / sizeof *weight_types; i++)
            if (model_type_writable(weight_types[i])) weight_round_trip(weight_types[i]);
        CHECK(model_type_writable(MODEL_TYPE_Q2_K) && model_type_writable(MODEL_TYPE_Q3_K) &&
                  model_type_writable(MODEL_TYPE_IQ4_XS) &&
                  !model_type_writable(MODEL_TYPE_IQ2_XXS),
              "synth writes Q2_K, Q3_K and IQ4_XS; the importance-matrix IQ types are read only");
        float one[256] = {1};
        uint8_t blk[400];
        CHECK(model__quant(MODEL_TYPE_IQ1_S, one, blk, 256) == -1,
              "quantizing to a type without a quantizer fails");
        activation_quantizers();
        halves();
    }
    if (check_want("names"))
        CHECK(model_type_from_name("q4_k") == MODEL_TYPE_Q4_K &&
                  model_type_from_name("IQ4_NL") == MODEL_TYPE_IQ4_NL &&
                  model_type_from_name("iq3_s") == MODEL_TYPE_IQ3_S &&
                  model_type_from_name("IQ1_M") == MODEL_TYPE_IQ1_M &&
                  model_type_from_name("Q7_K") < 0 && model_type_name(24) == NULL,
              "type names");
    return check_done();
}
