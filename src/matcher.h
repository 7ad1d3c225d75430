/*
 * matcher - who is matched with whom, and who must hear about it.
 *
 * Every matched pair is one edge, listed in both clients' edge arrays, so
 * adding or removing a pair is O(1) on both sides and the relation is
 * symmetric by construction. When a client moves, es_matcher_update() asks
 * the match decision only about the candidates the grid returns around it,
 * diffs the answer against the client's current edges, and marks every
 * client whose set changed as dirty. The caller sends each dirty client one
 * NearbyPeers after the incoming message is handled (es_matcher_take_dirty).
 */
#ifndef EARSHOT_MATCHER_H
#define EARSHOT_MATCHER_H

#include <stddef.h>
#include <stdint.h>

#include "grid.h"
#include "session.h"

struct es_edge {
    es_session *a, *b;
    uint32_t ia, ib;     /* index of this edge in a->edges and b->edges */
    es_edge *next_free;
};

/* The policy: 1 when a and b should be matched. Must be symmetric. */
typedef int (*es_match_fn)(void *ud, const es_session *a, const es_session *b, int matched);
/* Told about every pair that appears (matched = 1) or disappears (0). */
typedef void (*es_pair_fn)(void *ud, const es_session *a, const es_session *b, int matched);

typedef struct es_matcher {
    es_grid *grid;
    es_match_fn match;
    es_pair_fn pair;  /* may be NULL */
    void *ud;
    uint64_t epoch;
    es_edge *free_edges;
    es_session **dirty;
    size_t ndirty, dirty_cap;
    uint64_t pairs; /* matched pairs now */
} es_matcher;

void es_matcher_init(es_matcher *m, es_grid *grid, es_match_fn match, es_pair_fn pair, void *ud);
/* The policy of the hook chains: the match-filter chain decides, and the
 * pair chain (when it has links) hears about every change. Also on reload. */
struct es_hooks;
void es_matcher_use_hooks(es_matcher *m, struct es_hooks *hooks);
void es_matcher_free(es_matcher *m);
/* Free the pooled edges and the dirty list's memory. Only while no session
 * owes a NearbyPeers (between messages). */
void es_matcher_release_pool(es_matcher *m);

/* s (in the grid, at its new position) moved, joined, or the policy for it
 * changed: re-evaluate all its pairs. Only candidates within the grid's
 * cell size (the largest query radius) are asked about. */
void es_matcher_update(es_matcher *m, es_session *s);
/* s leaves: drop all its pairs (its peers become dirty, s does not). */
void es_matcher_remove_all(es_matcher *m, es_session *s);

/* Mark s as owing a NearbyPeers. */
void es_matcher_mark_dirty(es_matcher *m, es_session *s);
/* s got its NearbyPeers ahead of the others (the caller had another message
 * for it): clear its mark, so the next take leaves it out unless it is
 * marked again. */
static inline void es_matcher_served(es_session *s)
{
    if (s->dirty == ES_DIRTY_OWED)
        s->dirty = ES_DIRTY_SERVED;
}
/* Sessions marked dirty since the last call and not served since, in
 * marking order; the array is valid until the next matcher call. Clears
 * the marks. */
es_session **es_matcher_take_dirty(es_matcher *m, size_t *n);

/* The peer of s on edge e. */
static inline es_session *es_edge_other(const es_edge *e, const es_session *s)
{
    return e->a == s ? e->b : e->a;
}

/* 1 when a and b are matched now (cost: the smaller edge list). */
int es_matcher_is_matched(const es_session *a, const es_session *b);

#endif
