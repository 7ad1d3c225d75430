#include "lua_host.h"

#include <ctype.h>
#include <lauxlib.h>
#include <limits.h>
#include <lua.h>
#include <lualib.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "moderation.h"
#include "protocol.h"
#include "util.h"

/* The count hook fires every STEP instructions, so the budget is checked
 * cheaply; a call may overrun its limit by less than STEP instructions. */
#define STEP 1000

/*
 * Work done in C, outside the Lua VM, counted as instructions (measured
 * against the VM's own instructions in docs/lua.md): every BYTES_PER_INSTR
 * bytes a call allocates (string.rep, table.concat, `..`, gsub's result),
 * every BYTES_PER_INSTR bytes a plain find scans, and every STEPS_PER_INSTR
 * steps a pattern function may take at worst.
 */
#define BYTES_PER_INSTR 32
#define STEPS_PER_INSTR 4

typedef struct es_script {
    earshot_plugin desc; /* what the chains call; first, so &desc == script */
    char *name;
    char *path;
    char module[96];     /* "lua <name>": what the script's log lines are attributed to */
    lua_State *L;
    size_t mem_used, mem_limit;
    long long instr_limit, instr_used;
    size_t alloc_bytes;  /* allocated bytes not yet counted as an instruction */
    int stopping;        /* the current call is over its budget */
    int hook_fast;       /* the count hook fires at every instruction */
    int setup;           /* the host is building the state: no memory cap */
    int deny_on_error[ES_HOOK_VERDICT_COUNT];
    int fn[ES_HOOK_COUNT]; /* registry refs of the hook functions, or LUA_NOREF */
    int t_a, t_b, t_pos, t_relay; /* reusable argument tables */
    int64_t radius;      /* the global query_radius, read at load */
    double tick_interval; /* the global tick_interval, read at load (0: 1 s) */
    es_lua_stats stats;
    char reason[ES_ERROR_MAX];
} es_script;

/* ---- memory and time limits -------------------------------------------- */

static void charge_bytes(es_script *s, size_t bytes);
static void over_budget(lua_State *L, es_script *s);

static void *script_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    es_script *s = ud;
    if (!ptr)
        osize = 0; /* osize then only says what kind of object is wanted */
    if (nsize == 0) {
        free(ptr);
        s->mem_used -= osize;
        return NULL;
    }
    if (nsize > osize && !s->setup && s->mem_used + (nsize - osize) > s->mem_limit)
        return NULL; /* Lua turns this into a "not enough memory" error */
    void *p = realloc(ptr, nsize);
    if (p)
        s->mem_used = s->mem_used - osize + nsize;
    if (p && nsize > osize && !s->setup)
        charge_bytes(s, nsize - osize);
    return p;
}

static es_script *script_of(lua_State *L) { return *(es_script **)lua_getextraspace(L); }

static void count_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    es_script *s = script_of(L);
    s->instr_used += STEP;
    over_budget(L, s);
}

/*
 * Bytes a C function made: counted against the budget. Over it, the count
 * hook fires at the next instruction (the allocator cannot raise an error
 * itself), so a loop of big allocations stops at once.
 */
static void charge_bytes(es_script *s, size_t bytes)
{
    s->alloc_bytes += bytes;
    if (s->alloc_bytes < BYTES_PER_INSTR)
        return;
    s->instr_used += (long long)(s->alloc_bytes / BYTES_PER_INSTR);
    s->alloc_bytes %= BYTES_PER_INSTR;
    if (s->instr_used > s->instr_limit && !s->stopping && !s->hook_fast && s->L) {
        s->hook_fast = 1;
        lua_sethook(s->L, count_hook, LUA_MASKCOUNT, 1);
    }
}

/* Raise the stop when the call is over its instruction budget. */
static void over_budget(lua_State *L, es_script *s)
{
    if (s->instr_used > s->instr_limit || s->stopping) {
        /* From now on fire at every instruction, so a pcall inside the script
         * cannot swallow the stop: the first instruction outside it raises
         * again. */
        if (!s->stopping) {
            s->stopping = 1;
            lua_sethook(L, count_hook, LUA_MASKCOUNT, 1);
        }
        luaL_error(L, "instruction limit exceeded (%I per call)", (lua_Integer)s->instr_limit);
    }
}

static void budget_start(es_script *s)
{
    s->instr_used = 0;
    s->alloc_bytes = 0;
    if (s->stopping || s->hook_fast) {
        s->stopping = 0;
        s->hook_fast = 0;
        lua_sethook(s->L, count_hook, LUA_MASKCOUNT, STEP);
    }
}

/* ---- the string library's C loops, counted ------------------------------ */

/*
 * Lua's pattern matcher backtracks in C, where the count hook never fires:
 * ("a"):rep(3000):find(".-.-.-.-b") runs for hours in one call. Before
 * find, match, gmatch or gsub runs, its worst case is bounded from the
 * subject and the pattern, and counted against the instruction budget;
 * a call whose bound does not fit what is left of it is stopped like a
 * loop. The bound: the start positions tried (one when anchored), times,
 * for each single-character item repeated with *, + or -, one more than the
 * longest run of subject characters the item matches (the most ways it can
 * be tried at one place), times 2 per ? item and n + 1 per %b or back
 * reference. Items that cannot repeat cost nothing more. A pattern with
 * no repeated item is linear, so ids and payloads of any size pass.
 */

