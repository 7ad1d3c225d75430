#include "turn.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>


size_t es_turn_username(char out[ES_TURN_USERNAME_MAX], long long expiry, const char *id,
                        size_t id_len)
{
    out[0] = '\0';
    if (id_len > ES_ID_MAX || memchr(id, '\0', id_len))
        return 0;
    int n = snprintf(out, ES_TURN_USERNAME_MAX, "%lld:", expiry);
    if (n <= 0 || (size_t)n + id_len >= ES_TURN_USERNAME_MAX) {
        out[0] = '\0';
        return 0;
    }
    memcpy(out + n, id, id_len);
    out[(size_t)n + id_len] = '\0';
    return (size_t)n + id_len;
}

int es_turn_credential(char out[ES_TURN_CREDENTIAL_MAX], const char *secret, size_t secret_len,
                       const char *username, size_t username_len)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    out[0] = '\0';
    if (secret_len > (size_t)0x7fffffff ||
        !HMAC(EVP_sha1(), secret, (int)secret_len, (const unsigned char *)username, username_len,
              mac, &mac_len) ||
        mac_len != 20)
        return -1;
    /* 20 bytes are 28 base64 characters and a NUL: exactly the room out has */
    if (EVP_EncodeBlock((unsigned char *)out, mac, (int)mac_len) != ES_TURN_CREDENTIAL_MAX - 1) {
        out[0] = '\0';
        return -1;
    }
    return 0;
}

static void write_urls(es_buf *b, char *const *urls, size_t n)
{
    ES_BUF_APPEND_LIT(b, "{\"urls\":[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            ES_BUF_APPEND_LIT(b, ",");
        es_buf_append_json_string(b, urls[i], strlen(urls[i]));
    }
    ES_BUF_APPEND_LIT(b, "]");
}

void es_turn_write_ice_servers(es_buf *b, const es_config *cfg, const char *id, size_t id_len,
                               long long now)
{
    ES_BUF_APPEND_LIT(b, "{\"type\":\"IceServers\",\"data\":{\"ice_servers\":[");
    int any = 0;
    if (cfg->nstun_urls > 0) {
        write_urls(b, cfg->stun_urls, cfg->nstun_urls);
        ES_BUF_APPEND_LIT(b, "}");
        any = 1;
    }
    char username[ES_TURN_USERNAME_MAX], credential[ES_TURN_CREDENTIAL_MAX];
    size_t ulen;
    if (cfg->nturn_urls > 0 && cfg->turn_secret && cfg->turn_secret[0] &&
        (ulen = es_turn_username(username, now + cfg->turn_ttl, id, id_len)) > 0 &&
        es_turn_credential(credential, cfg->turn_secret, strlen(cfg->turn_secret), username,
                           ulen) == 0) {
        if (any)
            ES_BUF_APPEND_LIT(b, ",");
        write_urls(b, cfg->turn_urls, cfg->nturn_urls);
        ES_BUF_APPEND_LIT(b, ",\"username\":");
        es_buf_append_json_string(b, username, ulen);
        ES_BUF_APPEND_LIT(b, ",\"credential\":");
        es_buf_append_json_string(b, credential, strlen(credential));
        ES_BUF_APPEND_LIT(b, "}");
    }
    char tail[48];
    int n = snprintf(tail, sizeof tail, "],\"ttl\":%d}}", cfg->turn_ttl);
    es_buf_append(b, tail, (size_t)n);
}
