#include "cluster.h"

#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include <hiredis/adapters/libev.h>
#pragma GCC diagnostic pop
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "bus.h"
#include "dlist.h"
#include "log.h"
#include "util.h"

#define HASH_FUNCTION(keyptr, keylen, hashv) ((hashv) = (unsigned)es_hash_bytes((keyptr), (keylen)))
#define uthash_malloc(sz) es_xmalloc(sz)
#include <uthash.h>

#define BATCH_MAX (256 * 1024)   /* bytes of packets for one inbox before it is sent */
#define PENDING_FRAMES_MAX 64    /* frames kept while asking who holds an id */
#define PENDING_BYTES_MAX (256 * 1024)
#define BACKOFF_MIN 0.1
#define BACKOFF_MAX 2.0
#define KEY_MAX 256              /* a Redis key: prefix (64 at most), name, incarnation */
#define TAG_LEN 16               /* bytes of HMAC-SHA256 before a message (cluster.secret) */

/* ---- the nodes ------------------------------------------------------------- */

typedef struct cl_node {
    struct es_cluster *cl;
    char name[ES_BUS_NAME_MAX + 1];
    size_t name_len;
    uint64_t inc;
    double last_heard;
    int alive;
    int is_self;
    uint64_t left_inc; /* an incarnation that said goodbye: its late words are ignored */
    uint64_t hb_seq;   /* the last heartbeat's sequence number of this incarnation */
    char inbox[ES_BUS_NAME_MAX + 128];
    es_buf out; /* packets for its inbox, sent at the end of the pass */
    UT_hash_handle hh;
} cl_node;

/* What the cluster keeps for a session. */
enum { CL_LOCAL = 0, CL_REMOTE, CL_EDGE };

typedef struct cl_key {
    cl_node *node; /* REMOTE: the client's node; EDGE: this node */
    uint64_t conn; /* the connection's number on that node */
} cl_key;

typedef struct cl_sess {
    struct es_cluster *cl;
    es_session *s;
    int kind;
    cl_key key;
    int in_hash;
    cl_node *peer;  /* REMOTE: where the client is connected; EDGE: its map's node */
    /* EDGE, while asking Redis who holds the client's id */
    int waiting, inflight, dead, decided_local;
    /* EDGE: the serving node registered it (it sent a list, or it was
     * registered before a move); only such a client is re-registered
     * elsewhere when its node goes */
    int remote_registered;
    es_sendq pending;
    /* EDGE: a re-route that waits for the nodes to agree */
    char *retry_frame;
    size_t retry_len;
    /* owner side: Redis knows it holds the id; its record is due */
    int dir_ok, rec_dirty;
    char rec_token[ES_BUS_TOKEN_MAX + 1]; /* the token its record holds, "" = none yet */
    /* moved between nodes: its lists wait until the world has settled, and
     * the last one goes out only if it differs from what the client has */
    double settle_until;
    char *settled_list;
    size_t settled_len;
    es_dnode settle_node;
    char token_sent[ES_BUS_TOKEN_MAX + 1];
    int registered_sent; /* REMOTE: its node was told it is registered here (TOKEN) */
    es_dnode rec_node, all_node;
    UT_hash_handle hh;
    /* relays it sent to clients of other nodes: an answer comes by serial */
    uint64_t origin;
    int in_origins;
    UT_hash_handle hh_origin;
} cl_sess;

typedef struct queued {
    struct queued *next;
    size_t len;
    char data[];
} queued;

struct es_cluster {
    const es_config *cfg;
    es_core *core;
    struct ev_loop *ev;
    es_delivery local; /* the core's own delivery, wrapped */

    cl_node *nodes; /* by name, self included */
    cl_node *self;
    uint64_t inc;
    char hb_channel[128];
    char ids_key[KEY_MAX];
    char rec_key[KEY_MAX];

    cl_sess *by_key;
    cl_sess *origins; /* by serial: senders of relays to other nodes */
    es_dlist all_sess;
    es_dlist rec_dirty;
    es_dlist settling;

    redisAsyncContext *cmd, *sub;
    int subscribed;    /* both channels confirmed: heartbeats may go out */
    int up;            /* our own heartbeat came back: the world is shared */
    double last_echo;  /* when it last did */
    double connecting_since;
    double backoff;
    int want_down;     /* Redis was lost: go local-only at the next chance */
    int resync_due;
    int leaving;
    int destroying;
    int said_alone; /* the log says this node is alone (until Redis answers) */
    int restoring;     /* records being read: the inbox waits */
    queued *held_in, **held_in_tail;
    ev_timer hb_timer, retry_timer;
    double last_name_clash;
    double last_auth_warning;

    es_session **deferred; /* remote sessions closed by the core, freed at the flush */
    size_t ndeferred, deferred_cap;
    es_buf scratch;
    es_buf tagged; /* a message with its tag in front */
    es_buf macbuf; /* what a tag is made of */
    uint64_t hb_seq;

    es_cluster_stats stats;
};

static const char *NAME(const cl_node *n) { return n ? n->name : "-"; }

static cl_node *node_get(es_cluster *cl, const char *name, size_t len)
{
    cl_node *n = NULL;
    HASH_FIND(hh, cl->nodes, name, len, n);
    if (n)
        return n;
    n = es_xcalloc(1, sizeof *n);
    n->cl = cl;
    memcpy(n->name, name, len);
    n->name_len = len;
    snprintf(n->inbox, sizeof n->inbox, "%s:n:%s", cl->cfg->cluster_prefix, n->name);
    es_buf_init(&n->out);
    HASH_ADD(hh, cl->nodes, name, len, n);
    return n;
}

/* ---- who serves a map ---------------------------------------------------- */

static uint64_t score(const cl_node *n, int32_t game, int32_t map)
{
    uint64_t seed = (uint64_t)(uint32_t)game << 32 | (uint32_t)map;
    return es_bus_hash(n->name, n->name_len, seed);
}

/* The live node with the highest rendezvous hash for the map (ties by
 * name): every node computes the same from the same set of live nodes. */
static cl_node *owner_of(es_cluster *cl, const earshot_position *p)
{
    if (!cl->up)
        return cl->self;
    cl_node *best = cl->self;
    uint64_t best_score = score(cl->self, p->game_id, p->map_id);
    for (cl_node *n = cl->nodes; n; n = n->hh.next) {
        if (!n->alive || n->is_self)
            continue;
        uint64_t sc = score(n, p->game_id, p->map_id);
        if (sc > best_score || (sc == best_score && strcmp(n->name, best->name) > 0)) {
            best = n;
            best_score = sc;
        }
    }
    return best;
}

/* ---- Redis ----------------------------------------------------------------- */

static void redis_lost(es_cluster *cl, const char *why);

static void on_reply_checked(redisAsyncContext *ac, void *r, void *priv)
{
    es_cluster *cl = ac->data;
    redisReply *reply = r;
    (void)priv;
    if (cl && reply && reply->type == REDIS_REPLY_ERROR) {
        ES_LOG(EARSHOT_LOG_ERROR, "cluster", "Redis refused a command: %.*s", (int)reply->len,
               reply->str);
        if (strncmp(reply->str, "NOAUTH", 6) == 0 || strncmp(reply->str, "WRONGPASS", 9) == 0 ||
            strncmp(reply->str, "ERR AUTH", 8) == 0 || strncmp(reply->str, "NOPERM", 6) == 0)
            redis_lost(cl, "Redis refused the credentials");
    }
}

/* Send a command; argv strings with lengths. Nothing when Redis is away. */
static void command(es_cluster *cl, redisCallbackFn *cb, void *priv, int argc, const char **argv,
                    const size_t *lens)
{
    if (!cl->cmd)
        return;
    redisAsyncCommandArgv(cl->cmd, cb ? cb : on_reply_checked, priv, argc, argv, lens);
}

static void command3(es_cluster *cl, const char *a, const char *b, const char *c, size_t clen)
{
    const char *argv[3] = {a, b, c};
    size_t lens[3] = {strlen(a), strlen(b), clen};
    command(cl, NULL, NULL, 3, argv, lens);
}

static void auth(es_cluster *cl, redisAsyncContext *ac)
{
    const es_config *cfg = cl->cfg;
    if (!cfg->cluster_password[0])
        return;
    const char *argv[3];
    size_t lens[3];
    int argc = 0;
    argv[argc] = "AUTH", lens[argc++] = 4;
    if (cfg->cluster_user[0])
        argv[argc] = cfg->cluster_user, lens[argc++] = strlen(cfg->cluster_user);
    argv[argc] = cfg->cluster_password, lens[argc++] = strlen(cfg->cluster_password);
    redisAsyncCommandArgv(ac, on_reply_checked, NULL, argc, argv, lens);
}

static void on_message(redisAsyncContext *ac, void *r, void *priv);

static void on_connect(const redisAsyncContext *ac, int status)
{
    es_cluster *cl = ac->data;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this returns */
        if (ac == cl->cmd)
            cl->cmd = NULL;
        if (ac == cl->sub)
            cl->sub = NULL;
        redis_lost(cl, ac->errstr[0] ? ac->errstr : "cannot connect");
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    es_cluster *cl = ac->data;
    (void)status;
    if (!cl)
        return;
    if (ac == cl->cmd)
        cl->cmd = NULL;
    if (ac == cl->sub)
        cl->sub = NULL;
    redis_lost(cl, ac->errstr[0] ? ac->errstr : "connection closed");
}

