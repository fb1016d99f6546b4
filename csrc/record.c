/*
 * The 13-byte record: <dir>/config.r13 and its live copy in shared memory.
 *
 * The live copy is two 16-byte slots and a published generation number.
 * The current record is slot[generation & 1]. A writer (serialised by a
 * robust process-shared mutex) fills the other slot and then publishes
 * generation + 1; a reader loads the generation, copies that slot and loads
 * the generation again, retrying if it moved. Readers never wait on a
 * writer and never hold anything, so a writer killed at any instant leaves
 * the published slot intact; the robust mutex hands the lock to the next
 * writer, which repairs the file from the live copy.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "r13.h"
#include "r13_internal.h"

#define REC_MAGIC 0x31726563313372ULL /* "r13cer1" */
#define REC_SEG_NAME "record"
#define REC_FILE "config.r13"

typedef struct rec_seg {
    uint64_t magic;
    uint64_t generation;  /* atomic; the current slot is generation & 1 */
    uint64_t slot[2][2];  /* atomic words; 13 bytes used of each 16 */
    pthread_mutex_t writer;
} rec_seg;

/* ---- pure functions ---------------------------------------------------- */

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

int r13_config_validate(const uint8_t in[R13_RECORD_SIZE])
{
    if (in == NULL)
        return R13_EINVAL;
    if (in[R13_OFF_VERSION] != R13_RECORD_VERSION)
        return R13_EVERSION;
    if (in[R13_OFF_TERMMODE] > R13_TERMMODE_MAX)
        return R13_EMODE;
    return R13_OK;
}

int r13_config_pack(const r13_config *cfg, uint8_t out[R13_RECORD_SIZE])
{
    if (cfg == NULL || out == NULL)
        return R13_EINVAL;
    uint8_t b[R13_RECORD_SIZE];
    b[R13_OFF_VERSION] = cfg->version;
    put_u32(b + R13_OFF_REGISTRY, cfg->registry_hash);
    put_u32(b + R13_OFF_FLAGS, cfg->feature_flags);
    b[R13_OFF_TERMMODE] = cfg->terminal_mode;
    b[R13_OFF_ROWS] = cfg->rows;
    b[R13_OFF_COLS] = cfg->cols;
    b[R13_OFF_RESERVED] = cfg->reserved;
    int rc = r13_config_validate(b);
    if (rc != R13_OK)
        return rc;
    memcpy(out, b, sizeof b);
    return R13_OK;
}

int r13_config_unpack(const uint8_t in[R13_RECORD_SIZE], r13_config *out)
{
    if (in == NULL || out == NULL)
        return R13_EINVAL;
    int rc = r13_config_validate(in);
    if (rc != R13_OK)
        return rc;
    out->version = in[R13_OFF_VERSION];
    out->registry_hash = get_u32(in + R13_OFF_REGISTRY);
    out->feature_flags = get_u32(in + R13_OFF_FLAGS);
    out->terminal_mode = in[R13_OFF_TERMMODE];
    out->rows = in[R13_OFF_ROWS];
    out->cols = in[R13_OFF_COLS];
    out->reserved = in[R13_OFF_RESERVED];
    return R13_OK;
}

/* ---- the live copy ----------------------------------------------------- */

static rec_seg *seg_of(const r13_record *rec)
{
    return (rec_seg *)rec->seg.addr;
}

static void slot_load(const rec_seg *s, unsigned i, uint8_t out[R13_RECORD_SIZE])
{
    uint64_t w[2];
    w[0] = __atomic_load_n(&s->slot[i][0], __ATOMIC_RELAXED);
    w[1] = __atomic_load_n(&s->slot[i][1], __ATOMIC_RELAXED);
    memcpy(out, w, R13_RECORD_SIZE);
}

static void slot_store(rec_seg *s, unsigned i, const uint8_t in[R13_RECORD_SIZE])
{
    uint64_t w[2] = {0, 0};
    memcpy(w, in, R13_RECORD_SIZE);
    __atomic_store_n(&s->slot[i][0], w[0], __ATOMIC_RELAXED);
    __atomic_store_n(&s->slot[i][1], w[1], __ATOMIC_RELAXED);
}

