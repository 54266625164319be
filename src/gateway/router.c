/* router.c - request routing; see router.h.
 *
 * Routes: server.ws_path and server.echo_path (GET upgrades), /health, /ready,
 * /metrics, /api/stats, /api/admin/..., /api/publish and the demo page's
 * static files under /. A blocked client IP gets 403 on every path; other
 * requests are counted against the connection limits (gateway/http_guard.h). A
 * known path with the wrong method gets 405 with Allow; anything else 404. */
#include "gateway/router.h"

#include <stdlib.h>
#include <string.h>

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
#include "gateway/session.h"
#include "net/conn.h"
#include "net/http.h"
#include "gateway/http_guard.h"
#include "net/static_files.h"
#include "gateway/health.h"
#include "ws/handshake.h"
#include "net/websocket.h"
#include "auth/auth.h"
#include "gateway/protocol.h"
#include "cluster/engine.h"
#include "gateway/admin.h"
#include "gateway/api.h"
#include "gateway/metrics.h"
#include "gateway/ready.h"

static bool list_has(const char *list, const char *v, size_t vl) {
    const char *cur = list, *p;
    size_t l;
    while (config_list_next(&cur, &p, &l))
        if (l == vl && strncmp(p, v, l) == 0)
            return true;
    return false;
}

static void method_not_allowed(struct conn *c, const char *allow) {
    char hdr[64];
    snprintf(hdr, sizeof(hdr), "Allow: %s\r\n", allow);
    conn_http_error(c, 405, "method_not_allowed", "method not allowed for this path", hdr,
                    http_req_keep_alive(c->http));
}

/* server.allowed_origins: empty = any; else the Origin header (when the
 * client sends one) must be in the list. */
static bool origin_allowed(struct gateway *gw, const struct http_req *r) {
    const char *list = gw->cfg->server.allowed_origins;
    size_t ol = 0;
    const char *o = http_req_header(r, "Origin", &ol);
    if (!list[0] || !o)
        return true;
    return list_has(list, o, ol);
}

/* The request's client IP (section 7) into c->cip. */
static void resolve_ip(struct conn *c) {
    struct ip16 peer;
    char xff[HTTP_MAX_HEAD];
    ip16_from_raw(&peer, c->family, c->ip);
    size_t xl = gateway_of(c)->trusted->n ? http_req_header_all(c->http, "X-Forwarded-For", xff, sizeof(xff)) : 0;
    c->cip = client_ip(gateway_of(c)->trusted, &peer, xl ? xff : NULL, xl);
}

/* limits.max_connects_per_ip_per_minute: the handshake budget of the client
 * IP. Refused (429, like the other per-IP limits) when spent; a refusal is
 * no violation. */
static bool connect_budget_ok(struct conn *c) {
    struct gateway *gw = gateway_of(c);
    struct ip16 k = guard_key(gw->guard, &c->cip);
    uint64_t wait = 0;
    if (budget_take_key(gw->budgets, BUDGET_CONNECT_IP, k.b, sizeof(k.b), worker_now(c->w) * 1000000ULL, &wait))
        return true;
    char hdr[48];
    uint64_t secs = (wait + 999999999ULL) / 1000000000ULL; /* whole seconds, rounded up */
    snprintf(hdr, sizeof(hdr), "Retry-After: %llu\r\n", (unsigned long long)(secs ? secs : 1));
    conn_http_error(c, 429, "too_many_connection_attempts", "handshakes per IP per minute reached", hdr, false);
    return false;
}

static void upgrade(struct conn *c, int ep) {
    struct gateway *gw = gateway_of(c);
    char accept[29];
    if (!http_req_is_get(c->http)) {
        method_not_allowed(c, "GET");
        return;
    }
    if (ws_handshake_check(c, accept) != 0)
        return;
    if (atomic_load(gw->shutting_down)) {
        conn_http_error(c, 503, "shutting_down", "server is shutting down", NULL, false);
        return;
    }
    if (ep == EP_JSON && !connect_budget_ok(c))
        return;
    if (!origin_allowed(gw, c->http)) {
        conn_http_error(c, 403, "origin_not_allowed", "Origin not allowed", NULL, false);
        return;
    }
    if (!gateway_conn_reserve(gw)) {
        conn_http_error(c, 503, "server_full", "connection limit reached", "Retry-After: 5\r\n", false);
        return;
    }
    c->counted = true; /* released with the connection, whatever follows */
    atomic_fetch_add_explicit(&c->w->stats.ws_open, 1, memory_order_relaxed);
    if (ep == EP_JSON) {
        struct identity who;
        const char *why = NULL;
        int st = http_guard_authenticate(c, &who, &why);
        if (st) {
            http_guard_auth_failed(c, st, why, "handshake");
            conn_http_error(c, st, st == 401 ? "unauthorized" : "forbidden", why, NULL, false);
            return;
        }
        const char *which = "ip";
        enum guard_verdict v = guard_admit(gw->guard, &c->cip, who.user_id[0] ? who.user_id : NULL, &which);
        if (v != GUARD_OK)
            auth_identity_release(&who);
        if (v == GUARD_BLOCKED) {
            conn_http_error(c, 403, "ip_blocked", "this IP is blocked", NULL, false);
            return;
        }
        if (v == GUARD_LIMIT) {
            conn_http_error(c, 429, "too_many_connections",
                            strcmp(which, "user") == 0 ? "connection limit per user reached"
                                                       : "connection limit per IP reached",
                            "Retry-After: 10\r\n", false);
            return;
        }
        session_of(c)->guarded = true; /* released in protocol_on_release */
        protocol_set_identity(c, &who);
        if (session_of(c)->user_id && redis_engine_up(gw->redis)) {
            /* The per-user limit counts every node: ask Redis, answer later. */
            struct redis_admit *a = calloc(1, sizeof(*a));
            if (a) {
                a->worker = c->w->id;
                a->conn_id = c->id;
                a->limit = gw->cfg->limits.max_connections_per_user;
                snprintf(a->user, sizeof(a->user), "%s", session_of(c)->user_id);
                c->awaiting = true;
                uv_read_stop((uv_stream_t *)&c->tcp);
                if (redis_engine_post(gw->redis, RM_ADMIT, a, 0) == 0)
                    return;
                c->awaiting = false; /* engine unreachable: local limits decide */
            }
        }
    }
    ws_session_upgrade(c, ep, accept);
}

