/*
 * test_crowd - the crowd cap of the matcher (session.max_peers,
 * session.swap_margin). Exact cases first; then long random walks, with
 * every invariant checked after every step: no list over the cap,
 * symmetric lists, no blocking pair, nothing changes when an unmoved
 * client is updated again, and no cascade cut. The match rule allows pairs
 * within 20 (and keeps them to 25), like the proximity plugin, which is
 * also used once through the real hook chain.
 */
#include "helpers.h"

#include "grid.h"
#include "matcher.h"

#define MAXC 400

typedef struct world {
    es_grid grid;
    es_matcher m;
    uint64_t events; /* pair events */
    es_session *all[MAXC];
    int in[MAXC]; /* in the grid */
    size_t n;
    hooks_fixture hf; /* the real-plugin test */
} world;

#include "matcher_fixture.h"

static int match_fn(void *ud, const es_session *a, const es_session *b, int matched)
{
    (void)ud;
    return rule(&a->view.pos, &b->view.pos, matched);
}

static void pair_fn(void *ud, const es_session *a, const es_session *b, int matched)
{
    (void)a, (void)b, (void)matched;
    ((world *)ud)->events++;
}

static int teardown(void **state)
{
    world *w = *state;
    /* Leave as the core does (pairs, then the grid), so nobody refills. */
    for (size_t i = 0; i < w->n; i++) {
        es_matcher_remove_all(&w->m, w->all[i]);
        es_grid_remove(&w->grid, w->all[i]);
    }
    world_free(w);
    hooks_fixture_free(&w->hf);
    free(w);
    return 0;
}

/* Tests keep each session's index in the world in its (unused) serial. */
static size_t idx_of(world *w, const es_session *s)
{
    assert_true(s->serial < w->n && w->all[s->serial] == s);
    return (size_t)s->serial;
}

static void place(world *w, es_session *s, earshot_position p)
{
    s->view.pos = p;
    size_t i = idx_of(w, s);
    if (!w->in[i]) {
        es_grid_insert(&w->grid, s);
        w->in[i] = 1;
    } else {
        es_grid_update(&w->grid, s);
    }
    es_matcher_update(&w->m, s);
}

static es_session *join(world *w, const char *id, int32_t x, int32_t y)
{
    es_session *s = mk(w, id);
    place(w, s, (earshot_position){.map_id = 1, .x = x, .y = y});
    return s;
}

static void move(world *w, es_session *s, int32_t x, int32_t y)
{
    earshot_position p = s->view.pos;
    p.x = x;
    p.y = y;
    place(w, s, p);
}

static void leave(world *w, es_session *s)
{
    es_matcher_remove_all(&w->m, s);
    es_grid_remove(&w->grid, s);
    w->in[idx_of(w, s)] = 0;
}

static int64_t d2(const es_session *a, const es_session *b)
{
    int64_t dx = (int64_t)a->view.pos.x - b->view.pos.x, dy = (int64_t)a->view.pos.y - b->view.pos.y;
    return dx * dx + dy * dy;
}

/* The squared distance from s to its farthest peer (-1 without peers). */
static int64_t farthest(const es_session *s)
{
    int64_t far = -1;
    for (uint32_t i = 0; i < s->nedges; i++) {
        int64_t d = d2(s, es_edge_other(s->edges[i], s));
        if (d > far)
            far = d;
    }
    return far;
}

/* s (farthest peer at squared distance far) would take o at squared
 * distance d: a free slot, or a peer more than the margin farther:
 * sqrt(far) - sqrt(d) > M, that is far - d - M^2 > 0 and
 * (far - d - M^2)^2 > 4 M^2 d (long double: exact for these sizes). */
static int would_take(const world *w, const es_session *s, int64_t far, int64_t d)
{
    if (s->nedges < w->m.max_peers)
        return 1;
    long double mm = (long double)w->m.swap_margin * w->m.swap_margin;
    long double t = (long double)far - (long double)d - mm;
    return t > 0 && t * t > 4 * mm * (long double)d;
}

