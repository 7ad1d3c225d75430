/*
 * idtable - a table of sessions keyed by their client_id: the storage
 * behind the in-process registry (registry.c).
 *
 * Open addressing with linear probing and backward-shift deletion, on the
 * process's keyed SipHash, so chosen client_ids cannot degrade it. It stays
 * hand-written because a relay looks its target up here on every message:
 * bench/NOTES.md has the comparison with uthash.
 */
#ifndef EARSHOT_IDTABLE_H
#define EARSHOT_IDTABLE_H

#include <stddef.h>

#include "session.h"

typedef struct es_idtable {
    es_session **slots;
    size_t cap;   /* power of two */
    size_t count;
} es_idtable;

void es_idtable_init(es_idtable *r);
void es_idtable_free(es_idtable *r);
es_session *es_idtable_find(const es_idtable *r, const char *id, size_t len);
/* Insert s under s->id. The id must not be present. */
void es_idtable_insert(es_idtable *r, es_session *s);
/* Remove s (looked up by s->id); no-op if s is not the holder. */
void es_idtable_remove(es_idtable *r, es_session *s);
/* Call fn for every registered session. fn must not change the table. */
void es_idtable_each(const es_idtable *r, void (*fn)(es_session *s, void *ud), void *ud);

#endif
