/*
 * test_matcher - the matched-pair graph on top of the grid, with a match
 * rule that mirrors the proximity plugin: same game, map and channel, within
 * 20 to enter, within 25 to stay.
 */
#include "helpers.h"

#include "grid.h"
#include "matcher.h"

/* ---- fixture ------------------------------------------------------------- */

typedef struct pair_event {
    const es_session *a, *b;
    int matched;
} pair_event;

typedef struct world {
    es_grid grid;
    es_matcher m;
    pair_event *events;
    size_t nevents, cap;
    size_t links, unlinks;
    uint64_t match_calls;
    int bad_match_args; /* match called with a == b */
    es_session *all[512];
    size_t n;
} world;

#include "matcher_fixture.h"

static int match_fn(void *ud, const es_session *a, const es_session *b, int matched)
{
    world *w = ud;
    w->match_calls++;
    if (a == b)
        w->bad_match_args++;
    return rule(&a->view.pos, &b->view.pos, matched);
}

static void pair_fn(void *ud, const es_session *a, const es_session *b, int matched)
{
    world *w = ud;
    if (w->nevents == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 256;
        w->events = realloc(w->events, w->cap * sizeof *w->events);
        assert_non_null(w->events);
    }
    w->events[w->nevents++] = (pair_event){a, b, matched};
    if (matched)
        w->links++;
    else
        w->unlinks++;
}

static int teardown(void **state)
{
    world *w = *state;
    for (size_t i = 0; i < w->n; i++)
        es_matcher_remove_all(&w->m, w->all[i]); /* edges back to the free list */
    world_free(w);
    free(w->events);
    free(w);
    return 0;
}

/* A client appears at p. */
static es_session *join_pos(world *w, const char *id, earshot_position p)
{
    es_session *s = mk(w, id);
    s->view.pos = p;
    es_grid_insert(&w->grid, s);
    es_matcher_update(&w->m, s);
    return s;
}

/* A client appears at (x, y) on map 1. */
static es_session *join(world *w, const char *id, int32_t x, int32_t y)
{
    return join_pos(w, id, (earshot_position){.map_id = 1, .x = x, .y = y});
}

static void move_pos(world *w, es_session *s, earshot_position p)
{
    s->view.pos = p;
    es_grid_update(&w->grid, s);
    es_matcher_update(&w->m, s);
}

static void move(world *w, es_session *s, int32_t x, int32_t y)
{
    earshot_position p = s->view.pos;
    p.x = x;
    p.y = y;
    move_pos(w, s, p);
}

static void leave(world *w, es_session *s)
{
    es_matcher_remove_all(&w->m, s);
    es_grid_remove(&w->grid, s);
}

/* The dirty list (taken), in marking order. */
static const char *take_dirty(world *w)
{
    size_t n;
    es_session **d = es_matcher_take_dirty(&w->m, &n);
    static char out[65536];
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (i)
            strcat(out, ",");
        strcat(out, d[i]->id);
    }
    return out;
}

/* The dirty list (taken), sorted. */
static const char *take_dirty_sorted(world *w)
{
    size_t n;
    es_session **d = es_matcher_take_dirty(&w->m, &n);
    const char *ids[512];
    assert_true(n <= 512);
    for (size_t i = 0; i < n; i++)
        ids[i] = d[i]->id;
    return join_sorted(ids, n);
}

/* Structural invariants: symmetric edges, right indexes, pair count. */
static void check_graph(world *w)
{
    uint64_t ends = 0;
    for (size_t i = 0; i < w->n; i++) {
        es_session *s = w->all[i];
        for (uint32_t k = 0; k < s->nedges; k++) {
            es_edge *e = s->edges[k];
            assert_true(e->a == s || e->b == s);
            assert_true(e->a != e->b);
            assert_int_equal(e->a == s ? e->ia : e->ib, k);
            es_session *o = es_edge_other(e, s);
            /* symmetric: o lists the same edge at its index */
            uint32_t oi = e->a == o ? e->ia : e->ib;
            assert_true(oi < o->nedges);
            assert_ptr_equal(o->edges[oi], e);
            assert_true(es_matcher_is_matched(s, o));
            assert_true(es_matcher_is_matched(o, s));
            /* no duplicate edges */
            for (uint32_t j = 0; j < k; j++)
                assert_ptr_not_equal(es_edge_other(s->edges[j], s), o);
        }
        ends += s->nedges;
    }
    assert_int_equal(ends, 2 * w->m.pairs);
    assert_int_equal(w->bad_match_args, 0);
}

