/* subs.c - subscriber lists and local fan-out; see subs.h. */
#include "pubsub/subs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/config.h"
#include "net/worker.h"
#include "net/conn.h"
#include "net/outbuf.h"
#include "pubsub/hub.h"
#include "pubsub/lanes.h"
#include "pubsub/replay.h"
#include "ws/frame.h"
#include "net/websocket.h"

int subs_init(struct worker *w, struct hub *hub) {
    struct worker_subs *ws = calloc(1, sizeof(*ws) + hub->syms->n * sizeof(struct sub_list));
    if (!ws)
        return -ENOMEM;
    ws->hub = hub;
    ws->n = hub->syms->n;
    if (lanes_init(ws, w->cfg, ws->n) < 0) {
        free(ws);
        return -ENOMEM;
    }
    w->subs = ws;
    return 0;
}

void subs_free(struct worker *w) {
    struct worker_subs *ws = w->subs;
    if (!ws)
        return;
    for (uint32_t i = 0; i < ws->n; i++)
        free(ws->lists[i].v);
    lanes_free(ws);
    free(ws);
    w->subs = NULL;
}

/* Counts and capacities are 32-bit and grow by doubling, so the largest
 * subscription count the configuration allows must fit twice over. */
_Static_assert(sizeof(((struct conn_subs *)0)->nsubs) == sizeof(uint32_t) &&
                   sizeof(((struct conn_subs *)0)->subs_cap) == sizeof(uint32_t) &&
                   CONFIG_MAX_SUBSCRIPTIONS <= UINT32_MAX / 2,
               "struct conn_subs cannot count limits.max_subscriptions_per_client");

static struct conn_sub *find(const struct conn *c, uint32_t sym) {
    for (uint32_t i = 0; i < conn_subs(c)->nsubs; i++)
        if (conn_subs(c)->subs[i].sym == sym)
            return &conn_subs(c)->subs[i];
    return NULL;
}

bool subs_has(const struct conn *c, uint32_t sym) { return find(c, sym) != NULL; }

/* The list a subscription of lane is in. */
static struct sub_list *list_of(struct worker *w, uint32_t sym, int lane) {
    return lane ? lanes_list(w, sym, lane) : &w->subs->lists[sym];
}

bool subs_mode(const struct conn *c, uint32_t sym, struct sub_mode *m) {
    struct conn_sub *cs = find(c, sym);
    if (!cs)
        return false;
    *m = cs->lane ? lanes_mode(c->w, sym, cs->lane) : (struct sub_mode){0, false};
    return true;
}

static void remove_sub(struct conn *c, struct conn_sub *cs);

int subs_add(struct conn *c, uint32_t sym) { return subs_add_mode(c, sym, (struct sub_mode){0, false}); }

/* Adds sym to c's subscriptions in mode m when missing (one in another
 * mode moves to m's list; its entry's min_seq is left to the caller) and
 * drops a conflated update waiting for it. The subscription, or NULL
 * (-ENOMEM). */
