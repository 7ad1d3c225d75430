/*
 * log - one line per event on stderr, as text or JSON.
 *
 * Text lines look like
 *   2026-12-02T13:40:00.123Z info  session: registered at map 1 (0, 0) client_id=alice address=10.0.0.7 conn=12
 * JSON lines carry the same fields:
 *   {"ts":"2026-12-02T13:40:00.123Z","level":"info","module":"session","msg":"registered ...","client_id":"alice","address":"10.0.0.7","conn":12}
 * Every line about a client names its client_id (when registered), address
 * and connection number. Each module may have its own level; a message
 * below its module's level costs one comparison.
 */
#ifndef EARSHOT_LOG_H
#define EARSHOT_LOG_H

#include <stdarg.h>
#include <stdint.h>

#include "earshot/plugin.h"

typedef earshot_log_level es_log_level;

typedef enum es_log_format { ES_LOG_TEXT = 0, ES_LOG_JSON = 1 } es_log_format;

/* Parse "debug", "info", "warn" or "error". Returns 0 on success. */
int es_log_level_parse(const char *text, es_log_level *out);
const char *es_log_level_name(es_log_level level);

/* The default level, and levels for named modules (up to 32). */
void es_log_set_level(es_log_level level);
void es_log_clear_module_levels(void);
void es_log_set_module_level(const char *module, es_log_level level);
void es_log_set_format(es_log_format format);

/* Would a message of this level from this module be written? */
static inline int es_log_enabled(es_log_level level)
{
    extern es_log_level es_log_floor_;
    return level >= es_log_floor_;
}
int es_log_module_enabled(es_log_level level, const char *module);

/* The client a line is about: NULL fields are left out. */
typedef struct es_log_client {
    const char *client_id;
    const char *address;
    uint64_t conn;
} es_log_client;

void es_log_write(es_log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void es_log_writev(es_log_level level, const char *module, const es_log_client *client,
                   const char *fmt, va_list ap);
void es_log_client_write(es_log_level level, const char *module, const es_log_client *client,
                         const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#define ES_LOG(level, module, ...)                            \
    do {                                                      \
        if (es_log_enabled(level) && es_log_module_enabled(level, module)) \
            es_log_write((level), (module), __VA_ARGS__);     \
    } while (0)
#define ES_DEBUG(module, ...) ES_LOG(EARSHOT_LOG_DEBUG, module, __VA_ARGS__)
#define ES_INFO(module, ...) ES_LOG(EARSHOT_LOG_INFO, module, __VA_ARGS__)
#define ES_WARN(module, ...) ES_LOG(EARSHOT_LOG_WARN, module, __VA_ARGS__)
#define ES_ERROR(module, ...) ES_LOG(EARSHOT_LOG_ERROR, module, __VA_ARGS__)

/* A line about a client: client points at an es_log_client. */
#define ES_CLOG(level, module, client, ...)                                 \
    do {                                                                    \
        if (es_log_enabled(level) && es_log_module_enabled(level, module))  \
            es_log_client_write((level), (module), (client), __VA_ARGS__);  \
    } while (0)

#endif