static redisAsyncContext *open_context(es_cluster *cl)
{
    char host[256];
    int port = 0;
    es_config_redis_address(cl->cfg->cluster_redis, host, sizeof host, &port);
    redisAsyncContext *ac = port ? redisAsyncConnect(host, port) : redisAsyncConnectUnix(host);
    if (!ac)
        return NULL;
    if (ac->err) {
        ES_LOG(EARSHOT_LOG_WARN, "cluster", "Redis at %s: %s", cl->cfg->cluster_redis, ac->errstr);
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = cl;
    redisLibevAttach(cl->ev, ac);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    auth(cl, ac);
    return ac;
}

static void send_heartbeat(es_cluster *cl, unsigned flags);

static void redis_connect(es_cluster *cl)
{
    cl->stats.redis_connects++;
    cl->connecting_since = es_now();
    cl->cmd = open_context(cl);
    cl->sub = cl->cmd ? open_context(cl) : NULL;
    if (!cl->cmd || !cl->sub) {
        redis_lost(cl, "cannot connect");
        return;
    }
    /* No heartbeat before both subscriptions are confirmed: the others
     * start sending to this node when they hear one, and Redis drops what
     * is published to a channel nobody listens to yet. */
    cl->subscribed = 0;
    const char *argv[3] = {"SUBSCRIBE", cl->hb_channel, cl->self->inbox};
    size_t lens[3] = {9, strlen(cl->hb_channel), strlen(cl->self->inbox)};
    redisAsyncCommandArgv(cl->sub, on_message, NULL, 3, argv, lens);
}

static void on_retry(struct ev_loop *ev, ev_timer *w, int revents)
{
    (void)ev, (void)revents;
    es_cluster *cl = w->data;
    if (!cl->cmd && !cl->sub)
        redis_connect(cl);
}

/* The connection is gone or useless: drop both, serve alone until it is
 * back, and try again after a growing pause. */
static void redis_lost(es_cluster *cl, const char *why)
{
    redisAsyncContext *cmd = cl->cmd, *sub = cl->sub;
    cl->cmd = cl->sub = NULL;
    cl->subscribed = 0;
    if (cmd) {
        cmd->data = NULL;
        redisAsyncFree(cmd);
    }
    if (sub) {
        sub->data = NULL;
        redisAsyncFree(sub);
    }
    if (cl->up) {
        cl->stats.redis_losses++;
        ES_LOG(EARSHOT_LOG_WARN, "cluster",
               "Redis lost (%s): serving this node's clients alone, matching is local-only", why);
        cl->up = 0;
        cl->said_alone = 1;
        cl->want_down = 1; /* the clients move at the end of the pass */
    } else if (!cl->said_alone && !cl->leaving) {
        ES_LOG(EARSHOT_LOG_WARN, "cluster",
               "Redis at %s: %s: serving this node's clients alone, matching is local-only "
               "(trying again)",
               cl->cfg->cluster_redis, why);
        cl->said_alone = 1;
    }
    if (!ev_is_active(&cl->retry_timer) && !cl->leaving) {
        ev_timer_set(&cl->retry_timer, cl->backoff, 0);
        ev_timer_start(cl->ev, &cl->retry_timer);
        cl->backoff = cl->backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : cl->backoff * 2;
    }
}

/* ---- sending on the bus ---------------------------------------------------- */

/* The tag of a message on channel: HMAC-SHA256(secret, channel, 0, data). */
static void tag_of(es_cluster *cl, const char *channel, const char *data, size_t len,
                   unsigned char tag[32])
{
    es_buf *b = &cl->macbuf;
    es_buf_reset(b);
    es_buf_append(b, channel, strlen(channel) + 1);
    es_buf_append(b, data, len);
    unsigned int n = 0;
    HMAC(EVP_sha256(), cl->cfg->cluster_secret, (int)strlen(cl->cfg->cluster_secret),
         (const unsigned char *)es_buf_data(b), b->len, tag, &n);
}

static void publish_to(es_cluster *cl, const char *channel, const char *data, size_t len)
{
    if (!cl->cmd)
        return;
    if (cl->cfg->cluster_secret[0]) {
        unsigned char tag[32];
        tag_of(cl, channel, data, len, tag);
        es_buf_reset(&cl->tagged);
        es_buf_append(&cl->tagged, tag, TAG_LEN);
        es_buf_append(&cl->tagged, data, len);
        data = es_buf_data(&cl->tagged);
        len = cl->tagged.len;
    }
    const char *argv[3] = {"PUBLISH", channel, data};
    size_t lens[3] = {7, strlen(channel), len};
    command(cl, NULL, NULL, 3, argv, lens);
    cl->stats.bus_out_messages++;
    cl->stats.bus_out_bytes += len;
}

static void publish(es_cluster *cl, cl_node *n)
{
    if (n->out.len == 0)
        return;
    publish_to(cl, n->inbox, es_buf_data(&n->out), n->out.len);
    es_buf_reset(&n->out);
}

/* A packet was appended for n: count it, send early when the batch is big. */
static void sent_packet(es_cluster *cl, cl_node *n)
{
    cl->stats.bus_out_packets++;
    if (n->out.len >= BATCH_MAX)
        publish(cl, n);
}

static void send_heartbeat(es_cluster *cl, unsigned flags)
{
    es_buf_reset(&cl->scratch);
    size_t at = es_bus_begin(&cl->scratch, ES_BUS_HEARTBEAT, cl->self->name, cl->inc);
    es_bus_put_u8(&cl->scratch, flags);
    es_bus_put_u64(&cl->scratch, ++cl->hb_seq);
    es_bus_end(&cl->scratch, at);
    publish_to(cl, cl->hb_channel, es_buf_data(&cl->scratch), cl->scratch.len);
}

static void put_conn(es_cluster *cl, cl_node *to, es_bus_type type, uint64_t conn, const char *d,
                     size_t len)
{
    es_bus_put_conn_bytes(&to->out, type, cl->self->name, cl->inc, conn, d, len);
    sent_packet(cl, to);
}

/* An UpdatePosition for s's client where it stands (for moving it). */
static void synth_update(es_buf *b, const es_session *s)
{
    es_buf_reset(b);
    ES_BUF_APPEND_LIT(b, "{\"type\":\"UpdatePosition\",\"data\":{\"client_id\":");
    es_buf_append_json_string(b, s->id, s->id_len);
    char tail[160];
    int n = snprintf(tail, sizeof tail, ",\"game_id\":%d,\"map_id\":%d,\"x\":%d,\"y\":%d,\"channel\":%d}}",
                     s->view.pos.game_id, s->view.pos.map_id, s->view.pos.x, s->view.pos.y,
                     s->view.pos.channel);
    es_buf_append(b, tail, (size_t)n);
}

/* ---- the sessions' cluster data ------------------------------------------- */

static cl_sess *sess_of(es_cluster *cl, es_session *s, int kind)
{
    cl_sess *cs = s->cl;
    if (!cs) {
        cs = es_xcalloc(1, sizeof *cs);
        cs->cl = cl;
        cs->s = s;
        cs->kind = kind;
        es_sendq_init(&cs->pending);
        es_dlist_append(&cl->all_sess, &cs->all_node);
        s->cl = cs;
    }
    return cs;
}

static void hash_add(es_cluster *cl, cl_sess *cs, cl_node *node, uint64_t conn)
{
    if (cs->in_hash)
        return;
    memset(&cs->key, 0, sizeof cs->key);
    cs->key.node = node;
    cs->key.conn = conn;
    HASH_ADD(hh, cl->by_key, key, sizeof(cl_key), cs);
    cs->in_hash = 1;
}

static void hash_del(es_cluster *cl, cl_sess *cs)
{
    if (!cs->in_hash)
        return;
    HASH_DEL(cl->by_key, cs);
    cs->in_hash = 0;
}

static cl_sess *find(es_cluster *cl, cl_node *node, uint64_t conn)
{
    cl_key k;
    memset(&k, 0, sizeof k);
    k.node = node;
    k.conn = conn;
    cl_sess *cs = NULL;
    HASH_FIND(hh, cl->by_key, &k, sizeof k, cs);
    return cs;
}

static void sess_free(es_cluster *cl, cl_sess *cs)
{
    hash_del(cl, cs);
    if (cs->in_origins) {
        HASH_DELETE(hh_origin, cl->origins, cs);
        cs->in_origins = 0;
    }
    es_dlist_unlink(&cl->settling, &cs->settle_node);
    free(cs->settled_list);
    es_dlist_unlink(&cl->rec_dirty, &cs->rec_node);
    es_dlist_unlink(&cl->all_sess, &cs->all_node);
    es_sendq_clear(&cs->pending);
    free(cs->retry_frame);
    if (cs->s && cs->s->cl == cs)
        cs->s->cl = NULL;
    free(cs);
}

/* ---- the delivery: remote clients through the bus, the rest as before ---- */

static int is_peers(const char *p, size_t len)
{
    static const char lit[] = "{\"type\":\"NearbyPeers\",\"data\":[";
    return len >= sizeof lit - 1 && memcmp(p, lit, sizeof lit - 1) == 0;
}

/* The set a NearbyPeers lists, as a number that does not depend on the
 * order: earshot writes the list, so its strings are where they are. */
static uint64_t peers_sig(const char *p, size_t len)
{
    size_t i = sizeof "{\"type\":\"NearbyPeers\",\"data\":[" - 1;
    uint64_t sum = 0, count = 0;
    while (i < len && p[i] == '"') {
        size_t start = ++i;
        while (i < len && p[i] != '"')
            i += p[i] == '\\' ? 2 : 1;
        sum += es_bus_hash(p + start, i - start, 0);
        count++;
        i++;
        if (i < len && p[i] == ',')
            i++;
    }
    return sum ^ es_bus_hash(&count, sizeof count, 1);
}

/* To a connection of this node, remembering what list it has. reply: it
 * answers the client's request (a refresh): never held back, and newer
 * than any list held. */
static int deliver_local(es_cluster *cl, es_session *s, char *payload, size_t len, int reply)
{
    if (is_peers(payload, len)) {
        cl_sess *cs = s->cl;
        if (cs && cs->settle_until > 0 && reply) {
            free(cs->settled_list);
            cs->settled_list = NULL;
        } else if (cs && cs->settle_until > 0) {
            /* moving: only the last list of the move counts */
            free(cs->settled_list);
            cs->settled_list = es_xmalloc(len + ES_WIRE_HEADROOM);
            memcpy(cs->settled_list + ES_WIRE_HEADROOM, payload, len);
            cs->settled_len = len;
            return 0;
        }
        s->peers_sig = peers_sig(payload, len);
        s->peers_sig_ok = 1;
    }
    return es_deliver(&cl->local, s, payload, len);
}

/* s moves to another node's care (or back): its lists wait a moment. The
 * nodes see a node die a heartbeat apart, so the clients of a map arrive
 * at its new node one by one; a list sent at the first arrival would lack
 * the peers still on their way. */
static void settle(es_cluster *cl, es_session *s)
{
    cl_sess *cs = s->cl;
    double wait = 2 * cl->cfg->cluster_heartbeat + 0.1;
    cs->settle_until = es_now() + (wait < 0.5 ? 0.5 : wait);
    es_dlist_unlink(&cl->settling, &cs->settle_node);
    es_dlist_append(&cl->settling, &cs->settle_node);
}

static void settled(es_cluster *cl, double now)
{
    while (cl->settling.head) {
        cl_sess *cs = ES_CONTAINER_OF(cl->settling.head, cl_sess, settle_node);
        if (cs->settle_until > now)
            break;
        es_dlist_unlink(&cl->settling, &cs->settle_node);
        cs->settle_until = 0;
        char *list = cs->settled_list;
        cs->settled_list = NULL;
        es_session *s = cs->s;
        if (list && s && !s->closing) {
            char *payload = list + ES_WIRE_HEADROOM;
            if (s->peers_sig_ok && peers_sig(payload, cs->settled_len) == s->peers_sig)
                cl->stats.lists_suppressed++;
            else if (deliver_local(cl, s, payload, cs->settled_len, 0) != 0)
                es_core_close(cl->core, s, ES_CLOSE_POLICY);
        }
        free(list);
    }
}

static int cd_deliver(void *impl, es_session *s, char *payload, size_t len)
{
    es_cluster *cl = impl;
    if (!s->remote)
        return deliver_local(cl, s, payload, len, s->replying);
    cl_sess *cs = s->cl;
    if (cs && cs->peer && cs->in_hash) {
        es_buf *out = &cs->peer->out;
        size_t at = es_bus_begin(out, ES_BUS_OUT, cl->self->name, cl->inc);
        es_bus_put_u64(out, cs->key.conn);
        es_bus_put_u8(out, s->replying ? ES_BUS_F_REPLY : 0);
        es_bus_put_bytes(out, payload, len);
        es_bus_end(out, at);
        sent_packet(cl, cs->peer);
    }
    return 0;
}

static void cd_ping(void *impl, es_session *s)
{
    es_cluster *cl = impl;
    if (!s->remote)
        es_delivery_ping(&cl->local, s);
}

static void defer_close(es_cluster *cl, es_session *s)
{
    if (cl->ndeferred == cl->deferred_cap) {
        cl->deferred_cap = cl->deferred_cap ? cl->deferred_cap * 2 : 16;
        cl->deferred = es_xrealloc(cl->deferred, cl->deferred_cap * sizeof *cl->deferred);
    }
    cl->deferred[cl->ndeferred++] = s;
}

static void cd_close(void *impl, es_session *s, int code)
{
    es_cluster *cl = impl;
    if (!s->remote) {
        es_delivery_close(&cl->local, s, code);
        return;
    }
    cl_sess *cs = s->cl;
    if (cs && cs->peer && cs->in_hash) {
        es_buf_reset(&cl->scratch);
        size_t at = es_bus_begin(&cs->peer->out, ES_BUS_CLOSE, cl->self->name, cl->inc);
        es_bus_put_u64(&cs->peer->out, cs->key.conn);
        es_bus_put_u16(&cs->peer->out, (unsigned)code);
        es_bus_end(&cs->peer->out, at);
        sent_packet(cl, cs->peer);
    }
    if (cs)
        hash_del(cl, cs); /* nothing more comes from it or goes to it */
    defer_close(cl, s);
}

static size_t cd_discard(void *impl, es_session *s)
{
    es_cluster *cl = impl;
    return s->remote ? 0 : es_delivery_discard(&cl->local, s);
}

static void cd_set_queue_limit(void *impl, size_t bytes)
{
    es_cluster *cl = impl;
    if (cl->local.ops->set_queue_limit)
        cl->local.ops->set_queue_limit(cl->local.impl, bytes);
}

static void cd_destroy(void *impl)
{
    es_cluster *cl = impl;
    cl->local.ops->destroy(cl->local.impl);
    cl->local.ops = NULL;
}

static const es_delivery_ops cluster_delivery = {
    .name = "cluster",
    .deliver = cd_deliver,
    .ping = cd_ping,
    .close = cd_close,
    .discard = cd_discard,
    .set_queue_limit = cd_set_queue_limit,
    .destroy = cd_destroy,
};

/* ---- the edge: connections here whose map another node serves ------------ */

/* Send s's client to node t: its frames go there from now on. frame is the
 * UpdatePosition that registers it there. */
static void attach_remote(es_cluster *cl, es_session *s, cl_node *t, const char *frame, size_t len,
                          int reattach, const cl_node *lost)
{
    cl_sess *cs = sess_of(cl, s, CL_EDGE);
    cs->kind = CL_EDGE;
    cs->peer = t;
    hash_add(cl, cs, cl->self, s->serial);
    if (!s->fwd)
        es_core_forwarding(cl->core, s);
    unsigned flags = (reattach ? ES_BUS_F_REATTACH : 0) |
                     (s->resumable && s->token_len ? ES_BUS_F_RESUMABLE : 0) |
                     (s->session_owed ? ES_BUS_F_SESSION_OWED : 0);
    s->session_owed = 0; /* the node serving it sends it now */
    const es_join_info *ji = reattach ? NULL : s->join;
    es_bus_put_open(&t->out, cl->self->name, cl->inc, s->serial, flags, s->addr,
                    (flags & ES_BUS_F_RESUMABLE) ? s->token : "", ji ? ji->path : "/",
                    ji ? ji->query : "", ji ? ji->headers : NULL, ji ? ji->header_count : 0,
                    lost ? lost->name : "", frame, len);
    sent_packet(cl, t);
    free(s->join);
    s->join = NULL;
    cs->remote_registered = reattach;
    if (reattach) {
        if (s->peers_sig_ok)
            settle(cl, s); /* it has a list: the move must not show */
        cl->stats.moved_out++;
    }
}

/* s's client is served here again: it registers with frame, keeping its
 * token, and its first list is not sent if nothing changed for it. */
static void attach_local(es_cluster *cl, es_session *s, const char *frame, size_t len)
{
    cl_sess *cs = sess_of(cl, s, CL_LOCAL);
    hash_del(cl, cs);
    cs->kind = CL_LOCAL;
    cs->peer = NULL;
    es_core_unforward(cl->core, s);
    s->reattach = 1;
    if (s->peers_sig_ok)
        settle(cl, s);
    cs->decided_local = 1;
    cl->stats.moved_in++;
    es_core_replay(cl->core, s, frame, len);
    cs->decided_local = 0;
}

/* Remember where a forwarded client says it is, to move it later. */
static void track(es_session *s, const char *data, size_t len)
{
    if (!memmem(data, len, "UpdatePosition", 14))
        return;
    es_msg m;
    char err[ES_ERROR_MAX];
    if (es_protocol_parse(data, len, &m, err) != 0)
        return;
    /* the position only: the id is the one its serving node registered
     * (TOKEN), never what the client claims in a later frame */
    const cl_sess *cs = s->cl;
    if (m.type == ES_MSG_UPDATE_POSITION &&
        (!cs || !cs->remote_registered ||
         (m.client_id_len == s->id_len && !memcmp(m.client_id, s->id, s->id_len))))
        s->view.pos = m.pos;
    es_msg_release(&m);
}

/* Route s (a connection here) by the position in frame, or where it stands
 * when frame is NULL. lost: the node that served it and is gone. */
static void reroute(es_cluster *cl, es_session *s, const char *frame, size_t len, const cl_node *lost)
{
    cl_sess *cs = s->cl;
    if (!frame && cs && !cs->remote_registered) {
        /* never registered there (refused, or not yet answered): it is
         * this node's again, and its next UpdatePosition finds its way */
        hash_del(cl, cs);
        cs->peer = NULL;
        cs->kind = CL_LOCAL;
        es_core_unforward(cl->core, s);
        return;
    }
    if (!frame) {
        synth_update(&cl->scratch, s);
        frame = es_buf_data(&cl->scratch);
        len = cl->scratch.len;
    } else {
        track(s, frame, len);
    }
    cl_node *t = owner_of(cl, &s->view.pos);
    if (t == cl->self)
        attach_local(cl, s, frame, len);
    else
        attach_remote(cl, s, t, frame, len, 1, lost);
}

static void r_forward(void *ud, es_session *s, const char *data, size_t len)
{
    es_cluster *cl = ud;
    cl_sess *cs = s->cl;
    if (!cs)
        return;
    if (cs->waiting) {
        if (cs->pending.count >= PENDING_FRAMES_MAX ||
            es_sendq_push(&cs->pending, data, len, PENDING_BYTES_MAX) != 0)
            es_core_close(cl->core, s, ES_CLOSE_POLICY);
        return;
    }
    track(s, data, len);
    if (cs->peer)
        put_conn(cl, cs->peer, ES_BUS_FRAME, s->serial, data, len);
}

/* The answer to "who holds this id": send the waiting frames there. */
static void decide(es_cluster *cl, cl_sess *cs, cl_node *holder)
{
    es_session *s = cs->s;
    cs->waiting = 0;
    cl_node *t = holder && holder->alive ? holder : owner_of(cl, &s->view.pos);
    es_sendq q = cs->pending;
    es_sendq_init(&cs->pending);
    es_qmsg *first = es_sendq_peek(&q);
    if (!first) {
        es_core_unforward(cl->core, s);
        return;
    }
    if (t == cl->self) {
        es_core_unforward(cl->core, s);
        cs->decided_local = 1;
        es_core_replay(cl->core, s, es_qmsg_payload(first), first->len);
        cs->decided_local = 0;
        for (es_qmsg *m = first->next; m && s->cl == cs && !s->fwd; m = m->next)
            es_core_replay(cl->core, s, es_qmsg_payload(m), m->len);
    } else {
        attach_remote(cl, s, t, es_qmsg_payload(first), first->len, 0, NULL);
        for (es_qmsg *m = first->next; m; m = m->next)
            put_conn(cl, t, ES_BUS_FRAME, s->serial, es_qmsg_payload(m), m->len);
    }
    es_sendq_clear(&q);
}

/* ---- hooks of the core ---------------------------------------------------- */

static void lookup_reply(redisAsyncContext *ac, void *r, void *priv);

/* A question "who holds this id": whose tables it reads, in order; for a
 * relay, the relay. */
typedef struct lookup {
    cl_sess *cs;
    cl_node *asked[64];
    int relay;
    es_msg_type type;
    char target[ES_ID_MAX + 1];
    size_t target_len;
    char *payload;
    size_t payload_len;
} lookup;

/* Ask Redis which of the other live nodes holds id (lk->asked filled). */
static void ask_holder(es_cluster *cl, lookup *lk, const char *id, size_t id_len)
{
    static const char script[] =
        "for i = 1, #KEYS do if redis.call('HEXISTS', KEYS[i], ARGV[1]) == 1 then "
        "return i end end return 0";
    const char *argv[3 + 64 + 1];
    size_t lens[3 + 64 + 1];
    char keys[64][KEY_MAX];
    int nk = 0;
    for (cl_node *n = cl->nodes; n && nk < 64; n = n->hh.next) {
        if (!n->alive || n->is_self)
            continue;
        snprintf(keys[nk], sizeof keys[nk], "%.64s:ids:%s:%016llx", cl->cfg->cluster_prefix,
                 n->name, (unsigned long long)n->inc);
        lk->asked[nk] = n;
        nk++;
    }
    char nkeys[16];
    snprintf(nkeys, sizeof nkeys, "%d", nk);
    int argc = 0;
    argv[argc] = "EVAL", lens[argc++] = 4;
    argv[argc] = script, lens[argc++] = sizeof script - 1;
    argv[argc] = nkeys, lens[argc++] = strlen(nkeys);
    for (int i = 0; i < nk; i++)
        argv[argc] = keys[i], lens[argc++] = strlen(keys[i]);
    argv[argc] = id, lens[argc++] = id_len;
    lk->cs->inflight++;
    cl->stats.lookups++;
    redisAsyncCommandArgv(cl->cmd, lookup_reply, lk, argc, argv, lens);
}

static int others_alive(const es_cluster *cl)
{
    for (const cl_node *n = cl->nodes; n; n = n->hh.next)
        if (n->alive && !n->is_self)
            return 1;
    return 0;
}

static int r_route(void *ud, es_session *s, const es_msg *m, const char *data, size_t len)
{
    es_cluster *cl = ud;
    cl_sess *cs = s->cl;
    if (!cl->up || (cs && cs->decided_local))
        return 0;
    if (s->registered) {
        cl_node *t = owner_of(cl, &m->pos);
        if (t == cl->self)
            return 0;
        /* it walks into a map another node serves */
        es_core_detach(cl->core, s);
        attach_remote(cl, s, t, data, len, 1, NULL);
        return 1;
    }
    /* Not registered: its id may be held on another node (a takeover, a
     * resume): ask Redis which, unless no other node is alive. */
    s->view.pos = m->pos;
    memcpy(s->id, m->client_id, m->client_id_len);
    s->id[m->client_id_len] = '\0';
    s->id_len = m->client_id_len;
    if (!others_alive(cl) || !cl->cmd)
        return 0;
    cs = sess_of(cl, s, CL_EDGE);
    cs->kind = CL_EDGE;
    es_sendq_clear(&cs->pending);
    if (es_sendq_push(&cs->pending, data, len, PENDING_BYTES_MAX + len) != 0)
        return 0;
    cs->waiting = 1;
    es_core_forwarding(cl->core, s);
    lookup *lk = es_xcalloc(1, sizeof *lk);
    lk->cs = cs;
    ask_holder(cl, lk, s->id, s->id_len);
    return 1;
}

/* Where the target of a relay is: send it there, or tell the sender. */
static void relay_reply(es_cluster *cl, lookup *lk, redisReply *reply)
{
    es_session *s = lk->cs->s;
    cl_node *holder = NULL;
    if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer >= 1 &&
        reply->integer <= 64)
        holder = lk->asked[reply->integer - 1];
    if (!holder || !holder->alive || cl->destroying) {
        if (cl->destroying)
            return;
        char text[ES_ERROR_MAX];
        snprintf(text, sizeof text, "Client %.*s not found", (int)lk->target_len, lk->target);
        es_core_relay_failed(cl->core, s, lk->type, ES_ERR_UNKNOWN_TARGET, text, 0);
        return;
    }
    cl_sess *cs = lk->cs;
    if (!cs->in_origins) {
        cs->origin = s->serial;
        HASH_ADD(hh_origin, cl->origins, origin, sizeof cs->origin, cs);
        cs->in_origins = 1;
    }
    es_buf *out = &holder->out;
    size_t at = es_bus_begin(out, ES_BUS_RELAY, cl->self->name, cl->inc);
    es_bus_put_u64(out, s->serial);
    es_bus_put_u8(out, (unsigned)lk->type);
    es_bus_put_str(out, s->id, s->id_len);
    es_bus_put_str(out, s->addr, strlen(s->addr));
    const int32_t pos[5] = {s->view.pos.game_id, s->view.pos.map_id, s->view.pos.x,
                            s->view.pos.y, s->view.pos.channel};
    for (int i = 0; i < 5; i++)
        es_bus_put_u32(out, (uint32_t)pos[i]);
    es_bus_put_str(out, lk->target, lk->target_len);
    es_bus_put_bytes(out, lk->payload, lk->payload_len);
    es_bus_end(out, at);
    sent_packet(cl, holder);
}

