#include "jarena.h"

#include <jansson.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#if defined(__SANITIZE_ADDRESS__)
#define ES_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ES_ASAN 1
#endif
#endif

#define ALIGN 16

typedef struct block block;
struct block {
    block *prev, *next; /* the blocks with allocations in them */
    size_t used;        /* bytes carved from mem */
    size_t live;        /* allocations from this block not yet freed */
    alignas(ALIGN) unsigned char mem[];
};

/* In front of every allocation; b == NULL: it came from malloc. */
typedef struct hdr {
    block *b;
    uintptr_t unused;
} hdr;

_Static_assert(sizeof(hdr) % ALIGN == 0, "headers keep allocations aligned");
_Static_assert(offsetof(block, mem) % ALIGN == 0, "block memory is aligned");

static _Thread_local int owner; /* set in the thread that owns the arena */
static block *cur;              /* carving from here; also in the list */
static block *list;             /* every block with live allocations, and cur */
static block *spare;            /* one empty block kept for the next switch */
static size_t total_live, nblocks;

void es_jarena_own(void) { owner = 1; }

static block *new_block(void)
{
    block *b = spare;
    if (b) {
        spare = NULL;
    } else {
        b = malloc(sizeof *b + ES_JARENA_BLOCK);
        if (!b)
            return NULL;
        nblocks++;
    }
    b->used = b->live = 0;
    b->prev = NULL;
    b->next = list;
    if (list)
        list->prev = b;
    list = b;
    cur = b;
    return b;
}

static void unlink_block(block *b)
{
    if (b->prev)
        b->prev->next = b->next;
    else
        list = b->next;
    if (b->next)
        b->next->prev = b->prev;
}

void *es_jarena_alloc(size_t n)
{
    if (!owner || n > ES_JARENA_BLOCK / 4) {
        hdr *h = malloc(sizeof *h + n);
        if (!h)
            return NULL;
        h->b = NULL;
        return h + 1;
    }
    size_t need = (sizeof(hdr) + n + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    block *b = cur;
    if (!b || b->used + need > ES_JARENA_BLOCK) {
        b = new_block();
        if (!b)
            return NULL;
    }
    hdr *h = (hdr *)(void *)(b->mem + b->used);
    b->used += need;
    b->live++;
    total_live++;
    h->b = b;
    return h + 1;
}

void es_jarena_free(void *p)
{
    if (!p)
        return;
    hdr *h = (hdr *)p - 1;
    block *b = h->b;
    if (!b) {
        free(h);
        return;
    }
    total_live--;
    if (--b->live > 0)
        return;
    if (b == cur) { /* the common case: the message is done, start over */
        b->used = 0;
        return;
    }
    unlink_block(b);
    if (!spare) {
        spare = b;
    } else {
        free(b);
        nblocks--;
    }
}

size_t es_jarena_live(void) { return total_live; }
size_t es_jarena_blocks(void) { return nblocks; }

void es_jarena_install(void)
{
#ifndef ES_ASAN
    es_jarena_own();
    json_set_alloc_funcs(es_jarena_alloc, es_jarena_free);
#endif
}
