/*
 * earshot - proximity signaling server for WebRTC voice chat in games.
 *
 * main: command line, config, plugins, then the event loop until a signal.
 */
#include <getopt.h>
#include <jansson.h>
#include <libgen.h>
#include <libwebsockets.h>
#include <limits.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "config_keys.h"
#include "hooks.h"
#include "jarena.h"
#include "log.h"
#include "server.h"
#include "util.h"

#ifndef EARSHOT_VERSION
#define EARSHOT_VERSION "0.0.0"
#endif
#ifndef EARSHOT_CONFIG_PATH
#define EARSHOT_CONFIG_PATH "/usr/local/etc/earshot/earshot.cfg"
#endif
#ifndef EARSHOT_PLUGIN_PATH
#define EARSHOT_PLUGIN_PATH "/usr/local/lib/earshot/plugins"
#endif
#ifndef EARSHOT_SCRIPT_PATH
#define EARSHOT_SCRIPT_PATH "/usr/local/share/earshot/lua"
#endif
#ifndef EARSHOT_WEB_PATH
#define EARSHOT_WEB_PATH "/usr/local/share/earshot/web"
#endif

#define EXIT_CONFIG 2

#define DRAIN_SECONDS 5.0

/* What is running now; a reload replaces both at once. */
typedef struct app {
    const char *config_path;
    es_config_defaults defaults;
    es_config *cfg;
    es_hooks *hooks;
} app;

/*
 * libcrypto keeps what it fetches for an HMAC (the method, the digest) for
 * the life of the process. Fetched at the first resume token or TURN
 * credential, those blocks land among a crowd's short-lived ones and keep
 * their pages resident after the crowd is gone; fetched here, before any
 * client, they sit with the rest of what the process keeps for good.
 */
static void warm_crypto(void)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int n;
    HMAC(EVP_sha1(), "k", 1, (const unsigned char *)"m", 1, mac, &n);
    HMAC(EVP_sha256(), "k", 1, (const unsigned char *)"m", 1, mac, &n);
}

static int reload(es_server *srv, void *ud)
{
    app *a = ud;
    char err[1024];
    es_config *cfg = es_xcalloc(1, sizeof *cfg);
    es_hooks *hooks = es_xcalloc(1, sizeof *hooks);
    ES_INFO("main", "reloading %s", a->config_path);
    if (es_config_load(cfg, a->config_path, &a->defaults, err, sizeof err) != 0) {
        ES_ERROR("main", "reload failed, the running config stays: %s", err);
        free(cfg);
        free(hooks);
        return -1;
    }
    if (es_hooks_reload(hooks, cfg, a->hooks, err, sizeof err) != 0) {
        ES_ERROR("main", "reload failed, the running config stays: %s", err);
        es_config_free(cfg);
        free(cfg);
        free(hooks);
        return -1;
    }
    char restart[512];
    size_t nrestart = es_config_restart_changes(a->cfg, cfg, restart, sizeof restart);
    if (nrestart) /* the new values of the rest apply now */
        ES_WARN("main", "%s take%s effect at the next start, not on reload", restart,
                nrestart == 1 ? "s" : "");
    es_config_apply_log(cfg);
    es_server_apply(srv, cfg, hooks);
    es_hooks_unload(a->hooks);
    free(a->hooks);
    es_config_free(a->cfg);
    free(a->cfg);
    a->cfg = cfg;
    a->hooks = hooks;
    ES_INFO("main", "reloaded: %zu hooks enabled, grid cell %lld", hooks->nlinks,
            (long long)(hooks->query_radius > 0 ? hooks->query_radius : 1));
    return 0;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: earshot [-c FILE] [--port N] [--check-config] [--list-config-keys]\n"
            "               [--version] [--help]\n"
            "\n"
            "  -c, --config FILE   config file (default: earshot.cfg next to the binary,\n"
            "                      else " EARSHOT_CONFIG_PATH ")\n"
            "  -p, --port N        listen on port N instead of the config's server.port\n"
            "      --check-config  load the config and every enabled plugin, then exit\n"
            "      --list-config-keys  print every config key as a Markdown table and exit\n"
            "  -V, --version       print the version and exit\n"
            "  -h, --help          print this help and exit\n");
}

/* The folder holding this executable, or "" if it cannot be told. */
static void exe_dir(char *out, size_t len)
{
    char path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    if (n <= 0) {
        out[0] = '\0';
        return;
    }
    path[n] = '\0';
    snprintf(out, len, "%s", dirname(path));
}

static int file_exists(const char *path) { return access(path, R_OK) == 0; }

/* A folder, not a file of that name: installed in /usr/bin, the binary has
 * /usr/bin/lua (the Lua interpreter) beside it. */
