/*
 * earshot/plugin.h - the public plugin ABI of the earshot signaling server.
 *
 * A plugin is a shared object (.so) that exports one function,
 *
 *     const earshot_plugin *earshot_plugin_describe(void);
 *
 * returning a pointer to a static, constant descriptor built with
 * EARSHOT_PLUGIN_DEFINE(). The descriptor names the plugin, declares the
 * settings it accepts, and points at the hooks it implements. Hooks it does
 * not implement stay NULL and the core skips them.
 *
 * Chains. For every hook the core keeps one chain: the enabled plugins and
 * Lua scripts in the order the config lists them. Each link answers with an
 * earshot_verdict. The first link that answers EARSHOT_ALLOW or EARSHOT_DENY
 * decides and ends the chain; EARSHOT_PASS hands the decision to the next
 * link. When every link passes, the default is:
 *     join, position, relay: allow
 *     match_filter:          no match (with no match filter, nobody matches)
 * So a link that only adds a restriction returns DENY or PASS, and a link
 * that wants the rest of the chain to still run returns PASS, not ALLOW.
 *
 * Threading. The core is single threaded. Every hook is called on the event
 * loop thread, one at a time; a plugin needs no locks for its own state but
 * must never block (no network or disk waits in a hook).
 *
 * Ownership. Every pointer the core passes into a hook is owned by the core
 * and valid only for the duration of that call: copy what you keep. Strings
 * are NUL-terminated UTF-8 unless a length is given. Every pointer a plugin
 * hands back (descriptor, setting definitions, reason strings) is owned by
 * the plugin; the core copies reason strings before the next hook call.
 *
 * Versioning. EARSHOT_PLUGIN_API_VERSION changes whenever the meaning of an
 * existing field changes. New hooks are only ever appended to the end of
 * earshot_plugin; the core reads `struct_size` to know which hooks an older
 * plugin's descriptor has, and reads a hook's pointer only when the pointer
 * lies wholly within struct_size bytes: a hook appended after the plugin was
 * built is absent from it, whatever lies in memory after its descriptor. The
 * core refuses a plugin whose api_version differs from its own, or whose
 * struct_size is smaller than the first ABI's descriptor
 * (EARSHOT_PLUGIN_MIN_SIZE: everything up to and including on_leave).
 */
#ifndef EARSHOT_PLUGIN_H
#define EARSHOT_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EARSHOT_PLUGIN_API_VERSION 1u

/* The symbol the loader looks up with dlsym(). */
#define EARSHOT_PLUGIN_ENTRY "earshot_plugin_describe"

typedef enum earshot_verdict {
    EARSHOT_PASS = 0,  /* no opinion: the next link decides */
    EARSHOT_ALLOW = 1, /* yes, and the chain ends here */
    EARSHOT_DENY = 2   /* no, and the chain ends here */
} earshot_verdict;

/* Where a client stands. game_id and channel default to 0. */
typedef struct earshot_position {
    int32_t game_id;
    int32_t map_id;
    int32_t x;
    int32_t y;
    int32_t channel;
} earshot_position;

/*
 * A registered client as hooks see it. Owned by the core; valid during the
 * call only. `client_id` is 1..128 bytes of UTF-8 without control characters.
 * `address` is the remote IP address as text ("127.0.0.1", "::1").
 */
typedef struct earshot_client {
    const char *client_id;
    const char *address;
    earshot_position pos;
} earshot_client;

/* One HTTP request header of the WebSocket upgrade. `name` is lower case. */
typedef struct earshot_header {
    const char *name;
    const char *value;
} earshot_header;

/*
 * A connection asking to register `client_id` with its first UpdatePosition.
 * `path` is the request path ("/"), `query` the raw query string without the
 * '?' ("" when there is none), `headers` the upgrade request's headers:
 * every one libwebsockets knows by name, and those of the game's own that
 * the config's server.join_headers lists.
 */
typedef struct earshot_join {
    const char *client_id;
    const char *address;
    const char *path;
    const char *query;
    const earshot_header *headers;
    size_t header_count;
    earshot_position pos;
    /* 1 when the connection claims to resume a session of client_id with a
     * resume token (protocol v1.1). The token is checked after the join
     * chain allowed it: a refused token changes nothing, whatever the join
     * hooks said. On a valid one the client was registered before and its
     * peers never saw it leave. Appended: hooks built before it never read
     * it. */
    int resume;
} earshot_join;

