/* ticks.c - ticks through Redis: the publish script's sender and its
 * answer, the own ticks awaited back on pub/sub (echo ring), the pub/sub
 * messages, and a channel's catch-up from the history stream when this
 * node starts listening. See cluster/internal.h. */

#include "cluster/internal.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pubsub/hub.h"

#define CATCH_UP_TICKS 256 /* a catch-up page (stream entries), and the live ticks held meanwhile */
#define CATCH_UP_PAGES 64  /* pages a catch-up reads before it gives up (counted: a gap) */

static void on_marker(redisAsyncContext *ac, void *r, void *priv);
static void on_catch_up(redisAsyncContext *ac, void *r, void *priv);
static void deliver_tick(struct redis_engine *e, const char *msg, size_t len);

static struct echo_wait *echo_at(struct redis_engine *e, uint32_t i) {
    return &e->echo[(e->echo_head + i) % (uint32_t)e->cfg->max_inflight];
}

void cluster_echo_pop(struct redis_engine *e) {
    free(echo_at(e, 0)->msg);
    e->echo_head = (e->echo_head + 1) % (uint32_t)e->cfg->max_inflight;
    e->echo_n--;
}

static uint64_t delivered_seq(struct redis_engine *e, uint32_t sym) {
    struct sym_state *s = &e->hub->st[sym];
    uv_mutex_lock(&s->lock);
    uint64_t seq = s->last.seq;
    uv_mutex_unlock(&s->lock);
    return seq;
}

/* Drops the awaited ticks that have come back (in Redis's order). */
static void echo_trim(struct redis_engine *e) {
    while (e->echo_n) {
        struct echo_wait *w = echo_at(e, 0);
        if (w->sym != UINT32_MAX && delivered_seq(e, w->sym) < w->seq)
            break;
        cluster_echo_pop(e);
    }
}


/* The pub/sub link is gone: the ticks it did not bring back are delivered
 * from here, in order (repeats are dropped by the hub). */
void redis_engine_echo_flush(struct redis_engine *e) {
    while (e->echo_n) {
        struct echo_wait *w = echo_at(e, 0);
        if (w->sym != UINT32_MAX)
            deliver_tick(e, w->msg, strlen(w->msg));
        cluster_echo_pop(e);
    }
}

/* Our tick, sequenced: it comes back on the pub/sub link when this node
 * listens to its channel; keep it until then. Full ring: the oldest goes
 * (overdue by max_inflight ticks). */
static void echo_expect(struct redis_engine *e, uint32_t sym, const char *msg, size_t len, uint64_t seq) {
    if (!e->subscribed[sym] || e->catch_up[sym].pending || delivered_seq(e, sym) >= seq)
        return; /* not listening (nobody local), replaying, or already back */
    if (e->echo_n == (uint32_t)e->cfg->max_inflight)
        cluster_echo_pop(e);
    char *copy = strndup(msg, len);
    if (!copy)
        return;
    *echo_at(e, e->echo_n++) = (struct echo_wait){.sym = sym, .seq = seq, .msg = copy};
}

/* The publish script's answer: the published message, or -1 (refused:
 * past its deadline). A tick Redis did not sequence (no answer, an error,
 * refused, or the link failed meanwhile) is sequenced here; the link goes
 * down first, so local and Redis numbering never interleave. */
