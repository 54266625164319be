/* config.c - the settings table and its four layers; see config.h. */
#include "base/config.h"

#include "base/ini_file.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#ifndef TG_VERSION
#define TG_VERSION "0.1.0"
#endif
#ifndef TG_WEB_DIR
#define TG_WEB_DIR "web"
#endif

extern char **environ;

enum ktype { K_STR, K_INT, K_LONG, K_BOOL, K_ENUM, K_PATH, K_SECRET, K_DOUBLE };

struct key {
    const char *section;
    const char *name;
    enum ktype type;
    size_t off;          /* offset of the field in struct config */
    const char *def;     /* default, parsed like any other value */
    long min, max;       /* integer bounds */
    const char *choices; /* K_ENUM: "a|b|c", index stored as int */
    const char *help;
};

#define F(f) offsetof(struct config, f)

static const struct key KEYS[] = {
    {"server", "listen", K_STR, F(server.listen), "127.0.0.1:8080", 0, 0, NULL,
     "HOST:PORT to listen on; port 0 picks a free port (printed at start)"},
    {"server", "tls_listen", K_STR, F(server.tls_listen), "", 0, 0, NULL,
     "HOST:PORT of a second listener serving every endpoint over TLS (wss://, https://); empty = off; port 0 picks a "
     "free port"},
    {"server", "tls_cert", K_STR, F(server.tls_cert), "", 0, 0, NULL,
     "PEM certificate (chain) for tls_listen; reloaded on SIGHUP"},
    {"server", "tls_key", K_STR, F(server.tls_key), "", 0, 0, NULL,
     "PEM private key (unencrypted) for tls_listen; reloaded on SIGHUP; never logged"},
    {"server", "workers", K_INT, F(server.workers), "0", 0, 256, NULL,
     "worker threads, each with its own event loop; 0 = one per core"},
    {"server", "ws_path", K_PATH, F(server.ws_path), "/ws", 0, 0, NULL,
     "path of the JSON WebSocket endpoint"},
    {"server", "echo_path", K_PATH, F(server.echo_path), "", 0, 0, NULL,
     "path of a plain RFC 6455 echo endpoint for conformance tests; empty = off"},
    {"server", "static_dir", K_STR, F(server.static_dir), TG_WEB_DIR, 0, 0, NULL,
     "directory the demo page at / is served from"},
    {"server", "allowed_origins", K_STR, F(server.allowed_origins), "", 0, 0, NULL,
     "comma-separated Origins allowed to upgrade (403 otherwise); empty = any"},
    {"server", "trusted_proxies", K_STR, F(server.trusted_proxies), "", 0, 0, NULL,
     "comma-separated CIDRs of proxies whose X-Forwarded-For names the client (right-most untrusted address)"},
    {"server", "handshake_timeout_ms", K_INT, F(server.handshake_timeout_ms), "5000", 100, 600000, NULL,
     "a request (and a WebSocket handshake) must complete within this, or the socket is closed"},
    {"server", "keepalive_max_s", K_INT, F(server.keepalive_max_s), "60", 1, 86400, NULL,
     "longest life of a plain HTTP keep-alive connection, however busy; the answer after it closes it"},
    {"server", "shutdown_grace_ms", K_INT, F(server.shutdown_grace_ms), "5000", 0, 600000, NULL,
     "on SIGTERM/SIGINT, longest wait for clients to close before exiting"},
    {"server", "max_http_body_bytes", K_LONG, F(server.max_http_body_bytes), "1048576", 0, 1L << 30, NULL,
     "largest HTTP request body; larger gets 413"},
    {"server", "metrics_token", K_SECRET, F(server.metrics_token), "", 0, 0, NULL,
     "when set, /metrics needs Authorization: Bearer <this token> (401 otherwise); empty = open"},
    {"log", "level", K_ENUM, F(log.level), "info", 0, 0, "debug|info|warn|error",
     "lowest level of the lines written to stderr; reloaded on SIGHUP"},
    {"log", "format", K_ENUM, F(log.format), "text", 0, 0, "text|json",
     "text lines, or one JSON object a line (ts, level, msg, fields) for a log collector"},
    {"auth", "jwt_secret", K_SECRET, F(auth.jwt_secret), "", 0, 0, NULL,
     "HS256 shared secret (at least 32 bytes); empty = JWTs refused unless jwt_secret_file is set"},
    {"auth", "jwt_secret_file", K_STR, F(auth.jwt_secret_file), "", 0, 0, NULL,
     "file whose content (trailing newline trimmed) is the HS256 secret"},
    {"auth", "jwt_algorithms", K_STR, F(auth.jwt_algorithms), "HS256", 0, 0, NULL,
     "accepted JWT algorithms, comma-separated; alg none is never accepted"},
    {"auth", "jwt_public_key_file", K_STR, F(auth.jwt_public_key_file), "", 0, 0, NULL,
     "PEM public key (RSA for RS256, P-256 for ES256)"},
    {"auth", "jwt_issuer", K_STR, F(auth.jwt_issuer), "", 0, 0, NULL, "required iss claim when set"},
    {"auth", "jwt_audience", K_STR, F(auth.jwt_audience), "", 0, 0, NULL, "required aud claim when set"},
    {"auth", "jwt_leeway_s", K_INT, F(auth.jwt_leeway_s), "30", 0, 3600, NULL,
     "clock leeway in seconds for exp, nbf and iat"},
    {"auth", "users_file", K_STR, F(auth.users_file), "", 0, 0, NULL,
     "users JSON (roles, active flag, SHA-256 API keys), reloaded on SIGHUP; empty = none"},
    {"auth", "allow_anonymous", K_BOOL, F(auth.allow_anonymous), "true", 0, 0, NULL,
     "accept connections without credentials as role anonymous"},
    {"auth", "anonymous_symbols", K_STR, F(auth.anonymous_symbols), "", 0, 0, NULL,
     "symbols anonymous clients may receive: comma list of SYMBOL, PREFIX* or *; empty = every symbol"},
    {"auth", "jwks_file", K_STR, F(auth.jwks_file), "", 0, 0, NULL,
     "JWK Set (oct, RSA, EC P-256, OKP Ed25519 keys with kid) verifying JWTs, re-read on SIGHUP; empty = none"},
    {"limits", "max_connections", K_LONG, F(limits.max_connections), "100000", 1, 100000000, NULL,
     "WebSocket connections this node holds at once; beyond: 503"},
    {"limits", "max_connections_per_ip", K_INT, F(limits.max_connections_per_ip), "10", 1, 100000000, NULL,
     "WebSocket connections from one client IP; beyond: 429 with Retry-After"},
    {"limits", "max_connections_per_user", K_INT, F(limits.max_connections_per_user), "5", 1, 100000000, NULL,
     "WebSocket connections of one authenticated user; beyond: 429 with Retry-After"},
    {"limits", "max_connects_per_ip_per_minute", K_INT, F(limits.max_connects_per_ip_per_minute), "600", 1,
     100000000, NULL, "WebSocket handshakes one client IP may start per minute (bucket, burst = this); beyond: 429"},
    {"limits", "ipv6_prefix_len", K_INT, F(limits.ipv6_prefix_len), "64", 32, 128, NULL,
     "an IPv6 client counts as its /N for per-IP limits, budgets, violations and blocks (one site holds a /64)"},
    {"limits", "max_message_bytes", K_LONG, F(limits.max_message_bytes), "65536", 125, 64L << 20, NULL,
     "largest client message after reassembly of fragments; beyond: close 1009"},
    {"limits", "max_subscriptions_per_client", K_INT, F(limits.max_subscriptions_per_client), "100", 1,
     CONFIG_MAX_SUBSCRIPTIONS, NULL, "symbols one client may watch (roles other than viewer and anonymous)"},
    {"limits", "viewer_max_symbols", K_INT, F(limits.viewer_max_symbols), "10", 0, CONFIG_MAX_SUBSCRIPTIONS, NULL,
     "symbols a viewer may watch"},
    {"limits", "anonymous_max_symbols", K_INT, F(limits.anonymous_max_symbols), "3", 0, CONFIG_MAX_SUBSCRIPTIONS, NULL,
     "symbols an anonymous client may watch"},
    {"limits", "max_messages_per_minute", K_INT, F(limits.max_messages_per_minute), "60", 1, 100000000, NULL,
     "client messages per minute (token bucket, burst = this); beyond: error rate_limited"},
    {"limits", "max_outbound_bytes", K_LONG, F(limits.max_outbound_bytes), "1048576", 4096, 1L << 30, NULL,
     "bytes queued for one client before the slow-consumer policy applies"},
    {"limits", "slow_consumer", K_ENUM, F(limits.slow_consumer), "conflate", 0, 0, "conflate|disconnect",
     "over max_outbound_bytes: keep only the newest update per symbol, or close 1013"},
    {"limits", "shed_after_ms", K_INT, F(limits.shed_after_ms), "100", 0, 60000, NULL,
     "a worker behind by this much skips a tick whose symbol already has a newer one queued (0 = never)"},
    {"limits", "heartbeat_interval_s", K_INT, F(limits.heartbeat_interval_s), "30", 1, 86400, NULL,
     "seconds between server pings"},
    {"limits", "heartbeat_timeout_s", K_INT, F(limits.heartbeat_timeout_s), "90", 1, 86400, NULL,
     "a client silent this long is closed with 4000"},
    {"limits", "sweep_interval_s", K_INT, F(limits.sweep_interval_s), "5", 1, 3600, NULL,
     "seconds between sweeper runs (token expiry); pings and heartbeat timeouts keep their own clock"},
    {"ws", "compression", K_ENUM, F(ws.compression), "on", 0, 0, "off|on",
     "permessage-deflate (RFC 7692) for clients that offer it; each shared frame is compressed once"},
    {"ws", "compression_min_bytes", K_LONG, F(ws.compression_min_bytes), "256", 0, 64L << 20, NULL,
     "messages shorter than this go uncompressed (RSV1 clear)"},
    {"trade", "paper", K_BOOL, F(trade.paper), "true", 0, 0, NULL,
     "built-in paper broker: fills market orders at the last price, limit orders when a tick crosses"},
    {"trade", "paper_cash", K_DOUBLE, F(trade.paper_cash), "1000000", 0, 0, NULL,
     "starting cash of each user's paper portfolio"},
    {"trade", "max_open_orders", K_INT, F(trade.max_open_orders), "100", 1, 100000, NULL,
     "limit orders one user may have open in the paper broker; beyond: trade_rejected too_many_open_orders"},
    {"security", "auto_block_s", K_INT, F(security.auto_block_s), "300", 1, 31536000, NULL,
     "seconds an IP stays blocked after reaching threat level critical"},
    {"security", "medium_violations", K_INT, F(security.medium_violations), "3", 1, CONFIG_MAX_VIOLATIONS, NULL,
     "violations that raise a connection's threat level to medium"},
    {"security", "high_violations", K_INT, F(security.high_violations), "6", 1, CONFIG_MAX_VIOLATIONS, NULL,
     "violations that raise a connection's threat level to high: close 1008"},
    {"security", "critical_violations", K_INT, F(security.critical_violations), "10", 1, 1000000, NULL,
     "violations from one IP within critical_window_s that block the IP"},
    {"security", "critical_window_s", K_INT, F(security.critical_window_s), "600", 1, 86400, NULL,
     "window for critical_violations, seconds"},
    {"security", "blocked_ips", K_STR, F(security.blocked_ips), "", 0, 0, NULL,
     "comma-separated IPs refused from start (until unblocked through the admin API)"},
    {"security", "blocks_file", K_STR, F(security.blocks_file), "blocked_ips.state", 0, 0, NULL,
     "file keeping the admin API's IP blocks across restarts (rewritten atomically); empty = not kept"},
    {"security", "suspicious_content", K_BOOL, F(security.suspicious_content), "true", 0, 0, NULL,
     "refuse client strings with script-injection patterns (error suspicious_content)"},
    {"redis", "url", K_STR, F(redis.url), "", 0, 0, NULL,
     "redis://[:password@]host:port/db of the engine for persistence and many nodes; empty = off"},
    {"redis", "sentinels", K_STR, F(redis.sentinels), "", 0, 0, NULL,
     "comma-separated HOST:PORT of Redis Sentinels that name the primary (with sentinel_master); redis.url then "
     "gives only the password and db"},
    {"redis", "sentinel_master", K_STR, F(redis.sentinel_master), "", 0, 0, NULL,
     "the primary's name at the sentinels (sentinel monitor <name> ...); set with sentinels"},
    {"redis", "cluster", K_BOOL, F(redis.cluster), "false", 0, 0, NULL,
     "redis.url names any node of a Redis Cluster (7.0+): keys spread over its shards by symbol, channels on "
     "sharded pub/sub"},
    {"redis", "key_prefix", K_STR, F(redis.key_prefix), "websocket:", 0, 0, NULL,
     "prefix of every Redis key and channel"},
    {"redis", "node_ttl_s", K_INT, F(redis.node_ttl_s), "15", 2, 3600, NULL,
     "TTL of this node's liveness key; a dead node's entries are removed after it"},
    {"redis", "reconnect_max_ms", K_INT, F(redis.reconnect_max_ms), "5000", 100, 600000, NULL,
     "longest wait between reconnect attempts (exponential backoff)"},
    {"redis", "timeout_ms", K_INT, F(redis.timeout_ms), "3000", 100, 600000, NULL,
     "a link with work outstanding and no answer for this long is stalled: dropped, node serves locally"},
    {"redis", "max_inflight", K_INT, F(redis.max_inflight), "10000", 1, 1000000, NULL,
     "ticks awaiting Redis's answer; one more and the link is treated as stalled"},
    {"audit", "path", K_STR, F(audit.path), "audit.log", 0, 0, NULL,
     "audit log file (JSON lines, appended); empty = off"},
    {"audit", "queue", K_INT, F(audit.queue), "65536", 16, 16777216, NULL,
     "audit events buffered for the writer thread; beyond: dropped and counted"},
    {"feed", "simulator", K_BOOL, F(feed.simulator), "true", 0, 0, NULL,
     "run the built-in seeded random-walk price simulator"},
    {"feed", "sim_ticks_per_s", K_INT, F(feed.sim_ticks_per_s), "50", 1, 1000000, NULL,
     "simulator ticks per second in total, spread over the symbols someone watches"},
    {"feed", "sim_seed", K_LONG, F(feed.sim_seed), "42", 0, 0x7fffffffL, NULL, "simulator seed"},
    {"feed", "history_size", K_INT, F(feed.history_size), "1000", 1, 1000000, NULL,
     "ticks kept per symbol (ring buffer) for get_history and analysis"},
    {"feed", "delay_s", K_INT, F(feed.delay_s), "900", 1, 86400, NULL,
     "delayed data (delayed_symbols): each tick is sent this long after its source timestamp"},
    {"feed", "delay_resolution_ms", K_INT, F(feed.delay_resolution_ms), "100", 1, 60000, NULL,
     "a delay line keeps the newest tick per slot of this many ms (bounds its memory)"},
    {"feed", "symbols_file", K_STR, F(feed.symbols_file), "", 0, 0, NULL,
     "symbol universe, one SYMBOL or SYMBOL,start_price a line; empty = about 100 built-in tickers"},
    {"roles", "super_admin", K_STR, F(roles.super_admin), "all", 0, 0, NULL, "actions of role super_admin"},
    {"roles", "admin", K_STR, F(roles.admin), "base,admin_broadcast", 0, 0, NULL, "actions of role admin"},
    {"roles", "analyst", K_STR, F(roles.analyst), "base,analysis", 0, 0, NULL, "actions of role analyst"},
    {"roles", "trader", K_STR, F(roles.trader), "base,portfolio,trade", 0, 0, NULL, "actions of role trader"},
    {"roles", "viewer", K_STR, F(roles.viewer), "base,data", 0, 0, NULL, "actions of role viewer"},
    {"roles", "publisher", K_STR, F(roles.publisher), "heartbeat,publish", 0, 0, NULL, "actions of role publisher"},
    {"roles", "anonymous", K_STR, F(roles.anonymous), "heartbeat,authenticate,subscribe,unsubscribe,set_options", 0,
     0, NULL, "actions of role anonymous (base = heartbeat,authenticate,subscribe,unsubscribe,set_options)"},
#define THROTTLE_KEY(r)                                                                                          \
    {"throttle", #r, K_INT, F(throttle.r), "0", 0, 1000, NULL,                                                   \
     "most price updates per second per symbol for role " #r " (newest, trailing one kept); 0 = unlimited"}
    THROTTLE_KEY(super_admin), THROTTLE_KEY(admin), THROTTLE_KEY(analyst), THROTTLE_KEY(trader),
    THROTTLE_KEY(viewer), THROTTLE_KEY(publisher), THROTTLE_KEY(anonymous),
#undef THROTTLE_KEY
};

#define NKEYS (sizeof(KEYS) / sizeof(KEYS[0]))

static const struct key *find_key(const char *section, const char *name) {
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(KEYS[i].section, section) == 0 && strcmp(KEYS[i].name, name) == 0)
            return &KEYS[i];
    return NULL;
}

