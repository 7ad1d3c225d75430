/*
 * inproc - the world and the matcher alone, no sockets: how much does one
 * position update cost as the number of clients grows at equal density?
 *
 * Clients are spread over maps whose size is chosen so that each client has
 * on average --density others within 20 units. The real proximity plugin
 * (loaded through the hook chain, as the server does) decides matches. One
 * timed update = move one random client a few units, update its grid cell,
 * re-match it, and collect the dirty set (what the server turns into
 * NearbyPeers messages).
 *
 * Also measures the cost of one match-filter call through the chain, for
 * the C plugin and for a Lua script doing the same thing; the 10,000-client
 * world again under the stock crowd cap (16 peers, margin 2: "world_capped");
 * and a crowd of 200 standing in one spot, all within the radius of each
 * other, jostling by a unit or two, capped at 16 and not ("crowd"): CPU per
 * update and NearbyPeers lists (dirty clients) per update.
 *
 * Usage: inproc PLUGIN_DIR SOURCE_DIR [DENSITY [MAX_CLIENTS [MIN_CLIENTS [WITH_LUA [UPDATES]]]]]
 * Output: one JSON object per line, for bench/run.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "grid.h"
#include "hooks.h"
#include "log.h"
#include "matcher.h"
#include "util.h"

static es_hooks hooks;

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void load_hooks(const char *plugin_dir, const char *script_dir, int lua)
{
    char path[] = "/tmp/earshot-inproc-XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "log = { level = \"warn\"; };\nplugin_dir = \"%s\";\nscript_dir = \"%s\";\n", plugin_dir,
            script_dir);
    if (lua)
        fprintf(f, "hooks = ( { type = \"lua\"; name = \"proximity_lua\"; path = \"%s/bench/proximity.lua\"; } );\n",
                script_dir);
    else
        fprintf(f, "hooks = ( { type = \"plugin\"; name = \"proximity\"; } );\n");
    fclose(f);
    es_config cfg;
    char err[1024];
    if (es_config_load(&cfg, path, NULL, err, sizeof err) || es_hooks_load(&hooks, &cfg, err, sizeof err)) {
        fprintf(stderr, "inproc: %s\n", err);
        exit(1);
    }
    unlink(path);
    es_config_apply_log(&cfg);
    /* the config's strings are not needed by the loaded links */
    es_config_free(&cfg);
}

/* Clients in a grid and matched by the hook chains, as the server keeps them. */
typedef struct world {
    es_grid grid;
    es_matcher m;
    es_session *s;
    size_t n;
    uint32_t *who; /* pre-drawn moves: who moves, and by how much */
    int8_t *step;
} world;

/* n clients, client i on map i % maps at a random point of [0, side)^2,
 * each matched as it arrives, under a cap of max_peers. */
static void world_open(world *w, size_t n, size_t maps, int32_t side, uint32_t cap)
{
    es_grid_init(&w->grid, hooks.query_radius);
    es_matcher_init(&w->m, &w->grid, NULL, NULL, NULL);
    es_matcher_use_hooks(&w->m, &hooks);
    es_matcher_set_cap(&w->m, cap, 2.0);
    w->n = n;
    w->s = calloc(n, sizeof *w->s);
    for (size_t i = 0; i < n; i++) {
        es_session *c = &w->s[i];
        snprintf(c->id, sizeof c->id, "c%zu", i);
        c->id_len = strlen(c->id);
        c->view.client_id = c->id;
        c->view.address = "127.0.0.1";
        c->view.pos.map_id = (int32_t)(i % maps);
        c->view.pos.x = (int32_t)(rnd() % (uint64_t)side);
        c->view.pos.y = (int32_t)(rnd() % (uint64_t)side);
        c->cell = ES_GRID_NO_CELL;
        es_grid_insert(&w->grid, c);
        es_matcher_update(&w->m, c);
        size_t nd;
        es_matcher_take_dirty(&w->m, &nd);
    }
}

/* Pre-draw the moves, so that the timed loop measures earshot, not the RNG. */
static void world_draw(world *w, size_t updates, int step_max)
{
    w->who = malloc(updates * sizeof *w->who);
    w->step = malloc(updates * 2);
    for (size_t k = 0; k < updates; k++) {
        w->who[k] = (uint32_t)(rnd() % w->n);
        w->step[2 * k] = (int8_t)((int)(rnd() % (uint64_t)(2 * step_max + 1)) - step_max);
        w->step[2 * k + 1] = (int8_t)((int)(rnd() % (uint64_t)(2 * step_max + 1)) - step_max);
    }
}

/* Move k: its client steps inside [0, side)^2 (turning back at an edge), the
 * grid and matcher follow, and the dirty clients are added to *dirty.
 * Returns 0, doing nothing, when the step lands where the client stands and
 * skip_still is set (the core drops unchanged positions before the matcher). */
static int world_move(world *w, size_t k, int32_t side, int skip_still, size_t *dirty)
{
    es_session *c = &w->s[w->who[k]];
    int32_t x = c->view.pos.x + w->step[2 * k], y = c->view.pos.y + w->step[2 * k + 1];
    if (x < 0 || x >= side)
        x = c->view.pos.x - w->step[2 * k];
    if (y < 0 || y >= side)
        y = c->view.pos.y - w->step[2 * k + 1];
    if (skip_still && x == c->view.pos.x && y == c->view.pos.y)
        return 0;
    c->view.pos.x = x;
    c->view.pos.y = y;
    es_grid_update(&w->grid, c);
    es_matcher_update(&w->m, c);
    size_t nd;
    es_matcher_take_dirty(&w->m, &nd);
    *dirty += nd;
    return 1;
}