/* Forget who was marked so far; returns the number of pair events so far. */
static size_t settle(world *w)
{
    take_dirty(w);
    return w->nevents;
}

/* Exactly the clients ids (sorted) were marked since the last take, and the
 * graph is consistent. */
static void expect_changed(world *w, const char *ids)
{
    assert_string_equal(take_dirty_sorted(w), ids);
    check_graph(w);
}

#define W world *w = *cm_state_

/* ---- tests --------------------------------------------------------------- */

TEST(t_init_state)
{
    W;
    assert_int_equal(w->m.pairs, 0);
    assert_string_equal(take_dirty(w), "");
}

TEST(t_lone_join_changes_nothing)
{
    W;
    es_session *a = join(w, "a", 0, 0);
    assert_int_equal(a->nedges, 0);
    assert_int_equal(w->m.pairs, 0);
    assert_string_equal(take_dirty(w), "");
    assert_int_equal(w->nevents, 0);
}

TEST(t_pair_forms_and_marks_both)
{
    W;
    es_session *a = join(w, "a", 0, 0), *b = join(w, "b", 10, 0);
    assert_int_equal(w->m.pairs, 1);
    assert_string_equal(peers(a), "b");
    assert_string_equal(peers(b), "a");
    assert_true(es_matcher_is_matched(a, b));
    assert_true(es_matcher_is_matched(b, a));
    assert_string_equal(take_dirty(w), "b,a"); /* marking order: mover first */
    assert_int_equal(w->nevents, 1);
    assert_int_equal(w->events[0].matched, 1);
    assert_true((w->events[0].a == a && w->events[0].b == b) ||
                (w->events[0].a == b && w->events[0].b == a));
    check_graph(w);
}

TEST(t_enter_radius_is_exact)
{
    W;
    es_session *a = join(w, "a", 0, 0);
    es_session *b = join(w, "b", 20, 1); /* 401 > 400 */
    assert_int_equal(w->m.pairs, 0);
    move(w, b, 20, 0); /* exactly 20 */
    assert_int_equal(w->m.pairs, 1);
    move(w, b, 40, 0);
    assert_int_equal(w->m.pairs, 0);
    move(w, b, 12, 16); /* 144 + 256 = 400 */
    assert_int_equal(w->m.pairs, 1);
    assert_true(es_matcher_is_matched(a, b));
    check_graph(w);
}

TEST(t_hysteresis)
{
    W;
    es_session *a = join(w, "a", 0, 0), *b = join(w, "b", 19, 0);
    assert_int_equal(w->m.pairs, 1);
    assert_string_equal(take_dirty(w), "b,a");
    size_t ev = w->nevents;

    move(w, b, 24, 0); /* inside the leave radius: stays, nobody dirty */
    assert_true(es_matcher_is_matched(a, b));
    assert_string_equal(take_dirty(w), "");
    assert_int_equal(w->nevents, ev);

    move(w, b, 25, 0); /* exactly the leave radius: stays */
    assert_true(es_matcher_is_matched(a, b));
    assert_string_equal(take_dirty(w), "");

    move(w, b, 26, 0); /* past it: parts */
    assert_false(es_matcher_is_matched(a, b));
    assert_int_equal(w->m.pairs, 0);
    assert_string_equal(take_dirty_sorted(w), "a,b");
    assert_int_equal(w->nevents, ev + 1);
    assert_int_equal(w->events[ev].matched, 0);

    move(w, b, 24, 0); /* back within 25 but not within 20: no match */
    assert_false(es_matcher_is_matched(a, b));
    assert_string_equal(take_dirty(w), "");
    move(w, b, 21, 0);
    assert_false(es_matcher_is_matched(a, b));
    move(w, b, 20, 0);
    assert_true(es_matcher_is_matched(a, b));
    check_graph(w);
}

