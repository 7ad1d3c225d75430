#include "admin_api.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "netmask.h"
#include "util.h"

/* Clients the capped list of one client names at most. */
#define CAPPED_MAX 4096

/* ---- writing ------------------------------------------------------------- */

static void put(es_buf *b, const char *s) { es_buf_append_cstr(b, s); }

static void putf(es_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(es_buf *b, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        es_buf_append(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void str(es_buf *b, const char *s, size_t n) { es_buf_append_json_string(b, s, n); }
static void cstr(es_buf *b, const char *s) { str(b, s, strlen(s)); }

/* {"error": text}; returns status. */
static int refuse(es_buf *out, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int refuse(es_buf *out, int status, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    es_buf_reset(out);
    put(out, "{\"error\":");
    cstr(out, text);
    put(out, "}\n");
    return status;
}

/* Unix time of a moment of the core's monotonic clock. */
static double wall_of(const es_core *c, double mono) { return c->wallclock() - (c->now() - mono); }

/* ---- reading the arguments ----------------------------------------------- */

static const char *arg(const es_admin_arg *args, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(args[i].name, name) == 0)
            return args[i].value;
    return NULL;
}

/* A decimal int32 with nothing around it. */
static int parse_i32(const char *s, int *out)
{
    if (!s || !*s || (*s != '-' && (*s < '0' || *s > '9')))
        return -1;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < INT32_MIN || v > INT32_MAX)
        return -1;
    *out = (int)v;
    return 0;
}

/* Operator text (a reason): at most ES_MOD_TEXT_MAX bytes of UTF-8 with no
 * control characters, so that it can go into a log line and an Error. */
static int text_ok(const char *s, size_t n)
{
    if (n > ES_MOD_TEXT_MAX || !es_utf8_valid(s, n))
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 0;
    return 1;
}

/* ---- totals and maps ----------------------------------------------------- */

typedef struct collect {
    es_session **v;
    size_t n, cap;
    int all, game, map; /* all: every registered client, else game and map */
} collect;

static void collect_one(es_session *s, void *ud)
{
    collect *c = ud;
    if (!c->all && (s->view.pos.game_id != c->game || s->view.pos.map_id != c->map))
        return;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 64;
        c->v = es_xrealloc(c->v, c->cap * sizeof *c->v);
    }
    c->v[c->n++] = s;
}

static int by_map(const void *pa, const void *pb)
{
    const es_session *a = *(es_session *const *)pa, *b = *(es_session *const *)pb;
    if (a->view.pos.game_id != b->view.pos.game_id)
        return a->view.pos.game_id < b->view.pos.game_id ? -1 : 1;
    if (a->view.pos.map_id != b->view.pos.map_id)
        return a->view.pos.map_id < b->view.pos.map_id ? -1 : 1;
    return 0;
}

static int id_cmp(const es_session *a, const es_session *b)
{
    size_t n = a->id_len < b->id_len ? a->id_len : b->id_len;
    int r = memcmp(a->id, b->id, n);
    return r ? r : (a->id_len > b->id_len) - (a->id_len < b->id_len);
}

static int by_id(const void *pa, const void *pb)
{
    return id_cmp(*(es_session *const *)pa, *(es_session *const *)pb);
}

static void totals(const es_admin_api *a, es_buf *out)
{
    const es_core *c = a->core;
    uint64_t in = 0, refused = 0;
    for (int i = 0; i < ES_MSG_TYPE_COUNT; i++)
        in += c->stats.messages_in[i];
    for (int k = 0; k < 3; k++)
        refused += c->stats.relays[k][ES_RELAY_REFUSED];
    putf(out, "{\"clients\":%zu,\"connections\":%zu,\"held\":%zu,\"pairs\":%llu,", es_core_clients(c),
         c->sessions, c->nheld, (unsigned long long)c->matcher.pairs);
    putf(out, "\"messages_in\":%llu,\"relays_refused\":%llu,\"capped_out\":%llu}",
         (unsigned long long)in, (unsigned long long)refused,
         (unsigned long long)c->matcher.capped_out);
}

static int get_maps(es_admin_api *a, es_buf *out)
{
    collect col = {.all = 1};
    es_registry_each(&a->core->registry, collect_one, &col);
    qsort(col.v, col.n, sizeof *col.v, by_map);
    put(out, "{\"node\":");
    cstr(out, a->node);
    putf(out, ",\"time\":%.3f,\"totals\":", a->core->wallclock());
    totals(a, out);
    put(out, ",\"maps\":[");
    for (size_t i = 0, first = 1; i < col.n;) {
        size_t j = i;
        while (j < col.n && by_map(&col.v[i], &col.v[j]) == 0)
            j++;
        putf(out, "%s{\"game_id\":%d,\"map_id\":%d,\"clients\":%zu}", first ? "" : ",",
             col.v[i]->view.pos.game_id, col.v[i]->view.pos.map_id, j - i);
        first = 0;
        i = j;
    }
    put(out, "]}\n");
    free(col.v);
    return 200;
}

/* The hearing radius the page draws: the proximity plugin's `radius` when
 * it is loaded, else the largest radius any match filter may allow. */
static long long hearing_radius(const es_core *c)
{
    const es_hooks *h = c->hooks;
    for (size_t i = 0; i < h->nlinks; i++)
        if (strcmp(h->links[i].name, "proximity") == 0 && h->links[i].host->setting_int)
            return (long long)h->links[i].host->setting_int(&h->links[i].settings, "radius");
    return (long long)h->query_radius;
}

static void client_brief(const es_admin_api *a, const es_session *s, es_buf *out)
{
    put(out, "{\"id\":");
    str(out, s->id, s->id_len);
    putf(out, ",\"x\":%d,\"y\":%d,\"channel\":%d,\"held\":%s,\"muted\":%s,\"peers\":[",
         s->view.pos.x, s->view.pos.y, s->view.pos.channel, s->held ? "true" : "false",
         es_moderation_muted(a->mod, s->id, s->id_len) ? "true" : "false");
    for (uint32_t i = 0; i < s->nedges; i++) {
        const es_session *o = es_edge_other(s->edges[i], s);
        if (i)
            put(out, ",");
        str(out, o->id, o->id_len);
    }
    put(out, "]}");
}

static int get_map(es_admin_api *a, const es_admin_arg *args, size_t nargs, es_buf *out)
{
    int game, map;
    if (parse_i32(arg(args, nargs, "game"), &game) || parse_i32(arg(args, nargs, "map"), &map))
        return refuse(out, 400, "game and map must be integers: map?game=0&map=1");
    es_core *c = a->core;
    collect col = {.game = game, .map = map};
    es_registry_each(&c->registry, collect_one, &col);
    qsort(col.v, col.n, sizeof *col.v, by_id);
    putf(out, "{\"game_id\":%d,\"map_id\":%d,\"hearing_radius\":%lld,\"query_radius\":%lld,"
              "\"max_peers\":%u,\"node\":",
         game, map, hearing_radius(c), (long long)c->hooks->query_radius, c->matcher.max_peers);
    cstr(out, a->node);
    putf(out, ",\"time\":%.3f,\"clients\":[", c->wallclock());
    for (size_t i = 0; i < col.n; i++) {
        if (i)
            put(out, ",");
        client_brief(a, col.v[i], out);
    }
    /* The pairs the cap left out: one end of each is full, so only full
     * clients are asked about; a pair of two full clients is written by
     * the end whose id sorts first. */
    put(out, "],\"capped\":[");
    es_session **cand = es_xmalloc(CAPPED_MAX * sizeof *cand);
    int first = 1;
    uint32_t cap = c->matcher.max_peers;
    for (size_t i = 0; cap && i < col.n; i++) {
        es_session *s = col.v[i];
        if (s->nedges < cap)
            continue;
        size_t n = es_matcher_capped(&c->matcher, s, cand, CAPPED_MAX);
        if (n > CAPPED_MAX)
            n = CAPPED_MAX;
        for (size_t k = 0; k < n; k++) {
            es_session *o = cand[k];
            if (o->nedges >= cap && id_cmp(o, s) < 0)
                continue;
            put(out, first ? "[" : ",[");
            str(out, s->id, s->id_len);
            put(out, ",");
            str(out, o->id, o->id_len);
            put(out, "]");
            first = 0;
        }
    }
    free(cand);
    put(out, "]}\n");
    free(col.v);
    return 200;
}

static es_session *find_client(es_admin_api *a, const char *id, size_t len)
{
    if (!id || !es_protocol_id_valid(id, len))
        return NULL;
    es_session *s = es_registry_find(&a->core->registry, id, len);
    return s && s->registered ? s : NULL;
}

static int get_client(es_admin_api *a, const es_admin_arg *args, size_t nargs, es_buf *out)
{
    const char *id = arg(args, nargs, "id");
    if (!id)
        return refuse(out, 400, "which client? client?id=...");
    es_session *s = find_client(a, id, strlen(id));
    if (!s)
        return refuse(out, 404, "no client %s", id);
    es_core *c = a->core;
    put(out, "{\"id\":");
    str(out, s->id, s->id_len);
    put(out, ",\"address\":");
    cstr(out, s->addr);
    /* several nodes: where its connection is; this node serves its map */
    put(out, ",\"node\":");
    cstr(out, c->router.ops && c->router.ops->node_of ? c->router.ops->node_of(c->router.ud, s)
                                                      : a->node);
    put(out, ",\"served_by\":");
    cstr(out, a->node);
    putf(out, ",\"connected_since\":%.3f,\"messages\":%llu,\"relays_refused\":%llu,",
         wall_of(c, s->opened_at), (unsigned long long)s->msgs_in,
         (unsigned long long)s->relays_refused);
    putf(out, "\"resumable\":%s,\"held\":%s,\"muted\":%s,", s->resumable ? "true" : "false",
         s->held ? "true" : "false",
         es_moderation_muted(a->mod, s->id, s->id_len) ? "true" : "false");
    putf(out, "\"game_id\":%d,\"map_id\":%d,\"x\":%d,\"y\":%d,\"channel\":%d,\"peers\":[",
         s->view.pos.game_id, s->view.pos.map_id, s->view.pos.x, s->view.pos.y,
         s->view.pos.channel);
    for (uint32_t i = 0; i < s->nedges; i++) {
        const es_session *o = es_edge_other(s->edges[i], s);
        if (i)
            put(out, ",");
        str(out, o->id, o->id_len);
    }
    put(out, "],\"capped\":[");
    es_session **cand = es_xmalloc(CAPPED_MAX * sizeof *cand);
    size_t n = es_matcher_capped(&c->matcher, s, cand, CAPPED_MAX);
    for (size_t k = 0; k < n && k < CAPPED_MAX; k++) {
        if (k)
            put(out, ",");
        str(out, cand[k]->id, cand[k]->id_len);
    }
    free(cand);
    put(out, "]}\n");
    return 200;
}

typedef struct mod_list {
    es_buf *out;
    int first_ban, first_mute;
    es_buf mutes;
} mod_list;

static void mod_one(const es_mod_view *v, void *ud)
{
    mod_list *l = ud;
    es_buf *b = v->is_ban ? l->out : &l->mutes;
    int *first = v->is_ban ? &l->first_ban : &l->first_mute;
    put(b, *first ? "{" : ",{");
    *first = 0;
    if (v->is_ban) {
        putf(b, "\"kind\":\"%s\",\"key\":", v->kind == ES_BAN_ID ? "client_id" : "address");
        cstr(b, v->key);
        putf(b, ",\"since\":%.3f,\"until\":%.3f", v->since, v->until);
    } else {
        put(b, "\"client_id\":");
        cstr(b, v->key);
        putf(b, ",\"since\":%.3f", v->since);
    }
    put(b, ",\"reason\":");
    cstr(b, v->reason);
    put(b, ",\"by\":");
    cstr(b, v->by);
    put(b, "}");
}

static int get_moderation(es_admin_api *a, es_buf *out)
{
    mod_list l = {.out = out, .first_ban = 1, .first_mute = 1};
    es_buf_init(&l.mutes);
    put(out, "{\"bans\":[");
    es_moderation_each(a->mod, a->core->wallclock(), mod_one, &l);
    put(out, "],\"mutes\":[");
    es_buf_append(out, es_buf_data(&l.mutes), l.mutes.len);
    put(out, "]}\n");
    es_buf_free(&l.mutes);
    return 200;
}

int es_admin_api_get(es_admin_api *a, const char *name, const es_admin_arg *args, size_t nargs,
                     es_buf *out)
{
    es_buf_reset(out);
    if (strcmp(name, "maps") == 0)
        return get_maps(a, out);
    if (strcmp(name, "map") == 0)
        return get_map(a, args, nargs, out);
    if (strcmp(name, "client") == 0)
        return get_client(a, args, nargs, out);
    if (strcmp(name, "moderation") == 0)
        return get_moderation(a, out);
    if (strcmp(name, "kick") == 0 || strcmp(name, "mute") == 0 || strcmp(name, "unmute") == 0 ||
        strcmp(name, "ban") == 0 || strcmp(name, "unban") == 0)
        return refuse(out, 405, "%s takes a POST", name);
    return refuse(out, 404, "no such API: %s", name);
}

/* ---- actions ------------------------------------------------------------- */

/* An optional string field: 0 (absent leaves *out NULL), or -1 with the
 * refusal written. */
static int opt_text(json_t *o, const char *field, const char **out, es_buf *b, int *status)
{
    json_t *v = json_object_get(o, field);
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v) || !text_ok(json_string_value(v), json_string_length(v))) {
        *status = refuse(b, 400,
                         "'%s' must be a string of at most %d bytes with no control characters",
                         field, ES_MOD_TEXT_MAX);
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

/* The client_id field, valid as the protocol wants it; NULL when absent. */
static int opt_id(json_t *o, const char **id, size_t *len, es_buf *b, int *status)
{
    json_t *v = json_object_get(o, "client_id");
    *id = NULL;
    *len = 0;
    if (!v)
        return 0;
    if (!json_is_string(v) || !es_protocol_id_valid(json_string_value(v), json_string_length(v))) {
        *status = refuse(b, 400,
                         "'client_id' must be 1 to 128 bytes of UTF-8 with no control characters");
        return -1;
    }
    *id = json_string_value(v);
    *len = json_string_length(v);
    return 0;
}

/* A single address (no prefix): 0, NULL when absent, or -1. */
static int opt_address(json_t *o, const char **addr, es_buf *b, int *status)
{
    json_t *v = json_object_get(o, "address");
    *addr = NULL;
    if (!v)
        return 0;
    es_netmask m;
    const char *why;
    if (!json_is_string(v) || json_string_length(v) > 63 ||
        strchr(json_string_value(v), '/') || strlen(json_string_value(v)) != json_string_length(v) ||
        es_netmask_parse(json_string_value(v), &m, &why)) {
        *status = refuse(b, 400, "'address' must be one IPv4 or IPv6 address");
        return -1;
    }
    *addr = json_string_value(v);
    return 0;
}

typedef struct addr_walk {
    const char *addr;
    es_session **v;
    size_t n, cap;
} addr_walk;

static void addr_one(es_session *s, void *ud)
{
    addr_walk *w = ud;
    if (strcmp(s->addr, w->addr) != 0)
        return;
    if (w->n == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 16;
        w->v = es_xrealloc(w->v, w->cap * sizeof *w->v);
    }
    w->v[w->n++] = s;
}

/* "kicked", "kicked: reason", "banned: reason" */
static void client_text(char *out, size_t outlen, const char *what, const char *reason)
{
    snprintf(out, outlen, "%s%s%s", what, reason && *reason ? ": " : "", reason ? reason : "");
}

static int do_kick(es_admin_api *a, json_t *o, const char *who, es_buf *out)
{
    int status;
    const char *id, *reason;
    size_t len;
    if (opt_id(o, &id, &len, out, &status) || opt_text(o, "reason", &reason, out, &status))
        return status;
    if (!id)
        return refuse(out, 400, "'client_id' is missing");
    int code = ES_CLOSE_KICKED;
    json_t *jc = json_object_get(o, "code");
    if (jc) {
        if (!json_is_integer(jc) || json_integer_value(jc) < 4000 || json_integer_value(jc) > 4999)
            return refuse(out, 400, "'code' must be an integer from 4000 to 4999");
        code = (int)json_integer_value(jc);
    }
    es_session *s = find_client(a, id, len);
    if (!s)
        return refuse(out, 404, "no client %s", id);
    char text[ES_MOD_TEXT_MAX + 16];
    client_text(text, sizeof text, "kicked", reason);
    ES_INFO("admin", "%s kicked %s (close %d): %s", who, id, code, reason ? reason : "");
    es_core_kick(a->core, s, code, text);
    put(out, "{\"kicked\":");
    str(out, id, len);
    putf(out, ",\"code\":%d}\n", code);
    return 200;
}

static int do_mute(es_admin_api *a, json_t *o, const char *who, es_buf *out, int on)
{
    int status;
    const char *id, *reason = NULL;
    size_t len;
    if (opt_id(o, &id, &len, out, &status) ||
        (on && opt_text(o, "reason", &reason, out, &status)))
        return status;
    if (!id)
        return refuse(out, 400, "'client_id' is missing");
    if (on) {
        if (!find_client(a, id, len))
            return refuse(out, 404, "no client %s", id);
        es_moderation_mute(a->mod, id, len, a->core->wallclock(), reason, who);
        ES_INFO("admin", "%s muted %s: %s", who, id, reason ? reason : "");
    } else {
        if (es_moderation_unmute(a->mod, id, len) != 0)
            return refuse(out, 404, "%s is not muted", id);
        ES_INFO("admin", "%s unmuted %s", who, id);
    }
    put(out, on ? "{\"muted\":" : "{\"unmuted\":");
    str(out, id, len);
    put(out, "}\n");
    return 200;
}

/* Exactly one of client_id and address: 0, or -1 with the refusal. */
static int ban_key(json_t *o, const char **id, size_t *len, const char **addr, es_buf *out,
                   int *status)
{
    if (opt_id(o, id, len, out, status) || opt_address(o, addr, out, status))
        return -1;
    if (!*id == !*addr) {
        *status = refuse(out, 400, "give one of 'client_id' and 'address'");
        return -1;
    }
    return 0;
}

static int do_ban(es_admin_api *a, json_t *o, const char *who, es_buf *out)
{
    int status;
    const char *id, *addr, *reason;
    size_t len;
    if (ban_key(o, &id, &len, &addr, out, &status) ||
        opt_text(o, "reason", &reason, out, &status))
        return status;
    json_t *js = json_object_get(o, "seconds");
    double seconds = js && json_is_number(js) ? json_number_value(js) : -1;
    if (!(seconds >= 1 && seconds <= ES_BAN_MAX_SECONDS))
        return refuse(out, 400, "'seconds' must be a number from 1 to %.0f", ES_BAN_MAX_SECONDS);
    es_core *c = a->core;
    double now = c->wallclock();
    es_ban_kind kind = id ? ES_BAN_ID : ES_BAN_ADDRESS;
    const char *key = id ? id : addr;
    size_t klen = id ? len : strlen(addr);
    if (es_moderation_ban(a->mod, kind, key, klen, seconds, now, reason, who) != 0)
        return refuse(out, 400, "cannot ban that");
    ES_INFO("admin", "%s banned %s %s for %.0f s: %s", who, id ? "client_id" : "address", key,
            seconds, reason ? reason : "");
    /* whoever it covers now leaves */
    addr_walk w = {.addr = addr};
    if (id) {
        es_session *s = find_client(a, id, len);
        if (s) {
            w.v = es_xmalloc(sizeof *w.v);
            w.v[w.n++] = s;
        }
    } else {
        es_registry_each(&c->registry, addr_one, &w);
    }
    char text[ES_MOD_TEXT_MAX + 16];
    client_text(text, sizeof text, "banned", reason);
    put(out, "{\"banned\":");
    str(out, key, klen);
    putf(out, ",\"kind\":\"%s\",\"until\":%.3f,\"kicked\":[", id ? "client_id" : "address",
         now + seconds);
    for (size_t i = 0; i < w.n; i++) {
        put(out, i ? "," : "");
        str(out, w.v[i]->id, w.v[i]->id_len);
    }
    for (size_t i = 0; i < w.n; i++)
        es_core_kick(c, w.v[i], ES_CLOSE_BANNED, text);
    free(w.v);
    put(out, "]}\n");
    return 200;
}

static int do_unban(es_admin_api *a, json_t *o, const char *who, es_buf *out)
{
    int status;
    const char *id, *addr;
    size_t len;
    if (ban_key(o, &id, &len, &addr, out, &status))
        return status;
    const char *key = id ? id : addr;
    size_t klen = id ? len : strlen(addr);
    if (es_moderation_unban(a->mod, id ? ES_BAN_ID : ES_BAN_ADDRESS, key, klen,
                            a->core->wallclock()) != 0)
        return refuse(out, 404, "%s is not banned", key);
    ES_INFO("admin", "%s lifted the ban of %s %s", who, id ? "client_id" : "address", key);
    put(out, "{\"unbanned\":");
    str(out, key, klen);
    put(out, "}\n");
    return 200;
}

int es_admin_api_post(es_admin_api *a, const char *name, const char *body, size_t len,
                      const char *who, es_buf *out)
{
    es_buf_reset(out);
    enum { KICK, MUTE, UNMUTE, BAN, UNBAN, NONE } what = NONE;
    static const char *const names[] = {"kick", "mute", "unmute", "ban", "unban"};
    for (int i = 0; i < NONE; i++)
        if (strcmp(name, names[i]) == 0)
            what = i;
    if (what == NONE) {
        if (strcmp(name, "maps") == 0 || strcmp(name, "map") == 0 ||
            strcmp(name, "client") == 0 || strcmp(name, "moderation") == 0)
            return refuse(out, 405, "%s takes a GET", name);
        return refuse(out, 404, "no such API: %s", name);
    }
    json_error_t jerr;
    json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!o || !json_is_object(o)) {
        json_decref(o);
        return refuse(out, 400, "the body must be a JSON object");
    }
    int status;
    switch (what) {
    case KICK: status = do_kick(a, o, who, out); break;
    case MUTE: status = do_mute(a, o, who, out, 1); break;
    case UNMUTE: status = do_mute(a, o, who, out, 0); break;
    case BAN: status = do_ban(a, o, who, out); break;
    default: status = do_unban(a, o, who, out); break;
    }
    json_decref(o);
    return status;
}
