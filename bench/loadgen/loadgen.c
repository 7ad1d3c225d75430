/*
 * loadgen: a load generator and end-to-end checker for earshot.
 *
 * One thread, one epoll set, one periodic timerfd. N hand-written RFC 6455
 * clients (no libwebsockets: the generator must stay cheaper than the
 * server) connect over loopback at a bounded rate, register on M maps at a
 * chosen density, then random-walk, relay offers to their matched peers and
 * probe the server's queueing delay, all paced from the timer. At the end
 * every client stops, moves once more, asks for a refresh, and the final
 * NearbyPeers lists and the relay streams are checked exactly.
 *
 * Exit status: 0 all good, 1 a correctness check failed, 2 setup failed
 * (bad flags, clients that could not connect), 3 interrupted.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem, M_PI, IP_BIND_ADDRESS_NO_PORT */
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
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "hist.h"
#include "json.h"
#include "procstat.h"
#include "ws.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define LG_SCHEMA 1               /* version of the --json line; bump on any incompatible change */
#define TIMER_ID UINT64_MAX       /* epoll data of the timerfd */
#define OUT_LIMIT (64u << 10)     /* paced sends stop while this much waits for one socket */
#define IN_MAX_FRAME (1u << 20)   /* largest server frame we accept */
#define LAG_WINDOW_S 0.05         /* a pacer this far behind drops the backlog, counted as lag */
#define QUIET_NS 200000000ull     /* "nothing arrived for this long" in the final phases */
#define MAX_STORED_VIOLATIONS 64
#define MAX_ID_LEN 160
#define SCRATCH_BYTES (72u << 10)
#define MAX_RELAY_BYTES 60000u

/* ---- options ------------------------------------------------------------- */

typedef struct {
    char host[64];
    uint32_t host_addr; /* network order */
    int port;
    int server_pid;
    uint32_t clients;
    uint32_t maps;
    double density;
    int radius, leave_radius;
    double update_rate;
    int step;
    double relay_rate;
    uint32_t relay_bytes;
    double probe_rate;
    int probe_marker;
    int relay_anyone;
    int register_refresh;
    double connect_rate;
    uint32_t max_pending;
    uint32_t per_address;
    double warmup, duration, settle, connect_timeout, drain_timeout;
    double tick_ms;
    uint64_t seed;
    int json;
    int check;
    uint32_t max_violations;
    char path[256];
} opts;

/* ---- clients ------------------------------------------------------------- */

enum cstate { C_NEW, C_CONNECTING, C_UPGRADING, C_REGISTERING, C_READY, C_DEAD };

typedef struct {
    int fd;
    uint8_t state;
    uint8_t want_out;    /* EPOLLOUT is armed */
    uint8_t final_asked; /* the final RequestPeerRefresh went out */
    uint8_t final_got;   /* a NearbyPeers arrived after it */
    uint32_t map;
    int32_t x, y;
    uint64_t t_connect;  /* CLOCK_MONOTONIC ns of connect() */
    uint64_t probe_sent; /* ns of the outstanding probe, 0 = none */
    uint64_t probe_np;   /* --probe-marker: ns of the last NearbyPeers since the probe, 0 = none */
    uint32_t *peers;     /* the last NearbyPeers, as client indices (UINT32_MAX: not one of ours) */
    uint32_t npeers, peers_cap;
    uint8_t *in;         /* bytes of a frame not complete yet */
    uint32_t in_len, in_cap;
    uint8_t *out;        /* bytes the socket did not take yet */
    uint32_t out_off, out_len, out_cap;
    char key[28];        /* Sec-WebSocket-Key, until the upgrade is answered */
} client;

/* ---- relay bookkeeping: one entry per (sender, target) -------------------- */

typedef struct {
    uint64_t key; /* (sender << 32 | target) + 1; 0 = empty slot */
    uint32_t sent, recv, last, refused, dup, reorder, gaps;
} pair;

/* ---- counters, snapshotted at the window's edges -------------------------- */

typedef struct {
    uint64_t updates, relays, probes, other_tx; /* frames sent, by kind */
    uint64_t tx_bytes, rx_bytes;
    uint64_t rx_nearby, rx_relay, rx_error, rx_other, rx_ping;
    uint64_t probe_replies;
    uint64_t lag_updates, lag_relays, lag_probes; /* pacer slots dropped: the generator was late */
    uint64_t blocked;                              /* paced sends skipped: socket backlog over OUT_LIMIT */
    uint64_t relay_no_peer, probe_busy;
    uint64_t relay_refused;
} counters;

/* ---- violations ---------------------------------------------------------- */

enum vkind {
    V_PEER_MISSING, V_PEER_EXTRA, V_PEER_BAD, V_NO_FINAL, V_RELAY_LOST, V_RELAY_DUP,
    V_RELAY_REORDER, V_RELAY_BAD, V_CLIENT_DROPPED, V_PROTOCOL, V_SERVER_ERROR, V_COUNT
};
static const char *const vnames[V_COUNT] = {
    "peer_missing", "peer_extra", "peer_bad", "no_final_reply", "relays_lost",
    "relays_duplicated", "relays_reordered", "relays_bad", "clients_dropped", "protocol_errors",
    "server_errors"};

typedef struct {
    double rate;
    uint64_t t0, issued;
    uint32_t rr;
} pacer;

enum phase { P_CONNECT, P_LOAD, P_SETTLE, P_FINAL, P_DONE };

static struct {
    opts o;
    client *cl;
    uint32_t n;
    int ep, tfd;
    double side;
    int32_t side_int;
    enum phase phase;
    uint64_t phase_t;
    uint64_t rng;

    /* connect phase */
    uint64_t connect_t0;
    uint32_t next_connect, pending, n_ready, n_failed;
    uint64_t first_connect_t, last_registered_t;
    char fail_reasons[4][192];
    uint32_t n_fail_reasons;

    /* load phase */
    pacer pu, pr, pp;
    uint64_t load_t0, win_start, win_end;
    int win_open, win_closed, recording;
    counters cnt, w0, w1;
    double srv_cpu0, srv_cpu1, self_cpu0, self_cpu1;
    long rss_base, rss_reg, rss_end;
    uint64_t last_tick, max_tick_gap; /* the generator's own stalls, in the window */
    long long self_vcs[2], self_nvcs[2], srv_vcs[2], srv_nvcs[2];
    uint32_t n_at_load; /* clients ready when the load started */

    /* final phases */
    uint32_t n_final_asked, n_final_got;
    uint64_t last_rx_t;

    lg_hist h_connect, h_probe, h_relay;

    pair *pairs;
    size_t pairs_cap, pairs_n;

    uint64_t v[V_COUNT];
    char vmsg[MAX_STORED_VIOLATIONS][240];
    uint32_t nvmsg;
    uint64_t pairs_within_radius; /* from the peer check: ordered pairs within radius */

    char *scratch;  /* one outgoing message */
    char *pbuf;     /* one decoded relay payload */
    volatile sig_atomic_t interrupted;
} G;