/* Every invariant of the cap, over every client in the world. */
static void check_all(world *w)
{
    const uint32_t cap = w->m.max_peers;
    uint64_t ends = 0;
    static int64_t far[MAXC];
    static uint8_t adj[MAXC][MAXC];
    for (size_t i = 0; i < w->n; i++) {
        es_session *s = w->all[i];
        if (!w->in[i]) {
            assert_int_equal(s->nedges, 0);
            continue;
        }
        if (cap && s->nedges > cap)
            fail_msg("%s has %u peers, the cap is %u", s->id, s->nedges, cap);
        for (uint32_t k = 0; k < s->nedges; k++) {
            es_edge *e = s->edges[k];
            es_session *o = es_edge_other(e, s);
            assert_int_equal(e->a == s ? e->ia : e->ib, k);
            uint32_t oi = e->a == o ? e->ia : e->ib;
            assert_true(oi < o->nedges);
            assert_ptr_equal(o->edges[oi], e); /* symmetric */
            size_t j = idx_of(w, o);
            assert_true(w->in[j]);
            assert_false(adj[i][j]); /* listed once */
            adj[i][j] = 1;
            assert_true(rule(&s->view.pos, &o->view.pos, 1)); /* still allowed */
            if (cap) { /* the matcher's bookkeeping: distances, farthest first */
                assert_int_equal(e->d2, (uint64_t)d2(s, o));
            }
            if (cap && s->nedges >= cap) {
                es_session *f = es_edge_other(s->edges[0], s);
                assert_true(d2(s, f) > d2(s, o) ||
                            (d2(s, f) == d2(s, o) && strcmp(f->id, o->id) >= 0));
            }
        }
        ends += s->nedges;
        far[i] = farthest(s);
    }
    assert_int_equal(ends, 2 * w->m.pairs);
    assert_int_equal(w->m.cascade_cuts, 0);
    for (size_t i = 0; cap && i < w->n; i++) {
        es_session *a = w->all[i];
        if (!w->in[i])
            continue;
        for (size_t j = i + 1; j < w->n; j++) {
            es_session *b = w->all[j];
            if (!w->in[j] || adj[i][j] || !rule(&a->view.pos, &b->view.pos, 0))
                continue;
            int64_t d = d2(a, b);
            if (would_take(w, a, far[i], d) && would_take(w, b, far[j], d))
                fail_msg("blocking pair %s (%u peers, farthest^2 %lld) and %s (%u peers, "
                         "farthest^2 %lld), %lld apart (squared)",
                         a->id, a->nedges, (long long)far[i], b->id, b->nedges,
                         (long long)far[j], (long long)d);
        }
    }
    for (size_t i = 0; i < w->n; i++)
        for (uint32_t k = 0; w->in[i] && k < w->all[i]->nedges; k++)
            adj[i][idx_of(w, es_edge_other(w->all[i]->edges[k], w->all[i]))] = 0;
}

/* Updating clients that did not move changes nothing at all. */
static void check_still(world *w, es_session *s)
{
    uint64_t ev = w->events, pairs = w->m.pairs;
    size_t nd;
    es_matcher_take_dirty(&w->m, &nd);
    es_matcher_update(&w->m, s);
    assert_int_equal(w->events, ev);
    assert_int_equal(w->m.pairs, pairs);
    es_matcher_take_dirty(&w->m, &nd);
    assert_int_equal(nd, 0);
}

#define W world *w = *cm_state_

/* ---- exact cases --------------------------------------------------------- */

