/* zframe.c - a shared frame's compressed sibling; see zframe.h. */
#include "net/zframe.h"

#include <string.h>

#include "net/outbuf.h"
#include "ws/deflate.h"
#include "ws/frame.h"

/* b's sibling (refs 1), b itself when b goes plain, or NULL when out of
 * memory. */
static struct outbuf *build(struct outbuf *b) {
    const uint8_t *pl = outbuf_payload(b);
    uint8_t b0 = b->p[0];
    unsigned op = b0 & 0x0F;
    if (pl <= b->p || b->zsaved || (b0 & 0x70) || !(b0 & 0x80) || (op != WS_OP_TEXT && op != WS_OP_BINARY))
        return b; /* not a whole data frame of ours, or already compressed */
    size_t n = b->len - (size_t)(pl - b->p);
    if (n < ws_deflate_min_bytes())
        return b;
    const uint8_t *z;
    long zn = ws_deflate_compress(pl, n, &z);
    if (zn < 0)
        return NULL;
    if (zn == 0)
        return b;
    struct outbuf *s = outbuf_new((size_t)zn);
    if (!s)
        return NULL;
    memcpy(outbuf_payload(s), z, (size_t)zn);
    outbuf_seal_ws(s, op, (size_t)zn);
    s->p[0] |= 0x40; /* RSV1: this message is compressed */
    s->kind = b->kind;
    s->sym = b->sym;
    s->seq = b->seq;
    s->born_ns = b->born_ns;
    s->zsaved = b->len - s->len;
    return s;
}

void zframe_prepare(struct outbuf *b) {
    if (atomic_load_explicit(&b->z, memory_order_acquire))
        return;
    struct outbuf *s = build(b);
    if (!s)
        return;
    struct outbuf *none = NULL;
    if (!atomic_compare_exchange_strong_explicit(&b->z, &none, s, memory_order_acq_rel, memory_order_acquire) &&
        s != b)
        outbuf_unref(s); /* another thread built it first */
}

struct outbuf *zframe_pick(struct outbuf *b) {
    if (b->zsaved)
        return b;
    zframe_prepare(b);
    struct outbuf *s = atomic_load_explicit(&b->z, memory_order_acquire);
    if (!s || s == b)
        return b;
    outbuf_ref(s);
    outbuf_unref(b);
    return s;
}
