#include "idtable.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

void es_idtable_init(es_idtable *r)
{
    r->cap = 64;
    r->count = 0;
    r->slots = es_xcalloc(r->cap, sizeof *r->slots);
}

void es_idtable_free(es_idtable *r)
{
    free(r->slots);
    r->slots = NULL;
    r->cap = r->count = 0;
}

static size_t slot_of(const es_idtable *r, const char *id, size_t len)
{
    return (size_t)es_hash_bytes(id, len) & (r->cap - 1);
}

es_session *es_idtable_find(const es_idtable *r, const char *id, size_t len)
{
    for (size_t i = slot_of(r, id, len);; i = (i + 1) & (r->cap - 1)) {
        es_session *s = r->slots[i];
        if (!s)
            return NULL;
        if (s->id_len == len && memcmp(s->id, id, len) == 0)
            return s;
    }
}

static void place(es_idtable *r, es_session *s)
{
    size_t i = slot_of(r, s->id, s->id_len);
    while (r->slots[i])
        i = (i + 1) & (r->cap - 1);
    r->slots[i] = s;
}

void es_idtable_insert(es_idtable *r, es_session *s)
{
    if ((r->count + 1) * 4 > r->cap * 3) { /* keep load under 3/4 */
        es_session **old = r->slots;
        size_t old_cap = r->cap;
        r->cap *= 2;
        r->slots = es_xcalloc(r->cap, sizeof *r->slots);
        for (size_t i = 0; i < old_cap; i++)
            if (old[i])
                place(r, old[i]);
        free(old);
    }
    place(r, s);
    r->count++;
}

void es_idtable_remove(es_idtable *r, es_session *s)
{
    size_t mask = r->cap - 1;
    size_t i = slot_of(r, s->id, s->id_len);
    while (r->slots[i] && r->slots[i] != s)
        i = (i + 1) & mask;
    if (!r->slots[i])
        return;
    r->slots[i] = NULL;
    r->count--;
    /* Backward-shift the rest of the probe run so lookups never stop early. */
    for (size_t j = (i + 1) & mask; r->slots[j]; j = (j + 1) & mask) {
        size_t home = slot_of(r, r->slots[j]->id, r->slots[j]->id_len);
        /* Move slots[j] into the hole if its home is not in (i, j]. */
        int between = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!between) {
            r->slots[i] = r->slots[j];
            r->slots[j] = NULL;
            i = j;
        }
    }
}

void es_idtable_each(const es_idtable *r, void (*fn)(es_session *s, void *ud), void *ud)
{
    for (size_t i = 0; i < r->cap; i++)
        if (r->slots[i])
            fn(r->slots[i], ud);
}
