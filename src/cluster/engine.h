/* redis_engine.h - Redis as tickgate's optional engine (PROTOCOL.md s.9):
 * persistence of connections and subscriptions, cross-node fan-out with
 * Redis-assigned seqs, cluster-wide per-user limits and IP blocks.
 *
 * The engine lives on the main thread's loop (hiredis with its libuv
 * adapter, two connections: commands and pub/sub). Other threads reach it
 * only through its mailbox. It never blocks anyone: while Redis is down
 * or stalled (no answer within redis.timeout_ms, or redis.max_inflight
 * ticks waiting) the node serves its local clients alone (ticks sequenced
 * locally, limits local), counts errors, shows degraded health, reconnects
 * with capped backoff, and on reconnect writes its whole state back. */
#ifndef TG_REDIS_ENGINE_H
#define TG_REDIS_ENGINE_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "base/mailbox.h"
#include "cluster/scripts.h"
#include "net/clientip.h"

struct redis_config;
struct hub;
struct guard;
struct user_events;
struct worker;
struct worker_mail;
struct tick;
struct tick_in;
struct recover_req;

/* Ticks published while a node starts listening to a symbol: the history
 * stream's newest id before SUBSCRIBE (marker) and the SUBSCRIBE's
 * confirmation; with both, the node reads the stream from the marker, a
 * page at a time, until it meets the live ticks held meanwhile, so the
 * hub gets every seq in order (cluster/ticks.c). */
struct catch_up {
    uint8_t have;               /* bit 1: marker known, bit 2: subscribed */
    bool pending;               /* replay not done: hold live ticks */
    uint32_t gen;               /* this catch-up's number: a stale reply is ignored */
    uint32_t pages;             /* stream pages read so far */
    char marker[32];            /* stream id, "" = stream was empty */
    char last[32];              /* the last stream id delivered ("" = none yet) */
    char **held;                /* live tick messages held meanwhile (owned), oldest first */
    uint32_t nheld;
    uint64_t dropped_max;       /* highest seq of a held tick dropped at the bound: the stream has it */
};
struct redisAsyncContext;

enum redis_mail {
    RM_PUBLISH = 1,     /* ptr: struct tick_in (malloc'd) */
    RM_SYMBOL,          /* a: symbol whose local activity changed */
    RM_NOTE,            /* ptr: struct redis_note */
    RM_ADMIT,           /* ptr: struct redis_admit */
    RM_CONTROL,         /* ptr: char* control message to publish (malloc'd) */
    RM_QUERY,           /* ptr: struct redis_query: shared history / analysis */
    RM_RECOVER,         /* ptr: struct recover_req (pubsub/replay.h) */
};

/* get_history / analysis answered from the shared history stream. */
struct redis_query {
    int worker;
    uint64_t conn_id;
    char *id_json;      /* request id as JSON text, or NULL; owned */
    bool analysis;
    uint32_t sym;
    uint32_t limit;     /* history: newest limit ticks */
    int window_s;       /* analysis */
};

enum note_kind { NOTE_OPEN = 0, NOTE_SUBS, NOTE_CLOSE, NOTE_RELEASE_USER };

/* A change of one connection's persisted state. */
struct redis_note {
    int kind;
    bool resync;        /* NOTE_OPEN during a resync: count the user too */
    char cid[32];
    char *text;         /* OPEN: connection JSON; SUBS: JSON array; owned */
    char *user;         /* OPEN/CLOSE: user id or NULL; owned */
};

/* A cluster-wide per-user admission request, answered to its worker. */
struct redis_admit {
    int worker;
    uint64_t conn_id;
    char user[128];
    int limit;
    bool ok;            /* answer: admit */
    bool counted;       /* counted in Redis: release there too */
};

