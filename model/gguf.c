/* model/gguf.c — GGUF v3 container: a reader over a read-only mmap that checks every count,
 * length, offset, type and dimension product against the file size before forming a pointer,
 * and a streaming writer used by `fimd synth` and by tests that craft (and corrupt) files. */
#define _GNU_SOURCE
#include "model_internal.h"
#include "base/base.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int model__fail(model_err *err, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* ---- bounded cursor ---- */

typedef struct cursor {
    const uint8_t *p, *end;
    const uint8_t *base;
    model_err *err;
    const char *path;
    bool failed;
} cursor;

static bool cur_take(cursor *c, uint64_t n, const void **out, const char *what)
{
    if (c->failed) return false;
    if ((uint64_t)(c->end - c->p) < n) {
        model__fail(c->err, "%s: truncated file: %s at byte %lld needs %llu bytes, %lld left",
                    c->path, what, (long long)(c->p - c->base), (unsigned long long)n,
                    (long long)(c->end - c->p));
        c->failed = true;
        return false;
    }
    *out = c->p;
    c->p += n;
    return true;
}

static uint32_t rd_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd_u64(const uint8_t *p)
{
    return (uint64_t)rd_u32(p) | (uint64_t)rd_u32(p + 4) << 32;
}

static bool cur_u32(cursor *c, uint32_t *v, const char *what)
{
    const void *p;
    if (!cur_take(c, 4, &p, what)) return false;
    *v = rd_u32(p);
    return true;
}

static bool cur_u64(cursor *c, uint64_t *v, const char *what)
{
    const void *p;
    if (!cur_take(c, 8, &p, what)) return false;
    *v = rd_u64(p);
    return true;
}

static bool cur_str(cursor *c, gguf_str *s, const char *what)
{
    uint64_t n;
    const void *p;
    if (!cur_u64(c, &n, what)) return false;
    if (n > (uint64_t)(c->end - c->p)) {
        model__fail(c->err, "%s: %s: string length %llu at byte %lld runs past the end of the file",
                    c->path, what, (unsigned long long)n, (long long)(c->p - c->base - 8));
        c->failed = true;
        return false;
    }
    if (!cur_take(c, n, &p, what)) return false;
    s->p = p;
    s->n = n;
    return true;
}

static const int vtype_size[GGUF_VTYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

static const char *vtype_name(uint32_t t)
{
    static const char *names[] = {"u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
                                  "bool", "string", "array", "u64", "i64", "f64"};
    return t < GGUF_VTYPE_COUNT ? names[t] : "unknown";
}

/* Skip one value of type t, checking bounds; arrays of arrays are rejected as llama.cpp does. */
static bool cur_value(cursor *c, gguf_kv *kv, const char *key)
{
    if (kv->type >= GGUF_VTYPE_COUNT) {
        model__fail(c->err, "%s: key '%s' has unknown value type %u", c->path, key, kv->type);
        c->failed = true;
        return false;
    }
    const void *p;
    if (kv->type == GGUF_STRING) {
        gguf_str s;
        return cur_str(c, &s, key);
    }
    if (kv->type != GGUF_ARRAY) return cur_take(c, vtype_size[kv->type], &p, key);
    if (!cur_u32(c, &kv->arr_type, key) || !cur_u64(c, &kv->arr_n, key)) return false;
    if (kv->arr_type >= GGUF_VTYPE_COUNT || kv->arr_type == GGUF_ARRAY) {
        model__fail(c->err, "%s: key '%s': invalid array element type %u", c->path, key,
                    kv->arr_type);
        c->failed = true;
        return false;
    }
    uint64_t left = (uint64_t)(c->end - c->p);
    if (kv->arr_type == GGUF_STRING) {
        if (kv->arr_n > left / 8) {
            model__fail(c->err, "%s: key '%s': array of %llu strings cannot fit in %llu bytes",
                        c->path, key, (unsigned long long)kv->arr_n, (unsigned long long)left);
            c->failed = true;
            return false;
        }
        for (uint64_t i = 0; i < kv->arr_n; i++) {
            gguf_str s;
            if (!cur_str(c, &s, key)) return false;
        }
        return true;
    }
    uint64_t es = vtype_size[kv->arr_type];
    if (kv->arr_n > left / es) {
        model__fail(c->err, "%s: key '%s': array of %llu %s elements runs past the end of the file",
                    c->path, key, (unsigned long long)kv->arr_n, vtype_name(kv->arr_type));
        c->failed = true;
        return false;
    }
    return cur_take(c, kv->arr_n * es, &p, key);
}

static void key_cstr(gguf_str s, char *buf, size_t cap)
{
    size_t n = s.n < cap - 1 ? s.n : cap - 1;
    memcpy(buf, s.p, n);
    buf[n] = 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)buf[i] < 0x20 || (unsigned char)buf[i] >= 0x7f) buf[i] = '?';
}

