"""cffi build script for r13core._native (out-of-line API mode).

Kept out of the shipped package: setup.py names it in ``cffi_modules``.
The module embeds the package version and a hash of the C sources so that
``r13core._ffi`` can refuse a stale build.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SOURCES = ["errors.c", "shm.c", "record.c", "ratelimit.c", "frames.c", "metrics.c"]


def package_version() -> str:
    text = (ROOT / "r13core" / "_version.py").read_text()
    match = re.search(r'__version__\s*=\s*"([^"]+)"', text)
    if match is None:
        raise RuntimeError("r13core/_version.py has no __version__")
    return match.group(1)


def source_hash(csrc: Path = HERE) -> str:
    """Hash of every C source and header (what a rebuild would compile)."""
    digest = hashlib.sha256()
    for path in sorted(csrc.glob("*.[ch]")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


CDEF = """
enum r13_error {
    R13_OK, R13_EINVAL, R13_ERANGE, R13_EVERSION, R13_EMODE, R13_ESIZE, R13_EIO,
    R13_ESHM, R13_EFULL, R13_ETRUNC, R13_ETYPE, R13_ELONG, R13_EBUFSZ, R13_EUTF8,
    R13_EVALUE, R13_ECLOCK, R13_EOWNER, ...
};
#define R13_RECORD_SIZE ...
#define R13_FRAME_MAX ...

typedef struct r13_config {
    uint8_t version;
    uint32_t registry_hash;
    uint32_t feature_flags;
    uint8_t terminal_mode;
    uint8_t rows;
    uint8_t cols;
    uint8_t reserved;
} r13_config;
typedef struct r13_record { ...; } r13_record;
typedef struct r13_snapshot {
    uint64_t generation;
    uint8_t bytes[13];
} r13_snapshot;
typedef struct r13_limiter { uint32_t slots; ...; } r13_limiter;
typedef struct r13_decision {
    uint8_t allowed;
    uint32_t remaining;
    uint64_t reset_ns;
    uint64_t retry_after_ns;
    uint8_t full;
} r13_decision;
typedef struct r13_limit { ...; } r13_limit;
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

const char *r13_strerror(int code);
int r13_shm_name(const char *dir, const char *part, char *out, size_t cap);
extern const char r13_build_version[];
extern const char r13_build_source_hash[];

int r13_config_pack(const r13_config *cfg, uint8_t *out);
int r13_config_unpack(const uint8_t *in, r13_config *out);
int r13_config_validate(const uint8_t *in);

int r13_record_open(r13_record *rec, const char *dir, const uint8_t *defaults);
int r13_record_close(r13_record *rec);
int r13_record_read(const r13_record *rec, r13_snapshot *out);
int r13_record_generation(const r13_record *rec, uint64_t *out);
int r13_record_generation_word(const r13_record *rec, const uint64_t **out);
int r13_record_write(r13_record *rec, size_t offset, const uint8_t *data,
                     size_t len, r13_snapshot *out);
int r13_record_set_bit(r13_record *rec, unsigned bit, int on, r13_snapshot *out);
int r13_record_replace(r13_record *rec, const uint8_t *bytes, r13_snapshot *out);
int r13_record_patch(r13_record *rec, const uint8_t *mask, const uint8_t *values,
                     r13_snapshot *out);
int r13_record_save(r13_record *rec);

int r13_limiter_open(r13_limiter *lim, const char *dir, const char *name,
                     uint32_t slots);
int r13_limiter_close(r13_limiter *lim);
int r13_limiter_check(r13_limiter *lim, const uint8_t *key, size_t keylen,
                      uint32_t capacity, uint64_t window_ms, uint32_t cost,
                      uint64_t now_ns, r13_decision *out);
int r13_limit_init(r13_limit *limit, const r13_limiter *lim, uint32_t capacity,
                   uint64_t window_ms, uint32_t cost);
int r13_limit_check(const r13_limit *limit, const uint8_t *key, size_t keylen,
                    uint64_t now_ns, r13_decision *out);
