/* outbuf.c - reference-counted output blocks and queues; see outbuf.h. */
#include "net/outbuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ws/frame.h"

struct outbuf *outbuf_new(size_t cap) {
    struct outbuf *b = malloc(sizeof(*b) + OUTBUF_HEADROOM + cap);
    if (!b)
        return NULL;
    atomic_init(&b->refs, 1);
    b->len = 0;
    b->cap = (uint32_t)cap;
    b->kind = OB_OTHER;
    b->sym = 0;
    b->seq = 0;
    b->born_ns = 0;
    atomic_init(&b->z, NULL);
    b->zsaved = 0;
    b->p = b->data + OUTBUF_HEADROOM;
    return b;
}

void outbuf_seal_ws(struct outbuf *b, unsigned opcode, size_t len) {
    uint8_t hdr[WS_MAX_HEADER];
    size_t hl = ws_header_encode(hdr, opcode, true, len, NULL);
    b->p = outbuf_payload(b) - hl;
    memcpy(b->p, hdr, hl);
    b->len = (uint32_t)(hl + len);
}

void outbuf_unref(struct outbuf *b) {
    unsigned prev = atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel);
    assert(prev > 0);
    if (prev == 1) {
        struct outbuf *z = atomic_load_explicit(&b->z, memory_order_acquire);
        if (z && z != b)
            outbuf_unref(z); /* a sibling has no sibling: one level deep */
        free(b);
    }
}

int outq_push(struct outq *q, struct outbuf *b, uint32_t now_ms) {
    if (q->count == q->cap) {
        struct outq_item *n;
        uint32_t ncap = q->cap ? q->cap * 2 : OUTQ_INLINE;
        if (!q->cap) {
            n = q->inl;
        } else if (!(n = malloc(sizeof(*n) * ncap))) {
            outbuf_unref(b);
            return -ENOMEM;
        }
        for (uint32_t i = 0; i < q->count; i++)
            n[i] = *outq_at(q, i);
        if (q->ring != q->inl)
            free(q->ring);
        q->ring = n;
        q->cap = ncap;
        q->head = 0;
    }
    struct outq_item *it = &q->ring[(q->head + q->count) & (q->cap - 1)];
    it->b = b;
    it->off = 0;
    it->at_ms = now_ms;
    q->count++;
    q->bytes += b->len;
    return 0;
}

void outq_consume(struct outq *q, size_t n) {
    q->bytes -= n;
    while (n > 0) {
        struct outq_item *it = outq_at(q, 0);
        size_t left = it->b->len - it->off;
        if (n < left) {
            it->off += (uint32_t)n;
            return;
        }
        n -= left;
        outbuf_unref(it->b);
        q->head = (q->head + 1) & (q->cap - 1);
        q->count--;
    }
}

void outq_extract_ticks(struct outq *q, uint64_t protect, void (*take)(void *ctx, struct outbuf *b), void *ctx) {
    uint64_t pos = 0;
    uint32_t kept = 0, n = q->count;
    for (uint32_t i = 0; i < n; i++) {
        struct outq_item it = *outq_at(q, i);
        uint64_t left = it.b->len - it.off;
        if (pos >= protect && it.off == 0 && it.b->kind == OB_TICK) {
            q->bytes -= left;
            take(ctx, it.b);
        } else {
            *outq_at(q, kept++) = it;
        }
        pos += left;
    }
    q->count = kept;
}

void outq_clear(struct outq *q) {
    for (uint32_t i = 0; i < q->count; i++)
        outbuf_unref(outq_at(q, i)->b);
    if (q->ring != q->inl)
        free(q->ring);
    memset(q, 0, sizeof(*q));
}
