/* hub.c - sequencing and fan-out to workers; see hub.h. */
#include "pubsub/hub.h"
#include "pubsub/lanes.h"
#include "pubsub/subs.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/random.h>
#include <sys/time.h>
#include <unistd.h>

#include "base/log.h"
#include "net/worker.h"
#include "net/outbuf.h"
#include "net/zframe.h"
#include "ws/deflate.h"
#include "ws/frame.h"

int64_t hub_now_ms(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

int hub_init(struct hub *h, const struct symbol_table *syms, uint32_t history_size) {
    memset(h, 0, sizeof(*h));
    h->syms = syms;
    h->history_size = history_size;
    h->st = calloc(syms->n, sizeof(*h->st));
    if (!h->st)
        return -ENOMEM;
    /* Start time and randomness: another start of this process, or another
     * process, never numbers a symbol's ticks under the same epoch. */
    uint64_t r = 0;
    if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
        r = uv_hrtime() ^ ((uint64_t)getpid() << 32);
    snprintf(h->local_epoch, sizeof(h->local_epoch), "%llx-%016llx", (unsigned long long)hub_now_ms(),
             (unsigned long long)r);
    for (uint32_t i = 0; i < syms->n; i++) {
        uv_mutex_init(&h->st[i].lock);
        memcpy(h->st[i].epoch, h->local_epoch, sizeof(h->local_epoch));
        if (syms->start[i] > 0) {
            /* A start price counts as the last price for snapshots. */
            struct tick *t = &h->st[i].last;
            t->price = t->bid = t->ask = syms->start[i];
            t->timestamp = hub_now_ms();
            h->st[i].first = syms->start[i];
            h->st[i].has_price = true;
        }
    }
    return 0;
}

void hub_set_workers(struct hub *h, struct worker *workers, int n) {
    h->workers = workers;
    h->nworkers = n;
}

/* With a publish interceptor (Redis) the epochs are the cluster's: not
 * known until heard. */
void hub_set_observers(struct hub *h, const struct hub_observers *obs) {
    h->obs = *obs;
    for (uint32_t i = 0; obs->publish && i < h->syms->n; i++)
        h->st[i].epoch[0] = '\0';
}

void hub_free(struct hub *h) {
    if (!h->st)
        return;
    for (uint32_t i = 0; i < h->syms->n; i++) {
        uv_mutex_destroy(&h->st[i].lock);
        free(h->st[i].hist);
        free(h->st[i].hist_gen);
    }
    free(h->st);
    h->st = NULL;
}

#define DELAYED_FIELD ",\"delayed\":true}"

struct outbuf *hub_frame(struct hub *h, uint32_t sym, const struct tick *t, bool snapshot, bool delayed) {
    struct outbuf *b = outbuf_new(TICK_JSON_MAX + sizeof(DELAYED_FIELD));
    if (!b)
        return NULL;
    char *p = (char *)outbuf_payload(b);
    size_t n = tick_format(p, h->syms->names[sym], t, snapshot);
    if (delayed) { /* the same object, one more field: replaces the closing brace */
        memcpy(p + n - 1, DELAYED_FIELD, sizeof(DELAYED_FIELD) - 1);
        n += sizeof(DELAYED_FIELD) - 2;
    }
    outbuf_seal_ws(b, WS_OP_TEXT, n);
    b->kind = snapshot ? OB_OTHER : OB_TICK;
    b->sym = sym;
    b->seq = t->seq;
    b->born_ns = uv_hrtime();
    if (!snapshot && ws_deflate_wanted())
        zframe_prepare(b); /* once here, shared by every subscriber that takes it */
    return b;
}

/* Builds the frame of s->last and posts it to every worker with local
 * subscribers. Called with s->lock held, which keeps seq order. */
static void run_tick(struct worker *w, void *b, uint64_t sym, uint64_t unused) { subs_deliver(w, b); }
static void drop_tick(void *b, uint64_t sym, uint64_t unused) { outbuf_unref(b); }
/* A tick's shared frame (one reference) for a worker's subscribers. */
static const struct worker_mail TICK_MAIL = {"tick", run_tick, drop_tick};
static void run_delayed(struct worker *w, void *b, uint64_t sym, uint64_t release) {
    lanes_on_delayed(w, b, (int64_t)release);
}
/* A tick's delayed frame (one reference) and its release time. */
static const struct worker_mail DELAYED_MAIL = {"delayed tick", run_delayed, drop_tick};

void hub_set_delay(struct hub *h, int64_t delay_ms) { h->delay_ms = delay_ms; }

int64_t hub_release_ms(const struct hub *h, int64_t ts, int64_t now) {
    int64_t r = ts + h->delay_ms;
    return r < now ? now : r > now + h->delay_ms ? now + h->delay_ms : r;
}

/* The delayed frame of s->last, built once, to every worker with delayed
 * subscribers (with s->lock held: in seq order). */
static void post_delayed_locked(struct hub *h, uint32_t sym, struct sym_state *s, uint64_t mask) {
    struct outbuf *b = hub_frame(h, sym, &s->last, false, true);
    if (!b)
        return;
    uint64_t release = (uint64_t)hub_release_ms(h, s->last.timestamp, hub_now_ms());
    atomic_store_explicit(&b->refs, (unsigned)__builtin_popcountll(mask) + 1, memory_order_relaxed);
    for (int w = 0; mask; w++, mask >>= 1) {
        if (!(mask & 1))
            continue;
        if (worker_post(&h->workers[w], &DELAYED_MAIL, b, sym, release) < 0) {
            outbuf_unref(b);
            atomic_fetch_add_explicit(&h->frames_dropped, 1, memory_order_relaxed);
        }
    }
    outbuf_unref(b);
}

static int fan_out_locked(struct hub *h, uint32_t sym, struct sym_state *s) {
    uint64_t mask = atomic_load_explicit(&s->workers, memory_order_acquire);
    if (!mask)
        return 0;
    struct outbuf *b = hub_frame(h, sym, &s->last, false, false);
    if (!b)
        return -ENOMEM;
    atomic_store_explicit(&b->refs, (unsigned)__builtin_popcountll(mask) + 1, memory_order_relaxed);
    atomic_store_explicit(&s->posted_seq, s->last.seq, memory_order_relaxed);
    for (int w = 0; mask; w++, mask >>= 1) {
        if (!(mask & 1))
            continue;
        if (worker_post(&h->workers[w], &TICK_MAIL, b, sym, 0) < 0) {
            outbuf_unref(b); /* policy at the bound: drop for that worker, counted */
            atomic_fetch_add_explicit(&h->frames_dropped, 1, memory_order_relaxed);
        }
    }
    outbuf_unref(b);
    uint64_t dmask = atomic_load_explicit(&s->delayed_workers, memory_order_acquire);
    if (dmask)
        post_delayed_locked(h, sym, s, dmask);
    return 0;
}

/* With Redis configured the publish observer takes every tick, Redis up
 * or down, so a publisher's ticks keep their order across an outage (the
 * engine sequences locally while Redis is away). A full mailbox: local. */
int hub_publish(struct hub *h, const struct tick_in *in) {
    if (h->obs.publish && h->obs.publish(h->obs.publish_ctx, in))
        return 0;
    return hub_publish_local(h, in);
}

/* A new epoch starts a new numbering: the ring's older entries stay for
 * get_history but no longer answer a recovery (their gen differs). */
static void set_epoch_locked(struct sym_state *s, const char *epoch) {
    if (!*epoch || strcmp(s->epoch, epoch) == 0)
        return;
    snprintf(s->epoch, sizeof(s->epoch), "%s", epoch);
    s->epoch_gen++;
}

void hub_deliver(struct hub *h, uint32_t sym, const struct tick *t, double first, const char *epoch) {
    struct sym_state *s = &h->st[sym];
    uv_mutex_lock(&s->lock);
    if (t->seq > s->last.seq) {
        set_epoch_locked(s, epoch);
        if (first > 0)
            s->first = first;
        s->last = *t;
        s->last.change = t->price - s->first;
        s->last.change_percent = s->first > 0 ? s->last.change / s->first * 100.0 : 0;
        s->has_price = true;
        hub_history_push_locked(h, s, &s->last);
        fan_out_locked(h, sym, s);
        if (atomic_load_explicit(&s->watchers, memory_order_relaxed))
            h->obs.on_tick(h->obs.tick_ctx, sym, t->price); /* under the lock: in seq order */
        atomic_fetch_add_explicit(&h->ticks_published, 1, memory_order_relaxed);
        atomic_store_explicit(&h->last_tick_ms, hub_now_ms(), memory_order_relaxed);
    }
    uv_mutex_unlock(&s->lock);
}

int hub_publish_local(struct hub *h, const struct tick_in *in) {
    struct sym_state *s = &h->st[in->sym];
    int rc = 0;
    uv_mutex_lock(&s->lock);
    struct tick *t = &s->last;
    if (!s->has_price || s->first <= 0)
        s->first = in->price;
    s->has_price = true;
    t->price = in->price;
    t->bid = in->has_bid ? in->bid : in->price;
    t->ask = in->has_ask ? in->ask : in->price;
    if (in->has_volume)
        t->volume = in->volume;
    t->timestamp = in->timestamp ? in->timestamp : hub_now_ms();
    t->change = in->price - s->first;
    t->change_percent = s->first > 0 ? t->change / s->first * 100.0 : 0;
    t->seq++;
    set_epoch_locked(s, h->local_epoch); /* sequenced here: this process's numbering */
    hub_history_push_locked(h, s, t);
    rc = fan_out_locked(h, in->sym, s);
    if (atomic_load_explicit(&s->watchers, memory_order_relaxed))
        h->obs.on_tick(h->obs.tick_ctx, in->sym, t->price);
    uv_mutex_unlock(&s->lock);
    atomic_fetch_add_explicit(&h->ticks_published, 1, memory_order_relaxed);
    atomic_store_explicit(&h->last_tick_ms, hub_now_ms(), memory_order_relaxed);
    return rc;
}

void hub_activate(struct hub *h, uint32_t sym, int worker) {
    struct sym_state *s = &h->st[sym];
    uv_mutex_lock(&s->lock);
    uint64_t prev = atomic_fetch_or(&s->workers, 1ull << worker);
    if (prev == 0)
        atomic_fetch_add(&h->active_streams, 1);
    uv_mutex_unlock(&s->lock);
    if (prev == 0 && h->obs.interest)
        h->obs.interest(h->obs.interest_ctx, sym); /* the cluster subscribes its channel */
}

void hub_deactivate(struct hub *h, uint32_t sym, int worker) {
    struct sym_state *s = &h->st[sym];
    uv_mutex_lock(&s->lock);
    uint64_t prev = atomic_fetch_and(&s->workers, ~(1ull << worker));
    if (prev == (1ull << worker))
        atomic_fetch_sub(&h->active_streams, 1);
    uv_mutex_unlock(&s->lock);
    if (prev == (1ull << worker) && h->obs.interest)
        h->obs.interest(h->obs.interest_ctx, sym); /* the cluster unsubscribes its channel */
}

void hub_watch(struct hub *h, uint32_t sym) {
    if (atomic_fetch_add(&h->st[sym].watchers, 1) == 0 && h->obs.interest)
        h->obs.interest(h->obs.interest_ctx, sym); /* hear its ticks from every node */
}

void hub_unwatch(struct hub *h, uint32_t sym) { atomic_fetch_sub(&h->st[sym].watchers, 1); }

void hub_history_push_locked(struct hub *h, struct sym_state *s, const struct tick *t) {
    if (!s->hist) {
        s->hist = malloc(sizeof(struct tick) * h->history_size);
        s->hist_gen = malloc(sizeof(uint32_t) * h->history_size);
        if (!s->hist || !s->hist_gen) {
            free(s->hist);
            free(s->hist_gen);
            s->hist = NULL;
            s->hist_gen = NULL;
            return; /* history is best effort under memory pressure; ticks still flow */
        }
    }
    s->hist_gen[s->hist_head] = s->epoch_gen;
    s->hist[s->hist_head] = *t;
    s->hist_head = (s->hist_head + 1) % h->history_size;
    if (s->hist_count < h->history_size)
        s->hist_count++;
}

uint32_t hub_history(struct hub *h, uint32_t sym, uint32_t limit, struct tick *out) {
    return hub_history_before(h, sym, limit, INT64_MAX, out);
}

/* The i-th newest tick of s's history (0 = newest); lock held. */
static const struct tick *hist_back(struct hub *h, struct sym_state *s, uint32_t i) {
    return &s->hist[(s->hist_head + 2 * h->history_size - 1 - i) % h->history_size];
}

uint32_t hub_history_before(struct hub *h, uint32_t sym, uint32_t limit, int64_t before_ms, struct tick *out) {
    struct sym_state *s = &h->st[sym];
    uv_mutex_lock(&s->lock);
    uint32_t skip = 0; /* the newest ticks not old enough */
    while (skip < s->hist_count && hist_back(h, s, skip)->timestamp > before_ms)
        skip++;
    uint32_t n = s->hist_count - skip < limit ? s->hist_count - skip : limit;
    for (uint32_t i = 0; i < n; i++)
        out[i] = *hist_back(h, s, skip + n - 1 - i);
    uv_mutex_unlock(&s->lock);
    return n;
}

void hub_epoch(struct hub *h, uint32_t sym, char *out) {
    struct sym_state *s = &h->st[sym];
    uv_mutex_lock(&s->lock);
    memcpy(out, s->epoch, sizeof(s->epoch));
    uv_mutex_unlock(&s->lock);
}

bool hub_replay(struct hub *h, uint32_t sym, uint64_t after, const char *epoch, struct tick *out, uint32_t cap,
                uint32_t *n, uint64_t *last, char *cur) {
    struct sym_state *s = &h->st[sym];
    bool ok = false;
    *n = 0;
    uv_mutex_lock(&s->lock);
    *last = s->last.seq;
    memcpy(cur, s->epoch, sizeof(s->epoch));
    if (!*s->epoch || strcmp(s->epoch, epoch) != 0 || after > s->last.seq)
        goto done;
    uint64_t want = s->last.seq - after;
    if (want > s->hist_count || want > cap)
        goto done; /* too old: not every tick after `after` is retained */
    for (uint32_t i = 0; i < (uint32_t)want; i++) {
        uint32_t at = (uint32_t)((s->hist_head + h->history_size - want + i) % h->history_size);
        if (s->hist_gen[at] != s->epoch_gen || s->hist[at].seq != after + 1 + i)
            goto done; /* another numbering, or a hole: never a silent gap */
        out[i] = s->hist[at];
    }
    *n = (uint32_t)want;
    ok = true;
done:
    uv_mutex_unlock(&s->lock);
    return ok;
}

uint32_t hub_delay_activate(struct hub *h, uint32_t sym, int worker, struct tick *out, uint32_t cap) {
    struct sym_state *s = &h->st[sym];
    uv_mutex_lock(&s->lock);
    atomic_fetch_or(&s->delayed_workers, 1ull << worker);
    int64_t since = hub_now_ms() - h->delay_ms; /* released after now: still ahead */
    uint32_t n = 0;
    while (n < s->hist_count && n < cap && hist_back(h, s, n)->timestamp > since)
        n++;
    for (uint32_t i = 0; i < n; i++)
        out[i] = *hist_back(h, s, n - 1 - i);
    uv_mutex_unlock(&s->lock);
    return n;
}

void hub_delay_deactivate(struct hub *h, uint32_t sym, int worker) {
    atomic_fetch_and(&h->st[sym].delayed_workers, ~(1ull << worker));
}

struct outbuf *hub_snapshot_delayed(struct hub *h, uint32_t sym, uint64_t *seq) {
    struct tick t;
    *seq = 0;
    if (hub_history_before(h, sym, 1, hub_now_ms() - h->delay_ms, &t) == 0)
        return NULL;
    *seq = t.seq;
    return hub_frame(h, sym, &t, true, true);
}

void hub_analyze(const struct tick *t, uint32_t n, int64_t now_ms, int window_s, struct analysis *a) {
    memset(a, 0, sizeof(*a));
    int64_t from = now_ms - (int64_t)window_s * 1000;
    double pv = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (t[i].timestamp < from || t[i].timestamp > now_ms)
            continue;
        if (a->count == 0) {
            a->open = a->high = a->low = t[i].price;
        }
        if (t[i].price > a->high)
            a->high = t[i].price;
        if (t[i].price < a->low)
            a->low = t[i].price;
        a->close = t[i].price;
        a->volume += t[i].volume;
        pv += t[i].price * t[i].volume;
        a->count++;
    }
    a->vwap = a->volume > 0 ? pv / a->volume : 0;
}

struct outbuf *hub_snapshot(struct hub *h, uint32_t sym, uint64_t *seq) {
    struct sym_state *s = &h->st[sym];
    struct outbuf *b = NULL;
    uv_mutex_lock(&s->lock);
    *seq = s->last.seq;
    if (s->has_price)
        b = hub_frame(h, sym, &s->last, true, false);
    uv_mutex_unlock(&s->lock);
    return b;
}
