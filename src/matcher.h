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
 *
 * The crowd cap (es_matcher_set_cap; max_peers 0 = no cap, the path above
 * unchanged). The match decision says who MAY be matched; the cap says how
 * many: at most max_peers edges per client, nearest first, stable.
 * Distances are squared Euclidean on (x, y), exact in 64-bit integers and
 * kept on each edge (updated whenever either end is evaluated, which is
 * whenever either end moves). A peer p is "nearer" than q for client c when
 * (d(c,p), p's client_id) < (d(c,q), q's client_id), ids bytewise.
 *
 * Evaluating a client u (it moved, joined, or lost a peer while full):
 *  1. ask the decision about the grid's candidates, as without the cap;
 *     edges it no longer allows are removed, kept edges get their new
 *     distance;
 *  2. the allowed candidates not matched yet are tried nearest first. A
 *     pair (u, c) is linked when each end either has a free slot or can
 *     let go of its farthest peer w because c (or u) is at least
 *     swap_margin units nearer than w: sqrt(d_new) + swap_margin <=
 *     sqrt(d_old), tested without roots on the squared distances, exactly
 *     (128-bit integers) for a whole margin such as the stock 2, in
 *     doubles for a fractional one; and strictly nearer by the order
 *     above. Candidates that cannot be linked now are left out before the
 *     sort; once u is full and the next candidate cannot displace u's
 *     farthest, no farther one can, and the pass stops.
 *  3. a client that lost a peer while it was full (evicted, or the pair
 *     was no longer allowed), and a full peer of the mover for whom the
 *     mover is now as far as its farthest or farther, may now take someone
 *     it refused before: it is evaluated in turn, from a worklist, in the
 *     same call. (A client with a free slot that loses a peer changes no
 *     one's options: the others already refused it.) Every link replaces
 *     pairs strictly farther at both ends, so the cascade ends; it is also
 *     cut at ES_MATCHER_CASCADE_MAX evaluations (counted in cascade_cuts).
 * A full client keeps its farthest edge first in its edge array, so asking
 * whether a candidate would let its farthest go is one look.
 * So after every call: no list is longer than max_peers, the relation is
 * symmetric, no two clients the decision allows are left apart while each
 * has a free slot or a peer more than swap_margin farther than the other,
 * and running the update of a client that did not move changes nothing.
 * A client under the cap whose new candidates all have free slots links
 * them all at once (no sort): the uncapped cost. Everything looked at is in
 * the 3x3 cells around the clients evaluated: no pass over the world.
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
    uint64_t d2;         /* squared distance of a and b (kept under a cap) */
};

/* A candidate of the client being evaluated under the cap. */
typedef struct es_match_cand {
    es_session *s;
    uint64_t d2;
} es_match_cand;

/* Evaluations one update may cause under the cap, the mover's included. */
#define ES_MATCHER_CASCADE_MAX 256

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
    /* the crowd cap */
    uint32_t max_peers; /* 0 = no cap */
    double swap_margin; /* units */
    uint64_t margin_units; /* swap_margin when it is whole (margin_whole) */
    int margin_whole;
    uint64_t capped_out;   /* allowed pairs left out at an evaluation, in all */
    uint64_t cascade_cuts; /* cascades cut at ES_MATCHER_CASCADE_MAX */
    es_match_cand *cand;
    size_t ncand, cand_cap;
    es_session **work; /* clients to evaluate in this update */
    size_t nwork, work_cap;
    const es_session *leaving; /* being removed: nobody's candidate */
} es_matcher;

void es_matcher_init(es_matcher *m, es_grid *grid, es_match_fn match, es_pair_fn pair, void *ud);
/* The policy of the hook chains: the match-filter chain decides, and the
 * pair chain (when it has links) hears about every change. Also on reload. */
struct es_hooks;
void es_matcher_use_hooks(es_matcher *m, struct es_hooks *hooks);
void es_matcher_free(es_matcher *m);
/* At most max_peers peers per client (0 = no cap); a matched peer is let go
 * for a newcomer at least swap_margin units nearer. Takes effect at each
 * client's next update (the core re-runs every client's after a reload).
 * Turning the cap on walks the grid once to refresh the edges' distances. */
void es_matcher_set_cap(es_matcher *m, uint32_t max_peers, double swap_margin);
/* Free the pooled edges and the dirty list's memory. Only while no session
 * owes a NearbyPeers (between messages). */
void es_matcher_release_pool(es_matcher *m);

/* s (in the grid, at its new position) moved, joined, or the policy for it
 * changed: re-evaluate all its pairs. Only candidates within the grid's
 * cell size (the largest query radius) are asked about. */
void es_matcher_update(es_matcher *m, es_session *s);
/* s leaves: drop all its pairs (its peers become dirty, s does not). Under
 * a cap, peers that were full fill the freed slot. s may still be in the
 * grid: it is nobody's candidate during the call. */
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

/*
 * For the admin view, on request only: the clients the match decision
 * allows s to be matched with but that are not, which under a crowd cap
 * are the pairs the cap left out. Asks the decision about every other
 * client in the 3x3 cells around s (matched = 0); nothing changes. Writes
 * at most max of them to out and returns how many there are. 0 without a
 * cap (every allowed pair is matched then) or when s is not in the grid.
 */
size_t es_matcher_capped(es_matcher *m, es_session *s, es_session **out, size_t max);

/* 1 when a and b are matched now (cost: the smaller edge list). */
int es_matcher_is_matched(const es_session *a, const es_session *b);

#endif
