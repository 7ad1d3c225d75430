#include "hist.h"

#include <string.h>

static unsigned bucket_of(uint64_t v)
{
    if (v < 2 * LG_HIST_SUB)
        return (unsigned)v;
    int msb = 63 - __builtin_clzll(v);
    int shift = msb - LG_HIST_SUB_BITS;
    return (unsigned)(shift + 1) * LG_HIST_SUB + (unsigned)((v >> shift) - LG_HIST_SUB);
}

/* [lo, hi] of the values that land in bucket b. */
static void bucket_range(unsigned b, uint64_t *lo, uint64_t *hi)
{
    if (b < 2 * LG_HIST_SUB) {
        *lo = *hi = b;
        return;
    }
    unsigned shift = b / LG_HIST_SUB - 1;
    uint64_t base = (uint64_t)(b % LG_HIST_SUB + LG_HIST_SUB) << shift;
    *lo = base;
    *hi = base + ((uint64_t)1 << shift) - 1;
}

void lg_hist_reset(lg_hist *h)
{
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

void lg_hist_add(lg_hist *h, uint64_t v)
{
    h->counts[bucket_of(v)]++;
    h->n++;
    h->sum += (double)v;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

uint64_t lg_hist_quantile(const lg_hist *h, double q)
{
    if (h->n == 0)
        return 0;
    if (q >= 1.0)
        return h->max;
    uint64_t rank = (uint64_t)(q * (double)h->n); /* 0-based: rank values lie below */
    if (rank >= h->n)
        rank = h->n - 1;
    uint64_t seen = 0;
    for (unsigned b = 0; b < LG_HIST_BUCKETS; b++) {
        seen += h->counts[b];
        if (seen > rank) {
            uint64_t lo, hi;
            bucket_range(b, &lo, &hi);
            uint64_t mid = lo + (hi - lo) / 2;
            if (mid < h->min)
                mid = h->min;
            if (mid > h->max)
                mid = h->max;
            return mid;
        }
    }
    return h->max;
}
