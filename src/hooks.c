#include "hooks.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "lua_host.h"
#include "moderation.h"
#include "util.h"

struct es_settings_value {
    int64_t i;
    double d;
    int b;
    char *s;
};

/* ---- settings ----------------------------------------------------------- */

static const earshot_setting_def *find_def(const earshot_settings *s, const char *name,
                                           size_t *index)
{
    for (size_t i = 0; i < s->count; i++) {
        if (strcmp(s->defs[i].name, name) == 0) {
            *index = i;
            return &s->defs[i];
        }
    }
    return NULL;
}

static int64_t host_setting_int(const earshot_settings *s, const char *name)
{
    size_t i;
    const earshot_setting_def *d = find_def(s, name, &i);
    return d && d->type == EARSHOT_SETTING_INT ? s->values[i].i : 0;
}

static double host_setting_number(const earshot_settings *s, const char *name)
{
    size_t i;
    const earshot_setting_def *d = find_def(s, name, &i);
    return d && d->type == EARSHOT_SETTING_NUMBER ? s->values[i].d : 0.0;
}

static int host_setting_bool(const earshot_settings *s, const char *name)
{
    size_t i;
    const earshot_setting_def *d = find_def(s, name, &i);
    return d && d->type == EARSHOT_SETTING_BOOL ? s->values[i].b : 0;
}

static const char *host_setting_string(const earshot_settings *s, const char *name)
{
    size_t i;
    const earshot_setting_def *d = find_def(s, name, &i);
    return d && d->type == EARSHOT_SETTING_STRING ? s->values[i].s : "";
}

/* ---- moderation services (moderation.h) ------------------------------- */

static const char *link_by(const earshot_host *host, char *out, size_t outlen)
{
    const es_link *link = host->host_data;
    snprintf(out, outlen, "hook %s", link->name);
    return out;
}

static int host_banned(const earshot_host *host, const char *client_id, const char *address)
{
    (void)host;
    return es_moderation_banned(es_moderation_shared(), client_id,
                                client_id ? strlen(client_id) : 0, address, es_wallclock(), NULL,
                                0);
}

static int host_ban(const earshot_host *host, const char *client_id, const char *address,
                    double seconds, const char *reason)
{
    char by[128];
    if ((client_id == NULL) == (address == NULL))
        return -1;
    const char *key = client_id ? client_id : address;
    return es_moderation_ban(es_moderation_shared(), client_id ? ES_BAN_ID : ES_BAN_ADDRESS, key,
                             strlen(key), seconds, es_wallclock(), reason,
                             link_by(host, by, sizeof by));
}

static int host_muted(const earshot_host *host, const char *client_id)
{
    (void)host;
    return client_id && es_moderation_muted(es_moderation_shared(), client_id, strlen(client_id));
}

static int host_mute(const earshot_host *host, const char *client_id, int on, const char *reason)
{
    char by[128];
    if (!client_id)
        return -1;
    size_t n = strlen(client_id);
    return on ? es_moderation_mute(es_moderation_shared(), client_id, n, es_wallclock(), reason,
                                   link_by(host, by, sizeof by))
              : es_moderation_unmute(es_moderation_shared(), client_id, n);
}

static void host_log(const earshot_host *host, earshot_log_level level, const char *fmt, ...)
{
    const es_link *link = host->host_data;
    char module[96];
    snprintf(module, sizeof module, "plugin %s", link->name);
    if (!es_log_enabled(level) || !es_log_module_enabled(level, module))
        return;
    va_list ap;
    va_start(ap, fmt);
    es_log_writev(level, module, NULL, fmt, ap);
    va_end(ap);
}

static void settings_free(earshot_settings *s)
{
    for (size_t i = 0; i < s->count; i++)
        free(s->values[i].s);
    free(s->values);
    memset(s, 0, sizeof *s);
}