typedef enum earshot_relay_kind {
    EARSHOT_RELAY_OFFER = 0,
    EARSHOT_RELAY_ANSWER = 1,
    EARSHOT_RELAY_ICE_CANDIDATE = 2
} earshot_relay_kind;

/*
 * A relay about to be delivered. `payload` is the opaque offer, answer or
 * candidate string exactly as it will be delivered; it may contain NUL bytes,
 * so use `payload_len`. `matched` is 1 when sender and target are matched now.
 */
typedef struct earshot_relay {
    earshot_relay_kind kind;
    const earshot_client *sender;
    const earshot_client *target;
    const char *payload;
    size_t payload_len;
    int matched;
} earshot_relay;

typedef enum earshot_leave_reason {
    EARSHOT_LEAVE_DISCONNECT = 0, /* the client sent Disconnect */
    EARSHOT_LEAVE_CLOSED = 1,     /* the connection closed or failed */
    EARSHOT_LEAVE_TIMEOUT = 2,    /* idle timeout */
    EARSHOT_LEAVE_TAKEOVER = 3,   /* another connection took over its client_id */
    EARSHOT_LEAVE_SHUTDOWN = 4,   /* the server is stopping */
    EARSHOT_LEAVE_MOVED = 5       /* several nodes: another node serves it from now on */
} earshot_leave_reason;

typedef enum earshot_log_level {
    EARSHOT_LOG_DEBUG = 0,
    EARSHOT_LOG_INFO = 1,
    EARSHOT_LOG_WARN = 2,
    EARSHOT_LOG_ERROR = 3
} earshot_log_level;

/* ---- settings ---------------------------------------------------------- */

typedef enum earshot_setting_type {
    EARSHOT_SETTING_END = 0, /* terminates a settings table */
    EARSHOT_SETTING_INT = 1,    /* libconfig integer, within [int_min, int_max] */
    EARSHOT_SETTING_NUMBER = 2, /* integer or float, within [num_min, num_max] */
    EARSHOT_SETTING_BOOL = 3,
    EARSHOT_SETTING_STRING = 4
} earshot_setting_type;

/*
 * One setting a plugin accepts in its `settings = { ... }` block. The core
 * validates the block against this table before init(): an unknown key, a
 * wrong type or a value out of range is a config error naming file and line.
 * A key left out takes its default. Terminate the table with
 * EARSHOT_SETTINGS_END.
 */
typedef struct earshot_setting_def {
    const char *name;
    earshot_setting_type type;
    int64_t int_default, int_min, int_max;
    double num_default, num_min, num_max;
    int bool_default;
    const char *string_default;
    const char *doc; /* one line, shown by the loader's error messages */
} earshot_setting_def;

#define EARSHOT_SETTING_INT_DEF(n, def, lo, hi, d) \
    { .name = (n), .type = EARSHOT_SETTING_INT, .int_default = (def), .int_min = (lo), .int_max = (hi), .doc = (d) }
#define EARSHOT_SETTING_NUMBER_DEF(n, def, lo, hi, d) \
    { .name = (n), .type = EARSHOT_SETTING_NUMBER, .num_default = (def), .num_min = (lo), .num_max = (hi), .doc = (d) }
#define EARSHOT_SETTING_BOOL_DEF(n, def, d) \
    { .name = (n), .type = EARSHOT_SETTING_BOOL, .bool_default = (def), .doc = (d) }
#define EARSHOT_SETTING_STRING_DEF(n, def, d) \
    { .name = (n), .type = EARSHOT_SETTING_STRING, .string_default = (def), .doc = (d) }
#define EARSHOT_SETTINGS_END { .name = NULL, .type = EARSHOT_SETTING_END }

/* The validated settings of one plugin instance; read through the host. */
typedef struct earshot_settings earshot_settings;

/*
 * Services the core offers a plugin. Handed to init(); valid until destroy()
 * returns, so a plugin may keep the pointer.
 */
