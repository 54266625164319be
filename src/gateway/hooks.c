/* hooks.c - the gateway's side of net's worker hooks: which module answers
 * each transport event. */
#include "gateway/hooks.h"

#include "app/server.h"
#include "gateway/http_guard.h"
#include "gateway/protocol.h"
#include "gateway/session.h"
#include "gateway/router.h"
#include "net/conn.h"
#include "pubsub/subs.h"

/* The connection's memory goes next: the session's state (subscriptions,
 * identity, admission) and its place in limits.max_connections. */
static void on_release(struct conn *c) {
    struct worker *w = c->w;
    if (c->phase == PHASE_WS && c->endpoint == EP_JSON)
        protocol_on_release(c);
    else
        protocol_release_identity(c); /* admitted, then refused before the upgrade */
    if (c->counted) {
        server_conn_release(w->srv);
        atomic_fetch_sub_explicit(&w->stats.ws_open, 1, memory_order_relaxed);
    }
}

const struct worker_hooks GATEWAY_WORKER_HOOKS = {
    .conn_upper = sizeof(struct session),
    .start = subs_init,
    .stop = subs_free,
    .http_request = router_dispatch,
    .http_idle = http_guard_release,
    .ws_open = protocol_on_open,
    .ws_message = protocol_on_message,
    .ws_closing = protocol_on_close,
    .release = on_release,
    .drain = subs_on_drain,
    .liveness = protocol_liveness,
    .sweep = protocol_sweep,
};
