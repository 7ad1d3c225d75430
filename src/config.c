#include "config.h"

#include <ctype.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus.h"
#include "config_keys.h"
#include "netmask.h"
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

struct es_config_loader {
    es_config *c;
    char *err;
    size_t errlen;
    const es_config_defaults *def; /* may be NULL */
    char *config_dir;              /* the config file's folder */
};
typedef struct es_config_loader loader;

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
    const char *hook_names[ES_HOOK_VERDICT_COUNT + 1] = {NULL};
    for (int i = 0; i < ES_HOOK_VERDICT_COUNT; i++) {
        hook_names[i] = es_hook_table[i].name;
        h->deny_on_error[i] = es_hook_table[i].deny_on_error;
    }
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
        for (int i = 0; i < ES_HOOK_VERDICT_COUNT; i++)
            h->deny_on_error[i] = strcmp(v, "deny") == 0;
        return 0;
    }
    if (!config_setting_is_group(oe))
        return fail(l, oe, "'on_error' must be \"allow\", \"deny\" or a group "
                           "{ join = \"deny\"; position = \"allow\"; ... }");
    if (only_keys(l, oe, hook_names))
        return -1;
    for (int i = 0; i < ES_HOOK_VERDICT_COUNT; i++) {
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

/* ---- the keys that are more than one value ------------------------------ */

/* A list of strings into a NULL-terminated array (left NULL when empty);
 * check, when given, refuses an entry with the reason it returns. */
static int load_strings(loader *l, const config_setting_t *list, const char *key,
                        const char *example, const char *(*check)(const char *), char ***out,
                        size_t *n_out)
{
    if (!list)
        return 0;
    if (!config_setting_is_array(list) && !config_setting_is_list(list))
        return fail(l, list, "'%s' must be a list of strings: %s", key, example);
    int n = config_setting_length(list);
    if (n == 0)
        return 0;
    *out = es_xcalloc((size_t)n + 1, sizeof **out);
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
        if (config_setting_type(e) != CONFIG_TYPE_STRING)
            return fail(l, e, "'%s' entries must be strings", key);
        const char *v = config_setting_get_string(e);
        const char *why = check ? check(v) : NULL;
        if (why)
            return fail(l, e, "'%s' entry \"%s\" %s", key, v, why);
        (*out)[(*n_out)++] = es_xstrdup(v);
    }
    return 0;
}

int es_config_load_origins(loader *l, const es_config_key *k, const config_setting_t *origins)
{
    (void)k;
    return load_strings(l, origins, "allowed_origins",
                        "allowed_origins = [ \"https://game.example\" ];", NULL,
                        &l->c->allowed_origins, &l->c->nallowed_origins);
}

/* An HTTP header name (RFC 9110 token), at most ES_JOIN_HEADER_MAX bytes. */
static const char *header_name_problem(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > ES_JOIN_HEADER_MAX)
        return "must be 1 to 64 characters";
    for (size_t i = 0; i < n; i++)
        if (!strchr("!#$%&'*+-.^_`|~", name[i]) && !isalnum((unsigned char)name[i]))
            return "is not a header name";
    return NULL;
}

int es_config_load_join_headers(loader *l, const es_config_key *k, const config_setting_t *list)
{
    (void)k;
    es_config *c = l->c;
    if (load_strings(l, list, "join_headers", "join_headers = [ \"x-game-token\" ];",
                     header_name_problem, &c->join_headers, &c->njoin_headers) != 0)
        return -1;
    if (c->njoin_headers > ES_JOIN_HEADERS_MAX)
        return fail(l, list, "'join_headers' holds at most %d names", ES_JOIN_HEADERS_MAX);
    for (size_t i = 0; i < c->njoin_headers; i++)
        for (char *p = c->join_headers[i]; *p; p++)
            *p = (char)tolower((unsigned char)*p);
    return 0;
}

