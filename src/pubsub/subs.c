/* subs.c - subscriber lists and local fan-out; see subs.h. */
#include "pubsub/subs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/server.h"
#include "core/worker.h"
#include "net/conn.h"
#include "net/outbuf.h"
#include "pubsub/hub.h"
#include "ws/frame.h"
#include "ws/session.h"

int subs_init(struct worker *w) {
    w->lists = calloc(w->srv->syms.n, sizeof(struct sub_list));
    return w->lists ? 0 : -ENOMEM;
}

void subs_free(struct worker *w) {
    if (!w->lists)
        return;
    for (uint32_t i = 0; i < w->srv->syms.n; i++)
        free(w->lists[i].v);
    free(w->lists);
    w->lists = NULL;
}

static struct conn_sub *find(const struct conn *c, uint32_t sym) {
    for (uint16_t i = 0; i < c->nsubs; i++)
        if (c->subs[i].sym == sym)
            return &c->subs[i];
    return NULL;
}

bool subs_has(const struct conn *c, uint32_t sym) { return find(c, sym) != NULL; }

int subs_add(struct conn *c, uint32_t sym) {
    struct worker *w = c->w;
    struct hub *h = &w->srv->hub;
    struct sub_list *l = &w->lists[sym];
    struct conn_sub *cs = find(c, sym);
    if (!cs) {
        if (c->nsubs == c->subs_cap) {
            uint16_t ncap = c->subs_cap ? (uint16_t)(c->subs_cap * 2) : 4;
            struct conn_sub *n = realloc(c->subs, ncap * sizeof(*n));
            if (!n)
                return -ENOMEM;
            c->subs = n;
            c->subs_cap = ncap;
        }
        if (l->n == l->cap) {
            uint32_t ncap = l->cap ? l->cap * 2 : 8;
            struct sub_entry *n = realloc(l->v, ncap * sizeof(*n));
            if (!n)
                return -ENOMEM;
            l->v = n;
            l->cap = ncap;
        }
        /* Activate before reading the snapshot: any tick sequenced after the
         * snapshot is then posted to this worker. */
        if (l->n == 0)
            hub_activate(h, sym, w->id);
        cs = &c->subs[c->nsubs++];
        cs->sym = sym;
        cs->idx = l->n;
        cs->pending = NULL;
        l->v[l->n].c = c;
        l->v[l->n].min_seq = 0;
        l->n++;
        atomic_fetch_add_explicit(&w->stats.subscriptions, 1, memory_order_relaxed);
    }
    if (cs->pending) { /* re-subscribe while backed up: the snapshot supersedes it */
        outbuf_unref(cs->pending);
        cs->pending = NULL;
    }
    uint64_t seq = 0;
    struct outbuf *snap = hub_snapshot(h, sym, &seq);
    /* Frames already in this worker's mailbox may be older than the
     * snapshot: the client must never see them after it. */
    l->v[cs->idx].min_seq = seq;
    if (snap) {
        atomic_fetch_add_explicit(&w->stats.messages_sent, 1, memory_order_relaxed);
        conn_send(c, snap);
    }
    return 0;
}

void subs_remove(struct conn *c, uint32_t sym) {
    struct worker *w = c->w;
    struct conn_sub *cs = find(c, sym);
    if (!cs)
        return;
    struct sub_list *l = &w->lists[sym];
    uint32_t idx = cs->idx;
    struct sub_entry last = l->v[l->n - 1];
    l->v[idx] = last;
    if (last.c != c)
        find(last.c, sym)->idx = idx;
    if (--l->n == 0) {
        /* Nothing is kept for a symbol nobody here watches. */
        free(l->v);
        l->v = NULL;
        l->cap = 0;
        hub_deactivate(&w->srv->hub, sym, w->id);
    }
    if (cs->pending)
        outbuf_unref(cs->pending);
    *cs = c->subs[--c->nsubs];
    if (c->nsubs == 0) {
        free(c->subs);
        c->subs = NULL;
        c->subs_cap = 0;
    }
    atomic_fetch_sub_explicit(&w->stats.subscriptions, 1, memory_order_relaxed);
}

void subs_remove_all(struct conn *c) {
    while (c->nsubs)
        subs_remove(c, c->subs[c->nsubs - 1].sym);
}

static void take_conflated(void *ctx, struct outbuf *b) {
    struct conn *c = ctx;
    struct conn_sub *cs = find(c, b->sym);
    if (!cs) {
        outbuf_unref(b);
        return;
    }
    if (cs->pending) {
        outbuf_unref(cs->pending);
        atomic_fetch_add_explicit(&c->w->stats.conflated, 1, memory_order_relaxed);
    }
    cs->pending = b;
}

static void drop_tick(void *ctx, struct outbuf *b) {
    (void)ctx;
    outbuf_unref(b);
}

void subs_send_tick(struct conn *c, struct outbuf *b) {
    if (c->closing || c->close_sent) {
        outbuf_unref(b);
        return;
    }
    const struct config *cfg = &c->w->srv->cfg;
    uint64_t cap = (uint64_t)cfg->limits.max_outbound_bytes;
    if (!c->congested && c->out.bytes + b->len > cap && !c->writing) {
        /* A burst, not necessarily a slow socket: hand the queue to the
         * kernel now and judge by what it would not take. */
        conn_flush(c);
        if (c->closing) {
            outbuf_unref(b);
            return;
        }
    }
    if (!c->congested && c->out.bytes + b->len <= cap) {
        atomic_fetch_add_explicit(&c->w->stats.messages_sent, 1, memory_order_relaxed);
        conn_send(c, b);
        return;
    }
    if (cfg->limits.slow_consumer == SLOW_DISCONNECT) {
        outbuf_unref(b);
        outq_extract_ticks(&c->out, c->inflight, drop_tick, NULL);
        atomic_fetch_add_explicit(&c->w->stats.slow_disconnects, 1, memory_order_relaxed);
        ws_close(c, WS_CLOSE_TRY_AGAIN, "slow consumer");
        return;
    }
    if (!c->congested) {
        /* Backed up: what has not started towards the socket is replaced by
         * the newest update per symbol. */
        c->congested = true;
        outq_extract_ticks(&c->out, c->inflight, take_conflated, c);
    }
    take_conflated(c, b);
}

void subs_on_drain(struct conn *c) {
    uint64_t cap = (uint64_t)c->w->srv->cfg.limits.max_outbound_bytes;
    if (!c->congested || c->out.bytes > cap / 2)
        return;
    c->congested = false;
    for (uint16_t i = 0; i < c->nsubs; i++) {
        struct outbuf *b = c->subs[i].pending;
        if (b) {
            c->subs[i].pending = NULL;
            atomic_fetch_add_explicit(&c->w->stats.messages_sent, 1, memory_order_relaxed);
            conn_send(c, b);
        }
    }
}

void subs_deliver(struct worker *w, struct outbuf *b) {
    struct sub_list *l = &w->lists[b->sym];
    uint32_t n = l->n;
    if (n) {
        /* One atomic add for the whole fan-out: each queue consumes one. */
        atomic_fetch_add_explicit(&b->refs, n, memory_order_relaxed);
        for (uint32_t i = 0; i < n; i++) {
            struct sub_entry *e = &l->v[i];
            if (b->seq > e->min_seq)
                subs_send_tick(e->c, b);
            else
                outbuf_unref(b);
        }
        worker_record_fanout(w, uv_hrtime() - b->born_ns);
    }
    outbuf_unref(b);
}
