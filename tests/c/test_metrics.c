/* C-level tests of the shared metrics, built with -fsanitize=address,undefined.
 * Usage: test_metrics DIR   (an empty, writable directory). */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "r13.h"
#include "check.h"


static void test_bounds(void)
{
    uint64_t b[R13_METRICS_BUCKETS];
    CHECK(r13_metrics_bounds(b, 3) == R13_EBUFSZ);
    CHECK(r13_metrics_bounds(NULL, R13_METRICS_BUCKETS) == R13_EINVAL);
    CHECK(r13_metrics_bounds(b, R13_METRICS_BUCKETS) == R13_OK);
    for (int i = 1; i < R13_METRICS_BUCKETS; i++)
        CHECK(b[i] > b[i - 1]);
    CHECK(b[R13_METRICS_BUCKETS - 1] == UINT64_MAX);
}

static void test_routes_and_counts(const char *base)
{
    char dir[4096];
    subdir(dir, sizeof dir, base, "counts");
    r13_metrics a, b;
    CHECK(r13_metrics_open(&a, dir) == R13_OK);
    CHECK(r13_metrics_open(&b, dir) == R13_OK);
    CHECK(a.slot != b.slot);

    uint32_t id1 = 99, id2 = 99, id3 = 99;
    CHECK(r13_metrics_route(&a, "GET /-/ping", 11, &id1) == R13_OK);
    CHECK(r13_metrics_route(&b, "GET /-/ping", 11, &id2) == R13_OK);
    CHECK(r13_metrics_route(&b, "GET /x", 6, &id3) == R13_OK);
    CHECK(id1 == 1 && id2 == 1 && id3 == 2);
    CHECK(r13_metrics_route(&a, "", 0, &id1) == R13_ERANGE);
    CHECK(r13_metrics_route(&a, "a\0b", 3, &id1) == R13_ERANGE);
    char longname[R13_METRICS_ROUTE_NAME + 1];
    memset(longname, 'x', sizeof longname);
    CHECK(r13_metrics_route(&a, longname, R13_METRICS_ROUTE_NAME, &id1) == R13_ERANGE);

    char name[R13_METRICS_ROUTE_NAME];
    CHECK(r13_metrics_route_name(&a, 0, name, sizeof name) == R13_OK && strcmp(name, "*") == 0);
    CHECK(r13_metrics_route_name(&a, 2, name, sizeof name) == R13_OK &&
          strcmp(name, "GET /x") == 0);
    CHECK(r13_metrics_route_name(&a, 2, name, 4) == R13_EBUFSZ);
    CHECK(r13_metrics_route_name(&a, 3, name, sizeof name) == R13_ERANGE);

    CHECK(r13_metrics_request_start(&a) == R13_OK);
    CHECK(r13_metrics_request_start(&b) == R13_OK);
    r13_metrics_totals t;
    CHECK(r13_metrics_totals_read(&a, &t) == R13_OK);
    CHECK(t.gauges[0] == 2 && t.slots_used == 2 && t.routes == 3);
    CHECK(r13_metrics_request_end(&a, 1, 200, 10, 100, 30000) == R13_OK);     /* bucket 1 */
    CHECK(r13_metrics_request_end(&b, 2, 503, 0, 7, 2000000000ULL) == R13_OK); /* 2.5 s */
    CHECK(r13_metrics_request_end(&a, 1, 99, 0, 0, 0) == R13_ERANGE);
    CHECK(r13_metrics_request_end(&a, 1, 600, 0, 0, 0) == R13_ERANGE);
    CHECK(r13_metrics_request_end(&a, R13_METRICS_ROUTES, 200, 0, 0, 0) == R13_ERANGE);
    CHECK(r13_metrics_count(&a, 3, 5) == R13_OK);
    CHECK(r13_metrics_count(&a, R13_METRICS_EVENTS, 1) == R13_ERANGE);
    CHECK(r13_metrics_gauge_add(&b, 1, 4) == R13_OK);
    CHECK(r13_metrics_gauge_add(&a, 1, -1) == R13_OK);
    CHECK(r13_metrics_gauge_add(&a, R13_METRICS_GAUGES, 1) == R13_ERANGE);

    CHECK(r13_metrics_totals_read(&b, &t) == R13_OK);
    CHECK(t.requests == 2 && t.by_class[2] == 1 && t.by_class[5] == 1);
    CHECK(t.bytes_in == 10 && t.bytes_out == 107);
    CHECK(t.latency[1] == 1 && t.latency[17] == 1);
    CHECK(t.latency_sum_ns == 2000030000ULL);
    CHECK(t.events[3] == 5 && t.gauges[0] == 0 && t.gauges[1] == 3);
    CHECK(t.started_ns > 0);

    r13_metrics_cell cells[4];
    size_t n = 0;
    CHECK(r13_metrics_cells(&a, cells, 1, &n) == R13_EBUFSZ && n == 2);
    CHECK(r13_metrics_cells(&a, cells, 4, &n) == R13_OK && n == 2);
    CHECK(cells[0].route == 1 && cells[0].status == 200 && cells[0].count == 1);
    CHECK(cells[1].route == 2 && cells[1].status == 503 && cells[1].count == 1);
    CHECK(r13_metrics_cells(&a, NULL, 0, &n) == R13_EBUFSZ && n == 2);

    uint64_t buckets[R13_METRICS_BUCKETS], sum = 0;
    CHECK(r13_metrics_route_latency(&a, 2, buckets, R13_METRICS_BUCKETS, &sum) == R13_OK);
    CHECK(buckets[17] == 1 && sum == 2000000000ULL);
    CHECK(r13_metrics_route_latency(&a, 2, buckets, 2, &sum) == R13_EBUFSZ);
    CHECK(r13_metrics_route_latency(&a, R13_METRICS_ROUTES, buckets, R13_METRICS_BUCKETS,
                                    &sum) == R13_ERANGE);

    /* Closing a handle drops its slot's gauges. */
    CHECK(r13_metrics_close(&b) == R13_OK);
    CHECK(r13_metrics_close(&b) == R13_OK);
    CHECK(r13_metrics_totals_read(&a, &t) == R13_OK);
    CHECK(t.slots_used == 1 && t.gauges[1] == -1 && t.requests == 2);
    CHECK(r13_metrics_close(&a) == R13_OK);

    /* Nobody has it: the next open starts from zero. */
    CHECK(r13_metrics_open(&a, dir) == R13_OK);
    CHECK(r13_metrics_totals_read(&a, &t) == R13_OK);
    CHECK(t.requests == 0 && t.routes == 1);
    CHECK(r13_metrics_close(&a) == R13_OK);
}