TEST(t_nearest_three_of_six)
{
    W;
    es_matcher_set_cap(&w->m, 3, 2);
    /* on a line, 4 apart: a at 0, b at 4, ..., f at 20 */
    es_session *s[6];
    for (int i = 0; i < 6; i++)
        s[i] = join(w, fmt("%c", 'a' + i), i * 4, 0);
    check_all(w);
    /* a..d fill up; e takes d from a (4 against 12) and a's free slot; f
     * gets e's last slot, and everyone else near f has nearer peers. */
    assert_string_equal(peers(s[0]), "b,c,e");
    assert_string_equal(peers(s[1]), "a,c,d");
    assert_string_equal(peers(s[2]), "a,b,d");
    assert_string_equal(peers(s[3]), "b,c,e");
    assert_string_equal(peers(s[4]), "a,d,f");
    assert_string_equal(peers(s[5]), "e");
    for (int i = 0; i < 6; i++)
        check_still(w, s[i]);
}

TEST(t_ties_broken_by_client_id)
{
    W;
    es_matcher_set_cap(&w->m, 2, 0);
    /* four clients on one spot: all at distance 0, ids decide */
    es_session *d = join(w, "d", 5, 5), *c = join(w, "c", 5, 5);
    es_session *b = join(w, "b", 5, 5), *a = join(w, "a", 5, 5);
    check_all(w);
    assert_string_equal(peers(a), "b,c");
    assert_string_equal(peers(b), "a,c");
    assert_string_equal(peers(c), "a,b");
    assert_string_equal(peers(d), "");
    check_still(w, d);
}

TEST(t_margin_decides_displacement)
{
    W;
    es_matcher_set_cap(&w->m, 1, 2);
    es_session *a = join(w, "a", 0, 0), *b = join(w, "b", 10, 0);
    assert_string_equal(peers(a), "b");
    es_session *c = join(w, "c", 0, 9); /* 1 nearer to a than b: no swap */
    assert_string_equal(peers(a), "b");
    assert_string_equal(peers(c), "");
    move(w, c, 0, 8); /* exactly 2 nearer: swaps (at least the margin) */
    assert_string_equal(peers(a), "c");
    assert_string_equal(peers(b), "");
    check_all(w);
    move(w, b, 9, 0); /* b 9 vs c 8: stays */
    assert_string_equal(peers(a), "c");
    move(w, b, 6, 0); /* 6 vs 8: exactly the margin: b takes a back */
    assert_string_equal(peers(a), "b");
    assert_string_equal(peers(c), "");
    check_all(w);
}

TEST(t_fractional_margin)
{
    W;
    es_matcher_set_cap(&w->m, 1, 2.5);
    es_session *a = join(w, "a", 0, 0);
    join(w, "b", 10, 0);
    es_session *c = join(w, "c", 0, 8); /* 2 nearer, not 2.5 */
    assert_string_equal(peers(a), "b");
    move(w, c, -6, 4); /* sqrt(52) = 7.21: 2.79 nearer */
    assert_string_equal(peers(a), "c");
    check_all(w);
}

TEST(t_leaving_frees_a_slot_for_the_next_nearest)
{
    W;
    es_matcher_set_cap(&w->m, 2, 2);
    es_session *a = join(w, "a", 0, 0), *b = join(w, "b", 3, 0), *c = join(w, "c", 6, 0);
    es_session *d = join(w, "d", 12, 0);
    check_all(w);
    /* a: b, c; b: a, c; c: a, b; d has room but everyone near is full */
    assert_string_equal(peers(a), "b,c");
    assert_string_equal(peers(d), "");
    leave(w, b);
    check_all(w);
    /* a and c each had to refuse d: both take it now */
    assert_string_equal(peers(a), "c,d");
    assert_string_equal(peers(c), "a,d");
    assert_string_equal(peers(d), "a,c");
}

