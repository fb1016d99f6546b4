/* Attach, rebuild and detach shared-memory segments tied to a data dir. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "r13.h"
#include "r13_internal.h"

static int open_lock(const char *dir, const char *name, const char *suffix)
{
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/.r13-%s.%s", dir, name, suffix);
    if (n < 0 || (size_t)n >= sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
}

static int lock(int fd, int op)
{
    int rc;
    do {
        rc = flock(fd, op);
    } while (rc != 0 && errno == EINTR);
    return rc;
}

static int segment_name(char *out, size_t cap, const char *dir, const char *name)
{
    struct stat st;
    if (stat(dir, &st) != 0)
        return -1;
    int n = snprintf(out, cap, "/r13-%s-%llx-%llx", name,
                     (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
    if (n < 0 || (size_t)n >= cap) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
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

int r13__shm_attach(r13__shm *shm, const char *dir, const char *name, size_t size)
{
    memset(shm, 0, sizeof *shm);
    shm->users_fd = shm->init_fd = -1;
    if (dir == NULL || name == NULL || !valid_name(name) || size == 0)
        return R13_EINVAL;
    if (segment_name(shm->name, sizeof shm->name, dir, name) != 0)
        return R13_ESHM;

    int init_fd = open_lock(dir, name, "init");
    if (init_fd < 0)
        return R13_ESHM;
    if (lock(init_fd, LOCK_EX) != 0) {
        close(init_fd);
        return R13_ESHM;
    }
    int users_fd = open_lock(dir, name, "users");
    if (users_fd < 0)
        goto fail_init;
    int fresh = flock(users_fd, LOCK_EX | LOCK_NB) == 0;

    int fd = shm_open(shm->name, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        goto fail_users;
    struct stat st;
    if (fresh) {
        /* Nobody has it: start from zeroes whatever was there. */
        if (ftruncate(fd, 0) != 0 || ftruncate(fd, (off_t)size) != 0)
            goto fail_fd;
    } else {
        if (fstat(fd, &st) != 0)
            goto fail_fd;
        if (st.st_size <= 0) {
            errno = EPROTO;
            goto fail_fd;
        }
        size = (size_t)st.st_size;
    }
    void *addr = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (addr == MAP_FAILED)
        goto fail_users;
    /* Downgrade (or take) the shared users lock while still holding init,
     * so no other attacher can see the dir as unused in between. */
    if (lock(users_fd, LOCK_SH) != 0) {
        munmap(addr, size);
        goto fail_users;
    }
    shm->addr = addr;
    shm->size = size;
    shm->users_fd = users_fd;
    shm->init_fd = init_fd;
    shm->fresh = fresh;
    return R13_OK;

fail_fd:
    close(fd);
fail_users:
    close(users_fd);
fail_init:
    close(init_fd);
    return R13_ESHM;
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
