/* http_guard.c - blocks, connection limits and violations for plain HTTP
 * requests; see http_guard.h. */
#include "gateway/http_guard.h"

#include <jansson.h>
#include <string.h>
#include <strings.h>
#include <time.h>

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
#include "net/worker.h"
#include "net/conn.h"
#include "net/http.h"

bool http_guard_blocked(struct conn *c) {
    if (!guard_is_blocked(gateway_of(c)->guard, &c->cip))
        return false;
    conn_http_error(c, 403, "ip_blocked", "this IP is blocked", NULL, false);
    return true;
}

bool http_guard_admit(struct conn *c, const struct ip16 *prev, bool global) {
    struct gateway *gw = gateway_of(c);
    if (c->http_ip && memcmp(prev->b, c->cip.b, sizeof(c->cip.b)) != 0) {
        /* Another client behind the same proxy connection. */
        guard_release(gw->guard, prev, NULL);
        c->http_ip = false;
    }
    if (c->http_ip) {
        if (http_guard_blocked(c))
            return false;
    } else {
        const char *which = "ip";
        enum guard_verdict v = guard_admit(gw->guard, &c->cip, NULL, &which);
        if (v == GUARD_BLOCKED) {
            conn_http_error(c, 403, "ip_blocked", "this IP is blocked", NULL, false);
            return false;
        }
        if (v != GUARD_OK) {
            conn_http_error(c, 429, "too_many_connections", "connection limit per IP reached",
                            "Retry-After: 10\r\n", false);
            return false;
        }
        c->http_ip = true;
    }
    if (global && !c->http_slot) {
        if (!gateway_conn_reserve(gw)) {
            conn_http_error(c, 503, "server_full", "connection limit reached", "Retry-After: 5\r\n", false);
            return false;
        }
        c->http_slot = true;
    }
    return true;
}

void http_guard_release(struct conn *c) {
    struct gateway *gw = gateway_of(c);
    if (c->http_ip) {
        guard_release(gw->guard, &c->cip, NULL);
        c->http_ip = false;
    }
    if (c->http_slot) {
        gateway_conn_release(gw);
        c->http_slot = false;
    }
}

/* A violation of the client IP (there is no connection-level threat level
 * before a WebSocket exists): counted, audited, and the one that makes the
 * IP critical blocks it on every worker. */
static void violation(struct conn *c, enum violation v, const char *kind, const char *user, const char *stage) {
    struct gateway *gw = gateway_of(c);
    char ip[64];
    ip16_format(&c->cip, ip, sizeof(ip));
    atomic_fetch_add_explicit(&c->w->stats.violations[v], 1, memory_order_relaxed);
    audit_event(gw->audit, "SECURITY_VIOLATION", NULL, user, ip,
                json_pack("{s:s, s:s}", "kind", kind, "stage", stage));
    if (guard_violation(gw->guard, &c->cip, (int64_t)time(NULL)))
        gateway_block_ip(gw, &c->cip, gw->cfg->security.auto_block_s, "threat level critical");
}

void http_guard_auth_failed(struct conn *c, int status, const char *why, const char *stage) {
    char ip[64];
    ip16_format(&c->cip, ip, sizeof(ip));
    audit_event(gateway_of(c)->audit, "AUTH_FAILED", NULL, NULL, ip,
                json_pack("{s:s, s:i, s:s}", "reason", why, "status", status, "stage", stage));
    violation(c, SV_AUTH_FAILED, "auth_failed", NULL, stage);
}

int http_guard_authenticate(struct conn *c, struct identity *who, const char **why) {
    const struct http_req *r = c->http;
    struct credentials cr = {0};
    char q[4096];
    size_t l = 0;
    const char *h = http_req_header(r, "Authorization", &l);
    if (h && l > 7 && strncasecmp(h, "Bearer ", 7) == 0)
        cr.token = h + 7, cr.token_len = l - 7;
    else if (h)
        cr.unusable = true;
    else if (http_req_query(r, "token", q, sizeof(q)))
        cr.token = q, cr.token_len = strlen(q);
    else if ((h = http_req_header(r, "X-API-Key", &l)))
        cr.key = h, cr.key_len = l;
    else if (http_req_query(r, "api_key", q, sizeof(q)))
        cr.key = q, cr.key_len = strlen(q);
    return auth_identify(gateway_of(c)->auth, &cr, who, why);
}

bool http_guard_identify(struct conn *c, bool keep_alive, const char *stage, struct identity *who) {
    const char *why = "credentials required";
    size_t l;
    bool has = http_req_header(c->http, "Authorization", &l) || http_req_header(c->http, "X-API-Key", &l);
    /* The handshake's statuses: 401 bad or missing credentials, 403 a
     * valid token of a user the users file does not know or has
     * deactivated. */
    int st = has ? http_guard_authenticate(c, who, &why) : 401;
    if (st == 0) {
        auth_identity_release(who); /* the HTTP API asks who, not which symbols */
        return true;
    }
    http_guard_auth_failed(c, st, why, stage);
    conn_http_error(c, st, st == 401 ? "unauthorized" : "forbidden", why, NULL, keep_alive);
    return false;
}

void http_guard_forbidden(struct conn *c, bool keep_alive, const struct identity *who, const char *stage,
                          const char *msg) {
    violation(c, SV_FORBIDDEN, "forbidden", who->user_id[0] ? who->user_id : NULL, stage);
    conn_http_error(c, 403, "forbidden", msg, NULL, keep_alive);
}
