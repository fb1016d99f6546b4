/*
 * The binary frame codec of the live channel (subprotocol r13.v1).
 *
 * One WebSocket message is one frame: a type byte and a payload whose shape
 * depends on the type and on who sent it (the table in r13core/frames.py).
 * Integers are little-endian. The decoder is the first thing hostile input reaches, so it
 * reads only inside [buf, buf + len), checks every length exactly, and
 * validates text as strict UTF-8 (no overlongs, no surrogates, nothing above
 * U+10FFFF, no truncated sequences). The encoder applies the same rules, so
 * whatever we send decodes on the other side.
 *
 * The order of the checks is part of the contract (the Python twin in
 * r13core/frames.py follows it): empty input, then the type (unknown or not
 * sent in this direction), then the total size cap, then the payload.
 *
 * Pure functions: no state, no allocation, no I/O.
 */
#include <string.h>

#include "r13.h"

#define CONFIG_STATE_SIZE (1 + 4 + R13_RECORD_SIZE)
#define FEATURE_SIZE (1 + 1 + 1)
#define HEARTBEAT_SIZE (1 + 8 + 4)
#define ERROR_HEAD (1 + 2)
#define BROADCAST_HEAD (1 + 1)
#define FEATURE_BITS 32

static uint16_t get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const uint8_t *p)
{
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static void put_u64(uint8_t *p, uint64_t v)
{
    put_u32(p, (uint32_t)v);
    put_u32(p + 4, (uint32_t)(v >> 32));
}

/*
 * 0 when s[0..n) is well-formed UTF-8 (Unicode 15, table 3-7), else
 * R13_EUTF8. The second byte's range depends on the lead byte; that is where
 * overlongs (E0, F0), surrogates (ED) and code points above U+10FFFF (F4)
 * are refused.
 */
static int r13__utf8_check(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        /* ASCII runs dominate JSON text: skip them eight bytes at a time. */
        while (n - i >= 8) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ULL)
                break;
            i += 8;
        }
        if (i >= n)
            break;
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint8_t lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0)
                lo = 0xA0;
            else if (c == 0xED)
                hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0)
                lo = 0x90;
            else if (c == 0xF4)
                hi = 0x8F;
        } else {
            return R13_EUTF8; /* continuation byte, C0/C1, F5..FF */
        }
        if (n - i - 1 < need)
            return R13_EUTF8; /* truncated sequence */
        if (s[i + 1] < lo || s[i + 1] > hi)
            return R13_EUTF8;
        for (size_t k = 2; k <= need; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                return R13_EUTF8;
        i += need + 1;
    }
    return R13_OK;
}

/* ETYPE unless `type` is a frame that `direction` may send. */
static int r13__type_check(uint8_t type, int direction)
{
    switch (type) {
    case R13_FRAME_CONFIG:
    case R13_FRAME_HEARTBEAT:
        return R13_OK;
    case R13_FRAME_FEATURE:
        return direction == R13_FROM_CLIENT ? R13_OK : R13_ETYPE;
    case R13_FRAME_ERROR:
    case R13_FRAME_BROADCAST:
        return direction == R13_FROM_SERVER ? R13_OK : R13_ETYPE;
    default:
        return R13_ETYPE;
    }
}

/* ETRUNC when shorter than `size`, ELONG when longer. */
static int r13__exact(size_t len, size_t size)
{
    if (len < size)
        return R13_ETRUNC;
    if (len > size)
        return R13_ELONG;
    return R13_OK;
}

/*
 * A client's config write: 1..13 bytes at `offset`. More than 13 bytes can
 * never fit (ELONG); 13 or fewer that run past the record's end have a bad
 * offset (EVALUE).
 */
static int r13__config_write_check(size_t offset, size_t n)
{
    if (n == 0)
        return R13_ETRUNC;
    if (n > R13_RECORD_SIZE)
        return R13_ELONG;
    if (offset + n > R13_RECORD_SIZE)
        return R13_EVALUE;
    return R13_OK;
}

/*
 * Decode the `len` bytes at `buf`, sent by `direction`, into the caller's
 * `out`. Reads nothing outside buf[0..len); out->data points into buf.
 * Errors: EINVAL (NULL pointers, bad direction), ETRUNC (empty or short),
 * ETYPE (unknown type, or one this direction never sends), ELONG (over
 * R13_FRAME_MAX or longer than the type allows), EVALUE (feature bit > 31,
 * on > 1, config write past byte 13), EUTF8 (error or broadcast text).
 * On error *out is left zeroed.
 */