static void lookup_reply(redisAsyncContext *ac, void *r, void *priv)
{
    (void)ac;
    lookup *lk = priv;
    cl_sess *cs = lk->cs;
    redisReply *reply = r;
    es_cluster *cl = cs->cl;
    cs->inflight--;
    if (lk->relay && !cs->dead) {
        relay_reply(cl, lk, reply);
        free(lk->payload);
        free(lk);
        return;
    }
    if (lk->relay)
        free(lk->payload);
    if (cs->dead || !cs->waiting) {
        free(lk);
        if (cs->dead && cs->inflight == 0)
            free(cs);
        return;
    }
    cl_node *holder = NULL;
    if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer >= 1 &&
        reply->integer <= 64)
        holder = lk->asked[reply->integer - 1]; /* nodes live as long as the cluster */
    free(lk);
    decide(cl, cs, holder);
}

static void write_record(es_cluster *cl, es_session *s, const char *edge);

static int r_relay(void *ud, es_session *s, const es_msg *m)
{
    es_cluster *cl = ud;
    if (!cl->up || !cl->cmd || !others_alive(cl) || m->target_id_len > ES_ID_MAX)
        return 0;
    cl_sess *cs = sess_of(cl, s, s->remote ? CL_REMOTE : CL_LOCAL);
    lookup *lk = es_xcalloc(1, sizeof *lk);
    lk->cs = cs;
    lk->relay = 1;
    lk->type = m->type;
    memcpy(lk->target, m->target_id, m->target_id_len);
    lk->target_len = m->target_id_len;
    lk->payload = es_xmalloc(m->payload_len + 1);
    memcpy(lk->payload, m->payload, m->payload_len);
    lk->payload_len = m->payload_len;
    ask_holder(cl, lk, m->target_id, m->target_id_len);
    return 1;
}

