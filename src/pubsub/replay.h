/* replay.h - recovery after reconnect (PROTOCOL.md section 13): a client
 * resumes a symbol from its last seq, with no gap and no duplicate.
 *
 * A recovering subscription is first *held*: the symbol is active on the
 * worker, so every tick sequenced from then on reaches it, but its frames
 * wait in the subscription's hold instead of the socket. The source then
 * answers (this node's ring: replay_fill_local; with Redis, the cluster's
 * stream, later, through worker mail): the symbol's current epoch and,
 * when the client's epoch is current and every tick after its seq is
 * retained, those ticks. The caller sends subscription_confirmed, then
 * replay_start: the replayed ticks are written in slices (each loop turn,
 * while the queue is under half of limits.max_outbound_bytes), then the
 * held frames newer than the last replayed one, then the live stream.
 * Missed: the snapshot, then the held frames newer than it.
 *
 * Bounds: at most feed.history_size ticks per symbol are replayed; the
 * hold keeps at most limits.max_outbound_bytes of frames per symbol, past
 * which the newest replaces the last held (conflation: the completeness
 * promise ends there, as it does under the slow-consumer policy). */
#ifndef TG_REPLAY_H
#define TG_REPLAY_H

#include <stdbool.h>
#include <stdint.h>

#include "pubsub/hub.h"

struct conn;
struct outbuf;
struct worker;
struct worker_mail;

/* One symbol of a subscribe. */
struct recover_item {
    uint32_t sym;
    bool want;                        /* the client asked to recover it */
    uint64_t after;                   /* want: the client's last seq */
    char epoch[HUB_EPOCH_MAX + 1];    /* in (want): the client's; out: the current one */
    bool recovered;                   /* out: ticks after `after` are in t */
    struct tick *t;                   /* out: oldest first (owned) */
    uint32_t n;
};

/* A subscribe's recovery question and the source's answer. Travels from
 * the worker to the source (maybe another thread) and back. */
struct recover_req {
    int worker;
    uint64_t conn_id;
    void *upper;                      /* the asker's own state (the gateway's reply) */
    void (*drop)(struct recover_req *r); /* the asker's: frees r unanswered (shutdown, full mailbox) */
    const struct worker_mail *mail;   /* the answer's kind; NULL: the source's usual one */
    uint32_t sent, answered;          /* the source's progress */
    uint32_t n;
    struct recover_item items[];
};

/* n items, zeroed; NULL when memory is short. */
struct recover_req *recover_req_new(uint32_t n);
/* Frees the items' ticks and r (not upper). */
void recover_req_free(struct recover_req *r);

/* Answers r (or one item of it) from this node's ring and epochs (any
 * thread). */
void replay_fill_local(struct hub *h, struct recover_req *r);
void replay_fill_item(struct hub *h, struct recover_item *it);

/* Subscribes c to sym held: no snapshot, live frames wait (a replay or a
 * hold already running for sym is dropped first). 0 or -ENOMEM. */
int replay_hold(struct conn *c, uint32_t sym);

/* Ends the hold of it->sym on c: the replay of it->t (ownership taken)
 * when recovered, else the snapshot; then the held frames and live. No-op
 * when sym is no longer held on c (unsubscribed meanwhile). */
void replay_start(struct conn *c, struct recover_item *it);

/* A held subscription's frame (subs_deliver): kept, reference consumed. */
void replay_hold_frame(struct conn *c, struct outbuf *b);

/* sym leaves c (unsubscribe, re-subscribe, release): its replay and hold
 * are dropped. */
void replay_forget(struct conn *c, uint32_t sym);

/* The worker's slice pump: writes the next slice of every replay. */
void replay_pump(struct worker *w);

#endif
