/*
 * test_grid - the spatial hash grid with fabricated sessions.
 */
#include "helpers.h"

#include "grid.h"

/* ---- fixture: a grid of 25-unit cells and every session made for it ------ */

typedef struct fixture {
    es_grid g;
    es_session *made[1024]; /* freed by teardown */
    size_t n;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    es_grid_init(&f->g, 25);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    es_grid_free(&f->g);
    for (size_t i = 0; i < f->n; i++)
        free(f->made[i]);
    free(f);
    return 0;
}

/* The fixture f and its grid g. */
#define F                                                                              \
    fixture *f = *cm_state_;                                                           \
    es_grid *g = &f->g;                                                                \
    (void)g

/* A session at (x, y) on game/map, not in the grid yet. */
static es_session *mk(fixture *f, const char *id, int32_t game, int32_t map, int32_t x, int32_t y)
{
    assert_true(f->n < ES_ARRAY_LEN(f->made));
    es_session *s = calloc(1, sizeof *s);
    assert_non_null(s);
    snprintf(s->id, sizeof s->id, "%s", id);
    s->id_len = strlen(s->id);
    s->view.client_id = s->id;
    s->view.pos = (earshot_position){.game_id = game, .map_id = map, .x = x, .y = y};
    s->cell = ES_GRID_NO_CELL;
    f->made[f->n++] = s;
    return s;
}

/* A session at (x, y) on game 0 and map, inserted. */
static es_session *put(fixture *f, const char *id, int32_t map, int32_t x, int32_t y)
{
    es_session *s = mk(f, id, 0, map, x, y);
    es_grid_insert(&f->g, s);
    return s;
}

/* The session made with this id. */
static es_session *who(const fixture *f, const char *id)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->made[i]->id, id) == 0)
            return f->made[i];
    fail_msg("no session %s", id);
    return NULL;
}
#define S(id) who(f, (id))
#define CELL(id) (&g->cells[S(id)->cell])

/* Insert a client at each spot, in order. */
typedef struct spot {
    const char *id;
    int32_t game, map, x, y;
} spot;

static void place(fixture *f, const spot *s)
{
    for (; s->id; s++)
        es_grid_insert(&f->g, mk(f, s->id, s->game, s->map, s->x, s->y));
}
#define PLACE(f, ...) place((f), (const spot[]){__VA_ARGS__, {NULL, 0, 0, 0, 0}})

/* s moves to (x, y) on game/map; the grid hears of it. */
static void move_to(es_grid *g, es_session *s, int32_t game, int32_t map, int32_t x, int32_t y)
{
    s->view.pos.game_id = game;
    s->view.pos.map_id = map;
    s->view.pos.x = x;
    s->view.pos.y = y;
    es_grid_update(g, s);
}

typedef struct collect {
    const es_session *found[4096];
    size_t n;
} collect;

static void visit(es_session *s, void *ud)
{
    collect *c = ud;
    assert_true(c->n < ES_ARRAY_LEN(c->found));
    c->found[c->n++] = s;
}

/* The sessions es_grid_query visits around s, in visiting order (valid until
 * the next call). */