static void r_placed(void *ud, es_session *s)
{
    es_cluster *cl = ud;
    if (s->gone) {
        /* held, its connection gone: nothing to keep per session; whoever
         * serves its map next holds it if this node dies */
        if (cl->up) {
            const char *argv[4] = {"HSET", cl->ids_key, s->id, "1"};
            size_t lens[4] = {4, strlen(cl->ids_key), s->id_len, 1};
            command(cl, NULL, NULL, 4, argv, lens);
            if (s->resumable && s->token_len)
                write_record(cl, s, "-");
        }
        return;
    }
    cl_sess *cs = sess_of(cl, s, s->remote ? CL_REMOTE : CL_LOCAL);
    if (!cl->up)
        return;
    if (!cs->dir_ok) {
        const char *argv[4] = {"HSET", cl->ids_key, s->id, "1"};
        size_t lens[4] = {4, strlen(cl->ids_key), s->id_len, 1};
        command(cl, NULL, NULL, 4, argv, lens);
        cs->dir_ok = 1;
    }
    if (s->remote && cs->peer && cs->in_hash &&
        (!cs->registered_sent || strcmp(cs->token_sent, s->token) != 0)) {
        /* its node learns the id it is registered as, and its token: what
         * it moves it with, should this node go */
        size_t tl = s->resumable ? s->token_len : 0;
        size_t at = es_bus_begin(&cs->peer->out, ES_BUS_TOKEN, cl->self->name, cl->inc);
        es_bus_put_u64(&cs->peer->out, cs->key.conn);
        es_bus_put_str(&cs->peer->out, s->id, s->id_len);
        es_bus_put_str(&cs->peer->out, s->token, tl);
        es_bus_end(&cs->peer->out, at);
        sent_packet(cl, cs->peer);
        snprintf(cs->token_sent, sizeof cs->token_sent, "%s", s->token);
        cs->registered_sent = 1;
    }
    if (s->resumable && s->token_len && strcmp(cs->rec_token, s->token) != 0) {
        /* a new client, or a new token: at once, for its node may die
         * before the next heartbeat */
        write_record(cl, s, cs->kind == CL_REMOTE ? NAME(cs->peer) : cl->self->name);
        snprintf(cs->rec_token, sizeof cs->rec_token, "%s", s->token);
    } else if (s->resumable && !cs->rec_dirty) {
        cs->rec_dirty = 1; /* moves: once per heartbeat */
        es_dlist_append(&cl->rec_dirty, &cs->rec_node);
    }
}

static void r_left(void *ud, es_session *s, earshot_leave_reason why)
{
    es_cluster *cl = ud;
    (void)why;
    cl_sess *cs = s->cl;
    if (cs) {
        cs->dir_ok = 0;
        cs->rec_token[0] = '\0';
        if (cs->rec_dirty) {
            cs->rec_dirty = 0;
            es_dlist_unlink(&cl->rec_dirty, &cs->rec_node);
        }
    }
    if (!cl->up || cl->leaving)
        return; /* stopping: the records stay for the nodes that hold them */
    const char *argv[3] = {"HDEL", cl->ids_key, s->id};
    size_t lens[3] = {4, strlen(cl->ids_key), s->id_len};
    command(cl, NULL, NULL, 3, argv, lens);
    if (s->resumable) {
        argv[1] = cl->rec_key;
        lens[1] = strlen(cl->rec_key);
        command(cl, NULL, NULL, 3, argv, lens);
    }
}

static void r_gone(void *ud, es_session *s, int hold)
{
    es_cluster *cl = ud;
    cl_sess *cs = s->cl;
    if (!cs)
        return;
    if (cs->kind == CL_EDGE && cs->peer && cs->in_hash && !cs->waiting) {
        size_t at = es_bus_begin(&cs->peer->out, ES_BUS_CLOSED, cl->self->name, cl->inc);
        es_bus_put_u64(&cs->peer->out, s->serial);
        es_bus_put_u8(&cs->peer->out, hold ? ES_BUS_F_HOLD : 0);
        es_bus_end(&cs->peer->out, at);
        sent_packet(cl, cs->peer);
    }
    if (cs->inflight > 0) {
        /* a lookup reply is on its way: it frees the rest */
        hash_del(cl, cs);
        if (cs->in_origins) {
            HASH_DELETE(hh_origin, cl->origins, cs);
            cs->in_origins = 0;
        }
        es_dlist_unlink(&cl->rec_dirty, &cs->rec_node);
        es_dlist_unlink(&cl->all_sess, &cs->all_node);
        es_sendq_clear(&cs->pending);
        s->cl = NULL;
        cs->s = NULL;
        cs->dead = 1;
        return;
    }
    sess_free(cl, cs);
}

