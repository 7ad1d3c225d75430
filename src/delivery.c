#include "delivery.h"

#include <stdlib.h>

#include "sendq.h"
#include "util.h"

typedef struct local_delivery {
    const es_transport *tx;
    void *tctx;
    size_t queue_bytes;
} local_delivery;

/*
 * Straight to the transport when nothing waits on s (no queue, no ping
 * owed, not closing), which saves the writeable round trip; otherwise
 * behind what waits, in the bounded queue.
 */
static int local_deliver(void *impl, es_session *s, char *payload, size_t len)
{
    local_delivery *d = impl;
    if (s->q.count == 0 && !s->ping_due && !s->close_code && d->tx->send_now &&
        d->tx->send_now(d->tctx, s, payload, len))
        return 0;
    if (es_sendq_push(&s->q, payload, len, d->queue_bytes) != 0)
        return -1;
    d->tx->want_write(d->tctx, s);
    return 0;
}

static void local_ping(void *impl, es_session *s)
{
    local_delivery *d = impl;
    if (s->ping_due || s->close_code)
        return;
    s->ping_due = 1;
    d->tx->want_write(d->tctx, s);
}

static void local_close(void *impl, es_session *s, int code)
{
    local_delivery *d = impl;
    if (s->close_code)
        return;
    s->close_code = code ? code : ES_CLOSE_NORMAL;
    d->tx->want_write(d->tctx, s);
}

static size_t local_discard(void *impl, es_session *s)
{
    (void)impl;
    size_t bytes = s->q.bytes;
    es_sendq_clear(&s->q);
    return bytes;
}

static void local_set_queue_limit(void *impl, size_t bytes) { ((local_delivery *)impl)->queue_bytes = bytes; }

static void local_destroy(void *impl) { free(impl); }

static const es_delivery_ops local_ops = {
    .name = "local",
    .deliver = local_deliver,
    .ping = local_ping,
    .close = local_close,
    .discard = local_discard,
    .set_queue_limit = local_set_queue_limit,
    .destroy = local_destroy,
};

es_delivery es_delivery_local(const es_transport *tx, void *tctx, size_t queue_bytes)
{
    local_delivery *d = es_xmalloc(sizeof *d);
    *d = (local_delivery){.tx = tx, .tctx = tctx, .queue_bytes = queue_bytes};
    return (es_delivery){.ops = &local_ops, .impl = d};
}

es_write es_local_next(es_session *s)
{
    if (s->ping_due && !s->close_code)
        return (es_write){.kind = ES_WRITE_PING};
    es_qmsg *m = es_sendq_peek(&s->q);
    if (m)
        return (es_write){.kind = ES_WRITE_MESSAGE, .payload = es_qmsg_payload(m), .len = m->len};
    if (s->close_code)
        return (es_write){.kind = ES_WRITE_CLOSE, .code = s->close_code};
    return (es_write){.kind = ES_WRITE_NOTHING};
}

int es_local_done(es_session *s, es_write_kind written)
{
    if (written == ES_WRITE_PING)
        s->ping_due = 0;
    else if (written == ES_WRITE_MESSAGE)
        es_sendq_pop(&s->q);
    return es_sendq_peek(&s->q) != NULL || s->close_code != 0;
}
