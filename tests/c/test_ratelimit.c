/*
 * The rate limiter's C API, exercised directly (no Python).
 *
 * Usage: test_ratelimit DATA_DIR [bench]
 * Exits 0 when every check passes; prints each failure. With "bench", also
 * prints the cost of one check in a loop (build with -O2 for that).
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "r13.h"
#include "check.h"


#define EXPECT(cond)                                                            \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "%s:%d: %s: expected %s\n", __FILE__, __LINE__,     \
                    __func__, #cond);                                           \
            failures++;                                                         \
        }                                                                       \
    } while (0)

#define EXPECT_EQ(a, b)                                                         \
    do {                                                                        \
        long long a_ = (long long)(a), b_ = (long long)(b);                     \
        if (a_ != b_) {                                                         \
            fprintf(stderr, "%s:%d: %s: %s == %lld, expected %lld\n", __FILE__,  \
                    __LINE__, __func__, #a, a_, b_);                            \
            failures++;                                                         \
        }                                                                       \
    } while (0)

#define MS 1000000ULL
#define SEC 1000000000ULL

static const char *dir;

static uint64_t clock_now(void)
{
    uint64_t t = 0;
    if (r13_monotonic_ns(&t) != R13_OK) {
        fprintf(stderr, "monotonic clock unavailable\n");
        exit(2);
    }
    return t;
}

static int check(r13_limiter *lim, const char *key, uint32_t cap, uint64_t window_ms,
                 uint32_t cost, uint64_t now, r13_decision *d)
{
    return r13_limiter_check(lim, (const uint8_t *)key, strlen(key), cap, window_ms, cost,
                             now, d);
}

static void test_bad_arguments(void)
{
    r13_limiter lim;
    EXPECT_EQ(r13_limiter_open(&lim, dir, "bad", 63), R13_EINVAL);
    EXPECT_EQ(r13_limiter_open(&lim, dir, "bad", 100), R13_EINVAL);
    EXPECT_EQ(r13_limiter_open(&lim, dir, "bad", 32), R13_EINVAL);
    EXPECT_EQ(r13_limiter_open(&lim, dir, "bad", (1u << 24) * 2), R13_EINVAL);
    EXPECT_EQ(r13_limiter_open(&lim, dir, "Upper", 64), R13_EINVAL);
    EXPECT_EQ(r13_limiter_open(&lim, dir, "", 64), R13_EINVAL);
    EXPECT_EQ(r13_limiter_open(&lim, dir, "abcdefghijklmnopqrstuvw", 64), R13_EINVAL);
    EXPECT_EQ(r13_limiter_open(&lim, NULL, "bad", 64), R13_EINVAL);
    EXPECT_EQ(r13_limiter_open(NULL, dir, "bad", 64), R13_EINVAL);
    EXPECT_EQ(r13_limiter_open(&lim, "/nonexistent/r13", "bad", 64), R13_ESHM);
    EXPECT_EQ(r13_limiter_close(&lim), R13_OK); /* closing a failed open is safe */

    EXPECT_EQ(r13_limiter_open(&lim, dir, "args", 64), R13_OK);
    r13_decision d;
    uint64_t now = clock_now();
    EXPECT_EQ(check(&lim, "k", 0, 1000, 1, now, &d), R13_EINVAL);
    EXPECT_EQ(check(&lim, "k", 5, 1000, 0, now, &d), R13_EINVAL);
    EXPECT_EQ(check(&lim, "k", 5, 1000, 6, now, &d), R13_EINVAL);
    EXPECT_EQ(check(&lim, "k", 5, 0, 1, now, &d), R13_EINVAL);
    EXPECT_EQ(check(&lim, "k", 5, (1ULL << 32) + 1, 1, now, &d), R13_EINVAL);
    EXPECT_EQ(check(&lim, "k", 5, 1ULL << 32, 1, now, &d), R13_OK);
    EXPECT_EQ(check(&lim, "k", 2000000, 1, 1, now, &d), R13_EINVAL); /* T = 0 */
    EXPECT_EQ(r13_limiter_check(&lim, (const uint8_t *)"k", 0, 5, 1000, 1, now, &d),
              R13_EINVAL);
    uint8_t big[257];
    memset(big, 'a', sizeof big);
    EXPECT_EQ(r13_limiter_check(&lim, big, 257, 5, 1000, 1, now, &d), R13_EINVAL);
    EXPECT_EQ(r13_limiter_check(&lim, big, 256, 5, 1000, 1, now, &d), R13_OK);
    EXPECT_EQ(r13_limiter_check(&lim, NULL, 1, 5, 1000, 1, now, &d), R13_EINVAL);
    EXPECT_EQ(check(&lim, "k", 5, 1000, 1, now, NULL), R13_EINVAL);
    EXPECT_EQ(check(&lim, "k", 5, 1000, 1, UINT64_MAX, &d), R13_ECLOCK); /* past the range */
    uint32_t used, busy;
    EXPECT_EQ(r13_limiter_stats(&lim, now, NULL, &busy), R13_EINVAL);
    EXPECT_EQ(r13_limiter_stats(&lim, now, &used, &busy), R13_OK);
    EXPECT_EQ(r13_limiter_close(&lim), R13_OK);
    EXPECT_EQ(r13_limiter_close(&lim), R13_OK); /* twice is fine */
    EXPECT_EQ(check(&lim, "k", 5, 1000, 1, now, &d), R13_EINVAL);
    EXPECT_EQ(r13_limiter_reset(&lim, (const uint8_t *)"k", 1), R13_EINVAL);
}

