/* tests/tjson.c — jsmn-based JSON reading for the tests (see tjson.h). */
#include <jsmn.h> /* the implementation lives in this file; tjson.h includes only the declarations */

#include "tests/tjson.h"
#include "tests/check.h"

#include <stdlib.h>
#include <string.h>

int tjson_load(tjson *j, const char *path)
{
    size_t len;
    memset(j, 0, sizeof *j);
    j->text = check_read(path, &len);
    if (!j->text) return -1;
    jsmn_parser p;
    jsmn_init(&p);
    int n = jsmn_parse(&p, j->text, len, NULL, 0);
    if (n <= 0) return -1;
    j->tok = calloc((size_t)n, sizeof *j->tok);
    jsmn_init(&p);
    j->n = jsmn_parse(&p, j->text, len, j->tok, (unsigned)n);
    return j->n > 0 ? 0 : -1;
}

void tjson_free(tjson *j)
{
    free(j->text);
    free(j->tok);
}

int tjson_skip(const tjson *j, int i)
{
    int end = j->tok[i].end;
    i++;
    while (i < j->n && j->tok[i].start < end) i++;
    return i;
}

int tjson_get(const tjson *j, int obj, const char *key)
{
    if (j->tok[obj].type != JSMN_OBJECT) return -1;
    int i = obj + 1;
    for (int k = 0; k < j->tok[obj].size; k++) {
        size_t kl = (size_t)(j->tok[i].end - j->tok[i].start);
        if (kl == strlen(key) && !memcmp(j->text + j->tok[i].start, key, kl)) return i + 1;
        i = tjson_skip(j, i + 1);
    }
    return -1;
}

int tjson_elem(const tjson *j, int arr, int k)
{
    if (j->tok[arr].type != JSMN_ARRAY || k >= j->tok[arr].size) return -1;
    int i = arr + 1;
    while (k-- > 0) i = tjson_skip(j, i);
    return i;
}

static int hex4(const char *s)
{
    int v = 0;
    for (int k = 0; k < 4; k++) {
        char c = s[k];
        v = v * 16 + (c >= 'a' ? c - 'a' + 10 : c >= 'A' ? c - 'A' + 10 : c - '0');
    }
    return v;
}

static size_t put_utf8(unsigned cp, char *o)
{
    if (cp < 0x80) return o[0] = (char)cp, 1;
    if (cp < 0x800) return o[0] = (char)(0xc0 | cp >> 6), o[1] = (char)(0x80 | (cp & 63)), 2;
    if (cp < 0x10000)
        return o[0] = (char)(0xe0 | cp >> 12), o[1] = (char)(0x80 | (cp >> 6 & 63)),
               o[2] = (char)(0x80 | (cp & 63)), 3;
    o[0] = (char)(0xf0 | cp >> 18), o[1] = (char)(0x80 | (cp >> 12 & 63));
    o[2] = (char)(0x80 | (cp >> 6 & 63)), o[3] = (char)(0x80 | (cp & 63));
    return 4;
}

char *tjson_str(const tjson *j, int i, size_t *len)
{
    const char *s = j->text + j->tok[i].start, *e = j->text + j->tok[i].end;
    char *out = malloc((size_t)(e - s) + 4), *o = out;
    while (s < e) {
        if (*s != '\\') {
            *o++ = *s++;
            continue;
        }
        s++;
        switch (*s) {
        case 'n':
            *o++ = '\n';
            break;
        case 't':
            *o++ = '\t';
            break;
        case 'r':
            *o++ = '\r';
            break;
        case 'b':
            *o++ = '\b';
            break;
        case 'f':
            *o++ = '\f';
            break;
        case 'u': {
            unsigned cp = (unsigned)hex4(s + 1);
            s += 4;
            if (cp >= 0xd800 && cp < 0xdc00 && s[1] == '\\' && s[2] == 'u') {
                cp = 0x10000 + ((cp - 0xd800) << 10) + ((unsigned)hex4(s + 3) - 0xdc00);
                s += 6;
            }
            o += put_utf8(cp, o);
            break;
        }
        default:
            *o++ = *s;
            break;
        }
        s++;
    }
    *o = 0;
    *len = (size_t)(o - out);
    return out;
}

long tjson_int(const tjson *j, int i)
{
    return strtol(j->text + j->tok[i].start, NULL, 10);
}

int tjson_ints(const tjson *j, int arr, int32_t **out, size_t *n)
{
    if (arr < 0 || j->tok[arr].type != JSMN_ARRAY) return -1;
    *n = (size_t)j->tok[arr].size;
    *out = malloc(sizeof(int32_t) * (*n + 1));
    for (size_t k = 0; k < *n; k++) (*out)[k] = (int32_t)tjson_int(j, arr + 1 + (int)k);
    return 0;
}
