/* publish.h - ticks from publishers (WebSocket publish, POST /api/publish):
 * validation of the contract's tick object into a struct tick_in. */
#ifndef TG_PUBLISH_H
#define TG_PUBLISH_H

#include <jansson.h>

struct hub;
struct tick_in;

/* Most ticks one publish message or request may carry. */
#define PUBLISH_MAX_UPDATES 1000

/* Parses one tick object. 0, or -1 with *why set to a fixed message. */
int publish_parse_tick(const struct hub *h, json_t *o, struct tick_in *out, const char **why);

/* Validates every element of updates (an array), then publishes them all
 * in order. Returns the count, or -1 with *why set (nothing published). */
int publish_updates(struct hub *h, json_t *updates, const char **why);

#endif
