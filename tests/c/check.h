/* What every C test program shares: a failure count, CHECK/CHECK_RC, and a
 * helper to make a subdirectory of the work dir. Include once per program. */
#ifndef R13_TEST_CHECK_H
#define R13_TEST_CHECK_H

#include <stdio.h>
#include <sys/stat.h>

#include "r13.h"

static int failures;

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,   \
                    #cond);                                                    \
            failures++;                                                        \
        }                                                                      \
    } while (0)

#define CHECK_RC(expr, want)                                                   \
    do {                                                                       \
        int rc_ = (expr);                                                      \
        if (rc_ != (want)) {                                                   \
            fprintf(stderr, "%s:%d: %s returned %d (%s), want %d (%s)\n",      \
                    __FILE__, __LINE__, #expr, rc_, r13_strerror(rc_), (want), \
                    r13_strerror(want));                                       \
            failures++;                                                        \
        }                                                                      \
    } while (0)

/* out = base/name, created (mode 0700) if absent. */
static inline void subdir(char *out, size_t cap, const char *base, const char *name)
{
    snprintf(out, cap, "%s/%s", base, name);
    mkdir(out, 0700);
}

#endif
