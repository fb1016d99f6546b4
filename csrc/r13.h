/*
 * r13.h — the one public header of the r13 C core.
 *
 * Three parts, each in its own .c file:
 *   record.c    the 13-byte record: its file and its live copy in shared memory
 *   ratelimit.c a shared-memory GCRA rate limiter, exact across processes
 *   frames.c    the binary frame codec of the live channel (r13.v1)
 * plus shm.c, the attach/rebuild logic both shared-memory parts use, and
 * errors.c, the error table.
 *
 * Conventions: every entry point returns 0 (R13_OK) or a negative R13_E* code.
 * Callers allocate every struct and buffer; nothing allocated here is handed
 * to the caller to free. No global mutable state.
 */
#ifndef R13_H
#define R13_H

#include <stddef.h>
#include <stdint.h>

/* ---- errors ------------------------------------------------------------ */

#define R13_ERRORS(X)                                                           \
    X(R13_OK, 0, "ok")                                                          \
    X(R13_EINVAL, -1, "invalid argument")                                       \
    X(R13_ERANGE, -2, "offset or length out of range")                          \
    X(R13_EVERSION, -3, "unsupported record version")                           \
    X(R13_EMODE, -4, "terminal mode out of range")                              \
    X(R13_ESIZE, -5, "record file does not hold exactly 13 bytes")              \
    X(R13_EIO, -6, "I/O error (errno says which)")                              \
    X(R13_ESHM, -7, "shared memory could not be set up (errno says why)")       \
    X(R13_EFULL, -8, "shared table is full (limiter keys or metrics slots)")      \
    X(R13_ETRUNC, -9, "frame is shorter than its type requires")                \
    X(R13_ETYPE, -10, "unknown frame type")                                     \
    X(R13_ELONG, -11, "frame is longer than its type allows")                   \
    X(R13_EBUFSZ, -12, "output buffer too small")                               \
    X(R13_EUTF8, -13, "text is not valid UTF-8")                                \
    X(R13_EVALUE, -14, "field value out of range")                              \
    X(R13_ECLOCK, -15, "monotonic clock unavailable or out of range")          \
    X(R13_EOWNER, -16, "shared segment or data-dir file is not private to this " \
                       "user (another owner, a symlink, or others may write it)")

#define R13__ERRENUM(name, value, text) name = value,
enum r13_error { R13_ERRORS(R13__ERRENUM) R13__ERR_LAST = -17 };
#undef R13__ERRENUM

/* Static text for a code; never NULL. */
const char *r13_strerror(int code);

/* ---- shared-memory segments (shm.c) ------------------------------------ */

/* A segment tied to one data dir; fields are private (see r13_internal.h). */
typedef struct r13__shm {
    void *addr;
    size_t size;
    int users_fd;   /* shared flock held while attached */
    int init_fd;    /* exclusive flock held only while (de)attaching */
    int fresh;      /* 1 when this attach created the segment */
    char name[128]; /* POSIX shm name */
} r13__shm;

/*
 * The POSIX shared-memory name (e.g. "/r13-record-803-2a41-<16 hex>") of
 * segment `part` ("record", "metrics", "rl-<name>") of data dir `dir`, into
 * out[cap] (128 bytes always suffice). Creates <dir>/.r13-shm.id, the random
 * part of every segment name of the dir, if absent. For error messages and
 * tests; R13_EOWNER when the id file is not private to this user.
 */
int r13_shm_name(const char *dir, const char *part, char *out, size_t cap);

/* ---- the 13-byte record (record.c) ------------------------------------- */

#define R13_RECORD_SIZE 13
#define R13_RECORD_VERSION 1
#define R13_OFF_VERSION 0
#define R13_OFF_REGISTRY 1
#define R13_OFF_FLAGS 5
#define R13_OFF_TERMMODE 9
#define R13_OFF_ROWS 10
#define R13_OFF_COLS 11
#define R13_OFF_RESERVED 12
#define R13_TERMMODE_MAX 2

