#include "config_keys.h"

#include <string.h>

#include "util.h"

/* The enum keys store the index of the choice: each list is in enum order. */
_Static_assert(ES_METRICS_OFF == 0 && ES_METRICS_LOOPBACK == 1 && ES_METRICS_PUBLIC == 2,
               "metrics choices follow es_metrics_access");
_Static_assert(ES_LOOP_LIBEV == 0 && ES_LOOP_POLL == 1, "event_loop choices follow es_event_loop");
_Static_assert(ES_TAKEOVER_ALWAYS == 0 && ES_TAKEOVER_SAME_ADDRESS == 1 && ES_TAKEOVER_NEVER == 2,
               "takeover choices follow es_takeover");
_Static_assert(EARSHOT_LOG_DEBUG == 0 && EARSHOT_LOG_INFO == 1 && EARSHOT_LOG_WARN == 2 &&
                   EARSHOT_LOG_ERROR == 3,
               "level choices follow es_log_level");
_Static_assert(ES_LOG_TEXT == 0 && ES_LOG_JSON == 1, "format choices follow es_log_format");
_Static_assert(sizeof(es_metrics_access) == sizeof(int) && sizeof(es_event_loop) == sizeof(int) &&
                   sizeof(es_takeover) == sizeof(int) && sizeof(es_log_level) == sizeof(int) &&
                   sizeof(es_log_format) == sizeof(int),
               "enum keys are stored as int");

static const char *const metrics_choices[] = {"off", "loopback", "public", NULL};
static const char *const loop_choices[] = {"libev", "poll", NULL};
static const char *const takeover_choices[] = {"always", "same_address", "never", NULL};
static const char *const level_choices[] = {"debug", "info", "warn", "error", NULL};
static const char *const format_choices[] = {"text", "json", NULL};

static int same_tls(const es_config *a, const es_config *b)
{
    if (!a->tls_cert || !b->tls_cert)
        return !a->tls_cert == !b->tls_cert;
    return strcmp(a->tls_cert, b->tls_cert) == 0 && strcmp(a->tls_key, b->tls_key) == 0;
}

static int same_cluster_password(const es_config *a, const es_config *b)
{
    return strcmp(a->cluster_password, b->cluster_password) == 0 &&
           strcmp(a->cluster_password_file, b->cluster_password_file) == 0;
}

static int same_cluster_secret(const es_config *a, const es_config *b)
{
    return strcmp(a->cluster_secret, b->cluster_secret) == 0 &&
           strcmp(a->cluster_secret_file, b->cluster_secret_file) == 0;
}

#define AT(field) .offset = offsetof(es_config, field), .size = sizeof(((es_config *)0)->field)

