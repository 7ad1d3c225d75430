/*
 * proximity - the stock matching rule: two clients hear each other when
 * they share game_id, map_id and channel and stand within `radius` units;
 * once matched they stay matched out to `leave_radius` (hysteresis, so
 * walking along the edge does not flap connections).
 *
 * Distances are exact: squared distances in 64-bit integers, after ruling
 * out any axis gap larger than the radius, so int32 extremes cannot overflow.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "earshot/plugin.h"

typedef struct proximity {
    int64_t radius;
    int64_t leave_radius;
} proximity;

static const earshot_setting_def settings[] = {
    EARSHOT_SETTING_INT_DEF("radius", 20, 0, INT32_MAX, "distance at which two clients match"),
    EARSHOT_SETTING_INT_DEF("leave_radius", 25, 0, INT32_MAX,
                            "distance past which a matched pair parts (>= radius)"),
    EARSHOT_SETTINGS_END,
};

static int proximity_init(const earshot_host *host, const earshot_settings *s, void **state,
                          char *err, size_t errlen)
{
    proximity *p = malloc(sizeof *p);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    p->radius = host->setting_int(s, "radius");
    p->leave_radius = host->setting_int(s, "leave_radius");
    if (p->leave_radius < p->radius) {
        snprintf(err, errlen, "leave_radius (%lld) must be at least radius (%lld)",
                 (long long)p->leave_radius, (long long)p->radius);
        free(p);
        return -1;
    }
    *state = p;
    return 0;
}

static void proximity_destroy(void *state) { free(state); }

static int64_t proximity_query_radius(void *state)
{
    return ((proximity *)state)->leave_radius;
}

static int within(const earshot_position *a, const earshot_position *b, int64_t r)
{
    int64_t dx = (int64_t)a->x - b->x, dy = (int64_t)a->y - b->y;
    if (dx < -r || dx > r || dy < -r || dy > r)
        return 0;
    /* |dx|, |dy| <= r < 2^31 here, so the sum stays below 2^63. */
    return dx * dx + dy * dy <= r * r;
}

static earshot_verdict proximity_match(void *state, const earshot_client *a,
                                       const earshot_client *b, int matched)
{
    const proximity *p = state;
    const earshot_position *pa = &a->pos, *pb = &b->pos;
    if (pa->game_id != pb->game_id || pa->map_id != pb->map_id || pa->channel != pb->channel)
        return EARSHOT_DENY;
    return within(pa, pb, matched ? p->leave_radius : p->radius) ? EARSHOT_ALLOW : EARSHOT_DENY;
}

EARSHOT_PLUGIN_DEFINE(.name = "proximity", .version = "1.0.0",
                      .description = "match clients of the same game, map and channel within a radius",
                      .settings = settings, .init = proximity_init, .destroy = proximity_destroy,
                      .query_radius = proximity_query_radius, .match_filter = proximity_match)
