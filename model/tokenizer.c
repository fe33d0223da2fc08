/* model/tokenizer.c — DeepSeek's byte-level BPE as llama.cpp runs it: special-token partition
 * (longest first), the six deepseek-llm pre-tokenizer rules applied in sequence, GPT-2 byte
 * mapping, rank-ordered merges (leftmost on ties), and detokenization back to bytes.
 * The rules are all of the shapes `[C]`, `[C]+`, `\s?[C]+` and `\s+$`, so they are matched by
 * hand over code points instead of through a regex engine. */
#define _GNU_SOURCE
#include "model_internal.h"
#include "base/base.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "unicode_numbers.h"

enum {
    TOK_NORMAL = 1,
    TOK_UNKNOWN = 2,
    TOK_CONTROL = 3,
    TOK_USER = 4,
    TOK_UNUSED = 5,
    TOK_BYTE = 6
};

/* open-addressing hash: token text -> id */
typedef struct text_map {
    int32_t *slots; /* id or -1 */
    uint32_t mask;
} text_map;

/* (left id, right id) -> merge rank and result */
typedef struct merge_entry {
    uint64_t key; /* left << 32 | right, 0 = empty (id pair (0,0) stored as key with +1 offset) */
    int32_t rank, result;
} merge_entry;

struct model_vocab {
    int n;
    char *text;          /* all token texts, NUL-separated */
    uint32_t *text_off;  /* [n+1] */
    char *bytes;         /* decoded bytes of each token */
    uint32_t *bytes_off; /* [n+1] */
    uint8_t *type;       /* [n] token types */
    text_map map;
    merge_entry *merges;
    uint32_t merge_mask;
    int32_t byte_token[256];
    int32_t *specials;            /* special ids, longest text first */
    uint64_t (*special_bytes)[4]; /* [n_specials]: the set of bytes each one's text holds */
    int n_specials;
    int32_t bos, eos;
    bool add_bos;
};

/* ---- hashing ---- */