static void on_publish_reply(redisAsyncContext *ac, void *r, void *priv) {
    struct redis_engine *e = ac->data;
    struct tick_in *in = priv;
    redisReply *reply = r;
    e->inflight--;
    bool live = link_live(e, ac);
    if (e->stopping) {
        free(in);
        return;
    }
    if (live && reply && reply->type == REDIS_REPLY_STRING) {
        const char *bar = reply->str;
        for (int i = 0; bar && i < 6; i++)
            bar = memchr(bar + 1, '|', reply->len - (size_t)(bar + 1 - reply->str));
        if (bar)
            echo_expect(e, in->sym, reply->str, reply->len, strtoull(bar + 1, NULL, 10));
        free(in);
        return;
    }
    if (live) {
        bool late = reply && reply->type == REDIS_REPLY_INTEGER;
        count_error(e, late ? "tick past its deadline in Redis" : "publish script",
                    reply && reply->type == REDIS_REPLY_ERROR ? reply->str : NULL);
        link_fail(e, late ? "stalled: Redis answered past the deadline" : "publish failed", false);
    }
    echo_flush(e); /* Redis-sequenced ticks first, then this one locally */
    if (!reply) { /* its fate is unknown: a resumed Redis may still run it until its deadline */
        uint64_t fence = e->last_publish_ms + (uint64_t)e->cfg->timeout_ms;
        if (fence > e->fence_ms)
            e->fence_ms = fence;
    }
    hub_publish_local(e->hub, in);
    free(in);
}

int64_t cluster_local_seq(struct hub *h, uint32_t sym, double *first) {
    struct sym_state *s = &h->st[sym];
    uv_mutex_lock(&s->lock);
    int64_t seq = (int64_t)s->last.seq;
    *first = s->first;
    uv_mutex_unlock(&s->lock);
    return seq;
}


void cluster_catch_up_reset(struct catch_up *cu) {
    for (uint32_t i = 0; i < cu->nheld; i++)
        free(cu->held[i]);
    free(cu->held);
    *cu = (struct catch_up){.gen = cu->gen + 1}; /* replies still in flight are stale */
}

/* A catch-up's replies carry its symbol and number. */
static void *catch_up_tag(struct redis_engine *e, uint32_t sym) {
    return (void *)(uintptr_t)((uint64_t)e->catch_up[sym].gen << 32 | sym);
}

static struct catch_up *catch_up_of(struct redis_engine *e, void *tag, uint32_t *sym) {
    *sym = (uint32_t)(uintptr_t)tag;
    struct catch_up *cu = &e->catch_up[*sym];
    return cu->gen == (uint32_t)((uint64_t)(uintptr_t)tag >> 32) ? cu : NULL;
}

/* Subscribes or unsubscribes sym's channel to match local activity. */
void cluster_reconcile(struct redis_engine *e, uint32_t sym) {
    if (!atomic_load(&e->up) || !link_sub_live(e))
        return;
    struct hub *h = e->hub;
    bool want = hub_is_active(h, sym) || hub_is_watched(h, sym); /* subscribers, resting orders */
    if (want == e->subscribed[sym])
        return;
    char ch[128];
    cluster_sym_key(e, ch, sizeof(ch), "tick:", h->syms->names[sym]);
    if (want) {
        /* Catch-up: the newest history id now (marker), then SUBSCRIBE;
         * when both have answered, replay the stream from the marker. */
        char hk[160];
        cluster_sym_key(e, hk, sizeof(hk), "history:", h->syms->names[sym]);
        cluster_catch_up_reset(&e->catch_up[sym]);
        e->catch_up[sym].pending = true;
        link_cmdk(e, hk, on_marker, catch_up_tag(e, sym), "XREVRANGE %s + - COUNT 1", hk);
        link_subscribe(e, ch, true);
    } else {
        link_subscribe(e, ch, false);
        cluster_catch_up_reset(&e->catch_up[sym]);
    }
    e->subscribed[sym] = want;
}

/* Parses "SYM|price|bid|ask|volume|ts|seq|first|epoch" (no epoch: an
 * older node's). Returns the symbol index or -1. epoch (HUB_EPOCH_MAX + 1
 * bytes) may be NULL. */