static const char *r_node_of(void *ud, const es_session *s)
{
    es_cluster *cl = ud;
    if (s->gone)
        return "";
    if (!s->remote)
        return cl->self->name;
    const cl_sess *cs = s->cl;
    return cs && cs->peer ? cs->peer->name : "";
}

static const es_router_ops router_ops = {
    .node_of = r_node_of,
    .forward = r_forward,
    .route = r_route,
    .placed = r_placed,
    .left = r_left,
    .gone = r_gone,
    .relay = r_relay,
};

/* ---- the owner: clients of its maps connected to other nodes ------------- */

/* The join info an OPEN carries, in one allocation like the transport's. */
static es_join_info *make_join(const es_bus_msg *m)
{
    size_t need = m->path.len + 1 + m->query.len + 1;
    for (size_t i = 0; i < m->nheaders; i++)
        need += m->header_names[i].len + 1 + m->header_values[i].len + 1;
    es_join_info *ji = es_xmalloc(sizeof *ji + m->nheaders * sizeof(earshot_header) + need);
    earshot_header *h = (earshot_header *)(ji + 1);
    char *p = (char *)(h + m->nheaders);
#define COPY(dst, str)                                                                             \
    do {                                                                                           \
        memcpy(p, (str).p, (str).len);                                                             \
        p[(str).len] = '\0';                                                                       \
        (dst) = p;                                                                                 \
        p += (str).len + 1;                                                                        \
    } while (0)
    COPY(ji->path, m->path);
    COPY(ji->query, m->query);
    for (size_t i = 0; i < m->nheaders; i++) {
        COPY(h[i].name, m->header_names[i]);
        COPY(h[i].value, m->header_values[i]);
    }
#undef COPY
    if (!ji->path[0])
        ji->path = "/";
    ji->headers = h;
    ji->header_count = m->nheaders;
    return ji;
}

/* Strings from the bus are not NUL-terminated, and a NUL inside is refused. */
static int copy_str(char *dst, size_t cap, es_bus_str s)
{
    if (s.len >= cap || memchr(s.p, '\0', s.len))
        return -1;
    memcpy(dst, s.p, s.len);
    dst[s.len] = '\0';
    return 0;
}

/* The client of remote cs now stands in a map another node serves: its
 * node re-registers it there. */
static void rehome(es_cluster *cl, cl_sess *cs, const char *frame, size_t len)
{
    es_session *s = cs->s;
    cl_node *edge = cs->peer;
    if (edge && cs->in_hash) {
        int resumable = s->resumable && s->token_len;
        size_t at = es_bus_begin(&edge->out, ES_BUS_REHOME, cl->self->name, cl->inc);
        es_bus_put_u64(&edge->out, cs->key.conn);
        es_bus_put_u8(&edge->out, (resumable ? ES_BUS_F_RESUMABLE : 0) |
                                      (s->session_owed ? ES_BUS_F_SESSION_OWED : 0));
        es_bus_put_str(&edge->out, resumable ? s->token : "", resumable ? s->token_len : 0);
        es_bus_put_bytes(&edge->out, "", 0); /* its node moves it from where it stands */
        (void)frame, (void)len;
        es_bus_end(&edge->out, at);
        sent_packet(cl, edge);
    }
    hash_del(cl, cs);
    cl->stats.moved_out++;
    es_core_detach(cl->core, s);
    es_core_closed(cl->core, s);
}

static void check_placed(es_cluster *cl, cl_sess *cs, const char *frame, size_t len)
{
    es_session *s = cs->s;
    if (s->registered && !s->closing && cl->up && owner_of(cl, &s->view.pos) != cl->self)
        rehome(cl, cs, frame, len);
}

static void on_open(es_cluster *cl, cl_node *from, const es_bus_msg *m)
{
    cl_sess *cs = find(cl, from, m->conn);
    if (cs) { /* sent twice while the nodes changed: it is here already */
        es_core_replay(cl->core, cs->s, m->data.p, m->data.len);
        if (cs->s->cl == cs && cs->in_hash)
            check_placed(cl, cs, m->data.p, m->data.len);
        return;
    }
    char addr[ES_BUS_ADDR_MAX + 1], token[ES_BUS_TOKEN_MAX + 1];
    if (copy_str(addr, sizeof addr, m->addr) || copy_str(token, sizeof token, m->token)) {
        cl->stats.bus_rejected[ES_BUS_ERR_FIELD]++;
        return;
    }
    int reattach = (m->flags & ES_BUS_F_REATTACH) != 0;
    es_join_info *ji = reattach ? NULL : make_join(m);
    es_session *s = es_core_open_remote(cl->core, NULL, addr, ji);
    cs = sess_of(cl, s, CL_REMOTE);
    cs->kind = CL_REMOTE;
    cs->peer = from;
    hash_add(cl, cs, from, m->conn);
    if (reattach) {
        s->reattach = 1;
        s->resumable = (m->flags & ES_BUS_F_RESUMABLE) && m->token.len > 0;
        s->session_owed = s->resumable && (m->flags & ES_BUS_F_SESSION_OWED);
        memcpy(s->token, token, m->token.len + 1);
        s->token_len = m->token.len;
        snprintf(cs->token_sent, sizeof cs->token_sent, "%s", token);
        cl->stats.moved_in++;
    }
    es_core_replay(cl->core, s, m->data.p, m->data.len);
    if (s->cl == cs && cs->in_hash)
        check_placed(cl, cs, m->data.p, m->data.len);
}

static void on_frame(es_cluster *cl, cl_node *from, const es_bus_msg *m)
{
    cl_sess *cs = find(cl, from, m->conn);
    if (!cs) {
        /* not (or no longer) served here: its node re-routes it */
        size_t at = es_bus_begin(&from->out, ES_BUS_REHOME, cl->self->name, cl->inc);
        es_bus_put_u64(&from->out, m->conn);
        es_bus_put_u8(&from->out, 0);
        es_bus_put_str(&from->out, "", 0);
        es_bus_put_bytes(&from->out, "", 0);
        es_bus_end(&from->out, at);
        sent_packet(cl, from);
        return;
    }
    es_core_replay(cl->core, cs->s, m->data.p, m->data.len);
    if (cs->s->cl == cs && cs->in_hash)
        check_placed(cl, cs, m->data.p, m->data.len);
}

static void on_closed(es_cluster *cl, cl_node *from, const es_bus_msg *m)
{
    cl_sess *cs = find(cl, from, m->conn);
    if (!cs)
        return;
    es_session *s = cs->s;
    hash_del(cl, cs);
    if (!(m->flags & ES_BUS_F_HOLD))
        es_core_goodbye(cl->core, s);
    es_core_closed(cl->core, s);
}

/* A relay from a client of node `from` to one registered here. */
static void on_relay(es_cluster *cl, cl_node *from, const es_bus_msg *m)
{
    char id[ES_ID_MAX + 1], addr[ES_BUS_ADDR_MAX + 1], text[ES_ERROR_MAX];
    if (copy_str(id, sizeof id, m->sender) || copy_str(addr, sizeof addr, m->addr) ||
        !es_protocol_id_valid(m->sender.p, m->sender.len) ||
        !es_protocol_id_valid(m->target.p, m->target.len)) {
        cl->stats.bus_rejected[ES_BUS_ERR_FIELD]++;
        return;
    }
    earshot_client sender = {
        .client_id = id,
        .address = addr,
        .pos = {m->pos[0], m->pos[1], m->pos[2], m->pos[3], m->pos[4]},
    };
    int err = es_core_relay_from(cl->core, &sender, (es_msg_type)m->relay, m->target.p,
                                 m->target.len, m->data.p, m->data.len, text);
    if (!err)
        return;
    size_t at = es_bus_begin(&from->out, ES_BUS_RELAY_FAIL, cl->self->name, cl->inc);
    es_bus_put_u64(&from->out, m->conn);
    es_bus_put_u8(&from->out, m->relay);
    es_bus_put_u8(&from->out, (unsigned)err);
    es_bus_put_str(&from->out, text, strlen(text));
    es_bus_end(&from->out, at);
    sent_packet(cl, from);
}

static void on_relay_fail(es_cluster *cl, const es_bus_msg *m)
{
    cl_sess *cs = NULL;
    uint64_t serial = m->conn;
    HASH_FIND(hh_origin, cl->origins, &serial, sizeof serial, cs);
    char text[ES_ERROR_MAX];
    if (!cs || !cs->s || copy_str(text, sizeof text, m->text) ||
        !es_utf8_valid(text, m->text.len))
        return;
    es_core_relay_failed(cl->core, cs->s, (es_msg_type)m->relay, (int)m->code, text, 1);
}

/* ---- the edge: what the serving node sends back -------------------------- */

static void on_edge(es_cluster *cl, cl_node *from, const es_bus_msg *m)
{
    cl_sess *cs = find(cl, cl->self, m->conn);
    if (!cs || cs->peer != from || !cs->s || cs->s->closing)
        return; /* from a node that no longer serves it: late, and ignored */
    es_session *s = cs->s;
    switch (m->type) {
    case ES_BUS_OUT:
        es_buf_reset(&cl->scratch);
        es_buf_append(&cl->scratch, m->data.p, m->data.len);
        if (deliver_local(cl, s, es_buf_data(&cl->scratch), cl->scratch.len,
                          (m->flags & ES_BUS_F_REPLY) != 0) != 0)
            es_core_close(cl->core, s, ES_CLOSE_POLICY); /* it does not read */
        break;
    case ES_BUS_CLOSE:
        hash_del(cl, cs); /* its node knows: no CLOSED goes back */
        cs->peer = NULL;
        es_core_close(cl->core, s, (int)m->code);
        break;
    case ES_BUS_TOKEN:
        /* registered there, as this id: the only id it is ever moved with */
        if (!es_protocol_id_valid(m->sender.p, m->sender.len) ||
            copy_str(s->token, sizeof s->token, m->token) != 0) {
            cl->stats.bus_rejected[ES_BUS_ERR_FIELD]++;
            break;
        }
        memcpy(s->id, m->sender.p, m->sender.len);
        s->id[m->sender.len] = '\0';
        s->id_len = m->sender.len;
        s->token_len = m->token.len;
        s->resumable = m->token.len > 0;
        cs->remote_registered = 1;
        break;
    case ES_BUS_REHOME:
        if (m->token.len && copy_str(s->token, sizeof s->token, m->token) == 0) {
            s->token_len = m->token.len;
            s->resumable = 1;
            s->session_owed = (m->flags & ES_BUS_F_SESSION_OWED) != 0;
        }
        if (owner_of(cl, &s->view.pos) == from) {
            /* the nodes do not agree yet on who serves the map: once more
             * at the next heartbeat */
            free(cs->retry_frame);
            cs->retry_frame = NULL;
            cs->retry_len = 0;
            if (m->data.len) {
                cs->retry_frame = es_xmalloc(m->data.len);
                memcpy(cs->retry_frame, m->data.p, m->data.len);
                cs->retry_len = m->data.len;
            } else {
                cs->retry_frame = es_xmalloc(1);
            }
            break;
        }
        reroute(cl, s, NULL, 0, NULL); /* from where it stands, as the id it holds */
        break;
    default:
        break;
    }
}

