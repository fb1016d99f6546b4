/*
 * Attach, rebuild and detach shared-memory segments tied to a data dir.
 *
 * Nothing another local user made is ever trusted. Every object r13 shares
 * between its processes is checked before use (r13__check_private): a
 * regular file or segment owned by our effective uid that no other user may
 * write. Segments must have no group/other bits at all; data-dir files that
 * only others may read (config.r13 of older versions was 0644) are narrowed
 * to the owner's bits. Anything else is R13_EOWNER, and nothing is attached.
 *
 * Segments are created only with O_CREAT | O_EXCL, mode 0600. Their names
 * carry the data dir's device and inode (two data dirs never share) and a
 * random id kept in <dir>/.r13-shm.id (mode 0600): a user who cannot read
 * the data dir cannot even learn the names to squat on them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "r13.h"
#include "r13_internal.h"

#define ID_FILE ".r13-shm.id"
#define ID_LEN 16
#define CREATE_TRIES 8

int r13__check_private(int fd, int narrow)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return R13_EIO;
    if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 022) != 0) {
        errno = EPERM;
        return R13_EOWNER;
    }
    if ((st.st_mode & 077) != 0) {
        if (!narrow) {
            errno = EPERM;
            return R13_EOWNER;
        }
        if (fchmod(fd, st.st_mode & 0700) != 0)
            return R13_EIO;
    }
    return R13_OK;
}

int r13__open_private(const char *path, int flags, int *out)
{
    int fd = open(path, flags | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        /* O_NOFOLLOW on a symlink: not something r13 made. */
        if (errno == ELOOP)
            return R13_EOWNER;
        return R13_EIO;
    }
    int rc = r13__check_private(fd, 1);
    if (rc != R13_OK) {
        int saved = errno;
        close(fd);
        errno = saved;
        return rc;
    }
    *out = fd;
    return R13_OK;
}

static int open_lock(const char *dir, const char *name, const char *suffix, int *out)
{
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/.r13-%s.%s", dir, name, suffix);
    if (n < 0 || (size_t)n >= sizeof path) {
        errno = ENAMETOOLONG;
        return R13_ESHM;
    }
    int rc = r13__open_private(path, O_RDWR | O_CREAT, out);
    return rc == R13_EIO ? R13_ESHM : rc;
}

static int lock(int fd, int op)
{
    int rc;
    do {
        rc = flock(fd, op);
    } while (rc != 0 && errno == EINTR);
    return rc;
}

static int valid_id(const char *id, size_t n)
{
    if (n != ID_LEN)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
            return 0;
    return 1;
}

/* Read the id file if it exists: R13_OK, or R13_EIO with errno ENOENT when
 * absent, or another code. */
static int read_id(const char *path, char id[ID_LEN + 1])
{
    int fd;
    int rc = r13__open_private(path, O_RDONLY, &fd);
    if (rc != R13_OK)
        return rc;
    char buf[ID_LEN + 1];
    ssize_t n;
    do {
        n = pread(fd, buf, sizeof buf, 0);
    } while (n < 0 && errno == EINTR);
    close(fd);
    if (n < 0)
        return R13_ESHM;
    if (!valid_id(buf, (size_t)n)) {
        /* Written whole and fsynced before it was linked into place: only
         * tampering gets here. */
        errno = EPROTO;
        return R13_ESHM;
    }
    memcpy(id, buf, ID_LEN);
    id[ID_LEN] = '\0';
    return R13_OK;
}

/* Write a new random id to a private temp file, fsync, and link it into
 * place; losing the race to another process is fine (its id wins). */
static int create_id(const char *dir, const char *path)
{
    uint64_t r[2];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        return R13_ESHM;
    char tmp[4200];
    int n = snprintf(tmp, sizeof tmp, "%s/%s.%ld.%016llx.tmp", dir, ID_FILE, (long)getpid(),
                     (unsigned long long)r[1]);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        errno = ENAMETOOLONG;
        return R13_ESHM;
    }
    char id[ID_LEN + 1];
    snprintf(id, sizeof id, "%016llx", (unsigned long long)r[0]);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return R13_ESHM;
    ssize_t w;
    do {
        w = write(fd, id, ID_LEN);
    } while (w < 0 && errno == EINTR);
    int rc = (w == ID_LEN && fsync(fd) == 0) ? R13_OK : R13_ESHM;
    close(fd);
    if (rc == R13_OK && link(tmp, path) != 0 && errno != EEXIST)
        rc = R13_ESHM;
    int saved = errno;
    unlink(tmp);
    errno = saved;
    return rc;
}

static int data_dir_id(const char *dir, char id[ID_LEN + 1])
{
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/%s", dir, ID_FILE);
    if (n < 0 || (size_t)n >= sizeof path) {
        errno = ENAMETOOLONG;
        return R13_ESHM;
    }
    for (int i = 0; i < CREATE_TRIES; i++) {
        int rc = read_id(path, id);
        if (rc != R13_EIO || errno != ENOENT)
            return rc == R13_EIO ? R13_ESHM : rc;
        rc = create_id(dir, path);
        if (rc != R13_OK)
            return rc;
    }
    errno = EAGAIN;
    return R13_ESHM;
}

static int valid_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 24)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

