/* gateway.h - what the gateway works with, handed to it once at start.
 *
 * The gateway is the application: it answers HTTP, admits WebSocket
 * clients and speaks the JSON protocol. It does not own the rooms below it;
 * the app creates them and lists them here (pointers, read-only after
 * start), so every gateway module finds its collaborators in one place it
 * was given rather than in the process's struct. The connection count
 * against limits.max_connections is the gateway's own. */
#ifndef TG_GATEWAY_H
#define TG_GATEWAY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "auth/roles.h"
#include "net/conn.h"
#include "net/worker.h"

struct config;
struct auth;
struct guard;
struct budgets;
struct audit;
struct cidr_list;
struct symbol_table;
struct hub;
struct redis_engine;
struct broker;
struct user_events;
struct ip16;
struct tls_ctx;

struct gateway {
    const struct config *cfg;
    struct auth *auth;             /* identity; users table reloadable */
    struct guard *guard;           /* per-IP/per-user counts, blocks */
    struct budgets *budgets;       /* per-identity rates */
    struct audit *audit;
    const struct cidr_list *trusted; /* server.trusted_proxies */
    const struct symbol_table *syms;
    struct hub *hub;
    struct redis_engine *redis;    /* redis->enabled false: one node */
    struct broker *broker;
    struct tls_ctx *tls;           /* server.tls_listen's certificate (reload failures); NULL = no TLS */
    struct user_events *events;    /* a user's messages, on every node */
    struct worker *workers;        /* every worker (mail, gathers, blocks) */
    int nworkers;
    uint32_t instance;             /* random per process: unique client ids */
    uint64_t started_ms;           /* wall clock at start */
    const atomic_bool *shutting_down;
    atomic_bool serving;           /* set by the app once every worker listens (/ready) */
    _Atomic uint64_t reloads[2];   /* SIGHUP reloads applied, refused (app/reload.c) */
    atomic_long connections;       /* held against limits.max_connections */
};

/* What an entitlement refusal refused (tickgate_entitlement_refusals_total). */
enum not_entitled_kind { NE_SUBSCRIBE = 0, NE_QUERY, NE_TRADE, NE_COUNT };

/* What the gateway counts per worker (single writer: the worker). */
struct gateway_stats {
    _Atomic uint64_t by_role[ROLE_COUNT];          /* gauge */
    _Atomic uint64_t received[ACT_COUNT + 1];      /* by action; last = unknown/invalid */
    _Atomic uint64_t recoveries[2];                /* recover asked: [0] recovered, [1] missed */
    _Atomic uint64_t not_entitled[NE_COUNT];       /* entitlement refusals by what was asked */
};

/* The gateway's per-worker state, w->upper (gateway/hooks.c). */
struct gateway_worker {
    struct gateway *gw;
    struct gateway_stats stats;
};

static inline struct gateway_worker *gateway_worker(const struct worker *w) { return w->upper; }
static inline struct gateway *gateway_of_worker(const struct worker *w) { return gateway_worker(w)->gw; }
static inline struct gateway *gateway_of(const struct conn *c) { return gateway_worker(c->w)->gw; }

/* Reserves one connection slot against limits.max_connections: a
 * WebSocket connection, or a plain HTTP one while a request is being
 * answered. False when the node is full. Any thread. */
bool gateway_conn_reserve(struct gateway *gw);
void gateway_conn_release(struct gateway *gw);

/* Blocks ip on every worker: refuses it from now on and closes its
 * connections with 1008; then on every other node through Redis.
 * duration_s 0 = until unblocked. Main thread or a worker. */
void gateway_block_ip(struct gateway *gw, const struct ip16 *ip, int64_t duration_s, const char *why);

/* gateway_block_ip for an admin's block, which is also kept across
 * restarts (security.blocks_file, auth/blockfile.h). */
void gateway_block_ip_admin(struct gateway *gw, const struct ip16 *ip, int64_t duration_s);

/* The same on this node only (a block that came from another node). */
void gateway_block_ip_local(struct gateway *gw, const struct ip16 *ip, int64_t duration_s, const char *why);

#endif