int es_config_load_tls(loader *l, const es_config_key *k, const config_setting_t *tls)
{
    (void)k;
    es_config *c = l->c;
    static const char *const tls_keys[] = {"cert", "key", NULL};
    if (!tls)
        return 0;
    if (!config_setting_is_group(tls))
        return fail(l, tls, "'tls' must be a group: tls = { cert = \"...\"; key = \"...\"; };");
    if (only_keys(l, tls, tls_keys))
        return -1;
    const char *cert = NULL, *key = NULL;
    if (get_string(l, tls, "cert", &cert) || get_string(l, tls, "key", &key))
        return -1;
    if (!cert || !key)
        return fail(l, tls, "'tls' needs both cert and key (PEM files)");
    c->tls_cert = join_path(l->config_dir, cert);
    c->tls_key = join_path(l->config_dir, key);
    if (access(c->tls_cert, R_OK) != 0)
        return fail(l, config_setting_get_member(tls, "cert"), "cannot read TLS certificate %s",
                    c->tls_cert);
    if (access(c->tls_key, R_OK) != 0)
        return fail(l, config_setting_get_member(tls, "key"), "cannot read TLS key %s",
                    c->tls_key);
    return 0;
}

/* turn.secret_file: the secret read from a file (relative to this one), so
 * that the config itself need not hold it. The file's bytes up to a final
 * line break; no byte of it ever goes into a message. */
/* Read a one-line secret (what: "TURN secret") from file into *out; the
 * buffer is wiped whatever happens. */
static int read_secret_file(loader *l, const config_setting_t *s, const char *file,
                            const char *what, char **out)
{
    FILE *f = fopen(file, "rb");
    if (!f)
        return fail(l, s, "cannot read the %s file %s", what, file);
    char buf[ES_TURN_SECRET_MAX + 3];
    size_t n = fread(buf, 1, sizeof buf, f);
    int bad = ferror(f);
    fclose(f);
    if (bad)
        return fail(l, s, "cannot read the %s file %s", what, file);
    if (n > 0 && buf[n - 1] == '\n')
        n--;
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    const char *why = n == 0                     ? "is empty"
                      : n > ES_TURN_SECRET_MAX   ? "holds more than 1024 bytes"
                      : memchr(buf, '\0', n)     ? "holds a NUL byte"
                      : memchr(buf, '\n', n)     ? "holds more than one line"
                                                 : NULL;
    if (why) {
        memset(buf, 0, sizeof buf);
        return fail(l, s, "the %s file %s %s", what, file, why);
    }
    if (*out)
        memset(*out, 0, strlen(*out));
    free(*out);
    *out = es_xmalloc(n + 1);
    memcpy(*out, buf, n);
    (*out)[n] = '\0';
    memset(buf, 0, sizeof buf);
    return 0;
}

int es_config_load_turn_secret_file(loader *l, const es_config_key *k, const config_setting_t *s)
{
    es_config *c = l->c;
    const char *rel = "";
    if (s && get_string(l, config_setting_parent(s), es_config_key_leaf(k), &rel))
        return -1;
    c->turn_secret_file = rel[0] ? join_path(l->config_dir, rel) : es_xstrdup("");
    if (!rel[0])
        return 0;
    if (c->turn_secret && c->turn_secret[0])
        return fail(l, s, "set 'secret' or 'secret_file', not both");
    return read_secret_file(l, s, c->turn_secret_file, "TURN secret", &c->turn_secret);
}

int es_config_load_cluster_password_file(loader *l, const es_config_key *k,
                                         const config_setting_t *s)
{
    es_config *c = l->c;
    const char *rel = "";
    if (s && get_string(l, config_setting_parent(s), es_config_key_leaf(k), &rel))
        return -1;
    c->cluster_password_file = rel[0] ? join_path(l->config_dir, rel) : es_xstrdup("");
    if (!rel[0])
        return 0;
    if (c->cluster_password && c->cluster_password[0])
        return fail(l, s, "set 'password' or 'password_file', not both");
    return read_secret_file(l, s, c->cluster_password_file, "Redis password",
                            &c->cluster_password);
}

/* admin.token_file: the admin token read from a file, as the TURN secret. */
int es_config_load_admin_token_file(loader *l, const es_config_key *k, const config_setting_t *s)
{
    es_config *c = l->c;
    const char *rel = "";
    if (s && get_string(l, config_setting_parent(s), es_config_key_leaf(k), &rel))
        return -1;
    c->admin_token_file = rel[0] ? join_path(l->config_dir, rel) : es_xstrdup("");
    if (!rel[0])
        return 0;
    if (c->admin_token && c->admin_token[0])
        return fail(l, s, "set 'token' or 'token_file', not both");
    return read_secret_file(l, s, c->admin_token_file, "admin token", &c->admin_token);
}

