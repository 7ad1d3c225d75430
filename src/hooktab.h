/*
 * hooktab - the hooks, leave reasons and relay kinds, each listed once.
 *
 * es_hook_table describes every hook of the plugin ABI: the name the config
 * (a script's `on_error` keys) and the metrics use, whether the hook asks
 * for a verdict or only notifies, the global function a Lua script defines
 * for it, a script's default on_error, and where its pointer lies in
 * earshot_plugin. The loader, the chains, the Lua host and the config all
 * read this one table.
 *
 * The verdict hooks come first, so an array indexed by es_hook_id that only
 * concerns them has ES_HOOK_VERDICT_COUNT entries.
 */
#ifndef EARSHOT_HOOKTAB_H
#define EARSHOT_HOOKTAB_H

#include <stddef.h>

typedef enum es_hook_id {
    ES_HOOK_JOIN = 0,
    ES_HOOK_POSITION,
    ES_HOOK_MATCH,
    ES_HOOK_RELAY,
    ES_HOOK_LEAVE,
    ES_HOOK_PAIR,
    ES_HOOK_TICK,
    ES_HOOK_COUNT
} es_hook_id;

#define ES_HOOK_VERDICT_COUNT 4 /* join, position, match, relay */

typedef struct es_hook_info {
    es_hook_id id;
    const char *name;       /* "join": on_error keys, metrics */
    int verdict;            /* 1: the chain decides; 0: a notification */
    const char *lua_global; /* "on_join": the function a script defines */
    int deny_on_error;      /* a script's default on_error: 1 deny, 0 allow (pass) */
    size_t plugin_offset;   /* offsetof(earshot_plugin, <the hook's pointer>) */
} es_hook_info;

/* Indexed by es_hook_id. */
extern const es_hook_info es_hook_table[ES_HOOK_COUNT];

/* "disconnect", "closed", "timeout", "takeover", "shutdown", "moved",
 * indexed by earshot_leave_reason. */
#define ES_LEAVE_REASON_COUNT 6
extern const char *const es_leave_reason_names[ES_LEAVE_REASON_COUNT];

/* "offer", "answer", "candidate", indexed by earshot_relay_kind. */
#define ES_RELAY_KIND_COUNT 3
extern const char *const es_relay_kind_names[ES_RELAY_KIND_COUNT];

#endif
