/* budget.h - rate budgets that belong to an identity, not to a socket
 * (PROTOCOL.md section 7).
 *
 * A user's message budget (an anonymous client's: its IP's, see guard_key)
 * is one bucket shared by all its connections on every worker, and it
 * outlives them: closing and reconnecting does not refill it. The same table
 * holds each client IP's handshake budget (limits.max_connects_per_ip_per_
 * minute). Each bucket is a token bucket with burst = its per-minute figure,
 * kept as one atomic "theoretical arrival time" (GCRA), so taking a token is
 * one compare-and-swap on the bucket the connection holds: no lock on the
 * message path.
 *
 * Bounds: buckets in use are bounded by the connections holding them. An
 * unused bucket is kept until it is full again (at most a minute) and then
 * forgotten; at most BUDGET_IDLE_MAX unused buckets are kept, and past that
 * the one unused the longest (the nearest to full) is forgotten early,
 * counted in `evicted`. */
#ifndef TG_BUDGET_H
#define TG_BUDGET_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "net/clientip.h"

#define BUDGET_HASH 8192
#define BUDGET_IDLE_MAX 65536
#define BUDGET_KEY_MAX 128          /* user ids are < 128 bytes (auth.h) */

enum budget_kind {
    BUDGET_MSG_USER = 0,            /* messages of an authenticated user */
    BUDGET_MSG_IP,                  /* messages of an anonymous client IP */
    BUDGET_CONNECT_IP,              /* /ws handshakes of a client IP */
    BUDGET_KINDS,
};

struct budget;                      /* one identity's bucket; private */

struct budgets {
    uv_mutex_t lock;                /* guards the table, idle list and reference counts */
    struct budget *table[BUDGET_HASH];
    struct budget *idle_head, *idle_tail; /* unused buckets, longest unused first */
    size_t nidle;
    uint64_t interval_ns[BUDGET_KINDS]; /* one token per this; changed only by budgets_set_rates */
    uint64_t tau_ns[BUDGET_KINDS];  /* burst allowance: (burst - 1) intervals; read-only */
    _Atomic uint64_t evicted;       /* unused buckets forgotten early (table full) */
    _Atomic uint64_t refused[BUDGET_KINDS]; /* tokens asked for and not there */
    _Atomic long count;             /* buckets held now, in use or not (gauge) */
};

/* Rates in tokens per minute (= burst), at least 1. */
void budgets_init(struct budgets *b, long msg_per_min, long connects_per_min);
void budgets_free(struct budgets *b);

/* New rates (a reload), for buckets old and new: only while no other
 * thread takes tokens (every worker parked). */
void budgets_set_rates(struct budgets *b, long msg_per_min, long connects_per_min);

/* A reference to the bucket of (kind, key of len bytes), created full when
 * the identity has none. NULL when out of memory or len > BUDGET_KEY_MAX. */
struct budget *budget_get(struct budgets *b, enum budget_kind kind, const void *key, size_t len);

/* Drops a reference from budget_get; NULL is ignored. now_ns: monotonic. */
void budget_put(struct budgets *b, struct budget *x, uint64_t now_ns);

/* Takes one token at monotonic time now_ns. True when there was one; false
 * leaves the bucket as it was and, when wait_ns is not NULL, tells how long
 * until the next token. Any thread, no lock. */
bool budget_take(struct budgets *b, struct budget *x, uint64_t now_ns, uint64_t *wait_ns);

/* budget_get of a client's message budget: its user's (user_id non-NULL)
 * or, anonymous, its IP's (ipkey: guard_key of the client IP). */
struct budget *budget_for_client(struct budgets *b, const char *user_id, const struct ip16 *ipkey);

/* get + take + put, for a budget no connection holds (handshakes). Out of
 * memory counts as allowed: the connection limits still apply. */
bool budget_take_key(struct budgets *b, enum budget_kind kind, const void *key, size_t len, uint64_t now_ns,
                     uint64_t *wait_ns);

/* Forgets unused buckets that are full again; call periodically. */
void budget_sweep(struct budgets *b, uint64_t now_ns);

#endif
