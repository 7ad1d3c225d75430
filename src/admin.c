#include "admin.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

#define JSON_TYPE "application/json"
#define TEXT_TYPE "text/plain; charset=utf-8"
/* Largest file of the page served. */
#define PAGE_FILE_MAX (1u << 20)

static void sha256(const void *data, size_t len, unsigned char out[32])
{
    unsigned int n = 0;
    EVP_Digest(data, len, out, &n, EVP_sha256(), NULL);
}

void es_admin_init(es_admin *ad, const es_config *cfg, es_core *core, es_moderation *mod,
                   const char *node)
{
    memset(ad, 0, sizeof *ad);
    snprintf(ad->node, sizeof ad->node, "%s", node && *node ? node : "earshot");
    ad->api.core = core;
    ad->api.mod = mod;
    ad->api.node = ad->node;
    es_admin_apply(ad, cfg);
}

void es_admin_apply(es_admin *ad, const es_config *cfg)
{
    ad->cfg = cfg;
    ad->nallow = 0;
    for (size_t i = 0; i < cfg->nadmin_allow && ad->nallow < ES_ADMIN_ALLOW_MAX; i++) {
        const char *why;
        /* validated when the config was loaded */
        if (es_netmask_parse(cfg->admin_allow[i], &ad->allow[ad->nallow], &why) == 0)
            ad->nallow++;
    }
    const char *t = cfg->admin_token ? cfg->admin_token : "";
    sha256(t, strlen(t), ad->token_digest);
}

static void answer(es_admin_response *resp, int status, const char *type, const char *text)
{
    resp->status = status;
    resp->type = type;
    es_buf_reset(&resp->body);
    es_buf_append_cstr(&resp->body, text);
}

static int is_api(const char *path) { return strncmp(path, "/api/", 5) == 0; }

/* "Bearer <token>" matches admin.token? Digests compared in constant time. */
static int token_ok(const es_admin *ad, const char *authorization)
{
    if (!authorization || strncmp(authorization, "Bearer ", 7) != 0 || !ad->cfg->admin_token ||
        strlen(ad->cfg->admin_token) < ES_ADMIN_TOKEN_MIN)
        return 0;
    const char *t = authorization + 7;
    unsigned char d[32];
    sha256(t, strlen(t), d);
    return CRYPTO_memcmp(d, ad->token_digest, sizeof d) == 0;
}

int es_admin_check(es_admin *ad, const es_admin_request *req, long long content_length,
                   es_admin_response *resp)
{
    resp->allow = NULL;
    if (!ad->cfg->admin_enabled) {
        answer(resp, 404, TEXT_TYPE, "not found\n");
        return 404;
    }
    if (!es_netmask_match(ad->allow, ad->nallow, req->address)) {
        ES_INFO("admin", "%s refused: address not on admin.allow", req->address);
        answer(resp, 403, TEXT_TYPE, "forbidden\n");
        return 403;
    }
    if (!is_api(req->path)) {
        if (req->method != ES_ADMIN_GET && req->method != ES_ADMIN_HEAD) {
            answer(resp, 405, TEXT_TYPE, "method not allowed\n");
            resp->allow = "GET, HEAD";
            return 405;
        }
        return 0;
    }
    if (!token_ok(ad, req->authorization)) {
        ES_INFO("admin", "%s refused: %s token", req->address,
                req->authorization ? "wrong" : "no");
        answer(resp, 401, JSON_TYPE, "{\"error\":\"a valid admin token is needed\"}\n");
        return 401;
    }
    if (req->method == ES_ADMIN_OTHER) {
        answer(resp, 405, JSON_TYPE, "{\"error\":\"GET or POST\"}\n");
        resp->allow = "GET, HEAD, POST";
        return 405;
    }
    if (content_length > ES_ADMIN_BODY_MAX) {
        answer(resp, 413, JSON_TYPE, "{\"error\":\"the body is too large\"}\n");
        return 413;
    }
    return 0;
}

static const char *type_of(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot)
        return "application/octet-stream";
    if (strcmp(dot, ".html") == 0)
        return "text/html; charset=utf-8";
    if (strcmp(dot, ".js") == 0 || strcmp(dot, ".mjs") == 0)
        return "text/javascript; charset=utf-8";
    if (strcmp(dot, ".css") == 0)
        return "text/css; charset=utf-8";
    if (strcmp(dot, ".png") == 0)
        return "image/png";
    if (strcmp(dot, ".svg") == 0)
        return "image/svg+xml";
    return "application/octet-stream";
}

/* A file of the page: web_dir/admin/<name>, name plain (no folders). */
static void page_file(es_admin *ad, const char *path, es_admin_response *resp)
{
    const char *name = path[0] == '\0' || strcmp(path, "/") == 0 ? "index.html" : path + 1;
    size_t n = strlen(name);
    int ok = n > 0 && n < 64 && name[0] != '.' && ad->cfg->web_dir;
    for (size_t i = 0; ok && i < n; i++) {
        char ch = name[i];
        ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
             ch == '-' || ch == '_' || ch == '.';
    }
    char file[4096];
    FILE *f = NULL;
    if (ok && snprintf(file, sizeof file, "%s/admin/%s", ad->cfg->web_dir, name) <
                  (int)sizeof file)
        f = fopen(file, "rb");
    if (!f) {
        answer(resp, 404, TEXT_TYPE, "not found\n");
        return;
    }
    es_buf_reset(&resp->body);
    char chunk[8192];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0 && resp->body.len <= PAGE_FILE_MAX)
        es_buf_append(&resp->body, chunk, got);
    int bad = ferror(f) || resp->body.len > PAGE_FILE_MAX;
    fclose(f);
    if (bad) {
        answer(resp, 404, TEXT_TYPE, "not found\n");
        return;
    }
    resp->status = 200;
    resp->type = type_of(name);
}

void es_admin_handle(es_admin *ad, const es_admin_request *req, es_admin_response *resp)
{
    if (es_admin_check(ad, req, (long long)req->body_len, resp) != 0)
        return;
    if (!is_api(req->path)) {
        page_file(ad, req->path, resp);
        return;
    }
    const char *name = req->path + 5;
    resp->type = JSON_TYPE;
    if (req->method == ES_ADMIN_POST)
        resp->status = es_admin_api_post(&ad->api, name, req->body ? req->body : "",
                                         req->body_len, req->address, &resp->body);
    else
        resp->status = es_admin_api_get(&ad->api, name, req->args, req->nargs, &resp->body);
}
