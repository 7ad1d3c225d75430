#include "registry.h"

#include <stdlib.h>
#include <string.h>

#include "idtable.h"
#include "util.h"

int es_takeover_allows(es_takeover policy, const es_session *holder, const es_session *claimant)
{
    switch (policy) {
    case ES_TAKEOVER_ALWAYS: return 1;
    case ES_TAKEOVER_SAME_ADDRESS: return strcmp(holder->addr, claimant->addr) == 0;
    default: return 0;
    }
}

/* ---- the in-process registry: an idtable ---------------------------------- */

static es_session *local_find(void *impl, const char *id, size_t len)
{
    return es_idtable_find(impl, id, len);
}

static es_claim_result local_claim(void *impl, es_session *s, const char *id, size_t len,
                                   es_takeover policy, es_session **displaced)
{
    es_idtable *t = impl;
    es_session *holder = es_idtable_find(t, id, len);
    *displaced = NULL;
    if (holder) {
        if (!es_takeover_allows(policy, holder, s))
            return ES_CLAIM_IN_USE;
        es_idtable_remove(t, holder);
        *displaced = holder;
    }
    memcpy(s->id, id, len);
    s->id[len] = '\0';
    s->id_len = len;
    es_idtable_insert(t, s);
    return ES_CLAIM_OK;
}

static void local_release(void *impl, es_session *s) { es_idtable_remove(impl, s); }

static void local_each(void *impl, void (*fn)(es_session *s, void *ud), void *ud)
{
    es_idtable_each(impl, fn, ud);
}

static size_t local_count(void *impl) { return ((es_idtable *)impl)->count; }

static void local_compact(void *impl)
{
    es_idtable_free(impl);
    es_idtable_init(impl);
}

static void local_destroy(void *impl)
{
    es_idtable_free(impl);
    free(impl);
}

static const es_registry_ops local_ops = {
    .name = "local",
    .find = local_find,
    .claim = local_claim,
    .release = local_release,
    .each = local_each,
    .count = local_count,
    .compact = local_compact,
    .destroy = local_destroy,
};

es_registry es_registry_local(void)
{
    es_idtable *t = es_xmalloc(sizeof *t);
    es_idtable_init(t);
    return (es_registry){.ops = &local_ops, .impl = t};
}