static bool section_known(const char *section, size_t len) {
    for (size_t i = 0; i < NKEYS; i++)
        if (strlen(KEYS[i].section) == len && strncmp(KEYS[i].section, section, len) == 0)
            return true;
    return false;
}

static bool parse_long(const char *v, long *out) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end != '\0')
        return false;
    *out = x;
    return true;
}

/* Sets key k from text v. origin names the layer for messages. */
static int set_value(struct config *cfg, const struct key *k, const char *v, const char *origin, FILE *err) {
    char *field = (char *)cfg + k->off;
    long x;
    switch (k->type) {
    case K_PATH:
        if (v[0] != '\0' && v[0] != '/') {
            fprintf(err, "tickgate: %s.%s (%s): '%s' must be empty or start with '/'\n", k->section, k->name, origin, v);
            return -1;
        }
        /* fall through */
    case K_SECRET:
    case K_STR: {
        char *copy = strdup(v);
        if (!copy)
            return -1;
        free(*(char **)field);
        *(char **)field = copy;
        return 0;
    }
    case K_INT:
    case K_LONG:
        if (!parse_long(v, &x) || x < k->min || x > k->max) {
            fprintf(err, "tickgate: %s.%s (%s): '%s' is not an integer in %ld..%ld\n", k->section, k->name, origin, v,
                    k->min, k->max);
            return -1;
        }
        if (k->type == K_INT)
            *(int *)field = (int)x;
        else
            *(long *)field = x;
        return 0;
    case K_DOUBLE: {
        char *end;
        errno = 0;
        double d = strtod(v, &end);
        if (errno || end == v || *end || !(d >= 0 && d <= 1e15)) {
            fprintf(err, "tickgate: %s.%s (%s): '%s' is not a number in 0..1e15\n", k->section, k->name, origin, v);
            return -1;
        }
        *(double *)field = d;
        return 0;
    }
    case K_BOOL:
        if (!strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "yes") || !strcasecmp(v, "on"))
            *(bool *)field = true;
        else if (!strcasecmp(v, "false") || !strcmp(v, "0") || !strcasecmp(v, "no") || !strcasecmp(v, "off"))
            *(bool *)field = false;
        else {
            fprintf(err, "tickgate: %s.%s (%s): '%s' is not a boolean (true/false)\n", k->section, k->name, origin, v);
            return -1;
        }
        return 0;
    case K_ENUM: {
        int idx = 0;
        const char *c = k->choices;
        size_t vl = strlen(v);
        while (*c) {
            const char *bar = strchr(c, '|');
            size_t cl = bar ? (size_t)(bar - c) : strlen(c);
            if (cl == vl && strncmp(c, v, vl) == 0) {
                *(int *)field = idx;
                return 0;
            }
            idx++;
            c += cl + (bar ? 1 : 0);
        }
        fprintf(err, "tickgate: %s.%s (%s): '%s' is not one of %s\n", k->section, k->name, origin, v, k->choices);
        return -1;
    }
    }
    return -1;
}

