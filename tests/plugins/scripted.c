/*
 * A test plugin whose verdicts come from its settings, so tests can build
 * any chain: join/position/match/relay = "pass" | "allow" | "deny";
 * position may also be "shift" (adds `shift` to x, then passes).
 * It counts its calls in a global the unit tests read through dlsym.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "earshot/plugin.h"

typedef struct scripted {
    earshot_verdict join, position, match, relay;
    int shift_position;
    int64_t shift;
    int64_t radius;
    char reason[128];
} scripted;

/* calls[0..6] = join, position, match, relay, leave, pair, tick; summed over
 * instances */
__attribute__((visibility("default"))) unsigned long scripted_calls[7];

static const earshot_setting_def settings[] = {
    EARSHOT_SETTING_STRING_DEF("join", "pass", "verdict for join"),
    EARSHOT_SETTING_STRING_DEF("position", "pass", "verdict for position, or shift"),
    EARSHOT_SETTING_STRING_DEF("match", "pass", "verdict for match_filter"),
    EARSHOT_SETTING_STRING_DEF("relay", "pass", "verdict for relay"),
    EARSHOT_SETTING_STRING_DEF("reason", "", "reason given on deny"),
    EARSHOT_SETTING_INT_DEF("shift", 0, -1000, 1000, "added to x when position = shift"),
    EARSHOT_SETTING_INT_DEF("radius", 0, 0, 1000000, "query radius"),
    EARSHOT_SETTINGS_END,
};

static int verdict(const char *s, earshot_verdict *out)
{
    if (strcmp(s, "pass") == 0)
        *out = EARSHOT_PASS;
    else if (strcmp(s, "allow") == 0)
        *out = EARSHOT_ALLOW;
    else if (strcmp(s, "deny") == 0)
        *out = EARSHOT_DENY;
    else
        return -1;
    return 0;
}

static int s_init(const earshot_host *host, const earshot_settings *st, void **state, char *err,
                  size_t errlen)
{
    scripted *p = calloc(1, sizeof *p);
    const char *pos = host->setting_string(st, "position");
    p->shift_position = strcmp(pos, "shift") == 0;
    if (verdict(host->setting_string(st, "join"), &p->join) ||
        (!p->shift_position && verdict(pos, &p->position)) ||
        verdict(host->setting_string(st, "match"), &p->match) ||
        verdict(host->setting_string(st, "relay"), &p->relay)) {
        snprintf(err, errlen, "verdicts are pass, allow or deny");
        free(p);
        return -1;
    }
    p->shift = host->setting_int(st, "shift");
    p->radius = host->setting_int(st, "radius");
    snprintf(p->reason, sizeof p->reason, "%s", host->setting_string(st, "reason"));
    *state = p;
    return 0;
}

static void s_destroy(void *state) { free(state); }
static int64_t s_radius(void *state) { return ((scripted *)state)->radius; }

static const char *reason_of(scripted *p) { return p->reason[0] ? p->reason : NULL; }

static earshot_verdict s_join(void *state, const earshot_join *j, const char **reason)
{
    (void)j;
    scripted *p = state;
    scripted_calls[0]++;
    *reason = reason_of(p);
    return p->join;
}

static earshot_verdict s_position(void *state, const earshot_client *c, earshot_position *pos,
                                  const char **reason)
{
    (void)c;
    scripted *p = state;
    scripted_calls[1]++;
    if (p->shift_position) {
        pos->x = (int32_t)(pos->x + p->shift);
        return EARSHOT_PASS;
    }
    *reason = reason_of(p);
    return p->position;
}

static earshot_verdict s_match(void *state, const earshot_client *a, const earshot_client *b,
                               int matched)
{
    (void)a, (void)b, (void)matched;
    scripted_calls[2]++;
    return ((scripted *)state)->match;
}

static earshot_verdict s_relay(void *state, const earshot_relay *r, const char **reason)
{
    (void)r;
    scripted *p = state;
    scripted_calls[3]++;
    *reason = reason_of(p);
    return p->relay;
}

static void s_leave(void *state, const earshot_client *c, earshot_leave_reason why)
{
    (void)state, (void)c, (void)why;
    scripted_calls[4]++;
}

static void s_pair(void *state, const earshot_client *a, const earshot_client *b, int matched)
{
    (void)state, (void)a, (void)b, (void)matched;
    scripted_calls[5]++;
}

static void s_tick(void *state)
{
    (void)state;
    scripted_calls[6]++;
}

EARSHOT_PLUGIN_DEFINE(.name = "scripted", .version = "0", .settings = settings, .init = s_init,
                      .destroy = s_destroy, .query_radius = s_radius, .on_join = s_join,
                      .on_position = s_position, .match_filter = s_match, .on_relay = s_relay,
                      .on_leave = s_leave, .on_pair = s_pair, .on_tick = s_tick,
                      .tick_interval = 0.5)
