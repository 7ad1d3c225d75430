#include "config.h"

#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

const char *es_takeover_name(es_takeover t)
{
    switch (t) {
    case ES_TAKEOVER_ALWAYS: return "always";
    case ES_TAKEOVER_SAME_ADDRESS: return "same_address";
    case ES_TAKEOVER_NEVER: return "never";
    }
    return "?";
}

typedef struct loader {
    es_config *c;
    char *err;
    size_t errlen;
} loader;

void es_config_where(const es_config *c, const config_setting_t *s, char *out, size_t outlen)
{
    const char *file = s ? config_setting_source_file(s) : NULL;
    snprintf(out, outlen, "%s:%d: ", file ? file : c->path, s ? (int)config_setting_source_line(s) : 0);
}

__attribute__((format(printf, 3, 4))) static int fail(loader *l, const config_setting_t *s,
                                                      const char *fmt, ...)
{
    char where[PATH_MAX + 32];
    es_config_where(l->c, s, where, sizeof where);
    size_t n = strlen(where);
    snprintf(l->err, l->errlen, "%s", where);
    if (n < l->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(l->err + n, l->errlen - n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Every key of group must be one of the NULL-terminated names. */
static int only_keys(loader *l, const config_setting_t *group, const char *const *names)
{
    int n = config_setting_length(group);
    for (int i = 0; i < n; i++) {
        const config_setting_t *s = config_setting_get_elem(group, (unsigned)i);
        const char *name = config_setting_name(s);
        int known = 0;
        for (const char *const *k = names; *k; k++)
            if (name && strcmp(name, *k) == 0)
                known = 1;
        if (!known) {
            char list[256] = "";
            for (const char *const *k = names; *k; k++) {
                strncat(list, *k, sizeof list - strlen(list) - 1);
                if (k[1])
                    strncat(list, ", ", sizeof list - strlen(list) - 1);
            }
            const char *where = config_setting_name(group);
            if (!where)
                where = config_setting_parent(group) ? "hook entry" : "top level";
            return fail(l, s, "unknown setting '%s' in '%s' (known: %s)", name ? name : "?", where,
                        list);
        }
    }
    return 0;
}

static const config_setting_t *group_of(loader *l, const config_setting_t *parent,
                                        const char *name, int *bad)
{
    const config_setting_t *g = config_setting_get_member(parent, name);
    if (g && !config_setting_is_group(g)) {
        fail(l, g, "'%s' must be a group: %s = { ... };", name, name);
        *bad = 1;
        return NULL;
    }
    return g;
}

static int get_int(loader *l, const config_setting_t *g, const char *name, long long lo,
                   long long hi, long long *out)
{
    const config_setting_t *s = g ? config_setting_get_member(g, name) : NULL;
    if (!s)
        return 0; /* keep the default */
    int t = config_setting_type(s);
    if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64)
        return fail(l, s, "'%s' must be an integer", name);
    long long v = config_setting_get_int64(s);
    if (v < lo || v > hi)
        return fail(l, s, "'%s' must be between %lld and %lld (got %lld)", name, lo, hi, v);
    *out = v;
    return 0;
}

static int get_number(loader *l, const config_setting_t *g, const char *name, double lo,
                      double hi, double *out)
{
    const config_setting_t *s = g ? config_setting_get_member(g, name) : NULL;
    if (!s)
        return 0;
    int t = config_setting_type(s);
    double v;
    if (t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64)
        v = (double)config_setting_get_int64(s);
    else if (t == CONFIG_TYPE_FLOAT)
        v = config_setting_get_float(s);
    else
        return fail(l, s, "'%s' must be a number", name);
    if (!(v >= lo && v <= hi))
        return fail(l, s, "'%s' must be between %g and %g (got %g)", name, lo, hi, v);
    *out = v;
    return 0;
}

static int get_string(loader *l, const config_setting_t *g, const char *name,
                      const char **out)
{
    const config_setting_t *s = g ? config_setting_get_member(g, name) : NULL;
    if (!s)
        return 0;
    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return fail(l, s, "'%s' must be a string", name);
    *out = config_setting_get_string(s);
    return 0;
}

static int get_bool(loader *l, const config_setting_t *g, const char *name, int *out)
{
    const config_setting_t *s = g ? config_setting_get_member(g, name) : NULL;
    if (!s)
        return 0;
    if (config_setting_type(s) != CONFIG_TYPE_BOOL)
        return fail(l, s, "'%s' must be true or false", name);
    *out = config_setting_get_bool(s);
    return 0;
}

/* dir + "/" + rel, or rel itself when it is absolute or dir is NULL. */
static char *join_path(const char *dir, const char *rel)
{
    if (rel[0] == '/' || !dir || !*dir)
        return es_xstrdup(rel);
    size_t n = strlen(dir) + strlen(rel) + 2;
    char *p = es_xmalloc(n);
    snprintf(p, n, "%s/%s", dir, rel);
    return p;
}

static char *dir_of(const char *path)
{
    char *copy = es_xstrdup(path);
    char *d = es_xstrdup(dirname(copy));
    free(copy);
    return d;
}

static int valid_name(const char *s)
{
    if (!*s || strlen(s) > 64)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-'))
            return 0;
    return 1;
}

/* The keys only Lua entries have: grant, on_error, limits. */
static int load_lua_options(loader *l, const config_setting_t *e, es_hook_entry *h)
{
    static const char *const hook_names[ES_VHOOK_COUNT + 1] = {"join", "position", "match",
                                                                "relay", NULL};
    h->deny_on_error[ES_VHOOK_JOIN] = 1;
    h->deny_on_error[ES_VHOOK_RELAY] = 1;
    h->instruction_limit = 1000000;
    h->memory_limit = 16LL << 20;
    if (get_int(l, e, "instruction_limit", 1000, 1LL << 40, &h->instruction_limit) ||
        get_int(l, e, "memory_limit", 64LL << 10, 1LL << 40, &h->memory_limit))
        return -1;

    const config_setting_t *grant = config_setting_get_member(e, "grant");
    if (grant) {
        if (!config_setting_is_array(grant) && !config_setting_is_list(grant))
            return fail(l, grant, "'grant' must be a list of library names: grant = [\"io\"];");
        for (int i = 0; i < config_setting_length(grant); i++) {
            const config_setting_t *g = config_setting_get_elem(grant, (unsigned)i);
            const char *lib = config_setting_type(g) == CONFIG_TYPE_STRING
                                  ? config_setting_get_string(g)
                                  : NULL;
            if (lib && strcmp(lib, "io") == 0)
                h->grant_io = 1;
            else if (lib && strcmp(lib, "os") == 0)
                h->grant_os = 1;
            else
                return fail(l, g, "'grant' may name \"io\" and \"os\" only");
        }
    }

    const config_setting_t *oe = config_setting_get_member(e, "on_error");
    if (!oe)
        return 0;
    if (config_setting_type(oe) == CONFIG_TYPE_STRING) {
        const char *v = config_setting_get_string(oe);
        if (strcmp(v, "allow") != 0 && strcmp(v, "deny") != 0)
            return fail(l, oe, "'on_error' must be \"allow\" or \"deny\" (got \"%s\")", v);
        for (int i = 0; i < ES_VHOOK_COUNT; i++)
            h->deny_on_error[i] = strcmp(v, "deny") == 0;
        return 0;
    }
    if (!config_setting_is_group(oe))
        return fail(l, oe, "'on_error' must be \"allow\", \"deny\" or a group "
                           "{ join = \"deny\"; position = \"allow\"; ... }");
    if (only_keys(l, oe, hook_names))
        return -1;
    for (int i = 0; i < ES_VHOOK_COUNT; i++) {
        const char *v = NULL;
        if (get_string(l, oe, hook_names[i], &v))
            return -1;
        if (!v)
            continue;
        if (strcmp(v, "allow") != 0 && strcmp(v, "deny") != 0)
            return fail(l, config_setting_get_member(oe, hook_names[i]),
                        "'%s' must be \"allow\" or \"deny\" (got \"%s\")", hook_names[i], v);
        h->deny_on_error[i] = strcmp(v, "deny") == 0;
    }
    return 0;
}

static int load_hooks(loader *l, const config_setting_t *list, const char *config_dir)
{
    es_config *c = l->c;
    if (!config_setting_is_list(list) && !config_setting_is_array(list))
        return fail(l, list, "'hooks' must be a list: hooks = ( { ... }, { ... } );");
    int n = config_setting_length(list);
    c->hooks = es_xcalloc((size_t)n, sizeof *c->hooks);
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
        if (!config_setting_is_group(e))
            return fail(l, e, "each entry of 'hooks' must be a group { type = ...; name = ...; }");
        const char *type = NULL, *name = NULL, *path = NULL;
        int enabled = 1;
        if (get_string(l, e, "type", &type))
            return -1;
        if (!type)
            return fail(l, e, "hook entry needs type = \"plugin\"; or type = \"lua\";");
        es_hook_entry *h = &c->hooks[c->nhooks];
        static const char *const plugin_keys[] = {"type", "name", "enabled", "path", "settings",
                                                  NULL};
        static const char *const lua_keys[] = {"type",     "name",     "enabled",
                                               "path",     "settings", "grant",
                                               "on_error", "instruction_limit",
                                               "memory_limit", NULL};
        if (strcmp(type, "plugin") == 0)
            h->kind = ES_HOOK_PLUGIN;
        else if (strcmp(type, "lua") == 0)
            h->kind = ES_HOOK_LUA;
        else
            return fail(l, config_setting_get_member(e, "type"),
                        "unknown hook type '%s' (known: plugin, lua)", type);
        if (only_keys(l, e, h->kind == ES_HOOK_LUA ? lua_keys : plugin_keys) ||
            get_string(l, e, "name", &name) || get_string(l, e, "path", &path) ||
            get_bool(l, e, "enabled", &enabled))
            return -1;
        if (!name || !valid_name(name))
            return fail(l, e, "hook entry needs name = \"...\"; (letters, digits, '_' or '-')");
        for (size_t k = 0; k < c->nhooks; k++)
            if (strcmp(c->hooks[k].name, name) == 0)
                return fail(l, e, "hook name '%s' is used twice", name);
        const config_setting_t *settings = config_setting_get_member(e, "settings");
        if (settings && !config_setting_is_group(settings))
            return fail(l, settings, "'settings' must be a group: settings = { ... };");
        if (h->kind == ES_HOOK_LUA && load_lua_options(l, e, h))
            return -1;
        h->name = es_xstrdup(name);
        h->enabled = enabled;
        h->settings = settings;
        h->file = config_setting_source_file(e) ? config_setting_source_file(e) : c->path;
        h->line = (int)config_setting_source_line(e);
        if (path) {
            h->path = join_path(config_dir, path);
        } else {
            char file[128];
            snprintf(file, sizeof file, "%s.%s", name, h->kind == ES_HOOK_LUA ? "lua" : "so");
            h->path = join_path(h->kind == ES_HOOK_LUA ? c->script_dir : c->plugin_dir, file);
        }
        c->nhooks++;
    }
    return 0;
}

static int load(loader *l, const es_config_defaults *def)
{
    es_config *c = l->c;
    const config_setting_t *root = config_root_setting(&c->cfg_);
    static const char *const top[] = {"server",     "session", "limits", "log", "plugin_dir",
                                      "script_dir", "web_dir", "hooks",  NULL};
    if (only_keys(l, root, top))
        return -1;

    int bad = 0;
    const config_setting_t *server = group_of(l, root, "server", &bad);
    const config_setting_t *session = bad ? NULL : group_of(l, root, "session", &bad);
    const config_setting_t *log = bad ? NULL : group_of(l, root, "log", &bad);
    const config_setting_t *limits = bad ? NULL : group_of(l, root, "limits", &bad);
    if (bad)
        return -1;

    static const char *const server_keys[] = {"address",          "port",
                                              "max_frame_bytes",  "send_queue_bytes",
                                              "ping_interval",    "metrics",
                                              "behind_proxy",     "tls",
                                              "web",              "allowed_origins",
                                              "event_loop",       NULL};
    static const char *const session_keys[] = {"takeover", "idle_timeout", "refresh_interval",
                                               NULL};
    static const char *const log_keys[] = {"level", "format", "modules", NULL};
    if ((server && only_keys(l, server, server_keys)) ||
        (session && only_keys(l, session, session_keys)) || (log && only_keys(l, log, log_keys)))
        return -1;

    const char *address = "0.0.0.0";
    long long port = 8080, max_frame = 65536, sendq = 1048576, ping = 10;
    if (get_string(l, server, "address", &address) ||
        get_int(l, server, "port", 0, 65535, &port) ||
        get_int(l, server, "max_frame_bytes", 128, 16 * 1024 * 1024, &max_frame) ||
        get_int(l, server, "send_queue_bytes", 4096, 1LL << 30, &sendq) ||
        get_int(l, server, "ping_interval", 1, 3600, &ping))
        return -1;
    c->address = es_xstrdup(address);
    c->port = (int)port;
    c->max_frame_bytes = (size_t)max_frame;
    c->send_queue_bytes = (size_t)sendq;
    c->ping_interval = (int)ping;
    const char *metrics = "loopback", *loop = "libev";
    if (get_string(l, server, "metrics", &metrics) || get_string(l, server, "event_loop", &loop))
        return -1;
    if (strcmp(loop, "libev") == 0)
        c->event_loop = ES_LOOP_LIBEV;
    else if (strcmp(loop, "poll") == 0)
        c->event_loop = ES_LOOP_POLL;
    else
        return fail(l, config_setting_get_member(server, "event_loop"),
                    "'event_loop' must be \"libev\" or \"poll\" (got \"%s\")", loop);
    if (strcmp(metrics, "off") == 0)
        c->metrics = ES_METRICS_OFF;
    else if (strcmp(metrics, "loopback") == 0)
        c->metrics = ES_METRICS_LOOPBACK;
    else if (strcmp(metrics, "public") == 0)
        c->metrics = ES_METRICS_PUBLIC;
    else
        return fail(l, config_setting_get_member(server, "metrics"),
                    "'metrics' must be \"off\", \"loopback\" or \"public\" (got \"%s\")", metrics);
    if (c->send_queue_bytes < c->max_frame_bytes * 2)
        return fail(l, config_setting_get_member(server, "send_queue_bytes")
                           ? config_setting_get_member(server, "send_queue_bytes")
                           : server,
                    "'send_queue_bytes' (%zu) must be at least twice 'max_frame_bytes' (%zu) so "
                    "that any relay fits",
                    c->send_queue_bytes, c->max_frame_bytes);

    static const char *const limit_keys[] = {"max_connections",       "max_connections_per_address",
                                             "message_rate",          "message_burst",
                                             "rate_limit_close_after", "handshake_timeout",
                                             "first_message_timeout", NULL};
    if (limits && only_keys(l, limits, limit_keys))
        return -1;
    long long max_conn = 10000, per_addr = 256, close_after = 100;
    c->message_rate = 50.0;
    c->message_burst = 200.0;
    c->handshake_timeout = 5.0;
    c->first_message_timeout = 10.0;
    if (get_int(l, limits, "max_connections", 0, 10000000, &max_conn) ||
        get_int(l, limits, "max_connections_per_address", 0, 10000000, &per_addr) ||
        get_number(l, limits, "message_rate", 0.0, 1e6, &c->message_rate) ||
        get_number(l, limits, "message_burst", 1.0, 1e6, &c->message_burst) ||
        get_int(l, limits, "rate_limit_close_after", 1, 1000000, &close_after) ||
        get_number(l, limits, "handshake_timeout", 1.0, 3600.0, &c->handshake_timeout) ||
        get_number(l, limits, "first_message_timeout", 0.0, 86400.0, &c->first_message_timeout))
        return -1;
    c->max_connections = (size_t)max_conn;
    c->max_connections_per_address = (size_t)per_addr;
    c->rate_limit_close_after = (unsigned)close_after;

    const config_setting_t *origins =
        server ? config_setting_get_member(server, "allowed_origins") : NULL;
    if (origins) {
        if (!config_setting_is_array(origins) && !config_setting_is_list(origins))
            return fail(l, origins, "'allowed_origins' must be a list of strings: "
                                    "allowed_origins = [ \"https://game.example\" ];");
        int n = config_setting_length(origins);
        if (n > 0) {
            c->allowed_origins = es_xcalloc((size_t)n + 1, sizeof *c->allowed_origins);
            for (int i = 0; i < n; i++) {
                const config_setting_t *o = config_setting_get_elem(origins, (unsigned)i);
                if (config_setting_type(o) != CONFIG_TYPE_STRING)
                    return fail(l, o, "'allowed_origins' entries must be strings");
                c->allowed_origins[c->nallowed_origins++] = es_xstrdup(config_setting_get_string(o));
            }
        }
    }

    int behind_proxy = 0, web = 1;
    if (get_bool(l, server, "behind_proxy", &behind_proxy) || get_bool(l, server, "web", &web))
        return -1;
    c->web = web;
    c->behind_proxy = behind_proxy;
    const config_setting_t *tls = server ? config_setting_get_member(server, "tls") : NULL;
    if (tls) {
        static const char *const tls_keys[] = {"cert", "key", NULL};
        if (!config_setting_is_group(tls))
            return fail(l, tls, "'tls' must be a group: tls = { cert = \"...\"; key = \"...\"; };");
        if (only_keys(l, tls, tls_keys))
            return -1;
        const char *cert = NULL, *key = NULL;
        if (get_string(l, tls, "cert", &cert) || get_string(l, tls, "key", &key))
            return -1;
        if (!cert || !key)
            return fail(l, tls, "'tls' needs both cert and key (PEM files)");
        char *dir = dir_of(c->path);
        c->tls_cert = join_path(dir, cert);
        c->tls_key = join_path(dir, key);
        free(dir);
        if (access(c->tls_cert, R_OK) != 0)
            return fail(l, config_setting_get_member(tls, "cert"), "cannot read TLS certificate %s",
                        c->tls_cert);
        if (access(c->tls_key, R_OK) != 0)
            return fail(l, config_setting_get_member(tls, "key"), "cannot read TLS key %s",
                        c->tls_key);
    }

    const char *takeover = "same_address";
    c->idle_timeout = 15.0;
    c->refresh_interval = 5.0;
    if (get_string(l, session, "takeover", &takeover) ||
        get_number(l, session, "idle_timeout", 0.0, 86400.0, &c->idle_timeout) ||
        get_number(l, session, "refresh_interval", 0.0, 86400.0, &c->refresh_interval))
        return -1;
    if (strcmp(takeover, "always") == 0)
        c->takeover = ES_TAKEOVER_ALWAYS;
    else if (strcmp(takeover, "same_address") == 0)
        c->takeover = ES_TAKEOVER_SAME_ADDRESS;
    else if (strcmp(takeover, "never") == 0)
        c->takeover = ES_TAKEOVER_NEVER;
    else
        return fail(l, config_setting_get_member(session, "takeover"),
                    "'takeover' must be \"always\", \"same_address\" or \"never\" (got \"%s\")",
                    takeover);

    const char *level = "info", *format = "text";
    if (get_string(l, log, "level", &level) || get_string(l, log, "format", &format))
        return -1;
    if (es_log_level_parse(level, &c->log_level))
        return fail(l, config_setting_get_member(log, "level"),
                    "'level' must be \"debug\", \"info\", \"warn\" or \"error\" (got \"%s\")",
                    level);
    if (strcmp(format, "text") == 0)
        c->log_format = ES_LOG_TEXT;
    else if (strcmp(format, "json") == 0)
        c->log_format = ES_LOG_JSON;
    else
        return fail(l, config_setting_get_member(log, "format"),
                    "'format' must be \"text\" or \"json\" (got \"%s\")", format);
    const config_setting_t *mods = log ? config_setting_get_member(log, "modules") : NULL;
    if (mods) {
        if (!config_setting_is_group(mods))
            return fail(l, mods, "'modules' must be a group: modules = { session = \"debug\"; };");
        int n = config_setting_length(mods);
        if (n > (int)ES_ARRAY_LEN(c->log_modules))
            return fail(l, mods, "at most %zu modules may have their own level",
                        ES_ARRAY_LEN(c->log_modules));
        for (int i = 0; i < n; i++) {
            const config_setting_t *m = config_setting_get_elem(mods, (unsigned)i);
            const char *v = config_setting_type(m) == CONFIG_TYPE_STRING
                                ? config_setting_get_string(m)
                                : "";
            es_log_level lv;
            if (es_log_level_parse(v, &lv))
                return fail(l, m, "the level of module '%s' must be \"debug\", \"info\", "
                                  "\"warn\" or \"error\"",
                            config_setting_name(m));
            snprintf(c->log_modules[i].name, sizeof c->log_modules[i].name, "%s",
                     config_setting_name(m));
            c->log_modules[i].level = lv;
            c->nlog_modules++;
        }
    }

    char *config_dir = dir_of(c->path);
    const char *plugin_dir = NULL, *script_dir = NULL, *web_dir = NULL;
    int rc = get_string(l, root, "plugin_dir", &plugin_dir) ||
             get_string(l, root, "script_dir", &script_dir) ||
             get_string(l, root, "web_dir", &web_dir);
    if (rc == 0) {
        c->plugin_dir = plugin_dir ? join_path(config_dir, plugin_dir)
                                   : es_xstrdup(def && def->plugin_dir ? def->plugin_dir : ".");
        c->script_dir = script_dir ? join_path(config_dir, script_dir)
                                   : es_xstrdup(def && def->script_dir ? def->script_dir : ".");
        c->web_dir = web_dir ? join_path(config_dir, web_dir)
                             : es_xstrdup(def && def->web_dir ? def->web_dir : "");
        const config_setting_t *hooks = config_setting_get_member(root, "hooks");
        if (hooks)
            rc = load_hooks(l, hooks, config_dir);
    }
    free(config_dir);
    return rc;
}

int es_config_load(es_config *c, const char *path, const es_config_defaults *defaults, char *err,
                   size_t errlen)
{
    memset(c, 0, sizeof *c);
    c->path = es_xstrdup(path);
    config_init(&c->cfg_);
    c->cfg_live_ = 1;
    loader l = {.c = c, .err = err, .errlen = errlen};
    if (config_read_file(&c->cfg_, path) != CONFIG_TRUE) {
        if (config_error_type(&c->cfg_) == CONFIG_ERR_FILE_IO)
            snprintf(err, errlen, "%s: cannot read the config file", path);
        else
            snprintf(err, errlen, "%s:%d: %s", config_error_file(&c->cfg_) ? config_error_file(&c->cfg_) : path,
                     config_error_line(&c->cfg_), config_error_text(&c->cfg_));
        es_config_free(c);
        return -1;
    }
    if (load(&l, defaults)) {
        es_config_free(c);
        return -1;
    }
    return 0;
}

void es_config_free(es_config *c)
{
    for (size_t i = 0; i < c->nhooks; i++) {
        free(c->hooks[i].name);
        free(c->hooks[i].path);
    }
    free(c->hooks);
    free(c->address);
    free(c->plugin_dir);
    free(c->script_dir);
    free(c->web_dir);
    free(c->tls_cert);
    free(c->tls_key);
    for (size_t i = 0; i < c->nallowed_origins; i++)
        free(c->allowed_origins[i]);
    free(c->allowed_origins);
    free(c->path);
    if (c->cfg_live_)
        config_destroy(&c->cfg_);
    memset(c, 0, sizeof *c);
}

void es_config_apply_log(const es_config *c)
{
    es_log_set_format(c->log_format);
    es_log_clear_module_levels();
    for (size_t i = 0; i < c->nlog_modules; i++)
        es_log_set_module_level(c->log_modules[i].name, c->log_modules[i].level);
    es_log_set_level(c->log_level);
}