TEST(t_eviction_cascades)
{
    W;
    es_matcher_set_cap(&w->m, 1, 2);
    /* a-b and c-d; x comes next to b: b swaps a for x; a, freed, looks again */
    es_session *a = join(w, "a", 0, 0), *b = join(w, "b", 10, 0);
    es_session *c = join(w, "c", -15, 0), *d = join(w, "d", -30, 0);
    assert_string_equal(peers(a), "b");
    assert_string_equal(peers(c), "d");
    es_session *x = join(w, "x", 11, 0);
    check_all(w);
    assert_string_equal(peers(b), "x");
    assert_string_equal(peers(x), "b");
    /* a is free; c (15 from a, 15 from d) keeps d: not 2 nearer */
    assert_string_equal(peers(a), "");
    assert_string_equal(peers(c), "d");
    move(w, x, 12, 0);
    check_all(w);
    move(w, d, -41, 0); /* d parts from c (26 > 25): c is free and takes a */
    check_all(w);
    assert_string_equal(peers(c), "a");
    assert_string_equal(peers(d), "");
}

TEST(t_cap_lowered_and_raised)
{
    W;
    es_session *s[8];
    for (int i = 0; i < 8; i++)
        s[i] = join(w, fmt("p%d", i), i, 0);
    assert_int_equal(w->m.pairs, 28);
    es_matcher_set_cap(&w->m, 3, 2); /* as a reload does: then everyone again */
    for (int i = 0; i < 8; i++)
        es_matcher_update(&w->m, s[i]);
    check_all(w);
    for (int i = 0; i < 8; i++)
        assert_true(s[i]->nedges <= 3);
    es_matcher_set_cap(&w->m, 7, 2);
    for (int i = 0; i < 8; i++)
        es_matcher_update(&w->m, s[i]);
    check_all(w);
    assert_int_equal(w->m.pairs, 28);
}

TEST(t_capped_out_counts_left_out_pairs)
{
    W;
    es_matcher_set_cap(&w->m, 2, 2);
    join(w, "a", 0, 0);
    join(w, "b", 1, 0);
    join(w, "c", 2, 0);
    assert_int_equal(w->m.capped_out, 0);
    join(w, "d", 3, 0); /* a, b, c are full: d is left out by all three */
    assert_int_equal(w->m.capped_out, 3);
    es_matcher_set_cap(&w->m, 0, 2);
    join(w, "e", 4, 0);
    assert_int_equal(w->m.capped_out, 3);
}

/* ---- walks ---------------------------------------------------------------- */

static uint64_t rng;
static uint32_t rnd(void)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng >> 33);
}

/* n clients walk over a square of side `side`: small steps, jumps, leaving
 * and coming back, changing channel; invariants after every step. */
static void walk(world *w, uint64_t seed, uint32_t cap, double margin, int n, int side, int steps)
{
    rng = seed;
    es_matcher_set_cap(&w->m, cap, margin);
    es_session *s[MAXC];
    for (int i = 0; i < n; i++) {
        s[i] = mk(w, fmt("w%03d", (int)((i * 7919) % 1000)));
        s[i]->view.pos = (earshot_position){.map_id = 1};
    }
    for (int step = 0; step < steps; step++) {
        int i = (int)(rnd() % (uint32_t)n);
        size_t k = idx_of(w, s[i]);
        uint32_t what = rnd() % 20;
        if (w->in[k] && what == 0) {
            leave(w, s[i]);
        } else {
            earshot_position p = s[i]->view.pos;
            if (!w->in[k] || what == 1) {
                p.x = (int32_t)(rnd() % (uint32_t)side);
                p.y = (int32_t)(rnd() % (uint32_t)side);
            } else if (what == 2) {
                p.channel = (int32_t)(rnd() % 8 == 0);
            } else {
                p.x += (int32_t)(rnd() % 7) - 3;
                p.y += (int32_t)(rnd() % 7) - 3;
            }
            place(w, s[i], p);
        }
        check_all(w);
        for (int t = 0; t < 2; t++) {
            int j = (int)(rnd() % (uint32_t)n);
            if (w->in[idx_of(w, s[j])])
                check_still(w, s[j]);
        }
    }
    assert_true(w->m.capped_out > 0); /* the cap did bind */
}

TEST(t_walk_cap_3)
{
    W;
    walk(w, 1, 3, 2, 120, 120, 4000);
}