/* ---- the nodes coming and going -------------------------------------------- */

static void restore_from(es_cluster *cl, cl_node *dead);

/* n is gone (died, or said goodbye). Its clients here leave, or are held
 * when they may resume (hold). */
static void node_lost(es_cluster *cl, cl_node *n, int hold)
{
    if (!n->alive)
        return;
    n->alive = 0;
    cl->stats.nodes_lost++;
    cl->resync_due = 1;
    ES_LOG(EARSHOT_LOG_WARN, "cluster", "node %s is gone: its clients %s", n->name,
           hold ? "leave, or are held for a resume" : "leave");
    size_t cap = 64, cnt = 0;
    es_session **list = es_xmalloc(cap * sizeof *list);
    for (cl_sess *cs = cl->by_key; cs; cs = cs->hh.next) {
        if (cs->kind != CL_REMOTE || cs->peer != n)
            continue;
        if (cnt == cap)
            list = es_xrealloc(list, (cap *= 2) * sizeof *list);
        list[cnt++] = cs->s;
    }
    for (size_t i = 0; i < cnt; i++) {
        cl_sess *cs = list[i]->cl;
        if (cs)
            hash_del(cl, cs);
        if (!hold)
            es_core_goodbye(cl->core, list[i]);
        es_core_closed(cl->core, list[i]);
    }
    free(list);
    if (hold && cl->up)
        restore_from(cl, n);
}

/* Any packet from n with incarnation inc: is it alive and current? */
static int heard(es_cluster *cl, cl_node *n, const es_bus_msg *m)
{
    uint64_t inc = m->incarnation;
    if (n->left_inc && inc == n->left_inc) {
        cl->stats.bus_rejected[ES_BUS_ERR_STALE]++;
        return 0;
    }
    if (n->inc != inc) {
        if (n->alive)
            node_lost(cl, n, 1); /* restarted: the one before is gone */
        n->inc = inc;
        n->hb_seq = 0;
    }
    if (m->type == ES_BUS_HEARTBEAT) {
        if (m->seq <= n->hb_seq) {
            cl->stats.bus_rejected[ES_BUS_ERR_STALE]++; /* replayed */
            return 0;
        }
        n->hb_seq = m->seq;
    }
    es_bus_type type = m->type;
    unsigned flags = m->flags;
    if (type == ES_BUS_HEARTBEAT && (flags & ES_BUS_F_LEAVING)) {
        n->left_inc = inc;
        node_lost(cl, n, 1);
        return 0;
    }
    n->last_heard = es_now();
    if (!n->alive) {
        n->alive = 1;
        cl->stats.nodes_joined++;
        cl->resync_due = 1;
        ES_LOG(EARSHOT_LOG_INFO, "cluster", "node %s joined", n->name);
    }
    return 1;
}

static void became_up(es_cluster *cl);

static void handle_bus(es_cluster *cl, const char *p, size_t n, int on_hb);

static void hold_back(es_cluster *cl, const char *p, size_t n)
{
    queued *q = es_xmalloc(sizeof *q + n);
    q->next = NULL;
    q->len = n;
    memcpy(q->data, p, n);
    *cl->held_in_tail = q;
    cl->held_in_tail = &q->next;
}

static void handle_bus(es_cluster *cl, const char *p, size_t n, int on_hb)
{
    cl->stats.bus_in_messages++;
    cl->stats.bus_in_bytes += n;
    while (n > 0) {
        if (cl->restoring && !on_hb) {
            hold_back(cl, p, n); /* after the records are in */
            return;
        }
        es_bus_msg m;
        size_t used;
        es_bus_error err = es_bus_decode(p, n, &m, &used);
        if (err != ES_BUS_OK) {
            cl->stats.bus_rejected[err]++;
            ES_LOG(EARSHOT_LOG_WARN, "cluster", "bus message refused (%s), %zu bytes dropped",
                   es_bus_error_names[err], n);
            return;
        }
        cl->stats.bus_in_packets++;
        p += used;
        n -= used;
        if ((m.type == ES_BUS_HEARTBEAT) != (on_hb != 0)) {
            cl->stats.bus_rejected[ES_BUS_ERR_TYPE]++;
            continue;
        }
        if (m.node.len == cl->self->name_len && memcmp(m.node.p, cl->self->name, m.node.len) == 0) {
            if (m.incarnation == cl->inc) {
                if (m.type == ES_BUS_HEARTBEAT && !cl->leaving) {
                    cl->last_echo = es_now();
                    if (!cl->up)
                        became_up(cl);
                }
            } else if (es_now() - cl->last_name_clash > 10) {
                cl->last_name_clash = es_now();
                ES_LOG(EARSHOT_LOG_ERROR, "cluster",
                       "another node is also named %s: give each node its own cluster.node",
                       cl->self->name);
            }
            continue;
        }
        if (!cl->up)
            continue;
        cl_node *from = node_get(cl, m.node.p, m.node.len);
        if (!heard(cl, from, &m))
            continue;
        switch (m.type) {
        case ES_BUS_HEARTBEAT: break;
        case ES_BUS_OPEN:
            if (m.lost_owner.len) {
                cl_node *lost = NULL;
                HASH_FIND(hh, cl->nodes, m.lost_owner.p, m.lost_owner.len, lost);
                if (lost && lost->alive && !lost->is_self)
                    node_lost(cl, lost, 1); /* its node saw it die first */
                if (cl->restoring) {
                    /* this OPEN and the rest wait for the records */
                    hold_back(cl, p - used, n + used);
                    return;
                }
            }
            on_open(cl, from, &m);
            break;
        case ES_BUS_FRAME: on_frame(cl, from, &m); break;
        case ES_BUS_RELAY: on_relay(cl, from, &m); break;
        case ES_BUS_RELAY_FAIL: on_relay_fail(cl, &m); break;
        case ES_BUS_CLOSED: on_closed(cl, from, &m); break;
        case ES_BUS_OUT:
        case ES_BUS_CLOSE:
        case ES_BUS_REHOME:
        case ES_BUS_TOKEN: on_edge(cl, from, &m); break;
        default: break;
        }
    }
}

static void on_message(redisAsyncContext *ac, void *r, void *priv)
{
    (void)priv;
    es_cluster *cl = ac->data;
    redisReply *reply = r;
    if (!cl || !reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3)
        return;
    redisReply *kind = reply->element[0], *chan = reply->element[1], *msg = reply->element[2];
    if (kind->type == REDIS_REPLY_STRING && strcmp(kind->str, "subscribe") == 0 &&
        msg->type == REDIS_REPLY_INTEGER && msg->integer == 2 && !cl->subscribed) {
        cl->subscribed = 1;
        send_heartbeat(cl, 0); /* now the others may hear of this node */
        return;
    }
    if (kind->type != REDIS_REPLY_STRING || strcmp(kind->str, "message") != 0 ||
        chan->type != REDIS_REPLY_STRING || msg->type != REDIS_REPLY_STRING)
        return;
    const char *p = msg->str;
    size_t n = msg->len;
    if (cl->cfg->cluster_secret[0]) {
        unsigned char tag[32];
        if (n < TAG_LEN) {
            cl->stats.bus_rejected[ES_BUS_ERR_AUTH]++;
            return;
        }
        tag_of(cl, chan->str, p + TAG_LEN, n - TAG_LEN, tag);
        if (CRYPTO_memcmp(tag, p, TAG_LEN) != 0) {
            cl->stats.bus_rejected[ES_BUS_ERR_AUTH]++;
            if (es_now() - cl->last_auth_warning > 10) {
                cl->last_auth_warning = es_now();
                ES_LOG(EARSHOT_LOG_WARN, "cluster",
                       "a bus message without a valid tag was refused (another node with a "
                       "different cluster.secret, or someone else publishing on %s)",
                       chan->str);
            }
            return;
        }
        p += TAG_LEN;
        n -= TAG_LEN;
    }
    handle_bus(cl, p, n, strcmp(chan->str, cl->hb_channel) == 0);
}

/* ---- Redis' soft state: ids held and records of resumable clients -------- */

static void write_record(es_cluster *cl, es_session *s, const char *edge)
{
    char val[ES_BUS_NAME_MAX + ES_BUS_TOKEN_MAX + ES_BUS_ADDR_MAX + 96];
    int n = snprintf(val, sizeof val, "%d %d %d %d %d %s %s %s", s->view.pos.game_id,
                     s->view.pos.map_id, s->view.pos.x, s->view.pos.y, s->view.pos.channel, edge,
                     s->token, s->addr[0] ? s->addr : "-");
    const char *argv[4] = {"HSET", cl->rec_key, s->id, val};
    size_t lens[4] = {4, strlen(cl->rec_key), s->id_len, (size_t)n};
    command(cl, NULL, NULL, 4, argv, lens);
}

static void flush_records(es_cluster *cl)
{
    while (cl->rec_dirty.head) {
        cl_sess *cs = ES_CONTAINER_OF(cl->rec_dirty.head, cl_sess, rec_node);
        es_dlist_unlink(&cl->rec_dirty, &cs->rec_node);
        cs->rec_dirty = 0;
        es_session *s = cs->s;
        if (cl->up && s && s->registered && s->resumable && s->token_len)
            write_record(cl, s, cs->kind == CL_REMOTE ? NAME(cs->peer) : cl->self->name);
    }
}

