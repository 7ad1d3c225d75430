/*
 * registry - which session holds which client_id.
 *
 * The one place that answers "who is <id>?"; kept behind this small
 * interface so that a shared (multi-node) registry can replace it without
 * touching the protocol code. Open addressing on a keyed hash, so chosen
 * client_ids cannot degrade it.
 */
#ifndef EARSHOT_REGISTRY_H
#define EARSHOT_REGISTRY_H

#include <stddef.h>

#include "session.h"

typedef struct es_registry {
    es_session **slots;
    size_t cap;   /* power of two */
    size_t count;
} es_registry;

void es_registry_init(es_registry *r);
void es_registry_free(es_registry *r);
es_session *es_registry_find(const es_registry *r, const char *id, size_t len);
/* Insert s under s->id. The id must not be present. */
void es_registry_insert(es_registry *r, es_session *s);
/* Remove s (looked up by s->id); no-op if s is not the holder. */
void es_registry_remove(es_registry *r, es_session *s);
/* Call fn for every registered session. fn must not change the registry. */
void es_registry_each(const es_registry *r, void (*fn)(es_session *s, void *ud), void *ud);

#endif
