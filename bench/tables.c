/*
 * tables - why the two hash tables on the hot path stay hand-written.
 *
 * A relay looks its target up by client_id (idtable.c), and every position
 * update looks up the nine grid cells around the mover (grid.c). Both are
 * measured here against uthash, keyed with the same SipHash (as
 * addrcount.c and relay_guard use it), on the same keys in the same random
 * order: nanoseconds per lookup, median of 5 rounds.
 *
 * Usage: tables [N ...]   (default 1000 100000)
 * Output: one JSON object per line.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "grid.h"
#include "idtable.h"
#include "util.h"

#define HASH_FUNCTION(keyptr, keylen, hashv) ((hashv) = (unsigned)es_hash_bytes((keyptr), (keylen)))
#define uthash_malloc(sz) es_xmalloc(sz)
#include <uthash.h>

#define LOOKUPS 2000000
#define ROUNDS 5

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v)
{
    qsort(v, ROUNDS, sizeof *v, cmp_double);
    return v[ROUNDS / 2];
}

/* ---- client_id lookups ------------------------------------------------------ */

typedef struct id_entry {
    es_session *s;
    UT_hash_handle hh;
} id_entry;

static volatile uintptr_t sink;

static void ids(size_t n)
{
    es_session *s = es_xcalloc(n, sizeof *s);
    id_entry *entries = es_xcalloc(n, sizeof *entries), *head = NULL;
    es_idtable t;
    es_idtable_init(&t);
    for (size_t i = 0; i < n; i++) {
        s[i].id_len = (size_t)snprintf(s[i].id, sizeof s[i].id, "player-%016llx",
                                       (unsigned long long)rnd());
        es_idtable_insert(&t, &s[i]);
        entries[i].s = &s[i];
        HASH_ADD_KEYPTR(hh, head, s[i].id, s[i].id_len, &entries[i]);
    }
    uint32_t *order = es_xmalloc(LOOKUPS * sizeof *order);
    for (size_t i = 0; i < LOOKUPS; i++)
        order[i] = (uint32_t)(rnd() % n);
    double ours[ROUNDS], theirs[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        double t0 = now_s();
        for (size_t i = 0; i < LOOKUPS; i++) {
            const es_session *q = &s[order[i]];
            sink += (uintptr_t)es_idtable_find(&t, q->id, q->id_len);
        }
        ours[r] = (now_s() - t0) * 1e9 / LOOKUPS;
        t0 = now_s();
        for (size_t i = 0; i < LOOKUPS; i++) {
            const es_session *q = &s[order[i]];
            id_entry *e;
            HASH_FIND(hh, head, q->id, q->id_len, e);
            sink += (uintptr_t)e;
        }
        theirs[r] = (now_s() - t0) * 1e9 / LOOKUPS;
    }
    printf("{\"table\":\"client_id\",\"n\":%zu,\"idtable_ns\":%.1f,\"uthash_ns\":%.1f}\n", n,
           median(ours), median(theirs));
    HASH_CLEAR(hh, head);
    es_idtable_free(&t);
    free(order);
    free(entries);
    free(s);
}

/* ---- grid cell lookups ------------------------------------------------------ */

typedef struct cell_key {
    int32_t game_id, map_id;
    int64_t cx, cy;
} cell_key;

typedef struct cell_entry {
    cell_key k;
    uint32_t index;
    UT_hash_handle hh;
} cell_entry;

static void cells(size_t n)
{
    /* n clients, one per cell, on a square of cells: every neighbourhood
     * lookup finds cells, as in a crowd. */
    const int64_t size = 20;
    es_grid g;
    es_grid_init(&g, size);
    es_session *s = es_xcalloc(n, sizeof *s);
    size_t side = 1;
    while (side * side < n)
        side++;
    cell_entry *entries = es_xcalloc(n, sizeof *entries), *head = NULL;
    for (size_t i = 0; i < n; i++) {
        s[i].cell = ES_GRID_NO_CELL;
        s[i].view.pos = (earshot_position){.map_id = 1, .x = (int32_t)((i % side) * size + 1),
                                           .y = (int32_t)((i / side) * size + 1)};
        es_grid_insert(&g, &s[i]);
        entries[i].k = (cell_key){.game_id = 0, .map_id = 1, .cx = (int64_t)(i % side),
                                  .cy = (int64_t)(i / side)};
        entries[i].index = (uint32_t)i;
        HASH_ADD(hh, head, k, sizeof(cell_key), &entries[i]);
    }
    enum { MOVES = LOOKUPS / 9 };
    uint32_t *order = es_xmalloc(MOVES * sizeof *order);
    for (size_t i = 0; i < MOVES; i++)
        order[i] = (uint32_t)(rnd() % n);
    double ours[ROUNDS], theirs[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        double t0 = now_s();
        for (size_t i = 0; i < MOVES; i++) {
            const es_grid_cell *out[9];
            sink += es_grid_neighbourhood(&g, &s[order[i]], out);
        }
        ours[r] = (now_s() - t0) * 1e9 / (MOVES * 9.0);
        t0 = now_s();
        for (size_t i = 0; i < MOVES; i++) {
            const cell_entry *me = &entries[order[i]];
            for (int dy = -1; dy <= 1; dy++) {
                for (int dx = -1; dx <= 1; dx++) {
                    cell_key k;
                    memset(&k, 0, sizeof k);
                    k.map_id = 1, k.cx = me->k.cx + dx, k.cy = me->k.cy + dy;
                    cell_entry *e;
                    HASH_FIND(hh, head, &k, sizeof k, e);
                    sink += (uintptr_t)e;
                }
            }
        }
        theirs[r] = (now_s() - t0) * 1e9 / (MOVES * 9.0);
    }
    printf("{\"table\":\"grid_cell\",\"n\":%zu,\"grid_ns\":%.1f,\"uthash_ns\":%.1f}\n", n,
           median(ours), median(theirs));
    HASH_CLEAR(hh, head);
    es_grid_free(&g);
    free(order);
    free(entries);
    free(s);
}

int main(int argc, char **argv)
{
    es_hash_seed_random();
    size_t sizes[8] = {1000, 100000};
    int nsizes = 2;
    if (argc > 1) {
        nsizes = 0;
        for (int i = 1; i < argc && nsizes < 8; i++)
            sizes[nsizes++] = (size_t)strtoull(argv[i], NULL, 10);
    }
    for (int i = 0; i < nsizes; i++) {
        ids(sizes[i]);
        cells(sizes[i]);
    }
    return 0;
}
