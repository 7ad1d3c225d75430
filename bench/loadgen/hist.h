/*
 * A latency histogram in the HDR style: exact below 256, then 128 linear
 * buckets per power of two, so any recorded value is reported within 0.8%.
 * Fixed size (64 KiB), no allocation, O(1) record.
 */
#ifndef LG_HIST_H
#define LG_HIST_H

#include <stdint.h>

#define LG_HIST_SUB_BITS 7
#define LG_HIST_SUB (1u << LG_HIST_SUB_BITS)
#define LG_HIST_BUCKETS ((64 - LG_HIST_SUB_BITS + 1) * LG_HIST_SUB)

typedef struct {
    uint64_t counts[LG_HIST_BUCKETS];
    uint64_t n, min, max;
    double sum;
} lg_hist;

void lg_hist_reset(lg_hist *h);
void lg_hist_add(lg_hist *h, uint64_t v);
/* The value at quantile q (0..1): the midpoint of its bucket, clamped to
 * [min, max]; 0 when empty. q = 1 gives the exact max. */
uint64_t lg_hist_quantile(const lg_hist *h, double q);

#endif