static int class_matches(int c, int cl)
{
    int r;
    switch (tolower(cl)) {
    case 'a': r = isalpha(c); break;
    case 'c': r = iscntrl(c); break;
    case 'd': r = isdigit(c); break;
    case 'g': r = isgraph(c); break;
    case 'l': r = islower(c); break;
    case 'p': r = ispunct(c); break;
    case 's': r = isspace(c); break;
    case 'u': r = isupper(c); break;
    case 'w': r = isalnum(c); break;
    case 'x': r = isxdigit(c); break;
    default: return cl == c;
    }
    if (isupper(cl))
        r = !r;
    return r != 0;
}

/* The end of the set that starts at p ('['), past its ']'; NULL if open. */
static const char *set_end(const char *p, const char *pe)
{
    p++;
    if (p < pe && *p == '^')
        p++;
    do {
        if (p >= pe)
            return NULL;
        if (*p++ == '%' && p < pe)
            p++;
    } while (p >= pe || *p != ']');
    return p + 1;
}

static int set_matches(int c, const char *p, const char *ec)
{
    int yes = 1;
    p++; /* '[' */
    if (*p == '^') {
        yes = 0;
        p++;
    }
    for (; p < ec; p++) {
        if (*p == '%' && p + 1 < ec) {
            p++;
            if (class_matches(c, (unsigned char)*p))
                return yes;
        } else if (p + 2 < ec && p[1] == '-') {
            if ((unsigned char)p[0] <= c && c <= (unsigned char)p[2])
                return yes;
            p += 2;
        } else if ((unsigned char)*p == c) {
            return yes;
        }
    }
    return !yes;
}

/* Whether subject character c matches the single item p..ep. */
static int item_matches(int c, const char *p, const char *ep)
{
    switch (*p) {
    case '.': return 1;
    case '%': return class_matches(c, (unsigned char)p[1]);
    case '[': return set_matches(c, p, ep - 1);
    default: return (unsigned char)*p == c;
    }
}

/* The longest run of subject characters the item p..ep matches. */
static size_t longest_run(const char *subj, size_t n, const char *p, const char *ep)
{
    if (*p == '.')
        return n;
    size_t best = 0, run = 0;
    for (size_t i = 0; i < n; i++) {
        run = item_matches((unsigned char)subj[i], p, ep) ? run + 1 : 0;
        if (run > best)
            best = run;
    }
    return best;
}

/* The worst-case steps of matching pattern p against the subject; HUGE_VAL
 * when a malformed pattern leaves it to Lua's own error. */
static double pattern_steps(const char *subj, size_t n, const char *p, size_t pl, int anchors)
{
    const char *pe = p + pl;
    double ways = 1.0, big = (double)n + 1.0;
    int anchored = anchors && pl > 0 && *p == '^';
    if (anchored)
        p++;
    while (p < pe) {
        if (*p == '(' || *p == ')' || (*p == '$' && p + 1 == pe)) {
            p++;
            continue;
        }
        if (*p == '%' && p + 1 < pe && p[1] == 'b') {
            ways *= big;
            p = p + 4 < pe ? p + 4 : pe;
            continue;
        }
        if (*p == '%' && p + 1 < pe && p[1] == 'f') {
            p += 2;
            if (p >= pe || *p != '[' || !(p = set_end(p, pe)))
                return n; /* Lua refuses it before matching */
            continue;
        }
        if (*p == '%' && p + 1 < pe && isdigit((unsigned char)p[1])) {
            ways *= big;
            p += 2;
            continue;
        }
        const char *ep;
        if (*p == '%')
            ep = p + 2 <= pe ? p + 2 : NULL;
        else if (*p == '[')
            ep = set_end(p, pe);
        else
            ep = p + 1;
        if (!ep)
            return n; /* malformed: Lua refuses it before matching */
        if (ep < pe && (*ep == '*' || *ep == '+' || *ep == '-')) {
            ways *= (double)longest_run(subj, n, p, ep) + 1.0;
            ep++;
        } else if (ep < pe && *ep == '?') {
            ways *= 2.0;
            ep++;
        }
        p = ep;
    }
    return ways * (anchored ? 1.0 : big) + (double)n;
}

/* Count `instructions` of C work against the budget; over it, stop. */
static void charge(lua_State *L, double instructions)
{
    es_script *s = script_of(L);
    if (instructions > (double)(s->instr_limit - s->instr_used))
        s->instr_used = s->instr_limit + 1;
    else
        s->instr_used += (long long)instructions;
    over_budget(L, s);
}

/* string.find, match, gmatch and gsub: the original (upvalue 1) once the
 * worst case is counted; upvalue 2 is 1 where '^' anchors (not gmatch). */
static int guarded_pattern(lua_State *L)
{
    size_t n, pl;
    const char *subj = luaL_checklstring(L, 1, &n);
    const char *p = luaL_checklstring(L, 2, &pl);
    lua_CFunction original = lua_tocfunction(L, lua_upvalueindex(1));
    int anchors = (int)lua_tointeger(L, lua_upvalueindex(2));
    int plain = anchors == 2 && lua_toboolean(L, 4);
    if (plain || (strlen(p) == pl && !strpbrk(p, "^$*+?.([%-")))
        charge(L, (double)(n + pl) / BYTES_PER_INSTR); /* a plain search */
    else
        charge(L, pattern_steps(subj, n, p, pl, anchors != 0) / STEPS_PER_INSTR);
    return original(L);
}

