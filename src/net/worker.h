/* worker.h - a worker thread: one libuv loop that owns its connections.
 *
 * Each worker accepts on its own SO_REUSEPORT listener (the kernel spreads
 * new connections), reads, parses and writes for the connections it
 * accepted, and never touches another worker's. Other threads reach it only
 * through its mailbox. */
#ifndef TG_WORKER_H
#define TG_WORKER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "base/mailbox.h"
#include "net/tls.h"

struct config;
struct conn;
struct worker_subs;
struct conn_slab;

#define WORKER_READ_BUF (64 * 1024)

struct worker;

/* A kind of mail for a worker, defined by the room that posts it (the
 * worker knows none of them): run on the worker's loop with what was
 * posted; drop (may be NULL) releases what ptr owns when the mail can no
 * longer be delivered (the worker stopped). */
struct worker_mail {
    const char *name;
    void (*run)(struct worker *w, void *ptr, uint64_t a, uint64_t b);
    void (*drop)(void *ptr, uint64_t a, uint64_t b);
};

/* How the rooms above take part in a worker's life and its connections'
 * (registered once, at start; net calls up only through these). Every
 * function is required. */
struct worker_hooks {
    size_t conn_upper;                   /* bytes of their state in each connection's slot (conn_upper) */
    int (*start)(struct worker *w);      /* the rooms' per-worker state: 0 or -errno */
    void (*stop)(struct worker *w);      /* releases it: loop ended, or start failed */
    void (*http_request)(struct conn *c); /* c->http holds a complete request */
    void (*http_idle)(struct conn *c);   /* every answer written, or the request state freed */
    void (*ws_open)(struct conn *c);     /* upgraded to the gateway endpoint (EP_JSON) */
    void (*ws_message)(struct conn *c, const char *data, size_t len); /* EP_JSON: one complete text message */
    void (*ws_closing)(struct conn *c, unsigned code); /* the close handshake starts (either side) */
    void (*release)(struct conn *c);     /* the connection's memory goes next (once) */
    void (*drain)(struct conn *c);       /* a congested connection's queue shrank */
    void (*liveness)(struct conn *c, uint64_t now); /* EP_JSON, at heartbeat resolution */
    void (*sweep)(struct conn *c, uint64_t now);    /* EP_JSON, every limits.sweep_interval_s */
    void (*lame_duck)(struct conn *c);   /* EP_JSON, once when the drain starts: advise a reconnect */
};

/* What a worker is given at start (copied). */
struct worker_env {
    const struct config *cfg;            /* read-only for the process's life */
    const struct worker_hooks *hooks;
    const atomic_bool *shutting_down;    /* process-wide: fallback for a refused shutdown mail */
    int (*listen_socket)(void *ctx);     /* a fresh bound listener (after EMFILE): fd or -errno */
    void (*ended)(void *ctx);            /* on the worker's thread: its loop has ended */
    void *ctx;                           /* for listen_socket and ended */
    void *upper_ctx;                     /* for hooks->start (the gateway) */
};

/* Why a WebSocket connection ended (disconnections_total{reason}). */
enum disc_reason {
    DR_CLIENT_CLOSE = 0,   /* the client started the close handshake */
    DR_SHUTDOWN,           /* 1001 */
    DR_PROTOCOL,           /* 1002, 1003, 1007, 1009 */
    DR_POLICY,             /* 1008 */
    DR_INTERNAL,           /* 1011 */
    DR_SLOW_CONSUMER,      /* 1013 */
    DR_HEARTBEAT,          /* 4000 */
    DR_TOKEN_EXPIRED,      /* 4001 */
    DR_NETWORK,            /* socket ended without a close handshake */
    DR_COUNT,
};

/* Security violation kinds (security_violations_total{kind}). */
enum violation {
    SV_RATE_LIMITED = 0,
    SV_FORBIDDEN,
    SV_INVALID_MESSAGE,
    SV_AUTH_FAILED,
    SV_SUSPICIOUS,
    SV_COUNT,
};

#define FANOUT_BUCKETS 16

/* Counters a worker owns (single writer: the worker); the metrics module
 * only reads them, relaxed. */
struct worker_stats {
    _Atomic uint64_t accepted;
    _Atomic uint64_t ws_open;          /* gauge: WebSocket connections now */
    _Atomic uint64_t ws_total;         /* WebSocket connections opened */
    _Atomic uint64_t http_requests;
    _Atomic uint64_t http_paused;      /* gauge: HTTP connections not read while their answers wait */
    _Atomic uint64_t bytes_sent;
    _Atomic uint64_t messages_sent;    /* frames queued to clients */
    _Atomic uint64_t ws_compressed_messages;     /* of those, sent compressed (permessage-deflate) */
    _Atomic uint64_t ws_compression_saved_bytes; /* bytes those saved against their plain frames */
    _Atomic uint64_t disconnects[DR_COUNT];
    _Atomic uint64_t violations[SV_COUNT];
    _Atomic uint64_t rate_limited;
    _Atomic uint64_t subscriptions;    /* gauge */
    _Atomic uint64_t conflated;        /* updates replaced by a newer one */
    _Atomic uint64_t slow_disconnects;
    _Atomic uint64_t fanout_buckets[FANOUT_BUCKETS];
    _Atomic uint64_t fanout_count;
    _Atomic uint64_t fanout_sum_ns;
    _Atomic int64_t last_sweep_s;      /* wall seconds of the last sweeper run */
};

