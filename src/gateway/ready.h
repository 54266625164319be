/* ready.h - readiness for load balancers and the drain's advisory
 * (PROTOCOL.md section 15).
 *
 * /ready answers 200 {"ready":true} once the node serves: its workers
 * listen and, with Redis configured, its first sync with Redis is done. It
 * answers 503 {"ready":false,"reason":...} before that and from the start
 * of a drain on. A later Redis outage does not make it 503 (the node keeps
 * serving its local clients; /health says degraded). */
#ifndef TG_READY_H
#define TG_READY_H

#include <stdbool.h>

struct conn;
struct gateway;

/* NULL when ready, else why not ("starting", "redis_sync", "draining"). */
const char *gateway_not_ready(const struct gateway *gw);

/* Answers GET/HEAD /ready. */
void ready_respond(struct conn *c, bool keep_alive);

/* The drain's advisory to one client (worker hook lame_duck):
 * {"type":"reconnect","after_ms":N}, N uniform over [0, grace / 2] so a
 * floor of clients does not reconnect to the other nodes at once. */
void ready_lame_duck(struct conn *c);

#endif
