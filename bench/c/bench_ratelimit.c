/* The limiter's cost at C level, no Python: a hot key (one slot, CAS; the clock read
 * included, as every server check reads it) and cold keys (a new slot each, under the
 * table's mutex; the snprintf that makes each key included). Built by
 * bench/bench_ratelimit.py.
 * Usage: bench_ratelimit DIR ITERATIONS  -> prints "name ns_per_op" lines. */
#include "r13.h"

#include <stdio.h>

#include "bench.h"

int main(int argc, char **argv)
{
    long n = bench_iterations(argc, argv, 10);
    if (n == 0)
        return 2;
    r13_limiter lim;
    if (r13_limiter_open(&lim, argv[1], "bench", 1u << 20) != R13_OK)
        return 1;
    r13_decision d;
    unsigned long sink = 0;

    double t0 = now_ns();
    for (long i = 0; i < n; i++) {
        if (r13_limiter_check(&lim, (const uint8_t *)"203.0.113.7", 11, 1000000000u, 1000, 1,
                              0, &d) != R13_OK)
            return 1;
        sink += (unsigned long)d.allowed;
    }
    double t1 = now_ns();
    printf("hot_key %.1f\n", (t1 - t0) / (double)n);

    /* Cold keys fill slots: at most a tenth of the run, well under the table's 2^20. */
    long m = n / 10 < 500000 ? n / 10 : 500000;
    char key[24];
    t0 = now_ns();
    for (long i = 0; i < m; i++) {
        int len = snprintf(key, sizeof key, "cold-%ld", i);
        if (r13_limiter_check(&lim, (const uint8_t *)key, (size_t)len, 100, 1000, 1, 0, &d) !=
            R13_OK)
            return 1;
        sink += (unsigned long)d.allowed;
    }
    t1 = now_ns();
    printf("cold_key %.1f\n", (t1 - t0) / (double)m);
    r13_limiter_close(&lim);
    return sink == 0xdeadbeef ? 3 : 0;
}
