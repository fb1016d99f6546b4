/* The record's costs at C level, no Python: lock-free read, the shared-memory
 * update alone (lock, copy, validate, publish, unlock: no file I/O), and a
 * full update with its pwrite. Built by bench/bench_config.py.
 * Usage: bench_record DIR ITERATIONS  -> prints "name ns_per_op" lines. */
#include "../../csrc/record.c"

#include "bench.h"

int main(int argc, char **argv)
{
    long n = bench_iterations(argc, argv, 1);
    if (n == 0)
        return 2;
    static const uint8_t defaults[13] = {1, 0, 0, 0, 0, 0xe2, 0, 0, 0, 1, 24, 80, 0};
    r13_record rec;
    if (r13_record_open(&rec, argv[1], defaults) != R13_OK)
        return 1;
    rec_seg *s = seg_of(&rec);
    r13_snapshot snap;
    volatile uint64_t sink = 0;

    double t0 = now_ns();
    for (long i = 0; i < n; i++) {
        r13_record_read(&rec, &snap);
        sink += snap.generation;
    }
    double t1 = now_ns();
    printf("read %.1f\n", (t1 - t0) / (double)n);

    t0 = now_ns();
    for (long i = 0; i < n; i++) {
        int repaired;
        writer_lock(&rec, &repaired);
        uint64_t g = __atomic_load_n(&s->generation, __ATOMIC_ACQUIRE);
        uint8_t next[R13_RECORD_SIZE];
        slot_load(s, (unsigned)(g & 1), next);
        next[10] = (uint8_t)i;
        if (r13_config_validate(next) == R13_OK)
            publish(s, g, next);
        pthread_mutex_unlock(&s->writer);
    }
    t1 = now_ns();
    printf("shm_update %.1f\n", (t1 - t0) / (double)n);

    long m = n / 10 > 0 ? n / 10 : 1;
    t0 = now_ns();
    for (long i = 0; i < m; i++) {
        uint8_t v = (uint8_t)i;
        r13_record_write(&rec, 10, &v, 1, NULL);
    }
    t1 = now_ns();
    printf("update_with_pwrite %.1f\n", (t1 - t0) / (double)m);
    r13_record_close(&rec);
    return sink == 0xdeadbeef ? 3 : 0;
}