const es_config_key es_config_keys[] = {
    /* server */
    {.name = "server.address", .type = ES_KEY_STRING, .values = "IP address",
     .def.s = "0.0.0.0", AT(address),
     .doc = "listen address; \"0.0.0.0\" is every IPv4 and IPv6 interface"},
    {.name = "server.port", .type = ES_KEY_INT, .lo = 0, .hi = 65535, .def.i = 8080, AT(port),
     .doc = "TCP port for WebSocket and plain HTTP; `--port` overrides it"},
    {.name = "server.max_frame_bytes", .type = ES_KEY_INT, .lo = 128, .hi = 16 * 1024 * 1024,
     .def.i = 65536, AT(max_frame_bytes), .reloadable = 1,
     .doc = "largest message a client may send: a larger one gets an Error and close 1009"},
    {.name = "server.send_queue_bytes", .type = ES_KEY_INT, .lo = 4096, .hi = 1LL << 30,
     .def.i = 1048576, AT(send_queue_bytes), .reloadable = 1,
     .doc = "bytes queued for a client that does not read before it is dropped (1008); "
            "at least twice `max_frame_bytes`"},
    {.name = "server.ping_interval", .type = ES_KEY_INT, .lo = 1, .hi = 3600, .def.i = 10,
     AT(ping_interval), .reloadable = 1,
     .doc = "seconds of silence before a WebSocket ping; as long again unanswered and the "
            "client is dropped (1001)"},
    {.name = "server.event_loop", .type = ES_KEY_ENUM, .choices = loop_choices, .def.s = "libev",
     AT(event_loop), .doc = "epoll through libev, or libwebsockets' own poll() loop"},
    {.name = "server.metrics", .type = ES_KEY_ENUM, .choices = metrics_choices,
     .def.s = "loopback", AT(metrics), .reloadable = 1,
     .doc = "who may GET /metrics: nobody (404), 127.0.0.0/8 and ::1, or anyone"},
    {.name = "server.behind_proxy", .type = ES_KEY_BOOL, .def.i = 0, AT(behind_proxy),
     .reloadable = 1, .doc = "take the client's address from the last X-Forwarded-For entry"},
    {.name = "server.web", .type = ES_KEY_BOOL, .def.i = 1, AT(web), .reloadable = 1,
     .doc = "serve `web_dir` (the demo page and the browser client) over plain HTTP"},
    {.name = "server.allowed_origins", .type = ES_KEY_LIST, .values = "strings",
     .def_text = "[ ]", .reloadable = 1, .load = es_config_load_origins,
     .doc = "browser origins allowed to connect, others get HTTP 403; empty: any"},
    {.name = "server.join_headers", .type = ES_KEY_LIST, .values = "header names",
     .def_text = "[ ]", .reloadable = 1, .load = es_config_load_join_headers,
     .doc = "request headers without a standard name (`x-game-token`) that join hooks also see"},
    {.name = "server.reuse_port", .type = ES_KEY_BOOL, .def.i = 0, AT(reuse_port),
     .doc = "let several earshot processes listen on the same port (SO_REUSEPORT); with "
            "`cluster`, one machine's cores each run a node"},
    {.name = "server.tls", .type = ES_KEY_GROUP, .values = "`cert`, `key`",
     .def_doc = "none (ws://)", .load = es_config_load_tls, .same = same_tls,
     .doc = "`{ cert = \"...\"; key = \"...\"; }` PEM files: serve wss://"},

    /* session */
    {.name = "session.takeover", .type = ES_KEY_ENUM, .choices = takeover_choices,
     .def.s = "same_address", AT(takeover), .reloadable = 1,
     .doc = "a client_id held by another connection: the newcomer replaces it always, only "
            "from the holder's address, or never"},
    {.name = "session.idle_timeout", .type = ES_KEY_NUMBER, .lo = 0, .hi = 86400, .def.d = 15.0,
     AT(idle_timeout), .reloadable = 1,
     .doc = "seconds without an update before a client is removed (\"timed out\"); 0 = off"},
    {.name = "session.refresh_interval", .type = ES_KEY_NUMBER, .lo = 0, .hi = 86400,
     .def.d = 5.0, AT(refresh_interval), .reloadable = 1,
     .doc = "seconds between NearbyPeers sent to every client unasked; 0 = off"},
    {.name = "session.max_peers", .type = ES_KEY_INT, .lo = 0, .hi = 1024, .def.i = 16,
     AT(max_peers), .reloadable = 1,
     .doc = "peers a client is matched with at most, the nearest first, after the match filters; "
            "0 = no cap"},
    {.name = "session.swap_margin", .type = ES_KEY_NUMBER, .lo = 0, .hi = 1e6, .def.d = 2.0,
     AT(swap_margin), .reloadable = 1,
     .doc = "units a newcomer must be nearer than a full client's farthest peer to take its "
            "place"},
    {.name = "session.resume_grace", .type = ES_KEY_NUMBER, .lo = 0, .hi = 3600, .def.d = 15.0,
     AT(resume_grace), .reloadable = 1,
     .doc = "seconds a resumable client's session is held after its connection is lost, for it "
            "to resume with its token; 0 = off (no token is sent)"},
    {.name = "session.resume_queue_messages", .type = ES_KEY_INT, .lo = 1, .hi = 1000000,
     .def.i = 64, AT(resume_queue_messages), .reloadable = 1,
     .doc = "relays kept for a held session; past it an offer or answer gets Error \"Client <id> "
            "is reconnecting\""},
    {.name = "session.resume_queue_bytes", .type = ES_KEY_INT, .lo = 1024, .hi = 1LL << 30,
     .def.i = 65536, AT(resume_queue_bytes), .reloadable = 1,
     .doc = "bytes of relays kept for a held session, the same way; at most half of "
            "`server.send_queue_bytes` in any case"},

    /* limits */
    {.name = "limits.max_connections", .type = ES_KEY_INT, .lo = 0, .hi = 10000000,
     .def.i = 10000, AT(max_connections), .reloadable = 1,
     .doc = "WebSocket connections in all; past it an upgrade gets HTTP 503; 0 = no limit"},
    {.name = "limits.max_connections_per_address", .type = ES_KEY_INT, .lo = 0, .hi = 10000000,
     .def.i = 256, AT(max_connections_per_address), .reloadable = 1,
     .doc = "WebSocket connections from one address; past it an upgrade gets HTTP 429; "
            "0 = no limit"},
    {.name = "limits.message_rate", .type = ES_KEY_NUMBER, .lo = 0, .hi = 1e6, .def.d = 50.0,
     AT(message_rate), .reloadable = 1,
     .doc = "messages per second per connection; each one over gets Error \"rate limited\"; "
            "0 = off"},
    {.name = "limits.message_burst", .type = ES_KEY_NUMBER, .lo = 1, .hi = 1e6, .def.d = 200.0,
     AT(message_burst), .reloadable = 1,
     .doc = "messages a connection may send at once before `message_rate` applies"},
    {.name = "limits.rate_limit_close_after", .type = ES_KEY_INT, .lo = 1, .hi = 1000000,
     .def.i = 100, AT(rate_limit_close_after), .reloadable = 1,
     .doc = "messages dropped within 10 s before the connection is closed (1008)"},
    {.name = "limits.handshake_timeout", .type = ES_KEY_NUMBER, .lo = 1, .hi = 3600,
     .def.d = 5.0, AT(handshake_timeout),
     .doc = "seconds a connection has to complete the WebSocket upgrade"},
    {.name = "limits.first_message_timeout", .type = ES_KEY_NUMBER, .lo = 0, .hi = 86400,
     .def.d = 10.0, AT(first_message_timeout), .reloadable = 1,
     .doc = "seconds from the upgrade to the first UpdatePosition (Error \"timed out\"); 0 = off"},

    /* log */
    {.name = "log.level", .type = ES_KEY_ENUM, .choices = level_choices, .def.s = "info",
     AT(log_level), .reloadable = 1,
     .doc = "the lowest level written; position updates log at debug only"},
    {.name = "log.format", .type = ES_KEY_ENUM, .choices = format_choices, .def.s = "text",
     AT(log_format), .reloadable = 1,
     .doc = "one readable line or one JSON object per event, on stderr"},
    {.name = "log.modules", .type = ES_KEY_GROUP, .values = "module = level",
     .def_text = "{ }", .reloadable = 1, .load = es_config_load_log_modules,
     .doc = "levels of single modules, overriding `level`: main, hooks, session, protocol, "
            "relay, lws, plugin, lua"},

    /* where things are */
    {.name = "plugin_dir", .type = ES_KEY_PATH, .values = "folder", .def.s = ".",
     .def_doc = "plugins/ next to the binary, else the installed lib/earshot/plugins",
     AT(plugin_dir), .from_defaults = offsetof(es_config_defaults, plugin_dir), .reloadable = 1,
     .load = es_config_load_dir, .doc = "where the `hooks` entries' `<name>.so` are found"},
    {.name = "script_dir", .type = ES_KEY_PATH, .values = "folder", .def.s = ".",
     .def_doc = "lua/ next to the binary, else the installed share/earshot/lua",
     AT(script_dir), .from_defaults = offsetof(es_config_defaults, script_dir), .reloadable = 1,
     .load = es_config_load_dir, .doc = "where the `hooks` entries' `<name>.lua` are found"},
    {.name = "web_dir", .type = ES_KEY_PATH, .values = "folder", .def.s = "",
     .def_doc = "web/ next to the binary, else the installed share/earshot/web", AT(web_dir),
     .from_defaults = offsetof(es_config_defaults, web_dir), .reloadable = 1,
     .load = es_config_load_dir, .doc = "the files served when `server.web` is true"},
    {.name = "hooks", .type = ES_KEY_LIST, .values = "groups", .def_doc = "none: nothing matches",
     .reloadable = 1, .load = es_config_load_hooks,
     .doc = "the plugins and Lua scripts of the hook chains, in order (the stock config: "
            "relay_guard, proximity)"},

    /* turn */
    {.name = "turn.secret", .type = ES_KEY_STRING, .values = "string", .def.s = "",
     AT(turn_secret), .reloadable = 1,
     .doc = "the TURN server's shared secret (coturn's `static-auth-secret`); never logged"},
    {.name = "turn.secret_file", .type = ES_KEY_STRING, .values = "file", .def.s = "",
     AT(turn_secret_file), .reloadable = 1, .load = es_config_load_turn_secret_file,
     .doc = "a file holding `secret` (one line), read at every load, instead of `secret`"},
    {.name = "turn.urls", .type = ES_KEY_LIST, .values = "`turn:`, `turns:` URLs",
     .def_text = "[ ]", .reloadable = 1, .load = es_config_load_turn_urls,
     .doc = "TURN servers sent in IceServers with credentials minted per client; needs a secret"},
    {.name = "turn.stun_urls", .type = ES_KEY_LIST, .values = "`stun:`, `stuns:` URLs",
     .def_text = "[ ]", .reloadable = 1, .load = es_config_load_stun_urls,
     .doc = "STUN servers sent in IceServers"},
    {.name = "turn.ttl", .type = ES_KEY_INT, .lo = 60, .hi = 604800, .def.i = 86400,
     AT(turn_ttl), .reloadable = 1,
     .doc = "seconds a minted TURN credential can make new allocations (its username's "
            "expiry)"},

    /* cluster */
    {.name = "cluster.enabled", .type = ES_KEY_BOOL, .def.i = 0, AT(cluster_enabled),
     .doc = "share one world with the other nodes on the same Redis (docs/deploy.md)"},
    {.name = "cluster.redis", .type = ES_KEY_STRING, .values = "`host:port`, `unix:/path`",
     .def.s = "127.0.0.1:6379", AT(cluster_redis), .doc = "the Redis server the nodes share"},
    {.name = "cluster.user", .type = ES_KEY_STRING, .values = "string", .def.s = "",
     AT(cluster_user), .doc = "Redis ACL user for AUTH; \"\" = the default user"},
    {.name = "cluster.password", .type = ES_KEY_STRING, .values = "string", .def.s = "",
     AT(cluster_password), .doc = "Redis AUTH password, \"\" = none; never logged"},
    {.name = "cluster.password_file", .type = ES_KEY_STRING, .values = "file", .def.s = "",
     AT(cluster_password_file), .load = es_config_load_cluster_password_file,
     .same = same_cluster_password,
     .doc = "read the Redis password from this file (one line) instead"},
    {.name = "cluster.node", .type = ES_KEY_STRING, .values = "`[A-Za-z0-9._:-]`, 1..64",
     .def.s = "", .def_doc = "\"\": the host name and the process id", AT(cluster_node),
     .doc = "this node's name, unique among the nodes: in logs, metrics and Redis keys"},
    {.name = "cluster.secret", .type = ES_KEY_STRING, .values = "string", .def.s = "",
     AT(cluster_secret),
     .doc = "a key every node shares: each bus message carries a tag made with it, and untagged "
            "or mistagged ones are refused; \"\" = none; never logged"},
    {.name = "cluster.secret_file", .type = ES_KEY_STRING, .values = "file", .def.s = "",
     AT(cluster_secret_file), .load = es_config_load_cluster_secret_file,
     .same = same_cluster_secret, .doc = "read `secret` from this file (one line) instead"},
    {.name = "cluster.prefix", .type = ES_KEY_STRING, .values = "string", .def.s = "earshot",
     AT(cluster_prefix), .doc = "prefix of every Redis key and channel: several worlds on one Redis"},
    {.name = "cluster.heartbeat_interval", .type = ES_KEY_NUMBER, .lo = 0.05, .hi = 10,
     .def.d = 0.25, AT(cluster_heartbeat), .doc = "seconds between a node's heartbeats"},
    {.name = "cluster.node_timeout", .type = ES_KEY_NUMBER, .lo = 0.2, .hi = 60, .def.d = 1.5,
     AT(cluster_node_timeout),
     .doc = "seconds without a node's heartbeat before its clients are let go or held; also "
            "how long Redis may stay silent before this node serves its own clients alone"},
    /* admin: the operator's window (/admin) */
    {.name = "admin.enabled", .type = ES_KEY_BOOL, .def.i = 0, AT(admin_enabled),
     .reloadable = 1,
     .doc = "serve the admin page and its API under /admin (off: 404, no admin surface)"},
    {.name = "admin.token", .type = ES_KEY_STRING, .values = "string", .def.s = "",
     AT(admin_token), .reloadable = 1,
     .doc = "the bearer token every /admin/api/ request must carry (16 bytes at least); "
            "never logged"},
    {.name = "admin.token_file", .type = ES_KEY_STRING, .values = "file", .def.s = "",
     AT(admin_token_file), .reloadable = 1, .load = es_config_load_admin_token_file,
     .doc = "a file holding `token` (one line), read at every load, instead of `token`"},
    {.name = "admin.allow", .type = ES_KEY_LIST, .values = "addresses, address/prefix",
     .def_text = "[ \"127.0.0.1\", \"::1\" ]", .reloadable = 1,
     .load = es_config_load_admin_allow,
     .doc = "who may reach /admin at all (others get 403), by the address the metrics "
            "check uses"},
};

