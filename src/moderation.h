/*
 * moderation - who is kept out and who may not relay: the ban list and the
 * mute list an operator (the admin API) or a hook (plugin.h's host
 * services, earshot.ban / earshot.mute in Lua) fills, and the core consults.
 *
 *   a ban    keeps a client_id, or an address, from registering until it
 *            expires (Unix time: expiries are shown to operators and a
 *            ban's length does not depend on the process's clock origin);
 *   a mute   refuses every relay (offer, answer, ICE candidate) a client_id
 *            sends, until it is lifted. It is kept by id, so a muted client
 *            that reconnects is still muted.
 *
 * Both live in memory, in one table per process that reloads never touch
 * (es_moderation_shared): they survive SIGHUP and end with the process. A
 * restart clears them on purpose: the ones that must outlast the process
 * belong in the config's join hooks (auth_token, a script), which a
 * restart reads again.
 *
 * Lookups are uthash tables keyed with the process's SipHash (ids and
 * addresses are client-chosen strings). Every lookup the core makes on a
 * client message first checks a count, so with no bans or no mutes it
 * costs one load and one compare.
 */
#ifndef EARSHOT_MODERATION_H
#define EARSHOT_MODERATION_H

#include <stddef.h>
#include <stdint.h>

/* A ban is of a client_id or of an address. */
typedef enum es_ban_kind { ES_BAN_ID = 0, ES_BAN_ADDRESS = 1 } es_ban_kind;

/* Bans last at least one second and at most this long. */
#define ES_BAN_MAX_SECONDS (366.0 * 86400.0)
/* Reasons and who set them are cut to this many bytes (UTF-8 kept whole). */
#define ES_MOD_TEXT_MAX 200
/* Longest key: a client_id (128 bytes) or an address (63). */
#define ES_MOD_KEY_MAX 128

typedef struct es_mod_entry es_mod_entry;

typedef struct es_moderation {
    es_mod_entry *bans;  /* uthash by kind + key */
    es_mod_entry *mutes; /* uthash by client_id */
    size_t nbans, nmutes;
} es_moderation;

/* What es_moderation_each reports: valid during the callback only. */
typedef struct es_mod_view {
    int is_ban;          /* 1: a ban (kind, until), 0: a mute */
    es_ban_kind kind;
    const char *key;     /* the client_id or the address */
    double since, until; /* Unix time; until is 0 for a mute */
    const char *reason;  /* "" when none was given */
    const char *by;      /* who set it: an address, or "hook <name>" */
} es_mod_view;

void es_moderation_init(es_moderation *m);
void es_moderation_free(es_moderation *m);
/* The process's table: what the server, the admin API and the hooks share. */
es_moderation *es_moderation_shared(void);

/*
 * Ban key (a client_id of 1..128 bytes, or an address) for `seconds` from
 * now (Unix time), replacing any ban of the same key. Returns 0, or -1 when
 * seconds is outside [1, ES_BAN_MAX_SECONDS] or the key is empty or too
 * long (nothing changes). reason and by may be NULL.
 */
int es_moderation_ban(es_moderation *m, es_ban_kind kind, const char *key, size_t len,
                      double seconds, double now, const char *reason, const char *by);
/* Lift a ban. Returns 0, or -1 when there was none (an expired one counts
 * as none). */
int es_moderation_unban(es_moderation *m, es_ban_kind kind, const char *key, size_t len,
                        double now);
/*
 * Is client_id (len bytes) or address banned at `now`? Returns 1 and
 * copies the ban's reason into reason (reasonlen bytes, may be 0) when it
 * is; 0 otherwise. Either key may be NULL. Expired bans are dropped here.
 */
int es_moderation_banned(es_moderation *m, const char *client_id, size_t len, const char *address,
                         double now, char *reason, size_t reasonlen);

/* Mute a client_id until unmuted (again: the reason and by are replaced).
 * Returns 0, or -1 for an empty or too long id. */
int es_moderation_mute(es_moderation *m, const char *client_id, size_t len, double now,
                       const char *reason, const char *by);
/* Returns 0, or -1 when the id was not muted. */
int es_moderation_unmute(es_moderation *m, const char *client_id, size_t len);
/* 1 when client_id is muted: the table's lookup, after the count. */
int es_moderation_muted_lookup(const es_moderation *m, const char *client_id, size_t len);
static inline int es_moderation_muted(const es_moderation *m, const char *client_id, size_t len)
{
    return m && m->nmutes && es_moderation_muted_lookup(m, client_id, len);
}

/* Every ban in force at `now` (expired ones are dropped first), then every
 * mute; in no particular order. */
void es_moderation_each(es_moderation *m, double now, void (*fn)(const es_mod_view *v, void *ud),
                        void *ud);

#endif