bool model__gguf_str_eq(gguf_str s, const char *c)
{
    size_t n = strlen(c);
    return s.n == n && memcmp(s.p, c, n) == 0;
}

const gguf_kv *model__gguf_find(const model_gguf *g, const char *key)
{
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (model__gguf_str_eq(g->kv[i].key, key)) return &g->kv[i];
    return NULL;
}

const gguf_tensor *model__gguf_tensor(const model_gguf *g, const char *name)
{
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (model__gguf_str_eq(g->tensors[i].name, name)) return &g->tensors[i];
    return NULL;
}

static bool kv_int(const gguf_kv *kv, int64_t *out)
{
    const uint8_t *p = kv->raw;
    switch (kv->type) {
    case GGUF_U8:
        *out = p[0];
        return true;
    case GGUF_I8:
        *out = (int8_t)p[0];
        return true;
    case GGUF_U16:
        *out = (uint16_t)(p[0] | p[1] << 8);
        return true;
    case GGUF_I16:
        *out = (int16_t)(p[0] | p[1] << 8);
        return true;
    case GGUF_U32:
        *out = rd_u32(p);
        return true;
    case GGUF_I32:
        *out = (int32_t)rd_u32(p);
        return true;
    case GGUF_U64:
        *out = (int64_t)rd_u64(p);
        return rd_u64(p) <= INT64_MAX;
    case GGUF_I64:
        *out = (int64_t)rd_u64(p);
        return true;
    default:
        return false;
    }
}

int model__gguf_u32(const model_gguf *g, const char *key, uint32_t *out, model_err *err)
{
    const gguf_kv *kv = model__gguf_find(g, key);
    if (!kv) return 1;
    int64_t v;
    if (kv->type == GGUF_ARRAY && kv->arr_n > 0 && kv->arr_type == GGUF_U32) {
        /* per-layer arrays (head counts, ff lengths): fimd needs them uniform */
        const uint8_t *p = kv->raw + 12;
        uint32_t first = rd_u32(p);
        for (uint64_t i = 1; i < kv->arr_n; i++)
            if (rd_u32(p + 4 * i) != first)
                return model__fail(err,
                                   "%s: key '%s' varies per layer, which fimd does not support",
                                   g->path, key);
        *out = first;
        return 0;
    }
    if (!kv_int(kv, &v))
        return model__fail(err, "%s: key '%s' should be an integer, found %s", g->path, key,
                           vtype_name(kv->type));
    if (v < 0 || v > UINT32_MAX)
        return model__fail(err, "%s: key '%s' = %lld is out of range", g->path, key, (long long)v);
    *out = (uint32_t)v;
    return 0;
}

