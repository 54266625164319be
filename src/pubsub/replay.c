/* replay.c - recovery's worker side: held subscriptions, the sliced
 * replay and the join with the live stream; see replay.h. */
#include "pubsub/replay.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/config.h"
#include "net/conn.h"
#include "net/outbuf.h"
#include "net/worker.h"
#include "pubsub/subs.h"

#define REPLAY_SLICE 64      /* ticks per connection per loop turn: fairness */
#define REPLAY_PUMP_MS 1     /* a stalled replay is looked at again after this */

/* One symbol of a connection being recovered. */
struct replay_sym {
    uint32_t sym;
    bool replaying;          /* replay_start ran: t is being written */
    struct tick *t;          /* the replay (owned), t[next..n) still to write */
    uint32_t n, next;
    struct outbuf **held;    /* live frames while held, seq order, one reference each */
    uint32_t nheld, capheld;
    uint64_t held_bytes;
};

/* A connection's recoveries (conn_subs(c)->replay), allocated when needed. */
struct conn_replay {
    struct conn *prev, *next; /* the worker's list of connections replaying */
    bool linked;
    struct replay_sym *v;
    uint32_t n, cap;
};

struct recover_req *recover_req_new(uint32_t n) {
    return calloc(1, sizeof(struct recover_req) + (size_t)n * sizeof(struct recover_item));
}

void recover_req_free(struct recover_req *r) {
    if (!r)
        return;
    for (uint32_t i = 0; i < r->n; i++)
        free(r->items[i].t);
    free(r);
}

void replay_fill_local(struct hub *h, struct recover_req *r) {
    for (uint32_t i = 0; i < r->n; i++)
        replay_fill_item(h, &r->items[i]);
}

void replay_fill_item(struct hub *h, struct recover_item *it) {
    {
        char cur[HUB_EPOCH_MAX + 1];
        it->recovered = false;
        if (it->want) {
            uint64_t last;
            free(it->t);
            it->t = malloc(sizeof(struct tick) * (h->history_size ? h->history_size : 1));
            it->n = 0;
            if (it->t)
                it->recovered = hub_replay(h, it->sym, it->after, it->epoch, it->t, h->history_size, &it->n, &last, cur);
        } else {
            hub_epoch(h, it->sym, cur);
        }
        /* Not known (Redis configured, never heard): this node's numbering. */
        memcpy(it->epoch, *cur ? cur : h->local_epoch, sizeof(it->epoch));
    }
}

static struct replay_sym *find(struct conn *c, uint32_t sym) {
    struct conn_replay *cr = conn_subs(c)->replay;
    for (uint32_t i = 0; cr && i < cr->n; i++)
        if (cr->v[i].sym == sym)
            return &cr->v[i];
    return NULL;
}

static void link_conn(struct conn *c) {
    struct worker *w = c->w;
    struct conn_replay *cr = conn_subs(c)->replay;
    if (cr->linked)
        return;
    cr->linked = true;
    cr->prev = NULL;
    cr->next = w->replaying;
    if (w->replaying)
        conn_subs(w->replaying)->replay->prev = c;
    w->replaying = c;
}

static void unlink_conn(struct conn *c) {
    struct worker *w = c->w;
    struct conn_replay *cr = conn_subs(c)->replay;
    if (!cr->linked)
        return;
    if (cr->prev)
        conn_subs(cr->prev)->replay->next = cr->next;
    else
        w->replaying = cr->next;
    if (cr->next)
        conn_subs(cr->next)->replay->prev = cr->prev;
    cr->linked = false;
    if (!w->replaying)
        uv_timer_stop(&w->replayer);
}

/* Drops entry i of c's recoveries; the last one frees the record. */
static void drop_at(struct conn *c, uint32_t i) {
    struct conn_replay *cr = conn_subs(c)->replay;
    struct replay_sym *rs = &cr->v[i];
    for (uint32_t k = 0; k < rs->nheld; k++)
        outbuf_unref(rs->held[k]);
    free(rs->held);
    free(rs->t);
    cr->v[i] = cr->v[--cr->n];
    bool any = false;
    for (uint32_t k = 0; k < cr->n; k++)
        any |= cr->v[k].replaying;
    if (!any)
        unlink_conn(c);
    if (cr->n == 0) {
        free(cr->v);
        free(cr);
        conn_subs(c)->replay = NULL;
    }
}

void replay_forget(struct conn *c, uint32_t sym) {
    struct replay_sym *rs = find(c, sym);
    if (rs)
        drop_at(c, (uint32_t)(rs - conn_subs(c)->replay->v));
}

int replay_hold(struct conn *c, uint32_t sym) {
    replay_forget(c, sym);
    struct conn_replay *cr = conn_subs(c)->replay;
    if (!cr && !(cr = conn_subs(c)->replay = calloc(1, sizeof(*cr))))
        return -ENOMEM;
    if (cr->n == cr->cap) {
        uint32_t ncap = cr->cap ? cr->cap * 2 : 2;
        struct replay_sym *n = realloc(cr->v, ncap * sizeof(*n));
        if (!n)
            goto fail;
        cr->v = n;
        cr->cap = ncap;
    }
    if (subs_add_held(c, sym) < 0)
        goto fail;
    cr->v[cr->n++] = (struct replay_sym){.sym = sym};
    return 0;
fail:
    if (cr->n == 0) {
        free(cr->v);
        free(cr);
        conn_subs(c)->replay = NULL;
    }
    return -ENOMEM;
}

