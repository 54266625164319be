/* session.h - the gateway's state of one WebSocket client: who it is, its
 * liveness and its standing. It lives in the connection's slot, after
 * pubsub's subscriptions (net/conn.h conn_upper), so an idle client costs
 * no allocation beyond its slot. Owned by the connection's worker. */
#ifndef TG_GATEWAY_SESSION_H
#define TG_GATEWAY_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/conn.h"
#include "pubsub/subs.h"

struct budget;
struct entitle_set;

struct session {
    struct conn_subs subs;         /* first: pubsub finds it at conn_upper */
    char *user_id;                 /* NULL = anonymous; uid_inl or owned (lifecycle.c) */
    struct budget *budget;         /* message budget of the identity (auth/budget.h), a reference */
    struct entitle_set *ent_rt;    /* real-time entitlement (auth/entitle.h), a reference; NULL = all */
    struct entitle_set *ent_delayed; /* delayed entitlement, a reference; NULL = none */
    int64_t token_exp;             /* s since epoch; 0 = no token */
    int64_t connected_at;          /* wall ms at upgrade */
    uint64_t last_ping;            /* loop ms of the last ping sent */
    uint64_t first_ping;           /* loop ms of the first ping since last_rx */
    uint16_t violations;           /* security violations (<= CONFIG_MAX_VIOLATIONS): threat level */
    int8_t role;                   /* enum role */
    bool expiry_warned;            /* token_expiring sent */
    bool guarded;                  /* admitted by the guard: release once */
    bool redis_user;               /* counted in Redis per-user totals */
    char uid_inl[24];              /* user ids that fit live here: no allocation */
};

_Static_assert(offsetof(struct session, subs) == 0, "pubsub's part comes first in the upper area");

static inline struct session *session_of(const struct conn *c) { return (struct session *)conn_upper((struct conn *)c); }

/* The connection's user id, or NULL (anonymous); for pubsub's user events. */
static inline const char *session_user(const struct conn *c) { return session_of(c)->user_id; }

#endif