struct file_ctx {
    struct config *cfg;
    FILE *err;
    const char *path;
};

static int on_ini(void *user, const char *section, const char *name, const char *value, int line) {
    struct file_ctx *fc = user;
    const struct key *k = find_key(section, name);
    char origin[512];
    snprintf(origin, sizeof(origin), "%s:%d", fc->path, line);
    if (!k) {
        fprintf(fc->err, "tickgate: %s: unknown key %s.%s (see --help)\n", origin, section, name);
        return -1;
    }
    return set_value(fc->cfg, k, value, origin, fc->err);
}

static void env_name(const struct key *k, char *out, size_t n) {
    snprintf(out, n, "TICKGATE_%s_%s", k->section, k->name);
    for (char *p = out; *p; p++)
        if (*p >= 'a' && *p <= 'z')
            *p = (char)(*p - 'a' + 'A');
}

/* Rejects TICKGATE_<SECTION>_* variables that name no key, so a typo in a
 * deployment's environment is an error instead of a silent default. */
static int check_env_unknown(FILE *err) {
    for (char **e = environ; *e; e++) {
        if (strncmp(*e, "TICKGATE_", 9) != 0)
            continue;
        const char *eq = strchr(*e, '=');
        size_t nl = eq ? (size_t)(eq - *e) : strlen(*e);
        bool known = false;
        for (size_t i = 0; i < NKEYS && !known; i++) {
            char name[128];
            env_name(&KEYS[i], name, sizeof(name));
            known = strlen(name) == nl && strncmp(name, *e, nl) == 0;
        }
        if (known)
            continue;
        const char *sec = *e + 9;
        const char *us = memchr(sec, '_', nl - 9);
        if (!us)
            continue;
        char lower[64];
        size_t sl = (size_t)(us - sec);
        if (sl >= sizeof(lower))
            continue;
        for (size_t i = 0; i < sl; i++)
            lower[i] = (char)(sec[i] >= 'A' && sec[i] <= 'Z' ? sec[i] - 'A' + 'a' : sec[i]);
        if (section_known(lower, sl)) {
            fprintf(err, "tickgate: unknown setting %.*s in the environment\n", (int)nl, *e);
            return -1;
        }
    }
    return 0;
}

