/* lanes.c - throttled and delayed delivery; see lanes.h. */
#include "pubsub/lanes.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/config.h"
#include "net/outbuf.h"
#include "net/worker.h"
#include "pubsub/hub.h"

#define LINE_SLACK 64

struct lane {
    struct sub_list members;
    struct sub_mode mode;
    uint32_t sym;
    uint64_t last_ms;           /* loop ms of the last release (throttled) */
    struct outbuf *held;        /* newest frame held back (throttled), one reference */
    struct lane *next_pending;  /* the worker's lanes holding a frame */
};

struct delay_entry {
    int64_t release_ms;         /* wall ms */
    struct outbuf *b;           /* one reference */
};

struct sym_lanes {
    struct lane *lane[LANES_MAX + 1]; /* 1..LANES_MAX */
    uint32_t members, delayed_members;
    struct delay_entry *v;      /* ring of the delay line */
    uint32_t head, n, cap;
    struct sym_lanes *next_line; /* the worker's lines holding frames */
    bool in_lines;
};

static struct worker_lanes *wl(const struct worker *w) { return w->subs->lanes; }

int lanes_init(struct worker_subs *ws, const struct config *cfg, uint32_t n) {
    struct worker_lanes *l = calloc(1, sizeof(*l));
    if (!l || !(l->by_sym = calloc(n ? n : 1, sizeof(*l->by_sym)))) {
        free(l);
        return -ENOMEM;
    }
    l->delay_ms = (int64_t)cfg->feed.delay_s * 1000;
    l->slot_ms = cfg->feed.delay_resolution_ms;
    l->line_cap = (uint32_t)(l->delay_ms / l->slot_ms) + LINE_SLACK;
    l->next_release_ms = INT64_MAX;
    ws->lanes = l;
    return 0;
}

static void line_clear(struct sym_lanes *s) {
    for (uint32_t i = 0; i < s->n; i++)
        outbuf_unref(s->v[(s->head + i) % s->cap].b);
    free(s->v);
    s->v = NULL;
    s->head = s->n = s->cap = 0;
}

void lanes_free(struct worker_subs *ws) {
    struct worker_lanes *l = ws->lanes;
    if (!l)
        return;
    for (uint32_t i = 0; i < ws->n; i++) {
        struct sym_lanes *s = l->by_sym[i];
        if (!s)
            continue;
        for (int k = 1; k <= LANES_MAX; k++)
            if (s->lane[k]) {
                if (s->lane[k]->held)
                    outbuf_unref(s->lane[k]->held);
                free(s->lane[k]->members.v);
                free(s->lane[k]);
            }
        line_clear(s);
        free(s);
    }
    free(l->by_sym);
    free(l);
    ws->lanes = NULL;
}

int lanes_lane(struct worker *w, uint32_t sym, struct sub_mode m) {
    struct worker_lanes *l = wl(w);
    struct sym_lanes *s = l->by_sym[sym];
    if (!s && !(s = l->by_sym[sym] = calloc(1, sizeof(*s))))
        return -ENOMEM;
    int free_slot = 0;
    for (int k = 1; k <= LANES_MAX; k++) {
        if (s->lane[k] && s->lane[k]->mode.rate == m.rate && s->lane[k]->mode.delayed == m.delayed)
            return k;
        if (!s->lane[k] && !free_slot)
            free_slot = k;
    }
    struct lane *ln = free_slot ? calloc(1, sizeof(*ln)) : NULL;
    if (!ln) {
        if (!s->members) { /* nothing else keeps it */
            free(s);
            l->by_sym[sym] = NULL;
        }
        return -ENOMEM; /* more modes than lanes cannot happen: rates come from 7 roles */
    }
    ln->mode = m;
    ln->sym = sym;
    s->lane[free_slot] = ln;
    return free_slot;
}

struct sub_list *lanes_list(struct worker *w, uint32_t sym, int lane) { return &wl(w)->by_sym[sym]->lane[lane]->members; }

struct sub_mode lanes_mode(struct worker *w, uint32_t sym, int lane) { return wl(w)->by_sym[sym]->lane[lane]->mode; }

uint32_t lanes_members(const struct worker *w, uint32_t sym) {
    const struct sym_lanes *s = wl(w)->by_sym[sym];
    return s ? s->members : 0;
}