static struct conn_sub *add_entry(struct conn *c, uint32_t sym, struct sub_mode m) {
    struct worker *w = c->w;
    struct hub *h = w->subs->hub;
    struct conn_sub *cs = find(c, sym);
    struct sub_mode had;
    if (cs && subs_mode(c, sym, &had) && (had.rate != m.rate || had.delayed != m.delayed)) {
        remove_sub(c, cs); /* another mode: moves to its list */
        cs = NULL;
    }
    int lane = 0;
    if (!cs && (m.rate || m.delayed) && (lane = lanes_lane(w, sym, m)) < 0)
        return NULL;
    struct sub_list *l = cs ? list_of(w, sym, cs->lane) : list_of(w, sym, lane);
    if (!cs) {
        bool fail = false;
        if (conn_subs(c)->nsubs == conn_subs(c)->subs_cap) {
            /* The first subscription lives in the connection itself
             * (sub1); more move to an array of their own. */
            struct conn_sub *n = NULL;
            uint32_t ncap = conn_subs(c)->subs_cap ? conn_subs(c)->subs_cap * 2 : 1;
            if (conn_subs(c)->subs_cap > UINT32_MAX / 2) {
                fail = true; /* unreachable within CONFIG_MAX_SUBSCRIPTIONS; never wrap */
            } else if (!conn_subs(c)->subs_cap) {
                n = &conn_subs(c)->sub1;
            } else if ((n = malloc((size_t)ncap * sizeof(*n)))) {
                memcpy(n, conn_subs(c)->subs, conn_subs(c)->nsubs * sizeof(*n));
                if (conn_subs(c)->subs != &conn_subs(c)->sub1)
                    free(conn_subs(c)->subs);
            } else {
                fail = true;
            }
            if (n) {
                conn_subs(c)->subs = n;
                conn_subs(c)->subs_cap = ncap;
            }
        }
        if (!fail && l->n == l->cap) {
            uint32_t ncap = l->cap ? l->cap * 2 : 8;
            struct sub_entry *n = l->cap < SUBS_LIST_MAX ? realloc(l->v, (size_t)ncap * sizeof(*n)) : NULL;
            if (n) {
                l->v = n;
                l->cap = ncap;
            }
            fail = !n; /* at SUBS_LIST_MAX: more than limits.max_connections allows */
        }
        if (fail) {
            if (lane && l->n == 0)
                lanes_unused(w, sym, lane);
            return NULL;
        }
        /* Activate before reading the snapshot: any tick sequenced after the
         * snapshot is then posted to this worker. */
        if (w->subs->lists[sym].n == 0 && lanes_members(w, sym) == 0)
            hub_activate(h, sym, w->id);
        cs = &conn_subs(c)->subs[conn_subs(c)->nsubs++];
        cs->sym = sym;
        cs->idx = l->n;
        cs->lane = (uint32_t)lane;
        cs->pending = NULL;
        l->v[l->n].c = c;
        l->v[l->n].min_seq = 0;
        l->n++;
        if (lane)
            lanes_joined(w, sym, lane);
        atomic_fetch_add_explicit(&w->stats.subscriptions, 1, memory_order_relaxed);
    }
    if (cs->pending) { /* re-subscribe while backed up: the snapshot (or the replay) supersedes it */
        outbuf_unref(cs->pending);
        cs->pending = NULL;
    }
    return cs;
}

int subs_add_held(struct conn *c, uint32_t sym) {
    struct conn_sub *cs = add_entry(c, sym, (struct sub_mode){0, false});
    if (!cs)
        return -ENOMEM;
    c->w->subs->lists[sym].v[cs->idx].min_seq = SUBS_HELD;
    return 0;
}

void subs_release_held(struct conn *c, uint32_t sym, uint64_t last) {
    struct conn_sub *cs = find(c, sym);
    if (cs && !cs->lane) /* a held one is real time (a move dropped the recovery) */
        c->w->subs->lists[sym].v[cs->idx].min_seq = last;
}

int subs_add_mode(struct conn *c, uint32_t sym, struct sub_mode m) {
    struct worker *w = c->w;
    struct hub *h = w->subs->hub;
    if (conn_subs(c)->replay)
        replay_forget(c, sym); /* a plain subscribe ends a recovery: the snapshot supersedes it */
    struct conn_sub *cs = add_entry(c, sym, m);
    if (!cs)
        return -ENOMEM;
    struct sub_list *l = list_of(w, sym, cs->lane);
    uint64_t seq = 0;
    struct outbuf *snap = m.delayed ? hub_snapshot_delayed(h, sym, &seq) : hub_snapshot(h, sym, &seq);
    /* Frames already in this worker's mailbox (or a lane) may be older than
     * the snapshot: the client must never see them after it. */
    l->v[cs->idx].min_seq = seq;
    if (snap) {
        atomic_fetch_add_explicit(&w->stats.messages_sent, 1, memory_order_relaxed);
        ws_send_frame(c, snap);
    }
    return 0;
}

