/*
 * dlist - intrusive doubly-linked lists with O(1) append and unlink.
 * A session sits in several lists at once (all connections, by last
 * activity, not yet registered), each through its own es_dnode member.
 */
#ifndef EARSHOT_DLIST_H
#define EARSHOT_DLIST_H

#include <stddef.h>

typedef struct es_dnode {
    struct es_dnode *prev, *next;
} es_dnode;

typedef struct es_dlist {
    es_dnode *head, *tail;
} es_dlist;

#define ES_CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

static inline void es_dlist_append(es_dlist *l, es_dnode *n)
{
    n->prev = l->tail;
    n->next = NULL;
    if (l->tail)
        l->tail->next = n;
    else
        l->head = n;
    l->tail = n;
}

/* Unlink n; a no-op when n is in no list (prev and next NULL, not head). */
static inline void es_dlist_unlink(es_dlist *l, es_dnode *n)
{
    if (n->prev)
        n->prev->next = n->next;
    else if (l->head == n)
        l->head = n->next;
    else
        return;
    if (n->next)
        n->next->prev = n->prev;
    else
        l->tail = n->prev;
    n->prev = n->next = NULL;
}

#endif