int cluster_parse_tick(struct redis_engine *e, const char *msg, size_t len, struct tick *t, double *first,
                       char *epoch) {
    char buf[512];
    if (len >= sizeof(buf))
        return -1;
    memcpy(buf, msg, len);
    buf[len] = '\0';
    char *f[9];
    int n = 0;
    for (char *p = buf, *save = NULL; n < 9 && (p = strtok_r(p, "|", &save)); p = NULL)
        f[n++] = p;
    if (n < 8 || (n == 9 && strlen(f[8]) > HUB_EPOCH_MAX)) {
        count_error(e, "malformed tick message", NULL);
        return -1;
    }
    int sym = symbols_find(e->hub->syms, f[0], strlen(f[0]));
    if (sym < 0)
        return -1; /* a symbol another node knows and we do not */
    memset(t, 0, sizeof(*t));
    t->price = strtod(f[1], NULL);
    t->bid = strtod(f[2], NULL);
    t->ask = strtod(f[3], NULL);
    t->volume = strtod(f[4], NULL);
    t->timestamp = strtoll(f[5], NULL, 10);
    t->seq = strtoull(f[6], NULL, 10);
    *first = strtod(f[7], NULL);
    if (epoch)
        snprintf(epoch, HUB_EPOCH_MAX + 1, "%s", n == 9 ? f[8] : "");
    t->change = t->price - *first;
    t->change_percent = *first > 0 ? t->change / *first * 100.0 : 0;
    return sym;
}

static void deliver_tick(struct redis_engine *e, const char *msg, size_t len) {
    struct tick t;
    double first;
    char epoch[HUB_EPOCH_MAX + 1];
    int sym = cluster_parse_tick(e, msg, len, &t, &first, epoch);
    if (sym >= 0)
        hub_deliver(e->hub, (uint32_t)sym, &t, first, epoch);
}

static uint64_t msg_seq(struct redis_engine *e, const char *msg, size_t len) {
    struct tick t;
    double first;
    return cluster_parse_tick(e, msg, len, &t, &first, NULL) >= 0 ? t.seq : 0;
}

/* Asks for the next page of sym's stream: from the marker (included: its
 * tick refreshes a stale snapshot), then after the last id delivered. */
static void catch_up_page(struct redis_engine *e, uint32_t sym) {
    struct catch_up *cu = &e->catch_up[sym];
    char k[160], from[40];
    cluster_sym_key(e, k, sizeof(k), "history:", e->hub->syms->names[sym]);
    if (cu->last[0])
        snprintf(from, sizeof(from), "(%s", cu->last);
    else
        snprintf(from, sizeof(from), "%s", cu->marker[0] ? cu->marker : "-");
    cu->pages++;
    if (link_cmdk(e, k, on_catch_up, catch_up_tag(e, sym), "XRANGE %s %s + COUNT %u", k, from, CATCH_UP_TICKS) !=
        REDIS_OK)
        cluster_catch_up_reset(cu); /* the link failed: its reconnect starts a new catch-up */
}

/* A page of the stream: delivered in order. The catch-up is done when the
 * hub holds every seq up to the first live tick held (or, none held, up to
 * the stream's end and every tick dropped at the hold's bound); else the
 * next page. Then the held live ticks (hub_deliver drops repeats). */
static void on_catch_up(redisAsyncContext *ac, void *r, void *priv) {
    struct redis_engine *e = ac->data;
    uint32_t sym;
    struct catch_up *cu = catch_up_of(e, priv, &sym);
    redisReply *reply = r;
    if (!cu || !reply || e->stopping)
        return; /* stale, or the link failed: its reconnect starts a new catch-up */
    size_t n = reply->type == REDIS_REPLY_ARRAY ? reply->elements : 0;
    for (size_t i = 0; i < n; i++) {
        redisReply *entry = reply->element[i];
        if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2 || entry->element[0]->type != REDIS_REPLY_STRING ||
            entry->element[0]->len >= sizeof(cu->last))
            continue;
        snprintf(cu->last, sizeof(cu->last), "%s", entry->element[0]->str);
        redisReply *f = entry->element[1];
        if (f->type == REDIS_REPLY_ARRAY && f->elements == 2 && f->element[1]->type == REDIS_REPLY_STRING)
            deliver_tick(e, f->element[1]->str, f->element[1]->len);
    }
    uint64_t have = delivered_seq(e, sym);
    bool met = have >= cu->dropped_max &&
               (cu->nheld ? have + 1 >= msg_seq(e, cu->held[0], strlen(cu->held[0])) : n < CATCH_UP_TICKS);
    if (!met && n > 0 && cu->pages < CATCH_UP_PAGES && link_live(e, e->cmd.ac)) {
        catch_up_page(e, sym);
        return;
    }
    if (!met) /* the stream lacks them (trimmed) or the live stream outran the pages */
        count_error(e, "catch-up incomplete: a gap in the hub", e->hub->syms->names[sym]);
    for (uint32_t i = 0; i < cu->nheld; i++)
        deliver_tick(e, cu->held[i], strlen(cu->held[i]));
    cluster_catch_up_reset(cu);
}

