/* A plugin whose entry point returns no descriptor. */
#include <stddef.h>

#include "earshot/plugin.h"

__attribute__((visibility("default"))) const earshot_plugin *earshot_plugin_describe(void);
const earshot_plugin *earshot_plugin_describe(void) { return NULL; }