static void test_route_table_fills(const char *base)
{
    char dir[4096];
    subdir(dir, sizeof dir, base, "routes");
    r13_metrics m;
    CHECK(r13_metrics_open(&m, dir) == R13_OK);
    uint32_t id = 0;
    int rc = R13_OK;
    for (int i = 1; i < R13_METRICS_ROUTES; i++) {
        char name[32];
        int len = snprintf(name, sizeof name, "GET /r%d", i);
        rc = r13_metrics_route(&m, name, (size_t)len, &id);
        CHECK(rc == R13_OK && id == (uint32_t)i);
    }
    CHECK(r13_metrics_route(&m, "GET /one-too-many", 17, &id) == R13_EFULL);
    CHECK(r13_metrics_route(&m, "GET /r5", 7, &id) == R13_OK && id == 5);
    CHECK(r13_metrics_close(&m) == R13_OK);
}

/* Several processes counting at once: the totals are exact. */
static void test_exact_across_processes(const char *base)
{
    char dir[4096];
    subdir(dir, sizeof dir, base, "procs");
    r13_metrics m;
    CHECK(r13_metrics_open(&m, dir) == R13_OK);
    enum { PROCS = 4, EACH = 50000 };
    pid_t kids[PROCS];
    for (int p = 0; p < PROCS; p++) {
        kids[p] = fork();
        if (kids[p] == 0) {
            r13_metrics c;
            if (r13_metrics_open(&c, dir) != R13_OK)
                _exit(2);
            uint32_t id;
            if (r13_metrics_route(&c, "GET /hot", 8, &id) != R13_OK)
                _exit(3);
            for (int i = 0; i < EACH; i++) {
                r13_metrics_request_start(&c);
                r13_metrics_request_end(&c, id, i % 2 ? 200 : 404, 1, 2, (uint64_t)i);
            }
            r13_metrics_close(&c);
            _exit(0);
        }
    }
    for (int p = 0; p < PROCS; p++) {
        int status = 0;
        waitpid(kids[p], &status, 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    r13_metrics_totals t;
    CHECK(r13_metrics_totals_read(&m, &t) == R13_OK);
    CHECK(t.requests == (uint64_t)PROCS * EACH);
    CHECK(t.by_class[2] == (uint64_t)PROCS * EACH / 2 && t.by_class[4] == t.by_class[2]);
    CHECK(t.bytes_in == (uint64_t)PROCS * EACH && t.bytes_out == 2 * t.bytes_in);
    CHECK(t.gauges[0] == 0 && t.slots_used == 1);
    uint64_t sum = 0;
    for (int b = 0; b < R13_METRICS_BUCKETS; b++)
        sum += t.latency[b];
    CHECK(sum == t.requests);
    CHECK(r13_metrics_close(&m) == R13_OK);
}

/* A process killed mid-request: its in-flight count is reaped, counts stay. */
static void test_killed_worker_is_reaped(const char *base)
{
    char dir[4096];
    subdir(dir, sizeof dir, base, "reap");
    r13_metrics m;
    CHECK(r13_metrics_open(&m, dir) == R13_OK);
    int ready[2];
    CHECK(pipe(ready) == 0);
    pid_t kid = fork();
    if (kid == 0) {
        r13_metrics c;
        if (r13_metrics_open(&c, dir) != R13_OK)
            _exit(2);
        r13_metrics_request_start(&c);
        r13_metrics_request_start(&c);
        r13_metrics_request_end(&c, 0, 200, 0, 0, 1);
        char x = 'x';
        if (write(ready[1], &x, 1) != 1)
            _exit(3);
        pause();
        _exit(0);
    }
    char x;
    CHECK(read(ready[0], &x, 1) == 1);
    r13_metrics_totals t;
    CHECK(r13_metrics_totals_read(&m, &t) == R13_OK);
    CHECK(t.gauges[0] == 1 && t.slots_used == 2 && t.requests == 1);
    uint32_t reaped = 99;
    CHECK(r13_metrics_reap(&m, &reaped) == R13_OK && reaped == 0);
    kill(kid, SIGKILL);
    waitpid(kid, NULL, 0);
    CHECK(r13_metrics_reap(&m, &reaped) == R13_OK && reaped == 1);
    CHECK(r13_metrics_totals_read(&m, &t) == R13_OK);
    CHECK(t.gauges[0] == 0 && t.slots_used == 1 && t.requests == 1);
    close(ready[0]);
    close(ready[1]);
    CHECK(r13_metrics_close(&m) == R13_OK);
}

static void test_bad_arguments(void)
{
    r13_metrics m;
    r13_metrics_totals t;
    size_t n;
    CHECK(r13_metrics_open(NULL, "/tmp") == R13_EINVAL);
    CHECK(r13_metrics_open(&m, NULL) == R13_EINVAL);
    CHECK(r13_metrics_open(&m, "/nonexistent/r13/dir") == R13_ESHM);
    memset(&m, 0, sizeof m);
    CHECK(r13_metrics_totals_read(&m, &t) == R13_EINVAL);
    CHECK(r13_metrics_request_start(&m) == R13_EINVAL);
    CHECK(r13_metrics_request_end(&m, 0, 200, 0, 0, 0) == R13_EINVAL);
    CHECK(r13_metrics_cells(&m, NULL, 0, &n) == R13_EINVAL);
    CHECK(r13_metrics_reap(NULL, NULL) == R13_EINVAL);
    CHECK(r13_metrics_close(NULL) == R13_EINVAL);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    test_bounds();
    test_routes_and_counts(argv[1]);
    test_route_table_fills(argv[1]);
    test_exact_across_processes(argv[1]);
    test_killed_worker_is_reaped(argv[1]);
    test_bad_arguments();
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    puts("test_metrics: ok");
    return 0;
}