/* A live tick while the catch-up is pending: held, never delivered ahead
 * of the stream's older ticks. Bound: CATCH_UP_TICKS held; past it the
 * oldest held one is dropped (the stream has it: the pages read up to it).
 * False when sym is not catching up. */
static bool hold_tick(struct redis_engine *e, int sym, const char *msg, size_t len) {
    if (sym < 0 || !e->catch_up[sym].pending)
        return false;
    struct catch_up *cu = &e->catch_up[sym];
    if (cu->nheld == CATCH_UP_TICKS) {
        uint64_t seq = msg_seq(e, cu->held[0], strlen(cu->held[0]));
        if (seq > cu->dropped_max)
            cu->dropped_max = seq;
        free(cu->held[0]);
        memmove(&cu->held[0], &cu->held[1], (cu->nheld - 1) * sizeof(char *));
        cu->nheld--;
    }
    char **n = cu->held ? cu->held : malloc(CATCH_UP_TICKS * sizeof(char *));
    char *copy = n ? strndup(msg, len) : NULL;
    cu->held = n;
    if (!copy) { /* memory is short: the stream has it */
        uint64_t seq = msg_seq(e, msg, len);
        if (seq > cu->dropped_max)
            cu->dropped_max = seq;
        return true;
    }
    cu->held[cu->nheld++] = copy;
    return true;
}

static void maybe_catch_up(struct redis_engine *e, uint32_t sym) {
    struct catch_up *cu = &e->catch_up[sym];
    if (cu->have != 3 || !link_live(e, e->cmd.ac))
        return;
    cu->have = 4; /* pages in flight */
    catch_up_page(e, sym);
}

static void on_marker(redisAsyncContext *ac, void *r, void *priv) {
    struct redis_engine *e = ac->data;
    uint32_t sym;
    struct catch_up *cu = catch_up_of(e, priv, &sym);
    redisReply *reply = r;
    if (!cu || !reply || e->stopping)
        return;
    cu->marker[0] = '\0';
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 1 && reply->element[0]->type == REDIS_REPLY_ARRAY &&
        reply->element[0]->elements == 2 && reply->element[0]->element[0]->type == REDIS_REPLY_STRING &&
        reply->element[0]->element[0]->len < sizeof(cu->marker))
        snprintf(cu->marker, sizeof(cu->marker), "%s", reply->element[0]->element[0]->str);
    cu->have |= 1;
    maybe_catch_up(e, sym);
}

/* The symbol of a tick channel (P"tick:SYM", on a cluster P"tick:{SYM}"),
 * or -1 when ch is not one. */
static int tick_channel(struct redis_engine *e, const char *ch, size_t len) {
    size_t pl = strlen(e->prefix), wrap = e->shards ? 1 : 0;
    if (len <= pl + 5 + 2 * wrap || strncmp(ch, e->prefix, pl) != 0 || strncmp(ch + pl, "tick:", 5) != 0)
        return -1;
    const char *name = ch + pl + 5 + wrap;
    if (wrap && (name[-1] != '{' || ch[len - 1] != '}'))
        return -1;
    return symbols_find(e->hub->syms, name, len - pl - 5 - 2 * wrap);
}

