/*
 * libFuzzer harness for the config loader: any bytes as a config file must
 * load or fail with a message, never crash or leak. Plugins are not loaded
 * (that would dlopen whatever path the input names).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    snprintf(path, sizeof path, "/tmp/earshot-fuzz-config-%d.cfg", (int)getpid());
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        abort();
    fwrite(data, 1, size, f);
    fclose(f);
    es_config cfg;
    char err[1024];
    es_config_defaults def = {.plugin_dir = "/nonexistent/plugins", .script_dir = "/nonexistent/lua"};
    err[0] = '\0';
    if (es_config_load(&cfg, path, &def, err, sizeof err) == 0) {
        es_config_apply_log(&cfg);
        es_config_free(&cfg);
    } else if (err[0] == '\0') {
        abort(); /* a failure must say why */
    }
    unlink(path);
    return 0;
}