#define R13_PACK_ALLOWED ...
#define R13_PACK_FULL ...
#define R13_PACK_RESET_SHIFT ...
#define R13_PACK_COUNT_SHIFT ...
#define R13_PACK_SECONDS_MAX ...
#define R13_PACK_SECOND ...
int64_t r13_limit_take(const r13_limit *limit, const uint8_t *key, size_t keylen,
                       uint64_t now_ns);
int64_t r13_limit_take2(const r13_limit *a, const uint8_t *ka, size_t la,
                        const r13_limit *b, const uint8_t *kb, size_t lb, uint64_t now_ns);
int r13_limiter_reset(r13_limiter *lim, const uint8_t *key, size_t keylen);
int r13_limiter_stats(r13_limiter *lim, uint64_t now_ns, uint32_t *used,
                      uint32_t *busy);
int r13_monotonic_ns(uint64_t *out);

int r13_frame_decode(const uint8_t *buf, size_t len, int direction,
                     r13_frame *out);
int r13_frame_encode(const r13_frame *f, int direction, uint8_t *out,
                     size_t cap, size_t *written);
// ---- shared request metrics (metrics.c)
#define R13_METRICS_ROUTES ...
#define R13_METRICS_ROUTE_NAME ...
#define R13_METRICS_BUCKETS ...
#define R13_METRICS_EVENTS ...
#define R13_METRICS_GAUGES ...
#define R13_METRICS_SLOTS ...
typedef struct r13_metrics { uint32_t slot; uint32_t pid; ...; } r13_metrics;
typedef struct r13_metrics_totals {
    uint64_t started_ns;
    uint64_t requests;
    uint64_t by_class[6];
    uint64_t bytes_in;
    uint64_t bytes_out;
    uint64_t latency_sum_ns;
    uint64_t latency[24];
    uint64_t events[16];
    int64_t gauges[4];
    uint32_t slots_used;
    uint32_t routes;
} r13_metrics_totals;
typedef struct r13_metrics_cell {
    uint32_t route;
    uint32_t status;
    uint64_t count;
} r13_metrics_cell;
int r13_metrics_open(r13_metrics *m, const char *dir);
int r13_metrics_close(r13_metrics *m);
int r13_metrics_bounds(uint64_t *out, size_t cap);
int r13_metrics_route(r13_metrics *m, const char *name, size_t len, uint32_t *id);
int r13_metrics_route_name(const r13_metrics *m, uint32_t id, char *out, size_t cap);
int r13_metrics_request_start(r13_metrics *m);
int r13_metrics_request_end(r13_metrics *m, uint32_t route, unsigned status,
                            uint64_t bytes_in, uint64_t bytes_out, uint64_t latency_ns);
int r13_metrics_count(r13_metrics *m, unsigned event, uint64_t n);
int r13_metrics_gauge_add(r13_metrics *m, unsigned gauge, int64_t delta);
int r13_metrics_totals_read(const r13_metrics *m, r13_metrics_totals *out);
int r13_metrics_cells(const r13_metrics *m, r13_metrics_cell *out, size_t cap, size_t *n);
int r13_metrics_route_latency(const r13_metrics *m, uint32_t route, uint64_t *buckets,
                              size_t cap, uint64_t *sum_ns);
int r13_metrics_reap(r13_metrics *m, uint32_t *reaped);
"""

# Hardening (checked by tests/test_build_hardening.py): canaries on every function
# with an array or an address-taken local, and glibc's checked variants of
# memcpy/snprintf/read... where sizes are known at compile time (needs -O1+;
# -U first so a distribution's own default cannot clash with ours).
HARDENING = ["-fstack-protector-strong", "-U_FORTIFY_SOURCE", "-D_FORTIFY_SOURCE=2"]
COMPILE_ARGS = [
    "-std=gnu11",
    "-O2",
    "-Wall",
    "-Wextra",
    "-Wno-unused-parameter",
    *HARDENING,
]

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "r13core._native",
    '#include "r13.h"\n'
    f'const char r13_build_version[] = "{package_version()}";\n'
    f'const char r13_build_source_hash[] = "{source_hash()}";\n',
    sources=[str((HERE / name).relative_to(ROOT)) for name in SOURCES],
    include_dirs=[str(HERE.relative_to(ROOT))],
    extra_compile_args=COMPILE_ARGS,
    libraries=["rt", "pthread"],
    py_limited_api=True,
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
