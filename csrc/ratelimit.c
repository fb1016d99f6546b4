/*
 * The shared-memory rate limiter: GCRA buckets keyed by a string, one
 * 64-bit word per key, updated by compare-and-swap, exact across processes.
 *
 * Algorithm (GCRA, integer nanoseconds). For a call with `capacity` c and
 * `window_ms`: T = window_ns / c (the emission interval, truncated) and the
 * burst tolerance is c*T (<= window_ns: the window is rounded down to a
 * multiple of c ns, so a burst is exactly c and never c + 1). A bucket is
 * its TAT (theoretical arrival time). A request of `cost`:
 *     base    = max(tat, now)
 *     new_tat = base + cost*T
 *     admitted iff new_tat - now <= c*T; only then is the TAT stored.
 *     remaining      = floor((now + c*T - max(tat', now)) / T), tat' the
 *                      TAT after the decision (0 when negative)
 *     reset_ns       = max(tat', now) - now  (until the bucket is full)
 *     retry_after_ns = new_tat - c*T - now   (refusals only; else 0)
 * A TAT <= now is indistinguishable from a fresh bucket whatever the
 * capacity and window, which is what makes an entry "idle".
 *
 * Segment layout: a header {magic, slots, seed, clock base, robust
 * process-shared mutex} and `slots` (a power of two) slots of two atomic
 * words {key, state}. key is a seeded 64-bit hash of the key string (0 =
 * empty slot; a real 0 becomes 1), so two keys whose hashes collide share a
 * bucket (probability ~ n^2 / 2^65). state = epoch (8 bits) | TAT (56 bits,
 * ns after the clock base: ~2.28 years). The base is the clock at creation
 * minus 2^54 ns (or 0), so a table lives ~1.7 years of continuous use before
 * checks return R13_ECLOCK (all processes closing it rebuilds it).
 *
 * Hot path, lock-free: probe linearly from hash & (slots-1) over at most
 * R13__PROBE slots. For each: load state (acquire), then key; on a match
 * with a state that is not EVICTING, decide and CAS state old -> new
 * (retrying on failure). A refusal writes nothing. An empty slot (or the end
 * of the window) without a match goes to the slow path.
 *
 * Slow path, under the robust mutex: look again (another process may have
 * inserted the key); else claim the first empty slot in the window (store
 * the key, release; the state of a never-used slot is a fresh bucket); else
 * evict the idle slot (TAT <= now) with the oldest TAT: CAS its state to
 * EVICTING with epoch + 1 (so a lock-free user of the old key that loaded
 * the old state fails its CAS), store the new key, then store a fresh state
 * with the new epoch (release, so whoever sees it sees the new key). Keys
 * are only ever replaced, never removed, so probe chains never break.
 * The epoch guards against ABA: a stale CAS could only succeed after exactly
 * 256 evictions of that slot landing on the very same TAT.
 *
 * Full of busy entries: when every slot of the new key's probe window holds
 * a busy key, the check returns R13_EFULL with `out` filled as a refusal
 * whose retry_after_ns is when the soonest of those slots goes idle. Only
 * NEW keys fail closed; keys already in the table keep working.
 *
 * A process killed while holding the mutex: the next locker gets
 * EOWNERDEAD, marks the mutex consistent and turns any slot left EVICTING
 * into a fresh bucket (its key is then either the old or the new one, and
 * either way the bucket was idle). A process killed in the lock-free path
 * leaves nothing behind: its CAS either happened or did not.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "r13.h"
#include "r13_internal.h"

#define RL_MAGIC 0x3176696d696c3331ULL /* "13limiv1" */
#define RL_MIN_SLOTS 64u
#define RL_MAX_SLOTS (1u << 24)
#define R13__PROBE 32u
#define RL_MAX_WINDOW_MS (UINT64_C(1) << 32)
#define RL_MAX_KEY 256u

#define TAT_BITS 56
#define TAT_MASK ((UINT64_C(1) << TAT_BITS) - 1)
/* The TAT value reserved as the EVICTING marker; real TATs stay below it. */
#define TAT_EVICTING TAT_MASK
#define BASE_MARGIN (UINT64_C(1) << 54)

