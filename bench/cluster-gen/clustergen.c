/*
 * clustergen: the load generator of bench/cluster, for several earshot nodes.
 *
 * Built from bench/loadgen's pieces (ws.c, json.c, hist.c, procstat.c): N
 * hand-written WebSocket clients, client i connected to port i % P (one
 * port per node), on map (i / P) % M, so every map has clients on every
 * node. One thread, one epoll set, one 1 ms timerfd.
 *
 * Phases, each bounded in time:
 *   connect -> load (warmup, window) -> [redis fault] -> [node fault]
 *   -> settle -> final refresh -> check.
 *
 * In the window it measures, besides the send rates:
 *   - match latency: when a client moves, every other client of its map now
 *     within --radius that does not list it yet is expected to receive a
 *     NearbyPeers listing it; the time from the UpdatePosition to that list,
 *     split by whether the two are on the same node or not, and by the bus
 *     hops the list had to take (edge -> owner -> edge, from the rendezvous
 *     hash of bus.c's es_bus_hash, checked against the nodes' metrics);
 *   - relay latency (SendOffer to a current peer, one way), same split;
 *   - CPU of every node and of Redis (/proc/<pid>/stat), the nodes' /metrics
 *     and Redis' INFO at the window's edges.
 * Faults:
 *   --fault-redis: everyone stops; lists are checked right; Redis is killed
 *     (-9), restarted after --outage s with --redis-restart CMD; the time from
 *     Redis answering again until every list is right (static positions).
 *   --fault-kill K: movement resumes; node K is killed (-9); the time until
 *     no surviving client's list names a client of node K.
 * The final check: every surviving client's last list holds every other
 * surviving client of its map within --radius, none beyond --leave-radius.
 *
 * Output: one JSON line on stdout. Only 127.0.0.0/8 targets.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "bus.h" /* es_bus_hash: the owners, as every node computes them */
#include "hist.h"
#include "json.h"
#include "procstat.h"
#include "ws.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define MAXN 8
#define OUT_LIMIT (64u << 10)
#define QUIET_NS 200000000ull
#define MAX_EXP 64
#define MAXV 32

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- options ---------------------------------------------------------------- */

static struct {
    int ports[MAXN], pids[MAXN];
    char names[MAXN][65];
    int nports, npids, nnames;
    int redis_port;
    uint32_t clients, maps;
    double density, update_rate, relay_rate, connect_rate;
    int radius, leave_radius, step, relay_bytes;
    double warmup, duration, settle, outage, fault_timeout, kill_after;
    uint64_t seed;
    int fault_redis, fault_kill; /* fault_kill: node index, -1 none, -2 auto */
    char redis_restart[1024];
} O;

/* ---- clients ---------------------------------------------------------------- */

enum cstate { C_NEW, C_CONNECTING, C_UPGRADING, C_REGISTERING, C_READY, C_DEAD };

typedef struct {
    uint32_t a;   /* the peer expected in the list */
    uint8_t cat;  /* 0 mover's own list, 1 peer same node, 2 peer other node */
    uint8_t hops; /* bus hops the list takes */
    uint8_t rec;  /* created in the window */
    uint64_t t;
} expect;

typedef struct {
    int fd;
    uint8_t state, want_out, node, final_asked, final_got, dead_set;
    uint32_t map;
    int32_t x, y;
    uint32_t *peers;
    uint32_t npeers, peers_cap;
    uint8_t *in;
    uint32_t in_len, in_cap;
    uint8_t *out;
    uint32_t out_off, out_len, out_cap;
    char key[28];
    expect *exp;
    uint32_t nexp;
    uint8_t right, bad; /* fault phases: list right (static), lists a dead client */
} client;

enum phase {
    P_CONNECT, P_LOAD, P_RQUIET, P_RREFRESH, P_RDOWN, P_RCONV, P_RCHECK, P_KMOVE, P_KCONV, P_SETTLE,
    P_FINAL, P_DONE
};

static struct {
    client *cl;
    uint32_t n;
    uint32_t **members; /* per map: its clients */
    uint32_t *nmembers;
    int ep, tfd;
    int32_t side;
    uint64_t rng;
    enum phase phase;
    uint64_t phase_t, last_rx_t;
    uint32_t next_connect, pending, n_ready, n_failed;
    uint64_t connect_t0, connect_done_t;
    /* pacing */
    double pu_rate, pr_rate;
    uint64_t pu_t0, pu_issued, pr_t0, pr_issued;
    uint32_t pu_rr, pr_rr;
    int moving, relaying, recording;
    uint64_t win_start, win_end, load_t0;
    uint64_t updates, relays, rx_np, rx_relay, rx_err, refused, lagged, blocked;
    uint64_t w_updates0, w_updates1, w_relays0, w_relays1, w_np0, w_np1, w_rxrel0, w_rxrel1;
    uint64_t upd_by_node[MAXN], upd_by_node0[MAXN], upd_by_node1[MAXN];
    double cpu0[MAXN], cpu1[MAXN], rcpu0, rcpu1, self0, self1;
    int redis_pid;
    char *met0[MAXN], *met1[MAXN], *info0, *info1;
    lg_hist h_match[3], h_match_hops[3], h_relay[2], h_relay_hops[3];
    uint64_t exp_overflow, exp_stale, exp_cancelled;
    /* owners */
    int alive[MAXN];
    int owner[4096], owner_win[4096];
    double snap_ms[2];
    uint64_t worst_t, worst_v;
    /* relay accounting up to the first quiet point */
    uint64_t relay_snapshot_done, rs_sent, rs_recv, rs_refused;
    /* redis fault */
    uint64_t r_kill_t, r_up_t, r_right_t, r_first_wrong_t;
    uint32_t r_wrong, r_wrong_max_outage, r_wrong_at_up, r_baseline_wrong;
    int r_restart_rc, r_done, r_refreshed;
    uint32_t r_wrong_after_refresh, r_miss_same, r_miss_other, r_extra;
    uint64_t r_examples; /* wrong lists described in the violations, not counted as such */
    unsigned long long sys0[2], sys1[2];
    /* node fault */
    int k_node;
    uint64_t k_kill_t, k_clear_t, k_last_dead_list_t;
    uint32_t k_bad, k_bad_at_kill, k_rebad, k_dead_clients;
    int k_done;
    /* final */
    uint32_t n_final_asked, n_final_got;
    /* violations */
    uint64_t v_missing, v_extra, v_bad, v_nofinal, v_dropped, v_proto, v_srverr, v_crash;
    char vmsg[MAXV][200];
    uint32_t nvmsg;
    char *scratch, *pbuf;
    volatile sig_atomic_t interrupted;
} G;