/* Fill link->settings from the entry's group, validated against the defs. */
static int settings_load(const es_config *cfg, const es_hook_entry *e, es_link *link, char *err,
                         size_t errlen)
{
    earshot_settings *s = &link->settings;
    const earshot_setting_def *defs = link->desc->settings;
    s->defs = defs;
    s->count = 0;
    while (defs && defs[s->count].name)
        s->count++;
    s->values = es_xcalloc(s->count, sizeof *s->values);
    for (size_t i = 0; i < s->count; i++) {
        s->values[i].i = defs[i].int_default;
        s->values[i].d = defs[i].num_default;
        s->values[i].b = defs[i].bool_default;
        s->values[i].s = es_xstrdup(defs[i].string_default ? defs[i].string_default : "");
    }
    if (!e->settings)
        return 0;
    int n = config_setting_length(e->settings);
    for (int k = 0; k < n; k++) {
        const config_setting_t *v = config_setting_get_elem(e->settings, (unsigned)k);
        char where[512];
        es_config_where(cfg, v, where, sizeof where);
        const char *name = config_setting_name(v);
        size_t i;
        const earshot_setting_def *d = name ? find_def(s, name, &i) : NULL;
        if (!d) {
            snprintf(err, errlen, "%splugin '%s' has no setting '%s'", where, e->name,
                     name ? name : "?");
            return -1;
        }
        int t = config_setting_type(v);
        int is_int = t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64;
        switch (d->type) {
        case EARSHOT_SETTING_INT: {
            if (!is_int) {
                snprintf(err, errlen, "%s'%s' must be an integer (%s)", where, name, d->doc ? d->doc : "");
                return -1;
            }
            long long x = config_setting_get_int64(v);
            if (x < d->int_min || x > d->int_max) {
                snprintf(err, errlen, "%s'%s' must be between %lld and %lld (got %lld)", where, name,
                         (long long)d->int_min, (long long)d->int_max, x);
                return -1;
            }
            s->values[i].i = x;
            break;
        }
        case EARSHOT_SETTING_NUMBER: {
            if (!is_int && t != CONFIG_TYPE_FLOAT) {
                snprintf(err, errlen, "%s'%s' must be a number (%s)", where, name, d->doc ? d->doc : "");
                return -1;
            }
            double x = is_int ? (double)config_setting_get_int64(v) : config_setting_get_float(v);
            if (!(x >= d->num_min && x <= d->num_max)) {
                snprintf(err, errlen, "%s'%s' must be between %g and %g (got %g)", where, name,
                         d->num_min, d->num_max, x);
                return -1;
            }
            s->values[i].d = x;
            break;
        }
        case EARSHOT_SETTING_BOOL:
            if (t != CONFIG_TYPE_BOOL) {
                snprintf(err, errlen, "%s'%s' must be true or false", where, name);
                return -1;
            }
            s->values[i].b = config_setting_get_bool(v);
            break;
        case EARSHOT_SETTING_STRING:
            if (t != CONFIG_TYPE_STRING) {
                snprintf(err, errlen, "%s'%s' must be a string", where, name);
                return -1;
            }
            free(s->values[i].s);
            s->values[i].s = es_xstrdup(config_setting_get_string(v));
            break;
        default:
            snprintf(err, errlen, "%splugin '%s' declares setting '%s' with an unknown type", where,
                     e->name, name);
            return -1;
        }
    }
    return 0;
}

/* ---- loading ------------------------------------------------------------ */

static int settings_equal(const earshot_settings *a, const earshot_settings *b)
{
    if (a->defs != b->defs || a->count != b->count)
        return 0;
    for (size_t i = 0; i < a->count; i++) {
        const es_settings_value *x = &a->values[i], *y = &b->values[i];
        switch (a->defs[i].type) {
        case EARSHOT_SETTING_INT: if (x->i != y->i) return 0; break;
        case EARSHOT_SETTING_NUMBER: if (x->d != y->d) return 0; break;
        case EARSHOT_SETTING_BOOL: if (x->b != y->b) return 0; break;
        default: if (strcmp(x->s, y->s) != 0) return 0; break;
        }
    }
    return 1;
}

/*
 * A reload: take over the running instance of the same plugin entry (same
 * name, same descriptor, equal settings), so its memory survives. The
 * instance keeps the host and the settings it was given; the running link
 * gets the fresh copies and no instance, so unloading it destroys nothing
 * the new link uses.
 */
static int adopt(es_link *link, const es_hook_entry *e, es_hooks *running)
{
    for (size_t i = 0; i < running->nlinks; i++) {
        es_link *old = &running->links[i];
        if (!old->initialised || old->desc != link->desc || !old->host ||
            strcmp(old->name, e->name) != 0 || !settings_equal(&old->settings, &link->settings))
            continue;
        earshot_host *host = old->host;
        earshot_settings settings = old->settings;
        old->host = link->host;
        old->host->host_data = old;
        old->settings = link->settings;
        link->host = host;
        link->host->host_data = link;
        link->settings = settings;
        link->state = old->state;
        link->initialised = 1;
        link->next_tick = old->next_tick;
        old->state = NULL;
        old->initialised = 0;
        link->query_radius = old->query_radius;
        link->adopted = old;
        return 1;
    }
    return 0;
}