TEST(t_hysteresis_when_the_other_moves)
{
    W;
    es_session *a = join(w, "a", 0, 0), *b = join(w, "b", 19, 0);
    assert_true(es_matcher_is_matched(a, b));
    settle(w);
    move(w, a, -5, 0); /* a moves: distance 24 */
    assert_true(es_matcher_is_matched(a, b));
    assert_string_equal(take_dirty(w), "");
    move(w, a, -7, 0); /* 26 */
    assert_false(es_matcher_is_matched(a, b));
    expect_changed(w, "a,b");
}

TEST(t_move_that_changes_nothing_marks_nobody)
{
    W;
    es_session *a = join(w, "a", 0, 0), *b = join(w, "b", 5, 0), *c = join(w, "c", 500, 0);
    size_t ev = settle(w);
    move(w, b, 6, 1);
    move(w, b, 6, 1); /* same position again */
    move(w, c, 600, 0);
    move(w, c, 100, 100);
    assert_string_equal(take_dirty(w), "");
    assert_int_equal(w->nevents, ev);
    assert_string_equal(peers(a), "b");
    assert_string_equal(peers(c), "");
    check_graph(w);
}

TEST(t_dirty_holds_changed_clients_once)
{
    W;
    es_session *a = join(w, "a", 0, 0);
    join(w, "b", 100, 0);
    join(w, "c", 110, 0);
    es_session *d = join(w, "d", 10, 0);
    settle(w);
    assert_string_equal(peers(a), "d");
    /* a leaves d and joins b and c in one move */
    move(w, a, 105, 5);
    assert_string_equal(peers(a), "b,c");
    assert_string_equal(peers(d), "");
    assert_string_equal(take_dirty_sorted(w), "a,b,c,d");
    /* the marks are cleared and a second take is empty */
    assert_string_equal(take_dirty(w), "");
    for (size_t i = 0; i < w->n; i++)
        assert_int_equal(w->all[i]->dirty, 0);
    check_graph(w);
}

TEST(t_mark_dirty_deduplicates)
{
    W;
    es_session *a = join(w, "a", 0, 0), *b = join(w, "b", 500, 0);
    es_matcher_mark_dirty(&w->m, a);
    es_matcher_mark_dirty(&w->m, b);
    es_matcher_mark_dirty(&w->m, a);
    assert_int_equal(a->dirty, 1);
    assert_string_equal(take_dirty(w), "a,b");
    assert_int_equal(a->dirty, 0);
    es_matcher_mark_dirty(&w->m, a);
    assert_string_equal(take_dirty(w), "a");
}

TEST(t_dirty_list_grows)
{
    W;
    es_session *hub = join(w, "hub", 0, 0);
    (void)hub;
    for (int i = 0; i < 150; i++)
        es_matcher_mark_dirty(&w->m, mk(w, fmt("x%d", i)));
    size_t n;
    es_session **d = es_matcher_take_dirty(&w->m, &n);
    assert_int_equal(n, 150);
    for (int i = 0; i < 150; i++)
        assert_string_equal(d[i]->id, fmt("x%d", i));
}

TEST(t_remove_all_leaves_no_dangling_edges)
{
    W;
    es_session *a = join(w, "a", 0, 0), *b = join(w, "b", 5, 0);
    es_session *c = join(w, "c", 0, 5), *d = join(w, "d", -5, 0);
    assert_int_equal(w->m.pairs, 6);
    size_t ev = settle(w);
    leave(w, a);
    assert_int_equal(a->nedges, 0);
    assert_int_equal(w->m.pairs, 3);
    assert_string_equal(peers(b), "c,d");
    assert_string_equal(peers(c), "b,d");
    assert_string_equal(peers(d), "b,c");
    assert_false(es_matcher_is_matched(a, b));
    assert_false(es_matcher_is_matched(c, a));
    assert_string_equal(take_dirty_sorted(w), "b,c,d"); /* not the leaver */
    assert_int_equal(a->dirty, 0);
    assert_int_equal(w->nevents, ev + 3);
    for (size_t i = ev; i < w->nevents; i++) {
        assert_int_equal(w->events[i].matched, 0);
        assert_true(w->events[i].a == a || w->events[i].b == a);
    }
    check_graph(w);
    /* b moving later never sees a */
    move(w, b, 1, 0);
    assert_string_equal(peers(b), "c,d");
    check_graph(w);
}