TEST(t_walk_cap_5_no_margin)
{
    W;
    walk(w, 2, 5, 0, 120, 100, 4000);
}

TEST(t_walk_cap_16_fractional_margin)
{
    W;
    walk(w, 3, 16, 1.5, 150, 80, 3000);
}

TEST(t_walk_cap_8_wide_margin)
{
    W;
    walk(w, 4, 8, 6, 100, 90, 3000);
}

/* 200 stand in one spot; 40 walk in and out of the crowd. */
TEST(t_crowd_of_200_and_walkers)
{
    W;
    es_matcher_set_cap(&w->m, 16, 2);
    enum { CROWD = 200, WALKERS = 40 };
    es_session *c[CROWD];
    for (int i = 0; i < CROWD; i++) {
        c[i] = join(w, fmt("c%03d", (i * 37) % CROWD), 50, 50);
        if (i % 20 == 0)
            check_all(w);
    }
    check_all(w);
    /* At one spot nobody is 2 units nearer than anyone: no displacement.
     * The joiners form full groups of 17 in turn; the last 13 hear 12. */
    int full = 0;
    for (int i = 0; i < CROWD; i++)
        full += c[i]->nedges == 16;
    assert_int_equal(full, 187);
    for (int i = 187; i < CROWD; i++)
        assert_int_equal(c[i]->nedges, 12);
    uint64_t ev = w->events;
    for (int i = 0; i < CROWD; i++)
        check_still(w, c[i]);
    assert_int_equal(w->events, ev);

    rng = 99;
    es_session *k[WALKERS];
    for (int i = 0; i < WALKERS; i++)
        k[i] = join(w, fmt("k%02d", i), (int32_t)(rnd() % 200), (int32_t)(rnd() % 100));
    check_all(w);
    for (int step = 0; step < 2500; step++) {
        es_session *s = k[rnd() % WALKERS];
        int32_t x = s->view.pos.x, y = s->view.pos.y;
        if (rnd() % 4 == 0) { /* head for the crowd */
            x += x < 50 ? 4 : x > 50 ? -4 : 0;
            y += y < 50 ? 4 : y > 50 ? -4 : 0;
        } else if (rnd() % 10 == 0) {
            x = (int32_t)(rnd() % 200);
            y = (int32_t)(rnd() % 100);
        } else {
            x += (int32_t)(rnd() % 9) - 4;
            y += (int32_t)(rnd() % 9) - 4;
        }
        move(w, s, x, y);
        check_all(w);
        check_still(w, c[rnd() % CROWD]);
        check_still(w, k[rnd() % WALKERS]);
    }
    /* the crowd disperses one by one */
    for (int i = 0; i < CROWD; i += 3) {
        leave(w, c[i]);
        check_all(w);
    }
}

/* max_peers 0 takes exactly the path of the uncapped matcher: the same
 * pair events, the same dirty lists in the same order, move by move. */
typedef struct recorder {
    char log[1 << 16];
    size_t len;
} recorder;

static void record_pair(void *ud, const es_session *a, const es_session *b, int matched)
{
    recorder *r = ud;
    int n = snprintf(r->log + r->len, sizeof r->log - r->len, "%c%s-%s;", matched ? '+' : '-',
                     a->id, b->id);
    if (n > 0 && r->len + (size_t)n < sizeof r->log)
        r->len += (size_t)n;
}

static int record_match(void *ud, const es_session *a, const es_session *b, int matched)
{
    (void)ud;
    return rule(&a->view.pos, &b->view.pos, matched);
}

