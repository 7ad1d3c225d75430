/*
 * test_grid - the spatial hash grid with fabricated sessions.
 */
#include "helpers.h"

#include "grid.h"

/* ---- helpers ------------------------------------------------------------- */

static es_session *mk(const char *id, int32_t game, int32_t map, int32_t x, int32_t y)
{
    es_session *s = calloc(1, sizeof *s);
    assert_non_null(s);
    snprintf(s->id, sizeof s->id, "%s", id);
    s->id_len = strlen(s->id);
    s->view.client_id = s->id;
    s->view.pos = (earshot_position){.game_id = game, .map_id = map, .x = x, .y = y};
    s->cell = ES_GRID_NO_CELL;
    return s;
}

static es_session *put(es_grid *g, const char *id, int32_t map, int32_t x, int32_t y)
{
    es_session *s = mk(id, 0, map, x, y);
    es_grid_insert(g, s);
    return s;
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

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The ids es_grid_query visits around s, sorted, comma separated. */
static const char *query_ids(const es_grid *g, const es_session *s)
{
    static collect c;
    c.n = 0;
    es_grid_query(g, s, visit, &c);
    const char *ids[4096];
    for (size_t i = 0; i < c.n; i++)
        ids[i] = c.found[i]->id;
    qsort(ids, c.n, sizeof ids[0], cmp_str);
    static char out[65536];
    out[0] = '\0';
    for (size_t i = 0; i < c.n; i++) {
        if (i)
            strcat(out, ",");
        strcat(out, ids[i]);
    }
    return out;
}

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
    static collect c;
    c.n = 0;
    es_grid_query(g, s, visit, &c);
    assert_int_equal(c.n, expected_count(all, n, s, g->cell_size));
    int64_t cx = fdiv(s->view.pos.x, g->cell_size), cy = fdiv(s->view.pos.y, g->cell_size);
    for (size_t i = 0; i < c.n; i++) {
        const es_session *o = c.found[i];
        assert_true(o->cell != ES_GRID_NO_CELL);
        assert_int_equal(o->view.pos.map_id, s->view.pos.map_id);
        assert_int_equal(o->view.pos.game_id, s->view.pos.game_id);
        int64_t dx = fdiv(o->view.pos.x, g->cell_size) - cx;
        int64_t dy = fdiv(o->view.pos.y, g->cell_size) - cy;
        assert_true(dx >= -1 && dx <= 1 && dy >= -1 && dy <= 1);
        for (size_t j = 0; j < i; j++)
            assert_ptr_not_equal(c.found[j], o); /* each visited once */
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
    es_grid g;
    es_grid_init(&g, 25);
    assert_int_equal(g.cell_size, 25);
    assert_int_equal(es_grid_live_cells(&g), 0);
    es_session *s = mk("a", 0, 1, 0, 0);
    assert_string_equal(query_ids(&g, s), "");
    es_grid_free(&g);
    free(s);

    es_grid_init(&g, 0);
    assert_int_equal(g.cell_size, 1);
    es_grid_free(&g);
    es_grid_init(&g, -5);
    assert_int_equal(g.cell_size, 1);
    es_grid_free(&g);
}

TEST(t_single_insert_sees_itself)
{
    es_grid g;
    es_grid_init(&g, 25);
    es_session *a = put(&g, "a", 1, 3, 4);
    assert_int_not_equal(a->cell, ES_GRID_NO_CELL);
    assert_int_equal(es_grid_live_cells(&g), 1);
    assert_string_equal(query_ids(&g, a), "a");
    es_grid_remove(&g, a);
    assert_int_equal(a->cell, ES_GRID_NO_CELL);
    assert_int_equal(es_grid_live_cells(&g), 0);
    assert_string_equal(query_ids(&g, a), "");
    es_grid_free(&g);
    free(a);
}

TEST(t_same_cell_and_border_neighbours)
{
    es_grid g;
    es_grid_init(&g, 25);
    es_session *a = put(&g, "a", 1, 24, 0);
    es_session *b = put(&g, "b", 1, 25, 0);  /* next cell over */
    es_session *c = put(&g, "c", 1, 0, 0);   /* same cell as a */
    es_session *d = put(&g, "d", 1, 24, 24); /* same cell as a */
    es_session *e = put(&g, "e", 1, 24, 25); /* cell above */
    assert_int_equal(a->cell, c->cell);
    assert_int_equal(a->cell, d->cell);
    assert_int_not_equal(a->cell, b->cell);
    assert_int_not_equal(a->cell, e->cell);
    assert_int_equal(es_grid_live_cells(&g), 3);
    assert_string_equal(query_ids(&g, a), "a,b,c,d,e");
    assert_string_equal(query_ids(&g, b), "a,b,c,d,e");
    assert_string_equal(query_ids(&g, e), "a,b,c,d,e");
    es_grid_free(&g);
    free(a), free(b), free(c), free(d), free(e);
}

TEST(t_three_by_three_reach)
{
    es_grid g;
    es_grid_init(&g, 25);
    es_session *o = put(&g, "o", 1, 0, 0);        /* cell (0,0) */
    es_session *r1 = put(&g, "r1", 1, 49, 49);    /* cell (1,1): in */
    es_session *r2 = put(&g, "r2", 1, 50, 0);     /* cell (2,0): out */
    es_session *l1 = put(&g, "l1", 1, -25, -25);  /* cell (-1,-1): in */
    es_session *l2 = put(&g, "l2", 1, -26, 0);    /* cell (-2,0): out */
    es_session *u2 = put(&g, "u2", 1, 0, 50);     /* cell (0,2): out */
    es_session *d1 = put(&g, "d1", 1, 10, -1);    /* cell (0,-1): in */
    assert_string_equal(query_ids(&g, o), "d1,l1,o,r1");
    assert_string_equal(query_ids(&g, r2), "r1,r2");
    assert_string_equal(query_ids(&g, l2), "l1,l2");
    assert_string_equal(query_ids(&g, u2), "r1,u2");
    es_grid_free(&g);
    free(o), free(r1), free(r2), free(l1), free(l2), free(u2), free(d1);
}

TEST(t_negative_coordinates_floor_division)
{
    es_grid g;
    es_grid_init(&g, 25);
    es_session *m1 = put(&g, "m1", 1, -1, 0);
    es_session *z = put(&g, "z", 1, 0, 0);
    es_session *m25 = put(&g, "m25", 1, -25, 0);
    es_session *m26 = put(&g, "m26", 1, -26, 0);
    es_session *m50 = put(&g, "m50", 1, -50, 0);
    es_session *m51 = put(&g, "m51", 1, -51, 0);
    /* -1 and 0 are different cells; -1 .. -25 share cell -1 */
    assert_int_not_equal(m1->cell, z->cell);
    assert_int_equal(m1->cell, m25->cell);
    assert_int_not_equal(m25->cell, m26->cell);
    assert_int_equal(m26->cell, m50->cell);
    assert_int_not_equal(m50->cell, m51->cell);
    assert_int_equal(g.cells[z->cell].cx, 0);
    assert_int_equal(g.cells[m1->cell].cx, -1);
    assert_int_equal(g.cells[m26->cell].cx, -2);
    assert_int_equal(g.cells[m51->cell].cx, -3);
    /* z (cell 0) reaches cell -1 but not -2 */
    assert_string_equal(query_ids(&g, z), "m1,m25,z");
    assert_string_equal(query_ids(&g, m1), "m1,m25,m26,m50,z");
    assert_string_equal(query_ids(&g, m51), "m26,m50,m51");
    es_grid_free(&g);
    free(m1), free(z), free(m25), free(m26), free(m50), free(m51);
}

TEST(t_negative_y)
{
    es_grid g;
    es_grid_init(&g, 25);
    es_session *a = put(&g, "a", 1, 0, -1);
    es_session *b = put(&g, "b", 1, 0, 0);
    es_session *c = put(&g, "c", 1, 0, -26);
    es_session *d = put(&g, "d", 1, 0, 25);
    assert_int_not_equal(a->cell, b->cell);
    assert_int_equal(g.cells[a->cell].cy, -1);
    assert_int_equal(g.cells[c->cell].cy, -2);
    assert_string_equal(query_ids(&g, a), "a,b,c");
    assert_string_equal(query_ids(&g, c), "a,c");
    assert_string_equal(query_ids(&g, d), "b,d");
    es_grid_free(&g);
    free(a), free(b), free(c), free(d);
}

TEST(t_int32_extremes)
{
    es_grid g;
    es_grid_init(&g, 25);
    es_session *lo = put(&g, "lo", 1, INT32_MIN, 0);
    es_session *hi = put(&g, "hi", 1, INT32_MAX, 0);
    es_session *hi2 = put(&g, "hi2", 1, INT32_MAX, 0);
    es_session *lo2 = put(&g, "lo2", 1, INT32_MIN + 1, 0);
    es_session *corner = put(&g, "corner", 1, INT32_MAX, INT32_MAX);
    es_session *anti = put(&g, "anti", 1, INT32_MIN, INT32_MIN);
    es_session *near_hi = put(&g, "nearhi", 1, INT32_MAX - 30, INT32_MAX - 30);
    assert_string_equal(query_ids(&g, lo), "lo,lo2");
    assert_string_equal(query_ids(&g, hi), "hi,hi2");
    assert_string_equal(query_ids(&g, hi2), "hi,hi2");
    assert_string_equal(query_ids(&g, corner), "corner,nearhi");
    assert_string_equal(query_ids(&g, anti), "anti");
    /* the cell numbers are floor divisions, no wrap-around */
    assert_true(g.cells[lo->cell].cx == fdiv(INT32_MIN, 25));
    assert_true(g.cells[hi->cell].cx == fdiv(INT32_MAX, 25));
    es_grid_free(&g);
    free(lo), free(hi), free(hi2), free(lo2), free(corner), free(anti), free(near_hi);
}

TEST(t_huge_cell_size)
{
    /* With cells of 2^32 units, INT32_MIN and INT32_MAX are in adjacent cells. */
    es_grid g;
    es_grid_init(&g, INT64_C(1) << 32);
    es_session *lo = put(&g, "lo", 1, INT32_MIN, INT32_MIN);
    es_session *hi = put(&g, "hi", 1, INT32_MAX, INT32_MAX);
    es_session *mid = put(&g, "mid", 1, 0, 0);
    assert_int_equal(g.cells[lo->cell].cx, -1);
    assert_int_equal(g.cells[hi->cell].cx, 0);
    assert_string_equal(query_ids(&g, lo), "hi,lo,mid");
    assert_int_equal(es_grid_live_cells(&g), 2);
    es_grid_free(&g);
    free(lo), free(hi), free(mid);
}

TEST(t_other_map_or_game_never_returned)
{
    es_grid g;
    es_grid_init(&g, 25);
    es_session *a = mk("a", 0, 1, 5, 5);
    es_session *b = mk("b", 0, 2, 5, 5);  /* other map */
    es_session *c = mk("c", 1, 1, 5, 5);  /* other game */
    es_session *d = mk("d", 1, 2, 5, 5);  /* both */
    es_session *e = mk("e", 0, 1, 6, 6);  /* same */
    es_session *f = mk("f", 0, -1, 5, 5); /* negative map */
    es_session *all[] = {a, b, c, d, e, f};
    for (size_t i = 0; i < ES_ARRAY_LEN(all); i++)
        es_grid_insert(&g, all[i]);
    assert_int_equal(es_grid_live_cells(&g), 5);
    assert_string_equal(query_ids(&g, a), "a,e");
    assert_string_equal(query_ids(&g, b), "b");
    assert_string_equal(query_ids(&g, c), "c");
    assert_string_equal(query_ids(&g, d), "d");
    assert_string_equal(query_ids(&g, f), "f");
    es_grid_free(&g);
    for (size_t i = 0; i < ES_ARRAY_LEN(all); i++)
        free(all[i]);
}

TEST(t_channel_is_not_a_grid_key)
{
    /* The grid splits by (game, map) only; channels are the match rule's job. */
    es_grid g;
    es_grid_init(&g, 25);
    es_session *a = mk("a", 0, 1, 0, 0);
    es_session *b = mk("b", 0, 1, 0, 0);
    b->view.pos.channel = 7;
    es_grid_insert(&g, a);
    es_grid_insert(&g, b);
    assert_int_equal(a->cell, b->cell);
    assert_string_equal(query_ids(&g, a), "a,b");
    es_grid_free(&g);
    free(a), free(b);
}

TEST(t_query_around_a_session_not_in_the_grid)
{
    es_grid g;
    es_grid_init(&g, 25);
    es_session *a = put(&g, "a", 1, 0, 0);
    es_session *probe = mk("probe", 0, 1, 30, 0);
    assert_string_equal(query_ids(&g, probe), "a");
    probe->view.pos.x = 60;
    assert_string_equal(query_ids(&g, probe), "");
    es_grid_free(&g);
    free(a), free(probe);
}

TEST(t_update_within_cell_keeps_cell)
{
    es_grid g;
    es_grid_init(&g, 25);
    es_session *a = put(&g, "a", 1, 1, 1);
    es_session *b = put(&g, "b", 1, 2, 2);
    uint32_t cell = a->cell, slot = a->slot;
    a->view.pos.x = 24;
    a->view.pos.y = 24;
    es_grid_update(&g, a);
    assert_int_equal(a->cell, cell);
    assert_int_equal(a->slot, slot);
    assert_int_equal(es_grid_live_cells(&g), 1);
    assert_string_equal(query_ids(&g, b), "a,b");
    es_grid_free(&g);
    free(a), free(b);
}

TEST(t_update_moves_between_cells)
{
    es_grid g;
    es_grid_init(&g, 25);
    es_session *a = put(&g, "a", 1, 0, 0);
    es_session *b = put(&g, "b", 1, 0, 0);
    es_session *far = put(&g, "far", 1, 200, 0);
    assert_string_equal(query_ids(&g, far), "far");
    a->view.pos.x = 190;
    es_grid_update(&g, a);
    assert_string_equal(query_ids(&g, far), "a,far");
    assert_string_equal(query_ids(&g, b), "b");
    assert_int_not_equal(a->cell, far->cell); /* cell 7 vs cell 8 */
    assert_int_equal(es_grid_live_cells(&g), 3);
    /* b follows: its old cell empties and is freed */
    b->view.pos.x = 199;
    es_grid_update(&g, b);
    assert_int_equal(es_grid_live_cells(&g), 2);
    assert_int_equal(a->cell, b->cell);
    assert_string_equal(query_ids(&g, far), "a,b,far");
    check_slots(&g, (es_session *[]){a, b, far}, 3);
    es_grid_free(&g);
    free(a), free(b), free(far);
}

TEST(t_update_moves_between_maps_and_games)
{
    es_grid g;
    es_grid_init(&g, 25);
    es_session *a = put(&g, "a", 1, 0, 0);
    es_session *b = put(&g, "b", 1, 0, 0);
    es_session *c = put(&g, "c", 2, 0, 0);
    assert_string_equal(query_ids(&g, b), "a,b");
    a->view.pos.map_id = 2;
    es_grid_update(&g, a);
    assert_string_equal(query_ids(&g, b), "b");
    assert_string_equal(query_ids(&g, c), "a,c");
    assert_int_equal(a->cell, c->cell);
    a->view.pos.game_id = 9;
    es_grid_update(&g, a);
    assert_string_equal(query_ids(&g, c), "c");
    assert_string_equal(query_ids(&g, a), "a");
    assert_int_equal(es_grid_live_cells(&g), 3);
    a->view.pos.game_id = 0;
    a->view.pos.map_id = 1;
    es_grid_update(&g, a);
    assert_string_equal(query_ids(&g, b), "a,b");
    assert_int_equal(es_grid_live_cells(&g), 2);
    es_grid_free(&g);
    free(a), free(b), free(c);
}

TEST(t_update_of_session_not_in_grid_inserts)
{
    es_grid g;
    es_grid_init(&g, 25);
    es_session *a = mk("a", 0, 1, 0, 0);
    es_session *b = put(&g, "b", 1, 1, 1);
    es_grid_update(&g, a);
    assert_int_not_equal(a->cell, ES_GRID_NO_CELL);
    assert_string_equal(query_ids(&g, b), "a,b");
    es_grid_free(&g);
    free(a), free(b);
}

TEST(t_remove_is_noop_when_absent)
{
    es_grid g;
    es_grid_init(&g, 25);
    es_session *a = put(&g, "a", 1, 0, 0);
    es_session *b = mk("b", 0, 1, 0, 0);
    es_grid_remove(&g, b);
    assert_string_equal(query_ids(&g, a), "a");
    es_grid_remove(&g, a);
    es_grid_remove(&g, a); /* twice */
    assert_int_equal(es_grid_live_cells(&g), 0);
    assert_string_equal(query_ids(&g, b), "");
    es_grid_free(&g);
    free(a), free(b);
}

TEST(t_remove_swaps_keep_slots_right)
{
    enum { N = 300 };
    es_grid g;
    es_grid_init(&g, 25);
    es_session *all[N];
    char id[16];
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof id, "s%03d", i);
        /* three cells on map 1 (two of them adjacent), one on map 2 */
        int k = i % 4;
        all[i] = put(&g, id, k == 3 ? 2 : 1, k == 2 ? 100 : k * 25, 0);
    }
    assert_int_equal(es_grid_live_cells(&g), 4);
    check_slots(&g, all, N);
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
        es_grid_remove(&g, s);
        assert_int_equal(s->cell, ES_GRID_NO_CELL);
        all[order[r]] = NULL;
        check_slots(&g, all, N);
        /* every remaining session still finds exactly who it should */
        if (r % 7 == 0)
            for (int i = 0; i < N; i++)
                if (all[i])
                    check_query_brute(&g, all, N, all[i]);
        free(s);
    }
    assert_int_equal(es_grid_live_cells(&g), 0);
    es_grid_free(&g);
}