/* Builds delayed frames of the recent ticks whose release is still ahead
 * and queues them: a worker's first delayed subscriber of a symbol sees
 * the stream from delay_s ago, not silence for delay_s. */
static void line_fill(struct worker *w, uint32_t sym, const struct tick *t, uint32_t n) {
    struct hub *h = w->subs->hub;
    int64_t now = hub_now_ms();
    for (uint32_t i = 0; i < n; i++) {
        struct outbuf *b = hub_frame(h, sym, &t[i], false, true);
        if (b)
            lanes_on_delayed(w, b, hub_release_ms(h, t[i].timestamp, now));
    }
}

void lanes_joined(struct worker *w, uint32_t sym, int lane) {
    struct sym_lanes *s = wl(w)->by_sym[sym];
    s->members++;
    if (!s->lane[lane]->mode.delayed) {
        atomic_fetch_add_explicit(&wl(w)->throttled_subs, 1, memory_order_relaxed);
        return;
    }
    atomic_fetch_add_explicit(&wl(w)->delayed_subs, 1, memory_order_relaxed);
    if (s->delayed_members++ == 0) {
        struct hub *h = w->subs->hub;
        struct tick *t = malloc(sizeof(*t) * h->history_size);
        uint32_t n = hub_delay_activate(h, sym, w->id, t, t ? h->history_size : 0);
        line_fill(w, sym, t, n); /* frames posted from now on follow in the mailbox */
        free(t);
    }
}

static void pending_remove(struct worker_lanes *l, struct lane *ln) {
    for (struct lane **p = &l->pending; *p; p = &(*p)->next_pending)
        if (*p == ln) {
            *p = ln->next_pending;
            return;
        }
}

static void lines_remove(struct worker_lanes *l, struct sym_lanes *s) {
    for (struct sym_lanes **p = &l->lines; *p; p = &(*p)->next_line)
        if (*p == s) {
            *p = s->next_line;
            s->in_lines = false;
            return;
        }
}

void lanes_left(struct worker *w, uint32_t sym, int lane) {
    struct worker_lanes *l = wl(w);
    struct sym_lanes *s = l->by_sym[sym];
    struct lane *ln = s->lane[lane];
    s->members--;
    atomic_fetch_sub_explicit(ln->mode.delayed ? &l->delayed_subs : &l->throttled_subs, 1, memory_order_relaxed);
    if (ln->mode.delayed && --s->delayed_members == 0) {
        hub_delay_deactivate(w->subs->hub, sym, w->id);
        if (s->in_lines)
            lines_remove(l, s);
        line_clear(s);
    }
    lanes_unused(w, sym, lane);
}

void lanes_unused(struct worker *w, uint32_t sym, int lane) {
    struct worker_lanes *l = wl(w);
    struct sym_lanes *s = l->by_sym[sym];
    struct lane *ln = s->lane[lane];
    if (ln->members.n == 0) {
        if (ln->held) {
            pending_remove(l, ln);
            outbuf_unref(ln->held);
        }
        free(ln->members.v);
        free(ln);
        s->lane[lane] = NULL;
    }
    if (s->members == 0) {
        free(s);
        l->by_sym[sym] = NULL;
    }
}

/* A frame for a throttled lane at loop time now (b borrowed). */
static void throttle_offer(struct worker *w, struct lane *ln, struct outbuf *b) {
    uint64_t now = uv_now(&w->loop), period = 1000u / ln->mode.rate;
    if (!ln->held && (ln->last_ms == 0 || now - ln->last_ms >= period)) {
        ln->last_ms = now ? now : 1;
        subs_fan(&ln->members, b);
        return;
    }
    if (ln->held) {
        outbuf_unref(ln->held);
        atomic_fetch_add_explicit(&wl(w)->throttled_dropped, 1, memory_order_relaxed);
    } else {
        ln->next_pending = wl(w)->pending;
        wl(w)->pending = ln;
        subs_timer_start(w);
    }
    ln->held = outbuf_ref(b);
}

void lanes_on_tick(struct worker *w, struct outbuf *b) {
    struct sym_lanes *s = wl(w)->by_sym[b->sym];
    for (int k = 1; k <= LANES_MAX; k++)
        if (s->lane[k] && !s->lane[k]->mode.delayed && s->lane[k]->members.n)
            throttle_offer(w, s->lane[k], b);
}

