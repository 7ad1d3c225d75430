#include "netmask.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* text as 16 bytes (IPv4 mapped into IPv6); 1 = IPv4, 2 = IPv6, 0 = neither. */
static int parse_addr(const char *text, uint8_t out[16])
{
    struct in_addr v4;
    if (inet_pton(AF_INET, text, &v4) == 1) {
        memset(out, 0, 10);
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &v4, 4);
        return 1;
    }
    struct in6_addr v6;
    if (inet_pton(AF_INET6, text, &v6) == 1) {
        memcpy(out, &v6, 16);
        return 2;
    }
    return 0;
}

int es_netmask_parse(const char *text, es_netmask *out, const char **why)
{
    char buf[64];
    const char *slash = strchr(text, '/');
    size_t alen = slash ? (size_t)(slash - text) : strlen(text);
    if (alen == 0 || alen >= sizeof buf) {
        *why = "is not an IP address or address/prefix";
        return -1;
    }
    memcpy(buf, text, alen);
    buf[alen] = '\0';
    int fam = parse_addr(buf, out->addr);
    if (!fam) {
        *why = "is not an IP address or address/prefix";
        return -1;
    }
    unsigned max = fam == 1 ? 32 : 128, bits = max;
    if (slash) {
        const char *p = slash + 1;
        char *end;
        if (*p < '0' || *p > '9') {
            *why = "has a prefix length that is not a number";
            return -1;
        }
        unsigned long v = strtoul(p, &end, 10);
        if (*end || v > max) {
            *why = fam == 1 ? "needs a prefix length of 0 to 32" : "needs a prefix length of 0 to 128";
            return -1;
        }
        bits = (unsigned)v;
    }
    out->bits = fam == 1 ? bits + 96 : bits;
    /* the host bits are ignored: clear them so that matching is a compare */
    for (unsigned i = out->bits; i < 128; i++)
        out->addr[i / 8] &= (uint8_t)~(0x80u >> (i % 8));
    return 0;
}

static int in_mask(const es_netmask *m, const uint8_t a[16])
{
    unsigned full = m->bits / 8, rest = m->bits % 8;
    if (memcmp(a, m->addr, full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    uint8_t keep = (uint8_t)(0xffu << (8 - rest));
    return (a[full] & keep) == m->addr[full];
}

int es_netmask_match(const es_netmask *masks, size_t n, const char *address)
{
    uint8_t a[16];
    if (!address || !parse_addr(address, a))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (in_mask(&masks[i], a))
            return 1;
    return 0;
}