static uint32_t hash_bytes(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static const char *tok_text(const model_vocab *v, int32_t id, size_t *len)
{
    *len = v->text_off[id + 1] - v->text_off[id] - 1;
    return v->text + v->text_off[id];
}

static int32_t lookup(const model_vocab *v, const char *s, size_t n)
{
    for (uint32_t i = hash_bytes(s, n) & v->map.mask;; i = (i + 1) & v->map.mask) {
        int32_t id = v->map.slots[i];
        if (id < 0) return -1;
        size_t len;
        const char *t = tok_text(v, id, &len);
        if (len == n && !memcmp(t, s, n)) return id;
    }
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

static const merge_entry *merge_find(const model_vocab *v, int32_t a, int32_t b)
{
    if (!v->merges || a < 0 || b < 0) return NULL;
    uint64_t key = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
    for (uint64_t i = mix64(key) & v->merge_mask;; i = (i + 1) & v->merge_mask) {
        if (v->merges[i].key == key) return &v->merges[i];
        if (!v->merges[i].key) return NULL;
    }
}

/* ---- byte-level mapping (GPT-2 bytes_to_unicode) ---- */

static uint32_t byte_cp(uint8_t b)
{
    if ((b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae) return b;
    /* the 68 remaining bytes map, in order, to U+0100.. */
    int k = 0;
    for (int c = 0; c < b; c++)
        if (!((c >= 0x21 && c <= 0x7e) || (c >= 0xa1 && c <= 0xac) || c >= 0xae)) k++;
    return 0x100 + (uint32_t)k;
}

int model__byte_to_utf8(uint8_t b, char out[4])
{
    return (int)base_utf8_encode(byte_cp(b), out);
}

/* Decode one code point as llama.cpp's unicode_cpt_from_utf8 does; invalid input gives U+FFFD
 * and consumes one byte. Laxer than base_utf8_decode on purpose (it takes overlong forms and
 * surrogates): the pre-tokenizer must split any input exactly as llama.cpp does. */
static uint32_t utf8_next(const uint8_t *s, size_t n, size_t *i)
{
    uint8_t c = s[*i];
    int len = !(c & 0x80)   ? 1
              : !(c & 0x40) ? 0
              : !(c & 0x20) ? 2
              : !(c & 0x10) ? 3
              : !(c & 0x08) ? 4
                            : 0;
    if (len == 1) {
        (*i)++;
        return c;
    }
    bool ok = len > 0 && *i + (size_t)len <= n;
    for (int k = 1; ok && k < len; k++) ok = (s[*i + (size_t)k] & 0xc0) == 0x80;
    if (!ok) {
        (*i)++;
        return 0xfffd;
    }
    uint32_t cp = c & (0x7f >> len);
    for (int k = 1; k < len; k++) cp = cp << 6 | (s[*i + (size_t)k] & 63);
    *i += (size_t)len;
    return cp;
}

/* ---- vocab loading ---- */

static int load_tokens(model_vocab *v, const model_gguf *g, model_err *err)
{
    const gguf_kv *kv = model__gguf_find(g, "tokenizer.ggml.tokens");
    if (!kv || kv->type != GGUF_ARRAY || kv->arr_type != GGUF_STRING || kv->arr_n == 0)
        return model__fail(err, "%s: no tokenizer.ggml.tokens string array", g->path);
    if (kv->arr_n > 1u << 24)
        return model__fail(err, "%s: %llu tokens is more than fimd accepts", g->path,
                           (unsigned long long)kv->arr_n);
    v->n = (int)kv->arr_n;
    v->text = malloc(kv->raw_len);
    v->bytes = malloc(kv->raw_len);
    v->text_off = malloc(sizeof(uint32_t) * (size_t)(v->n + 1));
    v->bytes_off = malloc(sizeof(uint32_t) * (size_t)(v->n + 1));
    v->type = malloc((size_t)v->n);
    if (!v->text || !v->bytes || !v->text_off || !v->bytes_off || !v->type)
        return model__fail(err, "out of memory");
    const uint8_t *pos = kv->raw + 12;
    uint32_t to = 0;
    for (int i = 0; i < v->n; i++) {
        gguf_str s = model__gguf_arr_next_str(&pos);
        v->text_off[i] = to;
        memcpy(v->text + to, s.p, s.n);
        to += (uint32_t)s.n;
        v->text[to++] = 0;
        v->type[i] = TOK_NORMAL;
    }
    v->text_off[v->n] = to;
    const gguf_kv *tt = model__gguf_find(g, "tokenizer.ggml.token_type");
    if (tt) {
        if (tt->type != GGUF_ARRAY || tt->arr_n != (uint64_t)v->n ||
            (tt->arr_type != GGUF_I32 && tt->arr_type != GGUF_U32))
            return model__fail(err, "%s: tokenizer.ggml.token_type should be %d integers", g->path,
                               v->n);
        for (int i = 0; i < v->n; i++) v->type[i] = tt->raw[12 + 4 * i];
    }
    return 0;
}

/* Decoded bytes: byte-level mapping undone for normal tokens; special tokens keep their text. */
static void decode_tokens(model_vocab *v)
{
    uint32_t inv[0x144];
    for (int b = 0; b < 256; b++)
        inv[byte_cp((uint8_t)b) < 0x144 ? byte_cp((uint8_t)b) : 0] = (uint32_t)b;
    uint32_t bo = 0;
    for (int id = 0; id < v->n; id++) {
        size_t len;
        const uint8_t *s = (const uint8_t *)tok_text(v, id, &len);
        v->bytes_off[id] = bo;
        bool raw =
            v->type[id] == TOK_CONTROL || v->type[id] == TOK_USER || v->type[id] == TOK_UNKNOWN;
        for (size_t i = 0; i < len;) {
            size_t start = i;
            uint32_t cp = utf8_next(s, len, &i);
            if (!raw && cp < 0x144 && byte_cp((uint8_t)inv[cp]) == cp) {
                v->bytes[bo++] = (char)inv[cp];
            } else {
                memcpy(v->bytes + bo, s + start, i - start);
                bo += (uint32_t)(i - start);
            }
        }
    }
    v->bytes_off[v->n] = bo;
}

static int build_map(model_vocab *v)
{
    uint32_t cap = 1;
    while (cap < (uint32_t)v->n * 2) cap <<= 1;
    v->map.slots = malloc(sizeof(int32_t) * cap);
    if (!v->map.slots) return -1;
    memset(v->map.slots, 0xff, sizeof(int32_t) * cap);
    v->map.mask = cap - 1;
    for (int id = 0; id < v->n; id++) {
        size_t len;
        const char *t = tok_text(v, id, &len);
        if (lookup(v, t, len) >= 0) continue; /* duplicate text: the first id wins */
        uint32_t i = hash_bytes(t, len) & v->map.mask;
        while (v->map.slots[i] >= 0) i = (i + 1) & v->map.mask;
        v->map.slots[i] = id;
    }
    return 0;
}

static int load_merges(model_vocab *v, const model_gguf *g, model_err *err)
{
    const gguf_kv *kv = model__gguf_find(g, "tokenizer.ggml.merges");
    if (!kv) return 0;
    if (kv->type != GGUF_ARRAY || kv->arr_type != GGUF_STRING)
        return model__fail(err, "%s: tokenizer.ggml.merges should be a string array", g->path);
    uint32_t cap = 2;
    while (cap < kv->arr_n * 2) cap <<= 1;
    v->merges = calloc(cap, sizeof *v->merges);
    if (!v->merges) return model__fail(err, "out of memory");
    v->merge_mask = cap - 1;
    const uint8_t *pos = kv->raw + 12;
    char buf[1024];
    for (uint64_t r = 0; r < kv->arr_n; r++) {
        gguf_str s = model__gguf_arr_next_str(&pos);
        const char *sp = s.n > 1 ? memchr(s.p + 1, ' ', s.n - 1) : NULL;
        if (!sp || s.n >= sizeof buf) continue;
        size_t la = (size_t)(sp - s.p), lb = s.n - la - 1;
        int32_t a = lookup(v, s.p, la), b = lookup(v, sp + 1, lb);
        memcpy(buf, s.p, la);
        memcpy(buf + la, sp + 1, lb);
        int32_t m = lookup(v, buf, la + lb);
        if (a < 0 || b < 0 || m < 0) continue;
        uint64_t key = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
        uint64_t i = mix64(key) & v->merge_mask;
        while (v->merges[i].key && v->merges[i].key != key) i = (i + 1) & v->merge_mask;
        if (v->merges[i].key) continue; /* a repeated merge keeps its first (lowest) rank */
        v->merges[i] = (merge_entry){key, (int32_t)r, m};
    }
    return 0;
}

static int cmp_special(const void *a, const void *b, void *ctx)
{
    const model_vocab *v = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    uint32_t lx = v->text_off[x + 1] - v->text_off[x], ly = v->text_off[y + 1] - v->text_off[y];
    if (lx != ly) return lx > ly ? -1 : 1;
    return x < y ? -1 : x > y;
}

static void sort_specials(model_vocab *v)
{
    v->specials = malloc(sizeof(int32_t) * (size_t)v->n);
    for (int id = 0; id < v->n; id++)
        if ((v->type[id] == TOK_CONTROL || v->type[id] == TOK_USER || v->type[id] == TOK_UNKNOWN) &&
            v->text_off[id + 1] - v->text_off[id] > 1)
            v->specials[v->n_specials++] = id;
    qsort_r(v->specials, (size_t)v->n_specials, sizeof(int32_t), cmp_special, v);
    v->special_bytes = base_xcalloc((size_t)v->n_specials + 1, sizeof *v->special_bytes);
    for (int s = 0; s < v->n_specials; s++) {
        size_t tl;
        const unsigned char *t = (const unsigned char *)tok_text(v, v->specials[s], &tl);
        for (size_t i = 0; i < tl; i++) v->special_bytes[s][t[i] >> 6] |= 1ull << (t[i] & 63);
    }
}

static int load_ids(model_vocab *v, const model_gguf *g, model_err *err)
{
    uint32_t u;
    int r;
    v->bos = v->eos = -1;
    if ((r = model__gguf_u32(g, "tokenizer.ggml.bos_token_id", &u, err)) < 0) return -1;
    if (r == 0) v->bos = (int32_t)u;
    if ((r = model__gguf_u32(g, "tokenizer.ggml.eos_token_id", &u, err)) < 0) return -1;
    if (r == 0) v->eos = (int32_t)u;
    if (v->bos >= v->n || v->eos >= v->n)
        return model__fail(err, "%s: BOS/EOS id outside the vocabulary of %d tokens", g->path,
                           v->n);
    v->add_bos = false;
    if (model__gguf_bool(g, "tokenizer.ggml.add_bos_token", &v->add_bos, err) < 0) return -1;
    if (v->bos < 0) v->add_bos = false;
    return 0;
}

model_vocab *model_vocab_load(const model_gguf *g, model_err *err)
{
    gguf_str s;
    int r = model__gguf_str(g, "tokenizer.ggml.model", &s, err);
    if (r < 0) return NULL;
    if (r == 1 || !model__gguf_str_eq(s, "gpt2")) {
        model__fail(err, "%s: tokenizer.ggml.model must be \"gpt2\" (byte-level BPE)", g->path);
        return NULL;
    }
    r = model__gguf_str(g, "tokenizer.ggml.pre", &s, err);
    if (r < 0) return NULL;
    if (r == 0 && !model__gguf_str_eq(s, "deepseek-llm") && !model__gguf_str_eq(s, "default")) {
        char pre[64];
        snprintf(pre, sizeof pre, "%.*s", (int)(s.n < 60 ? s.n : 60), s.p);
        model__fail(err, "%s: pre-tokenizer \"%s\" is not supported (fimd implements deepseek-llm)",
                    g->path, pre);
        return NULL;
    }
    model_vocab *v = calloc(1, sizeof *v);
    if (!v) {
        model__fail(err, "out of memory");
        return NULL;
    }
    if (load_tokens(v, g, err) || load_ids(v, g, err) || build_map(v) || load_merges(v, g, err)) {
        if (!err || !err->msg[0]) model__fail(err, "out of memory");
        model_vocab_free(v);
        return NULL;
    }
    decode_tokens(v);
    for (int b = 0; b < 256; b++) {
        char u[4];
        v->byte_token[b] = lookup(v, u, (size_t)model__byte_to_utf8((uint8_t)b, u));
    }
    sort_specials(v);
    return v;
}

void model_vocab_free(model_vocab *v)
{
    if (!v) return;
    free(v->text);
    free(v->text_off);
    free(v->bytes);
    free(v->bytes_off);
    free(v->type);
    free(v->map.slots);
    free(v->merges);
    free(v->specials);
    free(v->special_bytes);
    free(v);
}

int model_vocab_size(const model_vocab *v)
{
    return v->n;
}
int32_t model_vocab_bos(const model_vocab *v)
{
    return v->bos;
}
int32_t model_vocab_eos(const model_vocab *v)
{
    return v->eos;
}
bool model_vocab_add_bos(const model_vocab *v)
{
    return v->add_bos;
}

int model_vocab_fim(const model_vocab *v, model_fim_ids *out, model_err *err)
{
    static const char *names[3] = {"<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>"};
    int32_t ids[3];
    for (int i = 0; i < 3; i++) {
        ids[i] = lookup(v, names[i], strlen(names[i]));
        if (ids[i] < 0)
            return model__fail(err,
                               "this model's vocabulary has no %s token: it was not trained for "
                               "fill-in-the-middle (use a DeepSeek-Coder-V2 GGUF)",
                               names[i]);
    }
    out->begin = ids[0], out->hole = ids[1], out->end = ids[2];
    return 0;
}

bool model_token_is_control(const model_vocab *v, int32_t id)
{
    return id >= 0 && id < v->n && v->type[id] == TOK_CONTROL;
}

const char *model_token_text(const model_vocab *v, int32_t id)
{
    if (id < 0 || id >= v->n) return NULL;
    return v->text + v->text_off[id];
}

int model_token_bytes(const model_vocab *v, int32_t id, char *buf, size_t cap)
{
    if (id < 0 || id >= v->n) return -1;
    size_t n = v->bytes_off[id + 1] - v->bytes_off[id];
    memcpy(buf, v->bytes + v->bytes_off[id], n < cap ? n : cap);
    return (int)n;
}

/* ---- pre-tokenizer ---- */

static bool is_space(uint32_t cp)
{
    if (cp < 0x80) return (cp >= 9 && cp <= 13) || cp == 32;
    return cp == 0x85 || cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) ||
           cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

static bool in_ranges(uint32_t cp, const uint32_t (*r)[2], size_t n)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < r[mid][0])
            hi = mid;
        else if (cp > r[mid][1])
            lo = mid + 1;
        else
            return true;
    }
    return false;
}

