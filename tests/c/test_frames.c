/*
 * tests/c/test_frames.c — the frame codec through its C API, plus an
 * in-process fuzz loop. Built with ASan/UBSan by the pytest runner:
 *
 *   cc -std=gnu11 -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=all
 *      -Icsrc csrc/errors.c csrc/shm.c csrc/record.c csrc/ratelimit.c
 *      csrc/frames.c tests/c/test_frames.c -lrt -lpthread
 *
 * and run with a temporary directory as argv[1] (unused: the codec does no
 * I/O). Exits 0 when every check passes. Every decode in the fuzz loop gets
 * an exactly-sized heap copy of its input, so ASan catches a read even one
 * byte past the end.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "r13.h"
#include "check.h"




/* Decode a heap copy of exactly n bytes, so overreads hit a redzone. */
static int decode_copy(const uint8_t *src, size_t n, int dir, r13_frame *out)
{
    uint8_t *buf = malloc(n ? n : 1);
    if (buf == NULL)
        abort();
    if (n)
        memcpy(buf, src, n);
    int rc = r13_frame_decode(buf, n, dir, out);
    /* out->data points into buf: touch it before freeing. */
    volatile uint8_t sink = 0;
    if (rc == R13_OK)
        for (size_t i = 0; i < out->data_len; i++)
            sink ^= out->data[i];
    (void)sink;
    free(buf);
    return rc;
}

static void test_round_trips(void)
{
    uint8_t out[64];
    size_t n;
    r13_frame f, g;
    static const uint8_t rec[13] = {1, 0xde, 0xad, 0xbe, 0xef, 5, 0, 0, 0, 1, 24, 60, 0};

    memset(&f, 0, sizeof f);
    f.type = R13_FRAME_HEARTBEAT;
    f.sent_ns = 0x0102030405060708ULL;
    f.seq = 0x0a0b0c0d;
    CHECK_RC(r13_frame_encode(&f, R13_FROM_CLIENT, out, sizeof out, &n), R13_OK);
    CHECK(n == 13);
    static const uint8_t hb[13] = {3, 8, 7, 6, 5, 4, 3, 2, 1, 0x0d, 0x0c, 0x0b, 0x0a};
    CHECK(memcmp(out, hb, 13) == 0);
    for (int dir = 0; dir <= 1; dir++) {
        CHECK_RC(decode_copy(out, n, dir, &g), R13_OK);
        CHECK(g.type == 3 && g.sent_ns == f.sent_ns && g.seq == f.seq);
    }

    memset(&f, 0, sizeof f);
    f.type = R13_FRAME_CONFIG;
    f.generation = 0xdeadbeef;
    f.data = rec;
    f.data_len = 13;
    CHECK_RC(r13_frame_encode(&f, R13_FROM_SERVER, out, sizeof out, &n), R13_OK);
    CHECK(n == 18 && out[1] == 0xef && out[4] == 0xde && memcmp(out + 5, rec, 13) == 0);
    CHECK_RC(r13_frame_decode(out, n, R13_FROM_SERVER, &g), R13_OK);
    CHECK(g.generation == 0xdeadbeef && g.data == out + 5 && g.data_len == 13);
    /* The same bytes from a client: a 16-byte write, too long. */
    CHECK_RC(r13_frame_decode(out, n, R13_FROM_CLIENT, &g), R13_ELONG);

    memset(&f, 0, sizeof f);
    f.type = R13_FRAME_CONFIG;
    f.offset = 9;
    f.data = rec;
    f.data_len = 4;
    CHECK_RC(r13_frame_encode(&f, R13_FROM_CLIENT, out, sizeof out, &n), R13_OK);
    CHECK(n == 6 && out[1] == 9);
    CHECK_RC(r13_frame_decode(out, n, R13_FROM_CLIENT, &g), R13_OK);
    CHECK(g.offset == 9 && g.data_len == 4 && memcmp(g.data, rec, 4) == 0);

    memset(&f, 0, sizeof f);
    f.type = R13_FRAME_FEATURE;
    f.bit = 31;
    f.on = 1;
    CHECK_RC(r13_frame_encode(&f, R13_FROM_CLIENT, out, sizeof out, &n), R13_OK);
    CHECK(n == 3 && out[1] == 31 && out[2] == 1);
    CHECK_RC(r13_frame_decode(out, n, R13_FROM_CLIENT, &g), R13_OK);
    CHECK(g.bit == 31 && g.on == 1);
    CHECK_RC(r13_frame_encode(&f, R13_FROM_SERVER, out, sizeof out, &n), R13_ETYPE);

    const char *msg = "h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";
    memset(&f, 0, sizeof f);
    f.type = R13_FRAME_ERROR;
    f.code = 0x1234;
    f.data = (const uint8_t *)msg;
    f.data_len = strlen(msg);
    CHECK_RC(r13_frame_encode(&f, R13_FROM_SERVER, out, sizeof out, &n), R13_OK);
    CHECK(n == 3 + strlen(msg) && out[1] == 0x34 && out[2] == 0x12);
    CHECK_RC(decode_copy(out, n, R13_FROM_SERVER, &g), R13_OK);
    CHECK(g.code == 0x1234 && g.data_len == strlen(msg));
    CHECK_RC(r13_frame_encode(&f, R13_FROM_CLIENT, out, sizeof out, &n), R13_ETYPE);

    memset(&f, 0, sizeof f);
    f.type = R13_FRAME_BROADCAST;
    f.topic = 4;
    f.data = NULL;
    f.data_len = 0; /* empty text is allowed; NULL data with length 0 too */
    CHECK_RC(r13_frame_encode(&f, R13_FROM_SERVER, out, sizeof out, &n), R13_OK);
    CHECK(n == 2 && out[0] == 5 && out[1] == 4);
    CHECK_RC(r13_frame_decode(out, n, R13_FROM_SERVER, &g), R13_OK);
    CHECK(g.topic == 4 && g.data_len == 0);
}

