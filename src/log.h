/*
 * log - one line per event on stderr.
 *
 * Lines look like
 *   2026-12-02T13:40:00.123Z info  core: client alice registered (127.0.0.1)
 * Messages below the configured level cost one comparison.
 */
#ifndef EARSHOT_LOG_H
#define EARSHOT_LOG_H

#include <stdarg.h>

#include "earshot/plugin.h"

typedef earshot_log_level es_log_level;

/* Parse "debug", "info", "warn" or "error". Returns 0 on success. */
int es_log_level_parse(const char *text, es_log_level *out);
const char *es_log_level_name(es_log_level level);

void es_log_set_level(es_log_level level);
es_log_level es_log_get_level(void);

static inline int es_log_enabled(es_log_level level)
{
    extern es_log_level es_log_threshold_;
    return level >= es_log_threshold_;
}

void es_log_write(es_log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void es_log_writev(es_log_level level, const char *module, const char *fmt, va_list ap);

#define ES_LOG(level, module, ...)                       \
    do {                                                 \
        if (es_log_enabled(level))                       \
            es_log_write((level), (module), __VA_ARGS__); \
    } while (0)
#define ES_DEBUG(module, ...) ES_LOG(EARSHOT_LOG_DEBUG, module, __VA_ARGS__)
#define ES_INFO(module, ...) ES_LOG(EARSHOT_LOG_INFO, module, __VA_ARGS__)
#define ES_WARN(module, ...) ES_LOG(EARSHOT_LOG_WARN, module, __VA_ARGS__)
#define ES_ERROR(module, ...) ES_LOG(EARSHOT_LOG_ERROR, module, __VA_ARGS__)

#endif
