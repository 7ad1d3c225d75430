/* A plugin whose descriptor claims to be smaller than the first ABI's. */
#include "earshot/plugin.h"

static const earshot_plugin descriptor = {
    .api_version = EARSHOT_PLUGIN_API_VERSION,
    .struct_size = (uint32_t)offsetof(earshot_plugin, on_leave),
    .name = "small_abi",
    .version = "0",
};

__attribute__((visibility("default"))) const earshot_plugin *earshot_plugin_describe(void);
const earshot_plugin *earshot_plugin_describe(void) { return &descriptor; }
