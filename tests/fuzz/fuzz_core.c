/*
 * libFuzzer harness for the message path: frame text -> parse -> dispatch,
 * on four connections at once, across registration, moves, relays,
 * disconnects, closes, timeouts and slow readers. The real stock plugins
 * (and the map_range script) make the decisions.
 *
 * Input: a sequence of records [op][len lo][len hi][len bytes]. op's low two
 * bits pick the connection, the next three bits the action (see below).
 * Protocol v1.1 is reachable: the crowd cap is 2 (four connections can
 * overfill it), resumable clients are held when their connection drops,
 * and a text frame sent with action 2 has every "$TOKEN" in it replaced by
 * the last resume token the server issued, so resumes can succeed.
 *
 * Oracle, beyond the sanitizers: every message earshot queues is a JSON
 * object with a string "type", a NearbyPeers list never names its receiver
 * nor holds more than max_peers ids, a Session carries a string token and
 * the grace, an IceServers carries its list and ttl.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "core.h"
#include "hooks.h"
#include "log.h"

#define SLOTS 4

static es_config cfg;
static es_hooks hooks;
static double fake_now = 1000.0;

static double clock_now(void) { return fake_now; }
static void want_write(void *tctx, es_session *s) { (void)tctx, (void)s; }
static const es_transport transport = {.want_write = want_write};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    const char *plugins = getenv("EARSHOT_PLUGIN_DIR");
    const char *source = getenv("EARSHOT_SOURCE_DIR");
    if (!plugins)
        plugins = EARSHOT_FUZZ_PLUGIN_DIR;
    if (!source)
        source = EARSHOT_FUZZ_SOURCE_DIR;
    char path[] = "/tmp/earshot-fuzz-core-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        abort();
    FILE *f = fdopen(fd, "w");
    fprintf(f,
            "server = { max_frame_bytes = 4096; send_queue_bytes = 16384; };\n"
            "session = { takeover = \"same_address\"; idle_timeout = 5.0; refresh_interval = 2.0;\n"
            "            max_peers = 2; resume_grace = 4.0; resume_queue_messages = 3;\n"
            "            resume_queue_bytes = 4096; };\n"
            "limits = { message_rate = 100.0; message_burst = 50; rate_limit_close_after = 20;\n"
            "           first_message_timeout = 3.0; };\n"
            "log = { level = \"error\"; };\n"
            "turn = { secret = \"fuzz\"; urls = [ \"turn:127.0.0.1:3478\" ];\n"
            "         stun_urls = [ \"stun:127.0.0.1:3478\" ]; };\n"
            "plugin_dir = \"%s\";\nscript_dir = \"%s/lua\";\n"
            "hooks = (\n"
            "  { type = \"plugin\"; name = \"relay_guard\"; settings = { grace = 1.0; }; },\n"
            "  { type = \"lua\"; name = \"map_range\"; settings = { maps = ( { map_id = 3; radius = 8; } ); }; },\n"
            "  { type = \"plugin\"; name = \"proximity\"; }\n"
            ");\n",
            plugins, source);
    fclose(f);
    char err[1024];
    if (es_config_load(&cfg, path, NULL, err, sizeof err) != 0 ||
        es_hooks_load(&hooks, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "fuzz_core: %s\n", err);
        abort();
    }
    unlink(path);
    es_config_apply_log(&cfg);
    return 0;
}

static es_session *open_slot(es_core *core, int slot)
{
    static const char *const addrs[] = {"10.0.0.1", "10.0.0.2"};
    return es_core_open(core, NULL, addrs[slot & 1], NULL);
}

#define MAX_PEERS 2

static char last_token[256]; /* the last resume token a Session carried */

static void check_v11(const char *type, json_t *data)
{
    if (strcmp(type, "Session") == 0) {
        json_t *token = json_object_get(data, "resume_token");
        if (!json_is_object(data) || !json_is_string(token) ||
            !json_is_number(json_object_get(data, "grace")) ||
            json_string_length(token) >= sizeof last_token)
            abort();
        memcpy(last_token, json_string_value(token), json_string_length(token) + 1);
    } else if (strcmp(type, "IceServers") == 0) {
        if (!json_is_object(data) || !json_is_array(json_object_get(data, "ice_servers")) ||
            !json_is_integer(json_object_get(data, "ttl")))
            abort();
    }
}