int model__gguf_f32(const model_gguf *g, const char *key, float *out, model_err *err)
{
    const gguf_kv *kv = model__gguf_find(g, key);
    if (!kv) return 1;
    if (kv->type == GGUF_F32) {
        uint32_t u = rd_u32(kv->raw);
        memcpy(out, &u, 4);
        return 0;
    }
    if (kv->type == GGUF_F64) {
        uint64_t u = rd_u64(kv->raw);
        double d;
        memcpy(&d, &u, 8);
        *out = (float)d;
        return 0;
    }
    int64_t v;
    if (kv_int(kv, &v)) {
        *out = (float)v;
        return 0;
    }
    return model__fail(err, "%s: key '%s' should be a float, found %s", g->path, key,
                       vtype_name(kv->type));
}

int model__gguf_bool(const model_gguf *g, const char *key, bool *out, model_err *err)
{
    const gguf_kv *kv = model__gguf_find(g, key);
    if (!kv) return 1;
    int64_t v;
    if (kv->type == GGUF_BOOL) {
        *out = kv->raw[0] != 0;
        return 0;
    }
    if (kv_int(kv, &v)) {
        *out = v != 0;
        return 0;
    }
    return model__fail(err, "%s: key '%s' should be a bool, found %s", g->path, key,
                       vtype_name(kv->type));
}

int model__gguf_str(const model_gguf *g, const char *key, gguf_str *out, model_err *err)
{
    const gguf_kv *kv = model__gguf_find(g, key);
    if (!kv) return 1;
    if (kv->type != GGUF_STRING)
        return model__fail(err, "%s: key '%s' should be a string, found %s", g->path, key,
                           vtype_name(kv->type));
    out->n = rd_u64(kv->raw);
    out->p = (const char *)kv->raw + 8;
    return 0;
}

gguf_str model__gguf_arr_next_str(const uint8_t **pos)
{
    gguf_str s;
    s.n = rd_u64(*pos);
    s.p = (const char *)*pos + 8;
    *pos += 8 + s.n;
    return s;
}

/* ---- parsing ---- */

/* Names of ggml types fimd has no record for, so that a load error says which one it met. */
static const char *ggml_type_name(uint32_t type)
{
    static const struct {
        uint32_t id;
        const char *name;
    } other[] = {{4, "Q4_2 (removed)"},
                 {5, "Q4_3 (removed)"},
                 {24, "I8"},
                 {25, "I16"},
                 {26, "I32"},
                 {27, "I64"},
                 {28, "F64"},
                 {31, "Q4_0_4_4 (removed)"},
                 {32, "Q4_0_4_8 (removed)"},
                 {33, "Q4_0_8_8 (removed)"},
                 {34, "TQ1_0"},
                 {35, "TQ2_0"},
                 {39, "MXFP4"}};
    for (size_t i = 0; i < sizeof other / sizeof *other; i++)
        if (other[i].id == type) return other[i].name;
    return "unknown to ggml too";
}

static int parse_kvs(model_gguf *g, cursor *c)
{
    uint64_t left = (uint64_t)(c->end - c->p);
    if (g->n_kv > left / 12) /* each KV needs at least a key length, a type and a value byte */
        return model__fail(c->err,
                           "%s: header claims %llu key/value pairs, more than the remaining %llu "
                           "bytes can hold (truncated or corrupt file)",
                           g->path, (unsigned long long)g->n_kv, (unsigned long long)left);
    g->kv = calloc(g->n_kv ? g->n_kv : 1, sizeof *g->kv);
    if (!g->kv) return model__fail(c->err, "%s: out of memory", g->path);
    for (uint64_t i = 0; i < g->n_kv; i++) {
        gguf_kv *kv = &g->kv[i];
        char key[128];
        if (!cur_str(c, &kv->key, "key")) return -1;
        key_cstr(kv->key, key, sizeof key);
        for (uint64_t j = 0; j < i; j++)
            if (g->kv[j].key.n == kv->key.n && !memcmp(g->kv[j].key.p, kv->key.p, kv->key.n))
                return model__fail(c->err, "%s: duplicate key '%s'", g->path, key);
        if (!cur_u32(c, &kv->type, key)) return -1;
        kv->raw = c->p;
        if (!cur_value(c, kv, key)) return -1;
        kv->raw_len = (uint64_t)(c->p - kv->raw);
    }
    return 0;
}

