/*
 * closed_map - a plugin built out of tree, against an installed earshot:
 *
 *   cc -std=c11 -Wall -Wextra -shared -fPIC -fvisibility=hidden \
 *      $(pkg-config --cflags earshot) closed_map.c -o closed_map.so
 *
 * Refuses positions on one map (the `map` setting) with an Error, so a test
 * can tell that the server loaded it and runs its hook.
 */
#include <stdio.h>
#include <stdlib.h>

#include <earshot/plugin.h>

typedef struct closed {
    int32_t map;
} closed;

static earshot_verdict closed_position(void *state, const earshot_client *c, earshot_position *pos,
                                       const char **reason)
{
    (void)c;
    const closed *cm = state;
    if (pos->map_id != cm->map)
        return EARSHOT_PASS;
    *reason = "this map is closed";
    return EARSHOT_DENY;
}

static const earshot_setting_def settings[] = {
    EARSHOT_SETTING_INT_DEF("map", 13, INT32_MIN, INT32_MAX, "the map_id nobody may stand on"),
    EARSHOT_SETTINGS_END,
};

static int closed_init(const earshot_host *host, const earshot_settings *s, void **state, char *err,
                       size_t errlen)
{
    closed *cm = malloc(sizeof *cm);
    if (!cm) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    cm->map = (int32_t)host->setting_int(s, "map");
    host->log(host, EARSHOT_LOG_INFO, "map %d is closed", (int)cm->map);
    *state = cm;
    return 0;
}

static void closed_destroy(void *state) { free(state); }

EARSHOT_PLUGIN_DEFINE(.name = "closed_map", .version = "1.0.0",
                      .description = "refuse positions on one map", .settings = settings,
                      .init = closed_init, .destroy = closed_destroy,
                      .on_position = closed_position)
