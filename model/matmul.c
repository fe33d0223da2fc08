/* model/matmul.c — the batched-product scheduler: weight matrices times activation rows, the rows
 * quantized once to each weight's vec_dot type and every product of a batch split over the thread
 * pool in one dispatch; or, when enabled, prefill through dequantized tiles and OpenBLAS sgemm. */
#include "model_internal.h"
#include "base/base.h"

#include <cblas.h>
#include <stdlib.h>

struct model_mm {
    const model_kernels *k;
    model_pool *pool; /* borrowed */
    bool use_sgemm;
    uint8_t *qbuf; /* activation rows in a vec_dot type */
    size_t qbuf_len;
    float *xr; /* activations rounded to the vec_dot type, as f32 (sgemm path) */
    size_t xr_len;
    float *tiles; /* each thread's dequantized weight tile */
    size_t tiles_len, tile_stride;
};

model_mm *model__mm_new(const model_kernels *k, model_pool *pool, bool sgemm)
{
    model_mm *mm = base_xcalloc(1, sizeof *mm);
    mm->k = k, mm->pool = pool, mm->use_sgemm = sgemm;
    return mm;
}

void model__mm_free(model_mm *mm)
{
    if (!mm) return;
    free(mm->qbuf);
    free(mm->xr);
    free(mm->tiles);
    free(mm);
}

/* Bytes of one activation row of K elements in a weight's vec_dot type. */
static size_t act_row_bytes(const wt *w)
{
    const type_traits *tt = model__type(w->type);
    return model__row_bytes(tt->vec_dot_type, w->ne[0]);
}

void *model__grow(void **p, size_t *cap, size_t need)
{
    if (need > *cap) {
        free(*p);
        *p = base_xmalloc(need);
        *cap = need;
    }
    return *p;
}

/* One activation row in a vec_dot type: the kernel table's fast quantizer when it has one (same
 * bytes as the reference). */
static void quant_act(const model_mm *mm, int type, const float *x, void *dst, int64_t n)
{
    if (!mm->k->quant_act || !mm->k->quant_act(type, x, dst, n)) model__quant(type, x, dst, n);
}

typedef struct mm_batch {
    const model_mm *mm;
    const mm_op *ops;
    int n;
} mm_batch;

enum { MM_TOKEN_TILE = 16 };

/* The kernels one product uses, looked up once per call. */
typedef struct row_dots {
    int K;
    vec_dot_fn dot;
    vec_dot4_fn dot4;
    vec_dotn_fn dotn;
    vec_dotn2_fn dotn2; /* NULL when pairs of rows do not pay */
} row_dots;

/* Weight rows n and n+1 against tokens [t0, t1): the two rows share the activations' loads. */
static void two_rows(const row_dots *d, const mm_op *o, const uint8_t *row, int n, int t0, int t1)
{
    size_t rb = o->w->row_bytes;
    for (int tk = t0; tk < t1; tk += 8) {
        int c = t1 - tk < 8 ? t1 - tk : 8;
        float r[16];
        d->dotn2(d->K, row, rb, o->xq + (size_t)tk * o->xstride, o->xstride, r, c);
        for (int q = 0; q < c; q++) {
            o->Y[(size_t)(tk + q) * o->ldy + (size_t)n] = r[q];
            o->Y[(size_t)(tk + q) * o->ldy + (size_t)n + 1] = r[8 + q];
        }
    }
}

/* Weight row n against tokens [t0, t1): 8 at a time, then 4, then one by one. The batched kernels
 * make bitwise the same sums as dot, so batch size never changes a result. */
static void one_row(const row_dots *d, const mm_op *o, const uint8_t *row, int n, int t0, int t1)
{
    int tk = t0;
    if (d->dotn)
        for (; tk < t1; tk += 8) {
            int c = t1 - tk < 8 ? t1 - tk : 8;
            float r[8];
            d->dotn(d->K, row, o->xq + (size_t)tk * o->xstride, o->xstride, r, c);
            for (int q = 0; q < c; q++) o->Y[(size_t)(tk + q) * o->ldy + (size_t)n] = r[q];
        }
    if (d->dot4)
        for (; tk + 4 <= t1; tk += 4) {
            float r[4];
            d->dot4(d->K, row, o->xq + (size_t)tk * o->xstride, o->xstride, r);
            for (int q = 0; q < 4; q++) o->Y[(size_t)(tk + q) * o->ldy + (size_t)n] = r[q];
        }
    for (; tk < t1; tk++)
        o->Y[(size_t)tk * o->ldy + (size_t)n] = d->dot(d->K, row, o->xq + (size_t)tk * o->xstride);
}

