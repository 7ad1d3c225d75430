/*
 * relay_guard - relays (offers, answers, ICE candidates) only between
 * clients that are matched now or were matched within the last `grace`
 * seconds, so a client cannot push signaling at players it was never near.
 * The grace period lets a handshake started just before two players parted
 * finish cleanly.
 *
 * It learns of partings from the pair hook and remembers each parted pair
 * (by client_id) for `grace` seconds; entries older than that are swept.
 * Verdicts: PASS when the relay is allowed (so later links may still
 * decide), DENY otherwise.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "earshot/plugin.h"

typedef struct parted {
    struct parted *next;
    uint64_t hash;
    double at;     /* when the pair parted */
    size_t len;    /* of key */
    char key[];    /* "idA\0idB", ids in byte order */
} parted;

typedef struct guard {
    const earshot_host *host;
    double grace;
    parted **buckets;
    size_t nbuckets; /* power of two */
    size_t count;
    double last_sweep;
} guard;

static const earshot_setting_def settings[] = {
    EARSHOT_SETTING_NUMBER_DEF("grace", 30.0, 0.0, 86400.0,
                               "seconds a parted pair may still exchange relays"),
    EARSHOT_SETTINGS_END,
};

/* The pair key: both ids, smaller first, NUL between. Returns its length. */
static size_t pair_key(const char *a, const char *b, char *out)
{
    if (strcmp(a, b) > 0) {
        const char *t = a;
        a = b;
        b = t;
    }
    size_t la = strlen(a), lb = strlen(b);
    memcpy(out, a, la + 1);
    memcpy(out + la + 1, b, lb);
    return la + 1 + lb;
}

static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static parted **find_slot(guard *g, const char *key, size_t len, uint64_t h)
{
    parted **pp = &g->buckets[h & (g->nbuckets - 1)];
    while (*pp && !((*pp)->hash == h && (*pp)->len == len && memcmp((*pp)->key, key, len) == 0))
        pp = &(*pp)->next;
    return pp;
}

static void sweep(guard *g, double now)
{
    for (size_t i = 0; i < g->nbuckets; i++) {
        parted **pp = &g->buckets[i];
        while (*pp) {
            if (now - (*pp)->at > g->grace) {
                parted *dead = *pp;
                *pp = dead->next;
                free(dead);
                g->count--;
            } else {
                pp = &(*pp)->next;
            }
        }
    }
    g->last_sweep = now;
}

static void grow(guard *g)
{
    size_t n = g->nbuckets * 2;
    parted **b = calloc(n, sizeof *b);
    if (!b)
        return; /* keep the longer chains */
    for (size_t i = 0; i < g->nbuckets; i++) {
        parted *p = g->buckets[i];
        while (p) {
            parted *next = p->next;
            p->next = b[p->hash & (n - 1)];
            b[p->hash & (n - 1)] = p;
            p = next;
        }
    }
    free(g->buckets);
    g->buckets = b;
    g->nbuckets = n;
}

static int guard_init(const earshot_host *host, const earshot_settings *s, void **state, char *err,
                      size_t errlen)
{
    guard *g = calloc(1, sizeof *g);
    if (g)
        g->buckets = calloc(256, sizeof *g->buckets);
    if (!g || !g->buckets) {
        free(g);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    g->host = host;
    g->nbuckets = 256;
    g->grace = host->setting_number(s, "grace");
    g->last_sweep = host->now();
    *state = g;
    return 0;
}

static void guard_destroy(void *state)
{
    guard *g = state;
    for (size_t i = 0; i < g->nbuckets; i++) {
        parted *p = g->buckets[i];
        while (p) {
            parted *next = p->next;
            free(p);
            p = next;
        }
    }
    free(g->buckets);
    free(g);
}

static void guard_pair(void *state, const earshot_client *a, const earshot_client *b, int matched)
{
    guard *g = state;
    char key[2 * 129];
    size_t len = pair_key(a->client_id, b->client_id, key);
    uint64_t h = fnv1a(key, len);
    parted **slot = find_slot(g, key, len, h);
    double now = g->host->now();
    if (matched) {
        /* Matched now: the core tells us so on every relay; forget the parting. */
        if (*slot) {
            parted *dead = *slot;
            *slot = dead->next;
            free(dead);
            g->count--;
        }
        return;
    }
    if (g->grace <= 0)
        return;
    if (*slot) {
        (*slot)->at = now;
        return;
    }
    if (now - g->last_sweep > g->grace)
        sweep(g, now);
    if (g->count >= g->nbuckets)
        grow(g);
    parted *p = malloc(sizeof *p + len);
    if (!p)
        return; /* the pair just loses its grace period */
    p->hash = h;
    p->at = now;
    p->len = len;
    memcpy(p->key, key, len);
    slot = &g->buckets[h & (g->nbuckets - 1)];
    p->next = *slot;
    *slot = p;
    g->count++;
}

static earshot_verdict guard_relay(void *state, const earshot_relay *r, const char **reason)
{
    guard *g = state;
    (void)reason; /* the core's default text names the target */
    if (r->matched)
        return EARSHOT_PASS;
    char key[2 * 129];
    size_t len = pair_key(r->sender->client_id, r->target->client_id, key);
    parted *p = *find_slot(g, key, len, fnv1a(key, len));
    if (p && g->host->now() - p->at <= g->grace)
        return EARSHOT_PASS;
    return EARSHOT_DENY;
}

EARSHOT_PLUGIN_DEFINE(.name = "relay_guard", .version = "1.0.0",
                      .description = "relay only between clients matched now or within a grace period",
                      .settings = settings, .init = guard_init, .destroy = guard_destroy,
                      .on_relay = guard_relay, .on_pair = guard_pair)
