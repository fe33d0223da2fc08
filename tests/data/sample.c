/* A small C file for `make demo`: the cursor goes into the empty loop body of sum_squares. */
#include <stdio.h>

static int square(int x)
{
    return x * x;
}

static int sum_squares(const int *values, int n)
{
    int total = 0;
    for (int i = 0; i < n; i++) {
        
    }
    return total;
}

int main(void)
{
    int v[] = {1, 2, 3, 4};
    printf("%d\n", sum_squares(v, 4));
    return 0;
}
