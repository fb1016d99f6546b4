/*
 * Shared request metrics: counters every worker process updates with
 * relaxed atomic adds in one shared-memory segment per data dir.
 *
 * Counters only ever grow, so a reader that loads each word atomically sees
 * a value every process agrees on, and a writer killed at any instant loses
 * at most the adds it had not made yet. Gauges that go up and down (requests
 * in flight, open WebSockets) are kept per process slot: when a process dies
 * with requests in flight, r13_metrics_reap frees its slot and its share of
 * the gauges with it, instead of leaving them counted forever.
 *
 * Route names are handed out ids under a robust process-shared mutex (a
 * rare, slow path) and published by a release store of the count of routes,
 * so readers need no lock: entries below the published count never change.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "r13.h"
#include "r13_internal.h"

#define MET_MAGIC 0x3173636972746d72ULL /* "rmtrics1" */
#define MET_SEG_NAME "metrics"
#define MET_NSTATUS (R13_METRICS_STATUS_MAX - R13_METRICS_STATUS_MIN + 1)
#define MET_REAPING 0x80000000u /* slot pid | this: being freed by that pid */

/* Upper bounds (inclusive) of the latency buckets, in ns. */
static const uint64_t BOUNDS[R13_METRICS_BUCKETS] = {
    25000ULL,      50000ULL,      100000ULL,      250000ULL,     500000ULL,
    1000000ULL,    2500000ULL,    5000000ULL,     10000000ULL,   25000000ULL,
    50000000ULL,   75000000ULL,   100000000ULL,   250000000ULL,  500000000ULL,
    750000000ULL,  1000000000ULL, 2500000000ULL,  5000000000ULL, 7500000000ULL,
    10000000000ULL, 30000000000ULL, 60000000000ULL, UINT64_MAX,
};

typedef struct met_route {
    uint32_t len;
    char name[R13_METRICS_ROUTE_NAME];
} met_route;

/* One process's gauges, a cache line of its own. */
typedef struct met_slot {
    uint32_t pid; /* atomic; 0 = free */
    uint32_t pad;
    int64_t gauges[R13_METRICS_GAUGES];
    uint64_t pad2[3];
} met_slot;

typedef struct met_seg {
    uint64_t magic;
    uint64_t layout;     /* sizeof(met_seg) when created */
    uint64_t started_ns;
    uint32_t routes_used; /* atomic; entries below it are complete */
    uint32_t pad;
    pthread_mutex_t route_lock;
    met_route routes[R13_METRICS_ROUTES];
    /* every word below is atomic */
    uint64_t requests_total;
    uint64_t by_class[6];
    uint64_t bytes_in;
    uint64_t bytes_out;
    uint64_t latency_sum;
    uint64_t latency[R13_METRICS_BUCKETS];
    uint64_t events[R13_METRICS_EVENTS];
    uint64_t route_latency[R13_METRICS_ROUTES][R13_METRICS_BUCKETS];
    uint64_t route_latency_sum[R13_METRICS_ROUTES];
    uint64_t requests[R13_METRICS_ROUTES][MET_NSTATUS];
    met_slot slots[R13_METRICS_SLOTS];
} met_seg;

static met_seg *seg_of(const r13_metrics *m)
{
    return (met_seg *)m->seg.addr;
}

static void add(uint64_t *word, uint64_t n)
{
    __atomic_fetch_add(word, n, __ATOMIC_RELAXED);
}

static uint64_t load(const uint64_t *word)
{
    return __atomic_load_n(word, __ATOMIC_RELAXED);
}

static int alive(uint32_t pid)
{
    if (pid == 0 || pid > (uint32_t)INT32_MAX)
        return 0;
    return kill((pid_t)pid, 0) == 0 || errno != ESRCH;
}

/* ---- slots ------------------------------------------------------------- */

static void clear_gauges(met_slot *s)
{
    for (unsigned g = 0; g < R13_METRICS_GAUGES; g++)
        __atomic_store_n(&s->gauges[g], 0, __ATOMIC_RELAXED);
}

/* Free slot i if its owner (or the process freeing it) is dead. */
static int reap_slot(met_seg *seg, unsigned i, uint32_t self)
{
    met_slot *s = &seg->slots[i];
    uint32_t v = __atomic_load_n(&s->pid, __ATOMIC_ACQUIRE);
    if (v == 0 || alive(v & ~MET_REAPING))
        return 0;
    /* Mark it ours before zeroing, so no claimer can start counting in a
     * slot whose gauges we are about to clear. */
    if (!__atomic_compare_exchange_n(&s->pid, &v, self | MET_REAPING, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_RELAXED))
        return 0;
    clear_gauges(s);
    __atomic_store_n(&s->pid, 0, __ATOMIC_RELEASE);
    return 1;
}