const size_t es_config_nkeys = ES_ARRAY_LEN(es_config_keys);

const es_config_key *es_config_key_find(const char *name)
{
    for (size_t i = 0; i < es_config_nkeys; i++)
        if (strcmp(es_config_keys[i].name, name) == 0)
            return &es_config_keys[i];
    return NULL;
}

const char *es_config_key_leaf(const es_config_key *k)
{
    const char *dot = strchr(k->name, '.');
    return dot ? dot + 1 : k->name;
}

int es_config_key_default(const es_config_key *k, char *out, size_t outlen)
{
    out[0] = '\0';
    switch (k->type) {
    case ES_KEY_INT: snprintf(out, outlen, "%lld", k->def.i); return 0;
    case ES_KEY_BOOL: snprintf(out, outlen, "%s", k->def.i ? "true" : "false"); return 0;
    case ES_KEY_NUMBER:
        /* written as a float, as the stock config does: 15.0, 0.5 */
        if (k->def.d == (double)(long long)k->def.d)
            snprintf(out, outlen, "%.1f", k->def.d);
        else
            snprintf(out, outlen, "%.15g", k->def.d);
        return 0;
    case ES_KEY_STRING:
    case ES_KEY_ENUM: snprintf(out, outlen, "\"%s\"", k->def.s); return 0;
    case ES_KEY_LIST:
    case ES_KEY_GROUP:
    case ES_KEY_PATH:
        if (!k->def_text)
            return -1;
        snprintf(out, outlen, "%s", k->def_text);
        return 0;
    }
    return -1;
}

