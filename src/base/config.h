/* config.h - every setting of tickgate: defaults, INI file, environment and
 * command line (PROTOCOL.md section 10).
 *
 * One table lists each key once with its type, bounds, default and meaning;
 * --help prints it, and every layer (default < file < environment < flag) is
 * parsed by the same code, so a value is checked the same way wherever it
 * comes from. The struct is filled once at start-up and read-only after: the
 * worker threads may read it without locks. */
#ifndef TG_CONFIG_H
#define TG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* Largest values of keys whose count lives in a fixed-width field; the
 * field's owner asserts at compile time that it holds them. */
#define CONFIG_MAX_SUBSCRIPTIONS 100000 /* symbols per client: struct conn nsubs/subs_cap */
#define CONFIG_MAX_VIOLATIONS 65535     /* medium/high_violations: struct conn violations */

enum slow_consumer_policy { SLOW_CONFLATE = 0, SLOW_DISCONNECT = 1 };

struct config {
    struct {
        char *listen;               /* "HOST:PORT", port 0 = any free port */
        char *tls_listen;           /* "HOST:PORT" of the TLS listener, "" = none */
        char *tls_cert;             /* PEM certificate chain file */
        char *tls_key;              /* PEM private key file; its content never logged */
        int workers;                /* worker threads; 0 = one per core */
        char *ws_path;              /* JSON WebSocket endpoint */
        char *echo_path;            /* echo endpoint, "" = off */
        char *static_dir;           /* demo page files */
        char *allowed_origins;      /* comma list; "" = any Origin */
        char *trusted_proxies;      /* CIDR list whose X-Forwarded-For is believed */
        int handshake_timeout_ms;   /* a request must complete within this */
        int keepalive_max_s;        /* total life of a plain HTTP connection */
        int shutdown_grace_ms;      /* SIGTERM to exit, at most */
        char *metrics_token;        /* Bearer token /metrics needs; "" = open; never logged */
        long max_http_body_bytes;   /* request bodies above this: 413 */
    } server;
    struct {
        int level;                  /* enum log_level */
        int format;                 /* enum log_format */
    } log;
    struct {
        char *jwt_secret;           /* HS256 key; never logged */
        char *jwt_secret_file;      /* file holding the HS256 key */
        char *jwt_algorithms;       /* accepted algs, comma list */
        char *jwt_public_key_file;  /* PEM public key for RS256/ES256 */
        char *jwt_issuer;           /* required iss when set */
        char *jwt_audience;         /* required aud when set */
        int jwt_leeway_s;           /* clock leeway for exp/nbf/iat */
        char *users_file;           /* users JSON; "" = none */
        bool allow_anonymous;       /* no credentials: anonymous role */
        char *anonymous_symbols;    /* entitlement patterns of anonymous clients; "" = every symbol */
        char *jwks_file;            /* JWK Set of verification keys, re-read on SIGHUP; "" = none */
    } auth;
    struct {
        long max_connections;       /* global cap: 503 beyond */
        int max_connections_per_ip;   /* 429 beyond */
        int max_connections_per_user; /* 429 beyond */
        int max_connects_per_ip_per_minute; /* /ws handshakes per client IP: 429 beyond */
        int ipv6_prefix_len;        /* IPv6 addresses count per this prefix for per-IP rules */
        long max_message_bytes;     /* reassembled message cap: 1009 beyond */
        int max_subscriptions_per_client;
        int viewer_max_symbols;
        int anonymous_max_symbols;
        int max_messages_per_minute;  /* token bucket, burst = this */
        long max_outbound_bytes;    /* per-connection queue cap */
        int slow_consumer;          /* enum slow_consumer_policy */
        int shed_after_ms;          /* a worker behind by this (a tick's wait for fan-out, a writable queue's for its
                                       slice) skips superseded ticks; 0 = never */
        int heartbeat_interval_s;   /* server ping period */
        int heartbeat_timeout_s;    /* silence before close 4000 */
        int sweep_interval_s;       /* sweeper period */
    } limits;
    struct {
        int compression;            /* 1 = permessage-deflate offered to clients (off|on) */
        long compression_min_bytes; /* shorter messages go uncompressed */
    } ws;
    struct {
        int auto_block_s;           /* critical IPs are blocked this long */
        int medium_violations;      /* threat medium at this many violations */
        int high_violations;        /* threat high: close 1008 */
        int critical_violations;    /* from one IP within critical_window_s: block */
        int critical_window_s;
        char *blocked_ips;          /* comma list blocked from start (permanent) */
        char *blocks_file;          /* admin blocks kept across restarts; "" = off */
        bool suspicious_content;    /* scan string fields for script injection */
    } security;
    struct redis_config {
        char *url;                  /* redis://[:password@]host:port/db; "" = off */
        char *sentinels;            /* comma list HOST:PORT; "" = no Sentinel */
        char *sentinel_master;      /* the primary's name at the sentinels */
        bool cluster;               /* redis.url names a node of a Redis Cluster */
        char *key_prefix;           /* prefix of every key and channel */
        int node_ttl_s;             /* node liveness key TTL */
        int reconnect_max_ms;       /* backoff cap */
        int timeout_ms;             /* no progress this long: the link is stalled */
        int max_inflight;           /* ticks awaiting Redis; past it: stalled */
    } redis;
    struct {
        char *path;                 /* JSON lines; "" = off */
        int queue;                  /* events buffered for the writer */
    } audit;
    struct {
        bool simulator;             /* built-in random-walk feed */
        int sim_ticks_per_s;        /* ticks per second in total */
        long sim_seed;              /* seed: same seed, same walk */
        char *symbols_file;         /* "" = built-in universe */
        int history_size;           /* ticks kept per symbol for get_history/analysis */
        int delay_s;                /* delayed data: ticks released this long after their timestamp */
        int delay_resolution_ms;    /* a delay line keeps the newest tick per slot of this */
    } feed;
    struct trade_config {
        bool paper;                 /* built-in paper broker fills orders */
        double paper_cash;          /* starting cash per user */
        int max_open_orders;        /* resting + in-flight limit orders per user */
    } trade;
    struct {
        char *super_admin, *admin, *analyst, *trader, *viewer, *publisher, *anonymous;
    } roles;
    struct {                        /* updates per second per symbol; 0 = unlimited (enum role order) */
        int super_admin, admin, analyst, trader, viewer, publisher, anonymous;
    } throttle;
};