/* ---- small helpers -------------------------------------------------------- */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t rnd(void)
{
    /* xorshift64* */
    uint64_t x = G.rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    G.rng = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static uint32_t rnd_below(uint32_t n) { return n ? (uint32_t)((rnd() >> 32) % n) : 0; }

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("loadgen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static void violation(enum vkind k, const char *fmt, ...)
{
    G.v[k]++;
    if (G.nvmsg >= MAX_STORED_VIOLATIONS)
        return;
    char *m = G.vmsg[G.nvmsg++];
    int off = snprintf(m, sizeof G.vmsg[0], "%s: ", vnames[k]);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m + off, sizeof G.vmsg[0] - (size_t)off, fmt, ap);
    va_end(ap);
}

/* "c123" -> 123 when it names one of our clients, else UINT32_MAX. */
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

/* Source address of client i: 127.0.0.1, 127.0.0.2, ... per_address clients
 * each, skipping host parts .0 and .255. Network order. */
static uint32_t source_addr(uint32_t i)
{
    uint32_t b = i / G.o.per_address;
    uint32_t a = (127u << 24) | ((b / 254 / 256) % 256) << 16 | ((b / 254) % 256) << 8 | (1 + b % 254);
    return htonl(a);
}

/* ---- pair table ------------------------------------------------------------ */

static pair *pair_slot(uint32_t s, uint32_t t, int create)
{
    uint64_t key = ((uint64_t)s << 32 | t) + 1;
    if (create && (G.pairs_n + 1) * 2 > G.pairs_cap) {
        size_t old_cap = G.pairs_cap;
        pair *old = G.pairs;
        G.pairs_cap = old_cap ? old_cap * 2 : 1024;
        G.pairs = calloc(G.pairs_cap, sizeof *G.pairs);
        if (!G.pairs)
            die("out of memory");
        for (size_t i = 0; i < old_cap; i++) {
            if (!old[i].key)
                continue;
            uint64_t h = old[i].key * 0x9E3779B97F4A7C15ull;
            size_t j = (size_t)(h >> 20) & (G.pairs_cap - 1);
            while (G.pairs[j].key)
                j = (j + 1) & (G.pairs_cap - 1);
            G.pairs[j] = old[i];
        }
        free(old);
    }
    if (!G.pairs_cap)
        return NULL;
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    for (size_t j = (size_t)(h >> 20) & (G.pairs_cap - 1);; j = (j + 1) & (G.pairs_cap - 1)) {
        if (G.pairs[j].key == key)
            return &G.pairs[j];
        if (!G.pairs[j].key) {
            if (!create)
                return NULL;
            memset(&G.pairs[j], 0, sizeof G.pairs[j]);
            G.pairs[j].key = key;
            G.pairs_n++;
            return &G.pairs[j];
        }
    }
}

/* ---- sockets ---------------------------------------------------------------- */

static void set_want_out(uint32_t i, int want)
{
    client *c = &G.cl[i];
    if (c->want_out == want || c->fd < 0)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.u64 = i};
    if (epoll_ctl(G.ep, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->want_out = (uint8_t)want;
}

static void kill_client(uint32_t i, const char *fmt, ...)
{
    client *c = &G.cl[i];
    if (c->state == C_DEAD)
        return;
    char why[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    int was = c->state;
    if (c->fd >= 0) {
        epoll_ctl(G.ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    if (was == C_CONNECTING || was == C_UPGRADING || was == C_REGISTERING) {
        G.pending--;
        G.n_failed++;
        if (G.n_fail_reasons < 4)
            snprintf(G.fail_reasons[G.n_fail_reasons++], sizeof G.fail_reasons[0], "c%u: %s", i, why);
    } else if (was == C_READY) {
        G.n_ready--;
        violation(V_CLIENT_DROPPED, "c%u: %s", i, why);
    }
    c->state = C_DEAD;
    free(c->in);
    free(c->out);
    c->in = c->out = NULL;
    c->in_len = c->in_cap = c->out_len = c->out_off = c->out_cap = 0;
}

static size_t pending_out(const client *c) { return c->out_len - c->out_off; }

/* Write what the socket takes; arm EPOLLOUT for the rest. */
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
        kill_client(i, "send: %s", w < 0 ? strerror(errno) : "wrote nothing");
        return;
    }
    if (c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    set_want_out(i, c->out_off < c->out_len);
}

static int out_reserve(client *c, size_t extra)
{
    if (c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    if ((size_t)c->out_len + extra <= c->out_cap)
        return 0;
    if (c->out_off) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
    if ((size_t)c->out_len + extra <= c->out_cap)
        return 0;
    size_t cap = c->out_cap ? c->out_cap : 512;
    while (cap < (size_t)c->out_len + extra)
        cap *= 2;
    uint8_t *p = realloc(c->out, cap);
    if (!p)
        return -1;
    c->out = p;
    c->out_cap = (uint32_t)cap;
    return 0;
}

/* Queue one masked frame without writing it. */
static void queue_frame(uint32_t i, int opcode, const void *payload, size_t len)
{
    client *c = &G.cl[i];
    if (out_reserve(c, LG_WS_MAX_HEADER + len)) {
        kill_client(i, "out of memory");
        return;
    }
    uint64_t r = rnd();
    uint8_t mask[4] = {(uint8_t)r, (uint8_t)(r >> 8), (uint8_t)(r >> 16), (uint8_t)(r >> 24)};
    uint8_t *dst = c->out + c->out_len;
    size_t hl = lg_ws_header(dst, opcode, len, mask);
    lg_ws_mask_copy(dst + hl, payload, len, mask);
    c->out_len += (uint32_t)(hl + len);
    G.cnt.tx_bytes += hl + len;
}

/* Queue one masked frame and write at once unless the socket is backed up. */
static void send_frame(uint32_t i, int opcode, const void *payload, size_t len)
{
    queue_frame(i, opcode, payload, len);
    if (G.cl[i].state != C_DEAD && !G.cl[i].want_out)
        flush_client(i);
}

static void send_text(uint32_t i, const char *text, size_t len) { send_frame(i, LG_WS_TEXT, text, len); }

static void send_update(uint32_t i)
{
    client *c = &G.cl[i];
    int n = snprintf(G.scratch, SCRATCH_BYTES,
                     "{\"type\":\"UpdatePosition\",\"data\":{\"client_id\":\"c%u\",\"map_id\":%u,"
                     "\"x\":%d,\"y\":%d}}",
                     i, c->map, c->x, c->y);
    send_text(i, G.scratch, (size_t)n);
}

static void send_refresh(uint32_t i)
{
    static const char msg[] = "{\"type\":\"RequestPeerRefresh\",\"data\":null}";
    send_text(i, msg, sizeof msg - 1);
}

/* One random step of at most `step` units per axis, never a no-op, staying on the map. */
static void random_step(client *c)
{
    int s = G.o.step;
    for (int tries = 0; tries < 8; tries++) {
        int32_t nx = c->x + (int32_t)rnd_below((uint32_t)(2 * s + 1)) - s;
        int32_t ny = c->y + (int32_t)rnd_below((uint32_t)(2 * s + 1)) - s;
        if (nx < 0)
            nx = 0;
        if (ny < 0)
            ny = 0;
        if (nx >= G.side_int)
            nx = G.side_int - 1;
        if (ny >= G.side_int)
            ny = G.side_int - 1;
        if (nx != c->x || ny != c->y) {
            c->x = nx;
            c->y = ny;
            return;
        }
    }
}

/* ---- connecting ----------------------------------------------------------------- */

static void start_connect(uint32_t i, uint64_t now)
{
    client *c = &G.cl[i];
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    c->t_connect = now;
    c->state = C_CONNECTING;
    G.pending++;
    if (!G.first_connect_t)
        G.first_connect_t = now;
    if (fd < 0) {
        kill_client(i, "socket: %s", strerror(errno));
        return;
    }
    c->fd = fd;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    struct sockaddr_in src = {.sin_family = AF_INET, .sin_port = 0, .sin_addr.s_addr = source_addr(i)};
    if (bind(fd, (struct sockaddr *)&src, sizeof src) != 0) {
        kill_client(i, "bind: %s", strerror(errno));
        return;
    }
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)G.o.port),
                              .sin_addr.s_addr = G.o.host_addr};
    if (connect(fd, (struct sockaddr *)&dst, sizeof dst) != 0 && errno != EINPROGRESS) {
        kill_client(i, "connect: %s", strerror(errno));
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u64 = i};
    if (epoll_ctl(G.ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
        kill_client(i, "epoll_ctl: %s", strerror(errno));
        return;
    }
    c->want_out = 1;
}

static void connected(uint32_t i)
{
    client *c = &G.cl[i];
    int err = 0;
    socklen_t el = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0)
        err = errno;
    if (err) {
        kill_client(i, "connect: %s", strerror(err));
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
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     G.o.path, G.o.host, G.o.port, c->key);
    c->state = C_UPGRADING;
    c->want_out = 1; /* armed since connect(); flush_client disarms it */
    if (out_reserve(c, (size_t)n)) {
        kill_client(i, "out of memory");
        return;
    }
    memcpy(c->out + c->out_len, req, (size_t)n);
    c->out_len += (uint32_t)n;
    flush_client(i);
}

/* The upgrade response: 0 not complete yet, >0 bytes it took, -1 the client was dropped. */
static long upgrade_response(uint32_t i, const uint8_t *data, size_t len)
{
    client *c = &G.cl[i];
    const uint8_t *end = memmem(data, len, "\r\n\r\n", 4);
    if (!end) {
        if (len > 8192) {
            kill_client(i, "upgrade response over 8 KiB");
            return -1;
        }
        return 0;
    }
    size_t hlen = (size_t)(end - data) + 4;
    char head[8193];
    size_t cl = hlen < sizeof head - 1 ? hlen : sizeof head - 1;
    memcpy(head, data, cl);
    head[cl] = '\0';
    if (strncmp(head, "HTTP/1.1 101", 12) != 0) {
        char *eol = strstr(head, "\r\n");
        if (eol)
            *eol = '\0';
        kill_client(i, "upgrade refused: %.100s", head);
        return -1;
    }
    char want[29];
    lg_ws_accept(c->key, want);
    int ok = 0;
    for (char *line = strstr(head, "\r\n"); line && line[2]; line = strstr(line + 2, "\r\n")) {
        char *h = line + 2;
        if (strncasecmp(h, "Sec-WebSocket-Accept:", 21) == 0) {
            h += 21;
            while (*h == ' ' || *h == '\t')
                h++;
            ok = strncmp(h, want, 28) == 0;
            break;
        }
    }
    if (!ok) {
        kill_client(i, "upgrade response without the right Sec-WebSocket-Accept");
        return -1;
    }
    c->state = C_REGISTERING;
    send_update(i); /* registers as c<i> */
    G.cnt.other_tx++;
    if (G.o.register_refresh && c->state != C_DEAD) {
        send_refresh(i); /* for servers that do not answer the first UpdatePosition */
        G.cnt.other_tx++;
    }
    if (c->state == C_DEAD)
        return -1;
    return (long)hlen;
}

/* ---- what the server sends --------------------------------------------------------- */

static void on_peers(uint32_t i, lg_jcur d, uint64_t now)
{
    client *c = &G.cl[i];
    if (!d.p || lg_j_expect(&d, '[')) {
        violation(V_PROTOCOL, "c%u: NearbyPeers whose data is not an array", i);
        return;
    }
    c->npeers = 0;
    if (lg_j_peek(&d) == ']') {
        d.p++;
    } else {
        for (;;) {
            char id[MAX_ID_LEN];
            size_t len;
            if (lg_j_string(&d, id, sizeof id, &len)) {
                violation(V_PROTOCOL, "c%u: NearbyPeers with a bad element", i);
                c->npeers = 0;
                return;
            }
            if (c->npeers == c->peers_cap) {
                uint32_t cap = c->peers_cap ? c->peers_cap * 2 : 8;
                uint32_t *p = realloc(c->peers, cap * sizeof *p);
                if (!p)
                    die("out of memory");
                c->peers = p;
                c->peers_cap = cap;
            }
            c->peers[c->npeers++] = parse_id(id, len);
            int ch = lg_j_peek(&d);
            d.p++;
            if (ch == ']')
                break;
            if (ch != ',') {
                violation(V_PROTOCOL, "c%u: NearbyPeers array is malformed", i);
                c->npeers = 0;
                return;
            }
        }
    }
    G.cnt.rx_nearby++;
    if (c->state == C_REGISTERING) {
        c->state = C_READY;
        G.pending--;
        G.n_ready++;
        G.last_registered_t = now;
        lg_hist_add(&G.h_connect, now - c->t_connect);
    }
    if (c->probe_sent) {
        if (G.o.probe_marker) {
            c->probe_np = now; /* the reply, unless another one comes before the marker */
        } else {
            if (G.recording)
                lg_hist_add(&G.h_probe, now - c->probe_sent);
            G.cnt.probe_replies++;
            c->probe_sent = 0;
        }
    }
    if (c->final_asked && !c->final_got) {
        c->final_got = 1;
        G.n_final_got++;
    }
}

static void on_offer(uint32_t i, lg_jcur d, uint64_t now)
{
    char sender[MAX_ID_LEN];
    size_t slen = 0, plen = 0;
    int have_sender = 0, have_offer = 0;
    if (!d.p || lg_j_expect(&d, '{')) {
        violation(V_PROTOCOL, "c%u: ReceiveOffer whose data is not an object", i);
        return;
    }
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
                have_sender = 1;
            } else if (strcmp(key, "offer") == 0) {
                if (lg_j_string(&d, G.pbuf, MAX_RELAY_BYTES + 256, &plen))
                    goto bad;
                have_offer = 1;
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
    if (!have_sender || !have_offer)
        goto bad;
    G.cnt.rx_relay++;
    uint32_t s = parse_id(sender, slen);
    unsigned long long seq, ts, from, to;
    int used = 0;
    if (s == UINT32_MAX ||
        sscanf(G.pbuf, "%llu:%llu:%llu:%llu:%n", &seq, &ts, &from, &to, &used) != 4 || used <= 0) {
        violation(V_RELAY_BAD, "c%u: relay from '%.40s' with payload '%.60s'", i, sender, G.pbuf);
        return;
    }
    if (from != s || to != i) {
        violation(V_RELAY_BAD, "c%u: relay from c%u carries from=%llu to=%llu (misrouted or wrong sender_id)",
                  i, s, from, to);
        return;
    }
    size_t want_len = G.o.relay_bytes > (uint32_t)used ? G.o.relay_bytes : (size_t)used;
    int intact = plen == want_len;
    for (size_t k = (size_t)used; intact && k < plen; k++)
        intact = G.pbuf[k] == 'x';
    if (!intact) {
        violation(V_RELAY_BAD, "c%u: relay %llu from c%u arrived altered (%zu bytes, want %zu)", i, seq, s,
                  plen, want_len);
        return;
    }
    pair *p = pair_slot(s, i, 0);
    if (!p || seq == 0 || seq > p->sent) {
        violation(V_RELAY_BAD, "c%u: relay %llu from c%u was never sent", i, seq, s);
        return;
    }
    p->recv++;
    if (seq == (uint64_t)p->last + 1) {
        p->last = (uint32_t)seq;
    } else if (seq == p->last) {
        p->dup++;
    } else if (seq < p->last) {
        p->reorder++;
    } else {
        p->gaps += (uint32_t)(seq - p->last - 1);
        p->last = (uint32_t)seq;
    }
    if (G.recording && ts <= now)
        lg_hist_add(&G.h_relay, now - ts);
    return;
bad:
    violation(V_PROTOCOL, "c%u: malformed ReceiveOffer", i);
}

static void on_error(uint32_t i, lg_jcur d)
{
    char text[512];
    size_t len = 0;
    G.cnt.rx_error++;
    if (!d.p || lg_j_string(&d, text, sizeof text, &len)) {
        violation(V_PROTOCOL, "c%u: Error whose data is not a string", i);
        return;
    }
    client *c = &G.cl[i];
    if (G.o.probe_marker && strcmp(text, "Cannot send to yourself") == 0) {
        G.cnt.rx_error--; /* the marker is not an error */
        if (!c->probe_sent)
            return; /* a marker whose probe was abandoned by the final refresh */
        if (c->probe_np) {
            if (G.recording)
                lg_hist_add(&G.h_probe, c->probe_np - c->probe_sent);
            G.cnt.probe_replies++;
        } else {
            violation(V_PROTOCOL, "c%u: no NearbyPeers answered a RequestPeerRefresh before the next message's reply", i);
        }
        c->probe_sent = c->probe_np = 0;
        return;
    }
    /* Refused relays are allowed by the protocol (relay_guard, a target gone): count them
     * per pair so that the gap they leave is not taken for a loss. */
    const char *id = NULL;
    size_t idlen = 0;
    if (strncmp(text, "relay to ", 9) == 0 && len > 21 && strcmp(text + len - 12, " not allowed") == 0) {
        id = text + 9;
        idlen = len - 21;
    } else if (strncmp(text, "Client ", 7) == 0 && len > 17 && strcmp(text + len - 10, " not found") == 0) {
        id = text + 7;
        idlen = len - 17;
    }
    if (id) {
        uint32_t t = parse_id(id, idlen);
        pair *p = t == UINT32_MAX ? NULL : pair_slot(i, t, 0);
        if (p) {
            p->refused++;
            G.cnt.relay_refused++;
            return;
        }
    }
    if (strcmp(text, "rate limited") == 0)
        violation(V_SERVER_ERROR, "c%u: \"rate limited\": set limits.message_rate = 0 in the server config", i);
    else if (strcmp(text, "timed out") == 0)
        violation(V_SERVER_ERROR, "c%u: \"timed out\": raise session.idle_timeout in the server config", i);
    else
        violation(V_SERVER_ERROR, "c%u: Error \"%.150s\"", i, text);
}

static void on_text(uint32_t i, const uint8_t *payload, size_t len, uint64_t now)
{
    char type[32];
    lg_jcur d;
    if (lg_j_envelope((const char *)payload, len, type, sizeof type, &d)) {
        violation(V_PROTOCOL, "c%u: unparsable message from server: %.80s", i, (const char *)payload);
        G.cnt.rx_other++;
        return;
    }
    if (strcmp(type, "NearbyPeers") == 0) {
        on_peers(i, d, now);
    } else if (strcmp(type, "ReceiveOffer") == 0) {
        on_offer(i, d, now);
    } else if (strcmp(type, "Error") == 0) {
        on_error(i, d);
    } else {
        G.cnt.rx_other++;
        violation(V_PROTOCOL, "c%u: unexpected message type %s", i, type);
    }
}

/* Frames in data[0..len): returns the bytes consumed (whole frames), or -1 when i died. */
static long consume(uint32_t i, uint8_t *data, size_t len, uint64_t now)
{
    client *c = &G.cl[i];
    size_t off = 0;
    if (c->state == C_UPGRADING) {
        long h = upgrade_response(i, data, len);
        if (h <= 0)
            return h;
        off = (size_t)h;
    }
    while (off < len) {
        lg_frame f;
        int r = lg_ws_parse(data + off, len - off, IN_MAX_FRAME, &f);
        if (r == 0)
            break;
        if (r < 0) {
            violation(V_PROTOCOL, "c%u: bad frame header from server (%02x %02x)", i, data[off],
                      len - off > 1 ? data[off + 1] : 0);
            kill_client(i, "bad frame from server");
            return -1;
        }
        uint8_t *p = data + off + f.header_len;
        size_t plen = (size_t)f.payload_len;
        off += f.header_len + plen;
        switch (f.opcode) {
        case LG_WS_TEXT:
            if (!f.fin) {
                violation(V_PROTOCOL, "c%u: fragmented message from server", i);
                break;
            }
            on_text(i, p, plen, now);
            break;
        case LG_WS_PING:
            G.cnt.rx_ping++;
            send_frame(i, LG_WS_PONG, p, plen);
            G.cnt.other_tx++;
            break;
        case LG_WS_PONG:
            break;
        case LG_WS_CLOSE: {
            int code = plen >= 2 ? (p[0] << 8 | p[1]) : 0;
            kill_client(i, "closed by server (code %d%s%.*s)", code, plen > 2 ? ": " : "",
                        (int)(plen > 2 ? plen - 2 : 0), (const char *)p + 2);
            return -1;
        }
        default:
            violation(V_PROTOCOL, "c%u: unexpected opcode %d from server", i, f.opcode);
            break;
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
    if (n == 0) {
        kill_client(i, "connection closed by server");
        return;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            kill_client(i, "recv: %s", strerror(errno));
        return;
    }
    G.cnt.rx_bytes += (uint64_t)n;
    G.last_rx_t = now;
    uint8_t *data = rbuf;
    size_t len = (size_t)n;
    if (c->in_len) {
        if ((size_t)c->in_len + len > c->in_cap) {
            size_t cap = c->in_cap ? c->in_cap : 1024;
            while (cap < (size_t)c->in_len + len)
                cap *= 2;
            uint8_t *p = realloc(c->in, cap);
            if (!p)
                die("out of memory");
            c->in = p;
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
            uint8_t *p = realloc(c->in, left);
            if (!p)
                die("out of memory");
            c->in = p;
            c->in_cap = (uint32_t)left;
        }
        memcpy(c->in, data + used, left);
        c->in_len = (uint32_t)left;
    }
}

/* ---- pacing ---------------------------------------------------------------------- */

static void pacer_start(pacer *p, double rate, uint64_t now)
{
    p->rate = rate;
    p->t0 = now;
    p->issued = 0;
}

/* Slots due now. A backlog beyond LAG_WINDOW_S is dropped and counted: the
 * generator (its loop, not the server) fell behind. */
static uint64_t pacer_take(pacer *p, uint64_t now, uint64_t *lagged)
{
    if (p->rate <= 0)
        return 0;
    uint64_t want = (uint64_t)(p->rate * (double)(now - p->t0) / 1e9);
    if (want <= p->issued)
        return 0;
    uint64_t n = want - p->issued;
    uint64_t cap = (uint64_t)(p->rate * LAG_WINDOW_S) + 1;
    p->issued = want;
    if (n > cap) {
        *lagged += n - cap;
        n = cap;
    }
    return n;
}

/* The next ready client in round-robin order, or UINT32_MAX. */
static uint32_t next_ready(pacer *p)
{
    for (uint32_t k = 0; k < G.n; k++) {
        uint32_t i = p->rr;
        p->rr = p->rr + 1 == G.n ? 0 : p->rr + 1;
        if (G.cl[i].state == C_READY)
            return i;
    }
    return UINT32_MAX;
}

static void do_update(void)
{
    uint32_t i = next_ready(&G.pu);
    if (i == UINT32_MAX)
        return;
    client *c = &G.cl[i];
    if (pending_out(c) > OUT_LIMIT) {
        G.cnt.blocked++;
        return;
    }
    random_step(c);
    send_update(i);
    G.cnt.updates++;
}

static void do_relay(void)
{
    for (int tries = 0; tries < 64; tries++) {
        uint32_t i = next_ready(&G.pr);
        if (i == UINT32_MAX)
            return;
        client *c = &G.cl[i];
        uint32_t t;
        if (G.o.relay_anyone) {
            t = rnd_below(G.n);
        } else {
            if (!c->npeers)
                continue;
            t = c->peers[rnd_below(c->npeers)];
        }
        if (t == UINT32_MAX || t == i || G.cl[t].state != C_READY)
            continue;
        if (pending_out(c) > OUT_LIMIT) {
            G.cnt.blocked++;
            return;
        }
        /* Relays to anyone are not accounted per pair: nobody checks them. */
        uint32_t seq = G.o.relay_anyone ? 0 : ++pair_slot(i, t, 1)->sent;
        int n = snprintf(G.scratch, SCRATCH_BYTES,
                         "{\"type\":\"SendOffer\",\"data\":{\"target_id\":\"c%u\",\"offer\":\"", t);
        int p0 = n;
        n += snprintf(G.scratch + n, SCRATCH_BYTES - (size_t)n, "%u:%llu:%u:%u:", seq,
                      (unsigned long long)now_ns(), i, t);
        uint32_t prefix = (uint32_t)(n - p0);
        size_t pad = G.o.relay_bytes > prefix ? G.o.relay_bytes - prefix : 0;
        memset(G.scratch + n, 'x', pad);
        n += (int)pad;
        memcpy(G.scratch + n, "\"}}", 3);
        n += 3;
#ifdef LG_FAULT_LOSE_RELAY_EVERY /* self-test of the checker: "send" without writing */
        if (seq % LG_FAULT_LOSE_RELAY_EVERY == 0) {
            G.cnt.relays++;
            return;
        }
#endif
#ifdef LG_FAULT_DUP_RELAY_EVERY /* self-test of the checker: write the same relay twice */
        if (seq % LG_FAULT_DUP_RELAY_EVERY == 0)
            queue_frame(i, LG_WS_TEXT, G.scratch, (size_t)n);
#endif
        send_text(i, G.scratch, (size_t)n);
        G.cnt.relays++;
        return;
    }
    G.cnt.relay_no_peer++;
}

static void do_probe(void)
{
    for (int tries = 0; tries < 16; tries++) {
        uint32_t i = next_ready(&G.pp);
        if (i == UINT32_MAX)
            return;
        client *c = &G.cl[i];
        if (c->probe_sent)
            continue;
        if (pending_out(c) > OUT_LIMIT) {
            G.cnt.blocked++;
            return;
        }
        c->probe_sent = now_ns();
        c->probe_np = 0;
        if (G.o.probe_marker) {
            /* The refresh and a self-addressed offer in one write: the server answers the
             * offer with Error "Cannot send to yourself" right after the refresh's reply,
             * so the last NearbyPeers before that Error is the reply, exactly. */
            static const char refresh[] = "{\"type\":\"RequestPeerRefresh\",\"data\":null}";
            int n = snprintf(G.scratch, SCRATCH_BYTES,
                             "{\"type\":\"SendOffer\",\"data\":{\"target_id\":\"c%u\",\"offer\":\"probe\"}}", i);
            queue_frame(i, LG_WS_TEXT, refresh, sizeof refresh - 1);
            queue_frame(i, LG_WS_TEXT, G.scratch, (size_t)n);
            if (c->state != C_DEAD && !c->want_out)
                flush_client(i);
            G.cnt.other_tx++;
        } else {
            send_refresh(i);
        }
        G.cnt.probes++;
        return;
    }
    G.cnt.probe_busy++;
}

/* ---- phases ---------------------------------------------------------------------- */

static double server_cpu(void) { return G.o.server_pid ? lg_proc_cpu_seconds(G.o.server_pid) : -1; }

static void start_load(uint64_t now)
{
    G.phase = P_LOAD;
    G.phase_t = G.load_t0 = now;
    G.n_at_load = G.n_ready;
    if (G.o.server_pid)
        G.rss_reg = lg_proc_rss_kib(G.o.server_pid);
    pacer_start(&G.pu, G.o.update_rate * G.n_ready, now);
    pacer_start(&G.pr, G.o.relay_rate * G.n_ready, now);
    pacer_start(&G.pp, G.o.probe_rate, now);
    /* start each round robin at a random client so runs do not all begin with c0 */
    G.pu.rr = rnd_below(G.n);
    G.pr.rr = rnd_below(G.n);
    G.pp.rr = rnd_below(G.n);
    G.win_start = now + (uint64_t)(G.o.warmup * 1e9);
    G.win_end = G.win_start + (uint64_t)(G.o.duration * 1e9);
}

static void open_window(uint64_t now)
{
    G.win_open = 1;
    G.recording = 1;
    G.win_start = now;
    lg_hist_reset(&G.h_probe);
    lg_hist_reset(&G.h_relay);
    G.w0 = G.cnt;
    G.srv_cpu0 = server_cpu();
    G.self_cpu0 = lg_proc_cpu_seconds(0);
    lg_proc_ctxsw(0, &G.self_vcs[0], &G.self_nvcs[0]);
    if (G.o.server_pid)
        lg_proc_ctxsw(G.o.server_pid, &G.srv_vcs[0], &G.srv_nvcs[0]);
    G.max_tick_gap = 0;
}

static void close_window(uint64_t now)
{
    G.recording = 0;
    G.win_closed = 1;
    G.win_end = now;
    G.w1 = G.cnt;
    G.srv_cpu1 = server_cpu();
    G.self_cpu1 = lg_proc_cpu_seconds(0);
    lg_proc_ctxsw(0, &G.self_vcs[1], &G.self_nvcs[1]);
    if (G.o.server_pid)
        lg_proc_ctxsw(G.o.server_pid, &G.srv_vcs[1], &G.srv_nvcs[1]);
}

static void tick(uint64_t now)
{
    if (G.recording && G.last_tick && now - G.last_tick > G.max_tick_gap)
        G.max_tick_gap = now - G.last_tick;
    G.last_tick = now;
    switch (G.phase) {
    case P_CONNECT: {
        uint64_t due = (uint64_t)(G.o.connect_rate * (double)(now - G.connect_t0) / 1e9) + 1;
        while (G.next_connect < G.n && G.next_connect < due && G.pending < G.o.max_pending)
            start_connect(G.next_connect++, now);
        int timed_out = now - G.connect_t0 > (uint64_t)(G.o.connect_timeout * 1e9);
        if (timed_out) {
            G.next_connect = G.n;
            for (uint32_t i = 0; i < G.n; i++) {
                if (G.cl[i].state == C_NEW) {
                    G.cl[i].state = C_DEAD;
                    G.n_failed++;
                    if (G.n_fail_reasons < 4)
                        snprintf(G.fail_reasons[G.n_fail_reasons++], sizeof G.fail_reasons[0],
                                 "c%u: never started within --connect-timeout", i);
                } else if (G.cl[i].state != C_READY) {
                    kill_client(i, "not registered within --connect-timeout %.0f s", G.o.connect_timeout);
                }
            }
        }
        if (G.next_connect == G.n && G.pending == 0) {
            if (G.n_ready == 0) {
                G.phase = P_DONE;
                return;
            }
            start_load(now);
        }
        break;
    }
    case P_LOAD: {
        if (!G.win_open && now >= G.win_start)
            open_window(now);
        uint64_t k = pacer_take(&G.pu, now, &G.cnt.lag_updates);
        while (k--)
            do_update();
        k = pacer_take(&G.pr, now, &G.cnt.lag_relays);
        while (k--)
            do_relay();
        k = pacer_take(&G.pp, now, &G.cnt.lag_probes);
        while (k--)
            do_probe();
        if (G.win_open && now >= G.win_end) {
            close_window(now);
            /* settle: everyone stops and moves one last time */
            for (uint32_t i = 0; i < G.n; i++) {
                if (G.cl[i].state != C_READY)
                    continue;
                random_step(&G.cl[i]);
                send_update(i);
                G.cnt.other_tx++;
            }
            G.phase = P_SETTLE;
            G.phase_t = now;
        }
        break;
    }
    case P_SETTLE: {
        uint64_t since = now - G.phase_t;
        int quiet = now - G.last_rx_t >= QUIET_NS;
        if ((since >= (uint64_t)(G.o.settle * 1e9) && quiet) ||
            since >= (uint64_t)((G.o.settle + G.o.drain_timeout) * 1e9)) {
            for (uint32_t i = 0; i < G.n; i++) {
                client *c = &G.cl[i];
                if (c->state != C_READY)
                    continue;
                c->probe_sent = c->probe_np = 0;
                c->final_asked = 1;
                G.n_final_asked++;
                send_refresh(i);
                G.cnt.other_tx++;
            }
            G.phase = P_FINAL;
            G.phase_t = now;
        }
        break;
    }
    case P_FINAL: {
        int quiet = now - G.last_rx_t >= QUIET_NS;
        int all = G.n_final_got >= G.n_final_asked;
        if ((all && quiet) || now - G.phase_t >= (uint64_t)(G.o.drain_timeout * 1e9))
            G.phase = P_DONE;
        break;
    }
    case P_DONE:
        break;
    }
}

/* ---- the final check --------------------------------------------------------------- */

static void check_peers(void)
{
    const int64_t r2 = (int64_t)G.o.radius * G.o.radius;
    const int64_t l2 = (int64_t)G.o.leave_radius * G.o.leave_radius;
    const int64_t cell = G.o.leave_radius > 0 ? G.o.leave_radius : 1;
    const uint64_t cps = (uint64_t)(G.side_int / cell) + 1; /* cells per side */
    const uint64_t ncells = cps * cps * G.o.maps;
    uint32_t *start = calloc(ncells + 1, sizeof *start);
    uint32_t *members = malloc((size_t)G.n * sizeof *members);
    uint32_t *stamp = calloc(G.n, sizeof *stamp);
    if (!start || !members || !stamp)
        die("out of memory for the check (%llu cells)", (unsigned long long)ncells);
#define CELL_OF(c) (((uint64_t)(c)->map * cps + (uint64_t)((c)->y / cell)) * cps + (uint64_t)((c)->x / cell))
    for (uint32_t i = 0; i < G.n; i++)
        if (G.cl[i].state == C_READY)
            start[CELL_OF(&G.cl[i]) + 1]++;
    for (uint64_t k = 0; k < ncells; k++)
        start[k + 1] += start[k];
    {
        uint32_t *fill = malloc(ncells * sizeof *fill);
        if (!fill)
            die("out of memory for the check");
        memcpy(fill, start, ncells * sizeof *fill);
        for (uint32_t i = 0; i < G.n; i++)
            if (G.cl[i].state == C_READY)
                members[fill[CELL_OF(&G.cl[i])]++] = i;
        free(fill);
    }
    for (uint32_t i = 0; i < G.n; i++) {
        client *c = &G.cl[i];
        if (c->state != C_READY)
            continue;
        if (!c->final_got) {
            violation(V_NO_FINAL, "c%u: no NearbyPeers after its final RequestPeerRefresh", i);
            continue;
        }
        uint32_t tag = i + 1;
        for (uint32_t k = 0; k < c->npeers; k++) {
            uint32_t p = c->peers[k];
            if (p == UINT32_MAX) {
                violation(V_PEER_BAD, "c%u: NearbyPeers names an id that is not one of ours", i);
                continue;
            }
            if (p == i) {
                violation(V_PEER_BAD, "c%u: NearbyPeers contains the client itself", i);
                continue;
            }
            if (stamp[p] == tag) {
                violation(V_PEER_BAD, "c%u: NearbyPeers lists c%u twice", i, p);
                continue;
            }
            stamp[p] = tag;
            client *o = &G.cl[p];
            if (o->state != C_READY) {
                violation(V_PEER_EXTRA, "c%u: lists c%u, which is gone", i, p);
            } else if (o->map != c->map) {
                violation(V_PEER_EXTRA, "c%u (map %u) lists c%u on map %u", i, c->map, p, o->map);
            } else {
                int64_t dx = (int64_t)o->x - c->x, dy = (int64_t)o->y - c->y;
                int64_t d2 = dx * dx + dy * dy;
                if (d2 > l2)
                    violation(V_PEER_EXTRA,
                              "c%u at (%d,%d) lists c%u at (%d,%d): distance^2 %lld > %lld (leave radius %d)",
                              i, c->x, c->y, p, o->x, o->y, (long long)d2, (long long)l2, G.o.leave_radius);
            }
        }
        int64_t cx = c->x / cell, cy = c->y / cell;
        for (int64_t yy = cy - 1; yy <= cy + 1; yy++) {
            for (int64_t xx = cx - 1; xx <= cx + 1; xx++) {
                if (yy < 0 || xx < 0 || (uint64_t)yy >= cps || (uint64_t)xx >= cps)
                    continue;
                uint64_t k = ((uint64_t)c->map * cps + (uint64_t)yy) * cps + (uint64_t)xx;
                for (uint32_t m = start[k]; m < start[k + 1]; m++) {
                    uint32_t j = members[m];
                    if (j == i)
                        continue;
                    client *o = &G.cl[j];
                    int64_t dx = (int64_t)o->x - c->x, dy = (int64_t)o->y - c->y;
                    int64_t d2 = dx * dx + dy * dy;
                    if (d2 > r2)
                        continue;
                    G.pairs_within_radius++;
                    if (stamp[j] != tag)
                        violation(V_PEER_MISSING,
                                  "c%u at (%d,%d) map %u misses c%u at (%d,%d): distance^2 %lld <= %lld (radius %d)",
                                  i, c->x, c->y, c->map, j, o->x, o->y, (long long)d2, (long long)r2,
                                  G.o.radius);
                }
            }
        }
    }
#undef CELL_OF
    free(start);
    free(members);
    free(stamp);
}

typedef struct {
    uint64_t sent, recv, refused, lost, dup, reorder;
} relay_totals;

static relay_totals check_relays(void)
{
    relay_totals t = {0};
    for (size_t k = 0; k < G.pairs_cap; k++) {
        pair *p = &G.pairs[k];
        if (!p->key)
            continue;
        uint32_t s = (uint32_t)((p->key - 1) >> 32), r = (uint32_t)(p->key - 1);
        t.sent += p->sent;
        t.recv += p->recv;
        t.refused += p->refused;
        t.dup += p->dup;
        t.reorder += p->reorder;
        /* a pair whose receiver dropped out cannot be judged */
        if (G.cl[r].state != C_READY || G.cl[s].state != C_READY)
            continue;
        uint64_t distinct = p->recv - p->dup;
        uint64_t lost = p->sent > distinct + p->refused ? p->sent - distinct - p->refused : 0;
        t.lost += lost;
        if (lost)
            violation(V_RELAY_LOST, "c%u -> c%u: %u sent, %u received, %u refused: %llu lost", s, r,
                      p->sent, p->recv, p->refused, (unsigned long long)lost);
        if (p->dup)
            violation(V_RELAY_DUP, "c%u -> c%u: %u duplicated", s, r, p->dup);
        if (p->reorder)
            violation(V_RELAY_REORDER, "c%u -> c%u: %u arrived after a later one", s, r, p->reorder);
    }
    /* violation() counted each pair once; the totals count messages */
    G.v[V_RELAY_LOST] = t.lost;
    G.v[V_RELAY_DUP] = t.dup;
    G.v[V_RELAY_REORDER] = t.reorder;
    return t;
}

/* ---- report ------------------------------------------------------------------------ */

static double ms(uint64_t ns) { return (double)ns / 1e6; }

static void json_hist(FILE *f, const char *name, const lg_hist *h)
{
    fprintf(f, "\"%s\":{\"count\":%llu,\"p50\":%.4f,\"p99\":%.4f,\"p999\":%.4f,\"max\":%.4f,\"mean\":%.4f}", name,
            (unsigned long long)h->n, ms(lg_hist_quantile(h, 0.5)), ms(lg_hist_quantile(h, 0.99)),
            ms(lg_hist_quantile(h, 0.999)), ms(h->max), h->n ? h->sum / (double)h->n / 1e6 : 0.0);
}

static void json_num(FILE *f, const char *name, double v, int known)
{
    if (known)
        fprintf(f, "\"%s\":%.4f", name, v);
    else
        fprintf(f, "\"%s\":null", name);
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static int report(int interrupted)
{
    relay_totals rt = {0};
    int checked = 0;
    if (G.o.check && G.phase == P_DONE && G.n_final_asked > 0 && !interrupted) {
        check_peers();
        rt = check_relays();
        checked = 1;
    } else {
        for (size_t k = 0; k < G.pairs_cap; k++) {
            rt.sent += G.pairs[k].sent;
            rt.recv += G.pairs[k].recv;
            rt.refused += G.pairs[k].refused;
        }
    }
    if (G.o.server_pid)
        G.rss_end = lg_proc_rss_kib(G.o.server_pid);

    double win = G.win_closed && G.win_end > G.win_start ? (double)(G.win_end - G.win_start) / 1e9 : 0;
    counters d = {0};
    if (win > 0) {
#define D(f) d.f = G.w1.f - G.w0.f
        D(updates); D(relays); D(probes); D(other_tx); D(tx_bytes); D(rx_bytes); D(rx_nearby);
        D(rx_relay); D(rx_error); D(rx_other); D(rx_ping); D(probe_replies); D(lag_updates); D(lag_relays);
        D(lag_probes); D(blocked); D(relay_no_peer); D(probe_busy); D(relay_refused);
#undef D
    }
    double per = win > 0 ? 1.0 / win : 0;
    double off_u = G.o.update_rate * G.n_at_load, off_r = G.o.relay_rate * G.n_at_load,
           off_p = G.o.probe_rate;
    double ach_u = (double)d.updates * per, ach_r = (double)d.relays * per, ach_p = (double)d.probes * per;
    uint64_t msgs = d.updates + d.relays + d.probes + d.other_tx;
    int srv_known = G.o.server_pid && G.srv_cpu0 >= 0 && G.srv_cpu1 >= 0 && win > 0;
    double srv_cores = srv_known ? (G.srv_cpu1 - G.srv_cpu0) / win : 0;
    double srv_ms_per_k = srv_known && msgs ? (G.srv_cpu1 - G.srv_cpu0) * 1000.0 / ((double)msgs / 1000.0) : 0;
    int self_known = win > 0 && G.self_cpu0 >= 0 && G.self_cpu1 >= 0;
    double self_cores = self_known ? (G.self_cpu1 - G.self_cpu0) / win : 0;
    int rss_known = G.o.server_pid && G.rss_base > 0 && G.rss_reg > 0 && G.n_at_load;
    double rss_per_client = rss_known ? (double)(G.rss_reg - G.rss_base) * 1024.0 / G.n_at_load : 0;
    double connect_s = G.last_registered_t > G.first_connect_t ? (double)(G.last_registered_t - G.first_connect_t) / 1e9 : 0;
    uint32_t registered = (uint32_t)G.h_connect.n;
    double conn_rate = connect_s > 0 ? registered / connect_s : 0;

    /* who was the bottleneck */
    const char *bott = "none";
    char why[200] = "neither side saturated";
    double worst = 1.0;
    const char *worst_name = "";
    if (off_u > 0 && ach_u / off_u < worst) worst = ach_u / off_u, worst_name = "updates";
    /* Relays that found no matched peer say nothing about either side's speed
     * (a sparse map, or a server that matches nobody, like bench/floor). */
    int relays_unjudged = d.relay_no_peer * 20 > d.relays + d.relay_no_peer;
    if (off_r > 0 && !relays_unjudged && ach_r / off_r < worst) worst = ach_r / off_r, worst_name = "relays";
    if (off_p > 0 && ach_p / off_p < worst) worst = ach_p / off_p, worst_name = "probes";
    uint64_t lagged = d.lag_updates + d.lag_relays + d.lag_probes;
    if (win <= 0) {
        bott = "unknown";
        snprintf(why, sizeof why, "no measurement window");
    } else if (self_known && self_cores >= 0.90) {
        bott = "generator";
        snprintf(why, sizeof why, "generator CPU at %.0f%% of a core", self_cores * 100);
    } else if (worst < 0.95 && (!srv_known || srv_cores < 0.95)) {
        bott = "generator";
        snprintf(why, sizeof why, "%s achieved %.1f%% of offered while the server %s", worst_name, worst * 100,
                 srv_known ? "was below 95% CPU" : "CPU is unknown (no --server-pid)");
    } else if (srv_known && srv_cores >= 0.95) {
        bott = "server";
        snprintf(why, sizeof why, "server CPU at %.0f%% of a core%s", srv_cores * 100,
                 worst < 0.95 ? "; offered load not achieved" : "");
    } else if (relays_unjudged && off_r > 0) {
        snprintf(why, sizeof why, "neither side saturated; %llu relay slots found no matched peer",
                 (unsigned long long)d.relay_no_peer);
    } else if (lagged) {
        bott = "generator";
        snprintf(why, sizeof why,
                 "generator pacer fell behind (%llu slots dropped, worst tick gap %.1f ms, %lld involuntary "
                 "context switches: preempted on its CPU?)",
                 (unsigned long long)lagged, ms(G.max_tick_gap), G.self_nvcs[1] - G.self_nvcs[0]);
    }

    uint64_t vtotal = 0;
    for (int k = 0; k < V_COUNT; k++)
        vtotal += G.v[k];
    int setup_failed = G.n_failed > 0 || G.n_ready == 0;
    int passed = checked && vtotal == 0;
    int rc = interrupted ? 3 : (vtotal ? 1 : setup_failed ? 2 : (G.o.check && !checked) ? 1 : 0);

    if (G.o.json) {
        FILE *f = stdout;
        fprintf(f, "{\"schema\":%d,\"tool\":\"earshot-loadgen\",", LG_SCHEMA);
        fprintf(f, "\"config\":{\"host\":\"%s\",\"port\":%d,\"server_pid\":%d,\"clients\":%u,\"maps\":%u,"
                   "\"density\":%.4f,\"radius\":%d,\"leave_radius\":%d,\"map_side\":%d,\"update_rate\":%.4f,"
                   "\"step\":%d,\"relay_rate\":%.4f,\"relay_bytes\":%u,\"probe_rate\":%.4f,\"probe_marker\":%s,\"relay_anyone\":%s,\"register_refresh\":%s,\"connect_rate\":%.4f,"
                   "\"max_pending\":%u,\"clients_per_address\":%u,\"warmup\":%.3f,\"duration\":%.3f,"
                   "\"settle\":%.3f,\"seed\":%llu},",
                G.o.host, G.o.port, G.o.server_pid, G.o.clients, G.o.maps, G.o.density, G.o.radius,
                G.o.leave_radius, G.side_int, G.o.update_rate, G.o.step, G.o.relay_rate, G.o.relay_bytes,
                G.o.probe_rate, G.o.probe_marker ? "true" : "false", G.o.relay_anyone ? "true" : "false", G.o.register_refresh ? "true" : "false", G.o.connect_rate, G.o.max_pending, G.o.per_address, G.o.warmup, G.o.duration,
                G.o.settle, (unsigned long long)G.o.seed);
        fprintf(f, "\"connect\":{\"registered\":%u,\"failed\":%u,\"seconds\":%.4f,\"per_s\":%.2f,", registered,
                G.n_failed, connect_s, conn_rate);
        json_hist(f, "latency_ms", &G.h_connect);
        fprintf(f, ",\"first_failure\":");
        if (G.n_fail_reasons)
            json_str(f, G.fail_reasons[0]);
        else
            fputs("null", f);
        fprintf(f, "},\"window_s\":%.4f,", win);
        fprintf(f, "\"offered_per_s\":{\"updates\":%.2f,\"relays\":%.2f,\"probes\":%.2f,\"total\":%.2f},", off_u,
                off_r, off_p, off_u + off_r + off_p);
        fprintf(f, "\"achieved_per_s\":{\"updates\":%.2f,\"relays\":%.2f,\"probes\":%.2f,\"total\":%.2f},", ach_u,
                ach_r, ach_p, ach_u + ach_r + ach_p);
        fprintf(f, "\"server_msgs_in_window\":%llu,", (unsigned long long)msgs);
        fprintf(f, "\"received_per_s\":{\"nearby_peers\":%.2f,\"relays\":%.2f,\"errors\":%.2f,\"probe_replies\":%.2f,"
                   "\"pings\":%.2f},",
                (double)d.rx_nearby * per, (double)d.rx_relay * per, (double)d.rx_error * per,
                (double)d.probe_replies * per, (double)d.rx_ping * per);
        fprintf(f, "\"bytes_per_s\":{\"sent\":%.0f,\"received\":%.0f},", (double)d.tx_bytes * per,
                (double)d.rx_bytes * per);
        json_hist(f, "probe_latency_ms", &G.h_probe);
        fputc(',', f);
        json_hist(f, "relay_latency_ms", &G.h_relay);
        fprintf(f, ",\"server\":{");
        json_num(f, "cpu_cores", srv_cores, srv_known);
        fputc(',', f);
        json_num(f, "cpu_ms_per_1000_msgs", srv_ms_per_k, srv_known && msgs);
        fputc(',', f);
        json_num(f, "rss_baseline_kib", (double)G.rss_base, G.o.server_pid && G.rss_base > 0);
        fputc(',', f);
        json_num(f, "rss_registered_kib", (double)G.rss_reg, G.o.server_pid && G.rss_reg > 0);
        fputc(',', f);
        json_num(f, "rss_end_kib", (double)G.rss_end, G.o.server_pid && G.rss_end > 0);
        fputc(',', f);
        json_num(f, "rss_per_client_bytes", rss_per_client, rss_known);
        fputc(',', f);
        json_num(f, "voluntary_ctxt_switches", (double)(G.srv_vcs[1] - G.srv_vcs[0]), srv_known);
        fputc(',', f);
        json_num(f, "nonvoluntary_ctxt_switches", (double)(G.srv_nvcs[1] - G.srv_nvcs[0]), srv_known);
        fprintf(f, "},\"generator\":{");
        json_num(f, "cpu_cores", self_cores, self_known);
        fprintf(f, ",\"lagged_slots\":%llu,\"blocked_sends\":%llu,\"relay_no_peer\":%llu,\"probe_busy\":%llu,"
                   "\"max_tick_gap_ms\":%.3f,\"nonvoluntary_ctxt_switches\":%lld},",
                (unsigned long long)lagged, (unsigned long long)d.blocked, (unsigned long long)d.relay_no_peer,
                (unsigned long long)d.probe_busy, ms(G.max_tick_gap),
                win > 0 ? G.self_nvcs[1] - G.self_nvcs[0] : 0);

        fprintf(f, "\"bottleneck\":\"%s\",\"bottleneck_reason\":", bott);
        json_str(f, why);
        fprintf(f, ",\"check\":{\"ran\":%s,\"passed\":%s,\"pairs_within_radius\":%llu,\"avg_peers_within_radius\":%.3f,"
                   "\"relays_sent\":%llu,\"relays_received\":%llu,\"relays_refused\":%llu",
                checked ? "true" : "false", passed ? "true" : "false",
                (unsigned long long)G.pairs_within_radius / 2,
                G.n_ready ? (double)G.pairs_within_radius / G.n_ready : 0.0, (unsigned long long)rt.sent,
                (unsigned long long)rt.recv, (unsigned long long)rt.refused);
        for (int k = 0; k < V_COUNT; k++)
            fprintf(f, ",\"%s\":%llu", vnames[k], (unsigned long long)G.v[k]);
        fprintf(f, ",\"first_violations\":[");
        for (uint32_t k = 0; k < G.nvmsg && k < G.o.max_violations; k++) {
            if (k)
                fputc(',', f);
            json_str(f, G.vmsg[k]);
        }
        fprintf(f, "]},\"interrupted\":%s,\"exit_code\":%d}\n", interrupted ? "true" : "false", rc);
        fflush(f);
    }

    FILE *f = G.o.json ? stderr : stdout;
    fprintf(f, "earshot loadgen: %u clients on %u map%s, side %d units (density %.2f within %d), target %s:%d\n",
            G.o.clients, G.o.maps, G.o.maps == 1 ? "" : "s", G.side_int, G.o.density, G.o.radius, G.o.host,
            G.o.port);
    fprintf(f, "connect     %u registered, %u failed in %.2f s: %.0f conn/s (connect->first NearbyPeers p50 %.2f ms, p99 %.2f ms, max %.2f ms)\n",
            registered, G.n_failed, connect_s, conn_rate, ms(lg_hist_quantile(&G.h_connect, 0.5)),
            ms(lg_hist_quantile(&G.h_connect, 0.99)), ms(G.h_connect.max));
    for (uint32_t k = 0; k < G.n_fail_reasons; k++)
        fprintf(f, "  failure: %s\n", G.fail_reasons[k]);
    if (win > 0) {
        fprintf(f, "window      %.2f s after %.1f s warmup\n", win, G.o.warmup);
        fprintf(f, "                 offered/s   achieved/s    ratio\n");
        fprintf(f, "  updates      %11.1f  %11.1f  %6.1f%%\n", off_u, ach_u, off_u > 0 ? 100 * ach_u / off_u : 100.0);
        fprintf(f, "  relays       %11.1f  %11.1f  %6.1f%%\n", off_r, ach_r, off_r > 0 ? 100 * ach_r / off_r : 100.0);
        fprintf(f, "  probes       %11.1f  %11.1f  %6.1f%%\n", off_p, ach_p, off_p > 0 ? 100 * ach_p / off_p : 100.0);
        fprintf(f, "  total        %11.1f  %11.1f\n", off_u + off_r + off_p, ach_u + ach_r + ach_p);
        fprintf(f, "received/s  NearbyPeers %.1f, ReceiveOffer %.1f, Error %.1f, ping %.1f; %.0f KB/s out, %.0f KB/s in\n",
                (double)d.rx_nearby * per, (double)d.rx_relay * per, (double)d.rx_error * per, (double)d.rx_ping * per,
                (double)d.tx_bytes * per / 1e3, (double)d.rx_bytes * per / 1e3);
        fprintf(f, "latency ms        count       p50       p99      p999       max\n");
        const lg_hist *hs[2] = {&G.h_probe, &G.h_relay};
        const char *hn[2] = {"probe", "relay"};
        for (int k = 0; k < 2; k++)
            fprintf(f, "  %-8s %11llu %9.3f %9.3f %9.3f %9.3f\n", hn[k], (unsigned long long)hs[k]->n,
                    ms(lg_hist_quantile(hs[k], 0.5)), ms(lg_hist_quantile(hs[k], 0.99)),
                    ms(lg_hist_quantile(hs[k], 0.999)), ms(hs[k]->max));
        if (G.o.server_pid) {
            if (srv_known)
                fprintf(f, "server      pid %d: CPU %.1f%% of a core, %.2f ms CPU per 1000 msgs (%llu msgs)\n",
                        G.o.server_pid, srv_cores * 100, srv_ms_per_k, (unsigned long long)msgs);
            if (rss_known)
                fprintf(f, "            RSS %ld KiB before, %ld KiB registered, %ld KiB at end: %.0f bytes per client\n",
                        G.rss_base, G.rss_reg, G.rss_end, rss_per_client);
        }
        fprintf(f, "generator   CPU %.1f%% of a core; lagged slots %llu, blocked sends %llu, relays without a peer %llu, "
                   "worst tick gap %.1f ms\n",
                self_cores * 100, (unsigned long long)lagged, (unsigned long long)d.blocked,
                (unsigned long long)d.relay_no_peer, ms(G.max_tick_gap));
        fprintf(f, "bottleneck  %s: %s\n", bott, why);
    }
    if (checked) {
        fprintf(f, "check       %s: %u clients, %llu pairs within %d (%.2f peers each); relays %llu sent, %llu received, %llu refused\n",
                passed ? "PASS" : "FAIL", G.n_ready, (unsigned long long)G.pairs_within_radius / 2, G.o.radius,
                G.n_ready ? (double)G.pairs_within_radius / G.n_ready : 0.0, (unsigned long long)rt.sent,
                (unsigned long long)rt.recv, (unsigned long long)rt.refused);
    } else {
        fprintf(f, "check       not run%s\n", interrupted ? " (interrupted)" : G.o.check ? " (the run did not finish)" : " (--no-check)");
    }
    if (vtotal) {
        fprintf(f, "violations ");
        for (int k = 0; k < V_COUNT; k++)
            if (G.v[k])
                fprintf(f, " %s=%llu", vnames[k], (unsigned long long)G.v[k]);
        fputc('\n', f);
        for (uint32_t k = 0; k < G.nvmsg && k < G.o.max_violations; k++)
            fprintf(f, "  %s\n", G.vmsg[k]);
    }
    return rc;
}

/* ---- command line -------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fputs(
        "usage: loadgen [options]\n"
        "\n"
        "Load generator and end-to-end checker for earshot (WebSocket over loopback only).\n"
        "\n"
        "Target and measurement:\n"
        "  --host ADDR            server address, must be in 127.0.0.0/8 (default 127.0.0.1)\n"
        "  --port N               server port (default 8080)\n"
        "  --path PATH            request path of the upgrade (default /)\n"
        "  --server-pid PID       read the server's CPU (utime+stime) and RSS from /proc/PID\n"
        "  --json                 print one machine-readable JSON line on stdout (the table goes to stderr)\n"
        "\n"
        "Population:\n"
        "  --clients N            WebSocket clients, ids c0..c<N-1> (default 1000)\n"
        "  --maps M               maps the clients are spread over, client i on map i % M (default 1)\n"
        "  --density D            average number of other clients within --radius (default 5);\n"
        "                         map side = sqrt((N/M) * pi * radius^2 / D)\n"
        "  --radius R             matching radius of the server config (default 20)\n"
        "  --leave-radius R       leave radius of the server config (default 25)\n"
        "  --clients-per-address K  clients per source address 127.0.0.1, .2, ... (default 1000)\n"
        "  --connect-rate R       new connections per second (default 2000)\n"
        "  --max-pending K        handshakes in flight at most (default 256)\n"
        "  --register-refresh     follow the registering UpdatePosition with a RequestPeerRefresh, for\n"
        "                         servers that do not answer the first UpdatePosition (bench/floor)\n"
        "  --connect-timeout S    all clients must be registered within S seconds (default 60)\n"
        "\n"
        "Load (all paced from one timer; rates are exact on average):\n"
        "  --update-rate R        UpdatePosition per client per second (default 1)\n"
        "  --step S               a move is at most S units per axis, never zero (default 3)\n"
        "  --relay-rate R         SendOffer per client per second, to a random current peer (default 0.1)\n"
        "  --relay-bytes B        offer payload size in bytes (default 200; at least the ~35-byte header\n"
        "                         seq:send_ns:from:to:, padded with 'x'; at most 60000)\n"
        "  --probe-rate R         RequestPeerRefresh probes per second in total, at most one\n"
        "                         outstanding per client (default 100)\n"
        "  --probe-marker         match probe replies exactly: send each RequestPeerRefresh together with a\n"
        "                         SendOffer to oneself, whose Error reply follows the NearbyPeers reply; the\n"
        "                         reply is the last NearbyPeers before it (costs one extra message per probe,\n"
        "                         counted). Without it the first NearbyPeers after a probe is taken as its\n"
        "                         reply, which reads low when an unasked one was already on its way\n"
        "  --relay-anyone         relay to a random connected client instead of a matched peer, without\n"
        "                         per-pair accounting: the same relay traffic for a server that matches\n"
        "                         nobody (bench/floor), to calibrate against\n"
        "  --tick-ms T            pacing timer period in milliseconds (default 1)\n"
        "  --seed N               random seed (default 1)\n"
        "\n"
        "Timing (every phase is bounded; the run stops by itself):\n"
        "  --warmup S             seconds of load before the measurement window (default 2)\n"
        "  --duration S           seconds of the measurement window (default 10)\n"
        "  --settle S             after the window: all stop, send a final UpdatePosition, wait at least\n"
        "                         S seconds (and 200 ms of silence), then a final RequestPeerRefresh (default 1)\n"
        "  --drain-timeout S      longest wait for the settle silence and the final replies (default 20)\n"
        "\n"
        "Checking:\n"
        "  --no-check             skip the final correctness check\n"
        "  --max-violations K     violations printed (default 10)\n"
        "  -h, --help             this text\n"
        "\n"
        "The check: every client's last NearbyPeers holds every other client of its map within\n"
        "--radius (exact integer distance) and none beyond --leave-radius, no duplicates, not itself;\n"
        "every relay sent was received exactly once and in order per (sender, target), except those\n"
        "the server refused with an Error. Any Error other than a relay refusal, any client the server\n"
        "dropped and any malformed message also fail the run.\n"
        "\n"
        "The server config must lift the limits: limits.max_connections >= N,\n"
        "max_connections_per_address = 0 (or >= K), message_rate = 0, first_message_timeout = 0,\n"
        "session.idle_timeout above both the connect phase (N / connect-rate seconds, when early\n"
        "clients are silent) and 1/update-rate, session.refresh_interval = 0 (probe accuracy).\n"
        "\n"
        "Exit status: 0 pass, 1 a check failed, 2 setup failed (flags, clients that could not\n"
        "connect or register), 3 interrupted.\n",
        f);
}

static double num_arg(const char *name, const char *v, double lo, double hi)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || *end || !(d >= lo && d <= hi))
        die("--%s: '%s' is not a number in [%g, %g]", name, v, lo, hi);
    return d;
}

static void parse_args(int argc, char **argv, opts *o)
{
    memset(o, 0, sizeof *o);
    snprintf(o->host, sizeof o->host, "127.0.0.1");
    o->port = 8080;
    o->clients = 1000;
    o->maps = 1;
    o->density = 5;
    o->radius = 20;
    o->leave_radius = 25;
    o->update_rate = 1;
    o->step = 3;
    o->relay_rate = 0.1;
    o->relay_bytes = 200;
    o->probe_rate = 100;
    o->connect_rate = 2000;
    o->max_pending = 256;
    o->per_address = 1000;
    o->warmup = 2;
    o->duration = 10;
    o->settle = 1;
    o->connect_timeout = 60;
    o->drain_timeout = 20;
    o->tick_ms = 1;
    o->seed = 1;
    o->check = 1;
    o->max_violations = 10;
    snprintf(o->path, sizeof o->path, "/");

    enum { O_HOST = 256, O_PORT, O_PATH, O_PID, O_JSON, O_CLIENTS, O_MAPS, O_DENSITY, O_RADIUS, O_LEAVE,
           O_PER_ADDR, O_CRATE, O_PENDING, O_CTIMEOUT, O_URATE, O_STEP, O_RRATE, O_RBYTES, O_PRATE,
           O_PMARK, O_RANY, O_REGREF, O_TICK, O_SEED, O_WARMUP, O_DURATION, O_SETTLE, O_DRAIN, O_NOCHECK, O_MAXV };
    static const struct option lo[] = {
        {"host", required_argument, 0, O_HOST},
        {"port", required_argument, 0, O_PORT},
        {"path", required_argument, 0, O_PATH},
        {"server-pid", required_argument, 0, O_PID},
        {"json", no_argument, 0, O_JSON},
        {"clients", required_argument, 0, O_CLIENTS},
        {"maps", required_argument, 0, O_MAPS},
        {"density", required_argument, 0, O_DENSITY},
        {"radius", required_argument, 0, O_RADIUS},
        {"leave-radius", required_argument, 0, O_LEAVE},
        {"clients-per-address", required_argument, 0, O_PER_ADDR},
        {"connect-rate", required_argument, 0, O_CRATE},
        {"max-pending", required_argument, 0, O_PENDING},
        {"connect-timeout", required_argument, 0, O_CTIMEOUT},
        {"update-rate", required_argument, 0, O_URATE},
        {"step", required_argument, 0, O_STEP},
        {"relay-rate", required_argument, 0, O_RRATE},
        {"relay-bytes", required_argument, 0, O_RBYTES},
        {"probe-rate", required_argument, 0, O_PRATE},
        {"probe-marker", no_argument, 0, O_PMARK},
        {"relay-anyone", no_argument, 0, O_RANY},
        {"register-refresh", no_argument, 0, O_REGREF},
        {"tick-ms", required_argument, 0, O_TICK},
        {"seed", required_argument, 0, O_SEED},
        {"warmup", required_argument, 0, O_WARMUP},
        {"duration", required_argument, 0, O_DURATION},
        {"settle", required_argument, 0, O_SETTLE},
        {"drain-timeout", required_argument, 0, O_DRAIN},
        {"no-check", no_argument, 0, O_NOCHECK},
        {"max-violations", required_argument, 0, O_MAXV},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        const char *name = "";
        for (const struct option *p = lo; p->name; p++)
            if (p->val == ch)
                name = p->name;
        switch (ch) {
        case O_HOST:
            if (strcmp(optarg, "localhost") == 0)
                optarg = "127.0.0.1";
            snprintf(o->host, sizeof o->host, "%s", optarg);
            break;
        case O_PORT: o->port = (int)num_arg(name, optarg, 1, 65535); break;
        case O_PATH:
            if (optarg[0] != '/' || strpbrk(optarg, " \r\n"))
                die("--path must start with / and hold no spaces or line breaks");
            snprintf(o->path, sizeof o->path, "%s", optarg);
            break;
        case O_PID: o->server_pid = (int)num_arg(name, optarg, 1, 4194304); break;
        case O_JSON: o->json = 1; break;
        case O_CLIENTS: o->clients = (uint32_t)num_arg(name, optarg, 1, 1000000); break;
        case O_MAPS: o->maps = (uint32_t)num_arg(name, optarg, 1, 100000); break;
        case O_DENSITY: o->density = num_arg(name, optarg, 0.001, 100000); break;
        case O_RADIUS: o->radius = (int)num_arg(name, optarg, 1, 1000000); break;
        case O_LEAVE: o->leave_radius = (int)num_arg(name, optarg, 1, 1000000); break;
        case O_PER_ADDR: o->per_address = (uint32_t)num_arg(name, optarg, 1, 60000); break;
        case O_CRATE: o->connect_rate = num_arg(name, optarg, 0.1, 1e6); break;
        case O_PENDING: o->max_pending = (uint32_t)num_arg(name, optarg, 1, 1000000); break;
        case O_CTIMEOUT: o->connect_timeout = num_arg(name, optarg, 0.1, 3600); break;
        case O_URATE: o->update_rate = num_arg(name, optarg, 0, 1000); break;
        case O_STEP: o->step = (int)num_arg(name, optarg, 1, 1000000); break;
        case O_RRATE: o->relay_rate = num_arg(name, optarg, 0, 1000); break;
        case O_RBYTES: o->relay_bytes = (uint32_t)num_arg(name, optarg, 0, MAX_RELAY_BYTES); break;
        case O_PRATE: o->probe_rate = num_arg(name, optarg, 0, 1e7); break;
        case O_PMARK: o->probe_marker = 1; break;
        case O_RANY: o->relay_anyone = 1; break;
        case O_REGREF: o->register_refresh = 1; break;
        case O_TICK: o->tick_ms = num_arg(name, optarg, 0.05, 100); break;
        case O_SEED: o->seed = (uint64_t)num_arg(name, optarg, 0, 1e15); break;
        case O_WARMUP: o->warmup = num_arg(name, optarg, 0, 3600); break;
        case O_DURATION: o->duration = num_arg(name, optarg, 0.1, 3600); break;
        case O_SETTLE: o->settle = num_arg(name, optarg, 0, 600); break;
        case O_DRAIN: o->drain_timeout = num_arg(name, optarg, 0.5, 600); break;
        case O_NOCHECK: o->check = 0; break;
        case O_MAXV: o->max_violations = (uint32_t)num_arg(name, optarg, 0, MAX_STORED_VIOLATIONS); break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (optind < argc)
        die("unexpected argument '%s' (see --help)", argv[optind]);
    struct in_addr a;
    if (inet_pton(AF_INET, o->host, &a) != 1)
        die("--host must be an IPv4 address in 127.0.0.0/8, not '%s'", o->host);
    if ((ntohl(a.s_addr) >> 24) != 127)
        die("--host %s is not a loopback address: only 127.0.0.0/8 targets are allowed", o->host);
    o->host_addr = a.s_addr;
    if (o->leave_radius < o->radius)
        die("--leave-radius (%d) must be at least --radius (%d)", o->leave_radius, o->radius);
    if (o->maps > o->clients)
        die("--maps (%u) is more than --clients (%u)", o->maps, o->clients);
    if ((uint64_t)o->clients / o->per_address / 254 >= 256 * 256)
        die("too many source addresses: raise --clients-per-address");
}

static void on_signal(int sig)
{
    (void)sig;
    G.interrupted = 1;
}

static void raise_nofile(uint32_t need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        die("getrlimit: %s", strerror(errno));
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
        die("%u clients need %u open files but the limit is %llu (hard limit %llu): use fewer clients "
            "or raise the hard limit",
            need - 32, need, (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max);
}

int main(int argc, char **argv)
{
    parse_args(argc, argv, &G.o);
    G.n = G.o.clients;
    raise_nofile(G.n + 32);
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    G.rng = G.o.seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
    if (!G.rng)
        G.rng = 1;
    double per_map = (double)G.n / G.o.maps;
    G.side = sqrt(per_map * M_PI * G.o.radius * G.o.radius / G.o.density);
    G.side_int = G.side < 1 ? 1 : (int32_t)ceil(G.side);
    if (G.side > 1e9)
        die("map side %.0f is too large: raise --density", G.side);
    G.scratch = malloc(SCRATCH_BYTES);
    G.pbuf = malloc(MAX_RELAY_BYTES + 256);
    G.cl = calloc(G.n, sizeof *G.cl);
    if (!G.scratch || !G.pbuf || !G.cl)
        die("out of memory for %u clients", G.n);
    for (uint32_t i = 0; i < G.n; i++) {
        client *c = &G.cl[i];
        c->fd = -1;
        c->map = i % G.o.maps;
        c->x = (int32_t)rnd_below((uint32_t)G.side_int);
        c->y = (int32_t)rnd_below((uint32_t)G.side_int);
    }
    lg_hist_reset(&G.h_connect);
    lg_hist_reset(&G.h_probe);
    lg_hist_reset(&G.h_relay);

    if (G.o.server_pid) {
        if (!lg_proc_alive(G.o.server_pid))
            die("--server-pid %d: no such process", G.o.server_pid);
        G.rss_base = lg_proc_rss_kib(G.o.server_pid);
    }

    G.ep = epoll_create1(EPOLL_CLOEXEC);
    G.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (G.ep < 0 || G.tfd < 0)
        die("epoll/timerfd: %s", strerror(errno));
    long tick_ns = (long)(G.o.tick_ms * 1e6);
    struct itimerspec its = {.it_interval = {tick_ns / 1000000000L, tick_ns % 1000000000L},
                             .it_value = {tick_ns / 1000000000L, tick_ns % 1000000000L}};
    timerfd_settime(G.tfd, 0, &its, NULL);
    struct epoll_event tev = {.events = EPOLLIN, .data.u64 = TIMER_ID};
    epoll_ctl(G.ep, EPOLL_CTL_ADD, G.tfd, &tev);

    G.phase = P_CONNECT;
    G.connect_t0 = G.phase_t = G.last_rx_t = now_ns();
    static struct epoll_event evs[1024];
    uint64_t last_alive_check = G.connect_t0;
    while (G.phase != P_DONE && !G.interrupted) {
        int n = epoll_wait(G.ep, evs, 1024, 200);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait: %s", strerror(errno));
        }
        uint64_t now = now_ns();
        for (int k = 0; k < n; k++) {
            uint64_t id = evs[k].data.u64;
            if (id == TIMER_ID) {
                uint64_t exp;
                if (read(G.tfd, &exp, sizeof exp) < 0 && errno != EAGAIN)
                    die("timerfd: %s", strerror(errno));
                tick(now);
                continue;
            }
            uint32_t i = (uint32_t)id;
            client *c = &G.cl[i];
            uint32_t e = evs[k].events;
            if (c->state == C_DEAD)
                continue;
            if (c->state == C_CONNECTING) {
                if (e & (EPOLLOUT | EPOLLERR | EPOLLHUP))
                    connected(i);
                continue;
            }
            if ((e & EPOLLOUT) && c->want_out)
                flush_client(i);
            if (c->state != C_DEAD && (e & (EPOLLIN | EPOLLERR | EPOLLHUP)))
                on_readable(i, now_ns());
        }
        if (G.o.server_pid && now - last_alive_check > 1000000000ull) {
            last_alive_check = now;
            if (!lg_proc_alive(G.o.server_pid)) {
                fprintf(stderr, "loadgen: server pid %d is gone\n", G.o.server_pid);
                break;
            }
        }
    }
    int rc = report(G.interrupted);
    /* Leave without a goodbye: the server sees N closes, which is part of its job. */
    for (uint32_t i = 0; i < G.n; i++)
        if (G.cl[i].fd >= 0)
            close(G.cl[i].fd);
    return rc;
}
