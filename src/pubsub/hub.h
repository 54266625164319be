/* hub.h - per-symbol state, sequencing and fan-out to workers.
 *
 * The hub owns each symbol's last tick, session first price and seq; each
 * symbol has its own small lock, held while a tick is sequenced and its
 * frame posted to the workers, so every worker receives a symbol's frames
 * in seq order whoever published them. A tick's frame is built once and
 * shared by reference: one reference per worker that has subscribers.
 *
 * Activity: a symbol is active while at least one worker has a local
 * subscriber (a bit per worker in `workers`); only active symbols get
 * frames built, and the simulator only moves active symbols. A symbol may
 * also be watched (hub_watch: the broker's resting limit orders): its
 * ticks go to the on_tick observer, subscribers or not.
 *
 * The hub knows none of the rooms above it: the cluster and the broker
 * hear it through the observers the app sets at start (hub_observers). */
#ifndef TG_HUB_H
#define TG_HUB_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "pubsub/symbols.h"
#include "pubsub/tick.h"

struct outbuf;
struct worker;
struct tick_in;
struct recover_req;

#define HUB_MAX_WORKERS 64
#define HUB_EPOCH_MAX 32       /* PROTOCOL.md section 13: an epoch is <= 32 chars */

struct sym_state {
    uv_mutex_t lock;           /* guards everything below but workers */
    double first;              /* session's first price, for change */
    struct tick last;          /* last tick (seq 0 = none yet) */
    bool has_price;
    _Atomic uint64_t workers;  /* bit per worker with local subscribers */
    _Atomic uint32_t watchers; /* hub_watch count: on_tick wanted */
    _Atomic uint64_t delayed_workers; /* bit per worker with delayed subscribers (subset of workers) */
    struct tick *hist;         /* ring of recent ticks (feed.history_size), lazily */
    uint32_t *hist_gen;        /* epoch_gen of each ring entry */
    uint32_t hist_head;        /* next slot */
    uint32_t hist_count;
    char epoch[HUB_EPOCH_MAX + 1]; /* the seq numbering's epoch ("" = not known yet: Redis) */
    uint32_t epoch_gen;        /* bumped whenever epoch changes */
    _Atomic uint64_t posted_seq; /* seq of the newest frame posted to the workers (read by their shedding) */
};

/* OHLC/VWAP over a window (PROTOCOL.md section 4, analysis). */
struct analysis {
    double open, high, low, close, vwap, volume;
    uint32_t count;
};

/* A tick as published (before sequencing). */
struct tick_in {
    uint32_t sym;
    double price, bid, ask, volume;
    bool has_bid, has_ask, has_volume;
    int64_t timestamp;         /* ms; 0 = now */
};

/* What the rooms above hear from the hub, set once by the app before any
 * worker starts (hub_set_observers); a NULL function is not called. */
struct hub_observers {
    /* Publish interceptor (the cluster): true when it takes the tick to
     * sequence elsewhere (it comes back through hub_deliver), false to
     * sequence it here. Any thread. */
    bool (*publish)(void *ctx, const struct tick_in *in);
    void *publish_ctx;
    /* sym's interest changed: its first or last local subscriber, or its
     * first watcher. Any thread, no lock held. */
    void (*interest)(void *ctx, uint32_t sym);
    void *interest_ctx;
    /* A tick of a watched symbol, under the symbol's lock (so in seq
     * order): must not block (the broker posts to its mailbox). */
    void (*on_tick)(void *ctx, uint32_t sym, double price);
    void *tick_ctx;
    /* A recovery question for the shared source (the cluster): true when
     * taken (answered later as r->mail on r->worker), false to answer it
     * here. Any thread. NULL: this node's ring is the source. */
    bool (*recover)(void *ctx, struct recover_req *r);
    void *recover_ctx;
};

struct hub {
    struct worker *workers;            /* fan-out targets: bit w = workers[w]; read-only after start */
    int nworkers;
    struct hub_observers obs;          /* read-only after start */
    const struct symbol_table *syms;
    struct sym_state *st;              /* syms->n entries */
    _Atomic long active_streams;       /* symbols with >= 1 local subscriber */
    _Atomic uint64_t ticks_published;  /* ticks sequenced */
    _Atomic uint64_t frames_dropped;   /* a worker's mailbox was full */
    _Atomic int64_t last_tick_ms;      /* wall ms of the last tick: feed health */
    uint32_t history_size;             /* ring size per symbol, read-only */
    char local_epoch[HUB_EPOCH_MAX + 1]; /* this process's epoch: new at every start */
    int64_t delay_ms;                  /* feed.delay_s in ms (hub_set_delay), read-only after start */
};

/* Copies the newest n <= limit ticks of sym, oldest first, into out
 * (room for limit). Returns n. */
uint32_t hub_history(struct hub *h, uint32_t sym, uint32_t limit, struct tick *out);

/* Computes the analysis of ticks (oldest first, n of them) whose source
 * timestamp lies within window_s of now_ms. Pure: shared by the local and
 * the Redis paths. */
void hub_analyze(const struct tick *ticks, uint32_t n, int64_t now_ms, int window_s, struct analysis *out);

