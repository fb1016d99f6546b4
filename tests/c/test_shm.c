/* C-level tests of shm.c's ownership rules, built with -fsanitize=address,undefined.
 * Usage: test_shm DIR   (an empty, writable directory).
 *
 * Another local user's segment or file must never be adopted: pre-created
 * segments (mode 0666, or another owner), lock files that are symlinks, of
 * another owner or writable by others, and a record file others may write
 * are all refused with R13_EOWNER. Run as root, the "other user" is uid
 * 65534 (nobody) in a forked child; as anyone else those cases are checked
 * with the objects this user can make. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "r13.h"
#include "check.h"

#define NOBODY 65534

static const uint8_t DEFAULTS[13] = {1, 0, 0, 0, 0, 0xe2, 0, 0, 0, 1, 24, 80, 0};

static void path_of(char *out, size_t cap, const char *dir, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

static mode_t mode_of_segment(const char *name)
{
    int fd = shm_open(name, O_RDONLY, 0);
    if (fd < 0)
        return (mode_t)-1;
    struct stat st;
    mode_t m = fstat(fd, &st) == 0 ? (st.st_mode & 07777) : (mode_t)-1;
    close(fd);
    return m;
}

/* Make segment `name` as another user would: mode 0666 (umask cleared). */
static void squat(const char *name, mode_t mode, size_t size)
{
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, mode);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    CHECK(fchmod(fd, mode) == 0);
    CHECK(ftruncate(fd, (off_t)size) == 0);
    close(fd);
}

static void test_created_segment_is_private(const char *base)
{
    char dir[4096], name[128];
    subdir(dir, sizeof dir, base, "private");
    r13_record rec;
    CHECK_RC(r13_record_open(&rec, dir, DEFAULTS), R13_OK);
    CHECK_RC(r13_shm_name(dir, "record", name, sizeof name), R13_OK);
    CHECK(strncmp(name, "/r13-record-", 12) == 0);
    CHECK(mode_of_segment(name) == 0600);
    char p[4200];
    struct stat st;
    const char *files[] = {".r13-shm.id", ".r13-record.init", ".r13-record.users", "config.r13"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        path_of(p, sizeof p, dir, files[i]);
        CHECK(stat(p, &st) == 0 && (st.st_mode & 07777) == 0600);
    }
    r13_record_close(&rec);
    CHECK(mode_of_segment(name) == (mode_t)-1); /* the last user removed it */
    /* The name is stable for the dir (the id file is reused) and needs room. */
    char again[128], small[8];
    CHECK_RC(r13_shm_name(dir, "record", again, sizeof again), R13_OK);
    CHECK(strcmp(name, again) == 0);
    CHECK_RC(r13_shm_name(dir, "record", small, sizeof small), R13_EBUFSZ);
    CHECK_RC(r13_shm_name(dir, "Bad/Name", again, sizeof again), R13_EINVAL);
}

static void test_world_writable_segment_is_refused(const char *base)
{
    char dir[4096], name[128];
    subdir(dir, sizeof dir, base, "squat");
    mode_t old = umask(0);
    CHECK_RC(r13_shm_name(dir, "record", name, sizeof name), R13_OK);
    squat(name, 0666, 4096);
    r13_record rec;
    CHECK_RC(r13_record_open(&rec, dir, DEFAULTS), R13_EOWNER);
    CHECK(r13_record_close(&rec) == R13_OK); /* safe after a failed open */
    shm_unlink(name);

    /* The same for the limiter's and the metrics' segments. */
    CHECK_RC(r13_shm_name(dir, "rl-security", name, sizeof name), R13_OK);
    squat(name, 0666, 1 << 16);
    r13_limiter lim;
    CHECK_RC(r13_limiter_open(&lim, dir, "security", 64), R13_EOWNER);
    shm_unlink(name);
    CHECK_RC(r13_shm_name(dir, "metrics", name, sizeof name), R13_OK);
    squat(name, 0644, 1 << 16); /* readable by others is refused too */
    r13_metrics m;
    CHECK_RC(r13_metrics_open(&m, dir), R13_EOWNER);
    shm_unlink(name);
    umask(old);

    /* With the squatter gone, everything opens. */
    CHECK_RC(r13_record_open(&rec, dir, DEFAULTS), R13_OK);
    r13_record_close(&rec);
}

static void test_stale_private_segment_is_rebuilt(const char *base)
{
    /* A 0600 segment of ours that nobody has attached (its users died): it
     * is started again from the file, whatever it holds. */
    char dir[4096], name[128];
    subdir(dir, sizeof dir, base, "stale");
    CHECK_RC(r13_shm_name(dir, "record", name, sizeof name), R13_OK);
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    CHECK(fd >= 0);
    CHECK(ftruncate(fd, 100) == 0);
    CHECK(write(fd, "garbage garbage garbage", 23) == 23);
    close(fd);
    r13_record rec;
    r13_snapshot s;
    CHECK_RC(r13_record_open(&rec, dir, DEFAULTS), R13_OK);
    CHECK(r13_record_read(&rec, &s) == R13_OK && memcmp(s.bytes, DEFAULTS, 13) == 0);
    CHECK(mode_of_segment(name) == 0600);
    r13_record_close(&rec);
}

