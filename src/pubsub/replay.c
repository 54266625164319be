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
#define REFILLS_MAX 3        /* second questions per recovery before it falls back to the snapshot */

/* One symbol of a connection being recovered. */
struct replay_sym {
    uint32_t sym;
    bool replaying;          /* replay_start ran: t is being written */
    struct tick *t;          /* the replay (owned), t[next..n) still to write */
    uint32_t n, next;
    struct outbuf **held;    /* live frames while held, seq order, one reference each */
    uint32_t nheld, capheld;
    uint64_t held_bytes;
    /* After the replay: the client has every seq up to `last`. */
    bool awaiting;           /* no live frame yet: the first one must be last + 1 */
    bool refilling;          /* a gap after last: its ticks asked again */
    uint8_t refills;
    uint64_t last;
    char epoch[HUB_EPOCH_MAX + 1]; /* the numbering the client was recovered in */
};

/* A connection's recoveries (conn_subs(c)->replay), allocated when needed. */
struct conn_replay {
    struct conn *prev, *next; /* the worker's list of connections replaying */
    bool linked;
    struct replay_sym *v;
    uint32_t n, cap;
};

static void refill(struct conn *c, struct replay_sym *rs);
static void run_replay(struct conn *c, struct replay_sym *rs);

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
 * the newest frame replaces the last one held (seq order kept). After
 * the replay, the first live frame ends the hold when it is last + 1. */
