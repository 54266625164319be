/* protocol_internal.h - what the files of the JSON protocol share
 * (protocol.c: the gate and dispatch; lifecycle.c: a connection's life;
 * msg_*.c: one message family each). Not for use outside src/gateway/.
 *
 * Every function here runs on the connection's worker thread. Those that
 * take id echo it into the reply as the request's id (NULL: none); those
 * that take a json_t *o consume the reference. */
#ifndef TG_PROTOCOL_INTERNAL_H
#define TG_PROTOCOL_INTERNAL_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* The protocol finds its collaborators through gateway_of(c) (gateway.h). */
#include "auth/auth.h"
#include "auth/budget.h"
#include "auth/guard.h"
#include "base/audit.h"
#include "base/config.h"
#include "cluster/engine.h"
#include "gateway/gateway.h"
#include "net/clientip.h"
#include "pubsub/hub.h"
#include "pubsub/symbols.h"
#include "trade/broker.h"
#include "gateway/protocol.h"
#include "gateway/session.h"
#include "net/conn.h"
#include "net/worker.h"

/* Adds one to a worker statistic. */
static inline void proto_count(_Atomic uint64_t *c) { atomic_fetch_add_explicit(c, 1, memory_order_relaxed); }

/* Compact JSON text of o (consumed; NULL gives NULL), malloc'd, or NULL on
 * failure. */
char *proto_dump(json_t *o);

/* Sends text (one JSON message, NUL-terminated, copied) as a text frame and
 * counts it in messages_sent. */
void proto_send_text(struct conn *c, const char *text);

/* Sends o as one text frame; out of memory (o NULL) closes with 1011. */
void proto_send_json(struct conn *c, json_t *o);

/* proto_send_json with the request's id set in o. */
void proto_reply(struct conn *c, json_t *o, json_t *id);

/* An {"type":"error"} reply with code and message. */
void proto_send_error(struct conn *c, const char *code, const char *msg, json_t *id);

/* A security violation of kind v: counted, audited, raises the
 * connection's threat level (high closes it with 1008) and counts against
 * its IP (critical blocks the IP and closes all its connections). May
 * start the close of c: call it after the reply. */
void proto_violation(struct conn *c, enum violation v);

/* The error reply (code, msg) then the violation v: a refused message. */
void proto_refuse(struct conn *c, const char *code, const char *msg, json_t *id, enum violation v);

/* An audit record of event for c (details consumed, may be NULL). */
void proto_audit(struct conn *c, const char *event, json_t *details);

/* The request id as JSON text (for replies made on another thread),
 * malloc'd; NULL when id is NULL. */
char *proto_id_text(json_t *id);

/* The symbol field of msg: a known symbol's index, or < 0 after an
 * invalid_message refusal. */
int proto_query_symbol(struct conn *c, json_t *msg, json_t *id);

/* The integer field name of msg in lo..hi into *out (def when absent and
 * def >= lo): true, or false after an invalid_message refusal. */
bool proto_int_field(struct conn *c, json_t *msg, const char *name, long lo, long hi, long def, long *out,
                     json_t *id);

/* How c may receive sym (PROTOCOL.md s.14): in real time, delayed by
 * feed.delay_s, or not at all. */
enum entitlement { ENT_NONE = 0, ENT_REALTIME, ENT_DELAYED };
enum entitlement proto_entitlement(const struct conn *c, uint32_t sym);

/* The error forbidden for a symbol c is not entitled to: counted under
 * kind, not a security violation (no threat escalation). */
void proto_not_entitled(struct conn *c, uint32_t sym, enum not_entitled_kind kind, json_t *id);

/* After a new identity: subscriptions it is not entitled to are dropped
 * (one subscription_failed not_entitled), the others take its mode
 * (throttle, delayed). msg_subscribe.c */
void proto_reapply_entitlements(struct conn *c);

/* lifecycle.c */

/* Sends token_expiring once, when the token expires within a minute. */
void proto_maybe_warn_expiry(struct conn *c);

/* A reference to the message budget of c's identity (its user's, or its
 * IP's), or NULL out of memory; put it with budget_put. */
struct budget *proto_identity_budget(struct conn *c);

/* Writes c's subscribed symbols to Redis (when on). */
void proto_persist_subs(struct conn *c);

/* The message handlers, called by protocol_on_message once the message
 * passed the gate (parse, id, type, rate, role, content). msg is borrowed. */
void msg_authenticate(struct conn *c, json_t *msg, json_t *id);     /* msg_auth.c */
void msg_subscribe(struct conn *c, json_t *msg, json_t *id);        /* msg_subscribe.c */
void msg_unsubscribe(struct conn *c, json_t *msg, json_t *id);      /* msg_subscribe.c */
void msg_set_options(struct conn *c, json_t *msg, json_t *id);      /* msg_subscribe.c */
void msg_query(struct conn *c, json_t *msg, json_t *id, bool analysis); /* msg_market.c */
void msg_portfolio_subscribe(struct conn *c, json_t *id);           /* msg_trade.c */
void msg_trade(struct conn *c, json_t *msg, json_t *id);            /* msg_trade.c */
void msg_publish(struct conn *c, json_t *msg, json_t *id);          /* msg_publish.c */

#endif