static void test_decode_errors(void)
{
    r13_frame g;
    uint8_t buf[32] = {0};

    CHECK_RC(r13_frame_decode(buf, 0, R13_FROM_CLIENT, &g), R13_ETRUNC);
    CHECK_RC(r13_frame_decode(NULL, 0, R13_FROM_SERVER, &g), R13_ETRUNC);
    CHECK_RC(r13_frame_decode(NULL, 1, R13_FROM_SERVER, &g), R13_EINVAL);
    CHECK_RC(r13_frame_decode(buf, 1, R13_FROM_SERVER, NULL), R13_EINVAL);
    CHECK_RC(r13_frame_decode(buf, 1, 2, &g), R13_EINVAL);
    CHECK_RC(r13_frame_decode(buf, 1, -1, &g), R13_EINVAL);
    for (int t = 0; t < 256; t++) {
        buf[0] = (uint8_t)t;
        int known = t >= 1 && t <= 5;
        if (!known) {
            CHECK_RC(r13_frame_decode(buf, 1, R13_FROM_CLIENT, &g), R13_ETYPE);
            CHECK_RC(r13_frame_decode(buf, 1, R13_FROM_SERVER, &g), R13_ETYPE);
        }
    }
    buf[0] = 2;
    CHECK_RC(r13_frame_decode(buf, 3, R13_FROM_SERVER, &g), R13_ETYPE);
    buf[0] = 4;
    CHECK_RC(r13_frame_decode(buf, 3, R13_FROM_CLIENT, &g), R13_ETYPE);
    buf[0] = 5;
    CHECK_RC(r13_frame_decode(buf, 3, R13_FROM_CLIENT, &g), R13_ETYPE);

    /* config write: 1..13 bytes, offset + len <= 13 */
    buf[0] = 1;
    CHECK_RC(r13_frame_decode(buf, 1, R13_FROM_CLIENT, &g), R13_ETRUNC);
    CHECK_RC(r13_frame_decode(buf, 2, R13_FROM_CLIENT, &g), R13_ETRUNC);
    CHECK_RC(r13_frame_decode(buf, 15, R13_FROM_CLIENT, &g), R13_OK);
    CHECK_RC(r13_frame_decode(buf, 16, R13_FROM_CLIENT, &g), R13_ELONG);
    buf[1] = 12;
    CHECK_RC(r13_frame_decode(buf, 3, R13_FROM_CLIENT, &g), R13_OK);
    CHECK_RC(r13_frame_decode(buf, 4, R13_FROM_CLIENT, &g), R13_EVALUE);
    buf[1] = 13;
    CHECK_RC(r13_frame_decode(buf, 3, R13_FROM_CLIENT, &g), R13_EVALUE);
    buf[1] = 0;
    /* config state: exactly 18 */
    CHECK_RC(r13_frame_decode(buf, 17, R13_FROM_SERVER, &g), R13_ETRUNC);
    CHECK_RC(r13_frame_decode(buf, 19, R13_FROM_SERVER, &g), R13_ELONG);
    /* feature: exactly 3, bit <= 31, on <= 1 */
    buf[0] = 2;
    CHECK_RC(r13_frame_decode(buf, 2, R13_FROM_CLIENT, &g), R13_ETRUNC);
    CHECK_RC(r13_frame_decode(buf, 4, R13_FROM_CLIENT, &g), R13_ELONG);
    buf[1] = 32;
    CHECK_RC(r13_frame_decode(buf, 3, R13_FROM_CLIENT, &g), R13_EVALUE);
    buf[1] = 0;
    buf[2] = 2;
    CHECK_RC(r13_frame_decode(buf, 3, R13_FROM_CLIENT, &g), R13_EVALUE);
    buf[2] = 0;
    /* heartbeat: exactly 13 */
    buf[0] = 3;
    CHECK_RC(r13_frame_decode(buf, 12, R13_FROM_CLIENT, &g), R13_ETRUNC);
    CHECK_RC(r13_frame_decode(buf, 14, R13_FROM_SERVER, &g), R13_ELONG);
    /* error / broadcast heads */
    buf[0] = 4;
    CHECK_RC(r13_frame_decode(buf, 2, R13_FROM_SERVER, &g), R13_ETRUNC);
    buf[0] = 5;
    CHECK_RC(r13_frame_decode(buf, 1, R13_FROM_SERVER, &g), R13_ETRUNC);

    /* On error the output is zeroed. */
    memset(&g, 0xab, sizeof g);
    CHECK_RC(r13_frame_decode(buf, 1, R13_FROM_SERVER, &g), R13_ETRUNC);
    CHECK(g.type == 0 && g.data == NULL && g.data_len == 0);
}

