#include "ratelimit.h"

void es_rate_init(es_rate *r, double now, double burst)
{
    r->tokens = burst;
    r->tokens_at = r->window_start = now;
    r->drops_in_window = 0;
}

int es_rate_allow(es_rate *r, double now, double rate, double burst)
{
    if (rate <= 0)
        return 1;
    r->tokens += (now - r->tokens_at) * rate;
    r->tokens_at = now;
    if (r->tokens > burst)
        r->tokens = burst;
    if (r->tokens >= 1.0) {
        r->tokens -= 1.0;
        return 1;
    }
    return 0;
}

unsigned es_rate_dropped(es_rate *r, double now)
{
    if (now - r->window_start > ES_RATE_WINDOW) {
        r->window_start = now;
        r->drops_in_window = 0;
    }
    return ++r->drops_in_window;
}
