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
    m->max_peers = 0;
    m->swap_margin = 0;
    m->margin_units = 0;
    m->margin_whole = 1;
    m->capped_out = m->cascade_cuts = 0;
    m->cand = NULL;
    m->ncand = m->cand_cap = 0;
    m->work = NULL;
    m->nwork = m->work_cap = 0;
    m->leaving = NULL;
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
    free(m->cand);
    m->cand = NULL;
    m->ncand = m->cand_cap = 0;
    free(m->work);
    m->work = NULL;
    m->nwork = m->work_cap = 0;
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

static void far_first_after_push(es_session *s, uint32_t cap);
static void far_first(es_session *s);

static void link_pair(es_matcher *m, es_session *a, es_session *b, uint64_t d2)
{
    es_edge *e = m->free_edges;
    if (e)
        m->free_edges = e->next_free;
    else
        e = es_xmalloc(sizeof *e);
    e->a = a;
    e->b = b;
    e->d2 = d2;
    edges_push(a, e, &e->ia);
    edges_push(b, e, &e->ib);
    if (m->max_peers) {
        far_first_after_push(a, m->max_peers);
        far_first_after_push(b, m->max_peers);
    }
    m->pairs++;
    es_matcher_mark_dirty(m, a);
    es_matcher_mark_dirty(m, b);
    if (m->pair)
        m->pair(m->ud, a, b, 1);
}

/* Remove the pair of edge e. Under a cap, each end's farthest edge stays
 * first, except at `unsorted` (may be NULL), which the caller sorts. */
static void unlink_pair_but(es_matcher *m, es_edge *e, const es_session *unsorted)
{
    es_session *a = e->a, *b = e->b;
    uint32_t ia = e->ia, ib = e->ib;
    edges_cut(a, ia);
    edges_cut(b, ib);
    if (m->max_peers) {
        if (ia == 0 && a != unsorted && a->nedges >= m->max_peers)
            far_first(a);
        if (ib == 0 && b != unsorted && b->nedges >= m->max_peers)
            far_first(b);
    }
    e->next_free = m->free_edges;
    m->free_edges = e;
    m->pairs--;
    es_matcher_mark_dirty(m, a);
    es_matcher_mark_dirty(m, b);
    if (m->pair)
        m->pair(m->ud, a, b, 0);
}

static void unlink_pair(es_matcher *m, es_edge *e) { unlink_pair_but(m, e, NULL); }

/* Ask about candidate c of mover s; link or keep the pair. */
static inline void consider(es_matcher *m, es_session *s, es_session *c, uint64_t epoch)
{
    int matched = c->mark_matched == epoch;
    if (!m->match(m->ud, s, c, matched))
        return;
    if (matched)
        c->mark_keep = epoch;
    else
        link_pair(m, s, c, 0); /* a new edge: marks are irrelevant for it */
}

#define BATCH 64

/* Mark the first n peers of s as matched with the mover in this epoch. */
static void mark_peers(es_session *s, uint32_t n, uint64_t epoch)
{
    for (uint32_t i = 0; i < n; i++)
        es_edge_other(s->edges[i], s)->mark_matched = epoch;
}

static void update_capped(es_matcher *m, es_session *s);
static void drain_work(es_matcher *m);

