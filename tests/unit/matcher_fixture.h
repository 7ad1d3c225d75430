/*
 * matcher_fixture.h - the matched-pair graph on top of the grid, without the
 * core, shared by test_matcher.c and test_crowd.c. The match rule mirrors
 * the proximity plugin: same game, map and channel, within ENTER to enter,
 * within STAY to stay.
 *
 * Use: define `world` first, with at least
 *     es_grid grid; es_matcher m; es_session *all[N]; size_t n;
 * then include this file, then define match_fn and pair_fn (the matcher's
 * callbacks, ud being the world). cmocka_unit_test_setup_teardown(fn,
 * setup, <the file's teardown>), the teardown ending in world_free and
 * free(w).
 *
 * Everything is static, as in helpers.h.
 */
#ifndef EARSHOT_TEST_MATCHER_FIXTURE_H
#define EARSHOT_TEST_MATCHER_FIXTURE_H

#include "helpers.h"

#include "grid.h"
#include "matcher.h"

#define ENTER 20
#define STAY 25

static int match_fn(void *ud, const es_session *a, const es_session *b, int matched);
static void pair_fn(void *ud, const es_session *a, const es_session *b, int matched);

static int rule(const earshot_position *a, const earshot_position *b, int matched)
{
    if (a->game_id != b->game_id || a->map_id != b->map_id || a->channel != b->channel)
        return 0;
    int64_t dx = (int64_t)a->x - b->x, dy = (int64_t)a->y - b->y;
    int64_t r = matched ? STAY : ENTER;
    return dx * dx + dy * dy <= r * r;
}

static int setup(void **state)
{
    world *w = calloc(1, sizeof *w);
    if (!w)
        return -1;
    es_grid_init(&w->grid, STAY);
    es_matcher_init(&w->m, &w->grid, match_fn, pair_fn, w);
    *state = w;
    return 0;
}

/* Frees every session, the matcher and the grid (not w itself). The
 * sessions must have left the matcher already. */
static void world_free(world *w)
{
    for (size_t i = 0; i < w->n; i++) {
        free(w->all[i]->edges);
        free(w->all[i]);
    }
    es_matcher_free(&w->m);
    es_grid_free(&w->grid);
}

/* A new session (in no cell, on no map yet). Its index in w->all is kept
 * in its serial, which only the core's logs read. */
static es_session *mk(world *w, const char *id)
{
    es_session *s = calloc(1, sizeof *s);
    assert_non_null(s);
    snprintf(s->id, sizeof s->id, "%s", id);
    s->id_len = strlen(s->id);
    s->view.client_id = s->id;
    s->cell = ES_GRID_NO_CELL;
    assert_true(w->n < ES_ARRAY_LEN(w->all));
    s->serial = w->n;
    w->all[w->n++] = s;
    return s;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* ids[0..n) sorted (in place), comma separated. */
static const char *join_sorted(const char **ids, size_t n)
{
    qsort(ids, n, sizeof *ids, cmp_str);
    static char out[8][65536];
    static unsigned ring;
    char *o = out[ring++ % 8];
    o[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (i)
            strcat(o, ",");
        strcat(o, ids[i]);
    }
    return o;
}

/* s's peers, sorted, comma separated. */
static const char *peers(const es_session *s)
{
    const char *ids[512];
    assert_true(s->nedges <= 512);
    for (uint32_t i = 0; i < s->nedges; i++)
        ids[i] = es_edge_other(s->edges[i], s)->id;
    return join_sorted(ids, s->nedges);
}

#endif /* EARSHOT_TEST_MATCHER_FIXTURE_H */
