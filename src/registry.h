/*
 * registry - who holds which client_id, behind an interface.
 *
 * The core asks the registry, and only the registry, "who is <id>?" and
 * "may this connection take <id>?". An implementation is a table of
 * operations and its state; the one here keeps every client of this
 * process (es_registry_local). A registry shared by several nodes is
 * another implementation of the same operations: the core, the protocol
 * and the matcher do not change with it. tests/unit/test_seams.c runs the
 * core on a test double to keep that true.
 *
 * Every holder is an es_session. A session whose client is served
 * elsewhere would be one the implementation keeps for it; the delivery
 * interface (delivery.h) decides how a message reaches it. A session held
 * for a resume (its connection lost, protocol v1.1) is an ordinary holder
 * here: the core resumes it by a claim under ES_TAKEOVER_ALWAYS, which
 * hands it back as the displaced holder.
 */
#ifndef EARSHOT_REGISTRY_H
#define EARSHOT_REGISTRY_H

#include <stddef.h>

#include "config.h"
#include "session.h"

typedef enum es_claim_result {
    ES_CLAIM_OK = 0,     /* s holds the id now */
    ES_CLAIM_IN_USE = 1  /* another holder keeps it under the policy */
} es_claim_result;

typedef struct es_registry_ops {
    const char *name; /* for logs: "local", ... */
    /* The holder of id[0..len), or NULL. */
    es_session *(*find)(void *impl, const char *id, size_t len);
    /*
     * s (holding no id yet) asks to hold id[0..len), len <= ES_ID_MAX,
     * under policy. ES_CLAIM_OK: s is the holder from now on, s->id and
     * s->id_len say so, and *displaced is the holder it replaced (NULL if
     * none), which the caller must then remove from the world; the
     * registry already forgot it. ES_CLAIM_IN_USE: nothing changed.
     */
    es_claim_result (*claim)(void *impl, es_session *s, const char *id, size_t len,
                             es_takeover policy, es_session **displaced);
    /* s gives its id up; a no-op unless s is the holder. */
    void (*release)(void *impl, es_session *s);
    /* Call fn for every holder; fn must not claim or release. */
    void (*each)(void *impl, void (*fn)(es_session *s, void *ud), void *ud);
    /* Holders now. */
    size_t (*count)(void *impl);
    /* Nobody holds anything: drop memory kept from the busiest moment. May be NULL. */
    void (*compact)(void *impl);
    /* Free the implementation (the holders are not touched). */
    void (*destroy)(void *impl);
} es_registry_ops;

typedef struct es_registry {
    const es_registry_ops *ops;
    void *impl;
} es_registry;

static inline es_session *es_registry_find(const es_registry *r, const char *id, size_t len)
{
    return r->ops->find(r->impl, id, len);
}
static inline es_claim_result es_registry_claim(const es_registry *r, es_session *s, const char *id,
                                                size_t len, es_takeover policy,
                                                es_session **displaced)
{
    return r->ops->claim(r->impl, s, id, len, policy, displaced);
}
static inline void es_registry_release(const es_registry *r, es_session *s)
{
    r->ops->release(r->impl, s);
}
static inline void es_registry_each(const es_registry *r, void (*fn)(es_session *s, void *ud),
                                    void *ud)
{
    r->ops->each(r->impl, fn, ud);
}
static inline size_t es_registry_count(const es_registry *r) { return r->ops->count(r->impl); }

/* The takeover rule every implementation applies: may claimant replace holder? */
int es_takeover_allows(es_takeover policy, const es_session *holder, const es_session *claimant);

/* The registry of this process's own clients. Free it with its destroy op. */
es_registry es_registry_local(void);

#endif