static void guard_string_library(lua_State *L)
{
    static const struct {
        const char *name;
        int anchors; /* 0: gmatch; 1: match, gsub; 2: find (has `plain`) */
    } fns[] = {{"find", 2}, {"match", 1}, {"gmatch", 0}, {"gsub", 1}};
    for (size_t i = 0; i < ES_ARRAY_LEN(fns); i++) {
        lua_getfield(L, -1, fns[i].name);
        lua_pushinteger(L, fns[i].anchors);
        lua_pushcclosure(L, guarded_pattern, 2);
        lua_setfield(L, -2, fns[i].name);
    }
}

/* ---- the earshot table --------------------------------------------------- */

static int l_log(lua_State *L)
{
    static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
    int level = luaL_checkoption(L, 1, NULL, levels);
    const char *msg = luaL_checkstring(L, 2);
    ES_LOG((es_log_level)level, script_of(L)->module, "%s", msg);
    return 0;
}

static int l_print(lua_State *L)
{
    /* print() goes to the log at info level, arguments separated by tabs. */
    luaL_Buffer b;
    int n = lua_gettop(L);
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        if (i > 1)
            luaL_addchar(&b, '\t');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    ES_INFO(script_of(L)->module, "%s", lua_tostring(L, -1));
    return 0;
}

static int l_now(lua_State *L)
{
    lua_pushnumber(L, es_now());
    return 1;
}

/* ---- moderation (moderation.h): the lists the admin API shows ---------- */

/* earshot.banned(client_id [, address]): is either banned now? */
static int l_banned(lua_State *L)
{
    size_t len = 0;
    const char *id = luaL_optlstring(L, 1, NULL, &len);
    const char *addr = luaL_optstring(L, 2, NULL);
    lua_pushboolean(L, es_moderation_banned(es_moderation_shared(), id, len, addr, es_wallclock(),
                                            NULL, 0));
    return 1;
}

static int ban(lua_State *L, es_ban_kind kind)
{
    size_t len;
    const char *key = luaL_checklstring(L, 1, &len);
    double seconds = luaL_checknumber(L, 2);
    const char *reason = luaL_optstring(L, 3, "");
    lua_pushboolean(L, es_moderation_ban(es_moderation_shared(), kind, key, len, seconds,
                                         es_wallclock(), reason, script_of(L)->module) == 0);
    return 1;
}

/* earshot.ban_id(client_id, seconds [, reason]), earshot.ban_address(address,
 * seconds [, reason]): true, or false for a bad id or duration. */
static int l_ban_id(lua_State *L) { return ban(L, ES_BAN_ID); }
static int l_ban_address(lua_State *L) { return ban(L, ES_BAN_ADDRESS); }

/* earshot.muted(client_id) */
static int l_muted(lua_State *L)
{
    size_t len;
    const char *id = luaL_checklstring(L, 1, &len);
    lua_pushboolean(L, es_moderation_muted(es_moderation_shared(), id, len));
    return 1;
}

/* earshot.mute(client_id [, reason]), earshot.unmute(client_id): true, or
 * false (a bad id; not muted when unmuting). */
static int l_mute(lua_State *L)
{
    size_t len;
    const char *id = luaL_checklstring(L, 1, &len);
    const char *reason = luaL_optstring(L, 2, "");
    lua_pushboolean(L, es_moderation_mute(es_moderation_shared(), id, len, es_wallclock(), reason,
                                          script_of(L)->module) == 0);
    return 1;
}

static int l_unmute(lua_State *L)
{
    size_t len;
    const char *id = luaL_checklstring(L, 1, &len);
    lua_pushboolean(L, es_moderation_unmute(es_moderation_shared(), id, len) == 0);
    return 1;
}

static int l_emit(lua_State *L)
{
    size_t len;
    const char *line = luaL_checklstring(L, 1, &len);
    /* One write per line, newline added, so lines never interleave. */
    char *buf = malloc(len + 1);
    if (!buf)
        return luaL_error(L, "not enough memory");
    memcpy(buf, line, len);
    buf[len] = '\n';
    fwrite(buf, 1, len + 1, stderr);
    free(buf);
    return 0;
}

/* Push the 32-byte digest d as 64 lower-case hex digits. */
static int push_hex_digest(lua_State *L, const unsigned char *d)
{
    static const char digits[] = "0123456789abcdef";
    char hex[64];
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[d[i] >> 4];
        hex[2 * i + 1] = digits[d[i] & 15];
    }
    lua_pushlstring(L, hex, sizeof hex);
    return 1;
}

static int l_hmac_sha256(lua_State *L)
{
    size_t kl, ml;
    const char *key = luaL_checklstring(L, 1, &kl);
    const char *msg = luaL_checklstring(L, 2, &ml);
    luaL_argcheck(L, kl <= INT_MAX, 1, "key too long");
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!HMAC(EVP_sha256(), key, (int)kl, (const unsigned char *)msg, ml, mac, &n) || n != 32)
        return luaL_error(L, "hmac_sha256 failed");
    return push_hex_digest(L, mac);
}

static int l_sha256(lua_State *L)
{
    size_t len;
    const char *data = luaL_checklstring(L, 1, &len);
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!EVP_Digest(data, len, d, &n, EVP_sha256(), NULL) || n != 32)
        return luaL_error(L, "sha256 failed");
    return push_hex_digest(L, d);
}