TEST(t_remove_all_drops_leaver_already_dirty)
{
    W;
    es_session *a = join(w, "a", 0, 0), *b = join(w, "b", 5, 0), *c = join(w, "c", 300, 0);
    settle(w);
    es_matcher_mark_dirty(&w->m, c);
    move(w, a, 3, 0);
    es_matcher_mark_dirty(&w->m, a); /* e.g. a RequestPeerRefresh */
    leave(w, a);
    assert_string_equal(take_dirty(w), "c,b");
    assert_int_equal(a->dirty, 0);
    assert_string_equal(peers(b), "");
    (void)c;
}

TEST(t_served_client_left_out_of_the_take)
{
    W;
    es_session *a = join(w, "a", 0, 0), *b = join(w, "b", 300, 0), *c = join(w, "c", 600, 0);
    settle(w);
    es_matcher_mark_dirty(&w->m, a);
    es_matcher_mark_dirty(&w->m, b);
    es_matcher_mark_dirty(&w->m, c);
    es_matcher_served(a); /* sent its list early */
    es_matcher_served(c);
    es_matcher_mark_dirty(&w->m, c); /* owes one again: listed once */
    assert_string_equal(take_dirty(w), "b,c");
    assert_int_equal(a->dirty, ES_DIRTY_NO);
    assert_int_equal(b->dirty, ES_DIRTY_NO);
    assert_int_equal(c->dirty, ES_DIRTY_NO);
    es_matcher_served(b); /* not listed: stays unlisted */
    assert_int_equal(b->dirty, ES_DIRTY_NO);
    assert_string_equal(take_dirty(w), "");
}

TEST(t_served_leaver_dropped_from_the_list)
{
    W;
    es_session *a = join(w, "a", 0, 0);
    join(w, "b", 5, 0);
    settle(w);
    es_matcher_mark_dirty(&w->m, a);
    es_matcher_served(a);
    leave(w, a); /* may be freed before the take: must not be listed */
    assert_int_equal(w->m.ndirty, 1);
    assert_string_equal(take_dirty(w), "b");
}

TEST(t_remove_all_of_unmatched_client)
{
    W;
    es_session *a = join(w, "a", 0, 0);
    join(w, "b", 100, 0);
    settle(w);
    leave(w, a);
    assert_string_equal(take_dirty(w), "");
    assert_int_equal(w->m.pairs, 0);
}

TEST(t_other_map_channel_or_game_never_match)
{
    W;
    es_session *a = join(w, "a", 0, 0), *b = join(w, "b", 0, 0);
    assert_true(es_matcher_is_matched(a, b));
    settle(w);
    earshot_position p = b->view.pos;
    p.channel = 1;
    move_pos(w, b, p);
    assert_false(es_matcher_is_matched(a, b));
    assert_string_equal(take_dirty_sorted(w), "a,b");
    p.channel = 0;
    p.map_id = 2;
    move_pos(w, b, p);
    assert_false(es_matcher_is_matched(a, b));
    assert_string_equal(take_dirty(w), "");
    p.map_id = 1;
    move_pos(w, b, p);
    assert_true(es_matcher_is_matched(a, b));
    settle(w);
    p.game_id = 3;
    move_pos(w, b, p); /* other game, same map id and spot */
    assert_false(es_matcher_is_matched(a, b));
    expect_changed(w, "a,b");
}

TEST(t_map_change_parts_even_within_radius)
{
    W;
    es_session *a = join(w, "a", 0, 0), *b = join(w, "b", 1, 1);
    es_session *c = join_pos(w, "c", (earshot_position){.map_id = 2, .x = 1, .y = 1});
    settle(w);
    earshot_position p = a->view.pos;
    p.map_id = 2;
    move_pos(w, a, p);
    assert_string_equal(peers(a), "c");
    assert_string_equal(peers(b), "");
    assert_string_equal(peers(c), "a");
    expect_changed(w, "a,b,c");
}

