#include "sendq.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "util.h"

int es_sendq_push(es_sendq *q, const char *data, size_t len, size_t cap)
{
    if (len > cap || q->bytes > cap - len)
        return -1;
    es_qmsg *m = es_xmalloc(sizeof *m + ES_WIRE_HEADROOM + len);
    m->next = NULL;
    m->len = len;
    memcpy(m->mem + ES_WIRE_HEADROOM, data, len);
    if (q->tail)
        q->tail->next = m;
    else
        q->head = m;
    q->tail = m;
    q->bytes += len;
    q->count++;
    return 0;
}

char *es_qmsg_payload(es_qmsg *m) { return m->mem + ES_WIRE_HEADROOM; }

void es_sendq_pop(es_sendq *q)
{
    es_qmsg *m = q->head;
    if (!m)
        return;
    q->head = m->next;
    if (!q->head)
        q->tail = NULL;
    q->bytes -= m->len;
    q->count--;
    free(m);
}

void es_sendq_clear(es_sendq *q)
{
    while (q->head)
        es_sendq_pop(q);
}