static int parse_tensor_info(model_gguf *g, cursor *c, gguf_tensor *t)
{
    char name[128];
    uint32_t n_dims, type;
    if (!cur_str(c, &t->name, "tensor name")) return -1;
    key_cstr(t->name, name, sizeof name);
    if (t->name.n == 0 || t->name.n > 256)
        return model__fail(c->err, "%s: tensor name of length %llu is invalid", g->path,
                           (unsigned long long)t->name.n);
    if (!cur_u32(c, &n_dims, name)) return -1;
    if (n_dims < 1 || n_dims > 4)
        return model__fail(c->err, "%s: tensor '%s' has %u dimensions (1..4 allowed)", g->path,
                           name, n_dims);
    t->n_dims = (int)n_dims;
    uint64_t nel = 1;
    for (int d = 0; d < 4; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        uint64_t v;
        if (!cur_u64(c, &v, name)) return -1;
        if (v == 0 || v > INT64_MAX / 2)
            return model__fail(c->err, "%s: tensor '%s' dimension %u is %llu", g->path, name, d,
                               (unsigned long long)v);
        if (nel > (uint64_t)INT64_MAX / v)
            return model__fail(c->err, "%s: tensor '%s': element count overflows", g->path, name);
        nel *= v;
        t->ne[d] = (int64_t)v;
    }
    if (!cur_u32(c, &type, name) || !cur_u64(c, &t->offset, name)) return -1;
    const type_traits *tt = model__type((int)type);
    if (!tt)
        return model__fail(c->err, "%s: tensor '%s' has type %u (%s), which fimd does not support",
                           g->path, name, type, ggml_type_name(type));
    t->type = (int)type;
    if (t->ne[0] % tt->block)
        return model__fail(c->err,
                           "%s: tensor '%s': row length %lld is not a multiple of %s's "
                           "block size %d",
                           g->path, name, (long long)t->ne[0], tt->name, tt->block);
    uint64_t blocks = nel / tt->block;
    if (blocks > UINT64_MAX / tt->bytes)
        return model__fail(c->err, "%s: tensor '%s': byte size overflows", g->path, name);
    t->nbytes = blocks * tt->bytes;
    if (t->offset % g->alignment)
        return model__fail(c->err, "%s: tensor '%s' offset %llu is not aligned to %llu", g->path,
                           name, (unsigned long long)t->offset, (unsigned long long)g->alignment);
    return 0;
}

