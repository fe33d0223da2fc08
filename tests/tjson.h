/* tests/tjson.h — reading the fixtures' JSON files with jsmn: objects by key, strings with escapes
 * decoded, integer arrays. Tests only; the server's JSON layer lives in lsp/. */
#ifndef FIMD_TJSON_H
#define FIMD_TJSON_H

#define JSMN_HEADER
#include <jsmn.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tjson {
    char *text;
    jsmntok_t *tok;
    int n;
} tjson;

int tjson_load(tjson *j, const char *path); /* 0 on success */
void tjson_free(tjson *j);
int tjson_skip(const tjson *j, int i);                             /* index after the value at i */
int tjson_get(const tjson *j, int obj, const char *key);           /* value index or -1 */
int tjson_elem(const tjson *j, int arr, int k);                    /* k-th element index or -1 */
char *tjson_str(const tjson *j, int i, size_t *len);               /* decoded, malloc'd */
int tjson_ints(const tjson *j, int arr, int32_t **out, size_t *n); /* malloc'd */
long tjson_int(const tjson *j, int i);

#endif