bool config_key_doc(size_t i, struct config_key_doc *d) {
    if (i >= NKEYS)
        return false;
    const struct key *k = &KEYS[i];
    *d = (struct config_key_doc){k->section, k->name, k->def, k->help, k->choices, k->type == K_SECRET};
    return true;
}

bool config_key_same(const struct config *a, const struct config *b, size_t i) {
    const struct key *k = &KEYS[i];
    const char *fa = (const char *)a + k->off, *fb = (const char *)b + k->off;
    switch (k->type) {
    case K_STR:
    case K_PATH:
    case K_SECRET:
        return strcmp(*(char *const *)fa, *(char *const *)fb) == 0;
    case K_INT:
    case K_ENUM:
        return *(const int *)fa == *(const int *)fb;
    case K_LONG:
        return *(const long *)fa == *(const long *)fb;
    case K_BOOL:
        return *(const bool *)fa == *(const bool *)fb;
    case K_DOUBLE:
        return *(const double *)fa == *(const double *)fb;
    }
    return false;
}

void config_free(struct config *cfg) {
    for (size_t i = 0; i < NKEYS; i++)
        if (KEYS[i].type == K_STR || KEYS[i].type == K_PATH || KEYS[i].type == K_SECRET) {
            char **f = (char **)((char *)cfg + KEYS[i].off);
            free(*f);
            *f = NULL;
        }
}

