/*
 * config - the earshot configuration file (libconfig syntax).
 *
 * es_config_load() reads and validates the whole file at once: unknown keys,
 * wrong types and out-of-range values are errors naming file and line, so a
 * typo never silently falls back to a default. Plugin `settings` blocks are
 * kept as libconfig settings and validated by the plugin loader against the
 * plugin's own declarations. config/earshot.cfg documents every key.
 */
#ifndef EARSHOT_CONFIG_H
#define EARSHOT_CONFIG_H

#include <libconfig.h>
#include <stddef.h>

#include "hooktab.h"
#include "log.h"

typedef enum es_takeover {
    ES_TAKEOVER_ALWAYS = 0,
    ES_TAKEOVER_SAME_ADDRESS = 1,
    ES_TAKEOVER_NEVER = 2
} es_takeover;

const char *es_takeover_name(es_takeover t);

typedef enum es_metrics_access {
    ES_METRICS_OFF = 0,      /* GET /metrics is 404 */
    ES_METRICS_LOOPBACK = 1, /* only from 127.0.0.0/8 and ::1 */
    ES_METRICS_PUBLIC = 2    /* from anywhere */
} es_metrics_access;

typedef enum es_event_loop { ES_LOOP_LIBEV = 0, ES_LOOP_POLL = 1 } es_event_loop;

typedef enum es_hook_kind { ES_HOOK_PLUGIN = 0, ES_HOOK_LUA = 1 } es_hook_kind;

/* One entry of the `hooks` list. */
typedef struct es_hook_entry {
    es_hook_kind kind;
    char *name;
    char *path;   /* resolved file path of the .so or .lua */
    int enabled;
    const config_setting_t *settings; /* the `settings` group, or NULL */
    /* Lua scripts only */
    int grant_io, grant_os;         /* libraries the config grants it */
    int deny_on_error[ES_HOOK_VERDICT_COUNT]; /* by es_hook_id; 1: a failing hook denies,
                                                 0: it passes */
    long long instruction_limit;    /* per hook call */
    long long memory_limit;         /* bytes, per script */
    const char *file; /* where the entry is written, for messages */
    int line;
} es_hook_entry;

/* server.join_headers: how many names, how long each. */
#define ES_JOIN_HEADERS_MAX 16
#define ES_JOIN_HEADER_MAX 64

/* turn.urls and turn.stun_urls: how many URLs, how long each; the secret. */
#define ES_TURN_URLS_MAX 16
#define ES_TURN_URL_MAX 256
#define ES_TURN_SECRET_MAX 1024

/* admin.token: at least this many bytes; admin.allow: at most this many entries. */
#define ES_ADMIN_TOKEN_MIN 16
#define ES_ADMIN_ALLOW_MAX 64

typedef struct es_config {
    char *path; /* the file read */

    /* server */
    char *address;
    int port;
    size_t max_frame_bytes;
    size_t send_queue_bytes;
    int ping_interval; /* seconds */
    es_metrics_access metrics;
    int web;       /* serve web_dir's files over plain HTTP */
    es_event_loop event_loop;

    /* limits */
    size_t max_connections;           /* 0 = no limit */
    size_t max_connections_per_address; /* 0 = no limit */
    double message_rate;              /* messages/s per connection, 0 = off */
    double message_burst;             /* token bucket size */
    unsigned rate_limit_close_after;  /* drops within 10 s before a 1008 close */
    double handshake_timeout;         /* seconds to complete the upgrade */
    double first_message_timeout;     /* seconds to the first UpdatePosition, 0 = off */
    char **allowed_origins;           /* NULL-terminated; NULL = any */
    size_t nallowed_origins;
    char **join_headers; /* lower case, NULL-terminated; NULL = none */
    size_t njoin_headers;

    /* session */
    es_takeover takeover;
    double idle_timeout;     /* seconds, 0 = off */
    double refresh_interval; /* seconds, 0 = off */
    unsigned max_peers;      /* peers per client at most, 0 = no cap */
    double swap_margin;      /* units nearer to displace a peer under the cap */
    double resume_grace;          /* seconds a lost session is held, 0 = off */
    size_t resume_queue_messages; /* relays kept for a held session */
    size_t resume_queue_bytes;    /* and their bytes */

    /* log */
    es_log_level log_level;
    es_log_format log_format;
    struct {
        char name[32];
        es_log_level level;
    } log_modules[32];
    size_t nlog_modules;

    /* TLS and proxies */
    char *tls_cert, *tls_key; /* both set: wss:// */
    int behind_proxy;         /* trust X-Forwarded-For */

    /* turn: the ICE servers of the IceServers reply */
    char *turn_secret;      /* the TURN REST API shared secret, "" = none; never logged */
    char *turn_secret_file; /* the file it was read from, "" = none */
    char **turn_urls;       /* turn: and turns: URLs, NULL-terminated; NULL = none */
    size_t nturn_urls;
    char **stun_urls;       /* stun: and stuns: URLs, NULL-terminated; NULL = none */
    size_t nstun_urls;
    int turn_ttl;           /* seconds a minted TURN credential is valid */

    /* cluster: several nodes sharing one world through Redis */
    int cluster_enabled;
    char *cluster_redis;         /* "host:port" or "unix:/path" */
    char *cluster_user;          /* ACL user, "" = the default user */
    char *cluster_password;      /* AUTH password, "" = none; never logged */
    char *cluster_password_file; /* the file it was read from, "" = none */
    char *cluster_node;          /* this node's name, "" = <host name>-<pid> */
    char *cluster_secret;        /* the nodes' shared key for the bus' tags, "" = none */
    char *cluster_secret_file;
    char *cluster_prefix;        /* of every Redis key and channel */
    double cluster_heartbeat;    /* seconds between heartbeats */
    double cluster_node_timeout; /* seconds of silence before a node counts as gone */
    int reuse_port;              /* SO_REUSEPORT: several processes on one port */
    /* admin: the operator's window (admin.h) */
    int admin_enabled;
    char *admin_token;      /* "" = none (then admin_enabled is refused); never logged */
    char *admin_token_file; /* the file it was read from, "" = none */
    char **admin_allow;     /* addresses and address/prefix, NULL-terminated */
    size_t nadmin_allow;

    char *plugin_dir;
    char *script_dir;
    char *web_dir;
    es_hook_entry *hooks;
    size_t nhooks;

    config_t cfg_; /* keeps the settings groups alive */
    int cfg_live_;
} es_config;

/*
 * Read and validate `path`. The defaults' folders are used when the file sets
 * no plugin_dir / script_dir / web_dir (relative ones in the file are taken
 * relative to the file's folder). defaults may be NULL.
 * Returns 0, or -1 with "FILE:LINE: message" in err.
 */
typedef struct es_config_defaults {
    const char *plugin_dir, *script_dir, *web_dir;
} es_config_defaults;

int es_config_load(es_config *c, const char *path, const es_config_defaults *defaults, char *err,
                   size_t errlen);
void es_config_free(es_config *c);

/* Parse cluster.redis: 1 when spec is "host:port" (host, port filled) or
 * "unix:/path" (host = the path, port 0); host/port may be NULL. */
int es_config_redis_address(const char *spec, char *host, size_t hostlen, int *port);

/* Apply the log settings (levels, format) to the log module. */
void es_config_apply_log(const es_config *c);

/* "FILE:LINE: " prefix for a setting (file falls back to the config's path). */
void es_config_where(const es_config *c, const config_setting_t *s, char *out, size_t outlen);

#endif