/* Removes the subscription cs of c (found by the caller). */
static void remove_sub(struct conn *c, struct conn_sub *cs) {
    struct worker *w = c->w;
    uint32_t sym = cs->sym;
    int lane = cs->lane;
    struct sub_list *l = list_of(w, sym, lane);
    uint32_t idx = cs->idx;
    struct sub_entry last = l->v[l->n - 1];
    l->v[idx] = last;
    if (last.c != c)
        find(last.c, sym)->idx = idx;
    if (--l->n == 0 && !lane) { /* nothing is kept for a list nobody is in (a lane frees its own) */
        free(l->v);
        l->v = NULL;
        l->cap = 0;
    }
    if (lane)
        lanes_left(w, sym, lane);
    if (w->subs->lists[sym].n == 0 && lanes_members(w, sym) == 0)
        hub_deactivate(w->subs->hub, sym, w->id);
    if (cs->pending)
        outbuf_unref(cs->pending);
    if (conn_subs(c)->replay)
        replay_forget(c, sym);
    struct conn_batch *bt = conn_subs(c)->batch;
    for (uint32_t i = 0; bt && i < bt->n;) { /* nothing of it after the confirmation */
        if (bt->v[i]->sym == sym) {
            bt->bytes -= bt->v[i]->len;
            outbuf_unref(bt->v[i]);
            memmove(&bt->v[i], &bt->v[i + 1], (size_t)(bt->n - i - 1) * sizeof(bt->v[0]));
            bt->n--;
        } else {
            i++;
        }
    }
    *cs = conn_subs(c)->subs[--conn_subs(c)->nsubs];
    if (conn_subs(c)->nsubs == 0) {
        if (conn_subs(c)->subs != &conn_subs(c)->sub1)
            free(conn_subs(c)->subs);
        conn_subs(c)->subs = NULL;
        conn_subs(c)->subs_cap = 0;
    }
    atomic_fetch_sub_explicit(&w->stats.subscriptions, 1, memory_order_relaxed);
}

void subs_remove(struct conn *c, uint32_t sym) {
    struct conn_sub *cs = find(c, sym);
    if (cs)
        remove_sub(c, cs);
}