void es_matcher_update(es_matcher *m, es_session *s)
{
    if (m->max_peers) {
        update_capped(m, s);
        return;
    }
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

static void push_work(es_matcher *m, es_session *s);

void es_matcher_remove_all(es_matcher *m, es_session *s)
{
    if (m->max_peers) {
        /* Peers that were full may take someone they had to refuse. */
        m->nwork = 0;
        while (s->nedges > 0) {
            es_edge *e = s->edges[s->nedges - 1];
            es_session *p = es_edge_other(e, s);
            int was_full = p->nedges >= m->max_peers;
            unlink_pair(m, e);
            if (was_full)
                push_work(m, p);
        }
        m->leaving = s;
        drain_work(m);
        m->leaving = NULL;
    }
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

typedef struct capped_walk {
    es_matcher *m;
    es_session *s, **out;
    size_t max, n;
} capped_walk;

static void capped_visit(es_session *cand, void *ud)
{
    capped_walk *w = ud;
    if (cand == w->s || !cand->registered || es_matcher_is_matched(w->s, cand) ||
        !w->m->match(w->m->ud, w->s, cand, 0))
        return;
    if (w->n < w->max)
        w->out[w->n] = cand;
    w->n++;
}

size_t es_matcher_capped(es_matcher *m, es_session *s, es_session **out, size_t max)
{
    if (m->max_peers == 0 || !m->match || s->cell == ES_GRID_NO_CELL)
        return 0;
    capped_walk w = {.m = m, .s = s, .out = out, .max = max};
    es_grid_query(m->grid, s, capped_visit, &w);
    return w.n;
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

/* ---- the crowd cap ------------------------------------------------------ */

/* Squared distance on (x, y): exact (int32 differences are below 2^32, so
 * each square fits in 64 bits); a sum past 2^64 saturates, far beyond any
 * query radius. */
static uint64_t dist2(const es_session *a, const es_session *b)
{
    int64_t dx = (int64_t)a->view.pos.x - b->view.pos.x;
    int64_t dy = (int64_t)a->view.pos.y - b->view.pos.y;
    uint64_t x = (uint64_t)(dx < 0 ? -dx : dx), y = (uint64_t)(dy < 0 ? -dy : dy);
    uint64_t xx = x * x, yy = y * y;
    return xx > UINT64_MAX - yy ? UINT64_MAX : xx + yy;
}

static int id_cmp(const es_session *a, const es_session *b)
{
    size_t n = a->id_len < b->id_len ? a->id_len : b->id_len;
    int c = memcmp(a->id, b->id, n);
    if (c)
        return c;
    return a->id_len < b->id_len ? -1 : a->id_len > b->id_len;
}

/* For one client: p at distance dp is nearer than q at dq (ties: client_id). */
static int nearer(uint64_t dp, const es_session *p, uint64_t dq, const es_session *q)
{
    if (dp != dq)
        return dp < dq;
    return id_cmp(p, q) < 0;
}

/*
 * sqrt(dn) + margin <= sqrt(dw), squared twice: t = dw - dn - margin^2 >= 0
 * and t^2 >= 4 margin^2 dn. Exact in 128-bit integers for a whole margin
 * (the stock 2: every case, the boundary included); in doubles otherwise.
 */
static int margin_ok(const es_matcher *m, uint64_t dn, uint64_t dw)
{
    if (m->margin_whole) {
        typedef __int128 i128; /* GCC and clang */
        if (dn > dw || dw - dn < m->margin_units * m->margin_units)
            return 0; /* the usual answer in a crowd, without the products */
        i128 mm = (i128)m->margin_units * m->margin_units;
        i128 t = (i128)dw - (i128)dn - mm;
        if (t < 0)
            return 0;
        return (unsigned __int128)t * (unsigned __int128)t >=
               (unsigned __int128)(4 * mm) * (unsigned __int128)dn;
    }
    double mm = m->swap_margin * m->swap_margin;
    double t = (double)dw - (double)dn - mm;
    return t >= 0 && t * t >= 4 * mm * (double)dn;
}

/* A newcomer n at dn displaces the farthest peer w at dw. */
static int displaces(const es_matcher *m, uint64_t dn, const es_session *n, uint64_t dw,
                     const es_session *w)
{
    return nearer(dn, n, dw, w) && margin_ok(m, dn, dw);
}

/* e is farther from s than f is. */
static int farther(const es_session *s, const es_edge *e, const es_edge *f)
{
    return nearer(f->d2, es_edge_other(f, s), e->d2, es_edge_other(e, s));
}

/* Swap s's edges at i and j, keeping their indexes right. */
static void edges_swap(es_session *s, uint32_t i, uint32_t j)
{
    es_edge *ei = s->edges[i], *ej = s->edges[j];
    s->edges[i] = ej;
    s->edges[j] = ei;
    if (ej->a == s)
        ej->ia = i;
    else
        ej->ib = i;
    if (ei->a == s)
        ei->ia = j;
    else
        ei->ib = j;
}

/*
 * Under a cap every full client (max_peers edges or more) keeps its
 * farthest edge first in its array, so that "is c full, and would it let
 * its farthest go for s?" costs one look for each of a crowd's candidates.
 * Clients under the cap are not kept in order (nothing asks for their
 * farthest): one is sorted when it fills up. These restore it.
 */
static void far_first(es_session *s)
{
    uint32_t k = 0;
    for (uint32_t i = 1; i < s->nedges; i++)
        if (farther(s, s->edges[i], s->edges[k]))
            k = i;
    if (k)
        edges_swap(s, 0, k);
}

/* An edge was appended. */
static void far_first_after_push(es_session *s, uint32_t cap)
{
    uint32_t last = s->nedges - 1;
    if (s->nedges == cap)
        far_first(s); /* just filled up */
    else if (s->nedges > cap && farther(s, s->edges[last], s->edges[0]))
        edges_swap(s, 0, last);
}

/* The distance of s's edge e changed from old. */
static void far_first_after_change(es_session *s, es_edge *e, uint64_t old)
{
    if (s->edges[0] == e) {
        if (e->d2 < old)
            far_first(s);
    } else if (farther(s, e, s->edges[0])) {
        edges_swap(s, 0, e->a == s ? e->ia : e->ib);
    }
}

/* The edge to s's farthest peer (s has at least one). */
static es_edge *farthest(const es_session *s) { return s->edges[0]; }

static void push_work(es_matcher *m, es_session *s)
{
    for (size_t i = 0; i < m->nwork; i++)
        if (m->work[i] == s)
            return;
    if (m->nwork == m->work_cap) {
        m->work_cap = m->work_cap ? m->work_cap * 2 : 32;
        m->work = es_xrealloc(m->work, m->work_cap * sizeof *m->work);
    }
    m->work[m->nwork++] = s;
}

/* Remove edge e of s; its other end goes on the worklist if it was full. */
static void let_go(es_matcher *m, es_edge *e, const es_session *s)
{
    es_session *p = es_edge_other(e, s);
    int was_full = p->nedges >= m->max_peers;
    unlink_pair(m, e);
    if (was_full)
        push_work(m, p);
}

static int cand_cmp(const void *pa, const void *pb)
{
    const es_match_cand *a = pa, *b = pb;
    if (a->d2 != b->d2)
        return a->d2 < b->d2 ? -1 : 1;
    return id_cmp(a->s, b->s);
}

static void cand_push(es_matcher *m, es_session *s, uint64_t d2)
{
    if (m->ncand == m->cand_cap) {
        m->cand_cap = m->cand_cap ? m->cand_cap * 2 : 64;
        m->cand = es_xrealloc(m->cand, m->cand_cap * sizeof *m->cand);
    }
    m->cand[m->ncand++] = (es_match_cand){s, d2};
}

/* One evaluation of s under the cap (see matcher.h). */
static void evaluate(es_matcher *m, es_session *s)
{
    const uint32_t cap = m->max_peers;
    uint64_t epoch = ++m->epoch;
    for (uint32_t i = 0; i < s->nedges; i++)
        __builtin_prefetch(s->edges[i]);

    /* Gather the candidates within the radius first, prefetching each
     * session, then ask about them (as es_matcher_update does in batches). */
    const int64_t r = m->grid->cell_size, r2 = r * r;
    const int64_t x = s->view.pos.x, y = s->view.pos.y;
    const es_grid_cell *cells[9];
    unsigned ncells = es_grid_neighbourhood(m->grid, s, cells);
    m->ncand = 0;
    for (unsigned k = 0; k < ncells; k++) {
        const es_grid_entry *e = cells[k]->members, *end = e + cells[k]->n;
        for (; e < end; e++) {
            int64_t dx = e->x - x, dy = e->y - y;
            if (dx > r || dx < -r || dy > r || dy < -r || dx * dx + dy * dy > r2 || e->s == s ||
                e->s == m->leaving)
                continue;
            __builtin_prefetch(e->s);
            cand_push(m, e->s, (uint64_t)(dx * dx + dy * dy));
        }
    }
    mark_peers(s, s->nedges, epoch);
    size_t nnew = 0;
    for (size_t i = 0; i < m->ncand; i++) {
        es_session *c = m->cand[i].s;
        int matched = c->mark_matched == epoch;
        if (!m->match(m->ud, s, c, matched))
            continue;
        if (matched)
            c->mark_keep = epoch;
        else
            m->cand[nnew++] = m->cand[i];
    }
    m->ncand = nnew;

    /* Pairs no longer allowed go; kept ones take their new distance. A
     * full peer for whom s is now farther than its farthest was may take
     * someone it had to refuse: it looks again. */
    for (uint32_t i = s->nedges; i-- > 0;) { /* backwards: see es_matcher_update */
        es_edge *e = s->edges[i];
        es_session *p = es_edge_other(e, s);
        if (p->mark_keep != epoch) {
            int was_full = p->nedges >= cap;
            unlink_pair_but(m, e, s);
            if (was_full)
                push_work(m, p);
            continue;
        }
        uint64_t d = dist2(s, p), old = e->d2;
        if (d == old)
            continue;
        e->d2 = d;
        if (p->nedges < cap)
            continue;
        if (d > old && d >= farthest(p)->d2)
            push_work(m, p);
        far_first_after_change(p, e, old);
    }
    if (s->nedges >= cap)
        far_first(s);
    /* More peers than the cap (it was lowered): keep the nearest. */
    while (s->nedges > cap)
        let_go(m, farthest(s), s);

    size_t n = m->ncand;
    if (n == 0)
        return;
    es_match_cand *cand = m->cand;
    if (s->nedges + n <= cap) {
        /* The uncrowded case: everyone fits unless a candidate is full. */
        size_t i = 0;
        while (i < n && cand[i].s->nedges < cap)
            i++;
        if (i == n) {
            for (i = 0; i < n; i++)
                link_pair(m, s, cand[i].s, cand[i].d2);
            return;
        }
    }
    /* Leave out first, without sorting, whoever cannot be linked now:
     * when s is full, a candidate that does not displace s's farthest (s's
     * farthest only gets nearer in this pass); a candidate that is full
     * with peers it would not let go for s. (A candidate that loses a
     * peer later in this pass was full: it is on the worklist and looks
     * again itself.) */
    es_edge *sfar = s->nedges >= cap ? farthest(s) : NULL;
    const es_session *sfp = sfar ? es_edge_other(sfar, s) : NULL;
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        const es_session *c = cand[i].s;
        if (sfar && !displaces(m, cand[i].d2, c, sfar->d2, sfp))
            continue;
        if (c->nedges > cap)
            continue;
        if (c->nedges == cap) {
            const es_edge *cf = farthest(c);
            if (!displaces(m, cand[i].d2, s, cf->d2, es_edge_other(cf, c)))
                continue;
        }
        cand[kept++] = cand[i];
    }
    qsort(cand, kept, sizeof *cand, cand_cmp);
    size_t linked = 0;
    for (size_t i = 0; i < kept; i++) {
        es_session *c = cand[i].s;
        uint64_t d = cand[i].d2;
        es_edge *far = NULL;
        if (s->nedges >= cap) {
            far = farthest(s);
            if (!displaces(m, d, c, far->d2, es_edge_other(far, s)))
                break;
        }
        es_edge *cfar = NULL;
        if (c->nedges > cap)
            continue;
        if (c->nedges == cap) {
            cfar = farthest(c);
            if (!displaces(m, d, s, cfar->d2, es_edge_other(cfar, c)))
                continue;
        }
        if (far)
            let_go(m, far, s);
        if (cfar)
            let_go(m, cfar, c);
        link_pair(m, s, c, d);
        linked++;
    }
    m->capped_out += n - linked;
}

/* Evaluate the worklist's clients until it is empty, or cut the cascade. */
static void drain_work(es_matcher *m)
{
    size_t i = 0;
    for (; i < m->nwork; i++) {
        if (i >= ES_MATCHER_CASCADE_MAX) {
            m->cascade_cuts++;
            break;
        }
        es_session *p = m->work[i];
        m->work[i] = NULL; /* evaluated: may be pushed again */
        evaluate(m, p);
    }
    m->nwork = 0;
}

static void update_capped(es_matcher *m, es_session *s)
{
    m->nwork = 0;
    evaluate(m, s);
    drain_work(m);
}

static void refresh_d2(es_session *s)
{
    for (uint32_t i = 0; i < s->nedges; i++)
        s->edges[i]->d2 = dist2(s->edges[i]->a, s->edges[i]->b);
}

void es_matcher_set_cap(es_matcher *m, uint32_t max_peers, double swap_margin)
{
    if (max_peers && max_peers != m->max_peers) {
        /* Without a cap the edges' distances are not kept; with another
         * one, other clients are full. */
        const es_grid *g = m->grid;
        for (uint32_t k = 0; !m->max_peers && k < g->ncells; k++)
            for (uint32_t i = 0; i < g->cells[k].n; i++)
                refresh_d2(g->cells[k].members[i].s);
        for (uint32_t k = 0; k < g->ncells; k++)
            for (uint32_t i = 0; i < g->cells[k].n; i++)
                far_first(g->cells[k].members[i].s);
    }
    m->max_peers = max_peers;
    m->swap_margin = swap_margin >= 0 && swap_margin <= 1e9 ? swap_margin : 0;
    m->margin_units = (uint64_t)m->swap_margin;
    m->margin_whole = (double)m->margin_units == m->swap_margin;
}