/* Applies one "--section.key=value" argument. */
static int apply_flag(struct config *cfg, const char *arg, FILE *err) {
    const char *kv = arg + 2;
    const char *eq = strchr(kv, '=');
    const char *dot = strchr(kv, '.');
    /* Messages show the key part only: the value may be a secret. */
    int keylen = eq ? (int)(eq - arg) : (int)strlen(arg);
    if (!eq && dot) {
        fprintf(err, "tickgate: %s needs a value: write %s=VALUE (see --help)\n", arg, arg);
        return -1;
    }
    if (!eq || !dot || dot > eq) {
        fprintf(err, "tickgate: bad argument '%.*s' (expected --section.key=value; see --help)\n", keylen, arg);
        return -1;
    }
    char section[64], name[64];
    size_t sl = (size_t)(dot - kv), nl = (size_t)(eq - dot - 1);
    if (sl >= sizeof(section) || nl >= sizeof(name)) {
        fprintf(err, "tickgate: unknown key in '%.*s'\n", keylen, arg);
        return -1;
    }
    memcpy(section, kv, sl);
    section[sl] = '\0';
    memcpy(name, dot + 1, nl);
    name[nl] = '\0';
    const struct key *k = find_key(section, name);
    if (!k) {
        fprintf(err, "tickgate: unknown key %s.%s on the command line (see --help)\n", section, name);
        return -1;
    }
    return set_value(cfg, k, eq + 1, "command line", err);
}