void subs_remove_all(struct conn *c) {
    while (conn_subs(c)->nsubs) /* from the end: no search, nothing moves */
        remove_sub(c, &conn_subs(c)->subs[conn_subs(c)->nsubs - 1]);
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

#define BATCH_TIMER_MS 5

/* The JSON payload of a sealed tick frame. */
static const uint8_t *frame_payload(struct outbuf *b, size_t *len) {
    const uint8_t *p = outbuf_payload(b);
    *len = b->len - (size_t)(p - b->p);
    return p;
}

/* Sends c's waiting ticks as one price_batch frame. */
static void batch_flush(struct conn *c) {
    struct conn_batch *bt = conn_subs(c)->batch;
    if (!bt || !bt->n || c->closing || c->close_sent)
        return;
    static const char HEAD[] = "{\"type\":\"price_batch\",\"updates\":[";
    size_t total = sizeof(HEAD) + 2;
    for (uint32_t i = 0; i < bt->n; i++) {
        size_t l;
        frame_payload(bt->v[i], &l);
        total += l + 1;
    }
    struct outbuf *out = outbuf_new(total);
    if (!out)
        return; /* keep them for the next turn */
    uint8_t *p = outbuf_payload(out);
    memcpy(p, HEAD, sizeof(HEAD) - 1);
    size_t o = sizeof(HEAD) - 1;
    for (uint32_t i = 0; i < bt->n; i++) {
        size_t l;
        const uint8_t *pl = frame_payload(bt->v[i], &l);
        if (i)
            p[o++] = ',';
        memcpy(p + o, pl, l);
        o += l;
        outbuf_unref(bt->v[i]);
    }
    p[o++] = ']';
    p[o++] = '}';
    outbuf_seal_ws(out, WS_OP_TEXT, o);
    bt->n = 0;
    bt->bytes = 0;
    atomic_fetch_add_explicit(&c->w->stats.messages_sent, 1, memory_order_relaxed);
    ws_send_frame(c, out); /* compressed per client: its own message */
}

/* The worker's pubsub timer (w->batcher): price batches, throttle
 * releases and delay lines; it runs while any of them waits. */
static void on_batch_timer(uv_timer_t *t) {
    struct worker *w = t->data;
    uint64_t now = uv_now(&w->loop);
    if (!lanes_timer(w) && !w->batching) {
        uv_timer_stop(&w->batcher);
        return;
    }
    uint64_t cap = (uint64_t)w->cfg->limits.max_outbound_bytes;
    for (struct conn *c = w->batching; c; c = conn_subs(c)->batch->next) {
        if (now < conn_subs(c)->batch->due)
            continue;
        conn_subs(c)->batch->due = now + conn_subs(c)->batch->ms;
        /* A backed-up socket gets nothing new: the batch keeps conflating. */
        if (c->out.bytes < cap)
            batch_flush(c);
    }
}

/* Replaces the newest waiting tick of b's symbol with b (consumed): the
 * last one, so the batch stays in seq order. False when none waits. */
static bool batch_conflate(struct conn *c, struct outbuf *b) {
    struct conn_batch *bt = conn_subs(c)->batch;
    for (uint32_t i = bt->n; i-- > 0;)
        if (bt->v[i]->sym == b->sym) {
            bt->bytes -= bt->v[i]->len;
            outbuf_unref(bt->v[i]);
            bt->v[i] = b;
            bt->bytes += b->len;
            atomic_fetch_add_explicit(&c->w->stats.conflated, 1, memory_order_relaxed);
            return true;
        }
    return false;
}

/* Adds a tick to c's batch (consumes the reference). Bounded by bytes:
 * past the outbound cap the newest tick of a symbol replaces the older
 * one, so the batch holds at most cap bytes plus one tick per subscribed
 * symbol; the entry count follows from that and never wraps. When the
 * array cannot grow (out of memory) the tick is conflated too, or
 * dropped only when nothing of its symbol waits. */
static void batch_add(struct conn *c, struct outbuf *b) {
    struct conn_batch *bt = conn_subs(c)->batch;
    uint64_t cap = (uint64_t)c->w->cfg->limits.max_outbound_bytes;
    if (bt->bytes + b->len > cap && batch_conflate(c, b))
        return;
    if (bt->n == bt->cap) {
        struct outbuf **n = NULL;
        uint32_t ncap = bt->cap ? bt->cap * 2 : 16;
        if (bt->cap <= UINT32_MAX / 2)
            n = realloc(bt->v, (size_t)ncap * sizeof(*n));
        if (!n) {
            if (!batch_conflate(c, b))
                outbuf_unref(b);
            return;
        }
        bt->v = n;
        bt->cap = ncap;
    }
    bt->v[bt->n++] = b;
    bt->bytes += b->len;
}

int subs_set_batch(struct conn *c, uint16_t ms) {
    struct worker *w = c->w;
    batch_flush(c); /* a batch still waiting goes out first */
    if (!ms) {
        subs_batch_release(c);
        return 0;
    }
    if (!conn_subs(c)->batch) {
        struct conn_batch *bt = calloc(1, sizeof(*bt));
        if (!bt)
            return -ENOMEM;
        conn_subs(c)->batch = bt;
        bt->next = w->batching;
        if (w->batching)
            conn_subs(w->batching)->batch->prev = c;
        w->batching = c;
        subs_timer_start(w);
    }
    conn_subs(c)->batch->ms = ms;
    conn_subs(c)->batch->due = uv_now(&w->loop) + ms;
    return 0;
}

void subs_batch_release(struct conn *c) {
    struct conn_batch *bt = conn_subs(c)->batch;
    if (!bt)
        return;
    struct worker *w = c->w;
    for (uint32_t i = 0; i < bt->n; i++)
        outbuf_unref(bt->v[i]);
    free(bt->v);
    if (bt->prev)
        conn_subs(bt->prev)->batch->next = bt->next;
    else
        w->batching = bt->next;
    if (bt->next)
        conn_subs(bt->next)->batch->prev = bt->prev;
    free(bt);
    conn_subs(c)->batch = NULL;
    if (!w->batching && !w->subs->lanes->pending && !w->subs->lanes->lines)
        uv_timer_stop(&w->batcher);
}

void subs_timer_start(struct worker *w) {
    if (!uv_is_active((uv_handle_t *)&w->batcher))
        uv_timer_start(&w->batcher, on_batch_timer, BATCH_TIMER_MS, BATCH_TIMER_MS);
}

void subs_send_tick(struct conn *c, struct outbuf *b) {
    if (c->closing || c->close_sent) {
        outbuf_unref(b);
        return;
    }
    if (conn_subs(c)->batch) {
        batch_add(c, b);
        return;
    }
    /* From here on the connection's own form of the tick: the shared
     * compressed sibling when it negotiated permessage-deflate, so queue
     * limits and conflation see the bytes that go out. */
    b = ws_frame_for(c, b);
    const struct config *cfg = c->w->cfg;
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
        ws_send_frame(c, b);
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
    uint64_t cap = (uint64_t)c->w->cfg->limits.max_outbound_bytes;
    if (!c->congested || c->out.bytes > cap / 2)
        return;
    c->congested = false;
    for (uint32_t i = 0; i < conn_subs(c)->nsubs; i++) {
        struct outbuf *b = conn_subs(c)->subs[i].pending;
        if (b) {
            conn_subs(c)->subs[i].pending = NULL;
            atomic_fetch_add_explicit(&c->w->stats.messages_sent, 1, memory_order_relaxed);
            ws_send_frame(c, b);
        }
    }
}

/* A subscriber that takes a tick's compressed sibling: it negotiated
 * permessage-deflate and does not batch (a batch is built from the plain
 * JSON, then compressed as its own message). */
static bool takes_sibling(struct conn *c) { return c->deflate && !conn_subs(c)->batch; }

void subs_fan(struct sub_list *l, struct outbuf *b) {
    uint32_t n = l->n;
    /* Subscribers that take the frame's compressed sibling (built by the
     * hub, net/zframe.h) get it directly, the others the frame: one atomic
     * add on each for the whole fan-out, and each queue consumes one. The
     * lanes hand the plain frame here too, so a connection without
     * compression never gets a compressed block. */
    struct outbuf *z = atomic_load_explicit(&b->z, memory_order_acquire);
    uint32_t nz = 0;
    if (z == b)
        z = NULL;
    for (uint32_t i = 0; z && i < n; i++)
        nz += takes_sibling(l->v[i].c);
    if (nz)
        atomic_fetch_add_explicit(&z->refs, nz, memory_order_relaxed);
    atomic_fetch_add_explicit(&b->refs, n - nz, memory_order_relaxed);
    /* Fairness: the queues are written in the order they were filled
     * (net/worker.c), so a fixed order would make the same subscribers wait
     * for the whole fan-out every time. Each fan-out starts elsewhere: a
     * golden-ratio stride spreads consecutive starts over the whole list. */
    uint32_t start = n ? (l->rot += 2654435769u) % n : 0;
    for (uint32_t k = 0, i = start; k < n; k++, i = i + 1 == n ? 0 : i + 1) {
        struct sub_entry *e = &l->v[i];
        struct outbuf *x = nz && takes_sibling(e->c) ? z : b;
        if (b->seq > e->min_seq)
            subs_send_tick(e->c, x);
        else if (e->min_seq == SUBS_HELD)
            replay_hold_frame(e->c, x);
        else
            outbuf_unref(x);
    }
}

/* Saturation (limits.shed_after_ms): a worker that has fallen behind by
 * more than the bound — a tick waited that long in its queue of ticks, or a
 * writable connection's queue that long for its sweep (net/worker.c) —
 * skips a tick whose symbol already has a newer frame queued for it, so it
 * catches up instead of delivering an ever older backlog. It is the
 * slow-consumer policy (newest per symbol) applied to the whole worker:
 * subscribers see seq jump, never a stale tick, and the newest tick of a
 * burst always goes out (nothing newer is queued). The test costs one
 * relaxed load per tick, and a clock read only when a newer tick is queued;
 * nothing per subscriber; a skipped tick costs nothing per subscriber
 * either. */
static bool shed(struct worker *w, const struct outbuf *b) {
    uint64_t after = (uint64_t)w->cfg->limits.shed_after_ms * 1000000u;
    return after && b->seq < atomic_load_explicit(&w->subs->hub->st[b->sym].posted_seq, memory_order_relaxed) &&
           (worker_behind(w) || uv_hrtime() - b->born_ns > after);
}

void subs_deliver(struct worker *w, struct outbuf *b) {
    struct sub_list *l = &w->subs->lists[b->sym];
    if (l->n) {
        if (shed(w, b)) {
            atomic_fetch_add_explicit(&w->subs->shed, 1, memory_order_relaxed);
        } else {
            subs_fan(l, b);
            worker_record_fanout(w, uv_hrtime() - b->born_ns);
        }
    }
    if (lanes_has(w->subs, b->sym)) /* throttled subscribers: the one branch real time pays */
        lanes_on_tick(w, b);
    outbuf_unref(b);
}
