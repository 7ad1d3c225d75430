/*
 * reserved_ids - refuses clients whose client_id starts with a reserved
 * prefix, so no player can pose as an id your own services use.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <earshot/plugin.h>

typedef struct reserved {
    const char *prefix; /* the host's string: lives until destroy() */
    size_t len;
} reserved;

static earshot_verdict reserved_join(void *state, const earshot_join *j, const char **reason)
{
    const reserved *r = state;
    if (strncmp(j->client_id, r->prefix, r->len) != 0)
        return EARSHOT_PASS; /* not ours to allow: later join hooks still run */
    *reason = "client_id is reserved";
    return EARSHOT_DENY;
}

static const earshot_setting_def settings[] = {
    EARSHOT_SETTING_STRING_DEF("prefix", "server-", "client_ids that start with this are refused"),
    EARSHOT_SETTINGS_END,
};

static int reserved_init(const earshot_host *host, const earshot_settings *s, void **state,
                         char *err, size_t errlen)
{
    const char *prefix = host->setting_string(s, "prefix");
    if (prefix[0] == '\0') {
        snprintf(err, errlen, "prefix must not be empty (it would refuse everyone)");
        return -1;
    }
    reserved *r = malloc(sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    r->prefix = prefix;
    r->len = strlen(prefix);
    host->log(host, EARSHOT_LOG_INFO, "refusing client_ids that start with \"%s\"", prefix);
    *state = r;
    return 0;
}

static void reserved_destroy(void *state) { free(state); }

EARSHOT_PLUGIN_DEFINE(.name = "reserved_ids", .version = "1.0.0",
                      .description = "refuse client_ids that start with a reserved prefix",
                      .settings = settings, .init = reserved_init, .destroy = reserved_destroy,
                      .on_join = reserved_join)
