/*
 * cluster - several earshot nodes sharing one world through Redis.
 *
 * Each map (game_id, map_id) is served by exactly one node, its owner: the
 * live node with the highest rendezvous hash of (node name, map). The
 * owner's core holds every client of the map, wherever that client is
 * connected, so matching, hysteresis, the match filters, the crowd cap,
 * relays and takeover run there exactly as on one node. A client connected
 * to another node (its edge) is a `remote` session on the owner; the edge
 * forwards the client's frames to the owner's inbox channel and writes
 * what comes back. Nodes know each other by heartbeats on one channel.
 *
 * When the set of live nodes changes (a node starts, stops or dies, or
 * Redis comes back), every node recomputes the owners: clients of a map
 * that changed hands are detached from the old owner without a message
 * and re-registered at the new one (no join chain again, the same resume
 * token); a first NearbyPeers equal to the client's last is not sent, so
 * nobody hears the move. The clients of a node that died leave within
 * node_timeout, except the resumable ones, which are held where their map
 * is served (from a record the owner keeps in Redis, if the dead node was
 * the owner) until they resume through another node.
 *
 * Without Redis (lost, frozen), a node serves its own clients alone
 * (matching is local-only, /metrics says so) and reconnects with backoff;
 * once Redis answers again the owners are recomputed and the world is one
 * again. Redis holds soft state only: which ids a node holds and the
 * records of resumable clients, both rewritten by their nodes.
 *
 * Everything runs on earshot's libev loop (hiredis' libev adapter), on one
 * thread. bus.h is the message format.
 */
#ifndef EARSHOT_CLUSTER_H
#define EARSHOT_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "bus.h"
#include "config.h"
#include "core.h"

struct ev_loop;
typedef struct es_cluster es_cluster;

typedef struct es_cluster_stats {
    uint64_t bus_out_messages, bus_out_packets, bus_out_bytes;
    uint64_t bus_in_messages, bus_in_packets, bus_in_bytes;
    uint64_t bus_rejected[ES_BUS_ERR_COUNT]; /* by es_bus_error */
    uint64_t redis_connects, redis_losses;
    uint64_t nodes_joined, nodes_lost;
    uint64_t moved_out, moved_in; /* clients detached to / registered from another node */
    uint64_t restored;            /* held sessions restored from a dead node's records */
    uint64_t lists_suppressed;    /* first lists after a move, equal to the last, not sent */
    uint64_t lookups;             /* who-holds-this-id questions to Redis */
} es_cluster_stats;

/* Join the cluster cfg describes, on loop ev, steering core (its router
 * and its delivery). NULL with a message in err when the settings are
 * unusable; Redis being down is not an error (the node serves alone). */
es_cluster *es_cluster_create(const es_config *cfg, es_core *core, struct ev_loop *ev, int port,
                              char *err, size_t errlen);
/* A reload: the new config (the cluster keys need a restart to change). */
void es_cluster_apply(es_cluster *cl, const es_config *cfg);
/* The end of a loop pass, after the core's flush: send the batches. */
void es_cluster_flush(es_cluster *cl);
/* The node is stopping: tell the others first, so that they take over
 * its maps and hold its resumable clients. Before es_core_shutdown. */
void es_cluster_leave(es_cluster *cl);
void es_cluster_destroy(es_cluster *cl);

const char *es_cluster_node_name(const es_cluster *cl);
/* Prometheus lines. */
void es_cluster_metrics(const es_cluster *cl, es_buf *out);

#endif