/* Compare two strings in time that depends only on their lengths. */
static int l_secure_equals(lua_State *L)
{
    size_t al, bl;
    const char *a = luaL_checklstring(L, 1, &al);
    const char *b = luaL_checklstring(L, 2, &bl);
    lua_pushboolean(L, al == bl && CRYPTO_memcmp(a, b, al) == 0);
    return 1;
}

/* Text-only load(): scripts may compile Lua source, never bytecode. */
static int l_load(lua_State *L)
{
    int env = !lua_isnone(L, 4);
    size_t len;
    const char *chunk = lua_tolstring(L, 1, &len);
    const char *name = luaL_optstring(L, 2, chunk ? chunk : "=(load)");
    if (!chunk)
        return luaL_error(L, "load: only strings of Lua source can be loaded");
    int rc = luaL_loadbufferx(L, chunk, len, name, "t");
    if (rc != LUA_OK) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    if (env) {
        lua_pushvalue(L, 4);
        if (!lua_setupvalue(L, -2, 1))
            lua_pop(L, 1);
    }
    return 1;
}

/* libconfig value at s -> Lua value on the stack. */
static void push_setting(lua_State *L, const config_setting_t *s)
{
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        lua_pushinteger(L, (lua_Integer)config_setting_get_int64(s));
        break;
    case CONFIG_TYPE_FLOAT:
        lua_pushnumber(L, config_setting_get_float(s));
        break;
    case CONFIG_TYPE_BOOL:
        lua_pushboolean(L, config_setting_get_bool(s));
        break;
    case CONFIG_TYPE_STRING:
        lua_pushstring(L, config_setting_get_string(s));
        break;
    case CONFIG_TYPE_GROUP: {
        int n = config_setting_length(s);
        lua_createtable(L, 0, n);
        for (int i = 0; i < n; i++) {
            const config_setting_t *c = config_setting_get_elem(s, (unsigned)i);
            push_setting(L, c);
            lua_setfield(L, -2, config_setting_name(c));
        }
        break;
    }
    case CONFIG_TYPE_ARRAY:
    case CONFIG_TYPE_LIST: {
        int n = config_setting_length(s);
        lua_createtable(L, n, 0);
        for (int i = 0; i < n; i++) {
            push_setting(L, config_setting_get_elem(s, (unsigned)i));
            lua_rawseti(L, -2, i + 1);
        }
        break;
    }
    default:
        lua_pushnil(L);
    }
}

/* setmetatable without __gc: finalizers run with hooks off, so they would
 * escape the instruction limit. */
static int l_setmetatable(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TTABLE) {
        lua_pushstring(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL)
            return luaL_error(L, "__gc metamethods are not allowed in earshot scripts");
        lua_pop(L, 1);
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

/* io.lines(filename, ...) only: without a file name it would read stdin. */
static int l_io_lines(lua_State *L)
{
    luaL_checkstring(L, 1);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

/* Remove fields from the library table on top of the stack. */
static void drop_fields(lua_State *L, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        lua_pushnil(L);
        lua_setfield(L, -2, names[i]);
    }
}

static int guard_global(lua_State *L)
{
    return luaL_error(L, "assignment to undeclared global '%s' (declare it at the top of the "
                         "script, or use local)",
                      lua_tostring(L, 2));
}

/* Open the sandbox: chosen libraries, no file or bytecode loading. */
static void open_libraries(lua_State *L, const es_hook_entry *e)
{
    luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
    lua_pop(L, 1);
    luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 1);
    lua_pushnil(L);
    lua_setfield(L, -2, "dump"); /* no bytecode out either */
    guard_string_library(L);
    lua_pop(L, 1);
    luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 1);
    lua_pop(L, 1);
    luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 1);
    lua_pop(L, 1);
    luaL_requiref(L, LUA_UTF8LIBNAME, luaopen_utf8, 1);
    lua_pop(L, 1);
    if (e->grant_io) {
        /* Files, but no shell commands and nothing that waits on stdin. */
        static const char *const io_out[] = {"popen", "read", "input", "stdin"};
        luaL_requiref(L, LUA_IOLIBNAME, luaopen_io, 1);
        drop_fields(L, io_out, ES_ARRAY_LEN(io_out));
        lua_getfield(L, -1, "lines");
        lua_pushcclosure(L, l_io_lines, 1);
        lua_setfield(L, -2, "lines");
        lua_pop(L, 1);
    }
    if (e->grant_os) {
        /* Clocks, dates and the environment; never exit, commands or files. */
        static const char *const os_out[] = {"exit", "execute", "remove", "rename", "tmpname",
                                             "setlocale"};
        luaL_requiref(L, LUA_OSLIBNAME, luaopen_os, 1);
        drop_fields(L, os_out, ES_ARRAY_LEN(os_out));
        lua_pop(L, 1);
    }
    lua_getglobal(L, "setmetatable");
    lua_pushcclosure(L, l_setmetatable, 1);
    lua_setglobal(L, "setmetatable");
    static const char *const removed[] = {"dofile", "loadfile", "collectgarbage", "require"};
    for (size_t i = 0; i < ES_ARRAY_LEN(removed); i++) {
        lua_pushnil(L);
        lua_setglobal(L, removed[i]);
    }
    lua_pushcfunction(L, l_load);
    lua_setglobal(L, "load");
    lua_pushcfunction(L, l_print);
    lua_setglobal(L, "print");
}