TEST(t_is_matched)
{
    W;
    es_session *a = join(w, "a", 0, 0), *b = join(w, "b", 1, 0);
    es_session *c = join(w, "c", 300, 0), *d = join(w, "d", 301, 0);
    assert_true(es_matcher_is_matched(a, b));
    assert_true(es_matcher_is_matched(c, d));
    assert_false(es_matcher_is_matched(a, c));
    assert_false(es_matcher_is_matched(d, b));
    assert_false(es_matcher_is_matched(a, a));
}

TEST(t_crowd_of_200)
{
    W;
    enum { N = 200 };
    es_session *s[N];
    for (int i = 0; i < N; i++)
        s[i] = join(w, fmt("p%03d", i), 7, 7);
    assert_int_equal(w->m.pairs, N * (N - 1) / 2);
    assert_int_equal(w->links, N * (N - 1) / 2);
    for (int i = 0; i < N; i++)
        assert_int_equal(s[i]->nedges, N - 1);
    assert_true(es_matcher_is_matched(s[0], s[N - 1]));
    check_graph(w);
    size_t n;
    es_matcher_take_dirty(&w->m, &n);
    assert_int_equal(n, N);

    /* disperse: everyone to a spot of their own */
    for (int i = 0; i < N; i++)
        move(w, s[i], i * 100, 0);
    assert_int_equal(w->m.pairs, 0);
    assert_int_equal(w->unlinks, N * (N - 1) / 2);
    assert_int_equal(w->links, w->unlinks);
    for (int i = 0; i < N; i++)
        assert_int_equal(s[i]->nedges, 0);
    es_matcher_take_dirty(&w->m, &n);
    assert_int_equal(n, N);
    check_graph(w);
}

TEST(t_crowd_leaving_one_by_one)
{
    W;
    enum { N = 60 };
    es_session *s[N];
    for (int i = 0; i < N; i++)
        s[i] = join(w, fmt("q%02d", i), 0, i % 5);
    assert_int_equal(w->m.pairs, N * (N - 1) / 2);
    for (int i = 0; i < N; i++) {
        take_dirty(w);
        leave(w, s[i]);
        assert_int_equal(w->m.pairs, (uint64_t)(N - 1 - i) * (uint64_t)(N - 2 - i) / 2);
        size_t n;
        es_matcher_take_dirty(&w->m, &n);
        assert_int_equal(n, N - 1 - i);
        check_graph(w);
    }
    assert_int_equal(w->links, w->unlinks);
}

TEST(t_pair_events_balance)
{
    W;
    es_session *a = join(w, "a", 0, 0), *b = join(w, "b", 10, 0), *c = join(w, "c", 20, 0);
    /* a-b, b-c, a-c (20) */
    assert_int_equal(w->links, 3);
    move(w, c, 40, 0); /* a-c 40 gone, b-c 30 gone */
    assert_int_equal(w->unlinks, 2);
    move(w, a, 30, 0); /* a-b 20 kept (hysteresis), a-c 10 new */
    assert_int_equal(w->links, 4);
    assert_int_equal(w->unlinks, 2);
    leave(w, a);
    leave(w, b);
    leave(w, c);
    assert_int_equal(w->links, w->unlinks);
    assert_int_equal(w->m.pairs, 0);
    /* every event names two distinct sessions */
    for (size_t i = 0; i < w->nevents; i++)
        assert_ptr_not_equal(w->events[i].a, w->events[i].b);
}

TEST(t_matched_flag_reaches_the_rule)
{
    /* Only a rule that sees matched=1 keeps a pair at 25; the matcher must
     * pass the current state, seen from either side. */
    W;
    es_session *a = join(w, "a", 0, 0), *b = join(w, "b", 0, 18);
    move(w, a, 0, -7); /* 25 apart, a moved */
    assert_true(es_matcher_is_matched(a, b));
    move(w, b, 0, 18); /* b "moves" to where it is: no update at all needed, still 25 */
    assert_true(es_matcher_is_matched(a, b));
    move(w, b, 1, 18); /* 626 > 625 */
    assert_false(es_matcher_is_matched(a, b));
}