/* regex 2's letter class (sorted ranges) */
static const uint32_t letters[][2] = {
    {0x41, 0x5A},       {0x61, 0x7A},       {0xB5, 0xB5},       {0xC0, 0xD6},
    {0xD8, 0xF6},       {0xF8, 0x1BA},      {0x1BC, 0x1BF},     {0x1C4, 0x293},
    {0x295, 0x2AF},     {0x370, 0x373},     {0x376, 0x377},     {0x37B, 0x37D},
    {0x37F, 0x37F},     {0x386, 0x386},     {0x388, 0x38A},     {0x38C, 0x38C},
    {0x38E, 0x3A1},     {0x3A3, 0x3F5},     {0x3F7, 0x481},     {0x48A, 0x52F},
    {0x531, 0x556},     {0x10A0, 0x10C5},   {0x13A0, 0x13F5},   {0x13F8, 0x13FD},
    {0x1C90, 0x1CBA},   {0x1CBD, 0x1CBF},   {0x1D00, 0x1D2B},   {0x1D6B, 0x1D77},
    {0x1D79, 0x1D9A},   {0x1E00, 0x1F15},   {0x1F18, 0x1F1D},   {0x1F20, 0x1F45},
    {0x1F48, 0x1F4D},   {0x1F50, 0x1F57},   {0x1F59, 0x1F59},   {0x1F5B, 0x1F5B},
    {0x1F5D, 0x1F5D},   {0x1F5F, 0x1F7D},   {0x1F80, 0x1FB4},   {0x1FB6, 0x1FBC},
    {0x1FBE, 0x1FBE},   {0x1FC2, 0x1FC4},   {0x1FC6, 0x1FCC},   {0x1FD0, 0x1FD3},
    {0x1FD6, 0x1FDB},   {0x1FE0, 0x1FEC},   {0x1FF2, 0x1FF4},   {0x1FF6, 0x1FFC},
    {0x2102, 0x2102},   {0x2107, 0x2107},   {0x210A, 0x2113},   {0x2115, 0x2115},
    {0x2119, 0x211D},   {0x2124, 0x2124},   {0x2126, 0x2126},   {0x2128, 0x2128},
    {0x212A, 0x212D},   {0x212F, 0x2134},   {0x2139, 0x2139},   {0x213C, 0x213F},
    {0x2145, 0x2149},   {0x214E, 0x214E},   {0x2183, 0x2184},   {0x2C00, 0x2C7B},
    {0x2C7E, 0x2CE4},   {0x2CEB, 0x2CEE},   {0x2CF2, 0x2CF3},   {0xA640, 0xA66D},
    {0xA680, 0xA69B},   {0xA722, 0xA76F},   {0xA771, 0xA787},   {0xA78B, 0xA78E},
    {0xAB70, 0xABBF},   {0xFB00, 0xFB06},   {0xFB13, 0xFB17},   {0xFF21, 0xFF3A},
    {0xFF41, 0xFF5A},   {0x10400, 0x1044F}, {0x104B0, 0x104D3}, {0x104D8, 0x104FB},
    {0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2}, {0x118A0, 0x118DF}, {0x1E900, 0x1E943},
};