static int parse(model_gguf *g, model_err *err)
{
    cursor c = {g->base, g->base + g->size, g->base, err, g->path, false};
    const void *magic;
    if (!cur_take(&c, 4, &magic, "magic")) return -1;
    if (memcmp(magic, "GGUF", 4))
        return model__fail(err, "%s: not a GGUF file (bad magic)", g->path);
    if (!cur_u32(&c, &g->version, "version")) return -1;
    if (g->version != 3 && g->version != 2)
        return model__fail(err, "%s: GGUF version %u is not supported (expected 3)", g->path,
                           g->version);
    if (!cur_u64(&c, &g->n_tensors, "tensor count") || !cur_u64(&c, &g->n_kv, "key count"))
        return -1;
    if (parse_kvs(g, &c)) return -1;
    g->alignment = 32;
    uint32_t al;
    int r = model__gguf_u32(g, "general.alignment", &al, err);
    if (r < 0) return -1;
    if (r == 0) {
        if (al == 0 || (al & (al - 1)) || al > 1u << 20)
            return model__fail(err, "%s: general.alignment %u is not a power of two", g->path, al);
        g->alignment = al;
    }
    uint64_t left = (uint64_t)(c.end - c.p);
    if (g->n_tensors > left / 28) /* name length + one dim + type + offset, at least */
        return model__fail(err,
                           "%s: header claims %llu tensors, more than the remaining %llu bytes can "
                           "hold (truncated or corrupt file)",
                           g->path, (unsigned long long)g->n_tensors, (unsigned long long)left);
    g->tensors = calloc(g->n_tensors ? g->n_tensors : 1, sizeof *g->tensors);
    if (!g->tensors) return model__fail(err, "%s: out of memory", g->path);
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (parse_tensor_info(g, &c, &g->tensors[i])) return -1;
    uint64_t hdr = (uint64_t)(c.p - g->base);
    g->data_start = (hdr + g->alignment - 1) / g->alignment * g->alignment;
    if (g->n_tensors && g->data_start > g->size)
        return model__fail(err,
                           "%s: truncated file: data section would start at %llu, file has %llu"
                           " bytes",
                           g->path, (unsigned long long)g->data_start, (unsigned long long)g->size);
    uint64_t data_size = g->size > g->data_start ? g->size - g->data_start : 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        gguf_tensor *t = &g->tensors[i];
        char name[128];
        key_cstr(t->name, name, sizeof name);
        if (t->offset > data_size || t->nbytes > data_size - t->offset)
            return model__fail(err,
                               "%s: tensor '%s' (%llu bytes at data offset %llu) runs past the"
                               " end of the file (data section is %llu bytes)",
                               g->path, name, (unsigned long long)t->nbytes,
                               (unsigned long long)t->offset, (unsigned long long)data_size);
        t->data = g->base + g->data_start + t->offset;
        for (uint64_t j = 0; j < i; j++)
            if (g->tensors[j].name.n == t->name.n &&
                !memcmp(g->tensors[j].name.p, t->name.p, t->name.n))
                return model__fail(err, "%s: duplicate tensor '%s'", g->path, name);
    }
    return 0;
}

/* MemAvailable from /proc/meminfo in bytes (0 when unknown). */
static uint64_t available_memory(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return 0;
    char line[256];
    unsigned long long kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) break;
    fclose(f);
    return (uint64_t)kb * 1024;
}

/* The whole file read into anonymous memory the kernel may back with 2 MB pages (MAP_FAILED when
 * that fails): the engine then streams its weights through a few hundred TLB entries, not one per
 * 4 KB page. read(), not a copy out of a file mapping, so the file's pages are never mapped and
 * the resident size stays the file's size. */
static void *read_resident(int fd, uint64_t size)
{
    /* anonymous memory cannot be given back under pressure as file pages can: only when the file
     * fits comfortably in what the system has available */
    if (size > available_memory() / 4 * 3) return MAP_FAILED;
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return p;
#ifdef MADV_HUGEPAGE
    madvise(p, size, MADV_HUGEPAGE);
#endif
    for (uint64_t at = 0; at < size;) {
        size_t want = size - at < ((uint64_t)64 << 20) ? (size_t)(size - at) : (size_t)64 << 20;
        ssize_t got = pread(fd, (uint8_t *)p + at, want, (off_t)at);
        if (got <= 0) {
            munmap(p, size);
            return MAP_FAILED;
        }
        at += (uint64_t)got;
    }
    mprotect(p, size, PROT_READ);
    return p;
}

/* ---- the SIGBUS guard: a mapped file truncated by another process ----
 * A page of a file mapping past the file's new end raises SIGBUS when touched. For the mappings
 * registered here the handler maps zero pages over the rest of the mapping instead and marks it
 * damaged: the computation under way finishes on zeros, and the engine, seeing the mark, reports
 * the file instead of the process dying. Any other SIGBUS goes to the handler that was there
 * before, or gets the default action (the process ends, as it would have). */