/* Appends a tick to sym's history ring (called with the symbol's lock). */
void hub_history_push_locked(struct hub *h, struct sym_state *s, const struct tick *t);

/* history_size: ticks kept per symbol (feed.history_size). 0 or -ENOMEM. */
int hub_init(struct hub *h, const struct symbol_table *syms, uint32_t history_size);
void hub_free(struct hub *h);

/* The workers ticks fan out to (n <= HUB_MAX_WORKERS), and the observers:
 * both before any worker starts, never changed after. */
void hub_set_workers(struct hub *h, struct worker *workers, int n);
void hub_set_observers(struct hub *h, const struct hub_observers *obs);

/* Publishes a tick: through the publish observer when it takes it (Redis:
 * seq assigned there, the tick comes back through hub_deliver on every
 * node), else sequenced here. Any thread. 0 or -errno. */
int hub_publish(struct hub *h, const struct tick_in *in);

/* Sequences a tick on this node and fans it out. Any thread. */
int hub_publish_local(struct hub *h, const struct tick_in *in);

/* Fans out a tick sequenced elsewhere (Redis); ignores one not newer than
 * the symbol's last. first is the cluster's session first price, epoch
 * the cluster's epoch of sym ("" = keep the current one). */
void hub_deliver(struct hub *h, uint32_t sym, const struct tick *t, double first, const char *epoch);

/* Copies sym's current epoch into out (HUB_EPOCH_MAX + 1 bytes): "" when
 * not known yet (with Redis, before this node heard the symbol). */
void hub_epoch(struct hub *h, uint32_t sym, char *out);

/* Recovery from this node's ring (pubsub/replay.h): when epoch is sym's
 * current epoch and every tick after seq `after` is retained under it,
 * copies them (oldest first, at most cap) into out, sets *n and returns
 * true; else false (too old, or another epoch). *last gets sym's last seq
 * either way: frames newer than it reach the worker afterwards (the caller
 * activated the symbol first). cur gets the current epoch. */
bool hub_replay(struct hub *h, uint32_t sym, uint64_t after, const char *epoch, struct tick *out, uint32_t cap,
                uint32_t *n, uint64_t *last, char *cur);

/* Worker `worker` gained its first local subscriber of sym. */
void hub_activate(struct hub *h, uint32_t sym, int worker);
/* Worker `worker` lost its last local subscriber of sym. */
void hub_deactivate(struct hub *h, uint32_t sym, int worker);

/* Builds a snapshot frame (price_update with "snapshot":true) of sym's
 * last tick; *seq gets its seq (0 when no price yet, then NULL returned). */
struct outbuf *hub_snapshot(struct hub *h, uint32_t sym, uint64_t *seq);

/* Delayed data (PROTOCOL.md s.14; pubsub/lanes.h). While a worker has a
 * delayed subscriber of sym, each tick's delayed frame ("delayed":true) is
 * built once and posted to it with its release time. */
void hub_set_delay(struct hub *h, int64_t delay_ms);

/* The release time (wall ms) of a tick with source timestamp ts seen at
 * now: ts + delay, kept within [now, now + delay] (a tick from the future
 * waits no longer than delay, an old one goes at once). */
int64_t hub_release_ms(const struct hub *h, int64_t ts, int64_t now);

/* Worker `worker` gained its first delayed subscriber of sym: from now on
 * it gets delayed frames. Copies into out (room for cap) the history ticks
 * still to be released, oldest first, taken under the same lock so none is
 * missed or doubled; returns how many. */
uint32_t hub_delay_activate(struct hub *h, uint32_t sym, int worker, struct tick *out, uint32_t cap);
void hub_delay_deactivate(struct hub *h, uint32_t sym, int worker);

/* A price_update frame of t (refs 1; OB_TICK unless snapshot, which adds
 * "snapshot":true; delayed adds "delayed":true), its compressed sibling
 * prepared when a live one is wanted (net/zframe.h). NULL out of memory. */
struct outbuf *hub_frame(struct hub *h, uint32_t sym, const struct tick *t, bool snapshot, bool delayed);

/* The delayed snapshot: the newest tick at least delay old, or NULL;
 * *seq gets its seq (0 when none). */
struct outbuf *hub_snapshot_delayed(struct hub *h, uint32_t sym, uint64_t *seq);

/* hub_history of the ticks whose source timestamp is at most before_ms. */
uint32_t hub_history_before(struct hub *h, uint32_t sym, uint32_t limit, int64_t before_ms, struct tick *out);

static inline bool hub_is_active(struct hub *h, uint32_t sym) {
    return atomic_load_explicit(&h->st[sym].workers, memory_order_relaxed) != 0;
}

/* Watches sym: its ticks go to the on_tick observer (which must be set)
 * until the matching hub_unwatch. The first watcher tells the interest observer; the last one
 * going tells no one (the symbol's channel stays until its next activity
 * change). Any thread. */
void hub_watch(struct hub *h, uint32_t sym);
void hub_unwatch(struct hub *h, uint32_t sym);

static inline bool hub_is_watched(struct hub *h, uint32_t sym) {
    return atomic_load_explicit(&h->st[sym].watchers, memory_order_relaxed) != 0;
}

/* Wall clock in ms. */
int64_t hub_now_ms(void);

#endif