/* regex 3's punctuation class (ASCII printable except digits and space, plus some wide forms) */
static const uint32_t puncts[][2] = {{0x21, 0x2F},     {0x3A, 0x7E},     {0x2018, 0x201F},
                                     {0x3000, 0x3002}, {0xFF01, 0xFF0F}, {0xFF1A, 0xFF5E}};

/* regex 5's CJK class: U+0800..U+9FA5 (two overlapping ranges in the regex) and Hangul */
static const uint32_t cjk[][2] = {{0x0800, 0x9FA5}, {0xAC00, 0xD7FF}};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

enum rule { R_NEWLINE, R_LETTERS, R_PUNCT, R_TRAILING_SPACE, R_CJK, R_NUMBER };

/* Class membership after llama.cpp's mapping of non-ASCII whitespace to U+000B. */
static bool in_class_searched(enum rule r, uint32_t cp)
{
    if (cp >= 0x80 && is_space(cp)) return false;
    switch (r) {
    case R_NEWLINE:
        return cp == '\r' || cp == '\n';
    case R_LETTERS:
        return in_ranges(cp, letters, N_OF(letters));
    case R_PUNCT:
        return in_ranges(cp, puncts, N_OF(puncts));
    case R_CJK:
        return in_ranges(cp, cjk, N_OF(cjk));
    case R_NUMBER:
        return cp < 0x80 ? (cp >= '0' && cp <= '9')
                         : in_ranges(cp, unicode_number_ranges, N_OF(unicode_number_ranges));
    default:
        return false;
    }
}