/* Parses argv (after any subcommand) into cfg. Returns 0 on success,
 * 1 when --help or --version was printed (the caller exits 0), and -1 after
 * printing a message naming the bad key or value to err. */
int config_load(struct config *cfg, int argc, char **argv, FILE *err);

/* Releases the strings cfg owns. */
void config_free(struct config *cfg);

/* One key of the table, for the documents written from it (config_doc.c:
 * --help, the man page, the example configuration). */
struct config_key_doc {
    const char *section, *name, *def, *help, *choices; /* choices: "a|b" or NULL */
    bool secret;
};

/* The i-th key (0, 1, ...): true, or false past the last. */
bool config_key_doc(size_t i, struct config_key_doc *d);

/* Whether key i has the same value in a and b. */
bool config_key_same(const struct config *a, const struct config *b, size_t i);

/* Prints every key with its default and meaning (--help). */
void config_print_help(FILE *out);

/* The man page tickgate(1), roff (--print-man). */
void config_print_man(FILE *out);

/* An INI file listing every key at its default, commented (--print-config). */
void config_print_example(FILE *out);

/* Iterates a comma-separated list value: sets item and len to the next
 * non-empty item, spaces trimmed, and advances cursor. False at the end. */
bool config_list_next(const char **cursor, const char **item, size_t *len);

/* Splits "host:port" / "[v6]:port". Returns 0 or -1. host gets at most
 * hostlen-1 characters. */
int config_split_listen(const char *listen, char *host, size_t hostlen, int *port);

/* A comma list of 1..max HOST:PORT with ports 1..65535: how many, or -1. */
int config_check_hostports(const char *list, int max);

#endif