/* The `earshot` global: the host's functions, the entry's settings and name. */
static void open_earshot_table(lua_State *L, const es_hook_entry *e)
{
    static const luaL_Reg api[] = {
        {"log", l_log},         {"now", l_now},       {"emit", l_emit},
        {"hmac_sha256", l_hmac_sha256}, {"sha256", l_sha256},
        {"secure_equals", l_secure_equals}, {"banned", l_banned},
        {"ban_id", l_ban_id},   {"ban_address", l_ban_address}, {"muted", l_muted},
        {"mute", l_mute},       {"unmute", l_unmute}, {NULL, NULL},
    };
    luaL_newlib(L, api);
    if (e->settings)
        push_setting(L, e->settings);
    else
        lua_newtable(L);
    lua_setfield(L, -2, "settings");
    lua_pushstring(L, e->name);
    lua_setfield(L, -2, "name");
    lua_setglobal(L, "earshot");
}

/* ---- calling hooks ------------------------------------------------------- */

/*
 * Everything a call does inside the script's state, building the argument
 * tables included, runs under lua_pcall: a script that has filled its memory
 * or booby-trapped a reused table gets a failed call, never an unprotected
 * error that would abort the server. Reused tables are refilled with raw
 * sets, so metatables a script put on them are never consulted.
 */
typedef struct call_ctx {
    es_script *s;
    es_hook_id hook;
    int nres;
    const earshot_join *join;
    const earshot_client *a, *b;
    const earshot_position *pos;
    const earshot_relay *relay;
    int matched;
    const char *leave_reason;
} call_ctx;

static void raw_str(lua_State *L, const char *key, const char *value, size_t len)
{
    lua_pushstring(L, key);
    lua_pushlstring(L, value, len);
    lua_rawset(L, -3);
}

static void raw_int(lua_State *L, const char *key, lua_Integer value)
{
    lua_pushstring(L, key);
    lua_pushinteger(L, value);
    lua_rawset(L, -3);
}

static void raw_position(lua_State *L, const earshot_position *p)
{
    raw_int(L, "game_id", p->game_id);
    raw_int(L, "map_id", p->map_id);
    raw_int(L, "x", p->x);
    raw_int(L, "y", p->y);
    raw_int(L, "channel", p->channel);
}

/* Push the reusable table ref, refilled with client c. */
static void push_client(lua_State *L, int ref, const earshot_client *c)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
    raw_str(L, "client_id", c->client_id, strlen(c->client_id));
    raw_str(L, "address", c->address, strlen(c->address));
    raw_position(L, &c->pos);
}

/* A join is rare: a fresh table each time, so a script may keep it. */
static void push_join(lua_State *L, const earshot_join *j)
{
    lua_createtable(L, 0, 10);
    raw_str(L, "client_id", j->client_id, strlen(j->client_id));
    raw_str(L, "address", j->address, strlen(j->address));
    raw_str(L, "path", j->path, strlen(j->path));
    raw_str(L, "query", j->query, strlen(j->query));
    raw_position(L, &j->pos);
    lua_pushstring(L, "resume");
    lua_pushboolean(L, j->resume);
    lua_rawset(L, -3);
    lua_pushstring(L, "headers");
    lua_createtable(L, 0, (int)j->header_count);
    for (size_t i = 0; i < j->header_count; i++)
        raw_str(L, j->headers[i].name, j->headers[i].value, strlen(j->headers[i].value));
    lua_rawset(L, -3);
}

static void push_relay(lua_State *L, const es_script *s, const earshot_relay *r)
{
    const char *kind = es_relay_kind_names[r->kind];
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->t_relay);
    raw_str(L, "kind", kind, strlen(kind));
    lua_pushstring(L, "sender");
    push_client(L, s->t_a, r->sender);
    lua_rawset(L, -3);
    lua_pushstring(L, "target");
    push_client(L, s->t_b, r->target);
    lua_rawset(L, -3);
    raw_str(L, "payload", r->payload, r->payload_len);
    lua_pushstring(L, "matched");
    lua_pushboolean(L, r->matched);
    lua_rawset(L, -3);
}

/* Push the arguments of cc's hook; returns how many. */
static int push_arguments(lua_State *L, const call_ctx *cc)
{
    const es_script *s = cc->s;
    switch (cc->hook) {
    case ES_HOOK_JOIN:
        push_join(L, cc->join);
        return 1;
    case ES_HOOK_POSITION:
        push_client(L, s->t_a, cc->a);
        lua_rawgeti(L, LUA_REGISTRYINDEX, s->t_pos);
        raw_position(L, cc->pos);
        return 2;
    case ES_HOOK_MATCH:
    case ES_HOOK_PAIR:
        push_client(L, s->t_a, cc->a);
        push_client(L, s->t_b, cc->b);
        lua_pushboolean(L, cc->matched);
        return 3;
    case ES_HOOK_RELAY:
        push_relay(L, s, cc->relay);
        return 1;
    case ES_HOOK_LEAVE:
        push_client(L, s->t_a, cc->a);
        lua_pushstring(L, cc->leave_reason);
        return 2;
    default:
        return 0;
    }
}

static int protected_call(lua_State *L)
{
    call_ctx *cc = lua_touserdata(L, 1);
    lua_settop(L, 0);
    lua_rawgeti(L, LUA_REGISTRYINDEX, cc->s->fn[cc->hook]);
    lua_call(L, push_arguments(L, cc), cc->nres);
    return cc->nres;
}