void lanes_on_delayed(struct worker *w, struct outbuf *b, int64_t release_ms) {
    struct worker_lanes *l = wl(w);
    struct sym_lanes *s = l->by_sym[b->sym];
    if (!s || !s->delayed_members) { /* the last delayed subscriber left meanwhile */
        outbuf_unref(b);
        return;
    }
    if (s->n) {
        struct delay_entry *tail = &s->v[(s->head + s->n - 1) % s->cap];
        if (release_ms < tail->release_ms)
            release_ms = tail->release_ms; /* FIFO: seq order is release order */
        if (release_ms / l->slot_ms == tail->release_ms / l->slot_ms || s->n >= l->line_cap) {
            outbuf_unref(tail->b); /* the newest per slot (or at the cap) replaces it */
            tail->b = b;
            tail->release_ms = release_ms;
            atomic_fetch_add_explicit(&l->delay_conflated, 1, memory_order_relaxed);
            return;
        }
    }
    if (s->n == s->cap) {
        uint32_t ncap = s->cap ? s->cap * 2 : 64;
        if (ncap > l->line_cap)
            ncap = l->line_cap;
        struct delay_entry *v = ncap > s->cap ? malloc(sizeof(*v) * ncap) : NULL;
        if (!v) { /* out of memory: the newest replaces the tail, or waits for none */
            if (s->n) {
                struct delay_entry *tail = &s->v[(s->head + s->n - 1) % s->cap];
                outbuf_unref(tail->b);
                tail->b = b;
            } else {
                outbuf_unref(b);
            }
            atomic_fetch_add_explicit(&l->delay_conflated, 1, memory_order_relaxed);
            return;
        }
        for (uint32_t i = 0; i < s->n; i++)
            v[i] = s->v[(s->head + i) % s->cap];
        free(s->v);
        s->v = v;
        s->head = 0;
        s->cap = ncap;
    }
    s->v[(s->head + s->n) % s->cap] = (struct delay_entry){release_ms, b};
    if (s->n++ == 0 && !s->in_lines) {
        s->next_line = l->lines;
        l->lines = s;
        s->in_lines = true;
    }
    if (release_ms < l->next_release_ms)
        l->next_release_ms = release_ms;
    subs_timer_start(w);
}

/* A released delayed frame to every delayed lane of s (b borrowed). */
static void release_delayed(struct worker *w, struct sym_lanes *s, struct outbuf *b) {
    for (int k = 1; k <= LANES_MAX; k++) {
        struct lane *ln = s->lane[k];
        if (!ln || !ln->mode.delayed || !ln->members.n)
            continue;
        if (ln->mode.rate)
            throttle_offer(w, ln, b);
        else
            subs_fan(&ln->members, b);
    }
}

static void lines_run(struct worker *w) {
    struct worker_lanes *l = wl(w);
    int64_t now = hub_now_ms();
    if (now < l->next_release_ms)
        return;
    l->next_release_ms = INT64_MAX;
    for (struct sym_lanes **p = &l->lines; *p;) {
        struct sym_lanes *s = *p;
        while (s->n && s->v[s->head].release_ms <= now) {
            struct outbuf *b = s->v[s->head].b;
            s->head = (s->head + 1) % s->cap;
            s->n--;
            release_delayed(w, s, b);
            outbuf_unref(b);
        }
        if (!s->n) {
            *p = s->next_line;
            s->in_lines = false;
            continue;
        }
        if (s->v[s->head].release_ms < l->next_release_ms)
            l->next_release_ms = s->v[s->head].release_ms;
        p = &s->next_line;
    }
}

static void throttles_run(struct worker *w) {
    struct worker_lanes *l = wl(w);
    uint64_t now = uv_now(&w->loop);
    for (struct lane **p = &l->pending; *p;) {
        struct lane *ln = *p;
        if (now - ln->last_ms < 1000u / ln->mode.rate) {
            p = &ln->next_pending;
            continue;
        }
        *p = ln->next_pending;
        struct outbuf *b = ln->held;
        ln->held = NULL;
        ln->last_ms = now ? now : 1;
        subs_fan(&ln->members, b); /* the trailing edge: the newest, now */
        outbuf_unref(b);
    }
}

bool lanes_timer(struct worker *w) {
    lines_run(w);
    throttles_run(w);
    return wl(w)->pending || wl(w)->lines;
}
