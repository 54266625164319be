/* subs.h - a worker's subscriber lists and the local half of fan-out.
 *
 * Each worker keeps, per symbol, a compact array of its own subscribed
 * connections; each connection keeps its subscriptions (symbol, position
 * in that array, conflated frame). Both sides are owned by the worker and
 * changed together, so the two can never disagree. The first local
 * subscriber activates the symbol in the hub; the last one deactivates it. */
#ifndef TG_SUBS_H
#define TG_SUBS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "net/conn.h"

struct worker;
struct outbuf;
struct hub;
struct conn_batch;
struct conn_replay;

struct sub_entry {
    struct conn *c;
    uint64_t min_seq;           /* skip frames with seq <= this (snapshot seen); SUBS_HELD: hold them */
};

#define SUBS_HELD UINT64_MAX    /* recovering (pubsub/replay.h): frames wait in the hold */

struct sub_list {
    struct sub_entry *v;
    uint32_t n, cap;
    uint32_t rot;               /* where the next fan-out starts (fairness) */
};

/* A connection's subscription. */
struct conn_sub {
    uint32_t sym;
    uint32_t idx : 24;          /* position in its list: the worker's for sym, or the lane's */
    uint32_t lane : 4;          /* 0: the worker's real-time list; else a lane (pubsub/lanes.h) */
    struct outbuf *pending;     /* newest conflated update, or NULL */
};

/* Subscribers of one list per symbol per worker, at most (conn_sub idx). */
#define SUBS_LIST_MAX ((1u << 24) - 1)

/* How a subscription is delivered (PROTOCOL.md s.14): every update in real
 * time (the zero value), at most rate updates per second (throttled), or
 * feed.delay_s late with "delayed":true (delayed). */
struct sub_mode {
    uint16_t rate;              /* updates per second per symbol; 0 = every one */
    bool delayed;
};

/* A connection's subscriptions: the first thing in its upper area
 * (net/conn.h conn_upper); the rooms above put their own state after it. */
struct conn_subs {
    struct conn_sub *subs;      /* &sub1, or owned when more than one */
    struct conn_batch *batch;   /* price_batch state; NULL = not batching */
    struct conn_replay *replay; /* recoveries in progress (pubsub/replay.c); NULL = none */
    uint32_t nsubs, subs_cap;   /* subs in use / allocated; holds 2 x CONFIG_MAX_SUBSCRIPTIONS */
    bool portfolio;             /* portfolio_subscribe'd (pubsub/userevents.h) */
    struct conn_sub sub1;       /* the first subscription, in place */
};

static inline struct conn_subs *conn_subs(const struct conn *c) {
    return (struct conn_subs *)conn_upper((struct conn *)c);
}

struct worker_lanes;

/* A worker's lists, one per symbol (w->subs). */
struct worker_subs {
    struct hub *hub;
    struct worker_lanes *lanes; /* throttled and delayed subscribers (pubsub/lanes.h) */
    uint32_t n;                 /* symbols */
    _Atomic uint64_t shed;      /* ticks skipped by a worker that had fallen behind (subs_deliver) */
    struct sub_list lists[];    /* real-time, unthrottled subscribers */
};

/* Allocates the worker's per-symbol lists for hub's symbols. 0 or -ENOMEM. */
int subs_init(struct worker *w, struct hub *hub);
void subs_free(struct worker *w);

/* True when c is subscribed to sym. */
bool subs_has(const struct conn *c, uint32_t sym);

/* Subscribes c to sym in real time (idempotent) and queues the snapshot.
 * 0, or -ENOMEM. */
int subs_add(struct conn *c, uint32_t sym);

/* Subscribes c to sym in real time, unthrottled (recovery's only mode),
 * with its frames held for a recovery (no snapshot): pubsub/replay.c. A
 * subscription in another mode moves to the real-time list. 0, or -ENOMEM. */
int subs_add_held(struct conn *c, uint32_t sym);

/* Ends the hold of sym on c: frames with seq <= last are skipped from now. */
void subs_release_held(struct conn *c, uint32_t sym, uint64_t last);
/* The same in mode m: a subscription in another mode moves (with a fresh
 * snapshot; a delayed one only sees ticks feed.delay_s old). 0 or -ENOMEM. */
int subs_add_mode(struct conn *c, uint32_t sym, struct sub_mode m);

/* The mode c's subscription to sym has; false when not subscribed. */
bool subs_mode(const struct conn *c, uint32_t sym, struct sub_mode *m);

/* Unsubscribes c from sym; no-op when not subscribed. */
void subs_remove(struct conn *c, uint32_t sym);

/* Drops every subscription of c (release path). */
void subs_remove_all(struct conn *c);

/* Delivers a tick frame to the worker's subscribers of b->sym and drops
 * the worker's reference. */
void subs_deliver(struct worker *w, struct outbuf *b);

/* Queues a tick frame on c under the slow-consumer policy, consuming one
 * reference of b whatever happens. */
void subs_send_tick(struct conn *c, struct outbuf *b);

/* Hands b (a plain frame) to every subscriber of l newer than its
 * snapshot, held ones to their hold: its compressed sibling to those that
 * take it (negotiated permessage-deflate, not batching), b to the others.
 * Each takes a reference of its own; the caller keeps its reference. */
void subs_fan(struct sub_list *l, struct outbuf *b);

/* Starts the worker's pubsub timer (batches, throttles, delay lines) when
 * it is not running. */
void subs_timer_start(struct worker *w);

/* A connection's price_batch state: allocated when set_options turns
 * batching on, freed when it is turned off and at release, so connections
 * that never batch carry one NULL pointer. */
struct conn_batch {
    struct conn *prev, *next;   /* the worker's list of batching connections */
    uint64_t due;               /* loop ms of the next flush */
    struct outbuf **v;          /* tick frames waiting, one reference each */
    uint64_t bytes;             /* their total size */
    uint32_t n, cap;            /* entries in v / allocated */
    uint16_t ms;                /* flush interval, 1..1000 */
};

/* set_options: sets c's batch interval (0..1000 ms; 0 = off); a batch
 * still waiting is sent first. 0, or -ENOMEM (batching stays off). */
int subs_set_batch(struct conn *c, uint16_t batch_ms);

/* Drops c's batch state (release path). */
void subs_batch_release(struct conn *c);

/* The socket drained: release conflated updates if below the cap. */
void subs_on_drain(struct conn *c);

#endif