/* The unpacked record. */
typedef struct r13_config {
    uint8_t version;
    uint32_t registry_hash;
    uint32_t feature_flags;
    uint8_t terminal_mode;
    uint8_t rows;
    uint8_t cols;
    uint8_t reserved;
} r13_config;

/* Pure functions on bytes: no shared state. */
int r13_config_pack(const r13_config *cfg, uint8_t out[R13_RECORD_SIZE]);
int r13_config_unpack(const uint8_t in[R13_RECORD_SIZE], r13_config *out);
/* 0 when the 13 bytes are a valid record, else R13_EVERSION / R13_EMODE. */
int r13_config_validate(const uint8_t in[R13_RECORD_SIZE]);

/*
 * An open record: the file <dir>/config.r13 and the live copy in shared
 * memory, shared by every process that opens the same directory.
 * Fields are private; the caller only allocates the struct.
 */
typedef struct r13_record {
    r13__shm seg;     /* the live copy */
    int file_fd;      /* config.r13, O_RDWR; -1 when closed */
} r13_record;

/* A consistent copy of the live record. */
typedef struct r13_snapshot {
    uint64_t generation;
    uint8_t bytes[R13_RECORD_SIZE];
} r13_snapshot;

/*
 * Open the record of data dir `dir` (NUL-terminated path; the dir must exist).
 * If config.r13 is absent it is created from `defaults` (validated) and made
 * durable. If it has another size: R13_ESIZE. If no other process has the
 * live copy open, it is rebuilt from the file. On error nothing stays open.
 * R13_EOWNER: the live copy, a lock file or config.r13 is not private to this
 * user (another owner, a symlink, or others may write it; see shm.c). The
 * same holds for r13_limiter_open and r13_metrics_open.
 */
int r13_record_open(r13_record *rec, const char *dir,
                    const uint8_t defaults[R13_RECORD_SIZE]);
/* Unmap and close; safe to call twice. */
int r13_record_close(r13_record *rec);
/* Lock-free read of the live record; never torn, never waits for writers. */
int r13_record_read(const r13_record *rec, r13_snapshot *out);
/* Just the generation number (increases on every change). */
int r13_record_generation(const r13_record *rec, uint64_t *out);
/*
 * Where the live copy keeps its generation number, for a reader that polls it
 * without a call (an aligned 64-bit word, only ever increased; read it with an
 * atomic or single 64-bit load). Valid while `rec` is open: the caller must
 * stop reading it before r13_record_close. R13_EINVAL when `rec` is not open.
 */
int r13_record_generation_word(const r13_record *rec, const uint64_t **out);
/*
 * Writers. Each validates the resulting record (R13_EVERSION/R13_EMODE/
 * R13_ERANGE leave everything unchanged), publishes it to the live copy,
 * and pwrites all 13 bytes to the file (no fsync). On success `out` (may be
 * NULL) receives the new snapshot.
 */
int r13_record_write(r13_record *rec, size_t offset, const uint8_t *data,
                     size_t len, r13_snapshot *out);
int r13_record_set_bit(r13_record *rec, unsigned bit, int on, r13_snapshot *out);
int r13_record_replace(r13_record *rec, const uint8_t bytes[R13_RECORD_SIZE],
                       r13_snapshot *out);
/*
 * Several edits in one change: every bit set in `mask` takes its value from
 * `values`, every other bit keeps the live record's (so a change another
 * process made to other bits in the meantime is kept). The terminal's `save`.
 */
int r13_record_patch(r13_record *rec, const uint8_t mask[R13_RECORD_SIZE],
                     const uint8_t values[R13_RECORD_SIZE], r13_snapshot *out);
/* fsync the file: makes the last write durable. */
int r13_record_save(r13_record *rec);

/* ---- the rate limiter (ratelimit.c) ------------------------------------ */

typedef struct r13_limiter {
    r13__shm seg;
    uint32_t slots;    /* number of slots (power of two) */
} r13_limiter;

