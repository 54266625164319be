/* api.h - the HTTP API beside the WebSocket: POST /api/publish. */
#ifndef TG_API_H
#define TG_API_H

#include <stdbool.h>

struct conn;

/* POST /api/publish {"updates":[tick...], "user_events":[...]}:
 * Bearer JWT or X-API-Key with role publisher, admin or super_admin. */
void api_publish(struct conn *c, bool keep_alive);

#endif
