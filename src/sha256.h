/*
 * sha256 - SHA-256 and HMAC-SHA256 (FIPS 180-4, RFC 2104), for scripts that
 * check signed tokens. Small and dependency-free; not for bulk hashing.
 */
#ifndef EARSHOT_SHA256_H
#define EARSHOT_SHA256_H

#include <stddef.h>
#include <stdint.h>

void es_sha256(const void *data, size_t len, uint8_t out[32]);
void es_hmac_sha256(const void *key, size_t key_len, const void *msg, size_t msg_len,
                    uint8_t out[32]);

#endif