static void world_close(world *w)
{
    for (size_t i = 0; i < w->n; i++)
        free(w->s[i].edges);
    free(w->s);
    free(w->who);
    free(w->step);
    es_matcher_free(&w->m);
    es_grid_free(&w->grid);
}

/* One world of n clients; returns ns per update over `updates` updates. */
static void run_world(size_t n, size_t maps, double density, size_t updates, uint32_t cap)
{
    double area_per_client = M_PI * 20.0 * 20.0 / density;
    int32_t side = (int32_t)sqrt((double)n / (double)maps * area_per_client);
    world w;
    world_open(&w, n, maps, side, cap);
    double pairs_per_client = 2.0 * (double)w.m.pairs / (double)n;
    world_draw(&w, updates, 3);
    size_t dirty_total = 0;
    double t0 = now_s(), c0 = cpu_s();
    for (size_t k = 0; k < updates; k++)
        world_move(&w, k, side, 0, &dirty_total);
    double wall = now_s() - t0, cpu = cpu_s() - c0;
    printf("{\"bench\":\"%s\",\"max_peers\":%u,\"clients\":%zu,\"maps\":%zu,\"density\":%.1f,\"measured_density\":%.2f,"
           "\"updates\":%zu,\"ns_per_update\":%.1f,\"updates_per_s\":%.0f,\"cpu_ns_per_update\":%.1f,"
           "\"dirty_per_update\":%.3f}\n",
           cap ? "world_capped" : "world", cap, n, maps, density, pairs_per_client, updates, wall * 1e9 / (double)updates,
           (double)updates / wall, cpu * 1e9 / (double)updates, (double)dirty_total / (double)updates);
    fflush(stdout);
    world_close(&w);
}

/*
 * A crowd of n in one spot: everyone within a square of side `side` (14 or
 * less: all within 20 of each other), each update moves one member by up
 * to `step` on each axis inside the square. CPU per update and dirty
 * clients (the NearbyPeers the server would send) per update, with the cap
 * and without.
 */
static void run_crowd(size_t n, size_t updates, uint32_t cap, int32_t side, int step_max)
{
    world w;
    world_open(&w, n, 1, side, cap);
    world_draw(&w, updates, step_max);
    size_t dirty_total = 0, moves = 0;
    uint64_t capped0 = w.m.capped_out;
    double c0 = cpu_s();
    for (size_t k = 0; k < updates; k++)
        moves += (size_t)world_move(&w, k, side, 1, &dirty_total);
    double cpu = cpu_s() - c0;
    printf("{\"bench\":\"crowd\",\"clients\":%zu,\"side\":%d,\"step\":%d,\"max_peers\":%u,"
           "\"swap_margin\":2.0,"
           "\"updates\":%zu,\"peers_per_client\":%.2f,\"cpu_ns_per_update\":%.1f,"
           "\"lists_per_update\":%.3f,\"capped_out_per_update\":%.2f,\"cascade_cuts\":%llu}\n",
           n, (int)side, step_max, cap, moves, 2.0 * (double)w.m.pairs / (double)n, cpu * 1e9 / (double)moves,
           (double)dirty_total / (double)moves, (double)(w.m.capped_out - capped0) / (double)moves,
           (unsigned long long)w.m.cascade_cuts);
    fflush(stdout);
    world_close(&w);
}

/* ns per match-filter call through the chain. */
static void run_hook(const char *kind, size_t calls)
{
    earshot_client a = {.client_id = "alice", .address = "127.0.0.1", .pos = {.map_id = 1}};
    earshot_client b = {.client_id = "bob", .address = "127.0.0.1", .pos = {.map_id = 1}};
    volatile int sink = 0;
    double t0 = now_s();
    for (size_t k = 0; k < calls; k++) {
        b.pos.x = (int32_t)(k & 31);
        sink += es_hooks_match(&hooks, &a, &b, (int)(k & 1));
    }
    double wall = now_s() - t0;
    printf("{\"bench\":\"hook\",\"kind\":\"%s\",\"calls\":%zu,\"ns_per_call\":%.1f,\"matches\":%d}\n",
           kind, calls, wall * 1e9 / (double)calls, sink);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    const char *plugin_dir = argc > 1 ? argv[1] : "build/plugins";
    const char *source_dir = argc > 2 ? argv[2] : ".";
    double density = argc > 3 ? atof(argv[3]) : 5.0;
    size_t max_clients = argc > 4 ? (size_t)atol(argv[4]) : 1000000;
    size_t min_clients = argc > 5 ? (size_t)atol(argv[5]) : 1000;
    int with_lua = argc > 6 ? atoi(argv[6]) : 1;
    size_t updates = argc > 7 ? (size_t)atol(argv[7]) : 2000000;
    es_hash_seed_random();

    load_hooks(plugin_dir, source_dir, 0);
    run_hook("c", 2000000);
    for (size_t n = min_clients; n <= max_clients; n *= 10) {
        size_t maps = n >= 100000 ? n / 10000 : 1;
        run_world(n, maps, density, updates, 0);
    }
    if (min_clients <= 10000 && max_clients >= 10000)
        run_world(10000, 1, density, updates, 16);
    for (int side = 14; side >= 8; side -= 6) {
        run_crowd(200, updates / 4 + 1, 16, side, side == 14 ? 1 : 2);
        run_crowd(200, updates / 4 + 1, 0, side, side == 14 ? 1 : 2);
    }
    es_hooks_unload(&hooks);
    if (!with_lua)
        return 0;

    load_hooks(plugin_dir, source_dir, 1);
    run_hook("lua", 1000000);
    run_world(10000, 1, density, 500000, 0);
    es_hooks_unload(&hooks);
    return 0;
}
