#include "grid.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/*
 * One multiply per coordinate with odd multipliers drawn at startup (so
 * clients cannot aim positions at one probe chain), folded once: cheap,
 * since a move makes nine lookups.
 */
static uint64_t hk[3] = {0x9e3779b97f4a7c15ull, 0xc2b2ae3d27d4eb4full, 0x165667b19e3779f9ull};

void es_grid_seed(uint64_t a, uint64_t b, uint64_t c)
{
    hk[0] = a | 1, hk[1] = b | 1, hk[2] = c | 1;
}

static uint64_t key_hash(int32_t game, int32_t map, int64_t cx, int64_t cy)
{
    uint64_t h = (uint64_t)cx * hk[0] + (uint64_t)cy * hk[1] +
                 (((uint64_t)(uint32_t)game << 32) | (uint32_t)map) * hk[2];
    return h ^ (h >> 29) ^ (h >> 47);
}

void es_grid_init(es_grid *g, int64_t cell_size)
{
    memset(g, 0, sizeof *g);
    g->cell_size = cell_size > 0 ? cell_size : 1;
    g->free_head = UINT32_MAX;
    g->table_cap = 64;
    g->table = es_xcalloc(g->table_cap, sizeof *g->table);
}

void es_grid_free(es_grid *g)
{
    for (uint32_t i = 0; i < g->ncells; i++)
        free(g->cells[i].members);
    free(g->cells);
    free(g->table);
    memset(g, 0, sizeof *g);
}

static int cell_is(const es_grid_cell *c, int32_t game, int32_t map, int64_t cx, int64_t cy)
{
    return c->cx == cx && c->cy == cy && c->map_id == map && c->game_id == game;
}

static uint32_t lookup(const es_grid *g, int32_t game, int32_t map, int64_t cx, int64_t cy)
{
    uint32_t mask = g->table_cap - 1;
    for (uint32_t i = (uint32_t)key_hash(game, map, cx, cy) & mask;; i = (i + 1) & mask) {
        uint32_t e = g->table[i];
        if (e == 0)
            return ES_GRID_NO_CELL;
        if (cell_is(&g->cells[e - 1], game, map, cx, cy))
            return e - 1;
    }
}

static void table_place(es_grid *g, uint32_t idx)
{
    const es_grid_cell *c = &g->cells[idx];
    uint32_t mask = g->table_cap - 1;
    uint32_t i = (uint32_t)key_hash(c->game_id, c->map_id, c->cx, c->cy) & mask;
    while (g->table[i])
        i = (i + 1) & mask;
    g->table[i] = idx + 1;
}

static void table_grow(es_grid *g)
{
    uint32_t old_cap = g->table_cap;
    uint32_t *old = g->table;
    g->table_cap *= 2;
    g->table = es_xcalloc(g->table_cap, sizeof *g->table);
    for (uint32_t i = 0; i < old_cap; i++)
        if (old[i])
            table_place(g, old[i] - 1);
    free(old);
}

static void table_remove(es_grid *g, uint32_t idx)
{
    uint32_t mask = g->table_cap - 1;
    const es_grid_cell *c = &g->cells[idx];
    uint32_t i = (uint32_t)key_hash(c->game_id, c->map_id, c->cx, c->cy) & mask;
    while (g->table[i] != idx + 1)
        i = (i + 1) & mask;
    g->table[i] = 0;
    for (uint32_t j = (i + 1) & mask; g->table[j]; j = (j + 1) & mask) {
        const es_grid_cell *m = &g->cells[g->table[j] - 1];
        uint32_t home = (uint32_t)key_hash(m->game_id, m->map_id, m->cx, m->cy) & mask;
        int between = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!between) {
            g->table[i] = g->table[j];
            g->table[j] = 0;
            i = j;
        }
    }
}

static uint32_t cell_get_or_add(es_grid *g, int32_t game, int32_t map, int64_t cx, int64_t cy)
{
    uint32_t idx = lookup(g, game, map, cx, cy);
    if (idx != ES_GRID_NO_CELL)
        return idx;
    if (g->free_head != UINT32_MAX) {
        idx = g->free_head;
        g->free_head = g->cells[idx].next_free;
    } else {
        if (g->ncells == g->cells_cap) {
            g->cells_cap = g->cells_cap ? g->cells_cap * 2 : 64;
            g->cells = es_xrealloc(g->cells, g->cells_cap * sizeof *g->cells);
        }
        idx = g->ncells++;
        g->cells[idx].members = NULL;
        g->cells[idx].cap = 0;
    }
    es_grid_cell *c = &g->cells[idx];
    c->game_id = game;
    c->map_id = map;
    c->cx = cx;
    c->cy = cy;
    c->n = 0;
    if ((g->live + 1) * 2 > g->table_cap) /* keep load under 1/2 */
        table_grow(g);
    table_place(g, idx);
    g->live++;
    return idx;
}

