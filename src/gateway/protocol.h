/* protocol.h - the gateway's JSON protocol on server.ws_path
 * (PROTOCOL.md sections 4 and 5): greeting, message dispatch, replies. */
#ifndef TG_PROTOCOL_H
#define TG_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conn;
struct identity;
struct gateway;
struct worker;

/* Sets who the connection is (before protocol_on_open, or on authenticate),
 * taking id's entitlement references. */
void protocol_set_identity(struct conn *c, struct identity *id);

/* "c-<hex>" of the connection id. */
void protocol_client_id(const struct conn *c, char *out, size_t len);

/* Posts text (one JSON message, consumed) to connection conn_id of
 * worker: a reply computed on another thread. Any thread. */
void protocol_reply_later(struct gateway *gw, int worker, uint64_t conn_id, char *text);

/* Worker mail of the gateway, for the rooms below that post it without
 * knowing the gateway (given to them at init): re-send every connection's
 * persisted state (Redis is back). */
struct worker_mail;
extern const struct worker_mail PROTOCOL_RESYNC_MAIL;
/* A subscribe's recovery question answered by the cluster (ptr: struct
 * recover_req): confirm, then replay or snapshot. */
extern const struct worker_mail PROTOCOL_RECOVER_MAIL;

struct tick;

/* The history / analysis_result replies (id_json: the request's id as JSON
 * text or NULL). Shared by the local and the Redis paths. malloc'd text. */
char *protocol_history_text(struct gateway *gw, uint32_t sym, const struct tick *t, uint32_t n, const char *id_json);
char *protocol_analysis_text(struct gateway *gw, uint32_t sym, const struct tick *t, uint32_t n, int window_s,
                             const char *id_json);

/* Label of an enum disc_reason (metrics, audit). */
const char *protocol_disc_reason_name(int r);

/* "low", "medium" or "high": the connection's threat level. */
const char *protocol_threat(const struct conn *c);

/* Sweeper visit: token expiry. */
void protocol_sweep(struct conn *c, uint64_t now);

/* Liveness visit (the worker's heartbeat clock): a ping every
 * heartbeat_interval_s, close 4000 once the client has been silent for
 * heartbeat_timeout_s and was pinged meanwhile. */
void protocol_liveness(struct conn *c, uint64_t now);

/* The connection was upgraded on the JSON endpoint: greet it. */
void protocol_on_open(struct conn *c);

/* One complete, UTF-8-valid text message. */
void protocol_on_message(struct conn *c, const char *data, size_t len);

/* The close handshake started with code (either side). */
void protocol_on_close(struct conn *c, unsigned code);

/* The connection is being freed: drop everything it holds elsewhere. */
void protocol_on_release(struct conn *c);

/* After a reload changed [throttle] (on the connection's worker): each
 * held subscription moves to its role's new rate, as on authenticate. */
void protocol_reapply_modes(struct conn *c);

/* Releases identity and admission (guard, Redis user count) exactly once. */
void protocol_release_identity(struct conn *c);

/* Writes the connection's record and subscriptions to Redis (when on);
 * resync: Redis came back and the node writes its whole state again. */
void protocol_persist(struct conn *c, bool resync);

#endif