enum { MAX_GUARDED = 32 };
static struct guarded {
    _Atomic uintptr_t lo, hi; /* [lo, hi): the mapping, page-rounded; 0, 0 when the slot is free */
    atomic_bool damaged;
} guarded[MAX_GUARDED];
static pthread_mutex_t guard_mu = PTHREAD_MUTEX_INITIALIZER;
static struct sigaction guard_prev;
static uintptr_t guard_page;
static bool guard_installed;

static void on_sigbus(int sig, siginfo_t *si, void *uctx)
{
    uintptr_t a = (uintptr_t)si->si_addr;
    for (int i = 0; i < MAX_GUARDED; i++) {
        uintptr_t lo = atomic_load(&guarded[i].lo), hi = atomic_load(&guarded[i].hi);
        if (a < lo || a >= hi) continue;
        uintptr_t page = a & ~(guard_page - 1);
        if (mmap((void *)page, hi - page, PROT_READ,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0) != MAP_FAILED) {
            atomic_store(&guarded[i].damaged, true);
            return; /* the access is retried and reads zeros */
        }
    }
    if (guard_prev.sa_flags & SA_SIGINFO) {
        if (guard_prev.sa_sigaction) {
            guard_prev.sa_sigaction(sig, si, uctx);
            return;
        }
    } else if (guard_prev.sa_handler != SIG_DFL && guard_prev.sa_handler != SIG_IGN) {
        guard_prev.sa_handler(sig);
        return;
    }
    signal(SIGBUS, SIG_DFL); /* the access faults again, now with the default action */
}

/* The slot guarding [p, p + size), or -1 when every slot is taken (the mapping is unguarded). */
static int guard_add(const void *p, uint64_t size)
{
    pthread_mutex_lock(&guard_mu);
    if (!guard_installed) {
        guard_page = (uintptr_t)sysconf(_SC_PAGESIZE);
        struct sigaction sa = {0};
        sa.sa_sigaction = on_sigbus;
        sa.sa_flags = SA_SIGINFO | SA_NODEFER;
        sigemptyset(&sa.sa_mask);
        guard_installed = sigaction(SIGBUS, &sa, &guard_prev) == 0;
    }
    int slot = -1;
    for (int i = 0; guard_installed && i < MAX_GUARDED && slot < 0; i++)
        if (!atomic_load(&guarded[i].hi)) slot = i;
    if (slot >= 0) {
        uintptr_t lo = (uintptr_t)p,
                  hi = (lo + (uintptr_t)size + guard_page - 1) & ~(guard_page - 1);
        atomic_store(&guarded[slot].damaged, false);
        atomic_store(&guarded[slot].lo, lo);
        atomic_store(&guarded[slot].hi, hi);
    }
    pthread_mutex_unlock(&guard_mu);
    return slot;
}

static void guard_remove(int slot)
{
    if (slot < 0) return;
    pthread_mutex_lock(&guard_mu);
    atomic_store(&guarded[slot].hi, 0);
    atomic_store(&guarded[slot].lo, 0);
    pthread_mutex_unlock(&guard_mu);
}

bool model_gguf_damaged(const model_gguf *g)
{
    return g && g->guard >= 0 && atomic_load(&guarded[g->guard].damaged);
}