void es_grid_insert(es_grid *g, es_session *s)
{
    const earshot_position *p = &s->view.pos;
    uint32_t idx = cell_get_or_add(g, p->game_id, p->map_id, floor_div(p->x, g->cell_size),
                                   floor_div(p->y, g->cell_size));
    es_grid_cell *c = &g->cells[idx];
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 4;
        c->members = es_xrealloc(c->members, c->cap * sizeof *c->members);
    }
    s->cell = idx;
    s->slot = c->n;
    c->members[c->n++] = (es_grid_entry){.s = s, .x = p->x, .y = p->y};
}

void es_grid_remove(es_grid *g, es_session *s)
{
    if (s->cell == ES_GRID_NO_CELL)
        return;
    es_grid_cell *c = &g->cells[s->cell];
    es_grid_entry last = c->members[--c->n];
    c->members[s->slot] = last;
    last.s->slot = s->slot;
    if (c->n == 0) {
        table_remove(g, s->cell);
        c->next_free = g->free_head;
        g->free_head = s->cell;
        g->live--;
        /* Give back a large member array; keep small ones for reuse. */
        if (c->cap > 64) {
            free(c->members);
            c->members = NULL;
            c->cap = 0;
        }
    }
    s->cell = ES_GRID_NO_CELL;
}

void es_grid_update(es_grid *g, es_session *s)
{
    const earshot_position *p = &s->view.pos;
    if (s->cell != ES_GRID_NO_CELL &&
        cell_is(&g->cells[s->cell], p->game_id, p->map_id, floor_div(p->x, g->cell_size),
                floor_div(p->y, g->cell_size))) {
        es_grid_entry *e = &g->cells[s->cell].members[s->slot];
        e->x = p->x;
        e->y = p->y;
        return;
    }
    es_grid_remove(g, s);
    es_grid_insert(g, s);
}

unsigned es_grid_neighbourhood(const es_grid *g, const es_session *s,
                               const es_grid_cell *out[9])
{
    const earshot_position *p = &s->view.pos;
    int64_t cx = floor_div(p->x, g->cell_size), cy = floor_div(p->y, g->cell_size);
    uint32_t mask = g->table_cap - 1;
    uint32_t slot[9];
    /*
     * Three passes, so that the nine lookups' cache misses overlap instead
     * of queueing: hash and prefetch the table slots, then prefetch the
     * cells they name, then compare keys and probe on.
     */
    for (int k = 0; k < 9; k++) {
        slot[k] = (uint32_t)key_hash(p->game_id, p->map_id, cx + k / 3 - 1, cy + k % 3 - 1) & mask;
        __builtin_prefetch(&g->table[slot[k]]);
    }
    for (int k = 0; k < 9; k++)
        if (g->table[slot[k]])
            __builtin_prefetch(&g->cells[g->table[slot[k]] - 1]);
    unsigned n = 0;
    for (int k = 0; k < 9; k++) {
        int64_t x = cx + k / 3 - 1, y = cy + k % 3 - 1;
        for (uint32_t i = slot[k];; i = (i + 1) & mask) {
            uint32_t e = g->table[i];
            if (e == 0)
                break;
            const es_grid_cell *c = &g->cells[e - 1];
            if (cell_is(c, p->game_id, p->map_id, x, y)) {
                __builtin_prefetch(c->members);
                out[n++] = c;
                break;
            }
        }
    }
    return n;
}

void es_grid_query(const es_grid *g, const es_session *s,
                   void (*visit)(es_session *cand, void *ud), void *ud)
{
    const es_grid_cell *cells[9];
    unsigned n = es_grid_neighbourhood(g, s, cells);
    for (unsigned k = 0; k < n; k++)
        for (uint32_t i = 0; i < cells[k]->n; i++)
            visit(cells[k]->members[i].s, ud);
}

uint32_t es_grid_live_cells(const es_grid *g) { return g->live; }