int r13_record_read(const r13_record *rec, r13_snapshot *out)
{
    if (rec == NULL || out == NULL || rec->seg.addr == NULL)
        return R13_EINVAL;
    const rec_seg *s = seg_of(rec);
    for (;;) {
        uint64_t g1 = __atomic_load_n(&s->generation, __ATOMIC_ACQUIRE);
        slot_load(s, (unsigned)(g1 & 1), out->bytes);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        uint64_t g2 = __atomic_load_n(&s->generation, __ATOMIC_RELAXED);
        if (g1 == g2) {
            out->generation = g1;
            return R13_OK;
        }
    }
}

int r13_record_generation(const r13_record *rec, uint64_t *out)
{
    if (rec == NULL || out == NULL || rec->seg.addr == NULL)
        return R13_EINVAL;
    *out = __atomic_load_n(&seg_of(rec)->generation, __ATOMIC_ACQUIRE);
    return R13_OK;
}

int r13_record_generation_word(const r13_record *rec, const uint64_t **out)
{
    if (rec == NULL || out == NULL || rec->seg.addr == NULL)
        return R13_EINVAL;
    *out = &seg_of(rec)->generation;
    return R13_OK;
}

static int pwrite_all(int fd, const uint8_t *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pwrite(fd, buf + done, len - done, (off_t)done);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return R13_EIO;
        }
        done += (size_t)n;
    }
    return R13_OK;
}

/* Make `next` the current record (caller holds the writer lock and read
 * generation `g`). */
static void publish(rec_seg *s, uint64_t g, const uint8_t next[R13_RECORD_SIZE])
{
    /* Readers that copy the slot we are about to overwrite must see the
     * generation already moved past it: order our earlier load of the
     * generation (and the publish that produced it) before these stores. */
    __atomic_thread_fence(__ATOMIC_RELEASE);
    slot_store(s, (unsigned)((g + 1) & 1), next);
    __atomic_store_n(&s->generation, g + 1, __ATOMIC_RELEASE);
}

static int writer_lock(r13_record *rec, int *repaired)
{
    rec_seg *s = seg_of(rec);
    int rc = pthread_mutex_lock(&s->writer);
    *repaired = 0;
    if (rc == EOWNERDEAD) {
        /* A writer died holding the lock. The live copy is whole (its slot
         * was never published), but the file may lag: rewrite it below. */
        pthread_mutex_consistent(&s->writer);
        *repaired = 1;
        return R13_OK;
    }
    return rc == 0 ? R13_OK : R13_ESHM;
}

typedef enum { OP_WRITE, OP_BIT, OP_REPLACE, OP_PATCH } rec_op;