/* ASCII answers come from a table made once from the range searches: most code is ASCII, and six
 * rules each ask about every code point. Bit r of ascii_classes[cp] is in_class(r, cp). */
static uint8_t ascii_classes[128];
static pthread_once_t ascii_once = PTHREAD_ONCE_INIT;

static void ascii_classes_init(void)
{
    for (uint32_t cp = 0; cp < 128; cp++)
        for (int r = R_NEWLINE; r <= R_NUMBER; r++)
            if (in_class_searched((enum rule)r, cp)) ascii_classes[cp] |= (uint8_t)(1u << r);
}

static bool in_class(enum rule r, uint32_t cp)
{
    if (cp < 128) return ascii_classes[cp] >> r & 1;
    return in_class_searched(r, cp);
}

/* Leftmost match of rule r in cps[pos, end): sets [*ms, *me) and returns true. */
static bool find_match(enum rule r, const uint32_t *cps, size_t pos, size_t end, size_t *ms,
                       size_t *me)
{
    if (r == R_TRAILING_SPACE) {
        size_t t = end;
        while (t > pos && is_space(cps[t - 1])) t--;
        if (t == end) return false;
        *ms = t, *me = end;
        return true;
    }
    for (size_t i = pos; i < end; i++) {
        size_t start = i;
        bool opt_space = r == R_LETTERS || r == R_PUNCT;
        if (opt_space && is_space(cps[i]) && i + 1 < end && in_class(r, cps[i + 1]))
            i++;
        else if (!in_class(r, cps[i]))
            continue;
        size_t j = i + 1;
        if (r != R_NEWLINE)
            while (j < end && in_class(r, cps[j])) j++;
        *ms = start, *me = j;
        return true;
    }
    return false;
}