static const char *netmask_problem(const char *v)
{
    es_netmask m;
    const char *why = NULL;
    return es_netmask_parse(v, &m, &why) ? why : NULL;
}

/* admin.allow: addresses and address/prefix entries; left out, loopback. */
int es_config_load_admin_allow(loader *l, const es_config_key *k, const config_setting_t *list)
{
    (void)k;
    es_config *c = l->c;
    if (!list) {
        c->admin_allow = es_xcalloc(3, sizeof *c->admin_allow);
        c->admin_allow[0] = es_xstrdup("127.0.0.1");
        c->admin_allow[1] = es_xstrdup("::1");
        c->nadmin_allow = 2;
        return 0;
    }
    if (load_strings(l, list, "allow", "allow = [ \"127.0.0.1\", \"10.0.0.0/8\" ];",
                     netmask_problem, &c->admin_allow, &c->nadmin_allow) != 0)
        return -1;
    if (c->nadmin_allow > ES_ADMIN_ALLOW_MAX)
        return fail(l, list, "'allow' holds at most %d entries", ES_ADMIN_ALLOW_MAX);
    return 0;
}

/* A URL of one of the schemes ("turn:", ...; NULL-terminated): printable
 * ASCII without spaces, something after the scheme. */
static const char *url_problem(const char *url, const char *const *schemes, const char *expected)
{
    size_t n = strlen(url);
    if (n > ES_TURN_URL_MAX)
        return "is longer than 256 characters";
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)url[i] <= 0x20 || (unsigned char)url[i] >= 0x7f)
            return "holds a space, a control or a non-ASCII character";
    for (const char *const *s = schemes; *s; s++) {
        size_t sl = strlen(*s);
        if (strncmp(url, *s, sl) == 0 && url[sl] != '\0' && url[sl] != '?')
            return NULL;
    }
    return expected;
}

static const char *turn_url_problem(const char *url)
{
    static const char *const schemes[] = {"turn:", "turns:", NULL};
    return url_problem(url, schemes, "must be a turn: or turns: URL naming a host");
}

static const char *stun_url_problem(const char *url)
{
    static const char *const schemes[] = {"stun:", "stuns:", NULL};
    return url_problem(url, schemes, "must be a stun: or stuns: URL naming a host");
}

int es_config_load_cluster_secret_file(loader *l, const es_config_key *k,
                                       const config_setting_t *s)
{
    es_config *c = l->c;
    const char *rel = "";
    if (s && get_string(l, config_setting_parent(s), es_config_key_leaf(k), &rel))
        return -1;
    c->cluster_secret_file = rel[0] ? join_path(l->config_dir, rel) : es_xstrdup("");
    if (!rel[0])
        return 0;
    if (c->cluster_secret && c->cluster_secret[0])
        return fail(l, s, "set 'secret' or 'secret_file', not both");
    return read_secret_file(l, s, c->cluster_secret_file, "cluster secret", &c->cluster_secret);
}

int es_config_load_turn_urls(loader *l, const es_config_key *k, const config_setting_t *list)
{
    (void)k;
    es_config *c = l->c;
    if (load_strings(l, list, "urls", "urls = [ \"turn:turn.example:3478\" ];", turn_url_problem,
                     &c->turn_urls, &c->nturn_urls) != 0)
        return -1;
    if (c->nturn_urls > ES_TURN_URLS_MAX)
        return fail(l, list, "'urls' holds at most %d URLs", ES_TURN_URLS_MAX);
    if (c->nturn_urls > 0 && !(c->turn_secret && c->turn_secret[0]))
        return fail(l, list, "'urls' needs the TURN server's shared secret: set 'secret' or "
                             "'secret_file'");
    return 0;
}

