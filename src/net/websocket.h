/* session.h - the WebSocket side of a connection: upgrade, RFC 6455
 * message assembly and validation, control frames, the close handshake.
 *
 * Complete messages go to the endpoint: echoed back on server.echo_path,
 * handed to the worker's ws_message hook (the gateway) on server.ws_path;
 * this room knows nothing of what they mean. */
#ifndef TG_SESSION_H
#define TG_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conn;

/* How long a connection that sent a close frame waits for the reply. */
#define WS_CLOSE_WAIT_MS 2000

/* Validates the upgrade request of c (method already checked). Returns 0,
 * or an HTTP status after answering it. On 0, accept holds the
 * Sec-WebSocket-Accept value. */
int ws_handshake_check(struct conn *c, char accept[29]);

/* Switches c to WebSocket: answers 101 and continues as endpoint ep. */
void ws_session_upgrade(struct conn *c, int ep, const char *accept);

/* Feeds bytes read from the socket (writable: unmasked in place). */
void ws_session_feed(struct conn *c, uint8_t *data, size_t len);

struct outbuf;

/* Sends one unfragmented frame with a copy of data (compressed when the
 * connection negotiated permessage-deflate and it is worth it). */
void ws_send(struct conn *c, unsigned opcode, const void *data, size_t len);

/* Queues the sealed frame b (taking over the reference) to c: its shared
 * compressed sibling when c negotiated permessage-deflate and b is worth
 * compressing (ws/deflate.h), else b; compressed ones are counted. */
void ws_send_frame(struct conn *c, struct outbuf *b);

/* The block c takes for b (b consumed): as ws_send_frame, without queuing
 * or counting (callers that judge the queue by the block's size first). */
struct outbuf *ws_frame_for(struct conn *c, struct outbuf *b);

/* Starts the close handshake with code and a short reason (no secrets). */
void ws_close(struct conn *c, unsigned code, const char *reason);

/* Sends FIN after a failed connection's close frame is written. */
void ws_session_shutdown_write(struct conn *c);


#endif