static void test_burst_then_refill(void)
{
    r13_limiter lim;
    EXPECT_EQ(r13_limiter_open(&lim, dir, "burst", 64), R13_OK);
    uint64_t now = clock_now();
    const uint64_t t = 200 * MS; /* 5 per second */
    r13_decision d;
    for (uint32_t i = 0; i < 5; i++) {
        EXPECT_EQ(check(&lim, "ip", 5, 1000, 1, now, &d), R13_OK);
        EXPECT_EQ(d.allowed, 1);
        EXPECT_EQ(d.remaining, 4 - i);
        EXPECT_EQ(d.reset_ns, (i + 1) * t);
        EXPECT_EQ(d.retry_after_ns, 0);
    }
    EXPECT_EQ(check(&lim, "ip", 5, 1000, 1, now, &d), R13_OK);
    EXPECT_EQ(d.allowed, 0);
    EXPECT_EQ(d.remaining, 0);
    EXPECT_EQ(d.reset_ns, 5 * t);
    EXPECT_EQ(d.retry_after_ns, t);
    /* One T later exactly one more is admitted. */
    EXPECT_EQ(check(&lim, "ip", 5, 1000, 1, now + t - 1, &d), R13_OK);
    EXPECT_EQ(d.allowed, 0);
    EXPECT_EQ(d.retry_after_ns, 1);
    EXPECT_EQ(check(&lim, "ip", 5, 1000, 1, now + t, &d), R13_OK);
    EXPECT_EQ(d.allowed, 1);
    EXPECT_EQ(d.remaining, 0);
    /* cost > 1: needs three free tokens. */
    EXPECT_EQ(check(&lim, "ip", 5, 1000, 3, now + 3 * t, &d), R13_OK);
    EXPECT_EQ(d.allowed, 0);
    EXPECT_EQ(d.remaining, 2);
    EXPECT_EQ(d.retry_after_ns, t);
    EXPECT_EQ(check(&lim, "ip", 5, 1000, 3, now + 4 * t, &d), R13_OK);
    EXPECT_EQ(d.allowed, 1);
    EXPECT_EQ(d.remaining, 0);
    /* reset makes it full again. */
    EXPECT_EQ(r13_limiter_reset(&lim, (const uint8_t *)"ip", 2), R13_OK);
    EXPECT_EQ(check(&lim, "ip", 5, 1000, 5, now + 4 * t, &d), R13_OK);
    EXPECT_EQ(d.allowed, 1);
    EXPECT_EQ(r13_limiter_reset(&lim, (const uint8_t *)"absent", 6), R13_OK);
    r13_limiter_close(&lim);
}