int r13_shm_name(const char *dir, const char *part, char *out, size_t cap)
{
    if (dir == NULL || part == NULL || out == NULL || !valid_name(part))
        return R13_EINVAL;
    struct stat st;
    if (stat(dir, &st) != 0)
        return R13_ESHM;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return R13_ESHM;
    }
    char id[ID_LEN + 1];
    int rc = data_dir_id(dir, id);
    if (rc != R13_OK)
        return rc;
    int n = snprintf(out, cap, "/r13-%s-%llx-%llx-%s", part, (unsigned long long)st.st_dev,
                     (unsigned long long)st.st_ino, id);
    if (n < 0 || (size_t)n >= cap)
        return R13_EBUFSZ;
    return R13_OK;
}

/*
 * Open the segment for an attacher that holds the init lock. `fresh`: we
 * also hold the users lock exclusively, so nobody else has the segment: a
 * new one is created (exclusively), or a leftover of ours from a run that
 * died is started again from zeroes. Otherwise others have it: open theirs.
 * Either way, whatever we map has passed r13__check_private.
 */
static int open_segment(const char *name, int fresh, size_t size, int *out, size_t *size_out)
{
    for (int i = 0; i < CREATE_TRIES; i++) {
        int fd;
        if (fresh) {
            fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
            if (fd >= 0) {
                if (ftruncate(fd, (off_t)size) != 0) {
                    int saved = errno;
                    close(fd);
                    shm_unlink(name);
                    errno = saved;
                    return R13_ESHM;
                }
                *out = fd;
                *size_out = size;
                return R13_OK;
            }
            if (errno != EEXIST)
                return R13_ESHM;
        }
        fd = shm_open(name, O_RDWR | O_CLOEXEC, 0);
        if (fd < 0) {
            if (errno == EACCES)
                return R13_EOWNER; /* it exists and we may not even open it */
            if (errno == ENOENT && fresh)
                continue; /* removed in between: create it again */
            return R13_ESHM;
        }
        int rc = r13__check_private(fd, 0);
        struct stat st;
        if (rc == R13_OK && fstat(fd, &st) != 0)
            rc = R13_ESHM;
        if (rc == R13_OK && fresh) {
            /* Ours and private, but nobody is attached: rebuild it. */
            if (ftruncate(fd, 0) != 0 || ftruncate(fd, (off_t)size) != 0)
                rc = R13_ESHM;
            st.st_size = (off_t)size;
        }
        if (rc == R13_OK && st.st_size <= 0) {
            errno = EPROTO;
            rc = R13_ESHM;
        }
        if (rc != R13_OK) {
            int saved = errno;
            close(fd);
            errno = saved;
            return rc;
        }
        *out = fd;
        *size_out = (size_t)st.st_size;
        return R13_OK;
    }
    errno = EAGAIN;
    return R13_ESHM;
}

int r13__shm_attach(r13__shm *shm, const char *dir, const char *name, size_t size)
{
    memset(shm, 0, sizeof *shm);
    shm->users_fd = shm->init_fd = -1;
    if (dir == NULL || name == NULL || !valid_name(name) || size == 0)
        return R13_EINVAL;
    int rc = r13_shm_name(dir, name, shm->name, sizeof shm->name);
    if (rc != R13_OK)
        return rc == R13_EBUFSZ ? R13_ESHM : rc;

    int init_fd = -1, users_fd = -1, fd = -1;
    rc = open_lock(dir, name, "init", &init_fd);
    if (rc != R13_OK)
        return rc;
    if (lock(init_fd, LOCK_EX) != 0) {
        close(init_fd);
        return R13_ESHM;
    }
    rc = open_lock(dir, name, "users", &users_fd);
    if (rc != R13_OK)
        goto fail_init;
    int fresh = flock(users_fd, LOCK_EX | LOCK_NB) == 0;

    rc = open_segment(shm->name, fresh, size, &fd, &size);
    if (rc != R13_OK)
        goto fail_users;
    void *addr = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (addr == MAP_FAILED) {
        rc = R13_ESHM;
        goto fail_users;
    }
    /* Downgrade (or take) the shared users lock while still holding init,
     * so no other attacher can see the dir as unused in between. */
    if (lock(users_fd, LOCK_SH) != 0) {
        munmap(addr, size);
        rc = R13_ESHM;
        goto fail_users;
    }
    shm->addr = addr;
    shm->size = size;
    shm->users_fd = users_fd;
    shm->init_fd = init_fd;
    shm->fresh = fresh;
    return R13_OK;

fail_users: {
    int saved = errno;
    close(users_fd);
    errno = saved;
}
fail_init: {
    int saved = errno;
    close(init_fd); /* drops the init lock */
    errno = saved;
}
    return rc;
}

void r13__shm_done(r13__shm *shm)
{
    if (shm->init_fd >= 0)
        flock(shm->init_fd, LOCK_UN);
}

void r13__shm_detach(r13__shm *shm)
{
    if (shm->addr == NULL)
        return;
    if (shm->init_fd >= 0)
        lock(shm->init_fd, LOCK_EX);
    munmap(shm->addr, shm->size);
    shm->addr = NULL;
    /* The last user removes the segment, so deleted data dirs leave nothing
     * behind in /dev/shm. */
    if (shm->init_fd >= 0 && shm->users_fd >= 0 &&
        flock(shm->users_fd, LOCK_EX | LOCK_NB) == 0)
        shm_unlink(shm->name);
    if (shm->users_fd >= 0)
        close(shm->users_fd);
    if (shm->init_fd >= 0)
        close(shm->init_fd); /* drops the init lock */
    shm->users_fd = shm->init_fd = -1;
}