/* Relations between keys that each passed their own bounds. 0, or -1
 * after naming the key to change. */
static int check_relations(const struct config *cfg, FILE *err) {
    if (!cfg->server.static_dir[0]) { /* "" + "/etc/passwd" would serve the whole file system */
        fprintf(err, "tickgate: server.static_dir: must name a directory\n");
        return -1;
    }
    if (cfg->limits.heartbeat_timeout_s < cfg->limits.heartbeat_interval_s) {
        fprintf(err,
                "tickgate: limits.heartbeat_timeout_s: %d is less than limits.heartbeat_interval_s (%d): "
                "clients would time out before they are pinged\n",
                cfg->limits.heartbeat_timeout_s, cfg->limits.heartbeat_interval_s);
        return -1;
    }
    if (!cfg->redis.sentinels[0] != !cfg->redis.sentinel_master[0]) {
        fprintf(err, "tickgate: redis.%s: needs redis.%s too (Sentinel needs both, or neither)\n",
                cfg->redis.sentinels[0] ? "sentinels" : "sentinel_master",
                cfg->redis.sentinels[0] ? "sentinel_master" : "sentinels");
        return -1;
    }
    if (cfg->redis.cluster && (!cfg->redis.url[0] || cfg->redis.sentinels[0])) {
        fprintf(err, "tickgate: redis.cluster: needs redis.url (any node of the cluster) and no redis.sentinels\n");
        return -1;
    }
    if (cfg->redis.cluster && strpbrk(cfg->redis.key_prefix, "{}")) {
        fprintf(err, "tickgate: redis.key_prefix: no '{' or '}' with redis.cluster (the keys' hash tags are tickgate's)\n");
        return -1;
    }
    if (cfg->redis.sentinels[0] && config_check_hostports(cfg->redis.sentinels, 16) < 0) {
        fprintf(err, "tickgate: redis.sentinels: '%s' is not a comma list of 1 to 16 HOST:PORT (port 1..65535)\n",
                cfg->redis.sentinels);
        return -1;
    }
    if (cfg->security.medium_violations > cfg->security.high_violations) {
        fprintf(err,
                "tickgate: security.medium_violations: %d is more than security.high_violations (%d): "
                "threat level medium would never be seen\n",
                cfg->security.medium_violations, cfg->security.high_violations);
        return -1;
    }
    return 0;
}

