/* tests/test_base.c — the shared base below every module: the UTF-8 decoder (every code point
 * round-trips; each kind of invalid sequence is refused), the stream hold-back, allocation. */
#include "base/base.h"
#include "tests/check.h"

#include <stdlib.h>
#include <string.h>

static void round_trip(void)
{
    size_t bad = 0, n = 0;
    for (uint32_t cp = 0; cp <= 0x10ffff; cp++) {
        if (cp >= 0xd800 && cp < 0xe000) continue;
        char b[4];
        uint32_t back = 0;
        size_t k = base_utf8_encode(cp, b);
        if (base_utf8_decode(b, k, &back) != k || back != cp || base_utf8_decode(b, k - 1, NULL))
            bad++;
        n++;
    }
    CHECK(bad == 0 && n == 0x110000 - 0x800, "%zu of %zu code points fail to round-trip", bad, n);
}

static void refused(void)
{
    static const struct {
        const char *s;
        const char *why;
    } cases[] = {
        {"\x80", "a continuation byte alone"},   {"\xc0\x80", "overlong NUL"},
        {"\xc1\xbf", "overlong 2-byte"},         {"\xe0\x9f\xbf", "overlong 3-byte"},
        {"\xf0\x8f\xbf\xbf", "overlong 4-byte"}, {"\xed\xa0\x80", "a high surrogate"},
        {"\xed\xbf\xbf", "a low surrogate"},     {"\xf4\x90\x80\x80", "above U+10FFFF"},
        {"\xf5\x80\x80\x80", "lead byte F5"},    {"\xff", "byte FF"},
        {"\xe2\x82", "a sequence cut short"},    {"\xe2\x28\xa1", "a non-continuation byte"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        CHECK(base_utf8_decode(cases[i].s, strlen(cases[i].s), NULL) == 0, "refuses %s",
              cases[i].why);
    CHECK(base_utf8_decode("\xed\x9f\xbf", 3, NULL) == 3 &&
              base_utf8_decode("\xf4\x8f\xbf\xbf", 4, NULL) == 4,
          "the code points next to the refused ranges are accepted");
    const char *mixed = "ok \xe2\x82\xac then \xc0\x80";
    CHECK(base_utf8_valid_prefix(mixed, strlen(mixed)) == strlen(mixed) - 2,
          "the valid prefix stops at the first invalid byte");
}

static void streaming(void)
{
    const char *euro = "a\xe2\x82\xac"; /* a € */
    CHECK(base_utf8_complete_prefix(euro, 4) == 4, "complete sequence emitted");
    CHECK(base_utf8_complete_prefix(euro, 3) == 1, "2 of 3 bytes held back");
    CHECK(base_utf8_complete_prefix(euro, 2) == 1, "1 of 3 bytes held back");
    const char *emoji = "\xf0\x9f\x98\x80";
    CHECK(base_utf8_complete_prefix(emoji, 3) == 0 && base_utf8_complete_prefix(emoji, 4) == 4,
          "4-byte sequence");
    CHECK(base_utf8_complete_prefix("\x80\x80\x80\x80", 4) == 4,
          "stray continuation bytes are not held");
    CHECK(base_utf8_complete_prefix("ab\xff", 3) == 3, "invalid lead byte is not held");
    CHECK(base_utf8_complete_prefix("ab\xed\xa0", 4) == 4,
          "a surrogate's start is not held: it can never complete");
}

static void allocation(void)
{
    char *a = base_xmalloc(0), *b = base_xmalloc(0);
    CHECK(a && b && a != b, "a zero size still gives unique pointers");
    free(a), free(b);
    int *z = base_xcalloc(1000, sizeof *z);
    size_t nonzero = 0;
    for (int i = 0; i < 1000; i++) nonzero += z[i] != 0;
    CHECK(nonzero == 0, "xcalloc clears");
    z = base_xrealloc(z, 4000 * sizeof *z);
    z[3999] = 7;
    CHECK(z[0] == 0 && z[3999] == 7, "xrealloc keeps the contents");
    free(z);
    char *s = base_xstrdup("fimd");
    CHECK(strcmp(s, "fimd") == 0, "xstrdup copies");
    free(s);
    double t0 = base_now_ms(), t1 = base_now_ms();
    CHECK(t1 >= t0, "the clock does not go back");
}

int main(int argc, char **argv)
{
    static const char *const cases[] = {"round_trip", "refused", "streaming", "allocation"};
    if (!check_args(argc, argv, cases, CHECK_CASES(cases))) return 2;
    if (check_want("round_trip")) round_trip();
    if (check_want("refused")) refused();
    if (check_want("streaming")) streaming();
    if (check_want("allocation")) allocation();
    return check_done();
}