static void test_utf8(void)
{
    static const struct {
        const char *text;
        int ok;
    } cases[] = {
        {"", 1},
        {"plain ascii, longer than eight bytes", 1},
        {"\xc2\x80", 1},
        {"\xdf\xbf", 1},
        {"\xe0\xa0\x80", 1},
        {"\xed\x9f\xbf", 1},          /* U+D7FF */
        {"\xee\x80\x80", 1},          /* U+E000 */
        {"\xef\xbf\xbf", 1},          /* U+FFFF */
        {"\xf0\x90\x80\x80", 1},      /* U+10000 */
        {"\xf4\x8f\xbf\xbf", 1},      /* U+10FFFF */
        {"\x80", 0},
        {"\xbf", 0},
        {"\xc0\x80", 0},              /* overlong NUL */
        {"\xc1\xbf", 0},
        {"\xe0\x9f\xbf", 0},          /* overlong 3-byte */
        {"\xf0\x8f\xbf\xbf", 0},      /* overlong 4-byte */
        {"\xed\xa0\x80", 0},          /* U+D800 */
        {"\xed\xbf\xbf", 0},          /* U+DFFF */
        {"\xf4\x90\x80\x80", 0},      /* U+110000 */
        {"\xf5\x80\x80\x80", 0},
        {"\xf8\x88\x80\x80\x80", 0},
        {"\xfe", 0},
        {"\xff", 0},
        {"\xc3", 0},                  /* truncated */
        {"\xe2\x82", 0},
        {"\xf0\x9f\x98", 0},
        {"\xe2\x28\xa1", 0},
        {"12345678\xc3", 0},          /* after the 8-byte ASCII fast path */
        {"1234567\xc3\xa9", 1},
    };
    uint8_t buf[64];
    r13_frame g, f;
    size_t n;
    uint8_t out[64];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = strlen(cases[i].text);
        int want = cases[i].ok ? R13_OK : R13_EUTF8;
        buf[0] = 5;
        buf[1] = 1;
        memcpy(buf + 2, cases[i].text, len);
        CHECK_RC(decode_copy(buf, 2 + len, R13_FROM_SERVER, &g), want);
        buf[0] = 4;
        buf[2] = 0;
        memcpy(buf + 3, cases[i].text, len);
        CHECK_RC(decode_copy(buf, 3 + len, R13_FROM_SERVER, &g), want);
        memset(&f, 0, sizeof f);
        f.type = R13_FRAME_BROADCAST;
        f.data = (const uint8_t *)cases[i].text;
        f.data_len = len;
        CHECK_RC(r13_frame_encode(&f, R13_FROM_SERVER, out, sizeof out, &n), want);
    }
}

