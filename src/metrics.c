#include "metrics.h"

#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lua_host.h"
#include "protocol.h"

__attribute__((format(printf, 2, 3))) static void put(es_buf *b, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n > 0)
        es_buf_append(b, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static void head(es_buf *b, const char *name, const char *type, const char *help)
{
    put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Label values here are plugin/script names from the config (letters,
 * digits, '_' and '-') or fixed words: nothing to escape. */
void es_metrics_render(es_buf *out, const es_metrics_source *src)
{
    const es_core *c = src->core;
    const es_core_stats *st = &c->stats;

    head(out, "earshot_build_info", "gauge", "Version of this earshot build.");
    put(out, "earshot_build_info{version=\"%s\",plugin_api=\"%u\"} 1\n", src->version,
        EARSHOT_PLUGIN_API_VERSION);
    head(out, "earshot_start_time_seconds", "gauge", "Unix time the server started.");
    put(out, "earshot_start_time_seconds %.3f\n", src->start_wallclock);

    head(out, "earshot_connections", "gauge", "Open WebSocket connections.");
    put(out, "earshot_connections %zu\n", c->sessions);
    head(out, "earshot_connections_total", "counter", "WebSocket connections accepted.");
    put(out, "earshot_connections_total %llu\n", (unsigned long long)st->connections_opened);
    head(out, "earshot_connections_refused_total", "counter",
         "WebSocket upgrades refused, by reason.");
    static const char *const refused[ES_REFUSED_COUNT] = {"server_full", "per_address", "origin"};
    for (int i = 0; i < ES_REFUSED_COUNT; i++)
        put(out, "earshot_connections_refused_total{reason=\"%s\"} %llu\n", refused[i],
            (unsigned long long)(src->refused ? src->refused[i] : 0));
    head(out, "earshot_clients", "gauge", "Registered clients.");
    put(out, "earshot_clients %zu\n", es_registry_count(&c->registry));
    head(out, "earshot_registrations_total", "counter", "Successful registrations.");
    put(out, "earshot_registrations_total %llu\n", (unsigned long long)st->registrations);
    head(out, "earshot_takeovers_total", "counter", "Registrations that replaced another connection.");
    put(out, "earshot_takeovers_total %llu\n", (unsigned long long)st->takeovers);
    head(out, "earshot_timeouts_total", "counter", "Connections closed by a timeout, by kind.");
    put(out, "earshot_timeouts_total{kind=\"idle\"} %llu\n", (unsigned long long)st->timeouts);
    put(out, "earshot_timeouts_total{kind=\"first_message\"} %llu\n",
        (unsigned long long)st->first_message_timeouts);
    head(out, "earshot_resumes_total", "counter", "Sessions resumed with their resume token.");
    put(out, "earshot_resumes_total %llu\n", (unsigned long long)st->resumes);
    head(out, "earshot_resume_holds_expired_total", "counter",
         "Held sessions not resumed within session.resume_grace.");
    put(out, "earshot_resume_holds_expired_total %llu\n",
        (unsigned long long)st->resume_holds_expired);
    head(out, "earshot_held_sessions", "gauge",
         "Sessions whose connection was lost, held for a resume.");
    put(out, "earshot_held_sessions %zu\n", c->nheld);
    head(out, "earshot_resume_queued_relays_total", "counter",
         "Relays kept for a held session until it resumes.");
    put(out, "earshot_resume_queued_relays_total %llu\n",
        (unsigned long long)st->resume_queued_relays);
    head(out, "earshot_pings_total", "counter", "WebSocket pings sent to quiet connections.");
    put(out, "earshot_pings_total %llu\n", (unsigned long long)st->pings_sent);
    head(out, "earshot_ping_timeouts_total", "counter",
         "Connections dropped for not answering a ping.");
    put(out, "earshot_ping_timeouts_total %llu\n", (unsigned long long)st->ping_timeouts);
    head(out, "earshot_rate_limited_total", "counter",
         "Messages dropped by the per-connection rate limit.");
    put(out, "earshot_rate_limited_total %llu\n", (unsigned long long)st->rate_limited);
    head(out, "earshot_matched_pairs", "gauge", "Pairs of clients matched now.");
    put(out, "earshot_matched_pairs %llu\n", (unsigned long long)c->matcher.pairs);
    /* A counter, not a gauge of pairs left out now: whether a pair is
     * allowed changes whenever either client moves, and keeping that for
     * every unmatched pair in range would cost more than the cap saves. */
    head(out, "earshot_capped_out_total", "counter",
         "Pairs the match filters allowed but the crowd cap (session.max_peers) left out, "
         "counted at each evaluation of a client that moved, joined or lost a peer "
         "(a pair still left out at the next evaluation counts again).");
    put(out, "earshot_capped_out_total %llu\n", (unsigned long long)c->matcher.capped_out);
    head(out, "earshot_crowd_cascade_cuts_total", "counter",
         "Crowd-cap cascades cut short after 256 re-evaluations; the rest settles as clients move.");
    put(out, "earshot_crowd_cascade_cuts_total %llu\n", (unsigned long long)c->matcher.cascade_cuts);
#if defined(__GLIBC__)
    /* What the allocator holds for live objects, as opposed to RSS, which
     * also counts free heap the allocator keeps (fragmentation). */
    struct mallinfo2 mi = mallinfo2();
    head(out, "earshot_heap_in_use_bytes", "gauge", "Heap bytes in live allocations (glibc).");
    put(out, "earshot_heap_in_use_bytes %zu\n", mi.uordblks + mi.hblkhd);
    head(out, "earshot_heap_free_bytes", "gauge", "Heap bytes the allocator holds free (glibc).");
    put(out, "earshot_heap_free_bytes %zu\n", mi.fordblks);
#endif
    head(out, "earshot_grid_cells", "gauge", "Occupied cells of the spatial grid.");
    put(out, "earshot_grid_cells %u\n", es_grid_live_cells(&c->grid));

    head(out, "earshot_messages_in_total", "counter", "Valid client messages, by type.");
    for (int i = 0; i < ES_MSG_TYPE_COUNT; i++)
        put(out, "earshot_messages_in_total{type=\"%s\"} %llu\n", es_msg_type_name((es_msg_type)i),
            (unsigned long long)st->messages_in[i]);
    head(out, "earshot_messages_out_total", "counter", "Server messages queued, by type.");
    for (int i = 0; i < ES_OUT_COUNT; i++)
        put(out, "earshot_messages_out_total{type=\"%s\"} %llu\n", es_out_type_names[i],
            (unsigned long long)st->messages_out[i]);
    head(out, "earshot_errors_total", "counter", "Error messages sent to clients, by cause.");
    for (int i = 0; i < ES_ERR_COUNT; i++)
        put(out, "earshot_errors_total{kind=\"%s\"} %llu\n", es_error_kind_names[i],
            (unsigned long long)st->errors[i]);
    head(out, "earshot_relays_total", "counter", "Relays by kind and outcome.");
    for (int k = 0; k < ES_RELAY_KIND_COUNT; k++)
        for (int o = 0; o < ES_RELAY_OUTCOME_COUNT; o++)
            put(out, "earshot_relays_total{kind=\"%s\",outcome=\"%s\"} %llu\n",
                es_relay_kind_names[k], es_relay_outcome_names[o],
                (unsigned long long)st->relays[k][o]);
    head(out, "earshot_send_queue_drops_total", "counter",
         "Clients dropped because their send queue was full.");
    put(out, "earshot_send_queue_drops_total %llu\n", (unsigned long long)st->sendq_overflows);
    head(out, "earshot_closes_total", "counter", "Connections closed by earshot, by close code.");
    static const int codes[5] = {1000, 1001, 1008, 1009, 1007};
    for (int i = 0; i < 5; i++)
        put(out, "earshot_closes_total{code=\"%d\"} %llu\n", codes[i],
            (unsigned long long)st->closes[i]);

    const es_hooks *h = src->hooks;
    head(out, "earshot_hook_calls_total", "counter", "Hook calls, by plugin or script.");
    for (size_t i = 0; i < h->nlinks; i++)
        put(out, "earshot_hook_calls_total{link=\"%s\"} %llu\n", h->links[i].name,
            (unsigned long long)h->links[i].calls);
    head(out, "earshot_hook_seconds_total", "counter",
         "Time spent in hook calls, by plugin or script (match filters: sampled, 1 call in 64).");
    for (size_t i = 0; i < h->nlinks; i++)
        put(out, "earshot_hook_seconds_total{link=\"%s\"} %.9f\n", h->links[i].name,
            h->links[i].seconds);
    head(out, "earshot_hook_errors_total", "counter",
         "Script hook calls that failed, by script and cause.");
    for (size_t i = 0; i < h->nlinks; i++) {
        const es_lua_stats *ls = es_lua_link_stats(&h->links[i]);
        if (!ls)
            continue;
        put(out, "earshot_hook_errors_total{link=\"%s\",cause=\"error\"} %llu\n", h->links[i].name,
            (unsigned long long)ls->errors);
        put(out, "earshot_hook_errors_total{link=\"%s\",cause=\"instruction_limit\"} %llu\n",
            h->links[i].name, (unsigned long long)ls->budget_stops);
        put(out, "earshot_hook_errors_total{link=\"%s\",cause=\"memory_limit\"} %llu\n",
            h->links[i].name, (unsigned long long)ls->memory_stops);
    }
    head(out, "earshot_script_memory_bytes", "gauge", "Memory held by each script's Lua state.");
    for (size_t i = 0; i < h->nlinks; i++) {
        const es_lua_stats *ls = es_lua_link_stats(&h->links[i]);
        if (ls)
            put(out, "earshot_script_memory_bytes{link=\"%s\"} %zu\n", h->links[i].name,
                ls->memory_bytes);
    }
    head(out, "earshot_reloads_total", "counter", "Config reloads (SIGHUP), by result.");
    put(out, "earshot_reloads_total{result=\"ok\"} %llu\n", (unsigned long long)src->reloads_ok);
    put(out, "earshot_reloads_total{result=\"failed\"} %llu\n",
        (unsigned long long)src->reloads_failed);
}
