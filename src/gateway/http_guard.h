/* http_guard.h - the guard's rules applied to plain HTTP requests
 * (PROTOCOL.md section 7): blocked IPs, the per-IP and global connection
 * limits, and refused credentials counted as violations of the client IP.
 *
 * A WebSocket connection is counted by its upgrade, from the handshake to
 * its end. A plain HTTP connection is counted in the same tables while it
 * has a request being answered: from the moment a request is complete (its
 * client IP known) until every answer has been handed to the socket. So a
 * client that does not read its answers keeps its connection counted, and
 * an idle keep-alive connection is not (its time is bounded instead:
 * server.handshake_timeout_ms idle, server.keepalive_max_s in all). */
#ifndef TG_HTTP_GUARD_H
#define TG_HTTP_GUARD_H

#include <stdbool.h>

#include "net/clientip.h"

struct conn;
struct identity;

/* True, after answering 403 (and closing), when the request's client IP
 * (c->cip) is blocked. */
bool http_guard_blocked(struct conn *c);

/* Admits the request in c->http from c->cip: true, or false after answering
 * it (403 blocked IP, 429 per-IP limit, 503 node full; the connection then
 * closes). A connection that is still counted (answers of an earlier request
 * queued) stays counted once, moved from prev when its client IP changed.
 * global: whether the request counts against limits.max_connections. */
bool http_guard_admit(struct conn *c, const struct ip16 *prev, bool global);

/* Releases what http_guard_admit counted (answers written, upgrade, close);
 * safe to call again. */
void http_guard_release(struct conn *c);

/* Credentials refused with status (401 or 403, reason why) at stage
 * ("handshake", "api", "admin_api"): audited as AUTH_FAILED and counted as
 * an auth_failed violation of the client IP; the violation that reaches
 * security.critical_violations blocks the IP. */
void http_guard_auth_failed(struct conn *c, int status, const char *why, const char *stage);

/* Who the request's credentials say the client is: a Bearer token in
 * Authorization or the token query parameter, else X-API-Key or api_key
 * (auth_identify: anonymous when none and allowed). 0 or the HTTP status
 * to refuse with; *why a short fixed reason. */
int http_guard_authenticate(struct conn *c, struct identity *who, const char **why);

/* The HTTP API's caller (stage "api" or "admin_api"): its credentials,
 * Bearer JWT or X-API-Key (none is never anonymous here), into who; or
 * false after answering 401 (bad or missing credentials) or 403 (a user the
 * users file does not know or has deactivated: as at the handshake),
 * counted as by http_guard_auth_failed. */
bool http_guard_identify(struct conn *c, bool keep_alive, const char *stage, struct identity *who);

/* Answers 403 (msg) to who, whose role may not do this: a forbidden
 * violation of the client IP, counted the same way. */
void http_guard_forbidden(struct conn *c, bool keep_alive, const struct identity *who, const char *stage,
                          const char *msg);

#endif