typedef struct earshot_host {
    uint32_t api_version;
    /* Log one line, attributed to this plugin instance. printf format. */
    void (*log)(const struct earshot_host *host, earshot_log_level level,
                const char *fmt, ...)
#if defined(__GNUC__)
        __attribute__((format(printf, 3, 4)))
#endif
        ;
    /* Monotonic time in seconds, from an arbitrary origin. */
    double (*now)(void);
    /* Read a declared setting. Asking for an undeclared name or the wrong type
     * returns the zero value (0, 0.0, 0, ""). Strings live until destroy(). */
    int64_t (*setting_int)(const earshot_settings *s, const char *name);
    double (*setting_number)(const earshot_settings *s, const char *name);
    int (*setting_bool)(const earshot_settings *s, const char *name);
    const char *(*setting_string)(const earshot_settings *s, const char *name);
    void *host_data; /* the core's; do not touch */
    /* A keyed hash (SipHash with a key chosen at start), for plugins' tables
     * of client-chosen strings: clients cannot pick keys that collide. Reads
     * `len` bytes at `data` during the call only. Same key for every plugin
     * and for the life of the process. Appended after host_data in earshot
     * 0.1: the host has no size field, so a plugin that calls it needs a core
     * of 0.1 or later (every core this header ships with). */
    uint64_t (*hash)(const void *data, size_t len);
    /*
     * Moderation: the process's ban and mute lists, the ones the admin API
     * (/admin) shows and edits. Appended after hash since earshot 0.1.0,
     * with the same caveat: a plugin that calls them needs a core built
     * with this header or a later one. The core itself refuses a banned client's registration and a
     * muted client's relays; these let a hook consult or extend the lists
     * (a join hook that bans after repeated bad tokens, say). Strings are
     * read during the call only; either of client_id and address may be
     * NULL. Calls from a hook change the lists only: a client already in is
     * not removed (its next registration is refused).
     *
     * banned: 1 when the client_id or the address is banned now, else 0.
     * ban:    ban the client_id or the address (one of them; the other
     *         NULL) for 1 second to 366 days; 0, or -1 for bad arguments.
     * muted:  1 when the client_id is muted.
     * mute:   on = 1 mutes the client_id until unmuted, 0 lifts it;
     *         0, or -1 (bad id, or not muted when lifting).
     */
    int (*banned)(const struct earshot_host *host, const char *client_id, const char *address);
    int (*ban)(const struct earshot_host *host, const char *client_id, const char *address,
               double seconds, const char *reason);
    int (*muted)(const struct earshot_host *host, const char *client_id);
    int (*mute)(const struct earshot_host *host, const char *client_id, int on,
                const char *reason);
} earshot_host;

/* ---- the descriptor ---------------------------------------------------- */