struct worker {
    int id;
    struct worker_env env;
    const struct config *cfg;      /* env.cfg */
    const struct worker_hooks *hooks; /* env.hooks */
    void *upper;                   /* the rooms above's per-worker state (set by hooks->start); net never reads it */
    uv_loop_t loop;
    uv_thread_t thread;
    uv_tcp_t listener;
    bool listening;
    bool accept_paused;            /* out of descriptors: listener closed for a while */
    uv_timer_t accept_retry;       /* reopens the listener after EMFILE */
    struct mailbox inbox;          /* the only way in from other threads */
    uv_timer_t timer;              /* deadlines: handshake timeout, close wait */
    uv_prepare_t flush_prepare;    /* flush writes queued by timers */
    uv_check_t flush_check;        /* flush writes queued by I/O callbacks */
    uint8_t *rbuf;                 /* read buffer shared by all connections */
    bool rbuf_busy;                /* a read callback holds rbuf */
    struct conn *conns;            /* every connection of this worker */
    uint64_t nconns;
    struct conn *dirty;            /* connections with output to flush, oldest first */
    struct conn *dirty_tail;       /* the newest on that list (NULL when empty) */
    uv_idle_t flush_idle;          /* active while the list is not empty: the loop polls without blocking */
    uint64_t behind_ms;            /* loop ms a writable queue was last found older than limits.shed_after_ms; 0 = never */
    uint32_t mails_unflushed;   /* mails run since the queues were last written */
    struct conn *timed;            /* connections with a deadline */
    struct conn_slab *slabs;       /* connection memory (net/conn.c) */
    struct conn *free_conns;       /* free slots in slabs */
    struct worker_subs *subs;      /* per symbol: local subscribers (pubsub/subs.h; set by the hooks) */
    uv_timer_t sweeper;            /* token expiry, sweeper health */
    uv_timer_t liveness;           /* pings and heartbeat timeouts, at heartbeat resolution */
    uv_timer_t batcher;            /* flushes price_batch frames; runs while batching */
    struct conn *batching;         /* connections with batch_ms > 0 */
    uv_timer_t replayer;           /* writes recovery replays in slices; runs while replaying */
    struct conn *replaying;        /* connections with a replay being written (pubsub/replay.c) */
    uint64_t next_id;              /* connection id sequence */
    uint32_t handshaking;          /* connections still in the HTTP phase */
    uint64_t trimmed_at;           /* stats.accepted when a trim was last made due */
    uint64_t churn_ms;             /* loop ms the handshakes since then passed the threshold */
    bool trim_due;                 /* trim at the next timer tick (worker.c maybe_trim) */
    uint64_t trim_ms;              /* loop ms of the last trim */
    bool draining;                 /* lame duck: closing clients over the grace period */
    uint64_t drain_start, drain_ms;  /* loop ms of the drain's start; its length */
    uint32_t drain_total, drain_closed; /* WebSocket clients at the start; closed by the drain */
    bool shutting_down;
    bool stopped;                  /* handles closed, loop ending */
    int listen_fd;                 /* bound socket handed over by the server */
    struct tls_ctx *tls;           /* the server's TLS context (not owned); NULL = no TLS listener */
    struct tls_io tls_io;          /* this thread's TLS records and plaintext (net/tls.h) */
    uv_tcp_t tls_listener;         /* accepts TLS connections, SO_REUSEPORT like listener */
    bool tls_listening;
    int tls_fd;                    /* the bound TLS socket, owned; the listener uses a duplicate */
    struct worker_stats stats;
    _Atomic uint64_t heartbeat_ms; /* monotonic ms stamped by the timer: liveness */
};

/* Gives the worker a TLS listener, before worker_start: fd is a bound
 * socket (the worker owns it from here), t the server's TLS context,
 * which must outlive the worker. */
void worker_set_tls(struct worker *w, struct tls_ctx *t, int fd);

/* Starts the thread. fd is a bound, not yet listening, socket. 0 or -errno. */
int worker_start(struct worker *w, const struct worker_env *env, int id, int fd);

/* Posts mail of kind (static storage); any thread. 0 or -ENOSPC (the
 * caller keeps ptr). */
int worker_post(struct worker *w, const struct worker_mail *kind, void *ptr, uint64_t a, uint64_t b);

/* Drain (lame duck): each EP_JSON client is advised to reconnect
 * (hooks->lame_duck), then WebSocket clients are closed with 1001 spread
 * over three quarters of server.shutdown_grace_ms; plain HTTP keeps being
 * answered meanwhile. Once none is left (or the time is up) the worker
 * stops accepting, ends its HTTP connections and its loop ends with its
 * last connection. force_close: every socket now (the grace expired).
 * Any thread. */
int worker_post_shutdown(struct worker *w);
int worker_post_force_close(struct worker *w);

/* Waits for the thread to end and frees what it owned. */
void worker_join(struct worker *w);

/* Records one tick's fan-out time (mailbox in -> queued to every local
 * subscriber). */
void worker_record_fanout(struct worker *w, uint64_t ns);

/* Upper bounds (seconds) of the fan-out histogram buckets; the last is +Inf. */
extern const double FANOUT_BOUNDS[FANOUT_BUCKETS];

/* Re-arms the sweeper and liveness timers when limits.sweep_interval_s or
 * limits.heartbeat_interval_s changed (a reload). On the worker's thread. */
void worker_retime(struct worker *w);

/* Called by the connection release path: lets a stopping worker finish. */
void worker_conn_released(struct worker *w);

/* Milliseconds of the worker's loop clock. */
static inline uint64_t worker_now(struct worker *w) { return uv_now(&w->loop); }

/* Whether the worker's sweeps are behind: within limits.shed_after_ms of
 * finding a queue whose socket takes writes, yet whose oldest message had
 * waited longer than that (net/worker.c). The fan-out sheds meanwhile. */
bool worker_behind(struct worker *w);

#endif
