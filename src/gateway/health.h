/* health.h - GET /health: the state of each part that can fail. */
#ifndef TG_HEALTH_H
#define TG_HEALTH_H

#include <stdbool.h>

struct conn;

/* Answers /health: 200 when healthy or degraded, 503 when unhealthy. */
void health_respond(struct conn *c, bool keep_alive);

#endif
