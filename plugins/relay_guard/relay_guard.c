/*
 * relay_guard - relays (offers, answers, ICE candidates) only between
 * clients that are matched now or were matched within the last `grace`
 * seconds, so a client cannot push signaling at players it was never near.
 * The grace period lets a handshake started just before two players parted
 * finish cleanly.
 *
 * It learns of partings from the pair hook and remembers each parted pair
 * (by client_id) for `grace` seconds. Verdicts: PASS when the relay is
 * allowed (so later links may still decide), DENY otherwise.
 *
 * The parted pairs live in a uthash table keyed by both ids. The ids are
 * chosen by clients, so the table hashes with the host's keyed hash: nobody
 * can pick ids that pile into one bucket. Each entry is also on a list
 * ordered by parting time, oldest first, so expiry pops from its head: every
 * hook call first drops the pairs whose grace has run out, and so does the
 * tick, once a second, so the table shrinks while nobody moves or relays;
 * the table (buckets included) is freed when its last pair goes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "earshot/plugin.h"

/*
 * uthash's HASH_FUNCTION has no context argument, so the host's hash is kept
 * here. Every instance gets the same function from the same core.
 */
static uint64_t (*guard_hash)(const void *data, size_t len);

#define HASH_FUNCTION(keyptr, keylen, hashv) \
    ((hashv) = (unsigned)guard_hash((keyptr), (size_t)(keylen)))
/* A failed allocation loses one pair's grace period, never the process. */
#define HASH_NONFATAL_OOM 1
#include <uthash.h>
#include <utlist.h>

/* A client_id is at most 128 bytes: two of them and the NUL between. */
#define GUARD_KEY_MAX (2 * 128 + 1)

typedef struct parted {
    UT_hash_handle hh;          /* in guard.table, keyed by key[0..len) */
    struct parted *prev, *next; /* guard.oldest: by `at`, oldest first */
    double at;                  /* when the pair parted */
    size_t len;                 /* of key */
    char key[];                 /* "idA\0idB", ids in byte order */
} parted;

typedef struct guard {
    const earshot_host *host;
    double grace;
    parted *table;  /* uthash head; NULL when empty */
    parted *oldest; /* utlist head of the same entries */
} guard;

static const earshot_setting_def settings[] = {
    EARSHOT_SETTING_NUMBER_DEF("grace", 30.0, 0.0, 86400.0,
                               "seconds a parted pair may still exchange relays"),
    EARSHOT_SETTINGS_END,
};

/* The pair key: both ids, smaller first, NUL between. Returns its length,
 * or 0 when the ids are longer than any client_id can be. */
static size_t pair_key(const char *a, const char *b, char out[GUARD_KEY_MAX])
{
    if (strcmp(a, b) > 0) {
        const char *t = a;
        a = b;
        b = t;
    }
    size_t la = strlen(a), lb = strlen(b);
    if (la + 1 + lb > GUARD_KEY_MAX)
        return 0;
    memcpy(out, a, la + 1);
    memcpy(out + la + 1, b, lb);
    return la + 1 + lb;
}

static void forget(guard *g, parted *p)
{
    HASH_DEL(g->table, p);
    DL_DELETE(g->oldest, p);
    free(p);
}

/* Drop every pair whose grace has run out. */
static void expire(guard *g, double now)
{
    while (g->oldest && now - g->oldest->at > g->grace)
        forget(g, g->oldest);
}

static int guard_init(const earshot_host *host, const earshot_settings *s, void **state, char *err,
                      size_t errlen)
{
    if (!host->hash) {
        snprintf(err, errlen, "this earshot offers no keyed hash; relay_guard needs a newer one");
        return -1;
    }
    guard *g = calloc(1, sizeof *g);
    if (!g) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    guard_hash = host->hash;
    g->host = host;
    g->grace = host->setting_number(s, "grace");
    *state = g;
    return 0;
}

static void guard_destroy(void *state)
{
    guard *g = state;
    parted *p, *tmp;
    /* HASH_CLEAR frees the buckets only; the entries go through the list. */
    HASH_CLEAR(hh, g->table);
    DL_FOREACH_SAFE(g->oldest, p, tmp)
    {
        free(p);
    }
    free(g);
}

static void guard_pair(void *state, const earshot_client *a, const earshot_client *b, int matched)
{
    guard *g = state;
    double now = g->host->now();
    expire(g, now);
    char key[GUARD_KEY_MAX];
    size_t len = pair_key(a->client_id, b->client_id, key);
    if (len == 0)
        return;
    parted *p;
    HASH_FIND(hh, g->table, key, len, p);
    if (matched) {
        /* Matched now: the core says so on every relay; forget the parting. */
        if (p)
            forget(g, p);
        return;
    }
    if (g->grace <= 0)
        return;
    if (p) {
        /* Parted again: its grace starts over, and it is now the newest. */
        p->at = now;
        DL_DELETE(g->oldest, p);
        DL_APPEND(g->oldest, p);
        return;
    }
    p = malloc(sizeof *p + len);
    if (!p)
        return; /* the pair just loses its grace period */
    p->at = now;
    p->len = len;
    memcpy(p->key, key, len);
    HASH_ADD_KEYPTR(hh, g->table, p->key, p->len, p);
    if (!p->hh.tbl) { /* uthash could not make room */
        free(p);
        return;
    }
    DL_APPEND(g->oldest, p);
}

/* The timer: what expired goes even when no pair changes and no relay comes. */
static void guard_tick(void *state)
{
    guard *g = state;
    expire(g, g->host->now());
}

static earshot_verdict guard_relay(void *state, const earshot_relay *r, const char **reason)
{
    guard *g = state;
    (void)reason; /* the core's default text names the target */
    expire(g, g->host->now());
    if (r->matched)
        return EARSHOT_PASS;
    char key[GUARD_KEY_MAX];
    size_t len = pair_key(r->sender->client_id, r->target->client_id, key);
    parted *p = NULL;
    if (len)
        HASH_FIND(hh, g->table, key, len, p);
    return p ? EARSHOT_PASS : EARSHOT_DENY;
}

EARSHOT_PLUGIN_DEFINE(.name = "relay_guard", .version = "1.2.0",
                      .description = "relay only between clients matched now or within a grace period",
                      .settings = settings, .init = guard_init, .destroy = guard_destroy,
                      .on_relay = guard_relay, .on_pair = guard_pair, .on_tick = guard_tick,
                      .tick_interval = 1.0)
