#include "log.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "buf.h"

/* The lowest level any module writes: the fast check in es_log_enabled. */
es_log_level es_log_floor_ = EARSHOT_LOG_INFO;

static es_log_level default_level = EARSHOT_LOG_INFO;
static es_log_format format = ES_LOG_TEXT;
static struct {
    char name[32];
    es_log_level level;
} modules[32];
static int nmodules;

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

static void recompute_floor(void)
{
    es_log_floor_ = default_level;
    for (int i = 0; i < nmodules; i++)
        if (modules[i].level < es_log_floor_)
            es_log_floor_ = modules[i].level;
}

void es_log_set_level(es_log_level level)
{
    default_level = level;
    recompute_floor();
}

void es_log_clear_module_levels(void)
{
    nmodules = 0;
    recompute_floor();
}

void es_log_set_module_level(const char *module, es_log_level level)
{
    for (int i = 0; i < nmodules; i++) {
        if (strcmp(modules[i].name, module) == 0) {
            modules[i].level = level;
            recompute_floor();
            return;
        }
    }
    if (nmodules < (int)(sizeof modules / sizeof modules[0])) {
        snprintf(modules[nmodules].name, sizeof modules[nmodules].name, "%s", module);
        modules[nmodules++].level = level;
    }
    recompute_floor();
}

void es_log_set_format(es_log_format f) { format = f; }

int es_log_module_enabled(es_log_level level, const char *module)
{
    for (int i = 0; i < nmodules; i++) {
        /* "lua" covers "lua auth_token"; "plugin" covers "plugin proximity". */
        size_t n = strlen(modules[i].name);
        if (strncmp(module, modules[i].name, n) == 0 && (module[n] == '\0' || module[n] == ' '))
            return level >= modules[i].level;
    }
    return level >= default_level;
}

static void timestamp(char *out, size_t len)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(out, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L);
}

void es_log_writev(es_log_level level, const char *module, const es_log_client *client,
                   const char *fmt, va_list ap)
{
    char msg[1536], ts[64];
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    size_t mlen = n < 0 ? 0 : (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1;
    timestamp(ts, sizeof ts);

    es_buf b;
    es_buf_init(&b);
    if (format == ES_LOG_JSON) {
        es_buf_append_cstr(&b, "{\"ts\":\"");
        es_buf_append_cstr(&b, ts);
        es_buf_append_cstr(&b, "\",\"level\":\"");
        es_buf_append_cstr(&b, es_log_level_name(level));
        es_buf_append_cstr(&b, "\",\"module\":");
        es_buf_append_json_string(&b, module, strlen(module));
        es_buf_append_cstr(&b, ",\"msg\":");
        es_buf_append_json_string(&b, msg, mlen);
        if (client) {
            if (client->client_id && client->client_id[0]) {
                es_buf_append_cstr(&b, ",\"client_id\":");
                es_buf_append_json_string(&b, client->client_id, strlen(client->client_id));
            }
            if (client->address) {
                es_buf_append_cstr(&b, ",\"address\":");
                es_buf_append_json_string(&b, client->address, strlen(client->address));
            }
            char conn[32];
            snprintf(conn, sizeof conn, ",\"conn\":%llu", (unsigned long long)client->conn);
            es_buf_append_cstr(&b, conn);
        }
        es_buf_append_cstr(&b, "}\n");
    } else {
        char head[96];
        snprintf(head, sizeof head, "%s %-5s ", ts, es_log_level_name(level));
        es_buf_append_cstr(&b, head);
        es_buf_append_cstr(&b, module);
        es_buf_append_cstr(&b, ": ");
        es_buf_append(&b, msg, mlen);
        if (client) {
            char tail[256];
            snprintf(tail, sizeof tail, "%s%s address=%s conn=%llu",
                     client->client_id && client->client_id[0] ? " client_id=" : "",
                     client->client_id && client->client_id[0] ? client->client_id : "",
                     client->address ? client->address : "-", (unsigned long long)client->conn);
            es_buf_append_cstr(&b, tail);
        }
        es_buf_append_cstr(&b, "\n");
    }
    /* One write per line so that lines never interleave. */
    fwrite(es_buf_data(&b), 1, b.len, stderr);
    es_buf_free(&b);
}

void es_log_write(es_log_level level, const char *module, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    es_log_writev(level, module, NULL, fmt, ap);
    va_end(ap);
}

void es_log_client_write(es_log_level level, const char *module, const es_log_client *client,
                         const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    es_log_writev(level, module, client, fmt, ap);
    va_end(ap);
}
