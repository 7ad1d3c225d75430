#include "matcher.h"

#include <stdlib.h>
#include <string.h>

#include "hooks.h"
#include "util.h"

static int match_via_hooks(void *ud, const es_session *a, const es_session *b, int matched)
{
    return es_hooks_match(ud, &a->view, &b->view, matched);
}

static void pair_via_hooks(void *ud, const es_session *a, const es_session *b, int matched)
{
    es_hooks_pair(ud, &a->view, &b->view, matched);
}

void es_matcher_use_hooks(es_matcher *m, es_hooks *hooks)
{
    m->match = match_via_hooks;
    m->pair = hooks->chain_len[ES_HOOK_PAIR] ? pair_via_hooks : NULL;
    m->ud = hooks;
}

void es_matcher_init(es_matcher *m, es_grid *grid, es_match_fn match, es_pair_fn pair, void *ud)
{
    m->grid = grid;
    m->match = match;
    m->pair = pair;
    m->ud = ud;
    m->epoch = 0;
    m->free_edges = NULL;
    m->dirty = NULL;
    m->ndirty = m->dirty_cap = 0;
    m->pairs = 0;
}

void es_matcher_release_pool(es_matcher *m)
{
    while (m->free_edges) {
        es_edge *e = m->free_edges;
        m->free_edges = e->next_free;
        free(e);
    }
    free(m->dirty);
    m->dirty = NULL;
    m->ndirty = m->dirty_cap = 0;
}

void es_matcher_free(es_matcher *m) { es_matcher_release_pool(m); }

void es_matcher_mark_dirty(es_matcher *m, es_session *s)
{
    if (s->dirty != ES_DIRTY_NO) { /* listed already */
        s->dirty = ES_DIRTY_OWED;
        return;
    }
    s->dirty = ES_DIRTY_OWED;
    if (m->ndirty == m->dirty_cap) {
        m->dirty_cap = m->dirty_cap ? m->dirty_cap * 2 : 64;
        m->dirty = es_xrealloc(m->dirty, m->dirty_cap * sizeof *m->dirty);
    }
    m->dirty[m->ndirty++] = s;
}

es_session **es_matcher_take_dirty(es_matcher *m, size_t *n)
{
    /* Sessions served early stay listed until here: leave them out. */
    size_t k = 0;
    for (size_t i = 0; i < m->ndirty; i++) {
        es_session *s = m->dirty[i];
        if (s->dirty == ES_DIRTY_OWED)
            m->dirty[k++] = s;
        s->dirty = ES_DIRTY_NO;
    }
    *n = k;
    m->ndirty = 0;
    return m->dirty;
}

static void edges_push(es_session *s, es_edge *e, uint32_t *index)
{
    if (s->nedges == s->edges_cap) {
        s->edges_cap = s->edges_cap ? s->edges_cap * 2 : 4;
        s->edges = es_xrealloc(s->edges, s->edges_cap * sizeof *s->edges);
    }
    *index = s->nedges;
    s->edges[s->nedges++] = e;
}

/* Remove the edge at index i of s's array, keeping the moved edge's index right. */
static void edges_cut(es_session *s, uint32_t i)
{
    es_edge *last = s->edges[--s->nedges];
    s->edges[i] = last;
    if (last->a == s)
        last->ia = i;
    else
        last->ib = i;
}

static void link_pair(es_matcher *m, es_session *a, es_session *b)
{
    es_edge *e = m->free_edges;
    if (e)
        m->free_edges = e->next_free;
    else
        e = es_xmalloc(sizeof *e);
    e->a = a;
    e->b = b;
    edges_push(a, e, &e->ia);
    edges_push(b, e, &e->ib);
    m->pairs++;
    es_matcher_mark_dirty(m, a);
    es_matcher_mark_dirty(m, b);
    if (m->pair)
        m->pair(m->ud, a, b, 1);
}

static void unlink_pair(es_matcher *m, es_edge *e)
{
    es_session *a = e->a, *b = e->b;
    edges_cut(a, e->ia);
    edges_cut(b, e->ib);
    e->next_free = m->free_edges;
    m->free_edges = e;
    m->pairs--;
    es_matcher_mark_dirty(m, a);
    es_matcher_mark_dirty(m, b);
    if (m->pair)
        m->pair(m->ud, a, b, 0);
}