static void test_size_cap(void)
{
    uint8_t *big = malloc(R13_FRAME_MAX + 2);
    r13_frame g, f;
    size_t n;
    if (big == NULL)
        abort();
    memset(big, 'x', R13_FRAME_MAX + 2);
    big[0] = 5;
    CHECK_RC(decode_copy(big, R13_FRAME_MAX, R13_FROM_SERVER, &g), R13_OK);
    CHECK_RC(decode_copy(big, R13_FRAME_MAX + 1, R13_FROM_SERVER, &g), R13_ELONG);
    big[0] = 4;
    CHECK_RC(decode_copy(big, R13_FRAME_MAX, R13_FROM_SERVER, &g), R13_OK);
    CHECK_RC(decode_copy(big, R13_FRAME_MAX + 1, R13_FROM_SERVER, &g), R13_ELONG);

    memset(&f, 0, sizeof f);
    f.type = R13_FRAME_BROADCAST;
    f.data = big + 2;
    f.data_len = R13_FRAME_MAX - 2;
    uint8_t *out = malloc(R13_FRAME_MAX);
    if (out == NULL)
        abort();
    CHECK_RC(r13_frame_encode(&f, R13_FROM_SERVER, out, R13_FRAME_MAX, &n), R13_OK);
    CHECK(n == R13_FRAME_MAX);
    CHECK_RC(r13_frame_encode(&f, R13_FROM_SERVER, out, R13_FRAME_MAX - 1, &n), R13_EBUFSZ);
    CHECK(n == R13_FRAME_MAX);
    f.data_len = R13_FRAME_MAX - 1;
    CHECK_RC(r13_frame_encode(&f, R13_FROM_SERVER, out, R13_FRAME_MAX, &n), R13_ELONG);
    f.data_len = SIZE_MAX; /* checked against the cap before anything is read */
    CHECK_RC(r13_frame_encode(&f, R13_FROM_SERVER, out, R13_FRAME_MAX, &n), R13_ELONG);
    f.type = R13_FRAME_CONFIG;
    CHECK_RC(r13_frame_encode(&f, R13_FROM_CLIENT, out, R13_FRAME_MAX, &n), R13_ELONG);
    CHECK_RC(r13_frame_encode(&f, R13_FROM_SERVER, out, R13_FRAME_MAX, &n), R13_ELONG);
    free(out);
    free(big);
}

