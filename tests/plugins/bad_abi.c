/* A plugin built for a plugin API version earshot does not have. */
#include "earshot/plugin.h"

static const earshot_plugin descriptor = {
    .api_version = 999,
    .struct_size = sizeof(earshot_plugin),
    .name = "bad_abi",
    .version = "0",
};

__attribute__((visibility("default"))) const earshot_plugin *earshot_plugin_describe(void);
const earshot_plugin *earshot_plugin_describe(void) { return &descriptor; }