int es_config_key_same(const es_config_key *k, const es_config *a, const es_config *b)
{
    if (k->same)
        return k->same(a, b);
    const char *pa = (const char *)a + k->offset, *pb = (const char *)b + k->offset;
    if (k->type == ES_KEY_STRING || k->type == ES_KEY_PATH) {
        const char *sa, *sb;
        memcpy(&sa, pa, sizeof sa);
        memcpy(&sb, pb, sizeof sb);
        return sa && sb ? strcmp(sa, sb) == 0 : sa == sb;
    }
    return memcmp(pa, pb, k->size) == 0;
}

size_t es_config_restart_changes(const es_config *running, const es_config *loaded, char *out,
                                 size_t outlen)
{
    size_t n = 0, used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < es_config_nkeys; i++) {
        const es_config_key *k = &es_config_keys[i];
        if (k->reloadable || es_config_key_same(k, running, loaded))
            continue;
        int w = snprintf(out + used, outlen - used, "%s%s", n ? ", " : "", k->name);
        if (w > 0)
            used += (size_t)w < outlen - used ? (size_t)w : outlen - used - 1;
        n++;
    }
    return n;
}

static const char *const type_names[] = {
    [ES_KEY_INT] = "integer", [ES_KEY_NUMBER] = "number", [ES_KEY_BOOL] = "boolean",
    [ES_KEY_STRING] = "string", [ES_KEY_ENUM] = "string",  [ES_KEY_LIST] = "list",
    [ES_KEY_GROUP] = "group",   [ES_KEY_PATH] = "string",
};

