/*
 * lua_host - Lua 5.4 scripts as links of the hook chains.
 *
 * Each script gets its own lua_State, created when the config is loaded and
 * reused for every call. The state is a sandbox by construction: only the
 * base (minus file and bytecode loading), string, table, math and utf8
 * libraries are opened, plus `io` and `os` when the config grants them, and
 * an `earshot` table. A custom allocator caps the script's memory and a count
 * hook caps the instructions of each call; a script that breaks either, or
 * raises an error, is logged with its name and line, counted, and answered
 * with its on_error choice, and the server carries on.
 *
 * A loaded script looks to the chains exactly like a plugin: es_lua_open()
 * fills the link with a descriptor whose hooks call the script's functions.
 * docs/lua.md documents the arguments and return conventions.
 */
#ifndef EARSHOT_LUA_HOST_H
#define EARSHOT_LUA_HOST_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "hooks.h"

typedef struct es_lua_stats {
    uint64_t calls;
    uint64_t errors;         /* runtime errors in hooks */
    uint64_t budget_stops;   /* calls stopped at the instruction limit */
    uint64_t memory_stops;   /* calls stopped at the memory limit */
    size_t memory_bytes;     /* the state's current allocation */
} es_lua_stats;

/* Load the script of entry e into link (link->name is set by the caller).
 * Returns 0, or -1 with "file:line: message" in err. */
int es_lua_open(const es_hook_entry *e, es_link *link, char *err, size_t errlen);

/* The counters of a link opened by es_lua_open (NULL for other links). */
const es_lua_stats *es_lua_link_stats(const es_link *link);

#endif