static void note(uint64_t *ctr, const char *fmt, ...)
{
    (*ctr)++;
    if (G.nvmsg >= MAXV)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(G.vmsg[G.nvmsg++], sizeof G.vmsg[0], fmt, ap);
    va_end(ap);
}

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("clustergen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static uint64_t rnd(void)
{
    uint64_t x = G.rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    G.rng = x;
    return x * 0x2545F4914F6CDD1Dull;
}
static uint32_t rnd_below(uint32_t n) { return n ? (uint32_t)((rnd() >> 32) % n) : 0; }

static uint32_t parse_id(const char *s, size_t len)
{
    if (len < 2 || len > 11 || s[0] != 'c' || (s[1] == '0' && len > 2))
        return UINT32_MAX;
    uint64_t v = 0;
    for (size_t i = 1; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return UINT32_MAX;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    return v < G.n ? (uint32_t)v : UINT32_MAX;
}

/* ---- owners: bus.c's es_bus_hash and cluster.c's rendezvous ----------------- */

static void compute_owners(void)
{
    for (uint32_t m = 0; m < O.maps && m < 4096; m++) {
        int best = -1;
        uint64_t bs = 0;
        uint64_t seed = (uint64_t)0 << 32 | m; /* game_id 0 */
        for (int k = 0; k < O.nnames; k++) {
            if (!G.alive[k])
                continue;
            uint64_t s = es_bus_hash(O.names[k], strlen(O.names[k]), seed);
            if (best < 0 || s > bs || (s == bs && strcmp(O.names[k], O.names[best]) > 0)) {
                best = k;
                bs = s;
            }
        }
        G.owner[m] = best < 0 ? 0 : best;
    }
}

static int hops(uint32_t from, uint32_t to, uint32_t map)
{
    if (O.nnames <= 1)
        return 0;
    int o = G.owner[map];
    return (G.cl[from].node != o) + (G.cl[to].node != o);
}

/* ---- sockets ------------------------------------------------------------------ */

static void set_want_out(uint32_t i, int want)
{
    client *c = &G.cl[i];
    if (c->want_out == want || c->fd < 0)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.u64 = i};
    if (epoll_ctl(G.ep, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->want_out = (uint8_t)want;
}

static void kill_client(uint32_t i, const char *why)
{
    client *c = &G.cl[i];
    if (c->state == C_DEAD)
        return;
    int was = c->state;
    if (c->fd >= 0) {
        epoll_ctl(G.ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    if (was == C_CONNECTING || was == C_UPGRADING || was == C_REGISTERING) {
        G.pending--;
        G.n_failed++;
        note(&G.v_dropped, "c%u (node %d) failed to register: %s", i, c->node, why);
    } else if (was == C_READY) {
        G.n_ready--;
        if (!c->dead_set)
            note(&G.v_dropped, "c%u (node %d) dropped: %s", i, c->node, why);
    }
    c->state = C_DEAD;
    c->nexp = 0;
}

static void flush_client(uint32_t i)
{
    client *c = &G.cl[i];
    while (c->out_off < c->out_len) {
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (w > 0) {
            c->out_off += (uint32_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        kill_client(i, w < 0 ? strerror(errno) : "send wrote nothing");
        return;
    }
    if (c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    set_want_out(i, c->out_off < c->out_len);
}

static void queue_frame(uint32_t i, int opcode, const void *payload, size_t len)
{
    client *c = &G.cl[i];
    if (c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    size_t need = (size_t)c->out_len + LG_WS_MAX_HEADER + len;
    if (need > c->out_cap) {
        if (c->out_off) {
            memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
            c->out_len -= c->out_off;
            c->out_off = 0;
            need = (size_t)c->out_len + LG_WS_MAX_HEADER + len;
        }
        if (need > c->out_cap) {
            size_t cap = c->out_cap ? c->out_cap : 512;
            while (cap < need)
                cap *= 2;
            uint8_t *p = realloc(c->out, cap);
            if (!p)
                die("out of memory");
            c->out = p;
            c->out_cap = (uint32_t)cap;
        }
    }
    uint64_t r = rnd();
    uint8_t mask[4] = {(uint8_t)r, (uint8_t)(r >> 8), (uint8_t)(r >> 16), (uint8_t)(r >> 24)};
    uint8_t *dst = c->out + c->out_len;
    size_t hl = lg_ws_header(dst, opcode, len, mask);
    lg_ws_mask_copy(dst + hl, payload, len, mask);
    c->out_len += (uint32_t)(hl + len);
}

static void send_frame(uint32_t i, int opcode, const void *p, size_t len)
{
    queue_frame(i, opcode, p, len);
    if (G.cl[i].state != C_DEAD && !G.cl[i].want_out)
        flush_client(i);
}

static void send_update(uint32_t i)
{
    client *c = &G.cl[i];
    int n = snprintf(G.scratch, 4096,
                     "{\"type\":\"UpdatePosition\",\"data\":{\"client_id\":\"c%u\",\"map_id\":%u,"
                     "\"x\":%d,\"y\":%d}}",
                     i, c->map, c->x, c->y);
    send_frame(i, LG_WS_TEXT, G.scratch, (size_t)n);
}

static void send_refresh(uint32_t i)
{
    static const char msg[] = "{\"type\":\"RequestPeerRefresh\",\"data\":null}";
    send_frame(i, LG_WS_TEXT, msg, sizeof msg - 1);
}

static uint32_t source_addr(uint32_t i)
{
    uint32_t b = i / 1000;
    return htonl((127u << 24) | ((b / 254) % 256) << 8 | (1 + b % 254));
}

static void start_connect(uint32_t i)
{
    client *c = &G.cl[i];
    c->state = C_CONNECTING;
    G.pending++;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        kill_client(i, "socket");
        return;
    }
    c->fd = fd;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    struct sockaddr_in src = {.sin_family = AF_INET, .sin_addr.s_addr = source_addr(i)};
    if (bind(fd, (struct sockaddr *)&src, sizeof src) != 0) {
        kill_client(i, "bind");
        return;
    }
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)O.ports[c->node]),
                              .sin_addr.s_addr = htonl(0x7f000001)};
    if (connect(fd, (struct sockaddr *)&dst, sizeof dst) != 0 && errno != EINPROGRESS) {
        kill_client(i, "connect");
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u64 = i};
    epoll_ctl(G.ep, EPOLL_CTL_ADD, fd, &ev);
    c->want_out = 1;
}

static void connected(uint32_t i)
{
    client *c = &G.cl[i];
    int err = 0;
    socklen_t el = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
    if (err) {
        kill_client(i, strerror(err));
        return;
    }
    uint8_t raw[16];
    for (int k = 0; k < 16; k += 8) {
        uint64_t r = rnd();
        memcpy(raw + k, &r, 8);
    }
    lg_base64(raw, 16, c->key);
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: "
                     "Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     O.ports[c->node], c->key);
    c->state = C_UPGRADING;
    c->out = realloc(c->out, 512);
    c->out_cap = 512;
    memcpy(c->out, req, (size_t)n);
    c->out_off = 0;
    c->out_len = (uint32_t)n;
    flush_client(i);
}

/* ---- what the lists must be ------------------------------------------------------ */

static int64_t d2(const client *a, const client *b)
{
    int64_t dx = (int64_t)a->x - b->x, dy = (int64_t)a->y - b->y;
    return dx * dx + dy * dy;
}

static int lists(const client *c, uint32_t j)
{
    for (uint32_t k = 0; k < c->npeers; k++)
        if (c->peers[k] == j)
            return 1;
    return 0;
}

/* Static positions: c's list holds every live client of its map within the
 * radius and none beyond the leave radius, no dead one, no unknown one. */
static int list_right(uint32_t i)
{
    client *c = &G.cl[i];
    int64_t r2 = (int64_t)O.radius * O.radius, l2 = (int64_t)O.leave_radius * O.leave_radius;
    for (uint32_t k = 0; k < c->npeers; k++) {
        uint32_t p = c->peers[k];
        if (p == UINT32_MAX || p == i || G.cl[p].state != C_READY || G.cl[p].map != c->map ||
            d2(c, &G.cl[p]) > l2)
            return 0;
    }
    uint32_t m = c->map;
    for (uint32_t k = 0; k < G.nmembers[m]; k++) {
        uint32_t j = G.members[m][k];
        if (j != i && G.cl[j].state == C_READY && d2(c, &G.cl[j]) <= r2 && !lists(c, j))
            return 0;
    }
    return 1;
}

/* A few wrong lists, in words (static positions). */
static void describe_wrong(const char *when)
{
    int64_t r2 = (int64_t)O.radius * O.radius, l2 = (int64_t)O.leave_radius * O.leave_radius;
    int shown = 0;
    uint32_t miss_same = 0, miss_other = 0, extra = 0;
    for (uint32_t i = 0; i < G.n; i++) {
        client *c = &G.cl[i];
        if (c->state != C_READY)
            continue;
        for (uint32_t k = 0; k < G.nmembers[c->map]; k++) {
            uint32_t j = G.members[c->map][k];
            if (j == i || G.cl[j].state != C_READY || d2(c, &G.cl[j]) > r2 || lists(c, j))
                continue;
            if (G.cl[j].node == c->node)
                miss_same++;
            else
                miss_other++;
            if (shown++ < 3)
                note(&G.r_examples, "%s: c%u (node %d, map %u served by node %d) does not list c%u (node %d), distance^2 %lld",
                     when, i, c->node, c->map, G.owner[c->map], j, G.cl[j].node, (long long)d2(c, &G.cl[j]));
        }
        for (uint32_t k = 0; k < c->npeers; k++) {
            uint32_t p = c->peers[k];
            if (p == UINT32_MAX || G.cl[p].state != C_READY || d2(c, &G.cl[p]) > l2)
                extra++;
        }
    }
    G.r_miss_same = miss_same;
    G.r_miss_other = miss_other;
    G.r_extra = extra;
}

static int lists_dead(const client *c)
{
    for (uint32_t k = 0; k < c->npeers; k++)
        if (c->peers[k] != UINT32_MAX && G.cl[c->peers[k]].dead_set)
            return 1;
    return 0;
}

/* ---- expectations: who must soon list whom ------------------------------------------ */

static void expect_add(uint32_t b, uint32_t a, uint8_t cat, uint8_t h, uint64_t t)
{
    client *c = &G.cl[b];
    for (uint32_t k = 0; k < c->nexp; k++)
        if (c->exp[k].a == a)
            return;
    if (c->nexp == MAX_EXP) {
        G.exp_overflow++;
        return;
    }
    if (!c->exp && !(c->exp = malloc(MAX_EXP * sizeof *c->exp)))
        die("out of memory");
    c->exp[c->nexp++] = (expect){.a = a, .cat = cat, .hops = h, .rec = (uint8_t)G.recording, .t = t};
}

/* Mover m just sent its UpdatePosition (at t). */
static void on_moved(uint32_t m, uint64_t t)
{
    client *c = &G.cl[m];
    int64_t r2 = (int64_t)O.radius * O.radius;
    uint32_t map = c->map;
    for (uint32_t k = 0; k < G.nmembers[map]; k++) {
        uint32_t o = G.members[map][k];
        client *p = &G.cl[o];
        if (o == m || p->state != C_READY || d2(c, p) > r2)
            continue;
        if (!lists(p, m))
            expect_add(o, m, p->node == c->node ? 1 : 2, (uint8_t)hops(m, o, map), t);
        if (!lists(c, o))
            expect_add(m, o, 0, (uint8_t)(O.nnames > 1 && c->node != G.owner[map] ? 2 : 0), t);
    }
}

static void expect_check(uint32_t b, uint64_t now)
{
    client *c = &G.cl[b];
    int64_t r2 = (int64_t)O.radius * O.radius;
    for (uint32_t k = 0; k < c->nexp;) {
        expect *e = &c->exp[k];
        int done = 0;
        if (lists(c, e->a)) {
            if (e->rec) {
                lg_hist_add(&G.h_match[e->cat], now - e->t);
                if (now - e->t > G.worst_v) {
                    G.worst_v = now - e->t;
                    G.worst_t = e->t;
                }
                if (e->cat)
                    lg_hist_add(&G.h_match_hops[e->hops], now - e->t);
            }
            done = 1;
        } else if (G.cl[e->a].state != C_READY || d2(c, &G.cl[e->a]) > r2) {
            G.exp_cancelled++;
            done = 1;
        }
        if (done)
            *e = c->exp[--c->nexp];
        else
            k++;
    }
}

static void expect_sweep(uint64_t now)
{
    for (uint32_t i = 0; i < G.n; i++) {
        client *c = &G.cl[i];
        for (uint32_t k = 0; k < c->nexp;) {
            if (now - c->exp[k].t > 3000000000ull) {
                expect *e = &c->exp[k];
                if (G.cl[e->a].state == C_READY && c->state == C_READY &&
                    d2(c, &G.cl[e->a]) <= (int64_t)O.radius * O.radius && G.exp_stale++ < 5)
                    note(&G.v_missing, "c%u (node %d) has not listed c%u (node %d, map %u) 3 s after it came within radius",
                         i, c->node, e->a, G.cl[e->a].node, c->map);
                c->exp[k] = c->exp[--c->nexp];
            } else {
                k++;
            }
        }
    }
}

/* ---- what the server sends -------------------------------------------------------- */

static void on_peers(uint32_t i, lg_jcur d, uint64_t now)
{
    client *c = &G.cl[i];
    if (!d.p || lg_j_expect(&d, '[')) {
        note(&G.v_proto, "c%u: NearbyPeers data not an array", i);
        return;
    }
    c->npeers = 0;
    if (lg_j_peek(&d) == ']') {
        d.p++;
    } else {
        for (;;) {
            char id[160];
            size_t len;
            if (lg_j_string(&d, id, sizeof id, &len)) {
                note(&G.v_proto, "c%u: bad NearbyPeers element", i);
                c->npeers = 0;
                return;
            }
            if (c->npeers == c->peers_cap) {
                c->peers_cap = c->peers_cap ? c->peers_cap * 2 : 16;
                c->peers = realloc(c->peers, c->peers_cap * sizeof *c->peers);
                if (!c->peers)
                    die("out of memory");
            }
            c->peers[c->npeers++] = parse_id(id, len);
            int ch = lg_j_peek(&d);
            d.p++;
            if (ch == ']')
                break;
            if (ch != ',') {
                note(&G.v_proto, "c%u: malformed NearbyPeers", i);
                c->npeers = 0;
                return;
            }
        }
    }
    G.rx_np++;
    if (c->state == C_REGISTERING) {
        c->state = C_READY;
        G.pending--;
        G.n_ready++;
    }
    if (c->nexp)
        expect_check(i, now);
    if (c->final_asked && !c->final_got) {
        c->final_got = 1;
        G.n_final_got++;
    }
    if (G.phase == P_RDOWN || G.phase == P_RCONV || G.phase == P_RREFRESH) {
        uint8_t r = (uint8_t)list_right(i);
        if (r != c->right) {
            if (r)
                G.r_wrong--;
            else
                G.r_wrong++;
            c->right = r;
            if (G.phase == P_RDOWN && G.r_wrong > G.r_wrong_max_outage)
                G.r_wrong_max_outage = G.r_wrong;
            if (G.phase == P_RDOWN && !r && !G.r_first_wrong_t)
                G.r_first_wrong_t = now;
            if (G.phase == P_RCONV && r && G.r_wrong == 0)
                G.r_right_t = now;
        }
    }
    if (G.k_kill_t && !c->dead_set) {
        uint8_t b = (uint8_t)lists_dead(c);
        if (b)
            G.k_last_dead_list_t = now;
        if (b != c->bad) {
            if (b) {
                G.k_bad++;
                if (G.k_clear_t)
                    G.k_rebad++;
            } else {
                G.k_bad--;
            }
            c->bad = b;
            if (G.k_bad == 0 && !G.k_clear_t)
                G.k_clear_t = now;
        }
    }
}

static void on_offer(uint32_t i, lg_jcur d, uint64_t now)
{
    char sender[160];
    size_t slen = 0, plen = 0;
    int hs = 0, ho = 0;
    if (!d.p || lg_j_expect(&d, '{'))
        goto bad;
    if (lg_j_peek(&d) != '}') {
        for (;;) {
            char key[16];
            lg_jcur save = d;
            if (lg_j_string(&d, key, sizeof key, NULL)) {
                d = save;
                if (lg_j_string(&d, NULL, 0, NULL))
                    goto bad;
                key[0] = '\0';
            }
            if (lg_j_expect(&d, ':'))
                goto bad;
            if (strcmp(key, "sender_id") == 0) {
                if (lg_j_string(&d, sender, sizeof sender, &slen))
                    goto bad;
                hs = 1;
            } else if (strcmp(key, "offer") == 0) {
                if (lg_j_string(&d, G.pbuf, 70000, &plen))
                    goto bad;
                ho = 1;
            } else if (lg_j_skip(&d)) {
                goto bad;
            }
            int ch = lg_j_peek(&d);
            d.p++;
            if (ch == '}')
                break;
            if (ch != ',')
                goto bad;
        }
    }
    if (!hs || !ho)
        goto bad;
    G.rx_relay++;
    uint32_t s = parse_id(sender, slen);
    unsigned long long ts, from, to;
    if (s == UINT32_MAX || sscanf(G.pbuf, "%llu:%llu:%llu:", &ts, &from, &to) != 3 || from != s ||
        to != i) {
        note(&G.v_proto, "c%u: relay from '%.30s' misrouted or altered", i, sender);
        return;
    }
    if (G.recording && ts <= now) {
        lg_hist_add(&G.h_relay[G.cl[s].node != G.cl[i].node], now - ts);
        lg_hist_add(&G.h_relay_hops[hops(s, i, G.cl[i].map)], now - ts);
    }
    return;
bad:
    note(&G.v_proto, "c%u: malformed ReceiveOffer", i);
}

static void on_error(uint32_t i, lg_jcur d)
{
    char text[512];
    size_t len = 0;
    G.rx_err++;
    if (!d.p || lg_j_string(&d, text, sizeof text, &len)) {
        note(&G.v_proto, "c%u: Error data not a string", i);
        return;
    }
    if ((strncmp(text, "relay to ", 9) == 0 && len > 21 && strcmp(text + len - 12, " not allowed") == 0) ||
        (strncmp(text, "Client ", 7) == 0 && len > 17 && strcmp(text + len - 10, " not found") == 0)) {
        G.refused++;
        return;
    }
    note(&G.v_srverr, "c%u (node %d): Error \"%.120s\"", i, G.cl[i].node, text);
}

static long consume(uint32_t i, uint8_t *data, size_t len, uint64_t now)
{
    client *c = &G.cl[i];
    size_t off = 0;
    if (c->state == C_UPGRADING) {
        uint8_t *end = memmem(data, len, "\r\n\r\n", 4);
        if (!end)
            return len > 8192 ? (kill_client(i, "upgrade response too long"), -1) : 0;
        size_t hlen = (size_t)(end - data) + 4;
        if (len < 12 || memcmp(data, "HTTP/1.1 101", 12) != 0) {
            kill_client(i, "upgrade refused");
            return -1;
        }
        char want[29];
        lg_ws_accept(c->key, want);
        if (!memmem(data, hlen, want, 28)) {
            kill_client(i, "bad Sec-WebSocket-Accept");
            return -1;
        }
        c->state = C_REGISTERING;
        send_update(i);
        if (c->state == C_DEAD)
            return -1;
        off = hlen;
    }
    while (off < len) {
        lg_frame f;
        int r = lg_ws_parse(data + off, len - off, 1u << 20, &f);
        if (r == 0)
            break;
        if (r < 0) {
            note(&G.v_proto, "c%u: bad frame", i);
            kill_client(i, "bad frame");
            return -1;
        }
        uint8_t *p = data + off + f.header_len;
        size_t plen = (size_t)f.payload_len;
        off += f.header_len + plen;
        if (f.opcode == LG_WS_TEXT) {
            char type[32];
            lg_jcur d;
            if (lg_j_envelope((const char *)p, plen, type, sizeof type, &d)) {
                note(&G.v_proto, "c%u: unparsable message", i);
            } else if (strcmp(type, "NearbyPeers") == 0) {
                on_peers(i, d, now);
            } else if (strcmp(type, "ReceiveOffer") == 0) {
                on_offer(i, d, now);
            } else if (strcmp(type, "Error") == 0) {
                on_error(i, d);
            } else {
                note(&G.v_proto, "c%u: unexpected message %s", i, type);
            }
        } else if (f.opcode == LG_WS_PING) {
            send_frame(i, LG_WS_PONG, p, plen);
        } else if (f.opcode == LG_WS_CLOSE) {
            char why[96];
            int code = plen >= 2 ? (p[0] << 8 | p[1]) : 0;
            snprintf(why, sizeof why, "closed by server (code %d)", code);
            kill_client(i, why);
            return -1;
        }
        if (c->state == C_DEAD)
            return -1;
    }
    return (long)off;
}

static void on_readable(uint32_t i, uint64_t now)
{
    static uint8_t rbuf[1 << 16];
    client *c = &G.cl[i];
    ssize_t n = recv(c->fd, rbuf, sizeof rbuf, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        kill_client(i, n == 0 ? "connection closed by server" : strerror(errno));
        return;
    }
    if (n < 0)
        return;
    G.last_rx_t = now;
    uint8_t *data = rbuf;
    size_t len = (size_t)n;
    if (c->in_len) {
        if ((size_t)c->in_len + len > c->in_cap) {
            size_t cap = c->in_cap ? c->in_cap : 1024;
            while (cap < (size_t)c->in_len + len)
                cap *= 2;
            c->in = realloc(c->in, cap);
            if (!c->in)
                die("out of memory");
            c->in_cap = (uint32_t)cap;
        }
        memcpy(c->in + c->in_len, rbuf, len);
        c->in_len += (uint32_t)len;
        data = c->in;
        len = c->in_len;
    }
    long used = consume(i, data, len, now);
    if (used < 0 || c->state == C_DEAD)
        return;
    size_t left = len - (size_t)used;
    if (data == c->in) {
        memmove(c->in, c->in + used, left);
        c->in_len = (uint32_t)left;
    } else if (left) {
        if (left > c->in_cap) {
            c->in = realloc(c->in, left);
            if (!c->in)
                die("out of memory");
            c->in_cap = (uint32_t)left;
        }
        memcpy(c->in, data + used, left);
        c->in_len = (uint32_t)left;
    }
}

/* ---- metrics and Redis INFO over a blocking loopback socket ------------------------ */

static char *fetch(int port, const char *req, int redis)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    struct timeval tv = {.tv_sec = 2};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(0x7f000001)};
    if (connect(fd, (struct sockaddr *)&dst, sizeof dst) != 0 ||
        send(fd, req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req)) {
        close(fd);
        return NULL;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (len + 4096 > cap)
            buf = realloc(buf, cap *= 2);
        ssize_t r = recv(fd, buf + len, cap - len - 1, 0);
        if (r <= 0)
            break;
        len += (size_t)r;
        if (redis) { /* "$<n>\r\n" + n bytes + "\r\n" */
            buf[len] = '\0';
            char *nl = strstr(buf, "\r\n");
            if (buf[0] == '$' && nl && len >= (size_t)(nl - buf) + 2 + strtoul(buf + 1, NULL, 10) + 2)
                break;
        }
    }
    buf[len] = '\0';
    close(fd);
    return buf;
}

static char *node_metrics(int k)
{
    return fetch(O.ports[k], "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", 0);
}
static char *redis_info(void) { return O.redis_port ? fetch(O.redis_port, "INFO all\r\n", 1) : NULL; }

/* The sum of the samples whose name{labels} starts with key (a Prometheus text). */
static double metric(const char *text, const char *key)
{
    if (!text)
        return NAN;
    double sum = 0;
    int found = 0;
    size_t kl = strlen(key);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (*p == '#' || strncmp(p, key, kl) != 0)
            continue;
        const char *sp = strchr(p, ' ');
        const char *nl = strchr(p, '\n');
        if (!sp || (nl && sp > nl))
            continue;
        /* a bare name must end at the key, or continue with labels */
        if (p[kl] != ' ' && p[kl] != '{' && key[kl - 1] != '}')
            continue;
        sum += strtod(sp + 1, NULL);
        found = 1;
    }
    return found ? sum : NAN;
}

/* "key:value" of Redis INFO; for cmdstat lines, field "calls=". */
static double info(const char *text, const char *key)
{
    if (!text)
        return NAN;
    char k[128];
    snprintf(k, sizeof k, "\n%s:", key);
    const char *p = strstr(text, k);
    if (!p)
        return NAN;
    p += strlen(k);
    if (strncmp(p, "calls=", 6) == 0)
        p += 6;
    return strtod(p, NULL);
}

/* 1 while pid runs (a zombie, killed but not reaped yet, does not) */
static int running(int pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

static double proc_cpu(int pid) { return pid > 0 ? lg_proc_cpu_seconds(pid) : NAN; }

/* ---- phases ----------------------------------------------------------------------- */

static uint64_t pace(double rate, uint64_t t0, uint64_t *issued, uint64_t now)
{
    if (rate <= 0)
        return 0;
    uint64_t want = (uint64_t)(rate * (double)(now - t0) / 1e9);
    if (want <= *issued)
        return 0;
    uint64_t n = want - *issued, cap = (uint64_t)(rate * 0.05) + 1;
    *issued = want;
    if (n > cap) {
        G.lagged += n - cap;
        n = cap;
    }
    return n;
}

static uint32_t next_ready(uint32_t *rr)
{
    for (uint32_t k = 0; k < G.n; k++) {
        uint32_t i = *rr;
        *rr = *rr + 1 == G.n ? 0 : *rr + 1;
        if (G.cl[i].state == C_READY)
            return i;
    }
    return UINT32_MAX;
}

static void random_step(client *c)
{
    int s = O.step;
    for (int t = 0; t < 8; t++) {
        int32_t nx = c->x + (int32_t)rnd_below((uint32_t)(2 * s + 1)) - s;
        int32_t ny = c->y + (int32_t)rnd_below((uint32_t)(2 * s + 1)) - s;
        nx = nx < 0 ? 0 : nx >= G.side ? G.side - 1 : nx;
        ny = ny < 0 ? 0 : ny >= G.side ? G.side - 1 : ny;
        if (nx != c->x || ny != c->y) {
            c->x = nx;
            c->y = ny;
            return;
        }
    }
}

static void do_update(uint64_t now)
{
    uint32_t i = next_ready(&G.pu_rr);
    if (i == UINT32_MAX)
        return;
    client *c = &G.cl[i];
    if (c->out_len - c->out_off > OUT_LIMIT) {
        G.blocked++;
        return;
    }
    random_step(c);
    send_update(i);
    G.updates++;
    G.upd_by_node[c->node]++;
    on_moved(i, now);
}

static void do_relay(void)
{
    for (int tries = 0; tries < 64; tries++) {
        uint32_t i = next_ready(&G.pr_rr);
        if (i == UINT32_MAX)
            return;
        client *c = &G.cl[i];
        if (!c->npeers)
            continue;
        uint32_t t = c->peers[rnd_below(c->npeers)];
        if (t == UINT32_MAX || t == i || G.cl[t].state != C_READY)
            continue;
        int n = snprintf(G.scratch, 4096,
                         "{\"type\":\"SendOffer\",\"data\":{\"target_id\":\"c%u\",\"offer\":\"", t);
        int p0 = n;
        n += snprintf(G.scratch + n, 4096, "%llu:%u:%u:", (unsigned long long)now_ns(), i, t);
        int pad = O.relay_bytes - (n - p0);
        if (pad > 0) {
            memset(G.scratch + n, 'x', (size_t)pad);
            n += pad;
        }
        memcpy(G.scratch + n, "\"}}", 3);
        n += 3;
        send_frame(i, LG_WS_TEXT, G.scratch, (size_t)n);
        G.relays++;
        return;
    }
}

/* busy and total jiffies of the whole machine */
static void machine(unsigned long long out[2])
{
    out[0] = out[1] = 0;
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return;
    unsigned long long v[10] = {0};
    if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
               &v[5], &v[6], &v[7]) == 8) {
        unsigned long long idle = v[3] + v[4], tot = 0;
        for (int k = 0; k < 8; k++)
            tot += v[k];
        out[0] = tot - idle;
        out[1] = tot;
    }
    fclose(f);
}

static void snapshot(int end)
{
    machine(end ? G.sys1 : G.sys0);
    uint64_t t0 = now_ns();
    if (!end)
        memcpy(G.owner_win, G.owner, sizeof G.owner);
    for (int k = 0; k < O.npids; k++)
        (end ? G.cpu1 : G.cpu0)[k] = proc_cpu(O.pids[k]);
    for (int k = 0; k < O.nports; k++)
        (end ? G.met1 : G.met0)[k] = node_metrics(k);
    char *inf = redis_info();
    if (inf && !G.redis_pid)
        G.redis_pid = (int)info(inf, "process_id");
    if (end) {
        G.info1 = inf;
        G.rcpu1 = proc_cpu(G.redis_pid);
        G.self1 = lg_proc_cpu_seconds(0);
    } else {
        G.info0 = inf;
        G.rcpu0 = proc_cpu(G.redis_pid);
        G.self0 = lg_proc_cpu_seconds(0);
    }
    G.snap_ms[end] = (double)(now_ns() - t0) / 1e6;
}

static int all_quiet(uint64_t now, uint64_t since) { return now - G.last_rx_t >= since; }

static void refresh_all(void)
{
    G.n_final_asked = G.n_final_got = 0;
    for (uint32_t i = 0; i < G.n; i++) {
        client *c = &G.cl[i];
        if (c->state != C_READY)
            continue;
        c->final_asked = 1;
        c->final_got = 0;
        G.n_final_asked++;
        send_refresh(i);
    }
}

static void relay_snapshot(void)
{
    if (G.relay_snapshot_done)
        return;
    G.relay_snapshot_done = 1;
    G.rs_sent = G.relays;
    G.rs_recv = G.rx_relay;
    G.rs_refused = G.refused;
}

static int redis_accepting(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)O.redis_port),
                              .sin_addr.s_addr = htonl(0x7f000001)};
    int ok = connect(fd, (struct sockaddr *)&dst, sizeof dst) == 0;
    close(fd);
    return ok;
}