/* Rows [n0, n1) of one product. */
static void mm_op_rows(const model_mm *mm, const mm_op *o, int n0, int n1)
{
    const wt *w = o->w;
    row_dots d = {(int)w->ne[0], mm->k->vec_dot[w->type], mm->k->vec_dot4[w->type],
                  mm->k->vec_dotn[w->type], NULL};
    /* pairs of rows only when the rows are read again for later token tiles: streaming two rows
     * at once from memory measured 2-3x slower here than one (decode) */
    if (d.dotn && o->T > MM_TOKEN_TILE / 2) d.dotn2 = mm->k->vec_dotn2[w->type];
    const uint8_t *rows = w->data + (size_t)o->e * w->mat_bytes;
    /* token tiles: a tile of weight rows stays in cache while it meets every token */
    for (int t0 = 0; t0 < o->T; t0 += MM_TOKEN_TILE) {
        int t1 = t0 + MM_TOKEN_TILE < o->T ? t0 + MM_TOKEN_TILE : o->T;
        for (int n = n0; n < n1; n++) {
            const uint8_t *row = rows + (size_t)n * w->row_bytes;
            if (d.dotn2 && n + 1 < n1)
                two_rows(&d, o, row, n++, t0, t1);
            else
                one_row(&d, o, row, n, t0, t1);
        }
    }
}

/* Items [i0, i1) of the joint row range: the pieces of each product they cover. */
static void mm_rows(void *ctx, int i0, int i1, int thread)
{
    (void)thread;
    const mm_batch *b = ctx;
    int lo = 0, hi = b->n - 1; /* the last product starting at or before i0 */
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (b->ops[mid].row0 <= i0)
            lo = mid;
        else
            hi = mid - 1;
    }
    for (int k = lo; k < b->n && b->ops[k].row0 < i1; k++) {
        const mm_op *o = &b->ops[k];
        int r0 = i0 > o->row0 ? i0 - o->row0 : 0, r1 = i1 - o->row0, rows = (int)o->w->ne[1];
        if (r1 > rows) r1 = rows;
        if (r0 < r1) mm_op_rows(b->mm, o, r0, r1);
    }
}

/* Prefill path: each thread dequantizes a tile of weight rows once and multiplies it with all T
 * activation rows in one single-threaded OpenBLAS sgemm. */
enum { SGEMM_MIN_TOKENS = 32, SGEMM_TILE = 64 };

typedef struct sg_task {
    const model_mm *mm;
    const wt *w;
    int e, T;
    const float *X;
    size_t ldx;
    float *Y;
    size_t ldy;
} sg_task;

static void sg_rows(void *ctx, int n0, int n1, int thread)
{
    const sg_task *t = ctx;
    const wt *w = t->w;
    int K = (int)w->ne[0];
    float *tile = t->mm->tiles + t->mm->tile_stride * (size_t)thread;
    const uint8_t *rows = t->w->data + (size_t)t->e * w->mat_bytes;
    for (int r0 = n0; r0 < n1; r0 += SGEMM_TILE) {
        int nr = n1 - r0 < SGEMM_TILE ? n1 - r0 : SGEMM_TILE;
        const model_kernels *k = t->mm->k;
        if (!k->dequant ||
            !k->dequant(w->type, rows + (size_t)r0 * w->row_bytes, tile, (int64_t)nr * K))
            model__dequant(w->type, rows + (size_t)r0 * w->row_bytes, tile, (int64_t)nr * K);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, t->T, nr, K, 1.0f, t->X, (int)t->ldx,
                    tile, K, 0.0f, t->Y + r0, (int)t->ldy);
    }
}

/* Prefill through sgemm (model_opts.sgemm): round the activations exactly as the int8 path does
 * (quantize, dequantize), so both paths multiply the same values and differ only in summation
 * order; a prompt evaluated in one batch or in chunks then gives the same logits within ~1e-5. */