static bool is_kind(const redisReply *kind, const char *a) {
    return kind->type == REDIS_REPLY_STRING &&
           (strcmp(kind->str, a) == 0 || (kind->str[0] == 's' && strcmp(kind->str + 1, a) == 0));
}

/* Pub/sub messages and (S)SUBSCRIBE confirmations. */
void cluster_on_pubsub(struct redis_engine *e, redisReply *reply) {
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3)
        return;
    redisReply *kind = reply->element[0], *ch = reply->element[1], *body = reply->element[2];
    if (ch->type != REDIS_REPLY_STRING)
        return;
    int sym = tick_channel(e, ch->str, ch->len);
    if (is_kind(kind, "subscribe") && sym >= 0 && link_live(e, e->cmd.ac)) {
        /* Listening now: replay what was published since the marker;
         * hub_deliver skips what this node already has. */
        e->catch_up[sym].have |= 2;
        maybe_catch_up(e, (uint32_t)sym);
        return;
    }
    if (!is_kind(kind, "message") || body->type != REDIS_REPLY_STRING)
        return;
    if (sym >= 0) {
        if (!hold_tick(e, sym, body->str, body->len))
            deliver_tick(e, body->str, body->len);
        if (e->echo_n)
            echo_trim(e);
        return;
    }
    char control[200];
    cluster_key(e, control, sizeof(control), "control", NULL);
    if (strcmp(ch->str, control) == 0)
        cluster_apply_control(e, body->str, body->len);
}

void cluster_on_message(redisAsyncContext *ac, void *r, void *priv) {
    if (r)
        cluster_on_pubsub(ac->data, r);
}

/* Sends a tick to the publish script. The tick stays ours until Redis
 * answers: without an answer it is delivered here, so nothing accepted is
 * lost. REDIS_OK or REDIS_ERR. */
int cluster_send_publish(struct redis_engine *e, struct tick_in *in) {
    struct hub *h = e->hub;
    const char *name = h->syms->names[in->sym];
    char body[256], k1[128], k2[128], k3[128], k4[128], k5[128], k6[128], start[40], hist[16];
    char vol[40] = "", ts[24], deadline[24];
    snprintf(body, sizeof(body), "%s|%.17g|%.17g|%.17g", name, in->price, in->has_bid ? in->bid : in->price,
             in->has_ask ? in->ask : in->price);
    if (in->has_volume)
        snprintf(vol, sizeof(vol), "%.17g", in->volume);
    snprintf(ts, sizeof(ts), "%lld", (long long)(in->timestamp ? in->timestamp : hub_now_ms()));
    double sp = h->syms->start[in->sym] > 0 ? h->syms->start[in->sym] : in->price;
    snprintf(start, sizeof(start), "%.17g", sp);
    cluster_sym_key(e, k1, sizeof(k1), "seq:", name);
    cluster_sym_key(e, k2, sizeof(k2), "first:", name);
    cluster_sym_key(e, k3, sizeof(k3), "last:", name);
    cluster_sym_key(e, k4, sizeof(k4), "tick:", name);
    cluster_sym_key(e, k5, sizeof(k5), "history:", name);
    cluster_sym_key(e, k6, sizeof(k6), "epoch:", name);
    snprintf(hist, sizeof(hist), "%d", e->hub->history_size);
    snprintf(deadline, sizeof(deadline), "%lld", (long long)link_deadline_ms(e));
    int rc = link_cmdk(e, k1, on_publish_reply, in, "EVALSHA %s 6 %s %s %s %s %s %s %s %s %s %s %s %s %s %s",
                       e->sha[RS_PUBLISH], k1, k2, k3, k4, k5, k6, body, start, hist, vol, ts, deadline,
                       cluster_epoch_tag(e), e->shards ? "SPUBLISH" : "PUBLISH");
    if (rc == REDIS_OK) {
        e->inflight++;
        e->last_publish_ms = uv_now(e->loop);
        atomic_fetch_add(&e->published, 1);
    }
    return rc;
}