static void start_settle(uint64_t now)
{
    G.moving = G.relaying = 0;
    for (uint32_t i = 0; i < G.n; i++) {
        if (G.cl[i].state != C_READY)
            continue;
        random_step(&G.cl[i]);
        send_update(i);
    }
    G.phase = P_SETTLE;
    G.phase_t = now;
}

static void start_moving(uint64_t now)
{
    G.moving = 1;
    G.pu_rate = O.update_rate * G.n_ready;
    G.pu_t0 = now;
    G.pu_issued = 0;
}

static void after_window(uint64_t now)
{
    if (O.fault_redis) {
        G.moving = G.relaying = 0;
        G.phase = P_RQUIET;
    } else if (O.fault_kill != -1) {
        G.relaying = 0;
        G.phase = P_KMOVE;
    } else {
        start_settle(now);
        return;
    }
    G.phase_t = now;
}

static void tick(uint64_t now)
{
    if (G.moving) {
        uint64_t k = pace(G.pu_rate, G.pu_t0, &G.pu_issued, now);
        while (k--)
            do_update(now);
    }
    if (G.relaying) {
        uint64_t k = pace(G.pr_rate, G.pr_t0, &G.pr_issued, now);
        while (k--)
            do_relay();
    }
    uint64_t since = now - G.phase_t;
    switch (G.phase) {
    case P_CONNECT: {
        uint64_t due = (uint64_t)(O.connect_rate * (double)(now - G.connect_t0) / 1e9) + 1;
        while (G.next_connect < G.n && G.next_connect < due && G.pending < 256)
            start_connect(G.next_connect++);
        if (now - G.connect_t0 > 60000000000ull) {
            for (uint32_t i = 0; i < G.n; i++)
                if (G.cl[i].state != C_READY && G.cl[i].state != C_DEAD)
                    kill_client(i, "not registered within 60 s");
            G.next_connect = G.n;
        }
        if (G.next_connect == G.n && G.pending == 0) {
            G.connect_done_t = now;
            if (!G.n_ready) {
                G.phase = P_DONE;
                break;
            }
            G.phase = P_LOAD;
            G.phase_t = G.load_t0 = now;
            start_moving(now);
            G.relaying = 1;
            G.pr_rate = O.relay_rate * G.n_ready;
            G.pr_t0 = now;
            G.pu_rr = rnd_below(G.n);
            G.pr_rr = rnd_below(G.n);
            G.win_start = now + (uint64_t)(O.warmup * 1e9);
            G.win_end = G.win_start + (uint64_t)(O.duration * 1e9);
        }
        break;
    }
    case P_LOAD:
        if (!G.recording && now >= G.win_start && !G.w_updates0) {
            snapshot(0);
            now = now_ns();
            G.win_start = now;
            G.win_end = now + (uint64_t)(O.duration * 1e9);
            G.recording = 1;
            G.w_updates0 = G.updates + 1; /* +1: marks the window as opened */
            G.w_relays0 = G.relays;
            G.w_np0 = G.rx_np;
            G.w_rxrel0 = G.rx_relay;
            memcpy(G.upd_by_node0, G.upd_by_node, sizeof G.upd_by_node);
        } else if (G.recording && now >= G.win_end) {
            G.recording = 0;
            G.win_end = now;
            /* lists still owed would be timed across the snapshot's stall: not counted */
            for (uint32_t i = 0; i < G.n; i++)
                for (uint32_t k = 0; k < G.cl[i].nexp; k++)
                    G.cl[i].exp[k].rec = 0;
            G.w_updates1 = G.updates + 1;
            G.w_relays1 = G.relays;
            G.w_np1 = G.rx_np;
            G.w_rxrel1 = G.rx_relay;
            memcpy(G.upd_by_node1, G.upd_by_node, sizeof G.upd_by_node);
            snapshot(1);
            after_window(now_ns());
        }
        break;
    /* ---- Redis: stop, check, kill, restart, converge ---- */
    case P_RQUIET:
        if ((since > 500000000ull && all_quiet(now, QUIET_NS)) || since > 10000000000ull) {
            relay_snapshot();
            refresh_all();
            G.phase = P_RREFRESH;
            G.phase_t = now;
        }
        break;
    case P_RREFRESH:
        if ((G.n_final_got >= G.n_final_asked && all_quiet(now, QUIET_NS)) || since > 10000000000ull) {
            G.r_wrong = 0;
            for (uint32_t i = 0; i < G.n; i++) {
                client *c = &G.cl[i];
                c->right = c->state == C_READY ? (uint8_t)list_right(i) : 1;
                G.r_wrong += !c->right;
            }
            G.r_baseline_wrong = G.r_wrong;
            if (G.r_wrong)
                note(&G.v_missing, "before the Redis fault, with nobody moving, %u lists are wrong", G.r_wrong);
            if (G.redis_pid <= 0 || kill(G.redis_pid, SIGKILL) != 0) {
                note(&G.v_crash, "could not kill Redis (pid %d)", G.redis_pid);
                G.phase = P_KMOVE;
            } else {
                G.r_kill_t = now_ns();
                G.phase = P_RDOWN;
            }
            G.phase_t = now_ns();
        }
        break;
    case P_RDOWN:
        if (since >= (uint64_t)(O.outage * 1e9)) {
            G.r_restart_rc = system(O.redis_restart);
            for (int t = 0; t < 500 && !redis_accepting(); t++)
                usleep(10000);
            now = now_ns();
            G.r_up_t = now;
            G.r_wrong = 0;
            for (uint32_t i = 0; i < G.n; i++) {
                client *c = &G.cl[i];
                c->right = c->state == C_READY ? (uint8_t)list_right(i) : 1;
                G.r_wrong += !c->right;
            }
            G.r_wrong_at_up = G.r_wrong;
            if (!G.r_wrong)
                G.r_right_t = now;
            G.phase = P_RCONV;
            G.phase_t = now;
            G.redis_pid = 0;
            char *inf = redis_info();
            if (inf)
                G.redis_pid = (int)info(inf, "process_id");
            free(inf);
        }
        break;
    case P_RCONV:
        if ((G.r_wrong == 0 && since > 1000000000ull && all_quiet(now, 500000000ull)) ||
            since > (uint64_t)(O.fault_timeout * 1e9)) {
            G.r_done = 1;
            G.phase_t = now;
            if (G.r_wrong) { /* not right in time: do the nodes know better than they said? */
                describe_wrong("at the timeout after Redis came back");
                refresh_all();
                G.r_refreshed = 1;
                G.phase = P_RCHECK;
            } else if (O.fault_kill == -1) {
                start_settle(now);
            } else {
                G.phase = P_KMOVE;
                start_moving(now);
            }
        }
        break;
    case P_RCHECK:
        if ((G.n_final_got >= G.n_final_asked && all_quiet(now, QUIET_NS)) || since > 10000000000ull) {
            uint32_t w = 0;
            for (uint32_t i = 0; i < G.n; i++)
                w += G.cl[i].state == C_READY && !list_right(i);
            G.r_wrong_after_refresh = w + 1; /* +1: measured */
            G.phase_t = now;
            if (O.fault_kill == -1) {
                start_settle(now);
            } else {
                G.phase = P_KMOVE;
                start_moving(now);
            }
        }
        break;
    /* ---- a node: keep moving, kill it, wait until nobody lists its clients ---- */
    case P_KMOVE:
        if (!G.moving)
            start_moving(now);
        if (since >= (uint64_t)(O.kill_after * 1e9)) {
            int k = O.fault_kill;
            if (k == -2) { /* the node serving the most maps */
                int cnt[MAXN] = {0};
                for (uint32_t m = 0; m < O.maps; m++)
                    cnt[G.owner[m]]++;
                k = 0;
                for (int j = 1; j < O.nports; j++)
                    if (cnt[j] > cnt[k])
                        k = j;
            }
            G.k_node = k;
            G.k_bad = 0;
            for (uint32_t i = 0; i < G.n; i++)
                if (G.cl[i].node == k) {
                    G.cl[i].dead_set = 1;
                    G.k_dead_clients++;
                }
            for (uint32_t i = 0; i < G.n; i++) {
                client *c = &G.cl[i];
                c->bad = c->state == C_READY && !c->dead_set && lists_dead(c);
                G.k_bad += c->bad;
            }
            G.k_bad_at_kill = G.k_bad;
            G.k_kill_t = now_ns();
            if (kill(O.pids[k], SIGKILL) != 0)
                note(&G.v_crash, "could not kill node %d (pid %d)", k, O.pids[k]);
            G.alive[k] = 0;
            if (!G.k_bad)
                G.k_clear_t = G.k_kill_t;
            G.phase = P_KCONV;
            G.phase_t = now;
        }
        break;
    case P_KCONV:
        if ((G.k_clear_t && now - G.k_clear_t > 1000000000ull) ||
            since > (uint64_t)(O.fault_timeout * 1e9)) {
            G.k_done = 1;
            compute_owners();
            start_settle(now);
        }
        break;
    case P_SETTLE:
        if ((since >= (uint64_t)(O.settle * 1e9) && all_quiet(now, QUIET_NS)) || since > 20000000000ull) {
            relay_snapshot();
            refresh_all();
            G.phase = P_FINAL;
            G.phase_t = now;
        }
        break;
    case P_FINAL:
        if ((G.n_final_got >= G.n_final_asked && all_quiet(now, QUIET_NS)) || since > 20000000000ull)
            G.phase = P_DONE;
        break;
    case P_DONE:
        break;
    }
}