/* Result of one check. Times are in nanoseconds from `now`. */
typedef struct r13_decision {
    uint8_t allowed;        /* 1 admitted, 0 refused */
    uint32_t remaining;     /* requests still admitted right now */
    uint64_t reset_ns;      /* until the bucket is full again */
    uint64_t retry_after_ns;/* 0 when allowed; else until one is admitted */
    uint8_t full;           /* 1: refused because the table is full (R13_EFULL) */
} r13_decision;

/*
 * One limit of a limiter, validated once for many checks: `capacity`
 * requests of `cost` refilled over `window_ms` (what r13_limiter_check takes
 * on every call). Filled by r13_limit_init; fields are private. It points
 * at `lim`, which must stay allocated (and open, else checks are R13_EINVAL)
 * while the limit is used.
 */
typedef struct r13_limit {
    const r13_limiter *lim;
    uint64_t t;       /* emission interval, ns */
    uint64_t tau;     /* burst tolerance = capacity * t, ns */
    uint64_t cost_t;  /* cost * t */
} r13_limit;

/*
 * Open (creating if needed) the limiter table `name` (1..21 characters of
 * [a-z0-9_-]) of data dir `dir` with `slots` slots (power of two, 64..2^24).
 * Processes opening the same dir and name share one table. An existing
 * table with another slot count is rebuilt only when nobody has it open;
 * otherwise its own slot count is used (lim->slots says which).
 */
int r13_limiter_open(r13_limiter *lim, const char *dir, const char *name,
                     uint32_t slots);
int r13_limiter_close(r13_limiter *lim);
/*
 * One request of `cost` for `key` against a bucket of `capacity` requests
 * refilled over `window_ms`. `now_ns` is a CLOCK_MONOTONIC time, or 0 to
 * read the clock. Exact across processes (lock-free CAS on one word per key).
 * When the table is full of busy entries: R13_EFULL, with `out` filled as a
 * refusal (full = 1) whose retry_after_ns says when a slot frees up (new
 * keys only; keys already in the table are never refused for lack of room).
 * R13_EINVAL: key not 1..256 bytes, capacity 0, cost not 1..capacity,
 * window_ms not 1..2^32 or shorter than `capacity` ns. R13_ECLOCK: clock
 * unreadable or `now_ns` outside the table's ~1.7-year range.
 */
int r13_limiter_check(r13_limiter *lim, const uint8_t *key, size_t keylen,
                      uint32_t capacity, uint64_t window_ms, uint32_t cost,
                      uint64_t now_ns, r13_decision *out);
/*
 * Validate `capacity`, `window_ms` and `cost` as r13_limiter_check does
 * (R13_EINVAL otherwise, `limit` then unusable) and keep them in `limit`.
 */
int r13_limit_init(r13_limit *limit, const r13_limiter *lim, uint32_t capacity,
                   uint64_t window_ms, uint32_t cost);
/*
 * r13_limiter_check for the limit's limiter, capacity, window and cost: the
 * same decision, codes and `out`, in fewer arguments (the hot path from
 * Python, where each argument costs a conversion). R13_EINVAL also for a
 * NULL or uninitialised limit, or a limiter that has been closed.
 */
int r13_limit_check(const r13_limit *limit, const uint8_t *key, size_t keylen,
                    uint64_t now_ns, r13_decision *out);
/*
 * A decision packed in one non-negative 64-bit value (the per-request call
 * from Python: no output struct to read back). Bit 0: admitted; bit 1: refused
 * because the table is full (R13_EFULL); bits 2..25: whole seconds until the
 * bucket is full again, rounded up; bits 26..57: when admitted, the requests
 * still admitted right now, else the whole seconds until one is (at least 1).
 * Seconds saturate at R13_PACK_SECONDS_MAX (a window is at most 2^32 ms,
 * about 4.3e6 s, so they never do). Bit 58 (R13_PACK_SECOND): r13_limit_take2
 * returned its second limit's decision.
 */
#define R13_PACK_ALLOWED 1
#define R13_PACK_FULL 2
#define R13_PACK_RESET_SHIFT 2
#define R13_PACK_COUNT_SHIFT 26
#define R13_PACK_SECONDS_MAX 0xFFFFFF
#define R13_PACK_SECOND (INT64_C(1) << 58)
/*
 * r13_limit_check with the decision packed as above, or a negative R13_E*
 * code (R13_EFULL is not an error here: the packed refusal says it).
 */