/* What the engine works with, from the rooms below it (all outlive it). */
struct redis_engine_env {
    const struct redis_config *cfg;
    uv_loop_t *loop;                /* the main thread's: the engine runs on it */
    struct hub *hub;                /* ticks in and out, the symbols, local history */
    struct guard *guard;            /* the shared block list applies here */
    struct user_events *events;     /* other nodes' user events */
    struct worker *workers;         /* admission answers, resync */
    int nworkers;
};

/* What the rooms above give the engine at start (the app wires them): the
 * worker mail it posts and the calls it makes up. All on the main loop. */
struct redis_engine_ops {
    const struct worker_mail *resync;        /* every connection re-sends its state */
    const struct worker_mail *admit_result;  /* ptr: struct redis_admit */
    const struct worker_mail *recover_result; /* ptr: struct recover_req, answered */
    void *ctx;
    /* Another node blocked ip (duration_s 0 = until unblocked): block it
     * here too, and close its connections. */
    void (*block_local)(void *ctx, const struct ip16 *ip, int64_t duration_s);
    /* Another node's admin broadcast (msg consumed) for the given role bits. */
    void (*broadcast_local)(void *ctx, json_t *msg, uint32_t roles);
    /* A history / analysis query's ticks (oldest first, n of them, from
     * the shared stream or this node's ring): answer q's connection. */
    void (*answer_query)(void *ctx, const struct redis_query *q, const struct tick *t, uint32_t n);
};

/* One of the engine's two connections; see redis_link.h. */
struct redis_link {
    struct redisAsyncContext *ac;   /* NULL once hiredis freed it */
    struct redis_engine *e;
    uint64_t progress_ms;           /* loop ms of the last read (or the send onto an idle link) */
    bool ready;                     /* handshake answered */
    bool dead;                      /* failed: its replies no longer count */
};

/* A tick Redis sequenced for this node, kept until it comes back on the
 * pub/sub link: if that link fails first, it is delivered from here. */
struct echo_wait {
    uint32_t sym;                   /* UINT32_MAX: no longer awaited */
    uint64_t seq;
    char *msg;                      /* the published message (owned) */
};

struct redis_engine {
    const struct redis_config *cfg; /* the rest of this block: redis_engine_env, read-only */
    uv_loop_t *loop;
    struct hub *hub;
    struct guard *guard;
    struct user_events *events;
    struct worker *workers;
    int nworkers;
    struct redis_engine_ops ops;    /* the rooms above */
    bool enabled;                   /* redis.url or redis.sentinels set */
    struct sentinel *sentinel;      /* redis.sentinels: they name host:port (cluster/sentinel.h); else NULL */
    struct shards *shards;          /* redis.cluster: the primaries and slot map (cluster/shards.h); else NULL */
    char *rprefix;                  /* the registry's key prefix (on a cluster: prefix + "{registry}:") */
    char host[256];
    int port, db;
    char *password;                 /* never logged */
    char *prefix;
    char node[40];                  /* this node's id */
    char sha[RS_COUNT][41];         /* the scripts' SHA1s (EVALSHA) */
    struct mailbox inbox;           /* from any thread */
    struct redis_link cmd;          /* commands */
    struct redis_link sub;          /* pub/sub */
    bool stopping;
    const char *fail_why;           /* the failure being reaped (static text) */
    uv_timer_t retry;               /* reconnect with backoff */
    uv_timer_t reap;                /* frees failed links outside hiredis's callbacks */
    uv_timer_t watch;               /* liveness: every timeout/4 */
    uv_timer_t tick;                /* liveness key, dead-node cleanup */
    uint64_t backoff_ms;
    uint64_t fence_ms;              /* no reconnect before: ticks of unknown fate expire in Redis */
    uint64_t last_publish_ms;       /* loop ms of the newest tick sent */
    int64_t clock_offset_ms;        /* Redis's clock minus ours (TIME at connect) */
    uint32_t inflight;              /* ticks awaiting their script's answer */
    struct echo_wait *echo;         /* ring of redis.max_inflight */
    uint32_t echo_head, echo_n;
    uint64_t cleanup_due;
    bool *subscribed;               /* per symbol: SUBSCRIBE sent */
    struct catch_up *catch_up;      /* per symbol: replay after SUBSCRIBE */
    _Atomic bool up;                /* read by any thread */
    _Atomic bool synced;            /* up once since start: the node's first sync is done (/ready) */
    _Atomic uint64_t errors;        /* redis_errors_total */
    _Atomic uint64_t published;     /* ticks sent through Redis */
    _Atomic uint64_t inflight_full; /* times redis.max_inflight ticks awaited Redis (links dropped) */
};