/* ---- the final check ---------------------------------------------------------------- */

static void check(void)
{
    int64_t r2 = (int64_t)O.radius * O.radius, l2 = (int64_t)O.leave_radius * O.leave_radius;
    for (uint32_t i = 0; i < G.n; i++) {
        client *c = &G.cl[i];
        if (c->state != C_READY)
            continue;
        if (!c->final_got) {
            note(&G.v_nofinal, "c%u (node %d): no list after the final refresh", i, c->node);
            continue;
        }
        for (uint32_t k = 0; k < c->npeers; k++) {
            uint32_t p = c->peers[k];
            if (p == UINT32_MAX || p == i) {
                note(&G.v_bad, "c%u: lists an unknown id or itself", i);
            } else if (G.cl[p].state != C_READY) {
                note(&G.v_extra, "c%u (node %d) lists c%u (node %d), which is gone", i, c->node, p,
                     G.cl[p].node);
            } else if (G.cl[p].map != c->map || d2(c, &G.cl[p]) > l2) {
                note(&G.v_extra, "c%u (node %d) lists c%u (node %d) beyond the leave radius", i,
                     c->node, p, G.cl[p].node);
            }
        }
        for (uint32_t k = 0; k < G.nmembers[c->map]; k++) {
            uint32_t j = G.members[c->map][k];
            if (j != i && G.cl[j].state == C_READY && d2(c, &G.cl[j]) <= r2 && !lists(c, j))
                note(&G.v_missing, "c%u (node %d, map %u) misses c%u (node %d) at distance^2 %lld",
                     i, c->node, c->map, j, G.cl[j].node, (long long)d2(c, &G.cl[j]));
        }
    }
}

