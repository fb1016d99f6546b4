/* Internal helpers shared by the C core; not part of the public API. */
#ifndef R13_INTERNAL_H
#define R13_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "r13.h"

/*
 * A shared-memory segment tied to one data dir.
 *
 * Two lock files in the dir decide its life: `.r13-<name>.init` (held
 * exclusively only while a process attaches or detaches) and
 * `.r13-<name>.users` (held shared by every process that has the segment
 * mapped). An attacher that can take `.users` exclusively knows nobody has
 * the segment, so it (re)creates it zeroed and sets *fresh = 1. The kernel
 * drops flocks when a process dies, so a crash of every user means the next
 * attacher rebuilds. The segment name comes from the dir's device and inode
 * and a random id kept in the dir, so two data dirs never share a segment
 * and users who cannot read the dir cannot learn the name. Lock files,
 * the id file and segments pass r13__check_private before use (R13_EOWNER).
 *
 * On success the caller owns *init_fd (still locked: initialise a fresh
 * segment, then call r13__shm_done) and *users_fd (keep until detach).
 */

/*
 * Ownership checks (shm.c). r13__check_private: 0 when fd is a regular file
 * (or segment) owned by our effective uid that group and others may not
 * write; R13_EOWNER otherwise (errno EPERM). Group/other read or execute
 * bits: R13_EOWNER unless `narrow`, which removes them instead.
 * r13__open_private: open(2) `path` with `flags` (| O_NOFOLLOW | O_CLOEXEC,
 * mode 0600 if created) and check it, narrowing; R13_EIO (errno from open)
 * when it cannot be opened, R13_EOWNER for a symlink or a failed check.
 */
int r13__check_private(int fd, int narrow);
int r13__open_private(const char *path, int flags, int *out);

/* A fresh segment gets `size` bytes; an existing one keeps its own size,
 * reported in shm->size for the caller to check against its header. */
int r13__shm_attach(r13__shm *shm, const char *dir, const char *name, size_t size);
/* Release the init lock taken by r13__shm_attach (the fd stays open). */
void r13__shm_done(r13__shm *shm);
/* Unmap and close; the last user unlinks the segment. Safe to call twice. */
void r13__shm_detach(r13__shm *shm);

/* FNV-1a 64 with a seed, for hashing keys into tables. */
static inline uint64_t r13__fnv1a64(const uint8_t *p, size_t n, uint64_t seed)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ seed;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

#endif
