/* C-level tests of the record, built with -fsanitize=address,undefined.
 * Usage: test_record DIR   (an empty, writable directory). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "r13.h"
#include "check.h"


static const uint8_t DEFAULTS[13] = {1, 0, 0, 0, 0, 0xe2, 0, 0, 0, 1, 24, 80, 0};

static void test_codec(void)
{
    r13_config c = {1, 0x11223344u, 0xa0b0c0d0u, 2, 40, 120, 7};
    uint8_t b[13];
    CHECK(r13_config_pack(&c, b) == R13_OK);
    CHECK(b[0] == 1 && b[1] == 0x44 && b[4] == 0x11 && b[5] == 0xd0 && b[8] == 0xa0);
    CHECK(b[9] == 2 && b[10] == 40 && b[11] == 120 && b[12] == 7);
    r13_config d;
    CHECK(r13_config_unpack(b, &d) == R13_OK);
    CHECK(memcmp(&c, &d, sizeof c) == 0 || (d.registry_hash == c.registry_hash &&
                                             d.feature_flags == c.feature_flags));
    b[0] = 2;
    CHECK(r13_config_validate(b) == R13_EVERSION);
    b[0] = 1;
    b[9] = 3;
    CHECK(r13_config_validate(b) == R13_EMODE);
    c.terminal_mode = 9;
    CHECK(r13_config_pack(&c, b) == R13_EMODE);
    CHECK(r13_config_pack(NULL, b) == R13_EINVAL);
    CHECK(r13_config_unpack(NULL, &d) == R13_EINVAL);
    CHECK(strcmp(r13_strerror(R13_ESIZE), "record file does not hold exactly 13 bytes") == 0);
    CHECK(r13_strerror(-999) != NULL);
}

static void test_updates(const char *base)
{
    char dir[4096];
    subdir(dir, sizeof dir, base, "updates");
    r13_record rec, other;
    r13_snapshot s;
    CHECK(r13_record_open(&rec, dir, DEFAULTS) == R13_OK);
    CHECK(r13_record_open(&other, dir, DEFAULTS) == R13_OK);
    CHECK(r13_record_read(&rec, &s) == R13_OK);
    CHECK(memcmp(s.bytes, DEFAULTS, 13) == 0);
    uint64_t g0 = s.generation;

    uint8_t rows[2] = {50, 132};
    CHECK(r13_record_write(&rec, 10, rows, 2, &s) == R13_OK);
    CHECK(s.generation == g0 + 1);
    CHECK(r13_record_read(&other, &s) == R13_OK && s.bytes[10] == 50 && s.bytes[11] == 132);

    /* Every out-of-range write is refused and changes nothing. */
    uint8_t big[14] = {0};
    CHECK(r13_record_write(&rec, 12, big, 2, NULL) == R13_ERANGE);
    CHECK(r13_record_write(&rec, 13, big, 1, NULL) == R13_ERANGE);
    CHECK(r13_record_write(&rec, 0, big, 14, NULL) == R13_ERANGE);
    CHECK(r13_record_write(&rec, 0, big, 0, NULL) == R13_ERANGE);
    CHECK(r13_record_write(&rec, (size_t)-1, big, 2, NULL) == R13_ERANGE);
    uint8_t v2 = 2, m3 = 3;
    CHECK(r13_record_write(&rec, 0, &v2, 1, NULL) == R13_EVERSION);
    CHECK(r13_record_write(&rec, 9, &m3, 1, NULL) == R13_EMODE);
    CHECK(r13_record_set_bit(&rec, 32, 1, NULL) == R13_ERANGE);
    CHECK(r13_record_generation(&rec, &g0) == R13_OK && g0 == s.generation);

    /* The generation word: the same number, moved by a change in another handle. */
    const uint64_t *word = NULL;
    CHECK(r13_record_generation_word(&rec, &word) == R13_OK && word != NULL);
    CHECK(word != NULL && __atomic_load_n(word, __ATOMIC_ACQUIRE) == g0);
    CHECK(r13_record_set_bit(&other, 3, 0, NULL) == R13_OK);
    CHECK(word != NULL && __atomic_load_n(word, __ATOMIC_ACQUIRE) == g0 + 1);
    CHECK(r13_record_read(&rec, &s) == R13_OK && s.generation == g0 + 1);
    CHECK(r13_record_generation_word(&rec, NULL) == R13_EINVAL);
    CHECK(r13_record_generation_word(NULL, &word) == R13_EINVAL);

    CHECK(r13_record_set_bit(&rec, 2, 1, &s) == R13_OK && (s.bytes[5] & 4));
    CHECK(r13_record_set_bit(&rec, 31, 1, &s) == R13_OK && (s.bytes[8] & 0x80));
    CHECK(r13_record_set_bit(&rec, 2, 0, &s) == R13_OK && !(s.bytes[5] & 4));
    CHECK(r13_record_replace(&rec, DEFAULTS, &s) == R13_OK);

    /* A patch takes the masked bits from `values` and keeps every other bit,
     * including one another handle changed after the patch was prepared. */
    uint8_t mask[13] = {0}, values[13] = {0};
    mask[5] = 0x04;   /* DEBUG */
    values[5] = 0x04;
    mask[10] = 0xFF;  /* rows */
    values[10] = 40;
    values[11] = 99;  /* cols: not in the mask, so ignored */
    CHECK(r13_record_set_bit(&other, 0, 1, NULL) == R13_OK);
    uint64_t before = s.generation + 1;
    CHECK(r13_record_patch(&rec, mask, values, &s) == R13_OK);
    CHECK(s.generation == before + 1);
    CHECK((s.bytes[5] & 0x05) == 0x05 && s.bytes[10] == 40 && s.bytes[11] == DEFAULTS[11]);
    /* An invalid result (terminal mode 3) is refused and changes nothing. */
    mask[9] = 0xFF;
    values[9] = 3;
    CHECK(r13_record_patch(&rec, mask, values, NULL) == R13_EMODE);
    CHECK(r13_record_generation(&rec, &g0) == R13_OK && g0 == s.generation);
    CHECK(r13_record_patch(&rec, NULL, values, NULL) == R13_EINVAL);
    CHECK(r13_record_patch(&rec, mask, NULL, NULL) == R13_EINVAL);
    CHECK(r13_record_replace(&rec, DEFAULTS, &s) == R13_OK);
    CHECK(r13_record_save(&rec) == R13_OK);

    /* The file holds what the live copy holds. */
    char path[4200];
    snprintf(path, sizeof path, "%s/config.r13", dir);
    uint8_t file[16];
    int fd = open(path, O_RDONLY);
    CHECK(fd >= 0 && read(fd, file, sizeof file) == 13);
    close(fd);
    CHECK(memcmp(file, s.bytes, 13) == 0);

    CHECK(r13_record_close(&rec) == R13_OK);
    CHECK(r13_record_close(&rec) == R13_OK); /* twice is fine */
    const uint64_t *gone = NULL;
    CHECK(r13_record_generation_word(&rec, &gone) == R13_EINVAL && gone == NULL);
    CHECK(r13_record_read(&rec, &s) == R13_EINVAL);
    CHECK(r13_record_close(&other) == R13_OK);
}