TEST(t_random_walk_matches_model)
{
    /* A model: after client s moves, each pair (s, o) is rule(s, o, was
     * matched); nothing else changes. The matcher must agree exactly, and
     * the dirty list must be exactly the clients whose set changed. */
    W;
    enum { N = 80, STEPS = 2500 };
    static unsigned char model[N][N];
    memset(model, 0, sizeof model);
    es_session *s[N];
    uint64_t rng = 12345;
#define RND() (rng = rng * 6364136223846793005ull + 1442695040888963407ull, (uint32_t)(rng >> 33))
    for (int i = 0; i < N; i++) {
        s[i] = mk(w, fmt("w%02d", i));
        s[i]->view.pos = (earshot_position){.map_id = 1};
    }
    int in_world[N] = {0};
    for (int step = 0; step < STEPS; step++) {
        int i = (int)(RND() % N);
        take_dirty(w);
        unsigned char before[N];
        for (int j = 0; j < N; j++)
            before[j] = model[i][j];
        int changed[N] = {0};
        if (in_world[i] && RND() % 10 == 0) {
            leave(w, s[i]);
            in_world[i] = 0;
            for (int j = 0; j < N; j++) {
                if (model[i][j])
                    changed[j] = 1;
                model[i][j] = model[j][i] = 0;
            }
        } else {
            /* One draw per statement: initializer order is unspecified. */
            int32_t map_id = (int32_t)(RND() % 7 == 0 ? 2 : 1);
            int32_t channel = (int32_t)(RND() % 9 == 0 ? 1 : 0);
            int32_t x = (int32_t)(RND() % 120) - 60;
            int32_t y = (int32_t)(RND() % 120) - 60;
            earshot_position p = {.map_id = map_id, .channel = channel, .x = x, .y = y};
            s[i]->view.pos = p;
            if (!in_world[i]) {
                es_grid_insert(&w->grid, s[i]);
                in_world[i] = 1;
            } else {
                es_grid_update(&w->grid, s[i]);
            }
            es_matcher_update(&w->m, s[i]);
            for (int j = 0; j < N; j++) {
                if (j == i || !in_world[j])
                    continue;
                unsigned char now = (unsigned char)rule(&s[i]->view.pos, &s[j]->view.pos,
                                                        model[i][j]);
                if (now != before[j])
                    changed[i] = changed[j] = 1;
                model[i][j] = model[j][i] = now;
            }
        }
        /* the matcher agrees with the model */
        for (int j = 0; j < N; j++)
            if (j != i)
                assert_int_equal(es_matcher_is_matched(s[i], s[j]), model[i][j]);
        /* dirty = exactly the changed clients, once each */
        const char *want[N];
        size_t nw = 0;
        for (int j = 0; j < N; j++)
            if (changed[j])
                want[nw++] = s[j]->id;
        const char *w_ids = join_sorted(want, nw);
        assert_string_equal(take_dirty_sorted(w), w_ids);
        if (step % 250 == 0) {
            check_graph(w);
            uint64_t pairs = 0;
            for (int a = 0; a < N; a++)
                for (int b = a + 1; b < N; b++)
                    pairs += model[a][b];
            assert_int_equal(w->m.pairs, pairs);
        }
    }
#undef RND
    check_graph(w);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(t_init_state),
        T(t_lone_join_changes_nothing),
        T(t_pair_forms_and_marks_both),
        T(t_enter_radius_is_exact),
        T(t_hysteresis),
        T(t_hysteresis_when_the_other_moves),
        T(t_move_that_changes_nothing_marks_nobody),
        T(t_dirty_holds_changed_clients_once),
        T(t_mark_dirty_deduplicates),
        T(t_dirty_list_grows),
        T(t_remove_all_leaves_no_dangling_edges),
        T(t_remove_all_drops_leaver_already_dirty),
        T(t_remove_all_of_unmatched_client),
        T(t_other_map_channel_or_game_never_match),
        T(t_map_change_parts_even_within_radius),
        T(t_is_matched),
        T(t_served_client_left_out_of_the_take),
        T(t_served_leaver_dropped_from_the_list),
        T(t_crowd_of_200),
        T(t_crowd_leaving_one_by_one),
        T(t_pair_events_balance),
        T(t_matched_flag_reaches_the_rule),
        T(t_random_walk_matches_model),
    };
    return cmocka_run_group_tests_name("matcher", tests, NULL, NULL);
}
