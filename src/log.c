#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

es_log_level es_log_threshold_ = EARSHOT_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int es_log_level_parse(const char *text, es_log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(text, level_names[i]) == 0) {
            *out = (es_log_level)i;
            return 0;
        }
    }
    return -1;
}

const char *es_log_level_name(es_log_level level)
{
    return (unsigned)level < 4 ? level_names[level] : "?";
}

void es_log_set_level(es_log_level level) { es_log_threshold_ = level; }
es_log_level es_log_get_level(void) { return es_log_threshold_; }

void es_log_writev(es_log_level level, const char *module, const char *fmt, va_list ap)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000L, es_log_level_name(level), module);
    if (n < 0)
        return;
    size_t used = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    int m = vsnprintf(line + used, sizeof line - used, fmt, ap);
    if (m > 0)
        used += (size_t)m < sizeof line - used ? (size_t)m : sizeof line - used - 1;
    /* One write per line so that lines from concurrent processes don't interleave. */
    if (used > sizeof line - 2)
        used = sizeof line - 2;
    line[used++] = '\n';
    fwrite(line, 1, used, stderr);
}

void es_log_write(es_log_level level, const char *module, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    es_log_writev(level, module, fmt, ap);
    va_end(ap);
}