static model_gguf *open_file(const char *path, bool resident, model_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        model__fail(err, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        model__fail(err, "%s: not a regular file", path);
        close(fd);
        return NULL;
    }
    model_gguf *g = calloc(1, sizeof *g);
    if (!g) {
        close(fd);
        model__fail(err, "out of memory");
        return NULL;
    }
    g->path = strdup(path);
    g->size = (uint64_t)st.st_size;
    g->guard = -1;
    if (g->size == 0) {
        model__fail(err, "%s: empty file", path);
        close(fd);
        model_gguf_close(g);
        return NULL;
    }
    void *p = resident ? read_resident(fd, g->size) : MAP_FAILED;
    /* otherwise a mapping; MAP_POPULATE: fault the weights in now, not token by token as experts
     * get routed */
    if (p == MAP_FAILED) {
        p = mmap(NULL, g->size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
        if (p != MAP_FAILED) g->guard = guard_add(p, g->size);
    }
    close(fd);
    if (p == MAP_FAILED) {
        model__fail(err, "%s: mmap: %s", path, strerror(errno));
        g->size = 0;
        model_gguf_close(g);
        return NULL;
    }
    g->base = p;
    if (parse(g, err)) {
        model_gguf_close(g);
        return NULL;
    }
    return g;
}

model_gguf *model_gguf_open(const char *path, model_err *err)
{
    return open_file(path, false, err);
}

model_gguf *model__gguf_open_resident(const char *path, bool hugepages, model_err *err)
{
    return open_file(path, hugepages, err);
}

void model_gguf_close(model_gguf *g)
{
    if (!g) return;
    guard_remove(g->guard);
    if (g->base) munmap((void *)g->base, g->size);
    free(g->kv);
    free(g->tensors);
    free(g->path);
    free(g);
}

int model_gguf_tensor_f32(const model_gguf *g, const char *name, float **out, int64_t ne[4],
                          int *n_dims, model_err *err)
{
    const gguf_tensor *t = model__gguf_tensor(g, name);
    if (!t) return model__fail(err, "%s: no tensor named '%s'", g->path, name);
    int64_t n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    float *buf = malloc((size_t)n * sizeof *buf);
    if (!buf) return model__fail(err, "%s: out of memory for %lld floats", name, (long long)n);
    model__dequant(t->type, t->data, buf, n);
    *out = buf;
    memcpy(ne, t->ne, sizeof t->ne);
    *n_dims = t->n_dims;
    return 0;
}

int model_gguf_context_length(const model_gguf *g)
{
    gguf_str arch;
    model_err e = {{0}};
    if (model__gguf_str(g, "general.architecture", &arch, &e) || arch.n > 64) return 0;
    char key[96];
    snprintf(key, sizeof key, "%.*s.context_length", (int)arch.n, arch.p);
    uint32_t n = 0;
    return model__gguf_u32(g, key, &n, &e) == 0 && n <= 1u << 30 ? (int)n : 0;
}

void model_gguf_type_counts(const model_gguf *g, int *counts)
{
    for (uint64_t i = 0; i < g->n_tensors; i++) counts[g->tensors[i].type]++;
}

/* ---- writer ---- */

typedef struct wbuf {
    uint8_t *p;
    size_t n, cap;
} wbuf;

static void wb_put(wbuf *b, const void *src, size_t n)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n) cap *= 2;
        uint8_t *p = base_xrealloc(b->p, cap);
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void wb_u32(wbuf *b, uint32_t v)
{
    uint8_t x[4] = {v, v >> 8, v >> 16, v >> 24};
    wb_put(b, x, 4);
}

static void wb_u64(wbuf *b, uint64_t v)
{
    wb_u32(b, (uint32_t)v);
    wb_u32(b, (uint32_t)(v >> 32));
}

static void wb_str(wbuf *b, const char *s, size_t n)
{
    wb_u64(b, n);
    wb_put(b, s, n);
}

struct gguf_writer {
    wbuf kv, ti;
    uint64_t n_kv, n_tensors, data_size, alignment;
};

gguf_writer *model__gw_new(void)
{
    gguf_writer *w = base_xcalloc(1, sizeof *w);
    w->alignment = 32;
    return w;
}

void model__gw_free(gguf_writer *w)
{
    if (!w) return;
    free(w->kv.p);
    free(w->ti.p);
    free(w);
}

static void gw_key(gguf_writer *w, const char *key, uint32_t type)
{
    wb_str(&w->kv, key, strlen(key));
    wb_u32(&w->kv, type);
    w->n_kv++;
}

void model__gw_u32(gguf_writer *w, const char *key, uint32_t v)
{
    gw_key(w, key, GGUF_U32);
    wb_u32(&w->kv, v);
}