typedef struct span {
    size_t a, b;
} span;

typedef struct spans {
    span *v;
    size_t n, cap;
} spans;

static void spans_push(spans *s, size_t a, size_t b)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        span *p = base_xrealloc(s->v, s->cap * sizeof *p);
        s->v = p;
    }
    s->v[s->n++] = (span){a, b};
}

/* Apply the rules in sequence; matches and the gaps between them both become pieces. */
static spans split_pieces(const uint32_t *cps, size_t n)
{
    pthread_once(&ascii_once, ascii_classes_init);
    spans cur = {0}, next = {0};
    if (n) spans_push(&cur, 0, n);
    static const enum rule rules[] = {R_NEWLINE,        R_LETTERS, R_PUNCT,
                                      R_TRAILING_SPACE, R_CJK,     R_NUMBER};
    for (size_t r = 0; r < N_OF(rules); r++) {
        next.n = 0;
        for (size_t k = 0; k < cur.n; k++) {
            size_t pos = cur.v[k].a, end = cur.v[k].b, ms, me;
            while (pos < end && find_match(rules[r], cps, pos, end, &ms, &me)) {
                if (ms > pos) spans_push(&next, pos, ms);
                spans_push(&next, ms, me);
                pos = me;
            }
            if (pos < end) spans_push(&next, pos, end);
        }
        spans t = cur;
        cur = next;
        next = t;
    }
    free(next.v);
    return cur;
}

static uint32_t *decode_cps(const char *text, size_t len, size_t *n)
{
    uint32_t *cps = base_xmalloc(sizeof(uint32_t) * (len ? len : 1));
    size_t i = 0, k = 0;
    while (i < len) cps[k++] = utf8_next((const uint8_t *)text, len, &i);
    *n = k;
    return cps;
}