/* A reload that fails gives the running link its instance back. */
static void give_back(es_link *link)
{
    es_link *old = link->adopted;
    earshot_host *host = old->host;
    earshot_settings settings = old->settings;
    old->host = link->host;
    old->host->host_data = old;
    old->settings = link->settings;
    link->host = host;
    link->host->host_data = link;
    link->settings = settings;
    old->state = link->state;
    old->initialised = 1;
    link->state = NULL;
    link->initialised = 0;
    link->adopted = NULL;
}

static int link_open_plugin(const es_config *cfg, const es_hook_entry *e, es_link *link,
                            es_hooks *running, char *err, size_t errlen)
{
    char where[512];
    snprintf(where, sizeof where, "%s:%d: ", e->file, e->line);
    link->dl = dlopen(e->path, RTLD_NOW | RTLD_LOCAL);
    if (!link->dl) {
        snprintf(err, errlen, "%scannot load plugin '%s': %s", where, e->name, dlerror());
        return -1;
    }
    const earshot_plugin *(*describe)(void);
    *(void **)&describe = dlsym(link->dl, EARSHOT_PLUGIN_ENTRY);
    if (!describe) {
        snprintf(err, errlen, "%s%s is not an earshot plugin: it has no symbol %s", where, e->path,
                 EARSHOT_PLUGIN_ENTRY);
        return -1;
    }
    const earshot_plugin *d = describe();
    if (!d) {
        snprintf(err, errlen, "%s%s: %s returned NULL", where, e->path, EARSHOT_PLUGIN_ENTRY);
        return -1;
    }
    if (d->api_version != EARSHOT_PLUGIN_API_VERSION) {
        snprintf(err, errlen,
                 "%splugin '%s' (%s) was built for plugin API version %u, this earshot has "
                 "version %u: rebuild it against this earshot's earshot/plugin.h",
                 where, e->name, e->path, d->api_version, EARSHOT_PLUGIN_API_VERSION);
        return -1;
    }
    if (d->struct_size < EARSHOT_PLUGIN_MIN_SIZE) {
        snprintf(err, errlen,
                 "%splugin '%s' (%s) has a descriptor of %u bytes, at least %zu expected: "
                 "rebuild it against this earshot's earshot/plugin.h",
                 where, e->name, e->path, d->struct_size, (size_t)EARSHOT_PLUGIN_MIN_SIZE);
        return -1;
    }
    link->desc = d;
    if (settings_load(cfg, e, link, err, errlen))
        return -1;
    if (running && adopt(link, e, running))
        return 0;
    if (d->init) {
        char why[256] = "";
        if (d->init(link->host, &link->settings, &link->state, why, sizeof why) != 0) {
            snprintf(err, errlen, "%splugin '%s' failed to start: %s", where, e->name,
                     why[0] ? why : "(no reason given)");
            return -1;
        }
    }
    link->initialised = 1;
    link->query_radius = d->query_radius ? d->query_radius(link->state) : 0;
    if (link->query_radius < 0 || link->query_radius > INT64_C(1) << 32) {
        snprintf(err, errlen, "%splugin '%s' declares a query radius of %lld, outside 0..2^32",
                 where, e->name, (long long)link->query_radius);
        return -1;
    }
    return 0;
}

static void link_close(es_link *link)
{
    if (link->initialised && link->desc && link->desc->destroy)
        link->desc->destroy(link->state);
    settings_free(&link->settings);
    free(link->host);
    if (link->dl)
        dlclose(link->dl);
    free(link->name);
    memset(link, 0, sizeof *link);
}

/*
 * Does this link implement hook id? A descriptor built against an older
 * header is smaller than earshot_plugin: a hook whose pointer does not lie
 * wholly within its struct_size is absent, and whatever follows the
 * descriptor in the plugin's memory is never read.
 */
static int implements(const es_link *l, es_hook_id id)
{
    typedef void (*any_fn)(void); /* every hook pointer has this size and representation */
    size_t offset = es_hook_table[id].plugin_offset;
    if (offset + sizeof(any_fn) > l->desc->struct_size)
        return 0;
    any_fn fn;
    memcpy(&fn, (const char *)l->desc + offset, sizeof fn);
    return fn != NULL;
}