int config_load(struct config *cfg, int argc, char **argv, FILE *err) {
    const char *file = NULL;
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < NKEYS; i++)
        if (set_value(cfg, &KEYS[i], KEYS[i].def, "default", err) < 0)
            goto fail;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            config_print_help(stdout);
            config_free(cfg);
            return 1;
        }
        if (!strcmp(argv[i], "--print-man") || !strcmp(argv[i], "--print-config")) {
            (argv[i][8] == 'm' ? config_print_man : config_print_example)(stdout);
            config_free(cfg);
            return 1;
        }
        if (!strcmp(argv[i], "--version")) {
            printf("tickgate %s\n", TG_VERSION);
            config_free(cfg);
            return 1;
        }
        if (!strcmp(argv[i], "--config")) {
            if (i + 1 >= argc) {
                fprintf(err, "tickgate: --config needs a file name\n");
                goto fail;
            }
            file = argv[++i];
        } else if (!strncmp(argv[i], "--config=", 9)) {
            file = argv[i] + 9;
        } else if (strncmp(argv[i], "--", 2) != 0) {
            if (i > 0 && !strncmp(argv[i - 1], "--", 2) && !strchr(argv[i - 1], '='))
                /* "--key value": the value is not shown, it may be a secret. */
                fprintf(err, "tickgate: %s takes its value after '=': write %s=VALUE, not a space (see --help)\n",
                        argv[i - 1], argv[i - 1]);
            else
                fprintf(err, "tickgate: unexpected argument '%s' (see --help)\n", argv[i]);
            goto fail;
        }
    }
    if (file) {
        struct file_ctx fc = {cfg, err, file};
        if (ini_file_read(file, on_ini, &fc, err) < 0)
            goto fail;
    }
    if (check_env_unknown(err) < 0)
        goto fail;
    for (size_t i = 0; i < NKEYS; i++) {
        char name[128];
        env_name(&KEYS[i], name, sizeof(name));
        const char *v = getenv(name);
        if (v && set_value(cfg, &KEYS[i], v, "environment", err) < 0)
            goto fail;
    }
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--config")) {
            i++;
            continue;
        }
        if (!strncmp(argv[i], "--config=", 9))
            continue;
        if (apply_flag(cfg, argv[i], err) < 0)
            goto fail;
    }
    char host[256];
    int port;
    if (config_split_listen(cfg->server.listen, host, sizeof(host), &port) < 0) {
        fprintf(err, "tickgate: server.listen: '%s' is not HOST:PORT with a port in 0..65535\n", cfg->server.listen);
        goto fail;
    }
    if (cfg->server.tls_listen[0]) {
        if (config_split_listen(cfg->server.tls_listen, host, sizeof(host), &port) < 0) {
            fprintf(err, "tickgate: server.tls_listen: '%s' is not HOST:PORT with a port in 0..65535\n",
                    cfg->server.tls_listen);
            goto fail;
        }
        if (!cfg->server.tls_cert[0] || !cfg->server.tls_key[0]) {
            fprintf(err, "tickgate: server.tls_listen: needs server.tls_cert and server.tls_key\n");
            goto fail;
        }
    }
    if (!cfg->server.ws_path[0]) { /* empty would leave the gateway without its endpoint */
        fprintf(err, "tickgate: server.ws_path: must not be empty (the WebSocket endpoint, e.g. /ws)\n");
        goto fail;
    }
    if (cfg->server.echo_path[0] && strcmp(cfg->server.echo_path, cfg->server.ws_path) == 0) {
        fprintf(err, "tickgate: server.echo_path: must differ from server.ws_path\n");
        goto fail;
    }
    if (check_relations(cfg, err) < 0)
        goto fail;
    return 0;