/* ---- report --------------------------------------------------------------------------- */

static double msf(uint64_t ns) { return (double)ns / 1e6; }

static void jhist(const char *name, const lg_hist *h)
{
    printf("\"%s\":{\"count\":%llu,\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f}", name,
           (unsigned long long)h->n, msf(lg_hist_quantile(h, 0.5)), msf(lg_hist_quantile(h, 0.99)),
           msf(h->max));
}

static void jnum(const char *name, double v)
{
    if (isnan(v) || isinf(v))
        printf("\"%s\":null", name);
    else
        printf("\"%s\":%.6g", name, v);
}

static double delta(const char *a, const char *b, const char *key) { return metric(b, key) - metric(a, key); }

static void report(void)
{
    double win = (double)(G.win_end - G.win_start) / 1e9;
    double upd = (double)(G.w_updates1 - G.w_updates0);
    printf("{\"tool\":\"earshot-clustergen\",\"config\":{\"nodes\":%d,\"clients\":%u,\"maps\":%u,"
           "\"density\":%g,\"map_side\":%d,\"update_rate\":%g,\"relay_rate\":%g,\"relay_bytes\":%d,"
           "\"warmup\":%g,\"duration\":%g,\"seed\":%llu},",
           O.nports, O.clients, O.maps, O.density, G.side, O.update_rate, O.relay_rate,
           O.relay_bytes, O.warmup, O.duration, (unsigned long long)O.seed);
    printf("\"owners\":[");
    for (uint32_t m = 0; m < O.maps; m++)
        printf("%s%d", m ? "," : "", O.nnames > 1 ? G.owner_win[m] : 0);
    printf("],\"registered\":%u,\"failed\":%u,\"connect_s\":%.3f,", G.n_ready + 0, G.n_failed,
           (double)(G.connect_done_t - G.connect_t0) / 1e9);
    printf("\"window_s\":%.4f,\"updates\":%.0f,\"relays\":%llu,\"nearby_peers\":%llu,"
           "\"relays_received\":%llu,\"lagged_slots\":%llu,\"blocked_sends\":%llu,",
           win, upd, (unsigned long long)(G.w_relays1 - G.w_relays0),
           (unsigned long long)(G.w_np1 - G.w_np0), (unsigned long long)(G.w_rxrel1 - G.w_rxrel0),
           (unsigned long long)G.lagged, (unsigned long long)G.blocked);
    printf("\"nodes_detail\":[");
    for (int k = 0; k < O.nports; k++) {
        const char *a = G.met0[k], *b = G.met1[k];
        printf("%s{\"port\":%d,\"pid\":%d,", k ? "," : "", O.ports[k], k < O.npids ? O.pids[k] : 0);
        jnum("cpu_s", k < O.npids ? G.cpu1[k] - G.cpu0[k] : NAN);
        printf(",\"updates_from_its_clients\":%llu,",
               (unsigned long long)(G.upd_by_node1[k] - G.upd_by_node0[k]));
        jnum("msgs_in", delta(a, b, "earshot_messages_in_total"));
        putchar(',');
        jnum("msgs_out", delta(a, b, "earshot_messages_out_total"));
        putchar(',');
        jnum("nearby_out", delta(a, b, "earshot_messages_out_total{type=\"NearbyPeers\"}"));
        putchar(',');
        jnum("bus_msgs_out", delta(a, b, "earshot_cluster_bus_messages_total{direction=\"out\"}"));
        putchar(',');
        jnum("bus_msgs_in", delta(a, b, "earshot_cluster_bus_messages_total{direction=\"in\"}"));
        putchar(',');
        jnum("bus_packets_out", delta(a, b, "earshot_cluster_bus_packets_total{direction=\"out\"}"));
        putchar(',');
        jnum("bus_packets_in", delta(a, b, "earshot_cluster_bus_packets_total{direction=\"in\"}"));
        putchar(',');
        jnum("bus_bytes_out", delta(a, b, "earshot_cluster_bus_bytes_total{direction=\"out\"}"));
        putchar(',');
        jnum("bus_bytes_in", delta(a, b, "earshot_cluster_bus_bytes_total{direction=\"in\"}"));
        putchar(',');
        jnum("bus_rejected", delta(a, b, "earshot_cluster_bus_rejected_total"));
        putchar(',');
        jnum("remote_clients", metric(b, "earshot_cluster_remote_clients"));
        putchar(',');
        jnum("forwarded_connections", metric(b, "earshot_cluster_forwarded_connections"));
        putchar(',');
        jnum("cluster_nodes", metric(b, "earshot_cluster_nodes"));
        /* what the owner prediction says this node serves for others */
        uint32_t pred = 0;
        for (uint32_t i = 0; i < G.n && O.nnames > 1; i++)
            pred += G.owner_win[G.cl[i].map] == k && G.cl[i].node != k;
        printf(",\"predicted_remote_clients\":%u}", pred);
    }
    printf("],");
    const char *a = G.info0, *b = G.info1;
    printf("\"redis\":{");
    jnum("cpu_s_proc", G.rcpu1 - G.rcpu0);
    putchar(',');
    jnum("used_cpu_s", info(b, "used_cpu_sys") + info(b, "used_cpu_user") - info(a, "used_cpu_sys") -
                           info(a, "used_cpu_user"));
    putchar(',');
    jnum("commands", info(b, "total_commands_processed") - info(a, "total_commands_processed"));
    putchar(',');
    jnum("publish_calls", info(b, "cmdstat_publish") - info(a, "cmdstat_publish"));
    putchar(',');
    jnum("instantaneous_ops_per_sec", info(b, "instantaneous_ops_per_sec"));
    putchar(',');
    jnum("net_input_bytes", info(b, "total_net_input_bytes") - info(a, "total_net_input_bytes"));
    putchar(',');
    jnum("net_output_bytes", info(b, "total_net_output_bytes") - info(a, "total_net_output_bytes"));
    putchar(',');
    jnum("pubsub_channels", info(b, "pubsub_channels"));
    putchar(',');
    jnum("pubsub_patterns", info(b, "pubsub_patterns"));
    putchar(',');
    jnum("connected_clients", info(b, "connected_clients"));
    printf("},");
    jnum("generator_cpu_s", G.self1 - G.self0);
    {
        long hz = sysconf(_SC_CLK_TCK);
        double busy = (double)(G.sys1[0] - G.sys0[0]) / (double)hz;
        double mine = G.self1 - G.self0 + (isnan(G.rcpu1 - G.rcpu0) ? 0 : G.rcpu1 - G.rcpu0);
        for (int k = 0; k < O.npids; k++)
            mine += G.cpu1[k] - G.cpu0[k];
        printf(",\"machine\":{\"cpus\":%ld,\"busy_cores\":%.3f,\"others_cores\":%.3f}",
               sysconf(_SC_NPROCESSORS_ONLN), busy / ((double)(G.win_end - G.win_start) / 1e9),
               (busy - mine) / ((double)(G.win_end - G.win_start) / 1e9));
    }
    printf(",\"latency_ms\":{");
    jhist("match_mover_own_list", &G.h_match[0]);
    putchar(',');
    jhist("match_same_node", &G.h_match[1]);
    putchar(',');
    jhist("match_cross_node", &G.h_match[2]);
    putchar(',');
    jhist("match_hops0", &G.h_match_hops[0]);
    putchar(',');
    jhist("match_hops1", &G.h_match_hops[1]);
    putchar(',');
    jhist("match_hops2", &G.h_match_hops[2]);
    putchar(',');
    jhist("relay_same_node", &G.h_relay[0]);
    putchar(',');
    jhist("relay_cross_node", &G.h_relay[1]);
    putchar(',');
    jhist("relay_hops0", &G.h_relay_hops[0]);
    putchar(',');
    jhist("relay_hops1", &G.h_relay_hops[1]);
    putchar(',');
    jhist("relay_hops2", &G.h_relay_hops[2]);
    printf(",\"worst_match_ms\":%.3f,\"worst_match_at_s\":%.3f,\"snapshot_ms\":[%.1f,%.1f]", msf(G.worst_v),
           G.worst_t ? ((double)G.worst_t - (double)G.win_start) / 1e9 : -1.0, G.snap_ms[0], G.snap_ms[1]);
    printf("},\"expectations\":{\"overflow\":%llu,\"cancelled\":%llu,\"stale\":%llu},",
           (unsigned long long)G.exp_overflow, (unsigned long long)G.exp_cancelled,
           (unsigned long long)G.exp_stale);
    printf("\"relays_total\":{\"sent\":%llu,\"received\":%llu,\"refused\":%llu,\"lost\":%lld},",
           (unsigned long long)G.rs_sent, (unsigned long long)G.rs_recv,
           (unsigned long long)G.rs_refused, (long long)G.rs_sent - (long long)G.rs_recv - (long long)G.rs_refused);
    if (O.fault_redis) {
        printf("\"redis_fault\":{\"outage_s\":%g,\"baseline_wrong\":%u,\"wrong_max_in_outage\":%u,"
               "\"first_wrong_after_kill_ms\":%s%.1f,\"wrong_when_back\":%u,\"restart_rc\":%d,",
               O.outage, G.r_baseline_wrong, G.r_wrong_max_outage, "",
               G.r_first_wrong_t ? msf(G.r_first_wrong_t - G.r_kill_t) : -1.0, G.r_wrong_at_up,
               G.r_restart_rc);
        printf("\"right_after_back_ms\":");
        if (G.r_right_t && G.r_wrong == 0)
            printf("%.1f", msf(G.r_right_t - G.r_up_t));
        else
            printf("null");
        printf(",\"wrong_at_timeout\":%u,\"missing_same_node\":%u,\"missing_other_node\":%u,"
               "\"extra\":%u,\"wrong_after_refresh\":%d},",
               G.r_done ? G.r_wrong : 0, G.r_miss_same, G.r_miss_other, G.r_extra,
               (int)G.r_wrong_after_refresh - 1);
    }
    if (O.fault_kill != -1) {
        printf("\"kill_fault\":{\"node\":%d,\"dead_clients\":%u,\"listing_dead_at_kill\":%u,",
               G.k_node, G.k_dead_clients, G.k_bad_at_kill);
        printf("\"no_list_names_dead_ms\":");
        if (G.k_clear_t)
            printf("%.1f", msf(G.k_clear_t - G.k_kill_t));
        else
            printf("null");
        printf(",\"still_listing_dead\":%u,\"relisted_after_clear\":%u,\"last_list_naming_dead_ms\":%.1f},",
               G.k_bad, G.k_rebad, G.k_last_dead_list_t ? msf(G.k_last_dead_list_t - G.k_kill_t) : -1.0);
    }
    printf("\"check\":{\"survivors\":%u,\"peer_missing\":%llu,\"peer_extra\":%llu,\"peer_bad\":%llu,"
           "\"no_final_reply\":%llu,\"clients_dropped\":%llu,\"protocol_errors\":%llu,"
           "\"server_errors\":%llu,\"crashes\":%llu,\"violations\":[",
           G.n_ready, (unsigned long long)G.v_missing, (unsigned long long)G.v_extra,
           (unsigned long long)G.v_bad, (unsigned long long)G.v_nofinal,
           (unsigned long long)G.v_dropped, (unsigned long long)G.v_proto,
           (unsigned long long)G.v_srverr, (unsigned long long)G.v_crash);
    for (uint32_t k = 0; k < G.nvmsg; k++) {
        printf("%s\"", k ? "," : "");
        for (const char *s = G.vmsg[k]; *s; s++)
            if (*s == '"' || *s == '\\')
                printf("\\%c", *s);
            else
                putchar(*s);
        putchar('"');
    }
    printf("]}}\n");
}

