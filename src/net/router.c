/* router.c - request routing; see router.h.
 *
 * Routes: server.ws_path and server.echo_path (GET upgrades), /health,
 * and the demo page's static files under /. A known path with the wrong
 * method gets 405 with Allow; anything else 404. */
#include "net/router.h"

#include <string.h>

#include "core/server.h"
#include "core/worker.h"
#include "net/conn.h"
#include "net/http.h"
#include "net/static_files.h"
#include "obs/health.h"
#include "ws/session.h"

static void method_not_allowed(struct conn *c, const char *allow) {
    char hdr[64];
    snprintf(hdr, sizeof(hdr), "Allow: %s\r\n", allow);
    conn_http_error(c, 405, "method_not_allowed", "method not allowed for this path", hdr,
                    http_req_keep_alive(c->http));
}

static void upgrade(struct conn *c, int ep) {
    struct server *srv = c->w->srv;
    char accept[29];
    if (!http_req_is_get(c->http)) {
        method_not_allowed(c, "GET");
        return;
    }
    if (ws_handshake_check(c, accept) != 0)
        return;
    if (atomic_load(&srv->shutting_down)) {
        conn_http_error(c, 503, "shutting_down", "server is shutting down", NULL, false);
        return;
    }
    if (!server_ws_reserve(srv)) {
        conn_http_error(c, 503, "server_full", "connection limit reached", "Retry-After: 5\r\n", false);
        return;
    }
    c->counted = true;
    ws_session_upgrade(c, ep, accept);
}

void router_dispatch(struct conn *c) {
    struct server *srv = c->w->srv;
    const char *path = c->http->path;
    bool keep = http_req_keep_alive(c->http);
    if (strcmp(path, srv->cfg.server.ws_path) == 0) {
        upgrade(c, EP_JSON);
    } else if (srv->cfg.server.echo_path[0] && strcmp(path, srv->cfg.server.echo_path) == 0) {
        upgrade(c, EP_ECHO);
    } else if (strcmp(path, "/health") == 0) {
        if (!http_req_is_get(c->http) && !http_req_is_head(c->http))
            method_not_allowed(c, "GET, HEAD");
        else
            health_respond(c, keep);
    } else if (static_files_has(srv, path)) {
        if (!http_req_is_get(c->http) && !http_req_is_head(c->http))
            method_not_allowed(c, "GET, HEAD");
        else
            static_files_respond(c, path, keep);
    } else {
        conn_http_error(c, 404, "not_found", "no such path", NULL, keep);
    }
}