static void test_shared_and_rebuilt(void)
{
    r13_limiter a, b;
    EXPECT_EQ(r13_limiter_open(&a, dir, "share", 128), R13_OK);
    EXPECT_EQ(r13_limiter_open(&b, dir, "share", 256), R13_OK);
    EXPECT_EQ(b.slots, 128); /* an open table keeps its own size */
    uint64_t now = clock_now();
    r13_decision d;
    EXPECT_EQ(check(&a, "x", 1, 1000, 1, now, &d), R13_OK);
    EXPECT_EQ(d.allowed, 1);
    EXPECT_EQ(check(&b, "x", 1, 1000, 1, now, &d), R13_OK);
    EXPECT_EQ(d.allowed, 0);
    r13_limiter_close(&a);
    r13_limiter_close(&b);
    /* Nobody has it open: the next open starts afresh, with its own size. */
    EXPECT_EQ(r13_limiter_open(&a, dir, "share", 256), R13_OK);
    EXPECT_EQ(a.slots, 256);
    EXPECT_EQ(check(&a, "x", 1, 1000, 1, now, &d), R13_OK);
    EXPECT_EQ(d.allowed, 1);
    r13_limiter_close(&a);
}

static void test_full_table(void)
{
    r13_limiter lim;
    EXPECT_EQ(r13_limiter_open(&lim, dir, "full", 64), R13_OK);
    uint64_t now = clock_now();
    r13_decision d;
    char key[32];
    int admitted = 0, full = 0;
    /* capacity 1 over 10 s: each admitted key stays busy for 10 s. */
    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof key, "busy-%d", i);
        int rc = check(&lim, key, 1, 10000, 1, now + (uint64_t)i, &d);
        if (rc == R13_OK) {
            EXPECT_EQ(d.allowed, 1);
            admitted++;
        } else {
            EXPECT_EQ(rc, R13_EFULL);
            EXPECT_EQ(d.allowed, 0);
            EXPECT_EQ(d.full, 1);
            EXPECT_EQ(d.remaining, 0);
            EXPECT(d.retry_after_ns > 0 && d.retry_after_ns <= 10 * SEC);
            full++;
        }
    }
    EXPECT_EQ(admitted, 64);
    EXPECT_EQ(full, 136);
    uint32_t used = 0, busy = 0;
    EXPECT_EQ(r13_limiter_stats(&lim, now + 200, &used, &busy), R13_OK);
    EXPECT_EQ(used, 64);
    EXPECT_EQ(busy, 64);
    /* A new key: refused until the soonest slot of its probe window goes idle
     * (busy-i goes idle at now + i + 10 s). */
    EXPECT_EQ(check(&lim, "newcomer", 5, 1000, 1, now + 200, &d), R13_EFULL);
    EXPECT(d.retry_after_ns >= 10 * SEC - 200 && d.retry_after_ns < 10 * SEC);
    uint64_t idle_at = now + 200 + d.retry_after_ns;
    EXPECT_EQ(check(&lim, "newcomer", 5, 1000, 1, idle_at - 1, &d), R13_EFULL);
    /* Existing keys keep working (and are still limited). */
    EXPECT_EQ(check(&lim, "busy-3", 1, 10000, 1, now + 200, &d), R13_OK);
    EXPECT_EQ(d.allowed, 0);
    /* Once that slot is idle, the newcomer evicts it. */
    EXPECT_EQ(check(&lim, "newcomer", 5, 1000, 1, idle_at, &d), R13_OK);
    EXPECT_EQ(d.allowed, 1);
    EXPECT_EQ(d.remaining, 4);
    EXPECT_EQ(check(&lim, "newcomer", 5, 1000, 1, idle_at, &d), R13_OK);
    EXPECT_EQ(d.remaining, 3);
    EXPECT_EQ(r13_limiter_stats(&lim, idle_at, &used, &busy), R13_OK);
    EXPECT_EQ(used, 64);
    /* busy-0 lost its slot: it comes back as a fresh bucket (if a slot frees). */
    EXPECT_EQ(check(&lim, "busy-0", 1, 10000, 1, now + 20 * SEC, &d), R13_OK);
    EXPECT_EQ(d.allowed, 1);
    r13_limiter_close(&lim);
}