void model__pretokenize(const char *text, size_t len, void (*fn)(const char *, size_t, void *),
                        void *ctx)
{
    size_t n;
    uint32_t *cps = decode_cps(text, len, &n);
    spans p = split_pieces(cps, n);
    char *buf = malloc(4 * n + 1);
    for (size_t k = 0; k < p.n; k++) {
        size_t bl = 0;
        for (size_t i = p.v[k].a; i < p.v[k].b; i++) bl += base_utf8_encode(cps[i], buf + bl);
        fn(buf, bl, ctx);
    }
    free(buf);
    free(p.v);
    free(cps);
}

/* ---- BPE over one piece ---- */

typedef struct sym {
    int32_t id;
    int prev, next;
} sym;

typedef struct bigram {
    int32_t rank;
    int left, right;
    int32_t lid, rid;
} bigram;

typedef struct heap {
    bigram *v;
    size_t n, cap;
} heap;

static bool bg_before(const bigram *a, const bigram *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static void heap_push(heap *h, bigram g)
{
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 64;
        bigram *p = base_xrealloc(h->v, h->cap * sizeof *p);
        h->v = p;
    }
    size_t i = h->n++;
    while (i > 0 && bg_before(&g, &h->v[(i - 1) / 2])) {
        h->v[i] = h->v[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->v[i] = g;
}

static bigram heap_pop(heap *h)
{
    bigram top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && bg_before(&h->v[c + 1], &h->v[c])) c++;
        if (!bg_before(&h->v[c], &last)) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n) h->v[i] = last;
    return top;
}

typedef struct ids_buf {
    int32_t *v;
    size_t n, cap;
} ids_buf;

static void ids_push(ids_buf *b, int32_t id)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 256;
        int32_t *p = base_xrealloc(b->v, b->cap * sizeof *p);
        b->v = p;
    }
    b->v[b->n++] = id;
}

typedef struct bpe_ctx {
    const model_vocab *v;
    ids_buf *out;
    sym *syms;
    size_t cap;
    heap h;
} bpe_ctx;

static void add_bigram(bpe_ctx *c, int l, int r)
{
    if (l < 0 || r < 0) return;
    const merge_entry *m = merge_find(c->v, c->syms[l].id, c->syms[r].id);
    if (m) heap_push(&c->h, (bigram){m->rank, l, r, c->syms[l].id, c->syms[r].id});
}

static void bpe_piece(const char *s, size_t n, void *ctx)
{
    bpe_ctx *c = ctx;
    const model_vocab *v = c->v;
    if (n > c->cap) {
        c->cap = n * 2;
        free(c->syms);
        c->syms = base_xmalloc(c->cap * sizeof *c->syms);
    }
    for (size_t i = 0; i < n; i++)
        c->syms[i] = (sym){v->byte_token[(uint8_t)s[i]], (int)i - 1, i + 1 < n ? (int)i + 1 : -1};
    c->h.n = 0;
    for (size_t i = 1; i < n; i++) add_bigram(c, (int)i - 1, (int)i);
    while (c->h.n) {
        bigram g = heap_pop(&c->h);
        sym *L = &c->syms[g.left], *R = &c->syms[g.right];
        if (L->id < 0 || R->id < 0 || L->next != g.right || L->id != g.lid || R->id != g.rid)
            continue; /* outdated */
        L->id = merge_find(v, g.lid, g.rid)->result;
        L->next = R->next;
        if (R->next >= 0) c->syms[R->next].prev = g.left;
        R->id = -2; /* dead */
        add_bigram(c, L->prev, g.left);
        add_bigram(c, g.left, L->next);
    }
    for (int i = 0; i >= 0 && (size_t)i < n; i = c->syms[i].next)
        if (c->syms[i].id >= 0) ids_push(c->out, c->syms[i].id);
}

/* ---- special-token partition and the whole pipeline ---- */

typedef struct frag {
    size_t off, len;
    int32_t token; /* -1 = raw text */
} frag;

/* Which bytes, and for a longer text which pairs of adjacent bytes, a text holds. */
enum { PAIRS_MIN_LEN = 128 }; /* shorter texts: bytes only (clearing 8 KB would cost more) */
typedef struct byte_pairs {
    uint64_t byte[4];
    bool with_pairs;
    uint64_t pair[65536 / 64];
} byte_pairs;

