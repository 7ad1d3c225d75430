#include "addrcount.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define HASH_FUNCTION(keyptr, keylen, hashv) ((hashv) = (unsigned)es_hash_bytes((keyptr), (keylen)))
#define uthash_malloc(sz) es_xmalloc(sz) /* never NULL: it aborts instead */
#include <uthash.h>

struct es_addr_entry {
    char addr[64]; /* as es_session.addr holds it */
    size_t count;
    UT_hash_handle hh;
};

static es_addr_entry *find(const es_addrcount *t, const char *addr)
{
    es_addr_entry *e;
    HASH_FIND_STR(t->head, addr, e);
    return e;
}

void es_addrcount_add(es_addrcount *t, const char *addr)
{
    es_addr_entry *e = find(t, addr);
    if (!e) {
        e = es_xcalloc(1, sizeof *e);
        snprintf(e->addr, sizeof e->addr, "%s", addr);
        HASH_ADD_STR(t->head, addr, e);
    }
    e->count++;
}

void es_addrcount_remove(es_addrcount *t, const char *addr)
{
    es_addr_entry *e = find(t, addr);
    if (!e)
        return;
    if (--e->count == 0) {
        HASH_DEL(t->head, e);
        free(e);
    }
}

size_t es_addrcount_get(const es_addrcount *t, const char *addr)
{
    es_addr_entry *e = find(t, addr);
    return e ? e->count : 0;
}

size_t es_addrcount_addresses(const es_addrcount *t) { return HASH_COUNT(t->head); }

void es_addrcount_free(es_addrcount *t)
{
    es_addr_entry *e, *tmp;
    HASH_ITER(hh, t->head, e, tmp) {
        HASH_DEL(t->head, e);
        free(e);
    }
}
