/* handshake.h - the server side of the RFC 6455 opening handshake. */
#ifndef TG_HANDSHAKE_H
#define TG_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>

/* Length of a Sec-WebSocket-Accept value (base64 of 20 bytes) plus NUL. */
#define WS_ACCEPT_LEN 29

/* True when key is a valid Sec-WebSocket-Key: base64 of exactly 16 bytes. */
bool ws_key_valid(const char *key, size_t len);

/* Writes the Sec-WebSocket-Accept value for key into out (NUL-terminated):
 * base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")). */
void ws_accept_key(const char *key, size_t len, char out[WS_ACCEPT_LEN]);

/* True when the comma-separated header value contains token (ASCII
 * case-insensitive), e.g. "keep-alive, Upgrade" contains "upgrade". */
bool http_header_has_token(const char *value, size_t len, const char *token);

#endif