typedef struct rl_slot {
    uint64_t key;   /* atomic; 0 = empty */
    uint64_t state; /* atomic; epoch << 56 | TAT */
} rl_slot;

typedef struct rl_header {
    uint64_t magic;
    uint64_t slots;
    uint64_t seed;
    uint64_t base_ns;
    pthread_mutex_t lock; /* robust, process-shared: slow path only */
} rl_header;

/* Slots start on their own cache line. */
#define RL_HEADER_SIZE ((sizeof(rl_header) + 63u) & ~(size_t)63u)

static rl_header *header_of(const r13_limiter *lim)
{
    return (rl_header *)lim->seg.addr;
}

static rl_slot *slots_of(const r13_limiter *lim)
{
    return (rl_slot *)((char *)lim->seg.addr + RL_HEADER_SIZE);
}

static inline uint64_t tat_of(uint64_t state) { return state & TAT_MASK; }
static inline uint64_t epoch_of(uint64_t state) { return state >> TAT_BITS; }
static inline uint64_t make_state(uint64_t epoch, uint64_t tat)
{
    return (epoch & 0xffu) << TAT_BITS | tat;
}
static inline int is_evicting(uint64_t state) { return tat_of(state) == TAT_EVICTING; }

/* murmur3's 64-bit finaliser: FNV-1a's low bits alone probe poorly. */
static inline uint64_t mix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

static inline uint64_t key_hash(const uint8_t *key, size_t len, uint64_t seed)
{
    uint64_t h = mix64(r13__fnv1a64(key, len, seed));
    return h ? h : 1;
}

/* ---- the clock --------------------------------------------------------- */