static int dir_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"port", required_argument, NULL, 'p'},
        {"check-config", no_argument, NULL, 'k'}, {"list-config-keys", no_argument, NULL, 'L'},
        {"version", no_argument, NULL, 'V'},      {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    es_jarena_install(); /* before any jansson value exists */
    const char *config_path = NULL;
    int port = -1, check_only = 0, c;
    while ((c = getopt_long(argc, argv, "c:p:Vh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config_path = optarg;
            break;
        case 'p': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || v < 0 || v > 65535) {
                fprintf(stderr, "earshot: --port takes a number from 0 to 65535, not '%s'\n", optarg);
                return EXIT_CONFIG;
            }
            port = (int)v;
            break;
        }
        case 'k':
            check_only = 1;
            break;
        case 'L':
            es_config_keys_markdown(stdout);
            return 0;
        case 'V':
            printf("earshot %s (plugin API %u, libwebsockets %s, jansson %s)\n", EARSHOT_VERSION,
                   EARSHOT_PLUGIN_API_VERSION, lws_get_library_version(), JANSSON_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EXIT_CONFIG;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "earshot: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return EXIT_CONFIG;
    }

    char dir[PATH_MAX], local_cfg[PATH_MAX + 16], local_plugins[PATH_MAX + 16],
        local_scripts[PATH_MAX + 16], local_web[PATH_MAX + 16];
    exe_dir(dir, sizeof dir);
    snprintf(local_cfg, sizeof local_cfg, "%s/earshot.cfg", dir);
    snprintf(local_plugins, sizeof local_plugins, "%s/plugins", dir);
    snprintf(local_scripts, sizeof local_scripts, "%s/lua", dir);
    snprintf(local_web, sizeof local_web, "%s/web", dir);
    if (!config_path)
        config_path = dir[0] && file_exists(local_cfg) ? local_cfg : EARSHOT_CONFIG_PATH;
    /* Run from the build tree, use the build tree's plugins and scripts. */
    const char *plugin_dir = dir[0] && dir_exists(local_plugins) ? local_plugins : EARSHOT_PLUGIN_PATH;
    const char *script_dir = dir[0] && dir_exists(local_scripts) ? local_scripts : EARSHOT_SCRIPT_PATH;
    const char *web_dir = dir[0] && dir_exists(local_web) ? local_web : EARSHOT_WEB_PATH;

    es_hash_seed_random();
    app a = {.config_path = config_path,
             .defaults = {.plugin_dir = plugin_dir, .script_dir = script_dir, .web_dir = web_dir}};
    a.cfg = es_xcalloc(1, sizeof *a.cfg);
    a.hooks = es_xcalloc(1, sizeof *a.hooks);
    char err[1024];
    int rc = EXIT_CONFIG;
    if (es_config_load(a.cfg, config_path, &a.defaults, err, sizeof err) != 0) {
        fprintf(stderr, "earshot: %s\n", err);
        free(a.cfg);
        free(a.hooks);
        return EXIT_CONFIG;
    }
    es_config_apply_log(a.cfg);
    if (es_hooks_load(a.hooks, a.cfg, err, sizeof err) != 0) {
        fprintf(stderr, "earshot: %s\n", err);
        goto out_config;
    }
    if (a.hooks->chain_len[ES_HOOK_MATCH] == 0)
        ES_WARN("main", "no match filter is enabled: no two clients will ever be matched");
    if (check_only) {
        printf("%s: ok (%zu hooks enabled)\n", config_path, a.hooks->nlinks);
        rc = 0;
        goto out_hooks;
    }

    warm_crypto();
    es_server *srv = es_server_create(a.cfg, a.hooks, port, err, sizeof err);
    if (!srv) {
        ES_ERROR("main", "%s", err);
        rc = 1;
        goto out_hooks;
    }
    es_server_on_reload(srv, reload, &a);
    signal(SIGPIPE, SIG_IGN);

    ES_INFO("main", "earshot %s listening on %s://%s:%d/ (config %s, takeover %s, grid cell %lld)",
            EARSHOT_VERSION, a.cfg->tls_cert ? "wss" : "ws", a.cfg->address, es_server_port(srv),
            config_path,
            es_takeover_name(a.cfg->takeover),
            (long long)(a.hooks->query_radius > 0 ? a.hooks->query_radius : 1));
    rc = es_server_run(srv) == 0 ? 0 : 1;
    ES_INFO("main", "stopping: closing %zu connections", es_server_connections(srv));
    if (es_server_drain(srv, DRAIN_SECONDS) != 0)
        ES_WARN("main", "some connections did not close within %.0f s", DRAIN_SECONDS);
    es_server_destroy(srv);
    ES_INFO("main", "stopped");
out_hooks:
    es_hooks_unload(a.hooks);
out_config:
    es_config_free(a.cfg);
    free(a.hooks);
    free(a.cfg);
    return rc;
}