static void test_lock_and_record_files(const char *base)
{
    char dir[4096], p[4200], target[4200];
    r13_record rec;
    struct stat st;

    /* A symlinked lock file (e.g. to a file of the attacker's) is refused. */
    subdir(dir, sizeof dir, base, "symlink");
    path_of(target, sizeof target, dir, "elsewhere");
    path_of(p, sizeof p, dir, ".r13-record.init");
    CHECK(symlink(target, p) == 0);
    CHECK_RC(r13_record_open(&rec, dir, DEFAULTS), R13_EOWNER);
    CHECK(lstat(target, &st) != 0); /* nothing was created through it */

    /* A lock file others may write is refused; one they may only read is narrowed. */
    subdir(dir, sizeof dir, base, "lockmode");
    path_of(p, sizeof p, dir, ".r13-record.users");
    int fd = open(p, O_RDWR | O_CREAT, 0600);
    CHECK(fd >= 0 && fchmod(fd, 0666) == 0);
    close(fd);
    CHECK_RC(r13_record_open(&rec, dir, DEFAULTS), R13_EOWNER);
    CHECK(chmod(p, 0644) == 0);
    CHECK_RC(r13_record_open(&rec, dir, DEFAULTS), R13_OK);
    r13_record_close(&rec);
    CHECK(stat(p, &st) == 0 && (st.st_mode & 07777) == 0600);

    /* config.r13 of an older version (0644) is narrowed; one others may write is refused. */
    subdir(dir, sizeof dir, base, "recordmode");
    CHECK_RC(r13_record_open(&rec, dir, DEFAULTS), R13_OK);
    r13_record_close(&rec);
    path_of(p, sizeof p, dir, "config.r13");
    CHECK(chmod(p, 0644) == 0);
    CHECK_RC(r13_record_open(&rec, dir, DEFAULTS), R13_OK);
    r13_record_close(&rec);
    CHECK(stat(p, &st) == 0 && (st.st_mode & 07777) == 0600);
    CHECK(chmod(p, 0662) == 0);
    CHECK_RC(r13_record_open(&rec, dir, DEFAULTS), R13_EOWNER);
    CHECK(chmod(p, 0600) == 0);
    CHECK(unlink(p) == 0 && symlink(target, p) == 0);
    CHECK_RC(r13_record_open(&rec, dir, DEFAULTS), R13_EOWNER);

    /* A tampered id file: refused, never guessed around. */
    subdir(dir, sizeof dir, base, "badid");
    path_of(p, sizeof p, dir, ".r13-shm.id");
    fd = open(p, O_WRONLY | O_CREAT, 0600);
    CHECK(fd >= 0 && write(fd, "not hex!", 8) == 8);
    close(fd);
    CHECK_RC(r13_record_open(&rec, dir, DEFAULTS), R13_ESHM);
    CHECK(chmod(p, 0666) == 0);
    CHECK_RC(r13_record_open(&rec, dir, DEFAULTS), R13_EOWNER);
}

/* Run `fn(arg)` as uid/gid NOBODY in a child; its exit status. */
static int as_nobody(void (*fn)(const char *), const char *arg)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (setgid(NOBODY) != 0 || setuid(NOBODY) != 0)
            _exit(3);
        fn(arg);
        _exit(failures ? 1 : 0);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void create_segment_as_other(const char *name)
{
    umask(0);
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    CHECK(fd >= 0);
    CHECK(fd < 0 || ftruncate(fd, 4096) == 0);
    if (fd >= 0)
        close(fd);
}

static void test_another_users_objects_are_refused(const char *base)
{
    if (geteuid() != 0) {
        /* Only root can act as another user; the mode cases above cover the rest. */
        fprintf(stderr, "test_shm: not root, other-owner cases checked by mode only\n");
        return;
    }
    char dir[4096], name[128], p[4200];
    r13_record rec;
    subdir(dir, sizeof dir, base, "other");
    CHECK_RC(r13_shm_name(dir, "record", name, sizeof name), R13_OK);
    /* Private to its owner, but that owner is not us: still refused. */
    CHECK(as_nobody(create_segment_as_other, name) == 0);
    struct stat st;
    int fd = shm_open(name, O_RDONLY, 0);
    CHECK(fd >= 0 && fstat(fd, &st) == 0 && st.st_uid == NOBODY);
    if (fd >= 0)
        close(fd);
    CHECK_RC(r13_record_open(&rec, dir, DEFAULTS), R13_EOWNER);
    shm_unlink(name);

    /* A lock file of another owner (mode 0600) is refused as well. */
    subdir(dir, sizeof dir, base, "otherlock");
    path_of(p, sizeof p, dir, ".r13-record.init");
    fd = open(p, O_RDWR | O_CREAT, 0600);
    CHECK(fd >= 0 && fchown(fd, NOBODY, NOBODY) == 0);
    close(fd);
    CHECK_RC(r13_record_open(&rec, dir, DEFAULTS), R13_EOWNER);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    test_created_segment_is_private(argv[1]);
    test_world_writable_segment_is_refused(argv[1]);
    test_stale_private_segment_is_rebuilt(argv[1]);
    test_lock_and_record_files(argv[1]);
    test_another_users_objects_are_refused(argv[1]);
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("test_shm: all checks passed\n");
    return 0;
}