/* One record of a dead node: "game map x y channel edge token address". */
static void restore_one(es_cluster *cl, const redisReply *id, const redisReply *val)
{
    if (id->type != REDIS_REPLY_STRING || val->type != REDIS_REPLY_STRING ||
        !es_protocol_id_valid(id->str, id->len) || val->len > 512)
        return;
    char buf[520], edge[ES_BUS_NAME_MAX + 1], token[ES_BUS_TOKEN_MAX + 1], addr[ES_BUS_ADDR_MAX + 1];
    memcpy(buf, val->str, val->len);
    buf[val->len] = '\0';
    long long v[5];
    char *p = buf, *end;
    for (int i = 0; i < 5; i++) {
        v[i] = strtoll(p, &end, 10);
        if (end == p || *end != ' ' || v[i] < INT32_MIN || v[i] > INT32_MAX)
            return;
        p = end + 1;
    }
    if (sscanf(p, "%64s %47s %63s", edge, token, addr) != 3 || !es_bus_name_valid(edge, strlen(edge)))
        return;
    if (strcmp(addr, "-") == 0)
        addr[0] = '\0';
    cl_node *e = NULL;
    HASH_FIND(hh, cl->nodes, edge, strlen(edge), e);
    if ((e && e->alive) || strcmp(edge, cl->self->name) == 0)
        return; /* its node is alive and brings it back itself */
    earshot_position pos = {(int32_t)v[0], (int32_t)v[1], (int32_t)v[2], (int32_t)v[3], (int32_t)v[4]};
    if (owner_of(cl, &pos) != cl->self ||
        es_registry_find(&cl->core->registry, id->str, id->len))
        return;
    es_session *s = es_core_open_remote(cl->core, NULL, addr, NULL);
    s->view.pos = pos;
    memcpy(s->id, id->str, id->len);
    s->id[id->len] = '\0';
    s->id_len = id->len;
    s->reattach = 1;
    s->resumable = 1;
    snprintf(s->token, sizeof s->token, "%s", token);
    s->token_len = strlen(s->token);
    synth_update(&cl->scratch, s);
    es_core_replay(cl->core, s, es_buf_data(&cl->scratch), cl->scratch.len);
    if (s->registered) {
        cl->stats.restored++;
        write_record(cl, s, "-");
        ES_LOG(EARSHOT_LOG_INFO, "cluster", "%s (of node %s) is held here for a resume", s->id,
               edge);
    }
    es_core_closed(cl->core, s); /* held, its connection never here */
}

static void replay_held_back(es_cluster *cl)
{
    while (cl->held_in && !cl->restoring) {
        queued *q = cl->held_in;
        cl->held_in = q->next;
        if (!cl->held_in)
            cl->held_in_tail = &cl->held_in;
        cl->stats.bus_in_messages--; /* counted when it came */
        handle_bus(cl, q->data, q->len, 0);
        free(q);
    }
}

static void restore_reply(redisAsyncContext *ac, void *r, void *priv)
{
    (void)ac;
    cl_node *dead = priv;
    es_cluster *cl = dead->cl;
    redisReply *reply = r;
    if (cl->restoring > 0)
        cl->restoring--;
    if (cl->destroying || !reply)
        return;
    if (reply && reply->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i + 1 < reply->elements; i += 2)
            restore_one(cl, reply->element[i], reply->element[i + 1]);
    ES_LOG(EARSHOT_LOG_DEBUG, "cluster", "records of node %s read", dead->name);
    replay_held_back(cl);
}

static void restore_from(es_cluster *cl, cl_node *dead)
{
    if (!cl->cmd)
        return;
    char key[KEY_MAX];
    snprintf(key, sizeof key, "%.64s:rec:%s:%016llx", cl->cfg->cluster_prefix, dead->name,
             (unsigned long long)dead->inc);
    const char *argv[2] = {"HGETALL", key};
    size_t lens[2] = {7, strlen(key)};
    cl->restoring++;
    redisAsyncCommandArgv(cl->cmd, restore_reply, dead, 2, argv, lens);
}

static void replace_one(es_session *s, void *ud)
{
    es_cluster *cl = ud;
    if (s->cl)
        ((cl_sess *)s->cl)->dir_ok = 0;
    r_placed(cl, s);
}

/* Our own heartbeat came back: Redis carries our words. */
static void became_up(es_cluster *cl)
{
    cl->up = 1;
    cl->said_alone = 0;
    cl->backoff = BACKOFF_MIN;
    cl->self->alive = 1;
    ES_LOG(EARSHOT_LOG_INFO, "cluster", "node %s on Redis at %s: sharing the world",
           cl->self->name, cl->cfg->cluster_redis);
    /* Redis may have lost everything: what this node holds, again */
    es_core_each_registered(cl->core, replace_one, cl);
    cl->resync_due = 1;
}

/* ---- moving clients where their maps are served ------------------------- */

typedef struct slist {
    es_session **v;
    size_t n, cap;
} slist;

static void slist_add(slist *l, es_session *s)
{
    if (l->n == l->cap)
        l->v = es_xrealloc(l->v, (l->cap = l->cap ? l->cap * 2 : 32) * sizeof *l->v);
    l->v[l->n++] = s;
}

typedef struct resync_ctx {
    es_cluster *cl;
    slist out;
} resync_ctx;

static void collect_out(es_session *s, void *ud)
{
    resync_ctx *r = ud;
    if (!s->remote && !s->fwd && !s->closing && owner_of(r->cl, &s->view.pos) != r->cl->self)
        slist_add(&r->out, s);
}

static void resync(es_cluster *cl)
{
    cl->resync_due = 0;
    slist lost = {0}, moved = {0}, edge = {0};
    resync_ctx r = {.cl = cl};
    for (cl_sess *cs = cl->by_key; cs; cs = cs->hh.next) {
        es_session *s = cs->s;
        if (cs->kind == CL_REMOTE) {
            if (!cs->peer || !cs->peer->alive)
                slist_add(&lost, s);
            else if (s->registered && !s->closing && owner_of(cl, &s->view.pos) != cl->self)
                slist_add(&moved, s);
        } else if (cs->kind == CL_EDGE && !cs->waiting && s && !s->closing) {
            if (!cs->peer || !cs->peer->alive || owner_of(cl, &s->view.pos) != cs->peer)
                slist_add(&edge, s);
        }
    }
    es_core_each_registered(cl->core, collect_out, &r);
    /* clients of nodes gone (or out of reach: held only when the node died) */
    for (size_t i = 0; i < lost.n; i++) {
        cl_sess *cs = lost.v[i]->cl;
        if (cs)
            hash_del(cl, cs);
        if (!cl->up)
            es_core_goodbye(cl->core, lost.v[i]);
        es_core_closed(cl->core, lost.v[i]);
    }
    /* whole maps leave quietly: detach them all, then let them go */
    for (size_t i = 0; i < moved.n; i++) {
        hash_del(cl, moved.v[i]->cl);
        es_core_detach(cl->core, moved.v[i]);
    }
    for (size_t i = 0; i < r.out.n; i++)
        es_core_detach(cl->core, r.out.v[i]);
    for (size_t i = 0; i < moved.n; i++) {
        cl->stats.moved_out++;
        es_core_closed(cl->core, moved.v[i]);
    }
    for (size_t i = 0; i < r.out.n; i++) {
        es_session *s = r.out.v[i];
        synth_update(&cl->scratch, s);
        attach_remote(cl, s, owner_of(cl, &s->view.pos), es_buf_data(&cl->scratch),
                      cl->scratch.len, 1, NULL);
    }
    for (size_t i = 0; i < edge.n; i++) {
        es_session *s = edge.v[i];
        cl_sess *cs = s->cl;
        cl_node *was = cs ? cs->peer : NULL;
        reroute(cl, s, NULL, 0, was && !was->alive ? was : NULL);
    }
    free(lost.v);
    free(moved.v);
    free(edge.v);
    free(r.out.v);
    es_core_flush(cl->core);
}

/* ---- the heartbeat, the watchdog, the flush ------------------------------- */

static void on_heartbeat(struct ev_loop *ev, ev_timer *w, int revents)
{
    (void)ev, (void)revents;
    es_cluster *cl = w->data;
    double now = es_now();
    if (cl->cmd && cl->subscribed)
        send_heartbeat(cl, 0);
    if (cl->cmd || cl->sub) {
        double since = cl->up ? cl->last_echo : cl->connecting_since;
        if (now - since > cl->cfg->cluster_node_timeout)
            redis_lost(cl, "no answer within node_timeout");
    }
    /* a node is gone when we hear ourselves and not it (Redis slow or away
     * is not a node dying: the watchdog above handles that) */
    int hear_self = cl->up && now - cl->last_echo < 2 * cl->cfg->cluster_heartbeat + 0.1;
    for (cl_node *n = cl->nodes; n && hear_self; n = n->hh.next)
        if (n->alive && !n->is_self && now - n->last_heard > cl->cfg->cluster_node_timeout)
            node_lost(cl, n, 1);
    flush_records(cl);
    if (cl->up) {
        char ttl[32];
        double secs = 4 * (cl->cfg->resume_grace + cl->cfg->cluster_node_timeout);
        snprintf(ttl, sizeof ttl, "%lld", (long long)((secs < 30 ? 30 : secs) * 1000));
        command3(cl, "PEXPIRE", cl->ids_key, ttl, strlen(ttl));
        command3(cl, "PEXPIRE", cl->rec_key, ttl, strlen(ttl));
    }
    for (cl_sess *cs = cl->by_key; cs;) {
        cl_sess *next = cs->hh.next;
        if (cs->kind == CL_EDGE && cs->retry_frame && cs->s && !cs->s->closing) {
            char *f = cs->retry_frame;
            size_t len = cs->retry_len;
            cs->retry_frame = NULL;
            reroute(cl, cs->s, len ? f : NULL, len, NULL);
            free(f);
        }
        cs = next;
    }
}

void es_cluster_flush(es_cluster *cl)
{
    if (cl->want_down) {
        cl->want_down = 0;
        cl->restoring = 0; /* the records will not come */
        for (cl_node *n = cl->nodes; n; n = n->hh.next)
            n->alive = 0;
        resync(cl); /* everything here is served here */
    }
    if (cl->resync_due && !cl->restoring)
        resync(cl);
    for (size_t i = 0; i < cl->ndeferred; i++)
        es_core_closed(cl->core, cl->deferred[i]);
    cl->ndeferred = 0;
    if (cl->settling.head)
        settled(cl, es_now());
    for (cl_node *n = cl->nodes; n; n = n->hh.next)
        publish(cl, n);
}

/* ---- the whole ------------------------------------------------------------- */