/* The interval of the link's on_tick, when it has one; 0 without. */
static double tick_interval(const es_link *l)
{
    if (!implements(l, ES_HOOK_TICK))
        return 0.0;
    double every = 0.0;
    if (offsetof(earshot_plugin, tick_interval) + sizeof every <= l->desc->struct_size)
        every = l->desc->tick_interval;
    return every > 0.0 ? every : 1.0;
}

int es_hooks_reload(es_hooks *h, const es_config *cfg, es_hooks *running, char *err,
                    size_t errlen)
{
    memset(h, 0, sizeof *h);
    h->links = es_xcalloc(cfg->nhooks, sizeof *h->links);
    for (size_t i = 0; i < cfg->nhooks; i++) {
        const es_hook_entry *e = &cfg->hooks[i];
        if (!e->enabled)
            continue;
        es_link *link = &h->links[h->nlinks++];
        link->name = es_xstrdup(e->name);
        link->host = es_xmalloc(sizeof *link->host);
        *link->host = (earshot_host){
            .api_version = EARSHOT_PLUGIN_API_VERSION,
            .log = host_log,
            .now = es_now,
            .setting_int = host_setting_int,
            .setting_number = host_setting_number,
            .setting_bool = host_setting_bool,
            .setting_string = host_setting_string,
            .host_data = link,
            .hash = es_hash_bytes,
            .banned = host_banned,
            .ban = host_ban,
            .muted = host_muted,
            .mute = host_mute,
        };
        int rc = e->kind == ES_HOOK_LUA ? es_lua_open(e, link, err, errlen)
                                        : link_open_plugin(cfg, e, link, running, err, errlen);
        if (rc != 0) {
            for (size_t k = 0; k < h->nlinks; k++)
                if (h->links[k].adopted)
                    give_back(&h->links[k]);
            es_hooks_unload(h);
            return -1;
        }
        if (link->adopted)
            ES_INFO("hooks", "plugin %s keeps its instance (its settings are unchanged)",
                    link->name);
        if (link->query_radius > h->query_radius)
            h->query_radius = link->query_radius;
        link->tick_interval = tick_interval(link);
        ES_INFO("hooks", "loaded %s %s (%s %s)", e->kind == ES_HOOK_LUA ? "script" : "plugin",
                link->name, e->path, link->desc->version ? link->desc->version : "");
    }
    for (size_t i = 0; i < h->nlinks; i++)
        h->links[i].adopted = NULL; /* the running set is about to go */
    for (int id = 0; id < ES_HOOK_COUNT; id++) {
        h->chain[id] = es_xcalloc(h->nlinks, sizeof(es_link *));
        for (size_t i = 0; i < h->nlinks; i++)
            if (implements(&h->links[i], (es_hook_id)id))
                h->chain[id][h->chain_len[id]++] = &h->links[i];
    }
    return 0;
}

int es_hooks_load(es_hooks *h, const es_config *cfg, char *err, size_t errlen)
{
    return es_hooks_reload(h, cfg, NULL, err, errlen);
}

void es_hooks_unload(es_hooks *h)
{
    /* Destroy in reverse order of creation, like a stack. */
    for (size_t i = h->nlinks; i-- > 0;)
        link_close(&h->links[i]);
    for (int id = 0; id < ES_HOOK_COUNT; id++)
        free(h->chain[id]);
    free(h->links);
    memset(h, 0, sizeof *h);
}

/* ---- running ------------------------------------------------------------ */

/* The arguments of one hook call; each hook reads the fields it takes. */
typedef struct hook_args {
    const earshot_join *join;
    const earshot_client *a, *b;
    earshot_position *pos;
    const earshot_relay *relay;
    int matched;
    earshot_leave_reason why;
} hook_args;

/* Call hook id of link l; a notification answers PASS. */
static earshot_verdict call_link(const es_link *l, es_hook_id id, const hook_args *x,
                                 const char **reason)
{
    const earshot_plugin *d = l->desc;
    switch (id) {
    case ES_HOOK_JOIN: return d->on_join(l->state, x->join, reason);
    case ES_HOOK_POSITION: return d->on_position(l->state, x->a, x->pos, reason);
    case ES_HOOK_MATCH: return d->match_filter(l->state, x->a, x->b, x->matched);
    case ES_HOOK_RELAY: return d->on_relay(l->state, x->relay, reason);
    case ES_HOOK_LEAVE: d->on_leave(l->state, x->a, x->why); break;
    case ES_HOOK_PAIR: d->on_pair(l->state, x->a, x->b, x->matched); break;
    case ES_HOOK_TICK: d->on_tick(l->state); break;
    default: break;
    }
    return EARSHOT_PASS;
}