static void matmul_sgemm(model_mm *mm, const mm_op *o)
{
    const wt *w = o->w;
    const type_traits *tt = model__type(w->type);
    size_t K = (size_t)w->ne[0], rb = act_row_bytes(w);
    float *Xr = model__grow((void **)&mm->xr, &mm->xr_len, sizeof(float) * K * (size_t)o->T);
    uint8_t *q = model__grow((void **)&mm->qbuf, &mm->qbuf_len, rb);
    for (int i = 0; i < o->T; i++) {
        model__quant(tt->vec_dot_type, o->X + (size_t)i * o->ldx, q, (int64_t)K);
        model__dequant(tt->vec_dot_type, q, Xr + (size_t)i * K, (int64_t)K);
    }
    int threads = model__pool_threads(mm->pool);
    size_t need = (size_t)SGEMM_TILE * K;
    if (need > mm->tile_stride) {
        mm->tile_stride = need;
        model__grow((void **)&mm->tiles, &mm->tiles_len, need * (size_t)threads * sizeof(float));
    }
    sg_task t = {mm, w, o->e, o->T, Xr, K, o->Y, o->ldy};
    model__pool_for(mm->pool, (int)w->ne[1], SGEMM_TILE, sg_rows, &t);
}

/* Bytes of X quantized for o's weight (0 when the kernel reads f32 directly). */
static size_t op_quant_bytes(const mm_op *o)
{
    return model__type(o->w->type)->vec_dot_type == MODEL_TYPE_F32
               ? 0
               : act_row_bytes(o->w) * (size_t)o->T;
}

/* An earlier product with the same input in the same activation format, whose rows can be shared.
 */
static const mm_op *same_input(const mm_op *ops, int k)
{
    const mm_op *o = &ops[k];
    int vt = model__type(o->w->type)->vec_dot_type;
    for (int j = 0; j < k; j++)
        if (ops[j].X == o->X && ops[j].T == o->T && ops[j].ldx == o->ldx &&
            ops[j].w->ne[0] == o->w->ne[0] && model__type(ops[j].w->type)->vec_dot_type == vt)
            return &ops[j];
    return NULL;
}

/* Y = W_e X for each of n products, in one dispatch over all their rows (a decoded token's six
 * experts are one dispatch, not eighteen). Each X row is quantized once to the weight's vec_dot
 * type, as llama.cpp does; products sharing an input share its quantized rows. */
static void matmul_ops(model_mm *mm, mm_op *ops, int n)
{
    size_t bytes = 0;
    for (int k = 0; k < n; k++) {
        ops[k].shares = same_input(ops, k);
        bytes += ops[k].shares ? 0 : op_quant_bytes(&ops[k]);
    }
    uint8_t *arena = bytes ? model__grow((void **)&mm->qbuf, &mm->qbuf_len, bytes) : NULL;
    int rows = 0;
    for (int k = 0; k < n; k++) {
        mm_op *o = &ops[k];
        int vt = model__type(o->w->type)->vec_dot_type;
        if (o->shares) {
            o->xq = o->shares->xq, o->xstride = o->shares->xstride;
        } else if (vt == MODEL_TYPE_F32) {
            o->xq = (const uint8_t *)o->X, o->xstride = o->ldx * sizeof(float);
        } else {
            size_t rb = act_row_bytes(o->w);
            for (int i = 0; i < o->T; i++)
                quant_act(mm, vt, o->X + (size_t)i * o->ldx, arena + (size_t)i * rb, o->w->ne[0]);
            o->xq = arena, o->xstride = rb;
            arena += rb * (size_t)o->T;
        }
        o->row0 = rows;
        rows += (int)o->w->ne[1];
    }
    int threads = model__pool_threads(mm->pool);
    int grain = rows / (threads * 64) > 4 ? rows / (threads * 64) : 4;
    mm_batch b = {mm, ops, n};
    model__pool_for(mm->pool, rows, grain, mm_rows, &b);
}

/* Long batches (prefill) may use dequantized tiles and sgemm instead, when enabled. */
void model__matmul(model_mm *mm, const wt *w, int e, const float *X, int T, size_t ldx, float *Y,
                   size_t ldy)
{
    mm_op o = {.w = w, .e = e, .T = T, .X = X, .ldx = ldx, .Y = Y, .ldy = ldy};
    if (T >= SGEMM_MIN_TOKENS && mm->use_sgemm && w->type != MODEL_TYPE_F32)
        matmul_sgemm(mm, &o);
    else
        matmul_ops(mm, &o, 1);
}

/* The products of a batch in one dispatch, or one by one through sgemm when that is enabled. */
void model__matmul_batch(model_mm *mm, mm_op *ops, int n)
{
    if (!mm->use_sgemm) {
        matmul_ops(mm, ops, n);
        return;
    }
    for (int k = 0; k < n; k++)
        model__matmul(mm, ops[k].w, ops[k].e, ops[k].X, ops[k].T, ops[k].ldx, ops[k].Y, ops[k].ldy);
}
