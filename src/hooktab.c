#include "hooktab.h"

#include "earshot/plugin.h"

#define HOOK(id_, name_, verdict_, member_, deny_)                                          \
    [id_] = {.id = id_, .name = name_, .verdict = verdict_, .lua_global = #member_,         \
             .deny_on_error = deny_, .plugin_offset = offsetof(earshot_plugin, member_)}

/* Failing closed for join and relay suits auth and abuse scripts; failing
 * open for position and match keeps the game playable while a rule is
 * broken (docs/lua.md). */
const es_hook_info es_hook_table[ES_HOOK_COUNT] = {
    HOOK(ES_HOOK_JOIN, "join", 1, on_join, 1),
    HOOK(ES_HOOK_POSITION, "position", 1, on_position, 0),
    HOOK(ES_HOOK_MATCH, "match", 1, match_filter, 0),
    HOOK(ES_HOOK_RELAY, "relay", 1, on_relay, 1),
    HOOK(ES_HOOK_LEAVE, "leave", 0, on_leave, 0),
    HOOK(ES_HOOK_PAIR, "pair", 0, on_pair, 0),
    HOOK(ES_HOOK_TICK, "tick", 0, on_tick, 0),
};

const char *const es_leave_reason_names[ES_LEAVE_REASON_COUNT] = {
    [EARSHOT_LEAVE_DISCONNECT] = "disconnect", [EARSHOT_LEAVE_CLOSED] = "closed",
    [EARSHOT_LEAVE_TIMEOUT] = "timeout",       [EARSHOT_LEAVE_TAKEOVER] = "takeover",
    [EARSHOT_LEAVE_SHUTDOWN] = "shutdown",     [EARSHOT_LEAVE_MOVED] = "moved",
};

const char *const es_relay_kind_names[ES_RELAY_KIND_COUNT] = {
    [EARSHOT_RELAY_OFFER] = "offer",
    [EARSHOT_RELAY_ANSWER] = "answer",
    [EARSHOT_RELAY_ICE_CANDIDATE] = "candidate",
};