typedef struct earshot_plugin {
    uint32_t api_version; /* EARSHOT_PLUGIN_API_VERSION the plugin was built with */
    uint32_t struct_size; /* sizeof(earshot_plugin) the plugin was built with */
    const char *name;        /* short identifier, e.g. "proximity" */
    const char *version;     /* the plugin's own version, e.g. "1.0.0" */
    const char *description; /* one line */
    const earshot_setting_def *settings; /* may be NULL: accepts no settings */

    /*
     * Create one instance. Store the instance state in *state (it is passed
     * back to every hook). Return 0 on success; on failure return non-zero
     * and write a one-line reason into err (errlen bytes, NUL-terminated):
     * the server then refuses to start. May be NULL.
     */
    int (*init)(const earshot_host *host, const earshot_settings *settings,
                void **state, char *err, size_t errlen);

    /* Free the instance. Called once, after the last hook call. May be NULL. */
    void (*destroy)(void *state);

    /*
     * For match filters: the largest distance at which this filter can ever
     * answer ALLOW for a pair (including pairs already matched). The core
     * sizes its spatial grid from the largest radius of all match filters and
     * only asks about pairs within it. Return 0 if the plugin has no match
     * filter. Called once after init(). May be NULL (= 0).
     */
    int64_t (*query_radius)(void *state);

    /*
     * join: a connection's first valid UpdatePosition asks to register
     * j->client_id. DENY refuses it: the client gets an Error with *reason
     * (or "join refused" when *reason is left NULL) and stays unregistered.
     */
    earshot_verdict (*on_join)(void *state, const earshot_join *j, const char **reason);

    /*
     * position: client `c` (its current position in c->pos; for the first
     * UpdatePosition c->pos equals *pos) reports *pos. A link may rewrite
     * *pos to adjust it (clamp to map bounds, say): the adjusted value is what
     * the next link sees and what the core stores. DENY rejects the update:
     * the client gets an Error with *reason ("position refused" if NULL) and
     * nothing changes.
     */
    earshot_verdict (*on_position)(void *state, const earshot_client *c,
                                   earshot_position *pos, const char **reason);

    /*
     * match_filter: should a and b be matched? `matched` is 1 when they are
     * matched now, so a filter can apply hysteresis. The core asks once per
     * pair and applies the answer to both sides, so the answer must not
     * depend on argument order. Only pairs within the grid's query radius
     * are asked. Keep it cheap: it runs for every nearby pair on every move.
     */
    earshot_verdict (*match_filter)(void *state, const earshot_client *a,
                                    const earshot_client *b, int matched);

    /*
     * relay: may r->sender's offer, answer or ICE candidate reach r->target?
     * A denied offer or answer gets Error *reason (or "relay to <id> not
     * allowed"); a denied ICE candidate is dropped silently.
     */
    earshot_verdict (*on_relay)(void *state, const earshot_relay *r, const char **reason);

    /* leave: client `c` is gone. Called for every link; no verdict. */
    void (*on_leave)(void *state, const earshot_client *c, earshot_leave_reason reason);

    /* The first ABI's descriptor ends here. Hooks below were appended since,
     * and only ever will be: each is read only from a descriptor whose
     * struct_size covers it. */

    /*
     * pair: a and b became matched (matched = 1) or stopped being matched
     * (matched = 0), for any reason including one of them leaving. Called
     * for every link after the match sets change; no verdict.
     */
    void (*on_pair)(void *state, const earshot_client *a, const earshot_client *b, int matched);

    /*
     * tick: a timer, called about every tick_interval seconds on the loop's
     * thread, between messages, for work that must happen whether or not
     * clients do anything (dropping what expired, say). Read the time with
     * host->now(). The core ticks ten times a second, so an interval is
     * rounded up to the next tenth of a second. No verdict. May be NULL.
     */
    void (*on_tick)(void *state);

    /* Seconds between two on_tick calls; 0 (the default) means 1 second.
     * Read only when on_tick is set. */
    double tick_interval;
} earshot_plugin;

/*
 * The smallest struct_size the loader accepts: the first ABI's descriptor,
 * which ends with on_leave (on_pair, then on_tick and tick_interval, were
 * appended since). A plugin built against that header keeps loading; its
 * on_pair and on_tick are absent.
 */
#define EARSHOT_PLUGIN_MIN_SIZE \
    (offsetof(earshot_plugin, on_leave) + sizeof(((const earshot_plugin *)0)->on_leave))

/*
 * Define the descriptor and the entry point in one go:
 *
 *     EARSHOT_PLUGIN_DEFINE(
 *         .name = "team_only", .version = "1.0.0",
 *         .description = "match only players of the same team",
 *         .init = team_init, .destroy = team_destroy,
 *         .match_filter = team_filter);
 *
 * Every field not named is zero, so hooks added to later ABI versions are
 * simply absent from this plugin.
 */
#define EARSHOT_PLUGIN_DEFINE(...)                                        \
    static const earshot_plugin earshot_plugin_descriptor_ = {            \
        .api_version = EARSHOT_PLUGIN_API_VERSION,                        \
        .struct_size = (uint32_t)sizeof(earshot_plugin), __VA_ARGS__};    \
    __attribute__((visibility("default"))) const earshot_plugin *         \
    earshot_plugin_describe(void);                                        \
    const earshot_plugin *earshot_plugin_describe(void)                   \
    {                                                                     \
        return &earshot_plugin_descriptor_;                               \
    }

#ifdef __cplusplus
}
#endif

#endif /* EARSHOT_PLUGIN_H */
