/*
 * util - small helpers shared by the core modules: monotonic time, a keyed
 * string hash, UTF-8 checks.
 */
#ifndef EARSHOT_UTIL_H
#define EARSHOT_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Monotonic seconds since an arbitrary origin. */
double es_now(void);
/* Unix time in seconds (CLOCK_REALTIME): what expiries sent to others count from. */
double es_wallclock(void);

/* Seed the string hash from the system's random source (once, at startup). */
void es_hash_seed_random(void);
/* SipHash-1-3 of the bytes with the process seed: hash-flooding resistant. */
uint64_t es_hash_bytes(const void *data, size_t len);

/* Length of the UTF-8 sequence starting at s (1..4; left > 0 bytes are
 * readable), or 0 when it is not valid UTF-8 there. */
size_t es_utf8_seq(const char *s, size_t left);

/* 1 when s[0..len) is valid UTF-8 (no overlongs, no surrogates). */
int es_utf8_valid(const char *s, size_t len);

/*
 * The length of the longest prefix of s[0..len) that is at most max bytes
 * and does not cut a UTF-8 sequence in half. For echoing client text in
 * error messages without echoing a megabyte.
 */
size_t es_utf8_prefix(const char *s, size_t len, size_t max);

/* Abort with a message when out of memory: the only sane reaction here. */
void *es_xmalloc(size_t n);
void *es_xcalloc(size_t n, size_t size);
void *es_xrealloc(void *p, size_t n);
char *es_xstrdup(const char *s);

#define ES_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
