#include "keepalive.h"

#define SESSION_OF(node) ES_CONTAINER_OF(node, es_session, all_node)

void es_keepalive_sweep(es_keepalive *k, es_dlist *all, size_t n, double now, double every,
                        const es_keepalive_actions *act)
{
    if (every <= 0 || n == 0) {
        k->last_sweep = now;
        return;
    }
    double share = (now - k->last_sweep) / every;
    if (share < 0)
        share = 0;
    size_t budget = (size_t)((double)n * share) + 1;
    k->last_sweep = now;
    if (budget > n)
        budget = n;
    while (budget-- > 0) {
        if (!k->cursor)
            k->cursor = all->head;
        es_session *s = SESSION_OF(k->cursor);
        k->cursor = k->cursor->next;
        if (s->closing)
            continue;
        if (s->ping_sent_at > 0 && s->last_rx >= s->ping_sent_at)
            s->ping_sent_at = 0; /* answered (or other traffic came) */
        if (s->ping_sent_at > 0) {
            if (now - s->ping_sent_at >= every)
                act->dead(act->ud, s);
        } else if (now - s->last_rx >= every) {
            act->ping(act->ud, s);
        }
    }
}