/*
 * Run the hook described by cc. Returns 0 with cc->nres results on the
 * stack, or -1 (stack as before) after logging and counting the failure.
 */
static int call_hook(call_ctx *cc)
{
    es_script *s = cc->s;
    lua_State *L = s->L;
    const char *fn = es_hook_table[cc->hook].lua_global;
    s->stats.calls++;
    budget_start(s);
    lua_pushcfunction(L, protected_call);
    lua_pushlightuserdata(L, cc);
    int rc = lua_pcall(L, 1, cc->nres, 0);
    if (rc == LUA_OK && !s->stopping)
        return 0;
    if (rc == LUA_ERRMEM) {
        s->stats.memory_stops++;
        ES_WARN(s->module, "%s stopped: memory limit of %zu bytes reached", fn, s->mem_limit);
    } else if (s->stopping) {
        /* Also when the script caught the stop and returned (a tail-called
         * pcall): a stopped call never gives a verdict. */
        s->stats.budget_stops++;
        ES_WARN(s->module, "%s stopped: instruction limit of %lld reached", fn, s->instr_limit);
    } else {
        s->stats.errors++;
        ES_WARN(s->module, "%s failed: %s", fn,
                lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
                                               : "(error object is not a string)");
    }
    lua_pop(L, rc == LUA_OK ? cc->nres : 1);
    if (rc == LUA_ERRMEM)
        lua_gc(L, LUA_GCCOLLECT);
    return -1;
}

/* Read an int32 field of the table at idx into *out (absent: unchanged).
 * Raw access: a metatable on a returned table is never consulted. */
static int read_int32_field(lua_State *L, int idx, const char *field, int32_t *out)
{
    idx = lua_absindex(L, idx);
    lua_pushstring(L, field);
    int t = lua_rawget(L, idx);
    int ok = 1;
    if (t != LUA_TNIL) {
        int isint = 0;
        lua_Integer v = t == LUA_TNUMBER ? lua_tointegerx(L, -1, &isint) : 0;
        if (isint && v >= INT32_MIN && v <= INT32_MAX)
            *out = (int32_t)v;
        else
            ok = 0;
    }
    lua_pop(L, 1);
    return ok;
}

/* Apply the position table at idx to *pos: all of it, or (a bad field)
 * nothing. Returns 1 if applied. */
static int read_position(lua_State *L, int idx, earshot_position *pos)
{
    earshot_position adj = *pos;
    if (!read_int32_field(L, idx, "game_id", &adj.game_id) ||
        !read_int32_field(L, idx, "map_id", &adj.map_id) ||
        !read_int32_field(L, idx, "x", &adj.x) || !read_int32_field(L, idx, "y", &adj.y) ||
        !read_int32_field(L, idx, "channel", &adj.channel))
        return 0;
    *pos = adj;
    return 1;
}

/* Keep the deny reason string at idx, cut to fit at a character boundary. */
static const char *keep_reason(es_script *s, int idx)
{
    size_t len;
    const char *r = lua_tolstring(s->L, idx, &len); /* a string: no conversion */
    size_t keep = es_utf8_prefix(r, strnlen(r, len), sizeof s->reason - 1);
    memcpy(s->reason, r, keep);
    s->reason[keep] = '\0';
    return s->reason;
}

/*
 * Turn the results (value, reason) at the top into *v; pops them. A table
 * is a verdict only for position (pos non-NULL): the adjusted position, which
 * passes. Returns NULL, or what the hook should have returned.
 */
static const char *read_verdict(es_script *s, earshot_position *pos, earshot_verdict *v,
                                const char **reason)
{
    lua_State *L = s->L;
    int t = lua_type(L, -2);
    const char *bad = NULL;
    if (t == LUA_TNIL) {
        *v = EARSHOT_PASS;
    } else if (t == LUA_TBOOLEAN) {
        *v = lua_toboolean(L, -2) ? EARSHOT_ALLOW : EARSHOT_DENY;
        if (*v == EARSHOT_DENY && reason && lua_type(L, -1) == LUA_TSTRING)
            *reason = keep_reason(s, -1);
    } else if (t == LUA_TTABLE && pos) {
        *v = EARSHOT_PASS;
        if (!read_position(L, -2, pos))
            bad = "a position with int32 fields";
    } else {
        bad = pos ? "nil, true, false or a position table" : "nil, true or false";
    }
    lua_pop(L, 2);
    return bad;
}

/* The entry's on_error choice for a verdict hook that failed. */
static earshot_verdict on_error(es_script *s, es_hook_id hook, const char **reason)
{
    if (!s->deny_on_error[hook])
        return EARSHOT_PASS;
    snprintf(s->reason, sizeof s->reason, "internal error");
    if (reason)
        *reason = s->reason;
    return EARSHOT_DENY;
}

/* Call the verdict hook of cc and return its verdict; a failed call or
 * something else than a verdict is answered by on_error. */
static earshot_verdict call_verdict(call_ctx *cc, earshot_position *pos, const char **reason)
{
    es_script *s = cc->s;
    cc->nres = 2;
    if (call_hook(cc) == 0) {
        earshot_verdict v;
        const char *expected = read_verdict(s, pos, &v, reason);
        if (!expected)
            return v;
        s->stats.errors++;
        ES_WARN(s->module, "%s returned something else than %s",
                es_hook_table[cc->hook].lua_global, expected);
    }
    return on_error(s, cc->hook, reason);
}

