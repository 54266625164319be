/* hooks.c - the gateway's side of net's worker hooks: which module answers
 * each transport event, and the gateway's per-worker state. */
#include "gateway/hooks.h"

#include <errno.h>
#include <stdlib.h>

#include "gateway/gateway.h"
#include "gateway/http_guard.h"
#include "gateway/protocol.h"
#include "gateway/ready.h"
#include "gateway/router.h"
#include "gateway/session.h"
#include "net/conn.h"
#include "pubsub/subs.h"

static int on_start(struct worker *w) {
    struct gateway *gw = w->env.upper_ctx;
    struct gateway_worker *gwk = calloc(1, sizeof(*gwk));
    if (!gwk)
        return -ENOMEM;
    gwk->gw = gw;
    w->upper = gwk;
    int rc = subs_init(w, gw->hub);
    if (rc < 0) {
        w->upper = NULL;
        free(gwk);
    }
    return rc;
}

static void on_stop(struct worker *w) {
    subs_free(w);
    free(w->upper);
    w->upper = NULL;
}

/* The connection's memory goes next: the session's state (subscriptions,
 * identity, admission) and its place in limits.max_connections. */
static void on_release(struct conn *c) {
    struct worker *w = c->w;
    if (c->phase == PHASE_WS && c->endpoint == EP_JSON)
        protocol_on_release(c);
    else
        protocol_release_identity(c); /* admitted, then refused before the upgrade */
    if (c->counted) {
        gateway_conn_release(gateway_of(c));
        atomic_fetch_sub_explicit(&w->stats.ws_open, 1, memory_order_relaxed);
    }
}

const struct worker_hooks GATEWAY_WORKER_HOOKS = {
    .conn_upper = sizeof(struct session),
    .start = on_start,
    .stop = on_stop,
    .http_request = router_dispatch,
    .http_idle = http_guard_release,
    .ws_open = protocol_on_open,
    .ws_message = protocol_on_message,
    .ws_closing = protocol_on_close,
    .release = on_release,
    .drain = subs_on_drain,
    .liveness = protocol_liveness,
    .sweep = protocol_sweep,
    .lame_duck = ready_lame_duck,
};