static int update(r13_record *rec, rec_op op, size_t offset, const uint8_t *data,
                  size_t len, unsigned bit, int on, const uint8_t *mask, r13_snapshot *out)
{
    if (rec == NULL || rec->seg.addr == NULL || rec->file_fd < 0)
        return R13_EINVAL;
    if (op == OP_WRITE && (data == NULL || len == 0 || offset >= R13_RECORD_SIZE ||
                           len > R13_RECORD_SIZE - offset))
        return R13_ERANGE;
    if (op == OP_BIT && bit >= 32)
        return R13_ERANGE;
    if ((op == OP_REPLACE || op == OP_PATCH) && data == NULL)
        return R13_EINVAL;
    if (op == OP_PATCH && mask == NULL)
        return R13_EINVAL;

    rec_seg *s = seg_of(rec);
    int repaired;
    int rc = writer_lock(rec, &repaired);
    if (rc != R13_OK)
        return rc;

    uint64_t g = __atomic_load_n(&s->generation, __ATOMIC_ACQUIRE);
    uint8_t cur[R13_RECORD_SIZE], next[R13_RECORD_SIZE];
    slot_load(s, (unsigned)(g & 1), cur);
    memcpy(next, cur, sizeof next);
    if (op == OP_WRITE) {
        memcpy(next + offset, data, len);
    } else if (op == OP_BIT) {
        uint32_t flags = get_u32(next + R13_OFF_FLAGS);
        flags = on ? (flags | (UINT32_C(1) << bit)) : (flags & ~(UINT32_C(1) << bit));
        put_u32(next + R13_OFF_FLAGS, flags);
    } else if (op == OP_PATCH) {
        for (size_t i = 0; i < R13_RECORD_SIZE; i++)
            next[i] = (uint8_t)((cur[i] & (uint8_t)~mask[i]) | (data[i] & mask[i]));
    } else {
        memcpy(next, data, R13_RECORD_SIZE);
    }
    rc = r13_config_validate(next);
    if (rc != R13_OK) {
        if (repaired)
            pwrite_all(rec->file_fd, cur, sizeof cur);
        pthread_mutex_unlock(&s->writer);
        return rc;
    }
    /* The file first: if it fails, nothing changed for anyone. */
    rc = pwrite_all(rec->file_fd, next, sizeof next);
    if (rc != R13_OK) {
        pthread_mutex_unlock(&s->writer);
        return rc;
    }
    publish(s, g, next);
    pthread_mutex_unlock(&s->writer);

    if (out != NULL) {
        out->generation = g + 1;
        memcpy(out->bytes, next, sizeof next);
    }
    return R13_OK;
}

int r13_record_write(r13_record *rec, size_t offset, const uint8_t *data, size_t len,
                     r13_snapshot *out)
{
    return update(rec, OP_WRITE, offset, data, len, 0, 0, NULL, out);
}

int r13_record_set_bit(r13_record *rec, unsigned bit, int on, r13_snapshot *out)
{
    return update(rec, OP_BIT, 0, NULL, 0, bit, on, NULL, out);
}

int r13_record_replace(r13_record *rec, const uint8_t bytes[R13_RECORD_SIZE],
                       r13_snapshot *out)
{
    return update(rec, OP_REPLACE, 0, bytes, R13_RECORD_SIZE, 0, 0, NULL, out);
}

int r13_record_patch(r13_record *rec, const uint8_t mask[R13_RECORD_SIZE],
                     const uint8_t values[R13_RECORD_SIZE], r13_snapshot *out)
{
    return update(rec, OP_PATCH, 0, values, R13_RECORD_SIZE, 0, 0, mask, out);
}

int r13_record_save(r13_record *rec)
{
    if (rec == NULL || rec->file_fd < 0)
        return R13_EINVAL;
    int rc;
    do {
        rc = fsync(rec->file_fd);
    } while (rc != 0 && errno == EINTR);
    return rc == 0 ? R13_OK : R13_EIO;
}

/* ---- open / close ------------------------------------------------------ */

static int read_exact(int fd, uint8_t *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, buf + done, len - done, (off_t)done);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return R13_EIO;
        }
        if (n == 0)
            return R13_ESIZE;
        done += (size_t)n;
    }
    return R13_OK;
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return R13_EIO;
    int rc = fsync(fd);
    close(fd);
    return rc == 0 ? R13_OK : R13_EIO;
}

/* Create the file (mode 0600) with `defaults` so that no reader ever sees
 * it short: write a private temp file, fsync, link it into place (fails if another
 * process got there first, which is fine), fsync the dir. */
static int create_file(const char *dir, const char *path,
                       const uint8_t defaults[R13_RECORD_SIZE])
{
    char tmp[4200];
    int n = snprintf(tmp, sizeof tmp, "%s/.%s.%ld.tmp", dir, REC_FILE, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof tmp)
        return R13_EINVAL;
    int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0 && errno == EEXIST) {
        /* Left by a crashed process with our pid; we hold the init lock. */
        unlink(tmp);
        fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    }
    if (fd < 0)
        return R13_EIO;
    int rc = pwrite_all(fd, defaults, R13_RECORD_SIZE);
    if (rc == R13_OK && fsync(fd) != 0)
        rc = R13_EIO;
    close(fd);
    if (rc == R13_OK && link(tmp, path) != 0 && errno != EEXIST)
        rc = R13_EIO;
    unlink(tmp);
    if (rc == R13_OK)
        rc = fsync_dir(dir);
    return rc;
}

