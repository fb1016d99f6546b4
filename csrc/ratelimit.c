/* The shared-memory rate limiter (to be written). */
#include "r13.h"

int r13_limiter_open(r13_limiter *lim, const char *dir, const char *name, uint32_t slots)
{
    return R13_EINVAL;
}
int r13_limiter_close(r13_limiter *lim) { return R13_EINVAL; }
int r13_limiter_check(r13_limiter *lim, const uint8_t *key, size_t keylen,
                      uint32_t capacity, uint64_t window_ms, uint32_t cost,
                      uint64_t now_ns, r13_decision *out)
{
    return R13_EINVAL;
}
int r13_limiter_reset(r13_limiter *lim, const uint8_t *key, size_t keylen) { return R13_EINVAL; }
int r13_limiter_stats(r13_limiter *lim, uint64_t now_ns, uint32_t *used, uint32_t *busy)
{
    return R13_EINVAL;
}
int r13_monotonic_ns(uint64_t *out) { return R13_EINVAL; }