TEST(t_exact_members_after_removals)
{
    es_grid g;
    es_grid_init(&g, 25);
    es_session *s[6];
    for (int i = 0; i < 6; i++)
        s[i] = put(&g, fmt("m%d", i), 1, i, i);
    es_grid_remove(&g, s[0]); /* first slot: the last is swapped in */
    assert_string_equal(query_ids(&g, s[1]), "m1,m2,m3,m4,m5");
    es_grid_remove(&g, s[5]);
    assert_string_equal(query_ids(&g, s[1]), "m1,m2,m3,m4");
    es_grid_remove(&g, s[3]);
    assert_string_equal(query_ids(&g, s[1]), "m1,m2,m4");
    check_slots(&g, (es_session *[]){s[1], s[2], s[4]}, 3);
    es_grid_remove(&g, s[1]);
    es_grid_remove(&g, s[2]);
    assert_string_equal(query_ids(&g, s[4]), "m4");
    es_grid_remove(&g, s[4]);
    assert_int_equal(es_grid_live_cells(&g), 0);
    es_grid_free(&g);
    for (int i = 0; i < 6; i++)
        free(s[i]);
}

TEST(t_empty_cells_are_freed_and_reused)
{
    enum { N = 500 };
    es_grid g;
    es_grid_init(&g, 25);
    es_session *all[N];
    for (int i = 0; i < N; i++)
        all[i] = put(&g, fmt("c%d", i), 1, i * 100, -i * 100); /* one cell each */
    assert_int_equal(es_grid_live_cells(&g), N);
    uint32_t slab = g.ncells;
    for (int i = 0; i < N; i++)
        assert_string_equal(query_ids(&g, all[i]), all[i]->id);
    for (int i = 0; i < N; i += 2)
        es_grid_remove(&g, all[i]);
    assert_int_equal(es_grid_live_cells(&g), N / 2);
    for (int i = 1; i < N; i += 2)
        assert_string_equal(query_ids(&g, all[i]), all[i]->id);
    for (int i = 1; i < N; i += 2)
        es_grid_remove(&g, all[i]);
    assert_int_equal(es_grid_live_cells(&g), 0);
    /* a second round reuses the freed cells instead of growing the slab */
    for (int i = 0; i < N; i++) {
        all[i]->view.pos.y += 7;
        es_grid_insert(&g, all[i]);
    }
    assert_int_equal(es_grid_live_cells(&g), N);
    assert_int_equal(g.ncells, slab);
    check_slots(&g, all, N);
    for (int i = 0; i < N; i++) {
        es_grid_remove(&g, all[i]);
        free(all[i]);
    }
    assert_int_equal(es_grid_live_cells(&g), 0);
    es_grid_free(&g);
}