fail:
    config_free(cfg);
    return -1;
}

bool config_list_next(const char **cursor, const char **item, size_t *len) {
    const char *p = *cursor;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (!*p) {
            *cursor = p;
            return false;
        }
        const char *e = p;
        while (*e && *e != ',')
            e++;
        size_t l = (size_t)(e - p);
        while (l && (p[l - 1] == ' ' || p[l - 1] == '\t'))
            l--;
        *cursor = e;
        if (l) {
            *item = p;
            *len = l;
            return true;
        }
        p = e;
    }
}

int config_check_hostports(const char *list, int max) {
    const char *cur = list, *item;
    size_t len;
    int n = 0;
    while (config_list_next(&cur, &item, &len)) {
        char one[300], host[256];
        int port;
        if (++n > max || len >= sizeof(one))
            return -1;
        memcpy(one, item, len);
        one[len] = '\0';
        if (config_split_listen(one, host, sizeof(host), &port) < 0 || port == 0)
            return -1;
    }
    return n ? n : -1;
}

int config_split_listen(const char *listen, char *host, size_t hostlen, int *port) {
    const char *colon = strrchr(listen, ':');
    if (!colon || colon == listen)
        return -1;
    const char *hs = listen, *he = colon;
    if (*hs == '[') {
        if (he[-1] != ']')
            return -1;
        hs++;
        he--;
    }
    size_t hl = (size_t)(he - hs);
    if (hl == 0 || hl >= hostlen)
        return -1;
    long p;
    if (!parse_long(colon + 1, &p) || p < 0 || p > 65535)
        return -1;
    memcpy(host, hs, hl);
    host[hl] = '\0';
    *port = (int)p;
    return 0;
}
