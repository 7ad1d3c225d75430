/*
 * metrics - the Prometheus text exposition of what earshot is doing,
 * served at GET /metrics. Every name starts with earshot_, counters end in
 * _total, times are in seconds.
 */
#ifndef EARSHOT_METRICS_H
#define EARSHOT_METRICS_H

#include <stdint.h>

#include "buf.h"
#include "core.h"
#include "hooks.h"

typedef enum es_refused_reason {
    ES_REFUSED_FULL = 0,       /* max_connections reached, or stopping */
    ES_REFUSED_PER_ADDRESS,    /* max_connections_per_address reached */
    ES_REFUSED_ORIGIN,         /* Origin not in allowed_origins */
    ES_REFUSED_COUNT
} es_refused_reason;

typedef struct es_metrics_source {
    const es_core *core;
    const es_hooks *hooks;
    uint64_t reloads_ok, reloads_failed;
    const uint64_t *refused; /* ES_REFUSED_COUNT counters */
    double start_wallclock; /* Unix time the process started */
    const char *version;
} es_metrics_source;

/* Append the whole exposition to out. */
void es_metrics_render(es_buf *out, const es_metrics_source *src);

#endif
