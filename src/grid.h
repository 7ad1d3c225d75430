/*
 * grid - the spatial hash grid: where every registered client stands.
 *
 * Space is cut into square cells of `cell_size` units, separately for each
 * (game_id, map_id). A cell exists only while someone stands in it, so
 * memory follows the number of clients, not the size of the maps. With
 * cell_size at least the largest query radius, everyone within that radius
 * of a client is in the 3x3 block of cells around it, so a query costs in
 * proportion to the local density only. Cell coordinates are 64-bit floor
 * divisions, so int32 extremes neither overflow nor wrap around.
 */
#ifndef EARSHOT_GRID_H
#define EARSHOT_GRID_H

#include <stdint.h>

#include "session.h"

/* A cell's member: the session and a copy of its coordinates, so a query
 * can rule out far candidates without touching their sessions. */
typedef struct es_grid_entry {
    es_session *s;
    int32_t x, y;
} es_grid_entry;

typedef struct es_grid_cell {
    int32_t game_id, map_id;
    int64_t cx, cy;
    es_grid_entry *members;
    uint32_t n, cap;
    uint32_t next_free; /* free-list link while unused */
} es_grid_cell;

typedef struct es_grid {
    int64_t cell_size;
    es_grid_cell *cells; /* slab; sessions refer to cells by index */
    uint32_t ncells, cells_cap;
    uint32_t free_head;  /* UINT32_MAX when empty */
    uint32_t *table;     /* open addressing: cell index + 1, 0 = empty */
    uint32_t table_cap;  /* power of two */
    uint32_t live;       /* cells in the table */
} es_grid;

#define ES_GRID_NO_CELL UINT32_MAX

void es_grid_init(es_grid *g, int64_t cell_size);
/* Key the cell hash (all grids) with random values; call once at startup. */
void es_grid_seed(uint64_t a, uint64_t b, uint64_t c);
void es_grid_free(es_grid *g);

/* Add s at s->view.pos. s->cell must be ES_GRID_NO_CELL. */
void es_grid_insert(es_grid *g, es_session *s);
/* Remove s; no-op if it is not in the grid. */
void es_grid_remove(es_grid *g, es_session *s);
/* s->view.pos changed: move s to its new cell if the cell changed, and
 * keep its entry's coordinates current. */
void es_grid_update(es_grid *g, es_session *s);

/* The up to 9 occupied cells around s (its game and map). Returns how many
 * were written to out. The pointers are valid until the grid changes. */
unsigned es_grid_neighbourhood(const es_grid *g, const es_session *s,
                               const es_grid_cell *out[9]);

/*
 * Call visit for every session in the 3x3 cells around s (s included) in
 * s's game and map. visit must not change the grid.
 */
void es_grid_query(const es_grid *g, const es_session *s,
                   void (*visit)(es_session *cand, void *ud), void *ud);

/* Number of clients in the grid and of live cells (for tests, metrics). */
uint32_t es_grid_live_cells(const es_grid *g);

#endif
