/* outbuf.h - reference-counted output blocks and the per-connection queue.
 *
 * A block holds bytes ready for the wire (an HTTP response or a complete
 * WebSocket frame). A tick's frame is built once into one block and every
 * subscriber's queue takes a reference; the write completion drops it. The
 * count is atomic because a tick's block crosses worker threads.
 *
 * Blocks reserve WS_MAX_HEADER bytes of headroom in front of the payload so
 * a frame header can be prepended without copying the payload. */
#ifndef TG_OUTBUF_H
#define TG_OUTBUF_H

#include <assert.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OUTBUF_HEADROOM 14

enum outbuf_kind {
    OB_OTHER = 0,  /* replies, HTTP, control frames: never conflated */
    OB_TICK,       /* a price_update frame: may be conflated per symbol */
};

struct outbuf {
    atomic_uint refs;   /* holders: every queue and builder that may free it */
    uint32_t len;       /* bytes at p */
    uint32_t cap;       /* bytes available in data[] after headroom */
    uint8_t kind;       /* enum outbuf_kind */
    uint32_t sym;       /* OB_TICK: symbol index */
    uint64_t seq;       /* OB_TICK: the tick's seq */
    uint64_t born_ns;   /* OB_TICK: uv_hrtime() when built (fan-out latency) */
    /* permessage-deflate (ws/deflate.h): the compressed sibling of this
     * frame, holding one reference to it; the block itself when the frame
     * goes plain; NULL while undecided. Set once (compare-exchange). */
    _Atomic(struct outbuf *) z;
    uint32_t zsaved;    /* a compressed sibling: bytes saved against its plain frame; else 0 */
    uint8_t *p;         /* start of the wire bytes */
    uint8_t data[];     /* headroom + payload */
};

/* A block with room for cap payload bytes after the headroom; refs = 1.
 * NULL on allocation failure. */
struct outbuf *outbuf_new(size_t cap);

/* Payload area (right after the headroom). */
static inline uint8_t *outbuf_payload(struct outbuf *b) { return b->data + OUTBUF_HEADROOM; }

/* Marks the block as a complete WebSocket frame: writes the header for
 * len payload bytes into the headroom and sets p/len. */
void outbuf_seal_ws(struct outbuf *b, unsigned opcode, size_t len);

/* Marks the block as raw bytes (payload area, len bytes). */
static inline void outbuf_seal_raw(struct outbuf *b, size_t len) {
    b->p = outbuf_payload(b);
    b->len = (uint32_t)len;
}

static inline struct outbuf *outbuf_ref(struct outbuf *b) {
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    return b;
}

/* Drops one reference; frees the block with the last. */
void outbuf_unref(struct outbuf *b);

/* One connection's pending output: a ring of block references with the
 * offset already written of the first. Owned by the connection. */
struct outq_item {
    struct outbuf *b;
    uint32_t off;       /* bytes of b already on the wire (first item only) */
    uint32_t at_ms;     /* loop ms (truncated) when queued: how long the oldest has waited */
};

#define OUTQ_INLINE 2

struct outq {
    struct outq_item *ring; /* inl until more than OUTQ_INLINE blocks wait */
    uint32_t cap;       /* power of two, 0 before first use */
    uint32_t head;
    uint32_t count;
    uint64_t bytes;     /* unsent bytes across all items */
    /* The first ring lives inside the queue: most connections never have
     * more than two blocks waiting, and an idle connection then holds no
     * separate allocation that would pin a page of freed handshake memory. */
    struct outq_item inl[OUTQ_INLINE];
};

/* Appends b, queued at loop ms now_ms, taking over the caller's
 * reference. 0 or -ENOMEM (then the reference is dropped). */
int outq_push(struct outq *q, struct outbuf *b, uint32_t now_ms);

static inline struct outq_item *outq_at(struct outq *q, uint32_t i) {
    return &q->ring[(q->head + i) & (q->cap - 1)];
}

/* Marks n bytes as written from the front, dropping finished blocks. */
void outq_consume(struct outq *q, size_t n);

/* Removes every OB_TICK block that starts at or after protect bytes of
 * unsent data (those before are on their way to the socket) and hands
 * each, with its reference, to take in queue order. */
void outq_extract_ticks(struct outq *q, uint64_t protect, void (*take)(void *ctx, struct outbuf *b), void *ctx);

/* Drops every reference and the ring. */
void outq_clear(struct outq *q);

#endif