static void test_bad_files(const char *base)
{
    char dir[4096], path[4200];
    subdir(dir, sizeof dir, base, "bad");
    snprintf(path, sizeof path, "%s/config.r13", dir);
    r13_record rec;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0 && write(fd, "short", 5) == 5);
    close(fd);
    CHECK(r13_record_open(&rec, dir, DEFAULTS) == R13_ESIZE);
    uint8_t bad[13];
    memcpy(bad, DEFAULTS, 13);
    bad[0] = 7;
    fd = open(path, O_WRONLY | O_TRUNC);
    CHECK(fd >= 0 && write(fd, bad, 13) == 13);
    close(fd);
    CHECK(r13_record_open(&rec, dir, DEFAULTS) == R13_EVERSION);
    CHECK(r13_record_open(&rec, dir, bad) == R13_EVERSION); /* bad defaults */
    CHECK(r13_record_open(&rec, "/nonexistent/r13/dir", DEFAULTS) == R13_ESHM);
    CHECK(r13_record_open(NULL, dir, DEFAULTS) == R13_EINVAL);
}

/* A writer killed while it holds the lock must not block the next one. */
static void test_killed_writers(const char *base)
{
    char dir[4096];
    subdir(dir, sizeof dir, base, "kill");
    r13_record rec;
    CHECK(r13_record_open(&rec, dir, DEFAULTS) == R13_OK);
    for (int i = 0; i < 30; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            r13_record mine;
            if (r13_record_open(&mine, dir, DEFAULTS) != R13_OK)
                _exit(3);
            for (unsigned n = 0;; n++) {
                uint8_t v = (uint8_t)n;
                r13_record_write(&mine, 12, &v, 1, NULL);
            }
        }
        struct timespec ts = {0, 1000000L * (1 + i % 7)};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        uint8_t v = (uint8_t)(200 + i % 50);
        r13_snapshot s;
        CHECK(r13_record_write(&rec, 10, &v, 1, &s) == R13_OK);
        CHECK(s.bytes[10] == v);
    }
    CHECK(r13_record_close(&rec) == R13_OK);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    test_codec();
    test_updates(argv[1]);
    test_bad_files(argv[1]);
    test_killed_writers(argv[1]);
    if (failures)
        fprintf(stderr, "%d failure(s)\n", failures);
    else
        printf("record: all checks passed\n");
    return failures ? 1 : 0;
}
