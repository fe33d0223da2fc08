#include <stdio.h>
#include <string.h>

static void print_total(const char *label, int total)
{
    printf("%s: %d\n", label, total
}
