/*
 * A plugin built against the first ABI, whose descriptor ended with
 * on_leave. Right after its descriptor in memory lie non-NULL pointers where
 * today's earshot_plugin has on_pair and later hooks: the loader must not
 * read them (struct_size says they are not part of the descriptor).
 *
 * It denies every join with "old abi", counts leaves, and counts calls to
 * the pointers after its descriptor (there must never be any).
 */
#include <stddef.h>

#include "earshot/plugin.h"

__attribute__((visibility("default"))) unsigned long old_abi_leaves;
__attribute__((visibility("default"))) unsigned long old_abi_stray_calls;

static earshot_verdict old_join(void *state, const earshot_join *j, const char **reason)
{
    (void)state, (void)j;
    *reason = "old abi";
    return EARSHOT_DENY;
}

static void old_leave(void *state, const earshot_client *c, earshot_leave_reason why)
{
    (void)state, (void)c, (void)why;
    old_abi_leaves++;
}

static void stray(void *state, const earshot_client *a, const earshot_client *b, int matched)
{
    (void)state, (void)a, (void)b, (void)matched;
    old_abi_stray_calls++;
}

/* The first ABI's descriptor, then what happens to follow it in memory. */
typedef struct first_abi_and_more {
    uint32_t api_version;
    uint32_t struct_size;
    const char *name, *version, *description;
    const earshot_setting_def *settings;
    int (*init)(const earshot_host *, const earshot_settings *, void **, char *, size_t);
    void (*destroy)(void *);
    int64_t (*query_radius)(void *);
    earshot_verdict (*on_join)(void *, const earshot_join *, const char **);
    earshot_verdict (*on_position)(void *, const earshot_client *, earshot_position *,
                                   const char **);
    earshot_verdict (*match_filter)(void *, const earshot_client *, const earshot_client *, int);
    earshot_verdict (*on_relay)(void *, const earshot_relay *, const char **);
    void (*on_leave)(void *, const earshot_client *, earshot_leave_reason);
    /* not part of the descriptor */
    void (*after[4])(void *, const earshot_client *, const earshot_client *, int);
} first_abi_and_more;

_Static_assert(offsetof(first_abi_and_more, on_leave) == offsetof(earshot_plugin, on_leave),
               "the first ABI's layout is today's up to on_leave");
_Static_assert(offsetof(first_abi_and_more, after) == EARSHOT_PLUGIN_MIN_SIZE,
               "the first ABI's descriptor ends after on_leave");
_Static_assert(offsetof(first_abi_and_more, after) == offsetof(earshot_plugin, on_pair),
               "on_pair is the first hook appended to the first ABI");

static const first_abi_and_more descriptor = {
    .api_version = EARSHOT_PLUGIN_API_VERSION,
    .struct_size = (uint32_t)offsetof(first_abi_and_more, after),
    .name = "old_abi",
    .version = "1.0.0",
    .on_join = old_join,
    .on_leave = old_leave,
    .after = {stray, stray, stray, stray},
};

__attribute__((visibility("default"))) const earshot_plugin *earshot_plugin_describe(void);
const earshot_plugin *earshot_plugin_describe(void)
{
    return (const earshot_plugin *)(const void *)&descriptor;
}