static void test_encode_errors(void)
{
    r13_frame f;
    uint8_t out[32];
    size_t n = 99;
    static const uint8_t rec[13] = {1};

    memset(&f, 0, sizeof f);
    f.type = R13_FRAME_HEARTBEAT;
    CHECK_RC(r13_frame_encode(NULL, 0, out, sizeof out, &n), R13_EINVAL);
    CHECK_RC(r13_frame_encode(&f, 0, out, sizeof out, NULL), R13_EINVAL);
    CHECK_RC(r13_frame_encode(&f, 0, NULL, 1, &n), R13_EINVAL);
    CHECK_RC(r13_frame_encode(&f, 0, NULL, 0, &n), R13_EBUFSZ);
    CHECK(n == 13);
    CHECK_RC(r13_frame_encode(&f, 7, out, sizeof out, &n), R13_EINVAL);
    CHECK_RC(r13_frame_encode(&f, 0, out, 12, &n), R13_EBUFSZ);
    CHECK(n == 13);
    f.type = 0;
    CHECK_RC(r13_frame_encode(&f, 0, out, sizeof out, &n), R13_ETYPE);
    CHECK(n == 0);
    f.type = 6;
    CHECK_RC(r13_frame_encode(&f, 1, out, sizeof out, &n), R13_ETYPE);

    f.type = R13_FRAME_CONFIG;
    f.data = rec;
    f.data_len = 0;
    CHECK_RC(r13_frame_encode(&f, R13_FROM_CLIENT, out, sizeof out, &n), R13_ETRUNC);
    f.data_len = 14;
    CHECK_RC(r13_frame_encode(&f, R13_FROM_CLIENT, out, sizeof out, &n), R13_ELONG);
    f.data_len = 13;
    f.offset = 1;
    CHECK_RC(r13_frame_encode(&f, R13_FROM_CLIENT, out, sizeof out, &n), R13_EVALUE);
    f.offset = 0;
    CHECK_RC(r13_frame_encode(&f, R13_FROM_CLIENT, out, 14, &n), R13_EBUFSZ);
    CHECK_RC(r13_frame_encode(&f, R13_FROM_CLIENT, out, 15, &n), R13_OK);
    f.data_len = 12;
    CHECK_RC(r13_frame_encode(&f, R13_FROM_SERVER, out, sizeof out, &n), R13_ETRUNC);
    f.data = NULL;
    CHECK_RC(r13_frame_encode(&f, R13_FROM_SERVER, out, sizeof out, &n), R13_EINVAL);

    memset(&f, 0, sizeof f);
    f.type = R13_FRAME_FEATURE;
    f.bit = 32;
    CHECK_RC(r13_frame_encode(&f, R13_FROM_CLIENT, out, sizeof out, &n), R13_EVALUE);
    f.bit = 0;
    f.on = 2;
    CHECK_RC(r13_frame_encode(&f, R13_FROM_CLIENT, out, sizeof out, &n), R13_EVALUE);
}

/* xorshift64*: a fixed-seed PRNG, so a failure reproduces. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dULL;
}

/* A valid frame of a random type into buf; returns its length and direction. */
static size_t random_valid(uint8_t *buf, size_t cap, int *dir)
{
    r13_frame f;
    uint8_t payload[300];
    size_t n = 0;
    memset(&f, 0, sizeof f);
    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (uint8_t)(rnd() % 0x7f); /* ASCII keeps text valid */
    switch (rnd() % 6) {
    case 0:
        *dir = R13_FROM_CLIENT;
        f.type = R13_FRAME_CONFIG;
        f.offset = (uint8_t)(rnd() % 13);
        f.data_len = 1 + rnd() % (13 - f.offset);
        f.data = payload;
        break;
    case 1:
        *dir = R13_FROM_SERVER;
        f.type = R13_FRAME_CONFIG;
        f.generation = (uint32_t)rnd();
        f.data_len = 13;
        f.data = payload;
        break;
    case 2:
        *dir = R13_FROM_CLIENT;
        f.type = R13_FRAME_FEATURE;
        f.bit = (uint8_t)(rnd() % 32);
        f.on = (uint8_t)(rnd() & 1);
        break;
    case 3:
        *dir = (int)(rnd() & 1);
        f.type = R13_FRAME_HEARTBEAT;
        f.sent_ns = rnd();
        f.seq = (uint32_t)rnd();
        break;
    case 4:
        *dir = R13_FROM_SERVER;
        f.type = R13_FRAME_ERROR;
        f.code = (uint16_t)rnd();
        f.data_len = rnd() % 40;
        f.data = payload;
        break;
    default:
        *dir = R13_FROM_SERVER;
        f.type = R13_FRAME_BROADCAST;
        f.topic = (uint8_t)rnd();
        f.data_len = rnd() % sizeof payload;
        f.data = payload;
        break;
    }
    int rc = r13_frame_encode(&f, *dir, buf, cap, &n);
    CHECK_RC(rc, R13_OK);
    return rc == R13_OK ? n : 0;
}

