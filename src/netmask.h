/*
 * netmask - address allow-lists: "127.0.0.1", "::1", "10.0.0.0/8",
 * "fd00::/8". An IPv4 address also matches as the IPv4-mapped IPv6 form
 * the socket layer may report ("::ffff:127.0.0.1").
 */
#ifndef EARSHOT_NETMASK_H
#define EARSHOT_NETMASK_H

#include <stddef.h>
#include <stdint.h>

typedef struct es_netmask {
    uint8_t addr[16]; /* IPv4 as the IPv4-mapped IPv6 address */
    unsigned bits;    /* prefix length over the 128 bits */
} es_netmask;

/* Parse an address or address/prefix. Returns 0, or -1 with a reason in
 * *why (a static string). */
int es_netmask_parse(const char *text, es_netmask *out, const char **why);
/* 1 when the address text (as es_session.addr holds it) lies in one of n
 * masks; an unparsable address matches none. */
int es_netmask_match(const es_netmask *masks, size_t n, const char *address);

#endif