/* A limit made once decides exactly as r13_limiter_check with the same arguments. */
static void test_limit_handle(void)
{
    r13_limiter lim;
    r13_limit lt;
    r13_decision d, e;
    EXPECT_EQ(r13_limiter_open(&lim, dir, "handle", 64), R13_OK);
    /* The same argument checks as r13_limiter_check, once. */
    EXPECT_EQ(r13_limit_init(&lt, &lim, 0, 1000, 1), R13_EINVAL);
    EXPECT_EQ(r13_limit_init(&lt, &lim, 5, 1000, 6), R13_EINVAL);
    EXPECT_EQ(r13_limit_init(&lt, &lim, 5, 1000, 0), R13_EINVAL);
    EXPECT_EQ(r13_limit_init(&lt, &lim, 5, 0, 1), R13_EINVAL);
    EXPECT_EQ(r13_limit_init(&lt, &lim, 5, (1ULL << 32) + 1, 1), R13_EINVAL);
    EXPECT_EQ(r13_limit_init(&lt, &lim, 2000000, 1, 1), R13_EINVAL); /* T would be 0 */
    EXPECT_EQ(r13_limit_init(&lt, NULL, 5, 1000, 1), R13_EINVAL);
    EXPECT_EQ(r13_limit_init(NULL, &lim, 5, 1000, 1), R13_EINVAL);
    /* A limit whose init failed refuses every check. */
    uint64_t now = clock_now();
    EXPECT_EQ(r13_limit_check(&lt, (const uint8_t *)"k", 1, now, &d), R13_EINVAL);
    EXPECT_EQ(r13_limit_check(NULL, (const uint8_t *)"k", 1, now, &d), R13_EINVAL);

    EXPECT_EQ(r13_limit_init(&lt, &lim, 5, 1000, 2), R13_OK);
    /* Keys are checked on every call: 1..256 bytes, not NULL. */
    uint8_t big[257];
    memset(big, 'x', sizeof big);
    EXPECT_EQ(r13_limit_check(&lt, (const uint8_t *)"k", 0, now, &d), R13_EINVAL);
    EXPECT_EQ(r13_limit_check(&lt, big, 257, now, &d), R13_EINVAL);
    EXPECT_EQ(r13_limit_check(&lt, NULL, 1, now, &d), R13_EINVAL);
    EXPECT_EQ(r13_limit_check(&lt, big, 256, now, NULL), R13_EINVAL);
    EXPECT_EQ(r13_limit_check(&lt, big, 256, now, &d), R13_OK);
    /* Decisions identical to the eight-argument call on a twin key. */
    for (int i = 0; i < 6; i++) {
        uint64_t t = now + (uint64_t)i * 50 * MS;
        int rc1 = r13_limit_check(&lt, (const uint8_t *)"twin-a", 6, t, &d);
        int rc2 = check(&lim, "twin-b", 5, 1000, 2, t, &e);
        EXPECT_EQ(rc1, R13_OK);
        EXPECT_EQ(rc2, R13_OK);
        EXPECT_EQ(d.allowed, e.allowed);
        EXPECT_EQ(d.full, 0);
        EXPECT_EQ(d.remaining, e.remaining);
        EXPECT_EQ(d.reset_ns, e.reset_ns);
        EXPECT_EQ(d.retry_after_ns, e.retry_after_ns);
    }
    /* The limit and the plain call share the key's bucket. */
    EXPECT_EQ(r13_limit_check(&lt, (const uint8_t *)"shared", 6, now, &d), R13_OK);
    EXPECT_EQ(d.remaining, 3);
    EXPECT_EQ(check(&lim, "shared", 5, 1000, 1, now, &e), R13_OK);
    EXPECT_EQ(e.remaining, 2);
    /* Clock 0 reads the monotonic clock. */
    EXPECT_EQ(r13_limit_check(&lt, (const uint8_t *)"clock", 5, 0, &d), R13_OK);
    EXPECT_EQ(d.allowed, 1);
    /* Once the limiter is closed, its limits refuse to run. */
    r13_limiter_close(&lim);
    EXPECT_EQ(r13_limit_check(&lt, (const uint8_t *)"k", 1, now, &d), R13_EINVAL);
}

