/* metrics.h - /metrics (Prometheus text 0.0.4) and /api/stats (JSON).
 * Only reads and formats: each figure is counted by the module that owns
 * the fact (workers, hub, auth). */
#ifndef TG_METRICS_H
#define TG_METRICS_H

#include <stdbool.h>

struct conn;

void metrics_respond(struct conn *c, bool keep_alive);

/* server.metrics_token: true when none is set or the request carries
 * Authorization: Bearer <token> (compared in time independent of where
 * it differs). */
bool metrics_authorized(struct conn *c);
void stats_respond(struct conn *c, bool keep_alive);

#endif
