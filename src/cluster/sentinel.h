/* sentinel.h - Redis Sentinel in front of the engine (PROTOCOL.md
 * section 16): which server the engine's links connect to, and when that
 * changes. Internal to the cluster room (engine.c and link.c call it).
 *
 * - Ask: every connect attempt first asks a sentinel for the primary
 *   (SENTINEL get-master-addr-by-name), trying each in turn, each answer
 *   bounded by redis.timeout_ms; no sentinel names one: the attempt fails
 *   like a refused connect (backoff, degraded).
 * - Verify: the command link's handshake checks ROLE (master) and reads
 *   the primary's replication id; a replica is never written to.
 * - Follow: one sentinel connection stays subscribed to +switch-master
 *   (TCP keepalive; the next sentinel replaces it when it is lost; each
 *   new subscription asks again, since events are missed while away, and
 *   so does every tenth watch period, for a watched sentinel that
 *   stalled). A
 *   switch drops the links; the reconnect writes the node's state back
 *   and re-subscribes as after any reconnect.
 * - Epochs: a primary with another replication history (a promoted
 *   replica) may lack the last writes, so every symbol whose counter was
 *   written under another primary gets a new epoch (docs/protocol.md,
 *   recovery after reconnect). */
#ifndef TG_CLUSTER_SENTINEL_H
#define TG_CLUSTER_SENTINEL_H

#include <stdbool.h>
#include <uv.h>

struct redis_engine;
struct redisAsyncContext;

#define SENTINEL_MAX 16

struct sentinel {
    struct redis_engine *e;
    struct { char host[256]; int port; } at[SENTINEL_MAX];
    int n;
    int next;                        /* the sentinel asked next (round robin) */
    int tried;                       /* sentinels tried in this round */
    struct redisAsyncContext *ask;   /* the question in flight, or NULL */
    bool answered;                   /* ask: its answer came */
    struct redisAsyncContext *watch; /* subscribed to +switch-master, or NULL */
    int watch_at;                    /* the watched sentinel's index */
    unsigned periods;                /* watch timer periods so far */
    uv_timer_t ask_timer;            /* bounds one question */
    uv_timer_t watch_timer;          /* the watch's PING, liveness, reconnect */
    char replid[48];                 /* the verified primary's replication id */
    bool stopping;
};

/* Parses redis.sentinels into e->sentinel (nothing started). 0, or -1
 * (message to stderr). */
int sentinel_parse(struct redis_engine *e);

/* Starts the watch. The engine's host and port stay empty until a
 * sentinel names the primary. */
void sentinel_start(struct redis_engine *e);

/* Asks the sentinels for the primary; the answer opens the links
 * (link_open_all) or, when they are open to another server, drops them. */
void sentinel_ask(struct redis_engine *e);

/* The command link's handshake: ROLE and the replication id (sent before
 * TIME, so they are answered before the link is ready). */
void sentinel_verify(struct redis_engine *e, struct redisAsyncContext *ac);

/* At became_up, before any other write of this node: the epoch check. */
void sentinel_check_epochs(struct redis_engine *e);

void sentinel_stop(struct redis_engine *e);
void sentinel_free(struct redis_engine *e);

#endif