/* Parses redis.url and, when set, starts connecting. 0, or -1 with a
 * message naming the key to stderr. */
int redis_engine_start(struct redis_engine *e, const struct redis_engine_env *env, const struct redis_engine_ops *ops);

/* Disconnects and closes handles (main thread, at shutdown). */
void redis_engine_stop(struct redis_engine *e);
void redis_engine_free(struct redis_engine *e);

static inline bool redis_engine_up(struct redis_engine *e) { return e->enabled && atomic_load(&e->up); }

/* Posts; any thread. Ownership of ptr passes on success; on failure the
 * function frees it. Returns 0 or -1. */
int redis_engine_post(struct redis_engine *e, int type, void *ptr, uint64_t a);

/* sym's local interest changed (subscribers, resting orders): its channel
 * is subscribed or unsubscribed to match. Any thread. */
void redis_engine_symbol_interest(struct redis_engine *e, uint32_t sym);

/* Releases one connection of user from this node's cluster-wide count
 * (a connection counted there that ended or changed identity). Any thread. */
void redis_engine_release_user(struct redis_engine *e, const char *user);

/* For the rooms above that keep records in Redis (the broker's orders),
 * main thread only: appends one entry (nfields strings: field, value,
 * ...) to the stream `stream`; done(priv, ok) runs once Redis answered
 * (ok: stored) or the link failed first (not ok). 0, or -1 when Redis is
 * not up or memory is short (done never runs). */
int redis_engine_append(struct redis_engine *e, const char *stream, int nfields, const char **fields,
                        void (*done)(void *priv, bool ok), void *priv);

/* The cluster's last price of sym (P"last:<SYM>"; a node hears only the
 * symbols it watches): done(priv, price), price 0 when unknown or the link
 * failed first. Main thread. 0, or -1 as redis_engine_append. */
int redis_engine_last_price(struct redis_engine *e, uint32_t sym, void (*done)(void *priv, double price), void *priv);

/* Tells every other node, through the control channel (any thread;
 * nothing without Redis, and nothing queued while it is down): an IP
 * block (duration_s 0 = until unblocked) or unblock, an admin broadcast
 * (frame_json: the message, for the given role bits), a user event
 * (event_json; portfolio_only: only portfolio subscribers). */
void redis_engine_announce_block(struct redis_engine *e, const struct ip16 *ip, int64_t duration_s);
void redis_engine_announce_unblock(struct redis_engine *e, const struct ip16 *ip);
void redis_engine_announce_broadcast(struct redis_engine *e, uint32_t roles, const char *frame_json);
void redis_engine_announce_user_event(struct redis_engine *e, const char *user, bool portfolio_only,
                                      const char *event_json);

/* Asks the cluster a subscribe's recovery question (pubsub/replay.h): the
 * symbols' shared epochs and, for those to recover, the ticks after the
 * client's seq from the shared stream; r comes back answered to worker
 * r->worker as ops.recover_result mail (answered from this node's ring
 * when Redis goes away meanwhile). False when Redis is not up or the
 * mailbox is full: r stays the caller's. Any thread. */
bool redis_engine_recover(struct redis_engine *e, struct recover_req *r);

/* Sends a tick through Redis (seq assigned there). False when Redis is not
 * up (the caller sequences locally). Any thread. */
bool redis_engine_publish(struct redis_engine *e, const struct tick_in *in);

#endif