static void admit_result(struct worker *w, struct redis_admit *a) {
    struct conn *c = conn_find(w, a->conn_id);
    if (!c || !c->awaiting || c->phase != PHASE_HTTP) {
        if (a->counted) /* counted for a connection that went away */
            redis_engine_release_user(gateway_of_worker(w)->redis, a->user);
        free(a);
        return;
    }
    c->awaiting = false;
    if (!a->ok) {
        free(a);
        conn_http_error(c, 429, "too_many_connections", "connection limit per user reached", "Retry-After: 10\r\n",
                        false);
        return;
    }
    session_of(c)->redis_user = a->counted;
    free(a);
    char accept[29];
    size_t kl = 0;
    const char *key = http_req_header(c->http, "Sec-WebSocket-Key", &kl);
    ws_accept_key(key, kl, accept);
    ws_session_upgrade(c, EP_JSON, accept);
    conn_resume_read(c);
}

/* The operator's paths, answered even when the node is full: a full node
 * must stay observable and manageable, and must not look dead to a
 * liveness probe. They still count against the per-IP limit. */
static bool operator_path(const char *path) {
    return strcmp(path, "/health") == 0 || strcmp(path, "/ready") == 0 || strcmp(path, "/metrics") == 0 || strcmp(path, "/api/stats") == 0 ||
           strncmp(path, "/api/admin/", 11) == 0;
}

void router_dispatch(struct conn *c) {
    struct gateway *gw = gateway_of(c);
    const char *path = c->http->path;
    bool keep = http_req_keep_alive(c->http);
    bool ws = strcmp(path, gw->cfg->server.ws_path) == 0;
    bool echo = !ws && gw->cfg->server.echo_path[0] && strcmp(path, gw->cfg->server.echo_path) == 0;
    struct ip16 prev = c->cip;
    if (ws || echo)
        http_guard_release(c); /* an upgrade is counted as a WebSocket connection */
    resolve_ip(c);
    if (ws || echo) {
        if (!http_guard_blocked(c))
            upgrade(c, ws ? EP_JSON : EP_ECHO);
        return;
    }
    if (!http_guard_admit(c, &prev, !operator_path(path)))
        return;
    if (strcmp(path, "/health") == 0) {
        if (!http_req_is_get(c->http) && !http_req_is_head(c->http))
            method_not_allowed(c, "GET, HEAD");
        else
            health_respond(c, keep);
    } else if (strcmp(path, "/ready") == 0) {
        if (!http_req_is_get(c->http) && !http_req_is_head(c->http))
            method_not_allowed(c, "GET, HEAD");
        else
            ready_respond(c, keep);
    } else if (strcmp(path, "/metrics") == 0) {
        if (!http_req_is_get(c->http) && !http_req_is_head(c->http))
            method_not_allowed(c, "GET, HEAD");
        else if (!metrics_authorized(c))
            conn_http_error(c, 401, "unauthorized", "/metrics needs Authorization: Bearer <server.metrics_token>",
                            "WWW-Authenticate: Bearer realm=\"metrics\"\r\n", keep);
        else
            metrics_respond(c, keep);
    } else if (strcmp(path, "/api/stats") == 0) {
        if (!http_req_is_get(c->http) && !http_req_is_head(c->http))
            method_not_allowed(c, "GET, HEAD");
        else
            stats_respond(c, keep);
    } else if (strncmp(path, "/api/admin/", 11) == 0) {
        admin_http(c, path, keep);
    } else if (strcmp(path, "/api/publish") == 0) {
        if (!http_req_is_post(c->http))
            method_not_allowed(c, "POST");
        else
            api_publish(c, keep);
    } else if (static_files_has(gw->cfg->server.static_dir, path)) {
        if (!http_req_is_get(c->http) && !http_req_is_head(c->http))
            method_not_allowed(c, "GET, HEAD");
        else
            static_files_respond(c, path, keep);
    } else {
        conn_http_error(c, 404, "not_found", "no such path", NULL, keep);
    }
}

static void run_admit(struct worker *w, void *a, uint64_t x, uint64_t y) { admit_result(w, a); }
static void drop_admit(void *a, uint64_t x, uint64_t y) { free(a); }
const struct worker_mail ROUTER_ADMIT_MAIL = {"admit_result", run_admit, drop_admit};
