/* A plugin whose init always fails, with a reason. */
#include <stdio.h>

#include "earshot/plugin.h"

static int failing_init(const earshot_host *host, const earshot_settings *s, void **state,
                        char *err, size_t errlen)
{
    (void)host, (void)s, (void)state;
    snprintf(err, errlen, "database unreachable");
    return -1;
}

EARSHOT_PLUGIN_DEFINE(.name = "failing_init", .version = "0", .init = failing_init)
