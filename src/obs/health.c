/* health.c - GET /health; see health.h.
 *
 * workers: every worker loop stamps a heartbeat from its timer; a loop that
 * has not stamped for WORKER_STALL_MS is stuck (unhealthy). */
#include "obs/health.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/server.h"
#include "core/worker.h"
#include "net/conn.h"

#define WORKER_STALL_MS 2000

void health_respond(struct conn *c, bool keep_alive) {
    struct server *srv = c->w->srv;
    uint64_t now = uv_hrtime() / 1000000;
    bool workers_ok = true;
    for (int i = 0; i < srv->nworkers; i++) {
        uint64_t beat = atomic_load_explicit(&srv->workers[i].heartbeat_ms, memory_order_relaxed);
        if (beat + WORKER_STALL_MS < now)
            workers_ok = false;
    }
    const char *status = workers_ok ? "healthy" : "unhealthy";
    json_t *o = json_pack("{s:s, s:{s:s}}", "status", status, "checks", "workers", workers_ok ? "ok" : "stalled");
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!s) {
        conn_http_error(c, 500, "internal_error", "out of memory", NULL, false);
        return;
    }
    conn_http_respond(c, workers_ok ? 200 : 503, "application/json", s, strlen(s), NULL, keep_alive);
    free(s);
}