/* ---- options --------------------------------------------------------------------------- */

static int int_list(const char *s, int *out)
{
    int n = 0;
    for (const char *p = s; *p && n < MAXN;) {
        out[n++] = (int)strtol(p, (char **)&p, 10);
        if (*p == ',')
            p++;
        else
            break;
    }
    return n;
}

static void usage(void)
{
    fputs("usage: clustergen --ports P1,P2,.. [--pids PID1,..] [--names n1,..] [--redis-port P]\n"
          "  [--clients N] [--maps M] [--density D] [--update-rate R] [--relay-rate R] [--relay-bytes B]\n"
          "  [--warmup S] [--duration S] [--settle S] [--seed N] [--connect-rate R]\n"
          "  [--fault-redis --redis-restart CMD --outage S] [--fault-kill K|auto --kill-after S]\n"
          "  [--fault-timeout S]\n"
          "Ports are 127.0.0.1's; client i connects to port i %% P, on map (i / P) %% M.\n",
          stderr);
}

int main(int argc, char **argv)
{
    O.clients = 3000;
    O.maps = 6;
    O.density = 5;
    O.update_rate = 2;
    O.relay_rate = 0.1;
    O.relay_bytes = 200;
    O.connect_rate = 2000;
    O.radius = 20;
    O.leave_radius = 25;
    O.step = 3;
    O.warmup = 3;
    O.duration = 10;
    O.settle = 1;
    O.outage = 2;
    O.fault_timeout = 15;
    O.kill_after = 2;
    O.seed = 1;
    O.fault_kill = -1;
    enum { O_PORTS = 256, O_PIDS, O_NAMES, O_RPORT, O_CLIENTS, O_MAPS, O_DENS, O_URATE, O_RRATE,
           O_RBYTES, O_WARM, O_DUR, O_SETTLE, O_SEED, O_CRATE, O_FREDIS, O_RRESTART, O_OUTAGE,
           O_FKILL, O_KAFTER, O_FTIMEOUT };
    static const struct option lo[] = {
        {"ports", 1, 0, O_PORTS}, {"pids", 1, 0, O_PIDS}, {"names", 1, 0, O_NAMES},
        {"redis-port", 1, 0, O_RPORT}, {"clients", 1, 0, O_CLIENTS}, {"maps", 1, 0, O_MAPS},
        {"density", 1, 0, O_DENS}, {"update-rate", 1, 0, O_URATE}, {"relay-rate", 1, 0, O_RRATE},
        {"relay-bytes", 1, 0, O_RBYTES}, {"warmup", 1, 0, O_WARM}, {"duration", 1, 0, O_DUR},
        {"settle", 1, 0, O_SETTLE}, {"seed", 1, 0, O_SEED}, {"connect-rate", 1, 0, O_CRATE},
        {"fault-redis", 0, 0, O_FREDIS}, {"redis-restart", 1, 0, O_RRESTART},
        {"outage", 1, 0, O_OUTAGE}, {"fault-kill", 1, 0, O_FKILL}, {"kill-after", 1, 0, O_KAFTER},
        {"fault-timeout", 1, 0, O_FTIMEOUT}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (ch) {
        case O_PORTS: O.nports = int_list(optarg, O.ports); break;
        case O_PIDS: O.npids = int_list(optarg, O.pids); break;
        case O_NAMES: {
            char *s = strdup(optarg), *save = NULL;
            for (char *t = strtok_r(s, ",", &save); t && O.nnames < MAXN; t = strtok_r(NULL, ",", &save))
                snprintf(O.names[O.nnames++], sizeof O.names[0], "%s", t);
            free(s);
            break;
        }
        case O_RPORT: O.redis_port = atoi(optarg); break;
        case O_CLIENTS: O.clients = (uint32_t)atol(optarg); break;
        case O_MAPS: O.maps = (uint32_t)atol(optarg); break;
        case O_DENS: O.density = atof(optarg); break;
        case O_URATE: O.update_rate = atof(optarg); break;
        case O_RRATE: O.relay_rate = atof(optarg); break;
        case O_RBYTES: O.relay_bytes = atoi(optarg); break;
        case O_WARM: O.warmup = atof(optarg); break;
        case O_DUR: O.duration = atof(optarg); break;
        case O_SETTLE: O.settle = atof(optarg); break;
        case O_SEED: O.seed = strtoull(optarg, NULL, 10); break;
        case O_CRATE: O.connect_rate = atof(optarg); break;
        case O_FREDIS: O.fault_redis = 1; break;
        case O_RRESTART: snprintf(O.redis_restart, sizeof O.redis_restart, "%s", optarg); break;
        case O_OUTAGE: O.outage = atof(optarg); break;
        case O_FKILL: O.fault_kill = strcmp(optarg, "auto") == 0 ? -2 : atoi(optarg); break;
        case O_KAFTER: O.kill_after = atof(optarg); break;
        case O_FTIMEOUT: O.fault_timeout = atof(optarg); break;
        default: usage(); exit(ch == 'h' ? 0 : 2);
        }
    }
    if (!O.nports || O.clients < 2 || O.maps < 1 || O.maps > 4096 || O.maps > O.clients)
        die("bad flags (need --ports; 1 <= maps <= min(clients, 4096))");
    if (O.fault_redis && (!O.redis_port || !O.redis_restart[0]))
        die("--fault-redis needs --redis-port and --redis-restart");
    if (O.fault_kill >= O.nports || (O.fault_kill != -1 && O.npids < O.nports))
        die("--fault-kill needs a node index and --pids for every node");
    if (O.duration < 1 || O.duration > 600 || O.warmup > 600 || O.outage > 60 || O.fault_timeout > 120)
        die("a phase is too long (each phase is bounded)");

    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    signal(SIGPIPE, SIG_IGN);

    G.n = O.clients;
    G.rng = O.seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
    double side = sqrt((double)G.n / O.maps * M_PI * O.radius * O.radius / O.density);
    G.side = (int32_t)ceil(side);
    G.cl = calloc(G.n, sizeof *G.cl);
    G.members = calloc(O.maps, sizeof *G.members);
    G.nmembers = calloc(O.maps, sizeof *G.nmembers);
    G.scratch = malloc(4096 + 70000);
    G.pbuf = malloc(70000 + 256);
    if (!G.cl || !G.members || !G.nmembers || !G.scratch || !G.pbuf)
        die("out of memory");
    if (O.relay_bytes > 2000)
        O.relay_bytes = 2000;
    for (uint32_t i = 0; i < G.n; i++) {
        client *c = &G.cl[i];
        c->fd = -1;
        c->node = (uint8_t)(i % (uint32_t)O.nports);
        c->map = (i / (uint32_t)O.nports) % O.maps;
        c->x = (int32_t)rnd_below((uint32_t)G.side);
        c->y = (int32_t)rnd_below((uint32_t)G.side);
        G.nmembers[c->map]++;
    }
    for (uint32_t m = 0; m < O.maps; m++) {
        G.members[m] = malloc(G.nmembers[m] * sizeof **G.members);
        G.nmembers[m] = 0;
    }
    for (uint32_t i = 0; i < G.n; i++)
        G.members[G.cl[i].map][G.nmembers[G.cl[i].map]++] = i;
    for (int k = 0; k < MAXN; k++)
        G.alive[k] = 1;
    compute_owners();
    for (int m = 0; m < 3; m++)
        lg_hist_reset(&G.h_match[m]), lg_hist_reset(&G.h_match_hops[m]), lg_hist_reset(&G.h_relay_hops[m]);
    lg_hist_reset(&G.h_relay[0]);
    lg_hist_reset(&G.h_relay[1]);

    G.ep = epoll_create1(EPOLL_CLOEXEC);
    G.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct itimerspec its = {.it_interval = {0, 1000000}, .it_value = {0, 1000000}};
    timerfd_settime(G.tfd, 0, &its, NULL);
    struct epoll_event tev = {.events = EPOLLIN, .data.u64 = UINT64_MAX};
    epoll_ctl(G.ep, EPOLL_CTL_ADD, G.tfd, &tev);

    G.phase = P_CONNECT;
    G.connect_t0 = G.phase_t = G.last_rx_t = now_ns();
    uint64_t hard_end = G.connect_t0 + (uint64_t)((60 + O.warmup + O.duration + 3 * O.fault_timeout +
                                                    O.outage + O.kill_after + 80) * 1e9);
    uint64_t last_sweep = G.connect_t0, last_alive = G.connect_t0;
    static struct epoll_event evs[1024];
    while (G.phase != P_DONE) {
        int n = epoll_wait(G.ep, evs, 1024, 100);
        if (n < 0 && errno != EINTR)
            die("epoll_wait: %s", strerror(errno));
        uint64_t now = now_ns();
        for (int k = 0; k < n; k++) {
            uint64_t id = evs[k].data.u64;
            if (id == UINT64_MAX) {
                uint64_t exp;
                if (read(G.tfd, &exp, sizeof exp) < 0 && errno != EAGAIN)
                    die("timerfd");
                tick(now);
                continue;
            }
            uint32_t i = (uint32_t)id;
            client *c = &G.cl[i];
            if (c->state == C_DEAD)
                continue;
            if (c->state == C_CONNECTING) {
                if (evs[k].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
                    connected(i);
                continue;
            }
            if ((evs[k].events & EPOLLOUT) && c->want_out)
                flush_client(i);
            if (c->state != C_DEAD && (evs[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
                on_readable(i, now_ns());
        }
        if (now - last_sweep > 1000000000ull && (G.phase == P_LOAD || G.phase == P_KMOVE)) {
            last_sweep = now;
            expect_sweep(now);
        }
        if (now - last_alive > 500000000ull) {
            last_alive = now;
            for (int k = 0; k < O.npids; k++)
                if (G.alive[k] && O.pids[k] > 0 && !running(O.pids[k])) {
                    G.alive[k] = 0;
                    note(&G.v_crash, "node %d (pid %d) died on its own", k, O.pids[k]);
                }
        }
        if (now > hard_end) {
            note(&G.v_crash, "clustergen: hard time limit reached in phase %d", G.phase);
            break;
        }
    }
    check();
    report();
    return 0;
}