/* Keeps b for later (consumed). Bounded by bytes: past the outbound cap
 * the newest frame replaces the last one held (seq order kept). */
void replay_hold_frame(struct conn *c, struct outbuf *b) {
    struct replay_sym *rs = find(c, b->sym);
    uint64_t cap = (uint64_t)c->w->cfg->limits.max_outbound_bytes;
    if (!rs) {
        outbuf_unref(b);
        return;
    }
    if (rs->nheld && (rs->held_bytes + b->len > cap || rs->nheld == rs->capheld)) {
        if (rs->held_bytes + b->len > cap || rs->capheld > UINT32_MAX / 2) {
            rs->held_bytes -= rs->held[rs->nheld - 1]->len;
            outbuf_unref(rs->held[rs->nheld - 1]);
            rs->nheld--;
            atomic_fetch_add_explicit(&c->w->stats.conflated, 1, memory_order_relaxed);
        }
    }
    if (rs->nheld == rs->capheld) {
        uint32_t ncap = rs->capheld ? rs->capheld * 2 : 16;
        struct outbuf **n = realloc(rs->held, ncap * sizeof(*n));
        if (!n) {
            outbuf_unref(b); /* out of memory: the hold loses this frame */
            return;
        }
        rs->held = n;
        rs->capheld = ncap;
    }
    rs->held[rs->nheld++] = b;
    rs->held_bytes += b->len;
}

/* The replay of entry i is written (or there was none): the held frames
 * newer than `last` follow under the usual policy, then the live stream. */
static void join(struct conn *c, uint32_t i, uint64_t last) {
    struct replay_sym *rs = &conn_subs(c)->replay->v[i];
    for (uint32_t k = 0; k < rs->nheld; k++) {
        struct outbuf *b = rs->held[k];
        rs->held[k] = NULL;
        if (b->seq > last) {
            last = b->seq;
            subs_send_tick(c, b);
        } else {
            outbuf_unref(b);
        }
    }
    rs->nheld = 0;
    subs_release_held(c, rs->sym, last);
    drop_at(c, i);
}

/* Writes up to one slice of c's replays; false when nothing is left. */
static bool pump_conn(struct conn *c, struct hub *h) {
    struct conn_replay *cr = conn_subs(c)->replay;
    uint64_t half = (uint64_t)c->w->cfg->limits.max_outbound_bytes / 2;
    uint32_t budget = REPLAY_SLICE;
    for (uint32_t i = 0; i < cr->n;) {
        struct replay_sym *rs = &cr->v[i];
        if (!rs->replaying) {
            i++;
            continue;
        }
        /* Recovery is for real-time unthrottled subscriptions: never delayed. */
        while (rs->next < rs->n && budget && c->out.bytes < half && !c->closing && !c->close_sent) {
            struct outbuf *b = hub_frame(h, rs->sym, &rs->t[rs->next], false, false);
            if (!b)
                return true; /* memory is short: try again next turn */
            rs->next++;
            budget--;
            atomic_fetch_add_explicit(&c->w->stats.messages_sent, 1, memory_order_relaxed);
            conn_send(c, b);
        }
        if (rs->next < rs->n)
            return true;
        uint64_t last = rs->n ? rs->t[rs->n - 1].seq : 0;
        join(c, i, last); /* entry i is gone: the next one moved here */
        if (!conn_subs(c)->replay)
            return false;
        cr = conn_subs(c)->replay;
    }
    return cr->linked;
}

void replay_pump(struct worker *w) {
    struct hub *h = w->subs->hub;
    for (struct conn *c = w->replaying, *next; c; c = next) {
        next = conn_subs(c)->replay->next;
        pump_conn(c, h);
    }
}

static void on_pump(uv_timer_t *t) { replay_pump(t->data); }

void replay_start(struct conn *c, struct recover_item *it) {
    struct replay_sym *rs = find(c, it->sym);
    if (!rs)
        return; /* unsubscribed (or re-subscribed) meanwhile */
    uint32_t i = (uint32_t)(rs - conn_subs(c)->replay->v);
    if (!it->recovered) {
        uint64_t seq = 0;
        struct outbuf *snap = hub_snapshot(c->w->subs->hub, it->sym, &seq);
        if (snap) {
            atomic_fetch_add_explicit(&c->w->stats.messages_sent, 1, memory_order_relaxed);
            conn_send(c, snap);
        }
        join(c, i, seq);
        return;
    }
    rs->t = it->t;
    rs->n = it->n;
    rs->next = 0;
    it->t = NULL;
    it->n = 0;
    if (rs->n == 0) {
        join(c, i, it->after);
        return;
    }
    rs->replaying = true;
    struct worker *w = c->w;
    link_conn(c);
    w->replayer.data = w;
    uv_timer_start(&w->replayer, on_pump, 0, REPLAY_PUMP_MS);
    pump_conn(c, w->subs->hub); /* the first slice now, behind the confirmation */
}