/* Ask about candidate c of mover s; link or keep the pair. */
static inline void consider(es_matcher *m, es_session *s, es_session *c, uint64_t epoch)
{
    int matched = c->mark_matched == epoch;
    if (!m->match(m->ud, s, c, matched))
        return;
    if (matched)
        c->mark_keep = epoch;
    else
        link_pair(m, s, c); /* a new edge: marks are irrelevant for it */
}

#define BATCH 64

/* Mark the first n peers of s as matched with the mover in this epoch. */
static void mark_peers(es_session *s, uint32_t n, uint64_t epoch)
{
    for (uint32_t i = 0; i < n; i++)
        es_edge_other(s->edges[i], s)->mark_matched = epoch;
}

void es_matcher_update(es_matcher *m, es_session *s)
{
    uint64_t epoch = ++m->epoch;
    uint32_t before = s->nedges;
    /* The current peers are marked before the first candidate is asked
     * about; their edges load while the grid is looked up. */
    for (uint32_t i = 0; i < before; i++)
        __builtin_prefetch(s->edges[i]);

    /*
     * Ask the policy only about candidates within the query radius (the
     * grid's cell size): by the plugin ABI no filter can match beyond it.
     * The cell entries carry coordinates, so far candidates cost a
     * subtraction, not a cache miss on their session; near ones are
     * gathered in batches and prefetched before they are asked about.
     */
    const int64_t r = m->grid->cell_size, r2 = r * r;
    const int64_t x = s->view.pos.x, y = s->view.pos.y;
    const es_grid_cell *cells[9];
    es_session *near[BATCH];
    unsigned nnear = 0;
    unsigned ncells = es_grid_neighbourhood(m->grid, s, cells);
    int marked = 0;
    for (unsigned k = 0; k < ncells; k++) {
        const es_grid_entry *e = cells[k]->members, *end = e + cells[k]->n;
        for (; e < end; e++) {
            int64_t dx = e->x - x, dy = e->y - y;
            if (dx > r || dx < -r || dy > r || dy < -r || dx * dx + dy * dy > r2 || e->s == s)
                continue;
            __builtin_prefetch(e->s);
            near[nnear++] = e->s;
            if (nnear == BATCH) {
                if (!marked)
                    mark_peers(s, before, epoch), marked = 1;
                for (unsigned i = 0; i < nnear; i++)
                    consider(m, s, near[i], epoch);
                nnear = 0;
            }
        }
    }
    if (!marked && nnear)
        mark_peers(s, before, epoch);
    for (unsigned i = 0; i < nnear; i++)
        consider(m, s, near[i], epoch);

    /*
     * The first `before` edges are the old ones (new ones were appended, and
     * nothing was cut yet). Walk them backwards so cutting swaps in edges
     * already visited or new ones, never an old one still to check.
     */
    for (uint32_t i = before; i-- > 0;) {
        es_edge *e = s->edges[i];
        if (es_edge_other(e, s)->mark_keep != epoch)
            unlink_pair(m, e);
    }
}

void es_matcher_remove_all(es_matcher *m, es_session *s)
{
    while (s->nedges > 0)
        unlink_pair(m, s->edges[s->nedges - 1]);
    if (s->dirty != ES_DIRTY_NO) {
        /* s is leaving, and may be freed before the next take: it is owed
         * nothing, so take it out of the dirty list. */
        for (size_t i = 0; i < m->ndirty; i++) {
            if (m->dirty[i] == s) {
                memmove(&m->dirty[i], &m->dirty[i + 1], (m->ndirty - i - 1) * sizeof *m->dirty);
                m->ndirty--;
                break;
            }
        }
        s->dirty = ES_DIRTY_NO;
    }
}

int es_matcher_is_matched(const es_session *a, const es_session *b)
{
    const es_session *small = a->nedges <= b->nedges ? a : b;
    const es_session *other = small == a ? b : a;
    for (uint32_t i = 0; i < small->nedges; i++)
        if (es_edge_other(small->edges[i], small) == other)
            return 1;
    return 0;
}
