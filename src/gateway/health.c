/* health.c - GET /health; see health.h.
 *
 * workers: every worker loop stamps a heartbeat from its timer; a loop that
 * has not stamped for WORKER_STALL_MS is stuck (unhealthy). sweeper: each
 * worker's sweeper stamps its runs. feed: ok while ticks flow, idle when
 * none was published lately (nobody watching is not a failure). */
#include "gateway/health.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
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

#define WORKER_STALL_MS 2000
#define FEED_IDLE_MS 10000

void health_respond(struct conn *c, bool keep_alive) {
    struct gateway *gw = gateway_of(c);
    uint64_t now = uv_hrtime() / 1000000;
    bool workers_ok = true;
    for (int i = 0; i < gw->nworkers; i++) {
        uint64_t beat = atomic_load_explicit(&gw->workers[i].heartbeat_ms, memory_order_relaxed);
        if (beat + WORKER_STALL_MS < now)
            workers_ok = false;
    }
    /* sweeper: every worker's ran within two periods (plus slack). */
    int64_t wall = (int64_t)time(NULL);
    bool sweeper_ok = true;
    for (int i = 0; i < gw->nworkers; i++) {
        int64_t last = atomic_load_explicit(&gw->workers[i].stats.last_sweep_s, memory_order_relaxed);
        if (wall - last > 2 * (int64_t)gw->cfg->limits.sweep_interval_s + 2)
            sweeper_ok = false;
    }
    /* feed: ok when a tick was sequenced in the last FEED_IDLE_MS. */
    int64_t last_tick = atomic_load_explicit(&gw->hub->last_tick_ms, memory_order_relaxed);
    bool feed_ok = last_tick && hub_now_ms() - last_tick < FEED_IDLE_MS;
    bool healthy = workers_ok && sweeper_ok;
    /* Redis down while configured: still serving local clients, degraded. */
    const char *redis = !gw->redis->enabled ? "disabled" : redis_engine_up(gw->redis) ? "up" : "down";
    bool degraded = gw->redis->enabled && !redis_engine_up(gw->redis);
    bool audit_ok = !audit_dropping(gw->audit, hub_now_ms()); /* a drop in the last minute */
    const char *status = !healthy ? "unhealthy" : (degraded || !audit_ok) ? "degraded" : "healthy";
    json_t *o = json_pack("{s:s, s:{s:s, s:s, s:s, s:s, s:s}}", "status", status, "checks", "workers",
                          workers_ok ? "ok" : "stalled", "sweeper", sweeper_ok ? "ok" : "stalled", "feed",
                          feed_ok ? "ok" : "idle", "redis", redis, "audit",
                          !gw->audit->on ? "disabled" : audit_ok ? "ok" : "dropping");
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!s) {
        conn_http_error(c, 500, "internal_error", "out of memory", NULL, false);
        return;
    }
    conn_http_respond(c, healthy ? 200 : 503, "application/json", s, strlen(s), NULL, keep_alive);
    free(s);
}