TEST(t_cap_zero_is_the_uncapped_matcher)
{
    enum { N = 60, STEPS = 1500 };
    es_grid g[2];
    es_matcher m[2];
    static recorder r[2];
    static es_session s[2][N];
    memset(s, 0, sizeof s);
    for (int v = 0; v < 2; v++) {
        es_grid_init(&g[v], STAY);
        es_matcher_init(&m[v], &g[v], record_match, record_pair, &r[v]);
        r[v].len = 0;
        for (int i = 0; i < N; i++) {
            snprintf(s[v][i].id, sizeof s[v][i].id, "z%02d", i);
            s[v][i].id_len = strlen(s[v][i].id);
            s[v][i].cell = ES_GRID_NO_CELL;
            s[v][i].view.pos.map_id = 1;
        }
    }
    es_matcher_set_cap(&m[1], 4, 2);
    es_matcher_set_cap(&m[1], 0, 2); /* on and off again */
    rng = 7;
    int in[N] = {0};
    for (int step = 0; step < STEPS; step++) {
        int i = (int)(rnd() % N);
        int out = in[i] && rnd() % 10 == 0;
        int32_t x = (int32_t)(rnd() % 60), y = (int32_t)(rnd() % 60);
        for (int v = 0; v < 2; v++) {
            r[v].len = 0;
            if (out) {
                es_matcher_remove_all(&m[v], &s[v][i]);
                es_grid_remove(&g[v], &s[v][i]);
            } else {
                s[v][i].view.pos.x = x;
                s[v][i].view.pos.y = y;
                if (in[i])
                    es_grid_update(&g[v], &s[v][i]);
                else
                    es_grid_insert(&g[v], &s[v][i]);
                es_matcher_update(&m[v], &s[v][i]);
            }
        }
        in[i] = !out;
        r[0].log[r[0].len] = r[1].log[r[1].len] = '\0';
        assert_string_equal(r[0].log, r[1].log);
        size_t n0, n1;
        es_session **d0 = es_matcher_take_dirty(&m[0], &n0);
        es_session **d1 = es_matcher_take_dirty(&m[1], &n1);
        assert_int_equal(n0, n1);
        for (size_t k = 0; k < n0; k++)
            assert_string_equal(d0[k]->id, d1[k]->id);
        assert_int_equal(m[0].pairs, m[1].pairs);
    }
    for (int v = 0; v < 2; v++) {
        for (int i = 0; i < N; i++) {
            es_matcher_remove_all(&m[v], &s[v][i]);
            es_grid_remove(&g[v], &s[v][i]);
            free(s[v][i].edges);
        }
        es_matcher_free(&m[v]);
        es_grid_free(&g[v]);
    }
}

/* ---- the real proximity plugin, through the hook chain -------------------- */

TEST(t_walk_with_the_proximity_plugin)
{
    W;
    const char *text = fmt("plugin_dir = \"%s\";\nhooks = ( { type = \"plugin\"; name = "
                           "\"proximity\"; settings = { radius = 20; leave_radius = 25; }; } );\n",
                           env_dir("EARSHOT_PLUGIN_DIR"));
    if (hooks_fixture_load(&w->hf, text, NULL) != 0)
        fail_msg("%s", w->hf.err);
    es_matcher_use_hooks(&w->m, &w->hf.h);
    es_matcher_set_cap(&w->m, 4, 2);
    /* The rule above is the plugin's, so check_all's blocking test holds. */
    walk(w, 5, 4, 2, 80, 70, 2000);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(t_nearest_three_of_six),
        T(t_ties_broken_by_client_id),
        T(t_margin_decides_displacement),
        T(t_fractional_margin),
        T(t_leaving_frees_a_slot_for_the_next_nearest),
        T(t_eviction_cascades),
        T(t_cap_lowered_and_raised),
        T(t_capped_out_counts_left_out_pairs),
        T(t_walk_cap_3),
        T(t_walk_cap_5_no_margin),
        T(t_walk_cap_16_fractional_margin),
        T(t_walk_cap_8_wide_margin),
        T(t_crowd_of_200_and_walkers),
        cmocka_unit_test(t_cap_zero_is_the_uncapped_matcher),
        T(t_walk_with_the_proximity_plugin),
    };
    return cmocka_run_group_tests_name("crowd", tests, NULL, NULL);
}