static int init_segment(rec_seg *s, const uint8_t bytes[R13_RECORD_SIZE])
{
    pthread_mutexattr_t attr;
    if (pthread_mutexattr_init(&attr) != 0)
        return R13_ESHM;
    int ok = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED) == 0 &&
             pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST) == 0 &&
             pthread_mutex_init(&s->writer, &attr) == 0;
    pthread_mutexattr_destroy(&attr);
    if (!ok)
        return R13_ESHM;
    slot_store(s, 1, bytes);
    __atomic_store_n(&s->generation, 1, __ATOMIC_RELEASE);
    __atomic_store_n(&s->magic, REC_MAGIC, __ATOMIC_RELEASE);
    return R13_OK;
}

int r13_record_open(r13_record *rec, const char *dir,
                    const uint8_t defaults[R13_RECORD_SIZE])
{
    if (rec == NULL || dir == NULL || defaults == NULL)
        return R13_EINVAL;
    memset(rec, 0, sizeof *rec);
    rec->file_fd = -1;
    rec->seg.users_fd = rec->seg.init_fd = -1;
    int rc = r13_config_validate(defaults);
    if (rc != R13_OK)
        return rc;
    char path[4200];
    int n = snprintf(path, sizeof path, "%s/%s", dir, REC_FILE);
    if (n < 0 || (size_t)n >= sizeof path)
        return R13_EINVAL;

    /* Holding the segment's init lock serialises file creation too. */
    rc = r13__shm_attach(&rec->seg, dir, REC_SEG_NAME, sizeof(rec_seg));
    if (rc != R13_OK)
        return rc;

    /* Only a file of ours that nobody else may write (a 0644 file of an
     * older version is narrowed to 0600). */
    int fd = -1;
    rc = r13__open_private(path, O_RDWR, &fd);
    if (rc == R13_EIO && errno == ENOENT) {
        rc = create_file(dir, path, defaults);
        if (rc != R13_OK)
            goto fail;
        rc = r13__open_private(path, O_RDWR, &fd);
    }
    if (rc != R13_OK)
        goto fail;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = R13_EIO;
        goto fail_fd;
    }
    if (!S_ISREG(st.st_mode) || st.st_size != R13_RECORD_SIZE) {
        rc = R13_ESIZE;
        goto fail_fd;
    }
    if (rec->seg.size < sizeof(rec_seg)) {
        rc = R13_ESHM;
        goto fail_fd;
    }
    rec_seg *s = seg_of(rec);
    if (rec->seg.fresh) {
        uint8_t bytes[R13_RECORD_SIZE];
        rc = read_exact(fd, bytes, sizeof bytes);
        if (rc == R13_OK)
            rc = r13_config_validate(bytes);
        if (rc == R13_OK)
            rc = init_segment(s, bytes);
        if (rc != R13_OK)
            goto fail_fd;
    } else if (__atomic_load_n(&s->magic, __ATOMIC_ACQUIRE) != REC_MAGIC) {
        rc = R13_ESHM;
        goto fail_fd;
    }
    rec->file_fd = fd;
    r13__shm_done(&rec->seg);
    return R13_OK;

fail_fd:
    close(fd);
fail:
    r13__shm_detach(&rec->seg);
    return rc;
}

int r13_record_close(r13_record *rec)
{
    if (rec == NULL)
        return R13_EINVAL;
    r13__shm_detach(&rec->seg);
    if (rec->file_fd >= 0) {
        close(rec->file_fd);
        rec->file_fd = -1;
    }
    return R13_OK;
}
