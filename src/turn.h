/*
 * turn - the ICE servers a client is told to use (the reply to
 * RequestIceServers), with short-lived TURN credentials.
 *
 * Credentials follow the TURN REST API convention that coturn checks with
 * `use-auth-secret`: the username is "<unix expiry>:<client_id>" and the
 * password is base64(HMAC-SHA1(shared secret, username)). The TURN server
 * needs nothing from earshot but the secret: it recomputes the password
 * from the username and refuses a username whose expiry has passed.
 */
#ifndef EARSHOT_TURN_H
#define EARSHOT_TURN_H

#include <stddef.h>

#include "buf.h"
#include "config.h"
#include "protocol.h"


/* Bytes of a username, NUL included: 20 digits, ':', a client_id. */
#define ES_TURN_USERNAME_MAX (20 + 1 + ES_ID_MAX + 1)
/* Bytes of a credential, NUL included: base64 of a 20-byte HMAC-SHA1. */
#define ES_TURN_CREDENTIAL_MAX 29

/*
 * Write "<expiry>:<id>" into out (ES_TURN_USERNAME_MAX bytes) and return its
 * length, or 0 when id is longer than ES_ID_MAX or holds a NUL byte.
 */
size_t es_turn_username(char out[ES_TURN_USERNAME_MAX], long long expiry, const char *id,
                        size_t id_len);

/*
 * Write base64(HMAC-SHA1(secret, username)) into out, NUL-terminated.
 * Returns 0, or -1 (out empty) when the HMAC cannot be computed.
 */
int es_turn_credential(char out[ES_TURN_CREDENTIAL_MAX], const char *secret, size_t secret_len,
                       const char *username, size_t username_len);

/*
 * Append the whole IceServers message for client id to b:
 *   {"type":"IceServers","data":{"ice_servers":[...],"ttl":N}}
 * with a STUN entry when cfg has stun_urls, and a TURN entry (credentials
 * expiring at now + cfg->turn_ttl) when it has turn_urls and a secret.
 * now is Unix time in seconds. Every string is JSON-escaped.
 */
void es_turn_write_ice_servers(es_buf *b, const es_config *cfg, const char *id, size_t id_len,
                               long long now);

#endif