int64_t r13_limit_take(const r13_limit *limit, const uint8_t *key, size_t keylen,
                       uint64_t now_ns);
/*
 * Two limits of one request in one call, at one clock reading: `a` for `ka`,
 * then, only when `a` admits, `b` for `kb`. Returns the tighter decision
 * packed: `b`'s (with R13_PACK_SECOND set) when it refuses or leaves fewer
 * requests, else `a`'s. A bad
 * `b` or `kb` is R13_EINVAL before `a` counts anything.
 */
int64_t r13_limit_take2(const r13_limit *a, const uint8_t *ka, size_t la,
                        const r13_limit *b, const uint8_t *kb, size_t lb, uint64_t now_ns);
/* Forget `key` (e.g. on unblock): its bucket is full again. */
int r13_limiter_reset(r13_limiter *lim, const uint8_t *key, size_t keylen);
/* Number of slots holding a key, and of those busy at now_ns (0 = clock). */
int r13_limiter_stats(r13_limiter *lim, uint64_t now_ns, uint32_t *used,
                      uint32_t *busy);
/* CLOCK_MONOTONIC in ns (what the limiter uses). */
int r13_monotonic_ns(uint64_t *out);

/* ---- the frame codec (frames.c) ---------------------------------------- */

#define R13_FRAME_CONFIG 0x01
#define R13_FRAME_FEATURE 0x02
#define R13_FRAME_HEARTBEAT 0x03
#define R13_FRAME_ERROR 0x04
#define R13_FRAME_BROADCAST 0x05
#define R13_FRAME_MAX 65536  /* largest frame, type byte included */

/* Direction: which side sent the frame (0x01 has two payload shapes). */
#define R13_FROM_CLIENT 0
#define R13_FROM_SERVER 1

/*
 * One decoded frame. Which fields are set depends on `type` and direction:
 *   CONFIG from client: offset, data/data_len (1..13, offset+len <= 13)
 *   CONFIG from server: generation, record (data/data_len = 13)
 *   FEATURE:            bit (0..31), on (0/1)
 *   HEARTBEAT:          sent_ns, seq
 *   ERROR:              code, data/data_len (UTF-8 message)
 *   BROADCAST:          topic, data/data_len (UTF-8 JSON text)
 * `data` points into the decoded buffer: valid while that buffer is.
 */
typedef struct r13_frame {
    uint8_t type;
    uint8_t offset;
    uint8_t bit;
    uint8_t on;
    uint8_t topic;
    uint16_t code;
    uint32_t generation;
    uint32_t seq;
    uint64_t sent_ns;
    const uint8_t *data;
    size_t data_len;
} r13_frame;

/* Decode exactly `len` bytes. Any input: a frame or a negative code. */
int r13_frame_decode(const uint8_t *buf, size_t len, int direction,
                     r13_frame *out);
/*
 * Encode `f` (as sent in `direction`) into out[cap]; *written gets the size.
 * R13_EBUFSZ when cap is too small; nothing is read past data_len.
 */
int r13_frame_encode(const r13_frame *f, int direction, uint8_t *out,
                     size_t cap, size_t *written);

/* ---- shared request metrics (metrics.c) -------------------------------- */

/*
 * Counters shared by every process that opens the same data dir: requests
 * by route and status, bytes in and out, a latency histogram per route,
 * named event counters and gauges kept per process slot (so a killed
 * worker's in-flight requests can be reaped). Every update is one or a few
 * relaxed atomic adds: exact across processes, nothing to lose on SIGKILL.
 */
#define R13_METRICS_ROUTES 128      /* route ids 0..127; 0 = unmatched */
#define R13_METRICS_ROUTE_NAME 64   /* bytes per route name, NUL included */
#define R13_METRICS_STATUS_MIN 100
#define R13_METRICS_STATUS_MAX 599
#define R13_METRICS_BUCKETS 24      /* latency buckets; the last is +Inf */
#define R13_METRICS_EVENTS 16       /* named counters; names live in r13core */
#define R13_METRICS_GAUGES 4        /* named gauges summed over live slots */
#define R13_METRICS_SLOTS 256       /* processes that may have it open */

