#include "moderation.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define HASH_FUNCTION(keyptr, keylen, hashv) ((hashv) = (unsigned)es_hash_bytes((keyptr), (keylen)))
#define uthash_malloc(sz) es_xmalloc(sz) /* never NULL: it aborts instead */
#include <uthash.h>

/* The hash key: one byte of kind, then the id or address. */
#define KEY_BYTES (1 + ES_MOD_KEY_MAX)

struct es_mod_entry {
    unsigned char key[KEY_BYTES];
    size_t key_len; /* bytes of key used, kind byte included */
    double since, until;
    char reason[ES_MOD_TEXT_MAX + 1];
    char by[ES_MOD_TEXT_MAX + 1];
    UT_hash_handle hh;
};

void es_moderation_init(es_moderation *m) { memset(m, 0, sizeof *m); }

static void drop_all(es_mod_entry **head)
{
    es_mod_entry *e, *tmp;
    HASH_ITER(hh, *head, e, tmp) {
        HASH_DEL(*head, e);
        free(e);
    }
}

void es_moderation_free(es_moderation *m)
{
    drop_all(&m->bans);
    drop_all(&m->mutes);
    m->nbans = m->nmutes = 0;
}

es_moderation *es_moderation_shared(void)
{
    static es_moderation shared; /* zero: empty tables */
    return &shared;
}

/* kind + key into k; 0 with its length, or -1 when the key does not fit. */
static int make_key(unsigned char k[KEY_BYTES], size_t *klen, int kind, const char *key,
                    size_t len)
{
    if (!key || len == 0 || len > ES_MOD_KEY_MAX)
        return -1;
    k[0] = (unsigned char)kind;
    memcpy(k + 1, key, len);
    *klen = len + 1;
    return 0;
}

static es_mod_entry *find(es_mod_entry *head, const unsigned char *k, size_t klen)
{
    es_mod_entry *e = NULL;
    HASH_FIND(hh, head, k, klen, e);
    return e;
}

/* Copy text, cut to ES_MOD_TEXT_MAX bytes without splitting a character. */
static void set_text(char out[ES_MOD_TEXT_MAX + 1], const char *text)
{
    size_t n = text ? strlen(text) : 0;
    n = n ? es_utf8_prefix(text, n, ES_MOD_TEXT_MAX) : 0;
    memcpy(out, text ? text : "", n);
    out[n] = '\0';
}

static es_mod_entry *put(es_mod_entry **head, size_t *count, const unsigned char *k, size_t klen)
{
    es_mod_entry *e = find(*head, k, klen);
    if (!e) {
        e = es_xcalloc(1, sizeof *e);
        memcpy(e->key, k, klen);
        e->key_len = klen;
        HASH_ADD(hh, *head, key, klen, e);
        (*count)++;
    }
    return e;
}

static void del(es_mod_entry **head, size_t *count, es_mod_entry *e)
{
    HASH_DEL(*head, e);
    free(e);
    (*count)--;
}

int es_moderation_ban(es_moderation *m, es_ban_kind kind, const char *key, size_t len,
                      double seconds, double now, const char *reason, const char *by)
{
    unsigned char k[KEY_BYTES];
    size_t klen;
    if (!(seconds >= 1.0 && seconds <= ES_BAN_MAX_SECONDS) ||
        (kind != ES_BAN_ID && kind != ES_BAN_ADDRESS) || make_key(k, &klen, kind, key, len))
        return -1;
    es_mod_entry *e = put(&m->bans, &m->nbans, k, klen);
    e->since = now;
    e->until = now + seconds;
    set_text(e->reason, reason);
    set_text(e->by, by);
    return 0;
}

/* The ban of this key in force at now, or NULL (an expired one is dropped). */
static es_mod_entry *live_ban(es_moderation *m, int kind, const char *key, size_t len, double now)
{
    unsigned char k[KEY_BYTES];
    size_t klen;
    if (!m->nbans || make_key(k, &klen, kind, key, len))
        return NULL;
    es_mod_entry *e = find(m->bans, k, klen);
    if (e && now >= e->until) {
        del(&m->bans, &m->nbans, e);
        e = NULL;
    }
    return e;
}

int es_moderation_unban(es_moderation *m, es_ban_kind kind, const char *key, size_t len,
                        double now)
{
    es_mod_entry *e = live_ban(m, kind, key, len, now);
    if (!e)
        return -1;
    del(&m->bans, &m->nbans, e);
    return 0;
}

int es_moderation_banned(es_moderation *m, const char *client_id, size_t len, const char *address,
                         double now, char *reason, size_t reasonlen)
{
    if (!m || !m->nbans)
        return 0;
    es_mod_entry *e = client_id ? live_ban(m, ES_BAN_ID, client_id, len, now) : NULL;
    if (!e && address)
        e = live_ban(m, ES_BAN_ADDRESS, address, strlen(address), now);
    if (!e)
        return 0;
    if (reasonlen)
        snprintf(reason, reasonlen, "%s", e->reason);
    return 1;
}

int es_moderation_mute(es_moderation *m, const char *client_id, size_t len, double now,
                       const char *reason, const char *by)
{
    unsigned char k[KEY_BYTES];
    size_t klen;
    if (make_key(k, &klen, ES_BAN_ID, client_id, len))
        return -1;
    es_mod_entry *e = put(&m->mutes, &m->nmutes, k, klen);
    e->since = now;
    set_text(e->reason, reason);
    set_text(e->by, by);
    return 0;
}

int es_moderation_unmute(es_moderation *m, const char *client_id, size_t len)
{
    unsigned char k[KEY_BYTES];
    size_t klen;
    if (make_key(k, &klen, ES_BAN_ID, client_id, len))
        return -1;
    es_mod_entry *e = find(m->mutes, k, klen);
    if (!e)
        return -1;
    del(&m->mutes, &m->nmutes, e);
    return 0;
}

int es_moderation_muted_lookup(const es_moderation *m, const char *client_id, size_t len)
{
    unsigned char k[KEY_BYTES];
    size_t klen;
    return make_key(k, &klen, ES_BAN_ID, client_id, len) == 0 && find(m->mutes, k, klen) != NULL;
}

static void report(const es_mod_entry *e, int is_ban, void (*fn)(const es_mod_view *, void *),
                   void *ud)
{
    char key[ES_MOD_KEY_MAX + 1];
    memcpy(key, e->key + 1, e->key_len - 1);
    key[e->key_len - 1] = '\0';
    es_mod_view v = {.is_ban = is_ban, .kind = (es_ban_kind)e->key[0], .key = key,
                     .since = e->since, .until = is_ban ? e->until : 0,
                     .reason = e->reason, .by = e->by};
    fn(&v, ud);
}

void es_moderation_each(es_moderation *m, double now, void (*fn)(const es_mod_view *v, void *ud),
                        void *ud)
{
    es_mod_entry *e, *tmp;
    HASH_ITER(hh, m->bans, e, tmp) {
        if (now >= e->until)
            del(&m->bans, &m->nbans, e);
    }
    HASH_ITER(hh, m->bans, e, tmp)
        report(e, 1, fn, ud);
    HASH_ITER(hh, m->mutes, e, tmp)
        report(e, 0, fn, ud);
}