TEST(t_big_cell_emptied_and_refilled)
{
    enum { N = 200 };
    es_grid g;
    es_grid_init(&g, 25);
    es_session *all[N];
    for (int i = 0; i < N; i++)
        all[i] = put(&g, fmt("b%03d", i), 1, 3, 3);
    assert_int_equal(es_grid_live_cells(&g), 1);
    for (int i = 0; i < N; i++)
        es_grid_remove(&g, all[i]);
    assert_int_equal(es_grid_live_cells(&g), 0);
    for (int i = 0; i < N; i++)
        es_grid_insert(&g, all[i]);
    assert_int_equal(es_grid_live_cells(&g), 1);
    check_slots(&g, all, N);
    collect *c = calloc(1, sizeof *c);
    es_grid_query(&g, all[0], visit, c);
    assert_int_equal(c->n, N);
    free(c);
    for (int i = 0; i < N; i++) {
        es_grid_remove(&g, all[i]);
        free(all[i]);
    }
    es_grid_free(&g);
}

TEST(t_random_operations_match_brute_force)
{
    enum { N = 300, STEPS = 3000 };
    es_grid g;
    es_grid_init(&g, 25);
    es_session *all[N];
    for (int i = 0; i < N; i++)
        all[i] = mk(fmt("r%d", i), 0, 0, 0, 0);
    rng_state = 7;
    for (int step = 0; step < STEPS; step++) {
        es_session *s = all[rnd() % N];
        uint32_t op = rnd() % 4;
        if (op == 0) {
            es_grid_remove(&g, s);
        } else {
            s->view.pos.x = (int32_t)(rnd() % 400) - 200;
            s->view.pos.y = (int32_t)(rnd() % 400) - 200;
            s->view.pos.map_id = (int32_t)(rnd() % 3);
            s->view.pos.game_id = (int32_t)(rnd() % 2);
            if (op == 1 && s->cell == ES_GRID_NO_CELL)
                es_grid_insert(&g, s);
            else
                es_grid_update(&g, s);
        }
        check_query_brute(&g, all, N, s);
        if (step % 100 == 0) {
            check_slots(&g, all, N);
            for (int i = 0; i < N; i++)
                check_query_brute(&g, all, N, all[i]);
        }
    }
    for (int i = 0; i < N; i++)
        es_grid_remove(&g, all[i]);
    assert_int_equal(es_grid_live_cells(&g), 0);
    es_grid_free(&g);
    for (int i = 0; i < N; i++)
        free(all[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_init_empty),
        cmocka_unit_test(t_single_insert_sees_itself),
        cmocka_unit_test(t_same_cell_and_border_neighbours),
        cmocka_unit_test(t_three_by_three_reach),
        cmocka_unit_test(t_negative_coordinates_floor_division),
        cmocka_unit_test(t_negative_y),
        cmocka_unit_test(t_int32_extremes),
        cmocka_unit_test(t_huge_cell_size),
        cmocka_unit_test(t_other_map_or_game_never_returned),
        cmocka_unit_test(t_channel_is_not_a_grid_key),
        cmocka_unit_test(t_query_around_a_session_not_in_the_grid),
        cmocka_unit_test(t_update_within_cell_keeps_cell),
        cmocka_unit_test(t_update_moves_between_cells),
        cmocka_unit_test(t_update_moves_between_maps_and_games),
        cmocka_unit_test(t_update_of_session_not_in_grid_inserts),
        cmocka_unit_test(t_remove_is_noop_when_absent),
        cmocka_unit_test(t_remove_swaps_keep_slots_right),
        cmocka_unit_test(t_exact_members_after_removals),
        cmocka_unit_test(t_empty_cells_are_freed_and_reused),
        cmocka_unit_test(t_big_cell_emptied_and_refilled),
        cmocka_unit_test(t_random_operations_match_brute_force),
    };
    return cmocka_run_group_tests_name("grid", tests, NULL, NULL);
}