/* The packed decisions: the same buckets and values as r13_limit_check. */
static void test_limit_take_packed(void)
{
    r13_limiter lim;
    r13_limit ip, key, bad;
    r13_decision d;
    EXPECT_EQ(r13_limiter_open(&lim, dir, "packed", 64), R13_OK);
    EXPECT_EQ(r13_limit_init(&ip, &lim, 10, 1000, 1), R13_OK);
    EXPECT_EQ(r13_limit_init(&key, &lim, 3, 1000, 1), R13_OK);
    EXPECT_EQ(r13_limit_init(&bad, &lim, 0, 1000, 1), R13_EINVAL);
    uint64_t now = clock_now();
    uint8_t big[257];
    memset(big, 'x', sizeof big);
    EXPECT_EQ(r13_limit_take(&ip, big, 257, now), R13_EINVAL);
    EXPECT_EQ(r13_limit_take(&ip, NULL, 1, now), R13_EINVAL);
    EXPECT_EQ(r13_limit_take(&bad, big, 1, now), R13_EINVAL);
    /* allowed, 9 left, full again in 100 ms -> 1 s */
    int64_t v = r13_limit_take(&ip, (const uint8_t *)"ip:a", 4, now);
    EXPECT_EQ(v, R13_PACK_ALLOWED | (INT64_C(1) << R13_PACK_RESET_SHIFT) |
                     (INT64_C(9) << R13_PACK_COUNT_SHIFT));
    EXPECT_EQ(r13_limit_check(&ip, (const uint8_t *)"ip:a", 4, now, &d), R13_OK);
    EXPECT_EQ(d.remaining, 8);
    /* Two limits: the key's is tighter (2 of 3 left vs 7 of 10): marked second. */
    v = r13_limit_take2(&ip, (const uint8_t *)"ip:a", 4, &key, (const uint8_t *)"k", 1, now);
    EXPECT(v & R13_PACK_SECOND);
    EXPECT_EQ((v >> R13_PACK_COUNT_SHIFT) & 0xFFFFFFFF, 2);
    /* A bad second limit or key counts nothing. */
    EXPECT_EQ(r13_limit_take2(&ip, (const uint8_t *)"ip:a", 4, &bad, (const uint8_t *)"k", 1,
                              now), R13_EINVAL);
    EXPECT_EQ(r13_limit_take2(&ip, (const uint8_t *)"ip:a", 4, &key, big, 257, now),
              R13_EINVAL);
    EXPECT_EQ(r13_limit_take2(&ip, (const uint8_t *)"ip:a", 4, NULL, big, 1, now), R13_EINVAL);
    EXPECT_EQ(r13_limit_check(&ip, (const uint8_t *)"ip:a", 4, now, &d), R13_OK);
    EXPECT_EQ(d.remaining, 6);
    /* The key runs out: refused, retry in 333 ms -> 1 s, marked second. */
    EXPECT(r13_limit_take2(&ip, (const uint8_t *)"ip:a", 4, &key, (const uint8_t *)"k", 1,
                           now) & R13_PACK_ALLOWED);
    EXPECT(r13_limit_take2(&ip, (const uint8_t *)"ip:a", 4, &key, (const uint8_t *)"k", 1,
                           now) & R13_PACK_ALLOWED);
    v = r13_limit_take2(&ip, (const uint8_t *)"ip:a", 4, &key, (const uint8_t *)"k", 1, now);
    EXPECT(!(v & R13_PACK_ALLOWED) && (v & R13_PACK_SECOND));
    EXPECT_EQ((v >> R13_PACK_COUNT_SHIFT) & 0xFFFFFFFF, 1);
    /* Clock 0 reads the clock once for both. */
    EXPECT(r13_limit_take2(&ip, (const uint8_t *)"ip:b", 4, &key, (const uint8_t *)"k2", 2,
                           0) & R13_PACK_ALLOWED);
    r13_limiter_close(&lim);
    EXPECT_EQ(r13_limit_take(&ip, (const uint8_t *)"k", 1, now), R13_EINVAL);
}

