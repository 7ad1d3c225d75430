/*
 * fuzz_bus - the messages between nodes (src/bus.h) as another node, or
 * anyone who can publish on Redis, might send them.
 *
 * A Redis message is decoded packet by packet, as cluster.c does. Beyond
 * "no crash, no read out of bounds", every packet the decoder accepts must
 * be canonical: writing the decoded message back gives exactly the bytes
 * it was read from, so nothing past the fields the type implies is ever
 * let through.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "bus.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    size_t n = size;
    es_buf b;
    es_buf_init(&b);
    while (n > 0) {
        es_bus_msg m;
        size_t used = 0;
        if (es_bus_decode(p, n, &m, &used) != ES_BUS_OK)
            break;
        if (used == 0 || used > n)
            abort();
        es_buf_reset(&b);
        es_bus_encode(&b, &m);
        if (b.len != used || memcmp(es_buf_data(&b), p, used) != 0)
            abort();
        p += used;
        n -= used;
    }
    es_buf_free(&b);
    return 0;
}
