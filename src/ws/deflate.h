/* deflate.h - permessage-deflate (RFC 7692): negotiation, the shared
 * compressed sibling of an outbound frame, whole-message inflate.
 *
 * Parameters are fixed so that a compressed payload depends only on the
 * message: the server always answers server_no_context_takeover (every
 * subscriber can take the same compressed bytes) and
 * client_no_context_takeover (an inbound message is inflated whole and no
 * inflate state outlives it). The compressor is libdeflate (whole buffers,
 * always a 32 KiB window), so there is one outbound parameter set: an offer
 * asking for server_max_window_bits below 15 is declined, and a shared
 * frame has at most one compressed sibling (net/zframe.h; docs/protocol.md,
 * Compression).
 *
 * Scratch memory (the compressor, the decompressor, their buffers) is per
 * thread, created on first use and freed when the thread ends. */
#ifndef TG_DEFLATE_H
#define TG_DEFLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest Sec-WebSocket-Extensions value ws_deflate_negotiate writes. */
#define WS_DEFLATE_RESPONSE_MAX 128

/* Sets the module's configuration (ws.compression, ws.compression_min_bytes);
 * called once at start, before any worker runs. */
void ws_deflate_configure(bool on, size_t min_bytes);

/* Reads the client's Sec-WebSocket-Extensions value (all its headers joined
 * by commas; may be NULL) and accepts the first permessage-deflate offer
 * the server can honour. True when accepted: resp (WS_DEFLATE_RESPONSE_MAX
 * bytes) holds the response's extension value. False when compression is
 * off, nothing was offered, every offer was declined or the value is
 * malformed (the connection then goes on uncompressed). */
bool ws_deflate_negotiate(const char *value, size_t len, char resp[WS_DEFLATE_RESPONSE_MAX]);

/* Connections that negotiated permessage-deflate on this node (gauge kept
 * by the session: opened, released). */
void ws_deflate_conn_opened(void);
void ws_deflate_conn_released(void);

/* True while any connection of the node negotiated permessage-deflate:
 * the hub then compresses each tick's frame as it builds it. */
bool ws_deflate_wanted(void);

/* Deflate runs on outbound data so far (any thread; metrics). */
uint64_t ws_deflate_runs(void);

/* ws.compression_min_bytes: shorter messages go plain. */
size_t ws_deflate_min_bytes(void);

/* Compresses one whole message (in, n) as permessage-deflate with
 * server_no_context_takeover into the calling thread's buffer: *out is the
 * payload to send with RSV1 (valid until the thread's next call). Returns
 * its length; 0 when it would not be shorter than n (send it plain); -1
 * when out of memory. Every call that runs deflate is counted. */
long ws_deflate_compress(const uint8_t *in, size_t n, const uint8_t **out);

/* Inflates one whole compressed message (in, n; the RSV1 message's
 * reassembled payload) into the calling thread's buffer: 0 with *out and
 * *out_len set (valid until the thread's next call), or -code: -1009 when
 * the inflated size would pass max, -1007 when the data is not valid
 * DEFLATE, -1011 when out of memory. Work and memory are bounded by max. */
int ws_inflate(const uint8_t *in, size_t n, size_t max, uint8_t **out, size_t *out_len);

/* Frees the calling thread's scratch now (tests; threads free it at exit). */
void ws_deflate_thread_free(void);

#endif