/*
 * Walk the chain of hook id, counting and timing every call: the first
 * ALLOW or DENY decides and ends it (a notification's links all pass, so
 * every one is called). Returns the deciding verdict, or PASS; on a DENY,
 * *reason is the link's reason (may be NULL), valid until the next call.
 */
static earshot_verdict run_chain(es_hooks *h, es_hook_id id, const hook_args *x,
                                 const char **reason)
{
    for (size_t i = 0; i < h->chain_len[id]; i++) {
        es_link *l = h->chain[id][i];
        *reason = NULL;
        double t0 = es_now();
        l->calls++;
        earshot_verdict v = call_link(l, id, x, reason);
        l->seconds += es_now() - t0;
        if (v != EARSHOT_PASS)
            return v;
    }
    return EARSHOT_PASS;
}

/* Run a verdict chain whose default is allow: 1 allowed, 0 denied with the
 * client-facing text in out (the link's reason, or fallback). */
static int run_allow_chain(es_hooks *h, es_hook_id id, const hook_args *x, char *out,
                           const char *fallback)
{
    const char *why;
    if (run_chain(h, id, x, &why) != EARSHOT_DENY)
        return 1;
    snprintf(out, ES_ERROR_MAX, "%s", why && *why ? why : fallback);
    return 0;
}

int es_hooks_join(es_hooks *h, const earshot_join *j, char *reason)
{
    return run_allow_chain(h, ES_HOOK_JOIN, &(hook_args){.join = j}, reason, "join refused");
}

int es_hooks_position(es_hooks *h, const earshot_client *c, earshot_position *pos, char *reason)
{
    return run_allow_chain(h, ES_HOOK_POSITION, &(hook_args){.a = c, .pos = pos}, reason,
                           "position refused");
}

int es_hooks_match(es_hooks *h, const earshot_client *a, const earshot_client *b, int matched)
{
    for (size_t i = 0; i < h->chain_len[ES_HOOK_MATCH]; i++) {
        es_link *l = h->chain[ES_HOOK_MATCH][i];
        earshot_verdict v;
        /* The hot hook: time one call in 64 and scale, so that reading the
         * clock does not cost more than the filter itself. */
        if ((l->calls++ & 63) == 0) {
            double t0 = es_now();
            v = l->desc->match_filter(l->state, a, b, matched);
            l->seconds += (es_now() - t0) * 64.0;
        } else {
            v = l->desc->match_filter(l->state, a, b, matched);
        }
        if (v != EARSHOT_PASS)
            return v == EARSHOT_ALLOW;
    }
    return 0;
}

int es_hooks_relay(es_hooks *h, const earshot_relay *r, char *reason)
{
    const char *why;
    if (run_chain(h, ES_HOOK_RELAY, &(hook_args){.relay = r}, &why) != EARSHOT_DENY)
        return 1;
    if (why && *why)
        snprintf(reason, ES_ERROR_MAX, "%s", why);
    else
        es_protocol_format_echo(reason, ES_ERROR_MAX, "relay to ", r->target->client_id,
                                strlen(r->target->client_id), ES_ID_MAX, " not allowed");
    return 0;
}

void es_hooks_leave(es_hooks *h, const earshot_client *c, earshot_leave_reason why)
{
    const char *unused;
    run_chain(h, ES_HOOK_LEAVE, &(hook_args){.a = c, .why = why}, &unused);
}

void es_hooks_pair(es_hooks *h, const earshot_client *a, const earshot_client *b, int matched)
{
    const char *unused;
    run_chain(h, ES_HOOK_PAIR, &(hook_args){.a = a, .b = b, .matched = matched}, &unused);
}

void es_hooks_tick(es_hooks *h, double now)
{
    for (size_t i = 0; i < h->chain_len[ES_HOOK_TICK]; i++) {
        es_link *l = h->chain[ES_HOOK_TICK][i];
        if (now < l->next_tick)
            continue;
        /* From now, not from when it was due: a late tick is not made up. */
        l->next_tick = now + l->tick_interval - 0.05; /* the core ticks every 0.1 s */
        double t0 = es_now();
        l->calls++;
        l->desc->on_tick(l->state);
        l->seconds += es_now() - t0;
    }
}