void model__gw_i32(gguf_writer *w, const char *key, int32_t v)
{
    gw_key(w, key, GGUF_I32);
    wb_u32(&w->kv, (uint32_t)v);
}

void model__gw_f32(gguf_writer *w, const char *key, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    gw_key(w, key, GGUF_F32);
    wb_u32(&w->kv, u);
}

void model__gw_bool(gguf_writer *w, const char *key, bool v)
{
    uint8_t b = v;
    gw_key(w, key, GGUF_BOOL);
    wb_put(&w->kv, &b, 1);
}

void model__gw_str(gguf_writer *w, const char *key, const char *v)
{
    gw_key(w, key, GGUF_STRING);
    wb_str(&w->kv, v, strlen(v));
}

void model__gw_str_arr(gguf_writer *w, const char *key, const char *const *v, const size_t *lens,
                       size_t n)
{
    gw_key(w, key, GGUF_ARRAY);
    wb_u32(&w->kv, GGUF_STRING);
    wb_u64(&w->kv, n);
    for (size_t i = 0; i < n; i++) wb_str(&w->kv, v[i], lens ? lens[i] : strlen(v[i]));
}

void model__gw_i32_arr(gguf_writer *w, const char *key, const int32_t *v, size_t n)
{
    gw_key(w, key, GGUF_ARRAY);
    wb_u32(&w->kv, GGUF_I32);
    wb_u64(&w->kv, n);
    for (size_t i = 0; i < n; i++) wb_u32(&w->kv, (uint32_t)v[i]);
}

void model__gw_raw(gguf_writer *w, const gguf_kv *kv)
{
    wb_str(&w->kv, kv->key.p, kv->key.n);
    wb_u32(&w->kv, kv->type);
    wb_put(&w->kv, kv->raw, kv->raw_len);
    w->n_kv++;
}

void model__gw_append(gguf_writer *dst, const gguf_writer *src)
{
    wb_put(&dst->kv, src->kv.p, src->kv.n);
    dst->n_kv += src->n_kv;
}

void model__gw_tensor(gguf_writer *w, const char *name, int type, int n_dims, const int64_t ne[4])
{
    wb_str(&w->ti, name, strlen(name));
    wb_u32(&w->ti, (uint32_t)n_dims);
    int64_t nel = 1;
    for (int d = 0; d < n_dims; d++) {
        wb_u64(&w->ti, (uint64_t)ne[d]);
        nel *= ne[d];
    }
    wb_u32(&w->ti, (uint32_t)type);
    wb_u64(&w->ti, w->data_size);
    const type_traits *tt = model__type(type);
    uint64_t bytes = (uint64_t)(nel / tt->block) * tt->bytes;
    w->data_size += (bytes + w->alignment - 1) / w->alignment * w->alignment;
    w->n_tensors++;
}

static int write_all(FILE *f, const void *p, size_t n, model_err *err)
{
    if (n && fwrite(p, 1, n, f) != n) return model__fail(err, "write failed: %s", strerror(errno));
    return 0;
}

int model__gw_write_header(gguf_writer *w, FILE *f, model_err *err)
{
    wbuf h = {0};
    wb_put(&h, "GGUF", 4);
    wb_u32(&h, 3);
    wb_u64(&h, w->n_tensors);
    wb_u64(&h, w->n_kv);
    int r = write_all(f, h.p, h.n, err) || write_all(f, w->kv.p, w->kv.n, err) ||
            write_all(f, w->ti.p, w->ti.n, err);
    uint64_t total = h.n + w->kv.n + w->ti.n;
    free(h.p);
    if (r) return -1;
    return model__gw_pad(w, f, total, err);
}

int model__gw_pad(gguf_writer *w, FILE *f, uint64_t written, model_err *err)
{
    static const uint8_t zeros[64];
    uint64_t pad = (w->alignment - written % w->alignment) % w->alignment;
    return write_all(f, zeros, pad, err);
}
