/*
 * ratelimit - each connection's message rate: a token bucket, and the
 * count of messages it dropped in the current window, which decides when
 * a flooding client is closed instead of told.
 */
#ifndef EARSHOT_RATELIMIT_H
#define EARSHOT_RATELIMIT_H

/* Seconds over which dropped messages add up. */
#define ES_RATE_WINDOW 10.0

typedef struct es_rate {
    double tokens, tokens_at;
    double window_start;
    unsigned drops_in_window;
} es_rate;

/* A full bucket of burst tokens at now. */
void es_rate_init(es_rate *r, double now, double burst);

/* One message at now: 1 if it may pass (rate <= 0: always). The bucket
 * holds burst tokens and refills at rate per second. */
int es_rate_allow(es_rate *r, double now, double rate, double burst);

/* A message was dropped at now: the drops in the current window,
 * this one included. */
unsigned es_rate_dropped(es_rate *r, double now);

#endif