void replay_hold_frame(struct conn *c, struct outbuf *b) {
    struct replay_sym *rs = find(c, b->sym);
    uint64_t cap = (uint64_t)c->w->cfg->limits.max_outbound_bytes;
    if (!rs || (rs->awaiting && b->seq <= rs->last)) {
        outbuf_unref(b);
        return;
    }
    if (rs->awaiting && b->seq == rs->last + 1) {
        subs_send_tick(c, b);
        subs_release_held(c, rs->sym, b->seq);
        drop_at(c, (uint32_t)(rs - conn_subs(c)->replay->v));
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
    if (rs->awaiting) { /* the first live frame is not last + 1: a gap */
        rs->awaiting = false;
        refill(c, rs);
    }
}

/* The replay of entry i is written (or there was none): the held frames
 * newer than `last` follow under the usual policy, then the live stream. */
/* The replay of entry i is written (or there was none): the held frames
 * newer than `last` follow under the usual policy, then the live stream.
 * checked (after a replay): the first of them must be last + 1; a gap is
 * asked again (refill), and with nothing held yet the entry stays held,
 * awaiting the first live frame. True when entry i is gone. */
static bool join(struct conn *c, uint32_t i, uint64_t last, bool checked) {
    struct replay_sym *rs = &conn_subs(c)->replay->v[i];
    uint32_t k = 0;
    for (; k < rs->nheld && rs->held[k]->seq <= last; k++) {
        rs->held_bytes -= rs->held[k]->len;
        outbuf_unref(rs->held[k]);
    }
    rs->replaying = false;
    if (checked && (k == rs->nheld || rs->held[k]->seq != last + 1)) {
        if (k)
            memmove(rs->held, rs->held + k, (rs->nheld - k) * sizeof(*rs->held));
        rs->nheld -= k;
        rs->last = last;
        if (rs->nheld)
            refill(c, rs);
        else
            rs->awaiting = true;
        return false;
    }
    for (; k < rs->nheld; k++) {
        struct outbuf *b = rs->held[k];
        last = b->seq > last ? b->seq : last;
        subs_send_tick(c, b);
    }
    rs->nheld = 0;
    subs_release_held(c, rs->sym, last);
    drop_at(c, i);
    return true;
}

/* The snapshot instead of the promise (not recovered, or a gap nobody
 * can fill): a visible resync, then the held frames newer than it. */
static void resync(struct conn *c, uint32_t i) {
    uint64_t seq = 0;
    struct outbuf *snap = hub_snapshot(c->w->subs->hub, conn_subs(c)->replay->v[i].sym, &seq);
    if (snap) {
        atomic_fetch_add_explicit(&c->w->stats.messages_sent, 1, memory_order_relaxed);
        conn_send(c, snap);
    }
    join(c, i, seq, false);
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
        uint64_t last = rs->n ? rs->t[rs->n - 1].seq : rs->last;
        bool gone = join(c, i, last, true); /* gone: the next one moved here */
        if (!conn_subs(c)->replay)
            return false;
        cr = conn_subs(c)->replay;
        i += !gone;
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

/* The second answer: the missing ticks replayed (the join checks again),
 * or the snapshot when the source no longer has them. */
static void refilled(struct conn *c, struct recover_req *r) {
    struct recover_item *it = &r->items[0];
    struct replay_sym *rs = find(c, it->sym);
    if (!rs || !rs->refilling)
        return; /* unsubscribed (or re-subscribed) meanwhile */
    rs->refilling = false;
    if (!it->recovered || it->n == 0 || strcmp(it->epoch, rs->epoch) != 0) {
        resync(c, (uint32_t)(rs - conn_subs(c)->replay->v));
        return;
    }
    free(rs->t);
    rs->t = it->t;
    rs->n = it->n;
    rs->next = 0;
    it->t = NULL;
    it->n = 0;
    run_replay(c, rs);
}

static void run_refill(struct worker *w, void *ptr, uint64_t a, uint64_t b) {
    struct conn *c = conn_find(w, ((struct recover_req *)ptr)->conn_id);
    if (c && c->phase == PHASE_WS)
        refilled(c, ptr);
    recover_req_free(ptr);
}

static void drop_refill(void *ptr, uint64_t a, uint64_t b) { recover_req_free(ptr); }

static const struct worker_mail REFILL_MAIL = {"refill", run_refill, drop_refill};

/* A gap between the replay's last seq and the first live frame held
 * (this node started hearing the symbol after the source answered): the
 * ticks after rs->last are asked again, the live frames held meanwhile;
 * past REFILLS_MAX, or out of memory, the snapshot. Never a silent gap. */
static void refill(struct conn *c, struct replay_sym *rs) {
    struct hub *h = c->w->subs->hub;
    struct recover_req *r = rs->refills < REFILLS_MAX ? recover_req_new(1) : NULL;
    if (!r) {
        resync(c, (uint32_t)(rs - conn_subs(c)->replay->v));
        return;
    }
    rs->refills++;
    rs->refilling = true;
    *r = (struct recover_req){.worker = c->w->id, .conn_id = c->id, .drop = recover_req_free, .mail = &REFILL_MAIL, .n = 1};
    r->items[0] = (struct recover_item){.sym = rs->sym, .want = true, .after = rs->last};
    memcpy(r->items[0].epoch, rs->epoch, sizeof(rs->epoch));
    if (h->obs.recover && h->obs.recover(h->obs.recover_ctx, r))
        return;
    replay_fill_local(h, r);
    refilled(c, r);
    recover_req_free(r);
}

void replay_start(struct conn *c, struct recover_item *it) {
    struct replay_sym *rs = find(c, it->sym);
    if (!rs)
        return; /* unsubscribed (or re-subscribed) meanwhile */
    uint32_t i = (uint32_t)(rs - conn_subs(c)->replay->v);
    if (!it->recovered) {
        resync(c, i);
        return;
    }
    memcpy(rs->epoch, it->epoch, sizeof(rs->epoch));
    rs->last = it->after;
    rs->t = it->t;
    rs->n = it->n;
    rs->next = 0;
    it->t = NULL;
    it->n = 0;
    if (rs->n == 0) {
        join(c, i, it->after, true);
        return;
    }
    run_replay(c, rs);
}

/* Writes rs->t from its start, the first slice now. */
static void run_replay(struct conn *c, struct replay_sym *rs) {
    rs->replaying = true;
    struct worker *w = c->w;
    link_conn(c);
    w->replayer.data = w;
    uv_timer_start(&w->replayer, on_pump, 0, REPLAY_PUMP_MS);
    pump_conn(c, w->subs->hub); /* the first slice now, behind the confirmation */
}