static void byte_pairs_of(byte_pairs *p, const char *text, size_t len)
{
    memset(p->byte, 0, sizeof p->byte);
    for (size_t i = 0; i < len; i++) {
        unsigned char b = (unsigned char)text[i];
        p->byte[b >> 6] |= 1ull << (b & 63);
    }
    p->with_pairs = len >= PAIRS_MIN_LEN;
    if (!p->with_pairs) return;
    memset(p->pair, 0, sizeof p->pair);
    for (size_t i = 0; i + 1 < len; i++) {
        unsigned k = (unsigned)(unsigned char)text[i] << 8 | (unsigned char)text[i + 1];
        p->pair[k >> 6] |= 1ull << (k & 63);
    }
}

/* Whether the text may hold special s, whose text is t: every byte of it, and every pair. (The
 * DeepSeek vocabularies have 2,390 "[PAD...]" tokens: a line with brackets once searched for each.)
 */
static bool byte_pairs_may_hold(const byte_pairs *p, const uint64_t bytes[4], const char *t,
                                size_t tl)
{
    if ((bytes[0] & ~p->byte[0]) | (bytes[1] & ~p->byte[1]) | (bytes[2] & ~p->byte[2]) |
        (bytes[3] & ~p->byte[3]))
        return false;
    for (size_t i = 0; p->with_pairs && i + 1 < tl; i++) {
        unsigned k = (unsigned)(unsigned char)t[i] << 8 | (unsigned char)t[i + 1];
        if (!(p->pair[k >> 6] >> (k & 63) & 1)) return false;
    }
    return true;
}

int model_tokenize(const model_vocab *v, const char *text, size_t len, bool add_bos,
                   bool parse_special, int32_t **ids, size_t *n_ids, model_err *err)
{
    (void)err;
    frag *fr = base_xmalloc(sizeof *fr * 16);
    size_t nf = 0, capf = 16;
    if (len) fr[nf++] = (frag){0, len, -1};
    /* the byte pairs the text has: a special with a pair it lacks needs no search (searching a
     * long text for every special once took a third of building a prompt) */
    byte_pairs pairs;
    byte_pairs_of(&pairs, text, len);
    for (int s = 0; s < v->n_specials; s++) {
        int32_t id = v->specials[s];
        if (!parse_special && v->type[id] != TOK_USER) continue;
        size_t tl;
        const char *t = tok_text(v, id, &tl);
        if (!byte_pairs_may_hold(&pairs, v->special_bytes[s], t, tl)) continue;
        for (size_t k = 0; k < nf; k++) {
            if (fr[k].token >= 0 || fr[k].len < tl) continue;
            const char *hit = memmem(text + fr[k].off, fr[k].len, t, tl);
            if (!hit) continue;
            size_t at = (size_t)(hit - text);
            if (nf + 2 > capf) {
                capf *= 2;
                frag *p = base_xrealloc(fr, sizeof *fr * capf);
                fr = p;
            }
            frag rest = {at + tl, fr[k].off + fr[k].len - at - tl, -1};
            size_t ins = at > fr[k].off ? 1 : 0;
            memmove(&fr[k + 1 + ins + (rest.len ? 1 : 0)], &fr[k + 1], (nf - k - 1) * sizeof *fr);
            if (ins) fr[k].len = at - fr[k].off;
            fr[k + ins] = (frag){at, tl, id};
            if (rest.len) fr[k + ins + 1] = rest;
            nf += ins + (rest.len ? 1 : 0);
            k += ins; /* continue with the remainder, which follows the token */
        }
    }
    ids_buf out = {0};
    if (add_bos && v->add_bos) ids_push(&out, v->bos);
    bpe_ctx c = {v, &out, NULL, 0, {0}};
    for (size_t k = 0; k < nf; k++) {
        if (fr[k].token >= 0)
            ids_push(&out, fr[k].token);
        else
            model__pretokenize(text + fr[k].off, fr[k].len, bpe_piece, &c);
    }
    free(c.syms);
    free(c.h.v);
    free(fr);
    if (!out.v) ids_push(&out, 0), out.n = 0;
    *ids = out.v;
    *n_ids = out.n;
    return 0;
}