static earshot_verdict lua_on_join(void *state, const earshot_join *j, const char **reason)
{
    call_ctx cc = {.s = state, .hook = ES_HOOK_JOIN, .join = j};
    return call_verdict(&cc, NULL, reason);
}

static earshot_verdict lua_on_position(void *state, const earshot_client *c, earshot_position *pos,
                                       const char **reason)
{
    call_ctx cc = {.s = state, .hook = ES_HOOK_POSITION, .a = c, .pos = pos};
    return call_verdict(&cc, pos, reason);
}

static earshot_verdict lua_match(void *state, const earshot_client *a, const earshot_client *b,
                                 int matched)
{
    call_ctx cc = {.s = state, .hook = ES_HOOK_MATCH, .a = a, .b = b, .matched = matched};
    return call_verdict(&cc, NULL, NULL);
}

static earshot_verdict lua_on_relay(void *state, const earshot_relay *r, const char **reason)
{
    call_ctx cc = {.s = state, .hook = ES_HOOK_RELAY, .relay = r};
    return call_verdict(&cc, NULL, reason);
}

static void lua_on_leave(void *state, const earshot_client *c, earshot_leave_reason why)
{
    call_ctx cc = {.s = state, .hook = ES_HOOK_LEAVE, .a = c,
                   .leave_reason = (unsigned)why < ES_LEAVE_REASON_COUNT
                                       ? es_leave_reason_names[why]
                                       : es_leave_reason_names[EARSHOT_LEAVE_CLOSED]};
    call_hook(&cc);
}

static void lua_on_pair(void *state, const earshot_client *a, const earshot_client *b, int matched)
{
    call_ctx cc = {.s = state, .hook = ES_HOOK_PAIR, .a = a, .b = b, .matched = matched};
    call_hook(&cc);
}

static void lua_on_tick(void *state)
{
    call_ctx cc = {.s = state, .hook = ES_HOOK_TICK};
    call_hook(&cc);
}

static int64_t lua_query_radius(void *state) { return ((es_script *)state)->radius; }

static void script_free(es_script *s)
{
    if (s->L)
        lua_close(s->L);
    free(s->name);
    free(s->path);
    free(s);
}

static void lua_destroy(void *state) { script_free(state); }

/* ---- loading ------------------------------------------------------------- */

/* A script for entry e, with no Lua state yet. */
static es_script *script_new(const es_hook_entry *e)
{
    es_script *s = es_xcalloc(1, sizeof *s);
    s->name = es_xstrdup(e->name);
    s->path = es_xstrdup(e->path);
    snprintf(s->module, sizeof s->module, "lua %s", e->name);
    s->mem_limit = (size_t)e->memory_limit;
    s->instr_limit = e->instruction_limit;
    memcpy(s->deny_on_error, e->deny_on_error, sizeof s->deny_on_error);
    for (int i = 0; i < ES_HOOK_COUNT; i++)
        s->fn[i] = LUA_NOREF;
    return s;
}

/* Create the script's state: its allocator, its count hook, the sandbox. */
static int create_state(es_script *s, const es_hook_entry *e)
{
    s->L = lua_newstate(script_alloc, s);
    if (!s->L)
        return -1;
    *(es_script **)lua_getextraspace(s->L) = s;
    lua_sethook(s->L, count_hook, LUA_MASKCOUNT, STEP);
    s->setup = 1;
    open_libraries(s->L, e);
    open_earshot_table(s->L, e);
    s->setup = 0;
    return 0;
}

/* Compile the file (text only) and run its main chunk under the limits. */
static int run_main_chunk(es_script *s, const char *where, char *err, size_t errlen)
{
    lua_State *L = s->L;
    int rc = luaL_loadfilex(L, s->path, "t");
    if (rc == LUA_ERRFILE) {
        snprintf(err, errlen, "%scannot read script '%s' (%s)", where, s->name, s->path);
        return -1;
    }
    if (rc == LUA_OK) {
        budget_start(s);
        rc = lua_pcall(L, 0, 0, 0);
    }
    if (rc != LUA_OK) {
        const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        snprintf(err, errlen, "%sscript '%s' failed to load: %s", where, s->name,
                 s->stopping ? "instruction limit exceeded while loading"
                 : rc == LUA_ERRMEM ? "memory limit exceeded while loading"
                 : msg ? msg : "unknown error");
        return -1;
    }
    return 0;
}

/* Push the global `name`, read raw (the script may have set a metatable on
 * _G); returns its type. */
static int raw_global(lua_State *L, const char *name)
{
    lua_pushglobaltable(L);
    lua_pushstring(L, name);
    int t = lua_rawget(L, -2);
    lua_remove(L, -2);
    return t;
}

/* Keep a reference to every hook function the script defines; at least one. */
static int find_hook_functions(es_script *s, const char *where, char *err, size_t errlen)
{
    lua_State *L = s->L;
    int any = 0;
    for (int i = 0; i < ES_HOOK_COUNT; i++) {
        const char *fn = es_hook_table[i].lua_global;
        int t = raw_global(L, fn);
        if (t == LUA_TFUNCTION) {
            s->fn[i] = luaL_ref(L, LUA_REGISTRYINDEX);
            any = 1;
            continue;
        }
        lua_pop(L, 1);
        if (t != LUA_TNIL) {
            snprintf(err, errlen, "%sscript '%s': %s must be a function", where, s->name, fn);
            return -1;
        }
    }
    if (!any) {
        int n = snprintf(err, errlen, "%sscript '%s' defines none of ", where, s->name);
        for (int i = 0; i < ES_HOOK_COUNT && n >= 0 && (size_t)n < errlen; i++)
            n += snprintf(err + n, errlen - (size_t)n, "%s%s", i ? ", " : "",
                          es_hook_table[i].lua_global);
        return -1;
    }
    return 0;
}

