/* What the C-level benches share: a monotonic clock in ns and the ITERATIONS argument.
 * Each bench prints "name ns_per_op" lines that bench/cprogram.py reads. */
#ifndef R13_BENCH_H
#define R13_BENCH_H

#include <stdlib.h>
#include <time.h>

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* argv: PROGRAM DIR ITERATIONS; the iterations, or 0 when the arguments are wrong. */
static long bench_iterations(int argc, char **argv, long at_least)
{
    if (argc != 3)
        return 0;
    long n = atol(argv[2]);
    return n >= at_least ? n : 0;
}

#endif
