/* protocol.h - the gateway's JSON protocol on server.ws_path
 * (PROTOCOL.md sections 4 and 5): greeting, message dispatch, replies. */
#ifndef TG_PROTOCOL_H
#define TG_PROTOCOL_H

#include <stddef.h>

struct conn;

/* The connection was upgraded on the JSON endpoint: greet it. */
void protocol_on_open(struct conn *c);

/* One complete, UTF-8-valid text message. */
void protocol_on_message(struct conn *c, const char *data, size_t len);

/* The close handshake started with code (either side). */
void protocol_on_close(struct conn *c, unsigned code);

/* The connection is being freed: drop everything it holds elsewhere. */
void protocol_on_release(struct conn *c);

#endif
