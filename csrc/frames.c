/* The frame codec of the live channel (to be written). */
#include "r13.h"

int r13_frame_decode(const uint8_t *buf, size_t len, int direction, r13_frame *out)
{
    return R13_EINVAL;
}
int r13_frame_encode(const r13_frame *f, int direction, uint8_t *out, size_t cap,
                     size_t *written)
{
    return R13_EINVAL;
}