static const collect *query(const es_grid *g, const es_session *s)
{
    static collect c;
    c.n = 0;
    es_grid_query(g, s, visit, &c);
    return &c;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The ids es_grid_query visits around s, sorted, comma separated. */
static const char *query_ids(const es_grid *g, const es_session *s)
{
    const collect *c = query(g, s);
    const char *ids[4096];
    for (size_t i = 0; i < c->n; i++)
        ids[i] = c->found[i]->id;
    qsort(ids, c->n, sizeof ids[0], cmp_str);
    static char out[65536];
    out[0] = '\0';
    for (size_t i = 0; i < c->n; i++) {
        if (i)
            strcat(out, ",");
        strcat(out, ids[i]);
    }
    return out;
}

/* A query around each `from` visits exactly the sorted `ids`. */
typedef struct reach {
    const char *from, *ids;
} reach;

static void expect_reach(fixture *f, const reach *r)
{
    for (; r->from; r++) {
        const char *got = query_ids(&f->g, who(f, r->from));
        if (strcmp(got, r->ids) != 0)
            fail_msg("around %s: \"%s\"\nwanted \"%s\"", r->from, got, r->ids);
    }
}
#define REACH(f, ...) expect_reach((f), (const reach[]){__VA_ARGS__, {NULL, NULL}})

/* Every member of the grid sits where its cell/slot say. */
static void check_slots(const es_grid *g, es_session **all, size_t n)
{
    uint32_t members = 0;
    for (uint32_t i = 0; i < g->ncells; i++) {
        /* count members of live cells only: free cells have n == 0 */
        members += g->cells[i].n;
    }
    uint32_t in_grid = 0;
    for (size_t i = 0; i < n; i++) {
        es_session *s = all[i];
        if (!s || s->cell == ES_GRID_NO_CELL)
            continue;
        in_grid++;
        assert_true(s->cell < g->ncells);
        const es_grid_cell *c = &g->cells[s->cell];
        assert_true(s->slot < c->n);
        assert_ptr_equal(c->members[s->slot].s, s);
    }
    assert_int_equal(members, in_grid);
}

static int64_t fdiv(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Brute force: the sessions a query around s must visit. */
static size_t expected_count(es_session **all, size_t n, const es_session *s, int64_t cell)
{
    size_t k = 0;
    int64_t cx = fdiv(s->view.pos.x, cell), cy = fdiv(s->view.pos.y, cell);
    for (size_t i = 0; i < n; i++) {
        const es_session *o = all[i];
        if (!o || o->cell == ES_GRID_NO_CELL)
            continue;
        if (o->view.pos.game_id != s->view.pos.game_id || o->view.pos.map_id != s->view.pos.map_id)
            continue;
        int64_t ox = fdiv(o->view.pos.x, cell), oy = fdiv(o->view.pos.y, cell);
        if (ox - cx >= -1 && ox - cx <= 1 && oy - cy >= -1 && oy - cy <= 1)
            k++;
    }
    return k;
}

static void check_query_brute(const es_grid *g, es_session **all, size_t n, const es_session *s)
{
    const collect *c = query(g, s);
    assert_int_equal(c->n, expected_count(all, n, s, g->cell_size));
    int64_t cx = fdiv(s->view.pos.x, g->cell_size), cy = fdiv(s->view.pos.y, g->cell_size);
    for (size_t i = 0; i < c->n; i++) {
        const es_session *o = c->found[i];
        assert_true(o->cell != ES_GRID_NO_CELL);
        assert_int_equal(o->view.pos.map_id, s->view.pos.map_id);
        assert_int_equal(o->view.pos.game_id, s->view.pos.game_id);
        int64_t dx = fdiv(o->view.pos.x, g->cell_size) - cx;
        int64_t dy = fdiv(o->view.pos.y, g->cell_size) - cy;
        assert_true(dx >= -1 && dx <= 1 && dy >= -1 && dy <= 1);
        for (size_t j = 0; j < i; j++)
            assert_ptr_not_equal(c->found[j], o); /* each visited once */
    }
}

static uint64_t rng_state;
static uint32_t rnd(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng_state >> 33);
}

/* ---- tests --------------------------------------------------------------- */

TEST(t_init_empty)
{
    F;
    assert_int_equal(g->cell_size, 25);
    assert_int_equal(es_grid_live_cells(g), 0);
    assert_string_equal(query_ids(g, mk(f, "a", 0, 1, 0, 0)), "");

    /* cell sizes below 1 become 1 */
    static const int64_t small[] = {0, -5};
    for (size_t i = 0; i < ES_ARRAY_LEN(small); i++) {
        es_grid other;
        es_grid_init(&other, small[i]);
        assert_int_equal(other.cell_size, 1);
        es_grid_free(&other);
    }
}

TEST(t_single_insert_sees_itself)
{
    F;
    es_session *a = put(f, "a", 1, 3, 4);
    assert_int_not_equal(a->cell, ES_GRID_NO_CELL);
    assert_int_equal(es_grid_live_cells(g), 1);
    assert_string_equal(query_ids(g, a), "a");
    es_grid_remove(g, a);
    assert_int_equal(a->cell, ES_GRID_NO_CELL);
    assert_int_equal(es_grid_live_cells(g), 0);
    assert_string_equal(query_ids(g, a), "");
}

TEST(t_same_cell_and_border_neighbours)
{
    F;
    PLACE(f, {"a", 0, 1, 24, 0},
          {"b", 0, 1, 25, 0},   /* next cell over */
          {"c", 0, 1, 0, 0},    /* same cell as a */
          {"d", 0, 1, 24, 24},  /* same cell as a */
          {"e", 0, 1, 24, 25}); /* cell above */
    assert_int_equal(S("a")->cell, S("c")->cell);
    assert_int_equal(S("a")->cell, S("d")->cell);
    assert_int_not_equal(S("a")->cell, S("b")->cell);
    assert_int_not_equal(S("a")->cell, S("e")->cell);
    assert_int_equal(es_grid_live_cells(g), 3);
    REACH(f, {"a", "a,b,c,d,e"}, {"b", "a,b,c,d,e"}, {"e", "a,b,c,d,e"});
}

TEST(t_three_by_three_reach)
{
    F;
    PLACE(f, {"o", 0, 1, 0, 0},       /* cell (0,0) */
          {"r1", 0, 1, 49, 49},       /* cell (1,1): in */
          {"r2", 0, 1, 50, 0},        /* cell (2,0): out */
          {"l1", 0, 1, -25, -25},     /* cell (-1,-1): in */
          {"l2", 0, 1, -26, 0},       /* cell (-2,0): out */
          {"u2", 0, 1, 0, 50},        /* cell (0,2): out */
          {"d1", 0, 1, 10, -1});      /* cell (0,-1): in */
    REACH(f, {"o", "d1,l1,o,r1"}, {"r2", "r1,r2"}, {"l2", "l1,l2"}, {"u2", "r1,u2"});
}

TEST(t_negative_coordinates_floor_division)
{
    F;
    PLACE(f, {"m1", 0, 1, -1, 0}, {"z", 0, 1, 0, 0}, {"m25", 0, 1, -25, 0},
          {"m26", 0, 1, -26, 0}, {"m50", 0, 1, -50, 0}, {"m51", 0, 1, -51, 0});
    /* -1 and 0 are different cells; -1 .. -25 share cell -1 */
    assert_int_not_equal(S("m1")->cell, S("z")->cell);
    assert_int_equal(S("m1")->cell, S("m25")->cell);
    assert_int_not_equal(S("m25")->cell, S("m26")->cell);
    assert_int_equal(S("m26")->cell, S("m50")->cell);
    assert_int_not_equal(S("m50")->cell, S("m51")->cell);
    assert_int_equal(CELL("z")->cx, 0);
    assert_int_equal(CELL("m1")->cx, -1);
    assert_int_equal(CELL("m26")->cx, -2);
    assert_int_equal(CELL("m51")->cx, -3);
    /* z (cell 0) reaches cell -1 but not -2 */
    REACH(f, {"z", "m1,m25,z"}, {"m1", "m1,m25,m26,m50,z"}, {"m51", "m26,m50,m51"});
}

TEST(t_negative_y)
{
    F;
    PLACE(f, {"a", 0, 1, 0, -1}, {"b", 0, 1, 0, 0}, {"c", 0, 1, 0, -26}, {"d", 0, 1, 0, 25});
    assert_int_not_equal(S("a")->cell, S("b")->cell);
    assert_int_equal(CELL("a")->cy, -1);
    assert_int_equal(CELL("c")->cy, -2);
    REACH(f, {"a", "a,b,c"}, {"c", "a,c"}, {"d", "b,d"});
}

TEST(t_int32_extremes)
{
    F;
    PLACE(f, {"lo", 0, 1, INT32_MIN, 0}, {"hi", 0, 1, INT32_MAX, 0}, {"hi2", 0, 1, INT32_MAX, 0},
          {"lo2", 0, 1, INT32_MIN + 1, 0}, {"corner", 0, 1, INT32_MAX, INT32_MAX},
          {"anti", 0, 1, INT32_MIN, INT32_MIN},
          {"nearhi", 0, 1, INT32_MAX - 30, INT32_MAX - 30});
    REACH(f, {"lo", "lo,lo2"}, {"hi", "hi,hi2"}, {"hi2", "hi,hi2"}, {"corner", "corner,nearhi"},
          {"anti", "anti"});
    /* the cell numbers are floor divisions, no wrap-around */
    assert_true(CELL("lo")->cx == fdiv(INT32_MIN, 25));
    assert_true(CELL("hi")->cx == fdiv(INT32_MAX, 25));
}

TEST(t_huge_cell_size)
{
    /* With cells of 2^32 units, INT32_MIN and INT32_MAX are in adjacent cells. */
    F;
    es_grid_free(g);
    es_grid_init(g, INT64_C(1) << 32);
    PLACE(f, {"lo", 0, 1, INT32_MIN, INT32_MIN}, {"hi", 0, 1, INT32_MAX, INT32_MAX},
          {"mid", 0, 1, 0, 0});
    assert_int_equal(CELL("lo")->cx, -1);
    assert_int_equal(CELL("hi")->cx, 0);
    REACH(f, {"lo", "hi,lo,mid"});
    assert_int_equal(es_grid_live_cells(g), 2);
}

TEST(t_other_map_or_game_never_returned)
{
    F;
    PLACE(f, {"a", 0, 1, 5, 5},
          {"b", 0, 2, 5, 5},   /* other map */
          {"c", 1, 1, 5, 5},   /* other game */
          {"d", 1, 2, 5, 5},   /* both */
          {"e", 0, 1, 6, 6},   /* same */
          {"f", 0, -1, 5, 5}); /* negative map */
    assert_int_equal(es_grid_live_cells(g), 5);
    REACH(f, {"a", "a,e"}, {"b", "b"}, {"c", "c"}, {"d", "d"}, {"f", "f"});
}

TEST(t_channel_is_not_a_grid_key)
{
    /* The grid splits by (game, map) only; channels are the match rule's job. */
    F;
    es_session *a = mk(f, "a", 0, 1, 0, 0), *b = mk(f, "b", 0, 1, 0, 0);
    b->view.pos.channel = 7;
    es_grid_insert(g, a);
    es_grid_insert(g, b);
    assert_int_equal(a->cell, b->cell);
    assert_string_equal(query_ids(g, a), "a,b");
}

TEST(t_query_around_a_session_not_in_the_grid)
{
    F;
    put(f, "a", 1, 0, 0);
    es_session *probe = mk(f, "probe", 0, 1, 30, 0);
    assert_string_equal(query_ids(g, probe), "a");
    probe->view.pos.x = 60;
    assert_string_equal(query_ids(g, probe), "");
}

TEST(t_update_within_cell_keeps_cell)
{
    F;
    es_session *a = put(f, "a", 1, 1, 1), *b = put(f, "b", 1, 2, 2);
    uint32_t cell = a->cell, slot = a->slot;
    move_to(g, a, 0, 1, 24, 24);
    assert_int_equal(a->cell, cell);
    assert_int_equal(a->slot, slot);
    assert_int_equal(es_grid_live_cells(g), 1);
    assert_string_equal(query_ids(g, b), "a,b");
}

TEST(t_update_moves_between_cells)
{
    F;
    es_session *a = put(f, "a", 1, 0, 0), *b = put(f, "b", 1, 0, 0);
    es_session *far = put(f, "far", 1, 200, 0);
    assert_string_equal(query_ids(g, far), "far");
    move_to(g, a, 0, 1, 190, 0);
    assert_string_equal(query_ids(g, far), "a,far");
    assert_string_equal(query_ids(g, b), "b");
    assert_int_not_equal(a->cell, far->cell); /* cell 7 vs cell 8 */
    assert_int_equal(es_grid_live_cells(g), 3);
    /* b follows: its old cell empties and is freed */
    move_to(g, b, 0, 1, 199, 0);
    assert_int_equal(es_grid_live_cells(g), 2);
    assert_int_equal(a->cell, b->cell);
    assert_string_equal(query_ids(g, far), "a,b,far");
    check_slots(g, f->made, f->n);
}

TEST(t_update_moves_between_maps_and_games)
{
    F;
    es_session *a = put(f, "a", 1, 0, 0), *b = put(f, "b", 1, 0, 0);
    es_session *c = put(f, "c", 2, 0, 0);
    assert_string_equal(query_ids(g, b), "a,b");
    move_to(g, a, 0, 2, 0, 0);
    REACH(f, {"b", "b"}, {"c", "a,c"});
    assert_int_equal(a->cell, c->cell);
    move_to(g, a, 9, 2, 0, 0);
    REACH(f, {"c", "c"}, {"a", "a"});
    assert_int_equal(es_grid_live_cells(g), 3);
    move_to(g, a, 0, 1, 0, 0);
    assert_string_equal(query_ids(g, b), "a,b");
    assert_int_equal(es_grid_live_cells(g), 2);
}

TEST(t_update_of_session_not_in_grid_inserts)
{
    F;
    es_session *a = mk(f, "a", 0, 1, 0, 0), *b = put(f, "b", 1, 1, 1);
    es_grid_update(g, a);
    assert_int_not_equal(a->cell, ES_GRID_NO_CELL);
    assert_string_equal(query_ids(g, b), "a,b");
}

TEST(t_remove_is_noop_when_absent)
{
    F;
    es_session *a = put(f, "a", 1, 0, 0), *b = mk(f, "b", 0, 1, 0, 0);
    es_grid_remove(g, b);
    assert_string_equal(query_ids(g, a), "a");
    es_grid_remove(g, a);
    es_grid_remove(g, a); /* twice */
    assert_int_equal(es_grid_live_cells(g), 0);
    assert_string_equal(query_ids(g, b), "");
}

TEST(t_remove_swaps_keep_slots_right)
{
    enum { N = 300 };
    F;
    es_session *all[N];
    for (int i = 0; i < N; i++) {
        /* three cells on map 1 (two of them adjacent), one on map 2 */
        int k = i % 4;
        all[i] = put(f, fmt("s%03d", i), k == 3 ? 2 : 1, k == 2 ? 100 : k * 25, 0);
    }
    assert_int_equal(es_grid_live_cells(g), 4);
    check_slots(g, all, N);
    rng_state = 42;
    int order[N];
    for (int i = 0; i < N; i++)
        order[i] = i;
    for (int i = N - 1; i > 0; i--) {
        int j = (int)(rnd() % (uint32_t)(i + 1));
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (int r = 0; r < N; r++) {
        es_session *s = all[order[r]];
        es_grid_remove(g, s);
        assert_int_equal(s->cell, ES_GRID_NO_CELL);
        all[order[r]] = NULL;
        check_slots(g, all, N);
        /* every remaining session still finds exactly who it should */
        if (r % 7 == 0)
            for (int i = 0; i < N; i++)
                if (all[i])
                    check_query_brute(g, all, N, all[i]);
    }
    assert_int_equal(es_grid_live_cells(g), 0);
}

TEST(t_exact_members_after_removals)
{
    F;
    es_session *s[6];
    for (int i = 0; i < 6; i++)
        s[i] = put(f, fmt("m%d", i), 1, i, i);
    es_grid_remove(g, s[0]); /* first slot: the last is swapped in */
    assert_string_equal(query_ids(g, s[1]), "m1,m2,m3,m4,m5");
    es_grid_remove(g, s[5]);
    assert_string_equal(query_ids(g, s[1]), "m1,m2,m3,m4");
    es_grid_remove(g, s[3]);
    assert_string_equal(query_ids(g, s[1]), "m1,m2,m4");
    check_slots(g, (es_session *[]){s[1], s[2], s[4]}, 3);
    es_grid_remove(g, s[1]);
    es_grid_remove(g, s[2]);
    assert_string_equal(query_ids(g, s[4]), "m4");
    es_grid_remove(g, s[4]);
    assert_int_equal(es_grid_live_cells(g), 0);
}

/* Remove all n sessions of all from the grid, every step-th from first. */
static void remove_every(es_grid *g, es_session **all, int n, int first, int step)
{
    for (int i = first; i < n; i += step)
        es_grid_remove(g, all[i]);
}

TEST(t_empty_cells_are_freed_and_reused)
{
    enum { N = 500 };
    F;
    es_session **all = f->made;
    for (int i = 0; i < N; i++)
        put(f, fmt("c%d", i), 1, i * 100, -i * 100); /* one cell each */
    assert_int_equal(es_grid_live_cells(g), N);
    uint32_t slab = g->ncells;
    for (int i = 0; i < N; i++)
        assert_string_equal(query_ids(g, all[i]), all[i]->id);
    remove_every(g, all, N, 0, 2);
    assert_int_equal(es_grid_live_cells(g), N / 2);
    for (int i = 1; i < N; i += 2)
        assert_string_equal(query_ids(g, all[i]), all[i]->id);
    remove_every(g, all, N, 1, 2);
    assert_int_equal(es_grid_live_cells(g), 0);
    /* a second round reuses the freed cells instead of growing the slab */
    for (int i = 0; i < N; i++) {
        all[i]->view.pos.y += 7;
        es_grid_insert(g, all[i]);
    }
    assert_int_equal(es_grid_live_cells(g), N);
    assert_int_equal(g->ncells, slab);
    check_slots(g, all, N);
    remove_every(g, all, N, 0, 1);
    assert_int_equal(es_grid_live_cells(g), 0);
}

TEST(t_big_cell_emptied_and_refilled)
{
    enum { N = 200 };
    F;
    es_session **all = f->made;
    for (int i = 0; i < N; i++)
        put(f, fmt("b%03d", i), 1, 3, 3);
    assert_int_equal(es_grid_live_cells(g), 1);
    remove_every(g, all, N, 0, 1);
    assert_int_equal(es_grid_live_cells(g), 0);
    for (int i = 0; i < N; i++)
        es_grid_insert(g, all[i]);
    assert_int_equal(es_grid_live_cells(g), 1);
    check_slots(g, all, N);
    assert_int_equal(query(g, all[0])->n, N);
    remove_every(g, all, N, 0, 1);
}

TEST(t_random_operations_match_brute_force)
{
    enum { N = 300, STEPS = 3000 };
    F;
    es_session **all = f->made;
    for (int i = 0; i < N; i++)
        mk(f, fmt("r%d", i), 0, 0, 0, 0);
    rng_state = 7;
    for (int step = 0; step < STEPS; step++) {
        es_session *s = all[rnd() % N];
        uint32_t op = rnd() % 4;
        if (op == 0) {
            es_grid_remove(g, s);
        } else {
            s->view.pos.x = (int32_t)(rnd() % 400) - 200;
            s->view.pos.y = (int32_t)(rnd() % 400) - 200;
            s->view.pos.map_id = (int32_t)(rnd() % 3);
            s->view.pos.game_id = (int32_t)(rnd() % 2);
            if (op == 1 && s->cell == ES_GRID_NO_CELL)
                es_grid_insert(g, s);
            else
                es_grid_update(g, s);
        }
        check_query_brute(g, all, N, s);
        if (step % 100 == 0) {
            check_slots(g, all, N);
            for (int i = 0; i < N; i++)
                check_query_brute(g, all, N, all[i]);
        }
    }
    remove_every(g, all, N, 0, 1);
    assert_int_equal(es_grid_live_cells(g), 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(t_init_empty),
        T(t_single_insert_sees_itself),
        T(t_same_cell_and_border_neighbours),
        T(t_three_by_three_reach),
        T(t_negative_coordinates_floor_division),
        T(t_negative_y),
        T(t_int32_extremes),
        T(t_huge_cell_size),
        T(t_other_map_or_game_never_returned),
        T(t_channel_is_not_a_grid_key),
        T(t_query_around_a_session_not_in_the_grid),
        T(t_update_within_cell_keeps_cell),
        T(t_update_moves_between_cells),
        T(t_update_moves_between_maps_and_games),
        T(t_update_of_session_not_in_grid_inserts),
        T(t_remove_is_noop_when_absent),
        T(t_remove_swaps_keep_slots_right),
        T(t_exact_members_after_removals),
        T(t_empty_cells_are_freed_and_reused),
        T(t_big_cell_emptied_and_refilled),
        T(t_random_operations_match_brute_force),
    };
    return cmocka_run_group_tests_name("grid", tests, NULL, NULL);
}