/* Several processes, one key, one frozen instant: exactly `capacity` admitted. */
static void test_fork_contention_exact(void)
{
    enum { PROCS = 4, CALLS = 20000, CAPACITY = 10000 };
    r13_limiter lim;
    EXPECT_EQ(r13_limiter_open(&lim, dir, "fork", 1024), R13_OK);
    uint64_t *counts = mmap(NULL, PROCS * sizeof(uint64_t), PROT_READ | PROT_WRITE,
                            MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    EXPECT(counts != MAP_FAILED);
    if (counts == MAP_FAILED)
        return;
    uint64_t now = clock_now();
    pid_t pids[PROCS];
    for (int p = 0; p < PROCS; p++) {
        pids[p] = fork();
        if (pids[p] == 0) {
            /* Each child opens its own handle, as a gunicorn worker would. */
            r13_limiter mine;
            if (r13_limiter_open(&mine, dir, "fork", 1024) != R13_OK)
                _exit(3);
            uint64_t n = 0;
            r13_decision d;
            char key[16];
            for (int i = 0; i < CALLS; i++) {
                if (check(&mine, "hot", CAPACITY, 60000, 1, now, &d) != R13_OK)
                    _exit(4);
                n += (uint64_t)d.allowed;
                /* Interleave fresh keys so the slow path races the hot one;
                 * they outnumber the slots, so later ones find it full. */
                if (i % 64 == 0) {
                    snprintf(key, sizeof key, "c%d-%d", p % 10, i);
                    int rc = check(&mine, key, 3, 60000, 1, now, &d);
                    if (rc != R13_OK && rc != R13_EFULL)
                        _exit(5);
                }
            }
            counts[p] = n;
            r13_limiter_close(&mine);
            _exit(0);
        }
        EXPECT(pids[p] > 0);
    }
    uint64_t total = 0;
    for (int p = 0; p < PROCS; p++) {
        int status = 0;
        if (pids[p] > 0)
            waitpid(pids[p], &status, 0);
        EXPECT(WIFEXITED(status));
        EXPECT_EQ(WEXITSTATUS(status), 0);
        total += counts[p];
    }
    EXPECT_EQ(total, CAPACITY);
    munmap(counts, PROCS * sizeof(uint64_t));
    r13_limiter_close(&lim);
}

static void bench(void)
{
    r13_limiter lim;
    if (r13_limiter_open(&lim, dir, "bench", 1u << 20) != R13_OK) {
        failures++;
        return;
    }
    enum { N = 5000000 };
    r13_decision d;
    uint64_t sink = 0;
    uint64_t t0 = clock_now();
    for (int i = 0; i < N; i++) {
        r13_limiter_check(&lim, (const uint8_t *)"203.0.113.7", 11, 1000000000u, 1000, 1, 0,
                          &d);
        sink += (uint64_t)d.allowed;
    }
    uint64_t t1 = clock_now();
    char key[24];
    uint64_t t2 = clock_now();
    for (int i = 0; i < 500000; i++) {
        int n = snprintf(key, sizeof key, "cold-%d", i);
        r13_limiter_check(&lim, (const uint8_t *)key, (size_t)n, 100, 1000, 1, 0, &d);
        sink += (uint64_t)d.allowed;
    }
    uint64_t t3 = clock_now();
    printf("bench: hot key %.1f ns/check, cold key %.1f ns/check (incl. snprintf) [%" PRIu64
           "]\n",
           (double)(t1 - t0) / N, (double)(t3 - t2) / 500000, sink);
    r13_limiter_close(&lim);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s DATA_DIR [bench]\n", argv[0]);
        return 2;
    }
    dir = argv[1];
    test_bad_arguments();
    test_burst_then_refill();
    test_shared_and_rebuilt();
    test_full_table();
    test_limit_handle();
    test_limit_take_packed();
    test_fork_contention_exact();
    if (argc > 2 && strcmp(argv[2], "bench") == 0)
        bench();
    if (failures) {
        fprintf(stderr, "%d failure(s)\n", failures);
        return 1;
    }
    printf("test_ratelimit: all passed\n");
    return 0;
}
