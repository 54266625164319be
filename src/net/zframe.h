/* zframe.h - the compressed sibling of a shared WebSocket frame
 * (permessage-deflate, RFC 7692; the codec is ws/deflate.h).
 *
 * A frame built once for many connections (a tick, a snapshot, a user
 * event) gets at most one compressed sibling: one parameter set exists,
 * since every connection that negotiated compression has
 * server_no_context_takeover and the 32 KiB window. The frame keeps a
 * reference to it in b->z, every connection that negotiated compression
 * queues a reference to the same bytes, and the sibling carries the
 * frame's kind, symbol and seq so conflation treats it like the frame. */
#ifndef TG_ZFRAME_H
#define TG_ZFRAME_H

struct outbuf;

/* Makes sure the sealed frame b has its sibling decided: built (RSV1 set,
 * kept by b with a reference), or b marked as going plain (control frame,
 * below ws.compression_min_bytes, no gain, already a sibling). Thread-safe:
 * a compare-exchange publishes the first result, a concurrent loser frees
 * its copy. Out of memory leaves b undecided (it goes plain this time). */
void zframe_prepare(struct outbuf *b);

/* The block to queue for a connection that negotiated compression: a new
 * reference to b's sibling with b's reference dropped, or b itself when b
 * goes plain. Takes over the caller's reference. */
struct outbuf *zframe_pick(struct outbuf *b);

#endif