int es_config_load_stun_urls(loader *l, const es_config_key *k, const config_setting_t *list)
{
    (void)k;
    es_config *c = l->c;
    if (load_strings(l, list, "stun_urls", "stun_urls = [ \"stun:stun.example:3478\" ];",
                     stun_url_problem, &c->stun_urls, &c->nstun_urls) != 0)
        return -1;
    if (c->nstun_urls > ES_TURN_URLS_MAX)
        return fail(l, list, "'stun_urls' holds at most %d URLs", ES_TURN_URLS_MAX);
    return 0;
}

int es_config_load_log_modules(loader *l, const es_config_key *k, const config_setting_t *mods)
{
    (void)k;
    es_config *c = l->c;
    if (!mods)
        return 0;
    if (!config_setting_is_group(mods))
        return fail(l, mods, "'modules' must be a group: modules = { session = \"debug\"; };");
    int n = config_setting_length(mods);
    if (n > (int)ES_ARRAY_LEN(c->log_modules))
        return fail(l, mods, "at most %zu modules may have their own level",
                    ES_ARRAY_LEN(c->log_modules));
    for (int i = 0; i < n; i++) {
        const config_setting_t *m = config_setting_get_elem(mods, (unsigned)i);
        const char *v =
            config_setting_type(m) == CONFIG_TYPE_STRING ? config_setting_get_string(m) : "";
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
    return 0;
}

/* A folder: relative to the config file's, else the caller's default. */
int es_config_load_dir(loader *l, const es_config_key *k, const config_setting_t *s)
{
    const char *rel = NULL;
    if (s && get_string(l, config_setting_parent(s), es_config_key_leaf(k), &rel))
        return -1;
    char *dir;
    if (rel) {
        dir = join_path(l->config_dir, rel);
    } else {
        const char *def = NULL;
        if (l->def)
            memcpy(&def, (const char *)l->def + k->from_defaults, sizeof def);
        dir = es_xstrdup(def ? def : k->def.s);
    }
    memcpy((char *)l->c + k->offset, &dir, sizeof dir);
    return 0;
}

int es_config_load_hooks(loader *l, const es_config_key *k, const config_setting_t *s)
{
    (void)k;
    return s ? load_hooks(l, s, l->config_dir) : 0;
}

/* ---- the table walker ----------------------------------------------------- */

/* The names known in group, in table order; the top level (group NULL) has
 * the groups, written into store, and the keys outside any group. */
static const char *const *known_names(const char *group, const char **names, size_t max,
                                      char (*store)[32])
{
    size_t n = 0, glen = group ? strlen(group) : 0;
    for (size_t i = 0; i < es_config_nkeys && n + 1 < max; i++) {
        const char *name = es_config_keys[i].name, *dot = strchr(name, '.');
        if (group) {
            if (dot && (size_t)(dot - name) == glen && strncmp(name, group, glen) == 0)
                names[n++] = dot + 1;
        } else if (!dot) {
            names[n++] = name;
        } else if (n == 0 || strlen(names[n - 1]) != (size_t)(dot - name) ||
                   strncmp(names[n - 1], name, (size_t)(dot - name)) != 0) {
            /* a group's first row (a group's rows are together) */
            snprintf(store[n], sizeof store[n], "%.*s", (int)(dot - name), name);
            names[n] = store[n];
            n++;
        }
    }
    names[n] = NULL;
    return names;
}

static const char *enum_choices(const es_config_key *k, char *out, size_t outlen)
{
    out[0] = '\0';
    for (const char *const *c = k->choices; *c; c++) {
        size_t used = strlen(out);
        const char *sep = c == k->choices ? "" : c[1] ? ", " : " or ";
        snprintf(out + used, outlen - used, "%s\"%s\"", sep, *c);
    }
    return out;
}

/* A plain value: checked against the row's type and range, stored at its offset. */
static int load_value(loader *l, const es_config_key *k, const config_setting_t *s)
{
    const config_setting_t *g = s ? config_setting_parent(s) : NULL;
    const char *name = es_config_key_leaf(k);
    char *field = (char *)l->c + k->offset;
    switch (k->type) {
    case ES_KEY_INT: {
        long long v = k->def.i;
        if (get_int(l, g, name, (long long)k->lo, (long long)k->hi, &v))
            return -1;
        if (k->size == sizeof(size_t)) {
            size_t x = (size_t)v;
            memcpy(field, &x, sizeof x);
        } else { /* int or unsigned, within range */
            int x = (int)v;
            memcpy(field, &x, sizeof x);
        }
        return 0;
    }
    case ES_KEY_NUMBER: {
        double v = k->def.d;
        if (get_number(l, g, name, k->lo, k->hi, &v))
            return -1;
        memcpy(field, &v, sizeof v);
        return 0;
    }
    case ES_KEY_BOOL: {
        int v = (int)k->def.i;
        if (get_bool(l, g, name, &v))
            return -1;
        memcpy(field, &v, sizeof v);
        return 0;
    }
    case ES_KEY_STRING: {
        const char *v = k->def.s;
        if (get_string(l, g, name, &v))
            return -1;
        char *copy = es_xstrdup(v);
        memcpy(field, &copy, sizeof copy);
        return 0;
    }
    case ES_KEY_ENUM: {
        const char *v = k->def.s;
        if (get_string(l, g, name, &v))
            return -1;
        for (int i = 0; k->choices[i]; i++)
            if (strcmp(v, k->choices[i]) == 0) {
                memcpy(field, &i, sizeof i);
                return 0;
            }
        char list[256];
        return fail(l, s, "'%s' must be %s (got \"%s\")", name,
                    enum_choices(k, list, sizeof list), v);
    }
    default: return 0;
    }
}

/* What no single row can check. */
static int check_together(loader *l)
{
    es_config *c = l->c;
    if (c->cluster_enabled) {
        const char *why = NULL;
        const char *at = "cluster";
        if (c->event_loop != ES_LOOP_LIBEV)
            why = "'cluster' needs server.event_loop = \"libev\" (Redis runs on that loop)",
            at = "server.event_loop";
        else if (c->cluster_node[0] && !es_bus_name_valid(c->cluster_node, strlen(c->cluster_node)))
            why = "'node' must be 1 to 64 characters of A-Z a-z 0-9 . _ : -", at = "cluster.node";
        else if (!es_config_redis_address(c->cluster_redis, NULL, 0, NULL))
            why = "'redis' must be \"host:port\" or \"unix:/path\"", at = "cluster.redis";
        else if (!c->cluster_prefix[0] || strlen(c->cluster_prefix) > 64 ||
                 strpbrk(c->cluster_prefix, " \t\r\n"))
            why = "'prefix' must be 1 to 64 characters without spaces", at = "cluster.prefix";
        else if (c->cluster_node_timeout < 2 * c->cluster_heartbeat)
            why = "'node_timeout' must be at least twice 'heartbeat_interval'",
            at = "cluster.node_timeout";
        if (why) {
            const config_setting_t *s = config_lookup(&c->cfg_, at);
            return fail(l, s ? s : config_lookup(&c->cfg_, "cluster"), "%s", why);
        }
    }
    if (c->send_queue_bytes < c->max_frame_bytes * 2) {
        const config_setting_t *s = config_lookup(&c->cfg_, "server.send_queue_bytes");
        return fail(l, s ? s : config_lookup(&c->cfg_, "server"),
                    "'send_queue_bytes' (%zu) must be at least twice 'max_frame_bytes' (%zu) so "
                    "that any relay fits",
                    c->send_queue_bytes, c->max_frame_bytes);
    }
    if (c->admin_enabled && strlen(c->admin_token) < ES_ADMIN_TOKEN_MIN) {
        const config_setting_t *s = config_lookup(&c->cfg_, "admin.enabled");
        return fail(l, s ? s : config_lookup(&c->cfg_, "admin"),
                    "'admin' is enabled without a token of at least %d bytes: set 'token' or "
                    "'token_file'",
                    ES_ADMIN_TOKEN_MIN);
    }
    return 0;
}

static int load(loader *l)
{
    const config_setting_t *root = config_root_setting(&l->c->cfg_);
    const char *top[64], *keys[64];
    char groups[64][32];
    if (only_keys(l, root, known_names(NULL, top, ES_ARRAY_LEN(top), groups)))
        return -1;
    /* every group is a group before any of their keys is looked at */
    int bad = 0;
    for (const char *const *t = top; *t && !bad; t++)
        if (*known_names(*t, keys, ES_ARRAY_LEN(keys), NULL))
            group_of(l, root, *t, &bad);
    if (bad)
        return -1;
    for (const char *const *t = top; *t; t++) {
        const config_setting_t *g = config_setting_get_member(root, *t);
        if (g && *known_names(*t, keys, ES_ARRAY_LEN(keys), NULL) && only_keys(l, g, keys))
            return -1;
    }
    for (size_t i = 0; i < es_config_nkeys; i++) {
        const es_config_key *k = &es_config_keys[i];
        const config_setting_t *s = config_lookup(&l->c->cfg_, k->name);
        if (k->load ? k->load(l, k, s) : load_value(l, k, s))
            return -1;
    }
    return check_together(l);
}

int es_config_load(es_config *c, const char *path, const es_config_defaults *defaults, char *err,
                   size_t errlen)
{
    memset(c, 0, sizeof *c);
    c->path = es_xstrdup(path);
    config_init(&c->cfg_);
    c->cfg_live_ = 1;
    loader l = {.c = c, .err = err, .errlen = errlen, .def = defaults};
    if (config_read_file(&c->cfg_, path) != CONFIG_TRUE) {
        if (config_error_type(&c->cfg_) == CONFIG_ERR_FILE_IO)
            snprintf(err, errlen, "%s: cannot read the config file", path);
        else
            snprintf(err, errlen, "%s:%d: %s", config_error_file(&c->cfg_) ? config_error_file(&c->cfg_) : path,
                     config_error_line(&c->cfg_), config_error_text(&c->cfg_));
        es_config_free(c);
        return -1;
    }
    l.config_dir = dir_of(path);
    int rc = load(&l);
    free(l.config_dir);
    if (rc) {
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
    for (size_t i = 0; i < c->njoin_headers; i++)
        free(c->join_headers[i]);
    free(c->join_headers);
    if (c->turn_secret)
        memset(c->turn_secret, 0, strlen(c->turn_secret));
    free(c->turn_secret);
    free(c->turn_secret_file);
    for (size_t i = 0; i < c->nturn_urls; i++)
        free(c->turn_urls[i]);
    free(c->turn_urls);
    for (size_t i = 0; i < c->nstun_urls; i++)
        free(c->stun_urls[i]);
    free(c->stun_urls);
    if (c->cluster_password)
        memset(c->cluster_password, 0, strlen(c->cluster_password));
    free(c->cluster_password);
    free(c->cluster_password_file);
    if (c->cluster_secret)
        memset(c->cluster_secret, 0, strlen(c->cluster_secret));
    free(c->cluster_secret);
    free(c->cluster_secret_file);
    free(c->cluster_redis);
    free(c->cluster_user);
    free(c->cluster_node);
    free(c->cluster_prefix);
    if (c->admin_token)
        memset(c->admin_token, 0, strlen(c->admin_token));
    free(c->admin_token);
    free(c->admin_token_file);
    for (size_t i = 0; i < c->nadmin_allow; i++)
        free(c->admin_allow[i]);
    free(c->admin_allow);
    free(c->path);
    if (c->cfg_live_)
        config_destroy(&c->cfg_);
    memset(c, 0, sizeof *c);
}

int es_config_redis_address(const char *spec, char *host, size_t hostlen, int *port)
{
    if (!spec || !*spec)
        return 0;
    if (strncmp(spec, "unix:", 5) == 0) {
        if (spec[5] != '/' || strlen(spec + 5) >= 108)
            return 0;
        if (host)
            snprintf(host, hostlen, "%s", spec + 5);
        if (port)
            *port = 0;
        return 1;
    }
    const char *colon = strrchr(spec, ':');
    if (!colon || colon == spec || (size_t)(colon - spec) >= 256)
        return 0;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || p < 1 || p > 65535 || end == colon + 1)
        return 0;
    if (host)
        snprintf(host, hostlen, "%.*s", (int)(colon - spec), spec);
    if (port)
        *port = (int)p;
    return 1;
}

void es_config_apply_log(const es_config *c)
{
    es_log_set_format(c->log_format);
    es_log_clear_module_levels();
    for (size_t i = 0; i < c->nlog_modules; i++)
        es_log_set_module_level(c->log_modules[i].name, c->log_modules[i].level);
    es_log_set_level(c->log_level);
}