/* Decode, and if it decodes, re-encode: the bytes must come back unchanged. */
static void fuzz_one(const uint8_t *data, size_t n, int dir, long *decoded)
{
    r13_frame g;
    int rc = decode_copy(data, n, dir, &g);
    CHECK(rc == R13_OK || (rc <= R13_ETRUNC && rc >= R13_EVALUE));
    if (rc != R13_OK)
        return;
    (*decoded)++;
    /* decode_copy freed the buffer: decode in place to re-encode. */
    CHECK_RC(r13_frame_decode(data, n, dir, &g), R13_OK);
    uint8_t *out = malloc(n);
    size_t w = 0;
    if (out == NULL)
        abort();
    CHECK_RC(r13_frame_encode(&g, dir, out, n, &w), R13_OK);
    CHECK(w == n && memcmp(out, data, n) == 0);
    free(out);
}

static void test_fuzz(long rounds)
{
    uint8_t *buf = malloc(R13_FRAME_MAX + 64);
    long decoded = 0;
    if (buf == NULL)
        abort();
    for (long r = 0; r < rounds && failures < 20; r++) {
        int dir = (int)(rnd() & 1);
        size_t n;
        uint64_t mode = rnd() % 8;
        if (mode == 0) {
            /* fully random, short */
            n = rnd() % 40;
            for (size_t i = 0; i < n; i++)
                buf[i] = (uint8_t)rnd();
        } else if (mode == 1 && r % 64 == 0) {
            /* rarely: big random frames around the cap */
            n = R13_FRAME_MAX - 8 + rnd() % 24;
            buf[0] = (uint8_t)(1 + rnd() % 6);
            uint8_t fill = (uint8_t)(rnd() & 0xff);
            memset(buf + 1, fill < 0x80 ? fill : 'a', n - 1);
            buf[1 + rnd() % (n - 1)] = (uint8_t)rnd();
        } else {
            /* a valid frame, then flip, truncate, extend or set bytes */
            n = random_valid(buf, R13_FRAME_MAX, &dir);
            int ops = 1 + (int)(rnd() % 3);
            for (int k = 0; k < ops; k++) {
                switch (rnd() % 5) {
                case 0:
                    if (n)
                        buf[rnd() % n] ^= (uint8_t)(1u << (rnd() % 8));
                    break;
                case 1:
                    n = n ? rnd() % n : 0;
                    break;
                case 2: {
                    size_t extra = 1 + rnd() % 8;
                    for (size_t i = 0; i < extra; i++)
                        buf[n + i] = (uint8_t)rnd();
                    n += extra;
                    break;
                }
                case 3:
                    if (n)
                        buf[rnd() % n] = (uint8_t)rnd();
                    break;
                default:
                    dir ^= 1;
                    break;
                }
            }
        }
        fuzz_one(buf, n, dir, &decoded);
    }
    /* The loop must actually reach the decoder's success paths. */
    CHECK(decoded > rounds / 20);
    printf("fuzz: %ld inputs, %ld decoded\n", rounds, decoded);
    free(buf);
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv; /* a temp dir: the codec does no I/O */
    long rounds = 200000;
    const char *env = getenv("R13_FUZZ_ROUNDS");
    if (env != NULL && atol(env) > 0)
        rounds = atol(env);
    test_round_trips();
    test_decode_errors();
    test_utf8();
    test_size_cap();
    test_encode_errors();
    test_fuzz(rounds);
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("test_frames: ok\n");
    return 0;
}
