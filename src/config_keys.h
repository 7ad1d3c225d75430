/*
 * config_keys - the table of every key of the config file.
 *
 * One row per key: its dotted name, type, range, default, whether a reload
 * (SIGHUP) applies it, one line of documentation, and where its value goes
 * in es_config (an offset for a plain value, a loader for the few keys that
 * are more than one value). The table drives the loader (config.c: which
 * keys exist, their types, ranges and defaults), `earshot --list-config-keys`
 * (the README's key table is its output) and the reload's warning about keys
 * that need a restart. config/earshot.cfg lists every row with its default.
 */
#ifndef EARSHOT_CONFIG_KEYS_H
#define EARSHOT_CONFIG_KEYS_H

#include <libconfig.h>
#include <stddef.h>
#include <stdio.h>

#include "config.h"

typedef enum es_key_type {
    ES_KEY_INT,    /* an integer within [lo, hi]; stored as int, unsigned or size_t */
    ES_KEY_NUMBER, /* an integer or float within [lo, hi]; stored as double */
    ES_KEY_BOOL,   /* true or false; stored as int */
    ES_KEY_STRING, /* stored as a malloc'd char * */
    ES_KEY_ENUM,   /* one of `choices`; stored as an int, the index of the choice */
    ES_KEY_LIST,   /* a list; `load` reads it */
    ES_KEY_GROUP,  /* a group; `load` reads it */
    ES_KEY_PATH    /* a folder, relative to the config file's; `load` reads it */
} es_key_type;

/* The loader's state, opaque here (config.c). */
typedef struct es_config_loader es_config_loader;

typedef struct es_config_key es_config_key;

/* Reads one key into the loader's es_config; s is NULL when the file leaves
 * the key out. Returns 0, or -1 with the error set. */
typedef int (*es_key_loader)(es_config_loader *l, const es_config_key *k,
                             const config_setting_t *s);

struct es_config_key {
    const char *name; /* "server.port"; a top-level key has no dot */
    es_key_type type;
    double lo, hi;               /* INT, NUMBER: the accepted range */
    const char *const *choices;  /* ENUM: the accepted strings, NULL-terminated */
    const char *values;          /* LIST, GROUP, PATH: what it holds, for the docs */
    union {
        long long i;  /* INT, BOOL */
        double d;     /* NUMBER */
        const char *s; /* STRING, ENUM; PATH: used when the caller gives no folder */
    } def;
    const char *def_text; /* LIST, GROUP: the default as a config value, or NULL */
    const char *def_doc;  /* no default writable as a value: what it is, in words */
    int reloadable;       /* 1: a reload applies it; 0: it needs a restart */
    const char *doc;      /* one line */
    size_t offset, size;  /* the es_config field */
    size_t from_defaults; /* PATH: the es_config_defaults field giving its default */
    es_key_loader load;   /* LIST, GROUP, PATH */
    /* a restart-only key with a loader: do two configs hold the same value? */
    int (*same)(const es_config *a, const es_config *b);
};

extern const es_config_key es_config_keys[];
extern const size_t es_config_nkeys;

/* The row of a dotted name, or NULL. */
const es_config_key *es_config_key_find(const char *name);

/* The part after the group: "port" for "server.port". */
const char *es_config_key_leaf(const es_config_key *k);

/* The default as it is written in the config file ("8080", "\"info\"",
 * "[ ]"). Returns 0, or -1 (out empty) when none can be written. */
int es_config_key_default(const es_config_key *k, char *out, size_t outlen);

/* Do a and b hold the same value for k? */
int es_config_key_same(const es_config_key *k, const es_config *a, const es_config *b);

/* The dotted names of the restart-only keys whose value differs between the
 * running and the newly loaded config, joined with ", " into out. Returns
 * how many there are. */
size_t es_config_restart_changes(const es_config *running, const es_config *loaded, char *out,
                                 size_t outlen);

/* The table as Markdown, one row per key (the README's key table). */
void es_config_keys_markdown(FILE *out);

/* The loaders of the keys that are more than one value (config.c). */
int es_config_load_origins(es_config_loader *l, const es_config_key *k, const config_setting_t *s);
int es_config_load_join_headers(es_config_loader *l, const es_config_key *k,
                                const config_setting_t *s);
int es_config_load_tls(es_config_loader *l, const es_config_key *k, const config_setting_t *s);
int es_config_load_log_modules(es_config_loader *l, const es_config_key *k,
                               const config_setting_t *s);
int es_config_load_dir(es_config_loader *l, const es_config_key *k, const config_setting_t *s);
int es_config_load_hooks(es_config_loader *l, const es_config_key *k, const config_setting_t *s);
int es_config_load_turn_secret_file(es_config_loader *l, const es_config_key *k,
                                    const config_setting_t *s);
int es_config_load_cluster_password_file(es_config_loader *l, const es_config_key *k,
                                        const config_setting_t *s);
int es_config_load_cluster_secret_file(es_config_loader *l, const es_config_key *k,
                                      const config_setting_t *s);
int es_config_load_turn_urls(es_config_loader *l, const es_config_key *k,
                             const config_setting_t *s);
int es_config_load_stun_urls(es_config_loader *l, const es_config_key *k,
                             const config_setting_t *s);

int es_config_load_admin_token_file(es_config_loader *l, const es_config_key *k,
                                    const config_setting_t *s);
int es_config_load_admin_allow(es_config_loader *l, const es_config_key *k,
                               const config_setting_t *s);

#endif
