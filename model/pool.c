/* model/pool.c — the thread pool behind the matrix products: `parallel for` over chunks of an index
 * range, the calling thread working too. Workers spin briefly between dispatches (a decoded token
 * issues a few hundred of them) and then sleep, so an idle daemon does not burn a core. */
#define _GNU_SOURCE
#include "model_internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

enum { SPIN_ROUNDS = 200000 };

struct model_pool {
    int n; /* threads including the caller */
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_uint gen; /* the current dispatch's generation; workers wake on a change */
    atomic_int sleeping;
    atomic_bool quit;
    unsigned last_gen; /* owned by the calling thread */
    /* the current dispatch: set before `next` is published with its generation */
    _Atomic(pool_fn) fn;
    _Atomic(void *) ctx;
    atomic_int total, grain;
    _Atomic uint64_t next; /* generation << 32 | next chunk start */
    atomic_int done;       /* items finished */
};

/* Claim chunks of generation g until none are left. A chunk is claimed by a compare-and-swap on
 * (generation, index), so a worker still holding an old generation can never take, or skip, a chunk
 * of a newer dispatch; and since a new dispatch first closes `next` before it rewrites the fields,
 * a successful claim means the fields read with it belong to the claimed generation. */
static void work(model_pool *p, unsigned g, int thread)
{
    for (;;) {
        uint64_t v = atomic_load(&p->next);
        if ((unsigned)(v >> 32) != g) return;
        int i0 = (int)(uint32_t)v, total = atomic_load(&p->total), grain = atomic_load(&p->grain);
        if (i0 >= total) return;
        /* guided: chunks shrink as the range runs out, so the threads finish together */
        int size = (total - i0) / (2 * p->n);
        if (size < grain) size = grain;
        if (!atomic_compare_exchange_weak(&p->next, &v, v + (uint64_t)size)) continue;
        int i1 = i0 + size < total ? i0 + size : total;
        atomic_load (&p->fn)(atomic_load(&p->ctx), i0, i1, thread);
        atomic_fetch_add(&p->done, i1 - i0);
    }
}

typedef struct worker_arg {
    model_pool *p;
    int id;
} worker_arg;

static void *worker(void *arg)
{
    worker_arg a = *(worker_arg *)arg;
    free(arg);
    model_pool *p = a.p;
    unsigned seen = atomic_load(&p->gen);
    for (;;) {
        int spins = 0;
        while (atomic_load(&p->gen) == seen && !atomic_load(&p->quit)) {
            if (++spins < SPIN_ROUNDS) {
                CPU_RELAX();
                continue;
            }
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->sleeping, 1);
            while (atomic_load(&p->gen) == seen && !atomic_load(&p->quit))
                pthread_cond_wait(&p->cv, &p->mu);
            atomic_fetch_sub(&p->sleeping, 1);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->quit)) return NULL;
        seen = atomic_load(&p->gen);
        work(p, seen, a.id);
    }
}

model_pool *model__pool_new(int n)
{
    if (n < 1) n = 1;
    model_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n = n;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->threads = calloc((size_t)n, sizeof *p->threads);
    for (int i = 1; i < n; i++) {
        worker_arg *a = malloc(sizeof *a);
        a->p = p;
        a->id = i;
        if (pthread_create(&p->threads[i], NULL, worker, a)) {
            free(a);
            p->n = i;
            break;
        }
    }
    return p;
}

void model__pool_free(model_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->quit, true);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->threads);
    free(p);
}

int model__pool_threads(const model_pool *p)
{
    return p ? p->n : 1;
}

void model__pool_for(model_pool *p, int total, int grain, pool_fn fn, void *ctx)
{
    if (total <= 0) return;
    if (grain < 1) grain = 1;
    if (!p || p->n == 1 || total <= grain) {
        fn(ctx, 0, total, 0);
        return;
    }
    unsigned g = ++p->last_gen;
    /* Close the previous dispatch under the new generation first: a worker still holding an old
     * (generation, index) could otherwise see this dispatch's larger total and claim by CAS an
     * index of the old, exhausted generation, then run this dispatch's fn on it twice. */
    atomic_store(&p->next, (uint64_t)g << 32 | 0x7fffffffu);
    atomic_store(&p->fn, fn);
    atomic_store(&p->ctx, ctx);
    atomic_store(&p->grain, grain);
    atomic_store(&p->total, total);
    atomic_store(&p->done, 0);
    atomic_store(&p->next, (uint64_t)g << 32); /* chunks of generation g become claimable */
    atomic_store(&p->gen, g);                  /* and the workers wake up for them */
    if (atomic_load(&p->sleeping) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    work(p, g, 0);
    while (atomic_load(&p->done) < total) CPU_RELAX();
}
