/*
 * addrcount - open connections per remote address, for the
 * max_connections_per_address limit.
 *
 * A uthash table keyed by the address text with the process's keyed
 * SipHash (addresses behind a proxy come from X-Forwarded-For, so a
 * client chooses them). An address's entry lives while it has a
 * connection and is freed with its last one.
 */
#ifndef EARSHOT_ADDRCOUNT_H
#define EARSHOT_ADDRCOUNT_H

#include <stddef.h>

typedef struct es_addr_entry es_addr_entry;

typedef struct es_addrcount {
    es_addr_entry *head; /* the uthash table */
} es_addrcount;

static inline void es_addrcount_init(es_addrcount *t) { t->head = NULL; }
/* Forget every address. */
void es_addrcount_free(es_addrcount *t);
/* One more connection from addr. */
void es_addrcount_add(es_addrcount *t, const char *addr);
/* One fewer; the entry goes with the address's last connection. */
void es_addrcount_remove(es_addrcount *t, const char *addr);
/* Open connections from addr. */
size_t es_addrcount_get(const es_addrcount *t, const char *addr);
/* Addresses with at least one connection. */
size_t es_addrcount_addresses(const es_addrcount *t);

#endif
