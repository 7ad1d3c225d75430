/*
 * hooks - the hook chains and the links (plugin instances) in them.
 *
 * es_hooks_load() turns the config's `hooks` list into links, in order:
 * each enabled entry becomes one link (a loaded plugin instance). Each hook
 * then has a chain: the links that implement it, in config order. The run
 * functions below walk a chain the way plugin.h describes (first ALLOW or
 * DENY decides; all PASS means the hook's default). The hooks themselves
 * are listed in hooktab.h.
 *
 * A plugin's descriptor may be older, and so smaller, than this earshot's
 * earshot_plugin: a hook pointer is read only when it lies wholly within
 * the descriptor's struct_size, so hooks appended since are absent from it.
 */
#ifndef EARSHOT_HOOKS_H
#define EARSHOT_HOOKS_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "earshot/plugin.h"
#include "hooktab.h"
#include "protocol.h"

typedef struct es_settings_value es_settings_value;

struct earshot_settings {
    const earshot_setting_def *defs;
    es_settings_value *values; /* one per def */
    size_t count;
};

typedef struct es_link {
    char *name;              /* the config entry's name */
    const earshot_plugin *desc;
    void *state;             /* the instance, from init() */
    void *dl;                /* dlopen handle */
    earshot_host *host;      /* host_data points back to this link; a plugin
                              * kept over a reload keeps it (the pointer it
                              * was given) */
    earshot_settings settings;
    int64_t query_radius;
    int initialised;
    struct es_link *adopted; /* during a reload: the running link whose instance
                              * this one took over */
    double tick_interval;    /* seconds between on_tick calls */
    double next_tick;        /* when on_tick is next due (the core's clock) */
    uint64_t calls;          /* hook calls made to this link */
    double seconds;          /* time spent in those calls */
} es_link;

typedef struct es_hooks {
    es_link *links;
    size_t nlinks;
    es_link **chain[ES_HOOK_COUNT];
    size_t chain_len[ES_HOOK_COUNT];
    int64_t query_radius; /* largest of the match filters' radii */
} es_hooks;

/*
 * Load every enabled entry of cfg->hooks: dlopen, check the ABI, validate
 * its settings, init. Returns 0, or -1 with one message in err naming the
 * config file and line of the entry (everything loaded so far is undone).
 */
int es_hooks_load(es_hooks *h, const es_config *cfg, char *err, size_t errlen);
/* The same for a reload: a C plugin entry whose name, file and settings are
 * those of a link of `running` keeps that link's instance (no new init, its
 * memory kept: relay_guard's parted pairs), which es_hooks_unload(running)
 * then leaves alone. Every other entry starts afresh. */
int es_hooks_reload(es_hooks *h, const es_config *cfg, es_hooks *running, char *err,
                    size_t errlen);
void es_hooks_unload(es_hooks *h);

/* The verdict runs. reason receives the client-facing text on a deny (the
 * link's reason, or the hook's default); it must hold ES_ERROR_MAX bytes. */
int es_hooks_join(es_hooks *h, const earshot_join *j, char *reason);
int es_hooks_position(es_hooks *h, const earshot_client *c, earshot_position *pos, char *reason);
int es_hooks_match(es_hooks *h, const earshot_client *a, const earshot_client *b, int matched);
int es_hooks_relay(es_hooks *h, const earshot_relay *r, char *reason);
void es_hooks_leave(es_hooks *h, const earshot_client *c, earshot_leave_reason why);
void es_hooks_pair(es_hooks *h, const earshot_client *a, const earshot_client *b, int matched);
/* Call on_tick of every link whose interval has passed at `now` (the
 * core's clock; the core calls it from its 100 ms tick). */
void es_hooks_tick(es_hooks *h, double now);

#endif