/* payload with every "$TOKEN" replaced by last_token, into out (len). */
static const char *with_token(const char *payload, size_t len, size_t *out_len)
{
    static char out[8192 * 2 + 256];
    size_t n = 0, tl = strlen(last_token);
    for (size_t i = 0; i < len;) {
        if (i + 6 <= len && memcmp(payload + i, "$TOKEN", 6) == 0) {
            if (n + tl > sizeof out)
                break;
            memcpy(out + n, last_token, tl);
            n += tl;
            i += 6;
        } else {
            if (n + 1 > sizeof out)
                break;
            out[n++] = payload[i++];
        }
    }
    *out_len = n;
    return out;
}

/* Pop everything queued for s and check each message. */
static void drain(es_session *s)
{
    es_qmsg *m;
    while ((m = es_sendq_peek(&s->q)) != NULL) {
        json_error_t jerr;
        json_t *doc = json_loadb(es_qmsg_payload(m), m->len, JSON_ALLOW_NUL, &jerr);
        if (!doc || !json_is_object(doc) || !json_is_string(json_object_get(doc, "type"))) {
            fprintf(stderr, "server queued an invalid message: %.*s\n", (int)m->len,
                    es_qmsg_payload(m));
            abort();
        }
        const char *type = json_string_value(json_object_get(doc, "type"));
        check_v11(type, json_object_get(doc, "data"));
        if (strcmp(type, "NearbyPeers") == 0) {
            json_t *list = json_object_get(doc, "data");
            size_t i;
            json_t *id;
            if (!json_is_array(list) || json_array_size(list) > MAX_PEERS)
                abort();
            json_array_foreach(list, i, id) {
                if (!json_is_string(id) || (s->registered && strcmp(json_string_value(id), s->id) == 0))
                    abort();
            }
        }
        json_decref(doc);
        es_sendq_pop(&s->q);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    es_core core;
    last_token[0] = '\0';
    es_core_init(&core, &cfg, &hooks, &transport, NULL, clock_now);
    es_session *slot[SLOTS];
    for (int i = 0; i < SLOTS; i++)
        slot[i] = open_slot(&core, i);

    size_t pos = 0;
    while (pos + 3 <= size) {
        uint8_t op = data[pos];
        size_t len = data[pos + 1] | (size_t)(data[pos + 2] & 0x1f) << 8;
        pos += 3;
        if (len > size - pos)
            len = size - pos;
        const char *payload = (const char *)data + pos;
        pos += len;
        int i = op & 3;
        es_session *s = slot[i];
        switch ((op >> 2) & 7) {
        case 0:
        case 1:
            es_core_frame(&core, s, payload, len, 0);
            break;
        case 2: { /* with the last resume token put in */
            size_t n;
            const char *text = with_token(payload, len, &n);
            es_core_frame(&core, s, text, n, 0);
            break;
        }
        case 3:
            es_core_frame(&core, s, payload, len, 1);
            break;
        case 4: /* the connection drops; with an odd length, after a close frame */
            if (len & 1)
                es_core_goodbye(&core, s);
            es_core_closed(&core, s);
            slot[i] = open_slot(&core, i);
            break;
        case 5: /* time passes */
            fake_now += (double)len / 16.0;
            es_core_tick(&core);
            break;
        case 6: /* the client reads; a closing connection then goes away */
            drain(s);
            if (s->closing) {
                es_core_closed(&core, s);
                slot[i] = open_slot(&core, i);
            }
            break;
        case 7:
            es_core_frame_too_large(&core, s);
            break;
        }
    }
    for (int i = 0; i < SLOTS; i++)
        drain(slot[i]);
    es_core_free(&core);
    return 0;
}