typedef struct r13_metrics {
    r13__shm seg;
    uint32_t slot;    /* this handle's gauge slot */
    uint32_t pid;     /* owner of the slot */
} r13_metrics;

/* Everything but the per-route detail, copied out in one call. */
typedef struct r13_metrics_totals {
    uint64_t started_ns;                      /* CLOCK_REALTIME at creation */
    uint64_t requests;                        /* all routes, all statuses */
    uint64_t by_class[6];                     /* [1]..[5] = 1xx..5xx */
    uint64_t bytes_in;
    uint64_t bytes_out;
    uint64_t latency_sum_ns;
    uint64_t latency[R13_METRICS_BUCKETS];    /* per bucket, not cumulative */
    uint64_t events[R13_METRICS_EVENTS];
    int64_t gauges[R13_METRICS_GAUGES];       /* summed over slots in use */
    uint32_t slots_used;
    uint32_t routes;                          /* route ids handed out */
} r13_metrics_totals;

/* One non-zero (route, status) request counter. */
typedef struct r13_metrics_cell {
    uint32_t route;
    uint32_t status;
    uint64_t count;
} r13_metrics_cell;

/*
 * Open (creating if needed) the metrics of data dir `dir` and claim a gauge
 * slot for this handle (slots of dead processes are reaped first). Open it
 * after fork. R13_EFULL when every slot belongs to a live process.
 */
int r13_metrics_open(r13_metrics *m, const char *dir);
/* Release the slot (its gauges are dropped) and detach; safe to call twice. */
int r13_metrics_close(r13_metrics *m);
/* Upper bounds of the latency buckets in ns (the last is UINT64_MAX). */
int r13_metrics_bounds(uint64_t *out, size_t cap);
/*
 * The id of route `name` (1..R13_METRICS_ROUTE_NAME-1 bytes, no NUL),
 * assigned on first use and the same in every process. R13_EFULL when the
 * table is full (count such requests under id 0).
 */
int r13_metrics_route(r13_metrics *m, const char *name, size_t len, uint32_t *id);
/* The name of route `id` into out[cap] (NUL-terminated); R13_ERANGE if unknown. */
int r13_metrics_route_name(const r13_metrics *m, uint32_t id, char *out, size_t cap);
/* A request begins: the in-flight gauge (0) of this slot goes up by one. */
int r13_metrics_request_start(r13_metrics *m);
/*
 * A request ended (after r13_metrics_request_start): count it by route and
 * status (100..599), add its bytes and latency, and lower the gauge again.
 */
int r13_metrics_request_end(r13_metrics *m, uint32_t route, unsigned status,
                            uint64_t bytes_in, uint64_t bytes_out,
                            uint64_t latency_ns);
/* Add `n` to event counter `event`. */
int r13_metrics_count(r13_metrics *m, unsigned event, uint64_t n);
/* Add `delta` to gauge `gauge` of this handle's slot. */
int r13_metrics_gauge_add(r13_metrics *m, unsigned gauge, int64_t delta);
/* Copy the totals out (each word read atomically; words may be from
 * slightly different instants, never torn). */
int r13_metrics_totals_read(const r13_metrics *m, r13_metrics_totals *out);
/* The non-zero request counters into out[cap]; *n gets how many exist
 * (R13_EBUFSZ with *n set when cap is too small). */
int r13_metrics_cells(const r13_metrics *m, r13_metrics_cell *out, size_t cap,
                      size_t *n);
/* One route's latency buckets (not cumulative) and sum. */
int r13_metrics_route_latency(const r13_metrics *m, uint32_t route,
                              uint64_t *buckets, size_t cap, uint64_t *sum_ns);
/* Free the slots of processes that no longer exist; *reaped gets how many. */
int r13_metrics_reap(r13_metrics *m, uint32_t *reaped);

#endif /* R13_H */