/* The global query_radius, read at load: 0 when absent, -1 (with err) when
 * it is not an integer from 0 to 2^32. */
static int64_t read_query_radius(es_script *s, const char *where, char *err, size_t errlen)
{
    lua_State *L = s->L;
    if (raw_global(L, "query_radius") == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    int isint;
    lua_Integer v = lua_tointegerx(L, -1, &isint);
    lua_pop(L, 1);
    if (!isint || v < 0 || v > (INT64_C(1) << 32)) {
        snprintf(err, errlen, "%sscript '%s': query_radius must be an integer from 0 to 2^32",
                 where, s->name);
        return -1;
    }
    return v;
}

/* The global tick_interval, read at load: 0 when absent (one second),
 * -1 (with err) when it is not a number from 0.1 to 86400. */
static double read_tick_interval(es_script *s, const char *where, char *err, size_t errlen)
{
    lua_State *L = s->L;
    if (raw_global(L, "tick_interval") == LUA_TNIL) {
        lua_pop(L, 1);
        return 0.0;
    }
    int isnum;
    lua_Number v = lua_tonumberx(L, -1, &isnum);
    lua_pop(L, 1);
    if (!isnum || !(v >= 0.1 && v <= 86400.0)) {
        snprintf(err, errlen, "%sscript '%s': tick_interval must be a number of seconds from 0.1 "
                 "to 86400", where, s->name);
        return -1.0;
    }
    return v;
}

static int new_table_ref(lua_State *L, int narr, int nrec)
{
    lua_createtable(L, narr, nrec);
    return luaL_ref(L, LUA_REGISTRYINDEX);
}

/* Once loaded: the reused argument tables, and a guard on new globals;
 * the memory limit holds again from here on. */
static void finish_state(es_script *s)
{
    lua_State *L = s->L;
    s->t_a = new_table_ref(L, 0, 7);
    s->t_b = new_table_ref(L, 0, 7);
    s->t_pos = new_table_ref(L, 0, 5);
    s->t_relay = new_table_ref(L, 0, 5);

    /* From here on, a new global is a bug in the script: say so. */
    lua_pushglobaltable(L);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, guard_global);
    lua_setfield(L, -2, "__newindex");
    lua_setmetatable(L, -2);
    lua_pop(L, 1);
    s->setup = 0;
}

/* The descriptor the chains call: a hook for each function the script has. */
static void describe(es_script *s)
{
    s->desc = (earshot_plugin){
        .api_version = EARSHOT_PLUGIN_API_VERSION,
        .struct_size = sizeof(earshot_plugin),
        .name = s->name,
        .version = "lua",
        .description = s->path,
        .destroy = lua_destroy,
        .query_radius = lua_query_radius,
    };
#define HOOK_IF_DEFINED(id, member, call) s->desc.member = s->fn[id] != LUA_NOREF ? call : NULL
    HOOK_IF_DEFINED(ES_HOOK_JOIN, on_join, lua_on_join);
    HOOK_IF_DEFINED(ES_HOOK_POSITION, on_position, lua_on_position);
    HOOK_IF_DEFINED(ES_HOOK_MATCH, match_filter, lua_match);
    HOOK_IF_DEFINED(ES_HOOK_RELAY, on_relay, lua_on_relay);
    HOOK_IF_DEFINED(ES_HOOK_LEAVE, on_leave, lua_on_leave);
    HOOK_IF_DEFINED(ES_HOOK_PAIR, on_pair, lua_on_pair);
    HOOK_IF_DEFINED(ES_HOOK_TICK, on_tick, lua_on_tick);
#undef HOOK_IF_DEFINED
    s->desc.tick_interval = s->tick_interval;
}

int es_lua_open(const es_hook_entry *e, es_link *link, char *err, size_t errlen)
{
    char where[512];
    snprintf(where, sizeof where, "%s:%d: ", e->file, e->line);
    es_script *s = script_new(e);
    if (create_state(s, e) != 0) {
        snprintf(err, errlen, "%sscript '%s': cannot create a Lua state", where, e->name);
        script_free(s);
        return -1;
    }
    if (run_main_chunk(s, where, err, errlen) != 0) {
        script_free(s);
        return -1;
    }
    s->setup = 1; /* the host's own allocations from here on */
    int64_t radius = -1;
    if (find_hook_functions(s, where, err, errlen) != 0 ||
        (radius = read_query_radius(s, where, err, errlen)) < 0 ||
        (s->tick_interval = read_tick_interval(s, where, err, errlen)) < 0) {
        script_free(s);
        return -1;
    }
    s->radius = radius;
    finish_state(s);
    describe(s);
    link->desc = &s->desc;
    link->state = s;
    link->initialised = 1;
    link->query_radius = radius;
    return 0;
}

const es_lua_stats *es_lua_link_stats(const es_link *link)
{
    if (!link->desc || link->desc->destroy != lua_destroy)
        return NULL;
    es_script *s = link->state;
    s->stats.memory_bytes = s->mem_used;
    return &s->stats;
}