int r13_metrics_reap(r13_metrics *m, uint32_t *reaped)
{
    if (m == NULL || m->seg.addr == NULL)
        return R13_EINVAL;
    met_seg *seg = seg_of(m);
    uint32_t n = 0;
    for (unsigned i = 0; i < R13_METRICS_SLOTS; i++)
        n += (uint32_t)reap_slot(seg, i, m->pid);
    if (reaped != NULL)
        *reaped = n;
    return R13_OK;
}

static int claim_slot(met_seg *seg, uint32_t pid, uint32_t *slot)
{
    for (unsigned i = 0; i < R13_METRICS_SLOTS; i++) {
        met_slot *s = &seg->slots[i];
        uint32_t expected = 0;
        if (__atomic_compare_exchange_n(&s->pid, &expected, pid, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_RELAXED)) {
            clear_gauges(s);
            *slot = i;
            return R13_OK;
        }
    }
    return R13_EFULL;
}

/* ---- open / close ------------------------------------------------------ */

static int init_segment(met_seg *seg)
{
    pthread_mutexattr_t attr;
    if (pthread_mutexattr_init(&attr) != 0)
        return R13_ESHM;
    int ok = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED) == 0 &&
             pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST) == 0 &&
             pthread_mutex_init(&seg->route_lock, &attr) == 0;
    pthread_mutexattr_destroy(&attr);
    if (!ok)
        return R13_ESHM;
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0 || ts.tv_sec < 0)
        return R13_ECLOCK;
    seg->started_ns = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
    seg->layout = sizeof(met_seg);
    /* Route 0 counts requests that match no route (or overflow the table). */
    seg->routes[0].len = 1;
    seg->routes[0].name[0] = '*';
    __atomic_store_n(&seg->routes_used, 1, __ATOMIC_RELEASE);
    __atomic_store_n(&seg->magic, MET_MAGIC, __ATOMIC_RELEASE);
    return R13_OK;
}

int r13_metrics_open(r13_metrics *m, const char *dir)
{
    if (m == NULL || dir == NULL)
        return R13_EINVAL;
    memset(m, 0, sizeof *m);
    m->seg.users_fd = m->seg.init_fd = -1;
    int rc = r13__shm_attach(&m->seg, dir, MET_SEG_NAME, sizeof(met_seg));
    if (rc != R13_OK)
        return rc;
    met_seg *seg = seg_of(m);
    if (m->seg.size < sizeof(met_seg)) {
        rc = R13_ESHM;
        goto fail;
    }
    if (m->seg.fresh) {
        rc = init_segment(seg);
        if (rc != R13_OK)
            goto fail;
    } else if (__atomic_load_n(&seg->magic, __ATOMIC_ACQUIRE) != MET_MAGIC ||
               seg->layout != sizeof(met_seg)) {
        rc = R13_ESHM;
        goto fail;
    }
    m->pid = (uint32_t)getpid();
    uint32_t ignored;
    r13_metrics_reap(m, &ignored);
    rc = claim_slot(seg, m->pid, &m->slot);
    if (rc != R13_OK)
        goto fail;
    r13__shm_done(&m->seg);
    return R13_OK;

fail:
    r13__shm_detach(&m->seg);
    return rc;
}