int r13_monotonic_ns(uint64_t *out)
{
    if (out == NULL)
        return R13_EINVAL;
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return R13_ECLOCK;
    *out = (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
    return R13_OK;
}

/* `now` relative to the table's base, below the EVICTING marker. */
static int relative_now(const rl_header *h, uint64_t now_ns, uint64_t *out)
{
    if (now_ns == 0) {
        int rc = r13_monotonic_ns(&now_ns);
        if (rc != R13_OK)
            return rc;
    }
    if (now_ns < h->base_ns || now_ns - h->base_ns >= TAT_EVICTING)
        return R13_ECLOCK;
    *out = now_ns - h->base_ns;
    return R13_OK;
}

/* ---- the decision ------------------------------------------------------ */

/* The parameters of one decision are those of an r13_limit (r13.h). */
typedef r13_limit rl_params;

static int make_params(uint32_t capacity, uint64_t window_ms, uint32_t cost,
                       rl_params *p)
{
    if (capacity == 0 || cost == 0 || cost > capacity || window_ms == 0 ||
        window_ms > RL_MAX_WINDOW_MS)
        return R13_EINVAL;
    uint64_t window_ns = window_ms * UINT64_C(1000000); /* <= 2^32 * 1e6 < 2^62 */
    if (window_ns < capacity)
        return R13_EINVAL; /* T would be 0 */
    p->t = window_ns / capacity;
    p->tau = p->t * capacity;
    p->cost_t = p->t * cost;
    return R13_OK;
}

/*
 * Decide for a bucket whose TAT is `tat`. Returns 1 and sets *new_tat when
 * admitted, 0 when refused; R13_ECLOCK if the new TAT would not fit.
 */
static int decide(const rl_params *p, uint64_t tat, uint64_t now, uint64_t *new_tat,
                  r13_decision *out)
{
    uint64_t base = tat > now ? tat : now;
    uint64_t next = base + p->cost_t; /* < 2^56 + 2^62: no overflow */
    if (next - now <= p->tau) {
        if (next >= TAT_EVICTING)
            return R13_ECLOCK;
        uint64_t left = now + p->tau - next;
        out->allowed = 1;
        out->full = 0;
        out->remaining = (uint32_t)(left / p->t);
        out->reset_ns = next - now;
        out->retry_after_ns = 0;
        *new_tat = next;
        return 1;
    }
    uint64_t ahead = base - now; /* how far the bucket is from full */
    out->allowed = 0;
    out->full = 0;
    out->remaining = ahead >= p->tau ? 0 : (uint32_t)((p->tau - ahead) / p->t);
    out->reset_ns = ahead;
    out->retry_after_ns = next - p->tau - now;
    return 0;
}

/*
 * Try the check on slot `s` for key `hash`. Returns 1 when done (out set),
 * 0 when the slot does not (or no longer) hold the key, or a negative code.
 */
static int check_slot(rl_slot *s, uint64_t hash, const rl_params *p, uint64_t now,
                      r13_decision *out)
{
    uint64_t state = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
    for (;;) {
        if (is_evicting(state) || __atomic_load_n(&s->key, __ATOMIC_RELAXED) != hash)
            return 0;
        uint64_t next;
        int rc = decide(p, tat_of(state), now, &next, out);
        if (rc <= 0)
            return rc == 0 ? 1 : rc; /* refused: nothing to write */
        if (__atomic_compare_exchange_n(&s->state, &state,
                                        make_state(epoch_of(state), next), 0,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            return 1;
        /* `state` now holds the current value: decide again. */
    }
}

/* ---- the slow path ----------------------------------------------------- */

static int lock_table(rl_header *h, rl_slot *slots, uint64_t nslots)
{
    int rc = pthread_mutex_lock(&h->lock);
    if (rc == EOWNERDEAD) {
        /* The owner died mid-eviction at worst: finish it as a fresh bucket. */
        for (uint64_t i = 0; i < nslots; i++) {
            uint64_t st = __atomic_load_n(&slots[i].state, __ATOMIC_RELAXED);
            if (is_evicting(st))
                __atomic_store_n(&slots[i].state, make_state(epoch_of(st), 0),
                                 __ATOMIC_RELEASE);
        }
        pthread_mutex_consistent(&h->lock);
        return R13_OK;
    }
    return rc == 0 ? R13_OK : R13_ESHM;
}

/*
 * Under the lock: the index of the slot holding `hash`, claiming or evicting
 * one if needed. R13_EFULL (with *soonest = earliest TAT in the window)
 * when every slot of the window is busy.
 */
static int64_t find_or_claim(rl_slot *slots, uint64_t mask, uint64_t hash, uint64_t now,
                             uint64_t *soonest)
{
    uint64_t first = hash & mask;
    uint64_t probe = mask + 1 < R13__PROBE ? mask + 1 : R13__PROBE;
    for (;;) {
        int64_t empty = -1, victim = -1;
        uint64_t victim_tat = 0, min_tat = UINT64_MAX;
        uint64_t victim_state = 0;
        for (uint64_t k = 0; k < probe; k++) {
            uint64_t i = (first + k) & mask;
            uint64_t key = __atomic_load_n(&slots[i].key, __ATOMIC_RELAXED);
            if (key == hash)
                return (int64_t)i;
            if (key == 0) {
                empty = (int64_t)i; /* keys are never removed: nothing beyond */
                break;
            }
            uint64_t st = __atomic_load_n(&slots[i].state, __ATOMIC_ACQUIRE);
            uint64_t tat = tat_of(st);
            if (tat <= now && (victim < 0 || tat < victim_tat)) {
                victim = (int64_t)i;
                victim_tat = tat;
                victim_state = st;
            }
            if (tat < min_tat)
                min_tat = tat;
        }
        if (empty >= 0) {
            /* A never-used slot's state is 0: a fresh bucket. */
            __atomic_store_n(&slots[empty].key, hash, __ATOMIC_RELEASE);
            return empty;
        }
        if (victim < 0) {
            *soonest = min_tat;
            return R13_EFULL;
        }
        rl_slot *v = &slots[victim];
        uint64_t epoch = epoch_of(victim_state) + 1;
        if (!__atomic_compare_exchange_n(&v->state, &victim_state,
                                         make_state(epoch, TAT_EVICTING), 0,
                                         __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
            continue; /* its owner just used it: look again */
        __atomic_store_n(&v->key, hash, __ATOMIC_RELAXED);
        __atomic_store_n(&v->state, make_state(epoch, 0), __ATOMIC_RELEASE);
        return victim;
    }
}

/* ---- open / close ------------------------------------------------------ */

static int valid_slots(uint64_t slots)
{
    return slots >= RL_MIN_SLOTS && slots <= RL_MAX_SLOTS && (slots & (slots - 1)) == 0;
}

static size_t table_size(uint64_t slots)
{
    return RL_HEADER_SIZE + (size_t)slots * sizeof(rl_slot);
}

static int init_table(rl_header *h, uint32_t slots)
{
    pthread_mutexattr_t attr;
    if (pthread_mutexattr_init(&attr) != 0)
        return R13_ESHM;
    int ok = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED) == 0 &&
             pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST) == 0 &&
             pthread_mutex_init(&h->lock, &attr) == 0;
    pthread_mutexattr_destroy(&attr);
    if (!ok)
        return R13_ESHM;
    uint64_t seed, now;
    if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed)
        return R13_ESHM;
    int rc = r13_monotonic_ns(&now);
    if (rc != R13_OK)
        return rc;
    h->slots = slots;
    h->seed = seed;
    h->base_ns = now > BASE_MARGIN ? now - BASE_MARGIN : 0;
    /* Slots are zero (ftruncate): empty keys, fresh states. */
    __atomic_store_n(&h->magic, RL_MAGIC, __ATOMIC_RELEASE);
    return R13_OK;
}

/*
 * Open the table `name` of `dir`; see r13.h. The segment is named
 * "rl-<name>", so `name` has at most 21 characters of [a-z0-9_-].
 * On error nothing stays open and *lim is safe to close.
 */
int r13_limiter_open(r13_limiter *lim, const char *dir, const char *name, uint32_t slots)
{
    if (lim == NULL)
        return R13_EINVAL;
    memset(lim, 0, sizeof *lim);
    lim->seg.users_fd = lim->seg.init_fd = -1;
    if (dir == NULL || name == NULL || !valid_slots(slots))
        return R13_EINVAL;
    char seg_name[32];
    size_t n = strlen(name);
    if (n == 0 || n > 21)
        return R13_EINVAL;
    memcpy(seg_name, "rl-", 3);
    memcpy(seg_name + 3, name, n + 1);

    int rc = r13__shm_attach(&lim->seg, dir, seg_name, table_size(slots));
    if (rc != R13_OK)
        return rc;
    rl_header *h = header_of(lim);
    if (lim->seg.size < RL_HEADER_SIZE) {
        rc = R13_ESHM;
        goto fail;
    }
    if (lim->seg.fresh) {
        rc = init_table(h, slots);
        if (rc != R13_OK)
            goto fail;
    } else if (__atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) != RL_MAGIC ||
               !valid_slots(h->slots) || lim->seg.size < table_size(h->slots)) {
        rc = R13_ESHM;
        goto fail;
    }
    lim->slots = (uint32_t)h->slots;
    r13__shm_done(&lim->seg);
    return R13_OK;

fail:
    r13__shm_detach(&lim->seg);
    lim->slots = 0;
    return rc;
}

/* Detach; the last process to close removes the table. Safe to call twice. */
int r13_limiter_close(r13_limiter *lim)
{
    if (lim == NULL)
        return R13_EINVAL;
    r13__shm_detach(&lim->seg);
    lim->slots = 0;
    return R13_OK;
}

/* ---- check / reset / stats --------------------------------------------- */

static int valid_key(const r13_limiter *lim, const uint8_t *key, size_t keylen)
{
    return lim != NULL && lim->seg.addr != NULL && key != NULL && keylen > 0 &&
           keylen <= RL_MAX_KEY;
}

/*
 * The check itself, for a valid limiter, key and parameters. `out` is
 * written only on R13_OK and R13_EFULL.
 */
static int take(const r13_limiter *lim, const rl_params *p, const uint8_t *key,
                size_t keylen, uint64_t now_ns, r13_decision *out)
{
    rl_header *h = header_of(lim);
    uint64_t now;
    int rc = relative_now(h, now_ns, &now);
    if (rc != R13_OK)
        return rc;
    rl_slot *slots = slots_of(lim);
    uint64_t mask = (uint64_t)lim->slots - 1;
    uint64_t hash = key_hash(key, keylen, h->seed);
    uint64_t first = hash & mask;
    uint64_t probe = mask + 1 < R13__PROBE ? mask + 1 : R13__PROBE;
    r13_decision d;

    for (uint64_t k = 0; k < probe; k++) {
        rl_slot *s = &slots[(first + k) & mask];
        if (__atomic_load_n(&s->key, __ATOMIC_RELAXED) == 0)
            break;
        rc = check_slot(s, hash, p, now, &d);
        if (rc < 0)
            return rc;
        if (rc == 1) {
            *out = d;
            return R13_OK;
        }
    }

    rc = lock_table(h, slots, mask + 1);
    if (rc != R13_OK)
        return rc;
    uint64_t soonest = 0;
    int64_t i = find_or_claim(slots, mask, hash, now, &soonest);
    if (i == R13_EFULL) {
        pthread_mutex_unlock(&h->lock);
        out->allowed = 0;
        out->full = 1;
        out->remaining = 0;
        out->retry_after_ns = soonest - now; /* every TAT in the window is > now */
        out->reset_ns = out->retry_after_ns;
        return R13_EFULL;
    }
    /* Under the lock nobody can evict the slot, so it still holds the key;
     * lock-free users of the key may still race us, which the CAS handles. */
    rc = check_slot(&slots[i], hash, p, now, &d);
    pthread_mutex_unlock(&h->lock);
    if (rc == 0)
        rc = R13_ESHM; /* only a corrupted table gets here */
    if (rc < 0)
        return rc;
    *out = d;
    return R13_OK;
}

/*
 * See r13.h. EINVAL: bad limiter/key (1..256 bytes)/capacity (>= 1)/cost
 * (1..capacity)/window (1..2^32 ms, and >= capacity ns). ECLOCK: clock
 * unreadable or outside the table's range. EFULL: see the top of this file.
 * `out` is written only on R13_OK and R13_EFULL.
 */
int r13_limiter_check(r13_limiter *lim, const uint8_t *key, size_t keylen,
                      uint32_t capacity, uint64_t window_ms, uint32_t cost,
                      uint64_t now_ns, r13_decision *out)
{
    if (!valid_key(lim, key, keylen) || out == NULL)
        return R13_EINVAL;
    rl_params p;
    int rc = make_params(capacity, window_ms, cost, &p);
    if (rc != R13_OK)
        return rc;
    return take(lim, &p, key, keylen, now_ns, out);
}

/* See r13.h. On error the limit is left with t = 0, which checks refuse. */
int r13_limit_init(r13_limit *limit, const r13_limiter *lim, uint32_t capacity,
                   uint64_t window_ms, uint32_t cost)
{
    if (limit == NULL)
        return R13_EINVAL;
    memset(limit, 0, sizeof *limit);
    if (lim == NULL)
        return R13_EINVAL;
    r13_limit p;
    int rc = make_params(capacity, window_ms, cost, &p);
    if (rc != R13_OK)
        return rc;
    p.lim = lim;
    *limit = p;
    return R13_OK;
}

/* See r13.h: r13_limiter_check with the parameters validated by r13_limit_init. */
int r13_limit_check(const r13_limit *limit, const uint8_t *key, size_t keylen,
                    uint64_t now_ns, r13_decision *out)
{
    if (limit == NULL || limit->t == 0 || out == NULL || !valid_key(limit->lim, key, keylen))
        return R13_EINVAL;
    return take(limit->lim, limit, key, keylen, now_ns, out);
}

/* ---- the packed decision (r13.h: R13_PACK_*) ---------------------------- */

static uint64_t ceil_seconds(uint64_t ns)
{
    uint64_t s = ns / UINT64_C(1000000000) + (ns % UINT64_C(1000000000) != 0);
    return s > R13_PACK_SECONDS_MAX ? R13_PACK_SECONDS_MAX : s;
}

static int64_t pack(const r13_decision *d)
{
    uint64_t count;
    if (d->allowed) {
        count = d->remaining;
    } else {
        count = ceil_seconds(d->retry_after_ns);
        if (count == 0)
            count = 1;
    }
    uint64_t v = (d->allowed ? R13_PACK_ALLOWED : 0) | (d->full ? R13_PACK_FULL : 0) |
                 (ceil_seconds(d->reset_ns) << R13_PACK_RESET_SHIFT) |
                 ((count & UINT64_C(0xFFFFFFFF)) << R13_PACK_COUNT_SHIFT);
    return (int64_t)v;
}

static int64_t take_packed(const r13_limit *limit, const uint8_t *key, size_t keylen,
                           uint64_t now_ns, r13_decision *d)
{
    int rc = r13_limit_check(limit, key, keylen, now_ns, d);
    if (rc != R13_OK && rc != R13_EFULL)
        return rc;
    return pack(d);
}

/* See r13.h. */
int64_t r13_limit_take(const r13_limit *limit, const uint8_t *key, size_t keylen,
                       uint64_t now_ns)
{
    r13_decision d;
    return take_packed(limit, key, keylen, now_ns, &d);
}

/* See r13.h: `a`, then (when `a` admits) `b`; the tighter of the two decisions. */
int64_t r13_limit_take2(const r13_limit *a, const uint8_t *ka, size_t la,
                        const r13_limit *b, const uint8_t *kb, size_t lb, uint64_t now_ns)
{
    if (b == NULL || b->t == 0 || !valid_key(b->lim, kb, lb))
        return R13_EINVAL; /* checked before `a` counts anything */
    if (now_ns == 0) {
        int rc = r13_monotonic_ns(&now_ns);
        if (rc != R13_OK)
            return rc;
    }
    r13_decision da, db;
    int64_t first = take_packed(a, ka, la, now_ns, &da);
    if (first < 0 || !da.allowed)
        return first;
    int64_t second = take_packed(b, kb, lb, now_ns, &db);
    if (second < 0)
        return second;
    return (!db.allowed || db.remaining < da.remaining) ? (second | R13_PACK_SECOND) : first;
}

/* See r13.h. A key not in the table is already fresh: R13_OK. */
int r13_limiter_reset(r13_limiter *lim, const uint8_t *key, size_t keylen)
{
    if (!valid_key(lim, key, keylen))
        return R13_EINVAL;
    rl_header *h = header_of(lim);
    rl_slot *slots = slots_of(lim);
    uint64_t mask = (uint64_t)lim->slots - 1;
    uint64_t hash = key_hash(key, keylen, h->seed);
    uint64_t probe = mask + 1 < R13__PROBE ? mask + 1 : R13__PROBE;
    for (uint64_t k = 0; k < probe; k++) {
        rl_slot *s = &slots[((hash & mask) + k) & mask];
        uint64_t state = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
        for (;;) {
            uint64_t cur = __atomic_load_n(&s->key, __ATOMIC_RELAXED);
            if (cur == 0)
                return R13_OK;
            if (cur != hash || is_evicting(state))
                break;
            if (__atomic_compare_exchange_n(&s->state, &state,
                                            make_state(epoch_of(state), 0), 0,
                                            __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
                return R13_OK;
        }
    }
    return R13_OK;
}

/* See r13.h. A snapshot: exact only while nobody else is checking. */
int r13_limiter_stats(r13_limiter *lim, uint64_t now_ns, uint32_t *used, uint32_t *busy)
{
    if (lim == NULL || lim->seg.addr == NULL || used == NULL || busy == NULL)
        return R13_EINVAL;
    rl_header *h = header_of(lim);
    uint64_t now;
    int rc = relative_now(h, now_ns, &now);
    if (rc != R13_OK)
        return rc;
    rl_slot *slots = slots_of(lim);
    uint32_t u = 0, b = 0;
    for (uint64_t i = 0; i < lim->slots; i++) {
        uint64_t st = __atomic_load_n(&slots[i].state, __ATOMIC_ACQUIRE);
        if (__atomic_load_n(&slots[i].key, __ATOMIC_RELAXED) == 0)
            continue;
        u++;
        if (!is_evicting(st) && tat_of(st) > now)
            b++;
    }
    *used = u;
    *busy = b;
    return R13_OK;
}