es_cluster *es_cluster_create(const es_config *cfg, es_core *core, struct ev_loop *ev, int port,
                              char *err, size_t errlen)
{
    if (!ev) {
        snprintf(err, errlen, "cluster needs server.event_loop = \"libev\"");
        return NULL;
    }
    es_cluster *cl = es_xcalloc(1, sizeof *cl);
    cl->cfg = cfg;
    cl->core = core;
    cl->ev = ev;
    cl->backoff = BACKOFF_MIN;
    cl->held_in_tail = &cl->held_in;
    es_buf_init(&cl->scratch);
    es_buf_init(&cl->tagged);
    es_buf_init(&cl->macbuf);
    if (RAND_bytes((unsigned char *)&cl->inc, sizeof cl->inc) != 1 || cl->inc == 0)
        cl->inc = (uint64_t)getpid() << 32 ^ (uint64_t)(es_wallclock() * 1e6);
    char name[ES_BUS_NAME_MAX + 1];
    if (cfg->cluster_node[0]) {
        snprintf(name, sizeof name, "%s", cfg->cluster_node);
    } else {
        char host[64] = "earshot";
        gethostname(host, sizeof host - 1);
        host[sizeof host - 1] = '\0';
        for (char *h = host; *h; h++)
            if (!es_bus_name_valid(h, 1))
                *h = '-';
        snprintf(name, sizeof name, "%.40s-%d-%ld", host, port, (long)getpid());
    }
    cl->self = node_get(cl, name, strlen(name));
    cl->self->is_self = 1;
    cl->self->inc = cl->inc;
    snprintf(cl->hb_channel, sizeof cl->hb_channel, "%s:hb", cfg->cluster_prefix);
    /* one incarnation's keys: a node restarted under the same name starts
     * afresh, and the records of the one before stay for whoever holds
     * its clients */
    snprintf(cl->ids_key, sizeof cl->ids_key, "%.64s:ids:%s:%016llx", cfg->cluster_prefix, name,
             (unsigned long long)cl->inc);
    snprintf(cl->rec_key, sizeof cl->rec_key, "%.64s:rec:%s:%016llx", cfg->cluster_prefix, name,
             (unsigned long long)cl->inc);

    cl->local = core->delivery;
    core->delivery = (es_delivery){.ops = &cluster_delivery, .impl = cl};
    core->router = (es_router){.ops = &router_ops, .ud = cl};

    ev_timer_init(&cl->hb_timer, on_heartbeat, cfg->cluster_heartbeat, cfg->cluster_heartbeat);
    cl->hb_timer.data = cl;
    ev_timer_start(ev, &cl->hb_timer);
    ev_init(&cl->retry_timer, on_retry);
    cl->retry_timer.data = cl;
    ES_LOG(EARSHOT_LOG_INFO, "cluster", "node %s joining Redis at %s", name, cfg->cluster_redis);
    redis_connect(cl);
    return cl;
}

void es_cluster_leave(es_cluster *cl)
{
    if (!cl || cl->leaving)
        return;
    /* every resumable client's record, current, before the goodbye */
    es_core_each_registered(cl->core, replace_one, cl);
    flush_records(cl);
    cl->leaving = 1;
    if (cl->cmd)
        send_heartbeat(cl, ES_BUS_F_LEAVING);
    for (cl_node *n = cl->nodes; n; n = n->hh.next)
        publish(cl, n);
}

void es_cluster_destroy(es_cluster *cl)
{
    if (!cl)
        return;
    cl->leaving = 1;
    cl->destroying = 1;
    ev_timer_stop(cl->ev, &cl->hb_timer);
    ev_timer_stop(cl->ev, &cl->retry_timer);
    HASH_CLEAR(hh, cl->by_key);
    cl->core->delivery = cl->local;
    cl->core->router = (es_router){0};
    /* replies still due are called with nothing when the contexts go: the
     * sessions they name are freed by them */
    while (cl->all_sess.head) {
        cl_sess *cs = ES_CONTAINER_OF(cl->all_sess.head, cl_sess, all_node);
        es_dlist_unlink(&cl->all_sess, &cs->all_node);
        es_sendq_clear(&cs->pending);
        free(cs->retry_frame);
        cs->retry_frame = NULL;
        free(cs->settled_list);
        cs->settled_list = NULL;
        if (cs->s && cs->s->cl == cs)
            cs->s->cl = NULL;
        cs->s = NULL;
        if (cs->inflight > 0)
            cs->dead = 1;
        else
            free(cs);
    }
    redisAsyncContext *cmd = cl->cmd, *sub = cl->sub;
    cl->cmd = cl->sub = NULL;
    if (cmd) {
        cmd->data = NULL;
        redisAsyncFree(cmd);
    }
    if (sub) {
        sub->data = NULL;
        redisAsyncFree(sub);
    }
    cl_node *n, *tmp;
    HASH_ITER(hh, cl->nodes, n, tmp) {
        HASH_DEL(cl->nodes, n);
        es_buf_free(&n->out);
        free(n);
    }
    while (cl->held_in) {
        queued *q = cl->held_in;
        cl->held_in = q->next;
        free(q);
    }
    free(cl->deferred);
    es_buf_free(&cl->scratch);
    es_buf_free(&cl->tagged);
    es_buf_free(&cl->macbuf);
    free(cl);
}

const char *es_cluster_node_name(const es_cluster *cl) { return cl->self->name; }

void es_cluster_apply(es_cluster *cl, const es_config *cfg) { cl->cfg = cfg; }

void es_cluster_metrics(const es_cluster *cl, es_buf *out)
{
    char line[512];
    size_t nodes = 0, fwd = 0;
    for (const cl_node *n = cl->nodes; n; n = n->hh.next)
        nodes += n->alive;
    for (const cl_sess *cs = cl->by_key; cs; cs = cs->hh.next)
        fwd += cs->kind == CL_EDGE && cs->peer != NULL;
    const es_cluster_stats *st = &cl->stats;
#define LINE(...)                                                                                  \
    do {                                                                                           \
        int n_ = snprintf(line, sizeof line, __VA_ARGS__);                                         \
        es_buf_append(out, line, (size_t)n_);                                                      \
    } while (0)
    LINE("# HELP earshot_cluster_node This node's name in the cluster.\n"
         "# TYPE earshot_cluster_node gauge\nearshot_cluster_node{node=\"%s\"} 1\n",
         cl->self->name);
    LINE("# HELP earshot_cluster_redis_up 1 while Redis carries this node's messages; 0: matching "
         "is local-only.\n# TYPE earshot_cluster_redis_up gauge\nearshot_cluster_redis_up %d\n",
         cl->up);
    LINE("# HELP earshot_cluster_nodes Live nodes, this one included.\n"
         "# TYPE earshot_cluster_nodes gauge\nearshot_cluster_nodes %zu\n",
         cl->up ? nodes : 1);
    LINE("# HELP earshot_cluster_remote_clients Clients served here, connected to other nodes.\n"
         "# TYPE earshot_cluster_remote_clients gauge\nearshot_cluster_remote_clients %zu\n",
         cl->core->nremote);
    LINE("# HELP earshot_cluster_forwarded_connections Connections here whose map another node "
         "serves.\n# TYPE earshot_cluster_forwarded_connections gauge\n"
         "earshot_cluster_forwarded_connections %zu\n",
         fwd);
    LINE("# HELP earshot_cluster_bus_messages_total Redis messages on the bus.\n"
         "# TYPE earshot_cluster_bus_messages_total counter\n"
         "earshot_cluster_bus_messages_total{direction=\"out\"} %llu\n"
         "earshot_cluster_bus_messages_total{direction=\"in\"} %llu\n",
         (unsigned long long)st->bus_out_messages, (unsigned long long)st->bus_in_messages);
    LINE("# HELP earshot_cluster_bus_packets_total Packets on the bus (several per message).\n"
         "# TYPE earshot_cluster_bus_packets_total counter\n"
         "earshot_cluster_bus_packets_total{direction=\"out\"} %llu\n"
         "earshot_cluster_bus_packets_total{direction=\"in\"} %llu\n",
         (unsigned long long)st->bus_out_packets, (unsigned long long)st->bus_in_packets);
    LINE("# HELP earshot_cluster_bus_bytes_total Bytes on the bus.\n"
         "# TYPE earshot_cluster_bus_bytes_total counter\n"
         "earshot_cluster_bus_bytes_total{direction=\"out\"} %llu\n"
         "earshot_cluster_bus_bytes_total{direction=\"in\"} %llu\n",
         (unsigned long long)st->bus_out_bytes, (unsigned long long)st->bus_in_bytes);
    LINE("# HELP earshot_cluster_bus_rejected_total Bus packets refused, by reason.\n"
         "# TYPE earshot_cluster_bus_rejected_total counter\n");
    for (int i = 1; i < ES_BUS_ERR_COUNT; i++)
        LINE("earshot_cluster_bus_rejected_total{reason=\"%s\"} %llu\n", es_bus_error_names[i],
             (unsigned long long)st->bus_rejected[i]);
    LINE("# HELP earshot_cluster_redis_losses_total Times Redis was lost (local-only since).\n"
         "# TYPE earshot_cluster_redis_losses_total counter\nearshot_cluster_redis_losses_total "
         "%llu\n",
         (unsigned long long)st->redis_losses);
    LINE("# HELP earshot_cluster_redis_connects_total Connection attempts to Redis.\n"
         "# TYPE earshot_cluster_redis_connects_total counter\n"
         "earshot_cluster_redis_connects_total %llu\n",
         (unsigned long long)st->redis_connects);
    LINE("# HELP earshot_cluster_node_events_total Other nodes joining and going.\n"
         "# TYPE earshot_cluster_node_events_total counter\n"
         "earshot_cluster_node_events_total{event=\"joined\"} %llu\n"
         "earshot_cluster_node_events_total{event=\"lost\"} %llu\n",
         (unsigned long long)st->nodes_joined, (unsigned long long)st->nodes_lost);
    LINE("# HELP earshot_cluster_moves_total Clients moved to or from another node's care.\n"
         "# TYPE earshot_cluster_moves_total counter\n"
         "earshot_cluster_moves_total{direction=\"out\"} %llu\n"
         "earshot_cluster_moves_total{direction=\"in\"} %llu\n",
         (unsigned long long)st->moved_out, (unsigned long long)st->moved_in);
    LINE("# HELP earshot_cluster_restored_total Resumable clients of a dead node held here.\n"
         "# TYPE earshot_cluster_restored_total counter\nearshot_cluster_restored_total %llu\n",
         (unsigned long long)st->restored);
    LINE("# HELP earshot_cluster_lists_suppressed_total First lists after a move, unchanged, not "
         "sent.\n# TYPE earshot_cluster_lists_suppressed_total counter\n"
         "earshot_cluster_lists_suppressed_total %llu\n",
         (unsigned long long)st->lists_suppressed);
    LINE("# HELP earshot_cluster_lookups_total Questions to Redis: which node holds this id.\n"
         "# TYPE earshot_cluster_lookups_total counter\nearshot_cluster_lookups_total %llu\n",
         (unsigned long long)st->lookups);
#undef LINE
}