int r13_metrics_close(r13_metrics *m)
{
    if (m == NULL)
        return R13_EINVAL;
    if (m->seg.addr != NULL && m->slot < R13_METRICS_SLOTS) {
        met_slot *s = &seg_of(m)->slots[m->slot];
        uint32_t mine = m->pid;
        /* Only if it is still ours (a reaper may have taken it if our pid
         * was thought dead, which cannot happen while we run, but be exact). */
        if (__atomic_compare_exchange_n(&s->pid, &mine, m->pid | MET_REAPING, 0,
                                        __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
            clear_gauges(s);
            __atomic_store_n(&s->pid, 0, __ATOMIC_RELEASE);
        }
    }
    r13__shm_detach(&m->seg);
    return R13_OK;
}

int r13_metrics_bounds(uint64_t *out, size_t cap)
{
    if (out == NULL)
        return R13_EINVAL;
    if (cap < R13_METRICS_BUCKETS)
        return R13_EBUFSZ;
    memcpy(out, BOUNDS, sizeof BOUNDS);
    return R13_OK;
}

/* ---- routes ------------------------------------------------------------ */

static int find_route(const met_seg *seg, uint32_t used, const char *name, size_t len,
                      uint32_t *id)
{
    for (uint32_t i = 0; i < used; i++) {
        const met_route *r = &seg->routes[i];
        if (r->len == len && memcmp(r->name, name, len) == 0) {
            *id = i;
            return 1;
        }
    }
    return 0;
}

int r13_metrics_route(r13_metrics *m, const char *name, size_t len, uint32_t *id)
{
    if (m == NULL || m->seg.addr == NULL || name == NULL || id == NULL)
        return R13_EINVAL;
    if (len == 0 || len >= R13_METRICS_ROUTE_NAME || memchr(name, '\0', len) != NULL)
        return R13_ERANGE;
    met_seg *seg = seg_of(m);
    uint32_t used = __atomic_load_n(&seg->routes_used, __ATOMIC_ACQUIRE);
    if (used > R13_METRICS_ROUTES)
        return R13_ESHM;
    if (find_route(seg, used, name, len, id))
        return R13_OK;

    int rc = pthread_mutex_lock(&seg->route_lock);
    if (rc == EOWNERDEAD) {
        /* The dead holder never published its entry; it is overwritten. */
        pthread_mutex_consistent(&seg->route_lock);
    } else if (rc != 0) {
        return R13_ESHM;
    }
    used = __atomic_load_n(&seg->routes_used, __ATOMIC_ACQUIRE);
    if (used > R13_METRICS_ROUTES) {
        rc = R13_ESHM;
    } else if (find_route(seg, used, name, len, id)) {
        rc = R13_OK;
    } else if (used == R13_METRICS_ROUTES) {
        rc = R13_EFULL;
    } else {
        met_route *r = &seg->routes[used];
        memset(r->name, 0, sizeof r->name);
        memcpy(r->name, name, len);
        r->len = (uint32_t)len;
        __atomic_store_n(&seg->routes_used, used + 1, __ATOMIC_RELEASE);
        *id = used;
        rc = R13_OK;
    }
    pthread_mutex_unlock(&seg->route_lock);
    return rc;
}

int r13_metrics_route_name(const r13_metrics *m, uint32_t id, char *out, size_t cap)
{
    if (m == NULL || m->seg.addr == NULL || out == NULL)
        return R13_EINVAL;
    const met_seg *seg = seg_of(m);
    uint32_t used = __atomic_load_n(&seg->routes_used, __ATOMIC_ACQUIRE);
    if (id >= used || id >= R13_METRICS_ROUTES)
        return R13_ERANGE;
    const met_route *r = &seg->routes[id];
    if (r->len >= R13_METRICS_ROUTE_NAME)
        return R13_ESHM;
    if (cap <= r->len)
        return R13_EBUFSZ;
    memcpy(out, r->name, r->len);
    out[r->len] = '\0';
    return R13_OK;
}

/* ---- the hot path ------------------------------------------------------ */

int r13_metrics_request_start(r13_metrics *m)
{
    if (m == NULL || m->seg.addr == NULL || m->slot >= R13_METRICS_SLOTS)
        return R13_EINVAL;
    __atomic_fetch_add(&seg_of(m)->slots[m->slot].gauges[0], 1, __ATOMIC_RELAXED);
    return R13_OK;
}

int r13_metrics_request_end(r13_metrics *m, uint32_t route, unsigned status,
                            uint64_t bytes_in, uint64_t bytes_out, uint64_t latency_ns)
{
    if (m == NULL || m->seg.addr == NULL || m->slot >= R13_METRICS_SLOTS)
        return R13_EINVAL;
    if (route >= R13_METRICS_ROUTES || status < R13_METRICS_STATUS_MIN ||
        status > R13_METRICS_STATUS_MAX)
        return R13_ERANGE;
    met_seg *seg = seg_of(m);
    unsigned b = 0;
    while (latency_ns > BOUNDS[b])
        b++; /* stops at the last bucket: UINT64_MAX */
    add(&seg->requests[route][status - R13_METRICS_STATUS_MIN], 1);
    add(&seg->route_latency[route][b], 1);
    add(&seg->route_latency_sum[route], latency_ns);
    add(&seg->requests_total, 1);
    add(&seg->by_class[status / 100], 1);
    add(&seg->latency[b], 1);
    add(&seg->latency_sum, latency_ns);
    if (bytes_in)
        add(&seg->bytes_in, bytes_in);
    if (bytes_out)
        add(&seg->bytes_out, bytes_out);
    __atomic_fetch_sub(&seg->slots[m->slot].gauges[0], 1, __ATOMIC_RELAXED);
    return R13_OK;
}

int r13_metrics_count(r13_metrics *m, unsigned event, uint64_t n)
{
    if (m == NULL || m->seg.addr == NULL)
        return R13_EINVAL;
    if (event >= R13_METRICS_EVENTS)
        return R13_ERANGE;
    add(&seg_of(m)->events[event], n);
    return R13_OK;
}

int r13_metrics_gauge_add(r13_metrics *m, unsigned gauge, int64_t delta)
{
    if (m == NULL || m->seg.addr == NULL || m->slot >= R13_METRICS_SLOTS)
        return R13_EINVAL;
    if (gauge >= R13_METRICS_GAUGES)
        return R13_ERANGE;
    /* Two's complement wrap of an atomic add is defined for the builtins. */
    __atomic_fetch_add(&seg_of(m)->slots[m->slot].gauges[gauge], delta, __ATOMIC_RELAXED);
    return R13_OK;
}

/* ---- reading ----------------------------------------------------------- */

int r13_metrics_totals_read(const r13_metrics *m, r13_metrics_totals *out)
{
    if (m == NULL || m->seg.addr == NULL || out == NULL)
        return R13_EINVAL;
    const met_seg *seg = seg_of(m);
    memset(out, 0, sizeof *out);
    out->started_ns = seg->started_ns;
    out->requests = load(&seg->requests_total);
    for (unsigned c = 0; c < 6; c++)
        out->by_class[c] = load(&seg->by_class[c]);
    out->bytes_in = load(&seg->bytes_in);
    out->bytes_out = load(&seg->bytes_out);
    out->latency_sum_ns = load(&seg->latency_sum);
    for (unsigned b = 0; b < R13_METRICS_BUCKETS; b++)
        out->latency[b] = load(&seg->latency[b]);
    for (unsigned e = 0; e < R13_METRICS_EVENTS; e++)
        out->events[e] = load(&seg->events[e]);
    for (unsigned i = 0; i < R13_METRICS_SLOTS; i++) {
        const met_slot *s = &seg->slots[i];
        uint32_t pid = __atomic_load_n(&s->pid, __ATOMIC_ACQUIRE);
        if (pid == 0 || (pid & MET_REAPING))
            continue;
        out->slots_used++;
        for (unsigned g = 0; g < R13_METRICS_GAUGES; g++)
            out->gauges[g] += __atomic_load_n(&s->gauges[g], __ATOMIC_RELAXED);
    }
    uint32_t used = __atomic_load_n(&seg->routes_used, __ATOMIC_ACQUIRE);
    out->routes = used > R13_METRICS_ROUTES ? R13_METRICS_ROUTES : used;
    return R13_OK;
}

int r13_metrics_cells(const r13_metrics *m, r13_metrics_cell *out, size_t cap, size_t *n)
{
    if (m == NULL || m->seg.addr == NULL || n == NULL || (out == NULL && cap > 0))
        return R13_EINVAL;
    const met_seg *seg = seg_of(m);
    uint32_t used = __atomic_load_n(&seg->routes_used, __ATOMIC_ACQUIRE);
    if (used > R13_METRICS_ROUTES)
        used = R13_METRICS_ROUTES;
    size_t count = 0;
    for (uint32_t r = 0; r < used; r++) {
        for (unsigned s = 0; s < MET_NSTATUS; s++) {
            uint64_t v = load(&seg->requests[r][s]);
            if (v == 0)
                continue;
            if (count < cap) {
                out[count].route = r;
                out[count].status = s + R13_METRICS_STATUS_MIN;
                out[count].count = v;
            }
            count++;
        }
    }
    *n = count;
    return count > cap ? R13_EBUFSZ : R13_OK;
}

int r13_metrics_route_latency(const r13_metrics *m, uint32_t route, uint64_t *buckets,
                              size_t cap, uint64_t *sum_ns)
{
    if (m == NULL || m->seg.addr == NULL || buckets == NULL || sum_ns == NULL)
        return R13_EINVAL;
    if (route >= R13_METRICS_ROUTES)
        return R13_ERANGE;
    if (cap < R13_METRICS_BUCKETS)
        return R13_EBUFSZ;
    const met_seg *seg = seg_of(m);
    for (unsigned b = 0; b < R13_METRICS_BUCKETS; b++)
        buckets[b] = load(&seg->route_latency[route][b]);
    *sum_ns = load(&seg->route_latency_sum[route]);
    return R13_OK;
}