int r13_frame_decode(const uint8_t *buf, size_t len, int direction, r13_frame *out)
{
    if (out == NULL || (buf == NULL && len > 0))
        return R13_EINVAL;
    memset(out, 0, sizeof *out);
    if (direction != R13_FROM_CLIENT && direction != R13_FROM_SERVER)
        return R13_EINVAL;
    if (len == 0)
        return R13_ETRUNC;
    uint8_t type = buf[0];
    int rc = r13__type_check(type, direction);
    if (rc != R13_OK)
        return rc;
    if (len > R13_FRAME_MAX)
        return R13_ELONG;

    r13_frame f;
    memset(&f, 0, sizeof f);
    f.type = type;
    switch (type) {
    case R13_FRAME_CONFIG:
        if (direction == R13_FROM_CLIENT) {
            if (len < 2)
                return R13_ETRUNC;
            rc = r13__config_write_check(buf[1], len - 2);
            if (rc != R13_OK)
                return rc;
            f.offset = buf[1];
            f.data = buf + 2;
            f.data_len = len - 2;
        } else {
            rc = r13__exact(len, CONFIG_STATE_SIZE);
            if (rc != R13_OK)
                return rc;
            f.generation = get_u32(buf + 1);
            f.data = buf + 5;
            f.data_len = R13_RECORD_SIZE;
        }
        break;
    case R13_FRAME_FEATURE:
        rc = r13__exact(len, FEATURE_SIZE);
        if (rc != R13_OK)
            return rc;
        if (buf[1] >= FEATURE_BITS || buf[2] > 1)
            return R13_EVALUE;
        f.bit = buf[1];
        f.on = buf[2];
        break;
    case R13_FRAME_HEARTBEAT:
        rc = r13__exact(len, HEARTBEAT_SIZE);
        if (rc != R13_OK)
            return rc;
        f.sent_ns = get_u64(buf + 1);
        f.seq = get_u32(buf + 9);
        break;
    case R13_FRAME_ERROR:
        if (len < ERROR_HEAD)
            return R13_ETRUNC;
        rc = r13__utf8_check(buf + ERROR_HEAD, len - ERROR_HEAD);
        if (rc != R13_OK)
            return rc;
        f.code = get_u16(buf + 1);
        f.data = buf + ERROR_HEAD;
        f.data_len = len - ERROR_HEAD;
        break;
    case R13_FRAME_BROADCAST:
        if (len < BROADCAST_HEAD)
            return R13_ETRUNC;
        rc = r13__utf8_check(buf + BROADCAST_HEAD, len - BROADCAST_HEAD);
        if (rc != R13_OK)
            return rc;
        f.topic = buf[1];
        f.data = buf + BROADCAST_HEAD;
        f.data_len = len - BROADCAST_HEAD;
        break;
    default:
        return R13_ETYPE; /* unreachable: r13__type_check */
    }
    *out = f;
    return R13_OK;
}

/*
 * Encode `f` as sent by `direction` into out[0..cap). Validates exactly what
 * the decoder checks (same codes, same order), then EBUFSZ if cap is too
 * small; on EBUFSZ *written receives the size needed, otherwise 0 on error.
 * Reads f->data[0..data_len) only. Errors: EINVAL (NULL f or written, NULL
 * out with cap > 0, NULL data with data_len > 0, bad direction), ETYPE,
 * ETRUNC, ELONG, EVALUE, EUTF8, EBUFSZ.
 */
int r13_frame_encode(const r13_frame *f, int direction, uint8_t *out, size_t cap,
                     size_t *written)
{
    if (f == NULL || written == NULL)
        return R13_EINVAL;
    *written = 0;
    if ((out == NULL && cap > 0) || (f->data == NULL && f->data_len > 0))
        return R13_EINVAL;
    if (direction != R13_FROM_CLIENT && direction != R13_FROM_SERVER)
        return R13_EINVAL;
    int rc = r13__type_check(f->type, direction);
    if (rc != R13_OK)
        return rc;

    size_t size;
    switch (f->type) {
    case R13_FRAME_CONFIG:
        if (direction == R13_FROM_CLIENT) {
            rc = r13__config_write_check(f->offset, f->data_len);
            size = 2 + f->data_len;
        } else {
            rc = r13__exact(f->data_len, R13_RECORD_SIZE);
            size = CONFIG_STATE_SIZE;
        }
        break;
    case R13_FRAME_FEATURE:
        rc = (f->bit >= FEATURE_BITS || f->on > 1) ? R13_EVALUE : R13_OK;
        size = FEATURE_SIZE;
        break;
    case R13_FRAME_HEARTBEAT:
        size = HEARTBEAT_SIZE;
        break;
    case R13_FRAME_ERROR:
    case R13_FRAME_BROADCAST: {
        size_t head = f->type == R13_FRAME_ERROR ? ERROR_HEAD : BROADCAST_HEAD;
        if (f->data_len > R13_FRAME_MAX - head)
            return R13_ELONG;
        rc = r13__utf8_check(f->data, f->data_len);
        size = head + f->data_len;
        break;
    }
    default:
        return R13_ETYPE; /* unreachable: r13__type_check */
    }
    if (rc != R13_OK)
        return rc;
    if (size > cap) {
        *written = size;
        return R13_EBUFSZ;
    }

    out[0] = f->type;
    switch (f->type) {
    case R13_FRAME_CONFIG:
        if (direction == R13_FROM_CLIENT) {
            out[1] = f->offset;
            memcpy(out + 2, f->data, f->data_len);
        } else {
            put_u32(out + 1, f->generation);
            memcpy(out + 5, f->data, R13_RECORD_SIZE);
        }
        break;
    case R13_FRAME_FEATURE:
        out[1] = f->bit;
        out[2] = f->on;
        break;
    case R13_FRAME_HEARTBEAT:
        put_u64(out + 1, f->sent_ns);
        put_u32(out + 9, f->seq);
        break;
    case R13_FRAME_ERROR:
        put_u16(out + 1, f->code);
        if (f->data_len > 0)
            memcpy(out + ERROR_HEAD, f->data, f->data_len);
        break;
    default: /* R13_FRAME_BROADCAST */
        out[1] = f->topic;
        if (f->data_len > 0)
            memcpy(out + BROADCAST_HEAD, f->data, f->data_len);
        break;
    }
    *written = size;
    return R13_OK;
}