/* The "values" cell: a range, the choices, or what an aggregate holds. */
static void values_cell(const es_config_key *k, char *out, size_t outlen)
{
    out[0] = '\0';
    switch (k->type) {
    case ES_KEY_INT:
    case ES_KEY_NUMBER: snprintf(out, outlen, "%.15g to %.15g", k->lo, k->hi); break;
    case ES_KEY_BOOL: snprintf(out, outlen, "`true`, `false`"); break;
    case ES_KEY_ENUM:
        for (const char *const *c = k->choices; *c; c++) {
            size_t used = strlen(out);
            snprintf(out + used, outlen - used, "%s`\"%s\"`", c == k->choices ? "" : ", ", *c);
        }
        break;
    case ES_KEY_STRING:
    case ES_KEY_LIST:
    case ES_KEY_GROUP:
    case ES_KEY_PATH: snprintf(out, outlen, "%s", k->values ? k->values : ""); break;
    }
}

void es_config_keys_markdown(FILE *out)
{
    fputs("| key | type | values | default | reload | what |\n"
          "|---|---|---|---|---|---|\n",
          out);
    for (size_t i = 0; i < es_config_nkeys; i++) {
        const es_config_key *k = &es_config_keys[i];
        char values[256], def[256];
        values_cell(k, values, sizeof values);
        if (es_config_key_default(k, def, sizeof def) == 0)
            fprintf(out, "| `%s` | %s | %s | `%s` | %s | %s |\n", k->name, type_names[k->type],
                    values, def, k->reloadable ? "yes" : "restart", k->doc);
        else
            fprintf(out, "| `%s` | %s | %s | %s | %s | %s |\n", k->name, type_names[k->type],
                    values, k->def_doc, k->reloadable ? "yes" : "restart", k->doc);
    }
}
