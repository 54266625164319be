/* redis_engine.c - Redis persistence and cross-node fan-out; see
 * redis_engine.h.
 *
 * Keys (prefix P, default "websocket:"): P"connections" and
 * P"subscriptions" (hashes by client id), P"nodes" (set of node ids),
 * P"node:<id>" (liveness, TTL), P"node:<id>:clients" (set),
 * P"node:<id>:users" (hash user -> connections), P"seq:<SYM>",
 * P"first:<SYM>", P"last:<SYM>", P"blocked" (hash ip -> until, 0 = no
 * end). Channels: P"tick:<SYM>" and P"control". */
#include "cluster/engine.h"

#include <errno.h>
#include <stdarg.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "app/server.h"
#include "cluster/link.h"
#include "net/worker.h"
#include "gateway/admin.h"
#include "pubsub/hub.h"
#include "pubsub/userevents.h"
#include "gateway/protocol.h"

#define TICK_MS 1000
#define CATCH_UP_TICKS 256 /* ticks a newly listening node replays from the stream */

static void key(struct redis_engine *e, char *out, size_t len, const char *a, const char *b) {
    snprintf(out, len, "%s%s%s", e->prefix, a, b ? b : "");
}

void redis_engine_count_error(struct redis_engine *e, const char *what, const char *detail) {
    atomic_fetch_add(&e->errors, 1);
    log_warn("redis: %s%s%s", what, detail ? ": " : "", detail ? detail : "");
}
#define count_error redis_engine_count_error

/* Generic reply check: errors are counted, never swallowed. A flushed
 * script cache (NOSCRIPT) fails the link: the reconnect loads the scripts
 * again, and no tick is sent out of order meanwhile. */
void redis_engine_on_reply(redisAsyncContext *ac, void *r, void *priv) {
    struct redis_engine *e = ac->data;
    redisReply *reply = r;
    if (!reply || reply->type != REDIS_REPLY_ERROR || !link_live(e, ac))
        return;
    count_error(e, priv ? (const char *)priv : "command failed", reply->str);
    if (strncmp(reply->str, "NOSCRIPT", 8) == 0)
        link_fail(e, "script cache flushed", false);
}
#define on_reply redis_engine_on_reply

static struct echo_wait *echo_at(struct redis_engine *e, uint32_t i) {
    return &e->echo[(e->echo_head + i) % (uint32_t)e->srv->cfg.redis.max_inflight];
}

static void echo_pop(struct redis_engine *e) {
    free(echo_at(e, 0)->msg);
    e->echo_head = (e->echo_head + 1) % (uint32_t)e->srv->cfg.redis.max_inflight;
    e->echo_n--;
}

static uint64_t delivered_seq(struct redis_engine *e, uint32_t sym) {
    struct sym_state *s = &e->srv->hub.st[sym];
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
        echo_pop(e);
    }
}

static void deliver_tick(struct redis_engine *e, const char *msg, size_t len);
#define echo_flush redis_engine_echo_flush

/* The pub/sub link is gone: the ticks it did not bring back are delivered
 * from here, in order (repeats are dropped by the hub). */
void redis_engine_echo_flush(struct redis_engine *e) {
    while (e->echo_n) {
        struct echo_wait *w = echo_at(e, 0);
        if (w->sym != UINT32_MAX)
            deliver_tick(e, w->msg, strlen(w->msg));
        echo_pop(e);
    }
}

/* Our tick, sequenced: it comes back on the pub/sub link when this node
 * listens to its channel; keep it until then. Full ring: the oldest goes
 * (overdue by max_inflight ticks). */
static void echo_expect(struct redis_engine *e, uint32_t sym, const char *msg, size_t len, uint64_t seq) {
    if (!e->subscribed[sym] || e->catch_up[sym].pending || delivered_seq(e, sym) >= seq)
        return; /* not listening (nobody local), replaying, or already back */
    if (e->echo_n == (uint32_t)e->srv->cfg.redis.max_inflight)
        echo_pop(e);
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
        uint64_t fence = e->last_publish_ms + (uint64_t)e->srv->cfg.redis.timeout_ms;
        if (fence > e->fence_ms)
            e->fence_ms = fence;
    }
    hub_publish_local(&e->srv->hub, in);
    free(in);
}

static int64_t local_seq_snapshot(struct hub *h, uint32_t sym, double *first) {
    struct sym_state *s = &h->st[sym];
    uv_mutex_lock(&s->lock);
    int64_t seq = (int64_t)s->last.seq;
    *first = s->first;
    uv_mutex_unlock(&s->lock);
    return seq;
}

static void on_message(redisAsyncContext *ac, void *r, void *priv);
static void on_marker(redisAsyncContext *ac, void *r, void *priv);

static void catch_up_reset(struct catch_up *cu) {
    for (uint32_t i = 0; i < cu->nheld; i++)
        free(cu->held[i]);
    free(cu->held);
    cu->held = NULL;
    cu->nheld = 0;
    cu->have = 0;
    cu->pending = false;
}

/* Subscribes or unsubscribes sym's channel to match local activity. */
static void reconcile(struct redis_engine *e, uint32_t sym) {
    if (!atomic_load(&e->up) || !link_live(e, e->sub.ac))
        return;
    struct hub *h = &e->srv->hub;
    bool want = hub_is_active(h, sym) || atomic_load(&e->srv->broker.limits[sym]) > 0;
    if (want == e->subscribed[sym])
        return;
    char ch[128];
    key(e, ch, sizeof(ch), "tick:", h->syms->names[sym]);
    if (want) {
        /* Catch-up: the newest history id now (marker), then SUBSCRIBE;
         * when both have answered, replay the stream from the marker. */
        char hk[160];
        key(e, hk, sizeof(hk), "history:", h->syms->names[sym]);
        catch_up_reset(&e->catch_up[sym]);
        e->catch_up[sym].pending = true;
        link_cmd(e, on_marker, (void *)(uintptr_t)sym, "XREVRANGE %s + - COUNT 1", hk);
        redisAsyncCommand(e->sub.ac, on_message, NULL, "SUBSCRIBE %s", ch);
    } else {
        redisAsyncCommand(e->sub.ac, NULL, NULL, "UNSUBSCRIBE %s", ch);
        catch_up_reset(&e->catch_up[sym]);
    }
    e->subscribed[sym] = want;
}

/* Parses "SYM|price|bid|ask|volume|ts|seq|first". Returns the symbol
 * index or -1. */
static int parse_tick(struct redis_engine *e, const char *msg, size_t len, struct tick *t, double *first) {
    char buf[512];
    if (len >= sizeof(buf))
        return -1;
    memcpy(buf, msg, len);
    buf[len] = '\0';
    char *f[8];
    int n = 0;
    for (char *p = buf, *save = NULL; n < 8 && (p = strtok_r(p, "|", &save)); p = NULL)
        f[n++] = p;
    if (n != 8) {
        count_error(e, "malformed tick message", NULL);
        return -1;
    }
    int sym = symbols_find(e->srv->hub.syms, f[0], strlen(f[0]));
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
    t->change = t->price - *first;
    t->change_percent = *first > 0 ? t->change / *first * 100.0 : 0;
    return sym;
}

static void deliver_tick(struct redis_engine *e, const char *msg, size_t len) {
    struct tick t;
    double first;
    int sym = parse_tick(e, msg, len, &t, &first);
    if (sym >= 0)
        hub_deliver(&e->srv->hub, (uint32_t)sym, &t, first);
}

static void query_free(struct redis_query *q) {
    free(q->id_json);
    free(q);
}

/* Answers q from ticks (oldest first). */
static void answer_query(struct redis_engine *e, struct redis_query *q, const struct tick *t, uint32_t n) {
    char *text = q->analysis ? protocol_analysis_text(e->srv, q->sym, t, n, q->window_s, q->id_json)
                             : protocol_history_text(e->srv, q->sym, t, n, q->id_json);
    if (text)
        protocol_reply_later(e->srv, q->worker, q->conn_id, text);
}

/* Answers q from this node's own ring (Redis unavailable). */
static void answer_locally(struct redis_engine *e, struct redis_query *q) {
    uint32_t cap = q->analysis ? e->srv->hub.history_size : q->limit;
    struct tick *t = malloc(sizeof(*t) * (cap ? cap : 1));
    if (t) {
        uint32_t n = hub_history(&e->srv->hub, q->sym, cap, t);
        answer_query(e, q, t, n);
        free(t);
    }
}

/* XREVRANGE reply: [[id, ["t", msg]], ...] newest first. */
static void on_query_reply(redisAsyncContext *ac, void *r, void *priv) {
    struct redis_engine *e = ac->data;
    struct redis_query *q = priv;
    redisReply *reply = r;
    if (!reply || reply->type != REDIS_REPLY_ARRAY) {
        if (reply && reply->type == REDIS_REPLY_ERROR)
            count_error(e, "history query", reply->str);
        answer_locally(e, q);
        query_free(q);
        return;
    }
    size_t n = reply->elements;
    struct tick *t = malloc(sizeof(*t) * (n ? n : 1));
    uint32_t got = 0;
    for (size_t i = 0; t && i < n; i++) {
        redisReply *entry = reply->element[n - 1 - i]; /* oldest first */
        if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2)
            continue;
        redisReply *fields = entry->element[1];
        if (fields->type != REDIS_REPLY_ARRAY || fields->elements != 2 || fields->element[1]->type != REDIS_REPLY_STRING)
            continue;
        double first;
        if (parse_tick(e, fields->element[1]->str, fields->element[1]->len, &t[got], &first) == (int)q->sym)
            got++;
    }
    if (t)
        answer_query(e, q, t, got);
    free(t);
    query_free(q);
}

static void apply_control(struct redis_engine *e, const char *msg, size_t len) {
    /* "B|node|ip|duration", "U|node|ip", "M|node|roles|json" */
    char node[40];
    const char *p1 = memchr(msg, '|', len);
    if (!p1 || p1 - msg != 1)
        return;
    const char *p2 = memchr(p1 + 1, '|', len - 2);
    if (!p2 || (size_t)(p2 - p1 - 1) >= sizeof(node))
        return;
    memcpy(node, p1 + 1, (size_t)(p2 - p1 - 1));
    node[p2 - p1 - 1] = '\0';
    if (strcmp(node, e->node) == 0)
        return; /* our own: already applied here */
    const char *rest = p2 + 1;
    size_t rl = len - (size_t)(rest - msg);
    struct server *srv = e->srv;
    if (msg[0] == 'B' || msg[0] == 'U') {
        const char *bar = memchr(rest, '|', rl);
        struct ip16 ip;
        if (!ip16_parse(rest, bar ? (size_t)(bar - rest) : rl, &ip))
            return;
        if (msg[0] == 'B')
            server_block_ip_local(srv, &ip, bar ? strtoll(bar + 1, NULL, 10) : 0, "cluster");
        else
            guard_unblock(&srv->guard, &ip);
    } else if (msg[0] == 'E') { /* E|node|flags|user|json */
        const char *b1 = memchr(rest, '|', rl);
        const char *b2 = b1 ? memchr(b1 + 1, '|', rl - (size_t)(b1 + 1 - rest)) : NULL;
        if (!b2 || (size_t)(b2 - b1 - 1) >= 128)
            return;
        char user[128];
        memcpy(user, b1 + 1, (size_t)(b2 - b1 - 1));
        user[b2 - b1 - 1] = '\0';
        json_t *ev = json_loadb(b2 + 1, rl - (size_t)(b2 + 1 - rest), 0, NULL);
        if (ev)
            user_event_send(srv, user, ev, rest[0] == '1', false);
    } else if (msg[0] == 'M') {
        const char *bar = memchr(rest, '|', rl);
        if (!bar)
            return;
        uint32_t roles = (uint32_t)strtoul(rest, NULL, 10);
        json_t *frame = json_loadb(bar + 1, rl - (size_t)(bar + 1 - rest), 0, NULL);
        if (frame)
            admin_broadcast_local(srv, frame, roles);
    }
}

/* XRANGE of a history stream from the marker: deliver in order (the
 * marker's own tick included: it refreshes a stale snapshot). */
static void on_catch_up(redisAsyncContext *ac, void *r, void *priv) {
    struct redis_engine *e = ac->data;
    struct catch_up *cu = &e->catch_up[(uint32_t)(uintptr_t)priv];
    redisReply *reply = r;
    if (reply && reply->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < reply->elements; i++) {
            redisReply *entry = reply->element[i];
            if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2)
                continue;
            redisReply *f = entry->element[1];
            if (f->type == REDIS_REPLY_ARRAY && f->elements == 2 && f->element[1]->type == REDIS_REPLY_STRING)
                deliver_tick(e, f->element[1]->str, f->element[1]->len);
        }
    }
    /* Then the live ticks held meanwhile (hub_deliver drops repeats). */
    for (uint32_t i = 0; i < cu->nheld; i++)
        deliver_tick(e, cu->held[i], strlen(cu->held[i]));
    catch_up_reset(cu);
}

/* A live tick while the replay is pending: hold it (bounded; past the
 * bound the replay's order wins and the rest arrives live anyway). */
static bool hold_tick(struct redis_engine *e, const char *ch, size_t chl, const char *msg, size_t len) {
    int sym = symbols_find(e->srv->hub.syms, ch, chl);
    if (sym < 0 || !e->catch_up[sym].pending)
        return false;
    struct catch_up *cu = &e->catch_up[sym];
    if (cu->nheld >= CATCH_UP_TICKS)
        return false;
    char **n = realloc(cu->held, (cu->nheld + 1) * sizeof(char *));
    char *copy = n ? strndup(msg, len) : NULL;
    if (!copy) {
        if (n)
            cu->held = n;
        return false;
    }
    cu->held = n;
    cu->held[cu->nheld++] = copy;
    return true;
}

static void maybe_catch_up(struct redis_engine *e, uint32_t sym) {
    struct catch_up *cu = &e->catch_up[sym];
    if (cu->have != 3 || !link_live(e, e->cmd.ac))
        return;
    cu->have = 4; /* replay in flight */
    char k[160];
    key(e, k, sizeof(k), "history:", e->srv->hub.syms->names[sym]);
    if (link_cmd(e, on_catch_up, (void *)(uintptr_t)sym, "XRANGE %s %s + COUNT %u", k,
                          cu->marker[0] ? cu->marker : "-", CATCH_UP_TICKS) != REDIS_OK)
        catch_up_reset(cu);
}

static void on_marker(redisAsyncContext *ac, void *r, void *priv) {
    struct redis_engine *e = ac->data;
    uint32_t sym = (uint32_t)(uintptr_t)priv;
    redisReply *reply = r;
    if (!reply || e->stopping)
        return;
    struct catch_up *cu = &e->catch_up[sym];
    cu->marker[0] = '\0';
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 1 && reply->element[0]->type == REDIS_REPLY_ARRAY &&
        reply->element[0]->elements == 2 && reply->element[0]->element[0]->type == REDIS_REPLY_STRING &&
        reply->element[0]->element[0]->len < sizeof(cu->marker))
        snprintf(cu->marker, sizeof(cu->marker), "%s", reply->element[0]->element[0]->str);
    cu->have |= 1;
    maybe_catch_up(e, sym);
}

/* Pub/sub messages and SUBSCRIBE confirmations. */
static void on_message(redisAsyncContext *ac, void *r, void *priv) {
    struct redis_engine *e = ac->data;
    redisReply *reply = r;
    if (!reply)
        return;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3)
        return;
    redisReply *kind = reply->element[0], *ch = reply->element[1], *body = reply->element[2];
    size_t pl = strlen(e->prefix);
    if (kind->type == REDIS_REPLY_STRING && strcmp(kind->str, "subscribe") == 0 && ch->type == REDIS_REPLY_STRING &&
        ch->len > pl + 5 && strncmp(ch->str + pl, "tick:", 5) == 0 && link_live(e, e->cmd.ac)) {
        /* Listening now: replay what was published since the marker;
         * hub_deliver skips what this node already has. */
        int sym = symbols_find(e->srv->hub.syms, ch->str + pl + 5, ch->len - pl - 5);
        if (sym >= 0) {
            e->catch_up[sym].have |= 2;
            maybe_catch_up(e, (uint32_t)sym);
        }
        return;
    }
    if (kind->type != REDIS_REPLY_STRING || strcmp(kind->str, "message") != 0 || body->type != REDIS_REPLY_STRING)
        return;
    if (ch->len > pl + 5 && strncmp(ch->str + pl, "tick:", 5) == 0) {
        if (!hold_tick(e, ch->str + pl + 5, ch->len - pl - 5, body->str, body->len))
            deliver_tick(e, body->str, body->len);
        if (e->echo_n)
            echo_trim(e);
    }
    else if (ch->len == pl + 7 && strncmp(ch->str + pl, "control", 7) == 0)
        apply_control(e, body->str, body->len);
}

static void on_blocked_list(redisAsyncContext *ac, void *r, void *priv) {
    struct redis_engine *e = ac->data;
    redisReply *reply = r;
    if (!reply || reply->type != REDIS_REPLY_ARRAY)
        return;
    int64_t now = (int64_t)time(NULL);
    for (size_t i = 0; i + 1 < reply->elements; i += 2) {
        struct ip16 ip;
        redisReply *k = reply->element[i], *v = reply->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING || !ip16_parse(k->str, k->len, &ip))
            continue;
        int64_t until = strtoll(v->str, NULL, 10);
        if (until == 0 || until > now)
            guard_block(&e->srv->guard, &ip, until ? until - now : 0);
    }
}

/* Both links are ready: load the scripts, then write the node's whole
 * state back (one connection: Redis runs them in this order). */
void redis_engine_became_up(struct redis_engine *e) {
    struct server *srv = e->srv;
    struct hub *h = &srv->hub;
    char k1[160], k2[200];
    for (int i = 0; i < RS_COUNT; i++)
        link_cmd(e, on_reply, "SCRIPT LOAD", "SCRIPT LOAD %s", redis_script_text[i]);
    atomic_store(&e->up, true);
    log_info("redis: up (%s:%d), node %s", e->host, e->port, e->node);
    int ttl = srv->cfg.redis.node_ttl_s;
    key(e, k1, sizeof(k1), "nodes", NULL);
    link_cmd(e, on_reply, "SADD nodes", "SADD %s %s", k1, e->node);
    key(e, k1, sizeof(k1), "node:", e->node);
    link_cmd(e, on_reply, "SET liveness", "SET %s 1 EX %d", k1, ttl);
    /* Forget what this node wrote before (clients that left while Redis
     * was away included); the workers' resync below writes the live ones. */
    link_cmd(e, on_reply, "clean node state", "EVALSHA %s 0 %s %s", e->sha[RS_CLEAN_NODE], e->prefix, e->node);
    for (uint32_t s = 0; s < h->syms->n; s++) {
        double first;
        int64_t seq = local_seq_snapshot(h, s, &first);
        if (seq <= 0)
            continue;
        char fs[40];
        snprintf(fs, sizeof(fs), "%.17g", first);
        key(e, k1, sizeof(k1), "seq:", h->syms->names[s]);
        key(e, k2, sizeof(k2), "first:", h->syms->names[s]);
        link_cmd(e, on_reply, "writeback", "EVALSHA %s 2 %s %s %lld %s", e->sha[RS_WRITEBACK], k1, k2,
                 (long long)seq, fs);
    }
    key(e, k1, sizeof(k1), "blocked", NULL);
    link_cmd(e, on_blocked_list, NULL, "HGETALL %s", k1);
    key(e, k1, sizeof(k1), "control", NULL);
    key(e, k2, sizeof(k2), "beat:", e->node); /* the watchdog's proof that this link hears */
    redisAsyncCommand(e->sub.ac, on_message, NULL, "SUBSCRIBE %s %s", k1, k2);
    memset(e->subscribed, 0, h->syms->n * sizeof(bool));
    for (uint32_t s = 0; s < h->syms->n; s++)
        catch_up_reset(&e->catch_up[s]);
    for (uint32_t s = 0; s < h->syms->n; s++)
        reconcile(e, s);
    /* Every worker re-sends its connections (the node's one registry). */
    for (int i = 0; i < srv->nworkers; i++)
        worker_post(&srv->workers[i], WM_REDIS_RESYNC, NULL, 0);
    e->cleanup_due = 0;
}

static void on_tick(uv_timer_t *t) {
    struct redis_engine *e = t->data;
    if (!atomic_load(&e->up))
        return;
    char k[160], now_s[24];
    int ttl = e->srv->cfg.redis.node_ttl_s;
    key(e, k, sizeof(k), "node:", e->node);
    link_cmd(e, on_reply, "SET liveness", "SET %s 1 EX %d", k, ttl);
    uint64_t now = uv_now(t->loop);
    if (now >= e->cleanup_due) {
        e->cleanup_due = now + (uint64_t)ttl * 1000 / 2;
        snprintf(now_s, sizeof(now_s), "%lld", (long long)time(NULL));
        link_cmd(e, on_reply, "cleanup", "EVALSHA %s 0 %s %s", e->sha[RS_CLEANUP], e->prefix, now_s);
    }
}

static void on_admit_reply(redisAsyncContext *ac, void *r, void *priv) {
    struct redis_engine *e = ac->data;
    struct redis_admit *a = priv;
    redisReply *reply = r;
    if (e->stopping) {
        free(a);
        return;
    }
    if (!link_live(e, ac))
        reply = NULL;
    if (reply && reply->type == REDIS_REPLY_ERROR)
        on_reply(ac, reply, "admission script");
    /* No answer (Redis went away) or an error: local limits decide. */
    a->ok = !reply || reply->type != REDIS_REPLY_INTEGER || reply->integer == 1;
    a->counted = reply && reply->type == REDIS_REPLY_INTEGER && reply->integer == 1;
    if (worker_post(&e->srv->workers[a->worker], WM_ADMIT_RESULT, a, 0) < 0)
        free(a);
}

static void handle_note(struct redis_engine *e, struct redis_note *n) {
    char conns[160], subs[160], node[160], set[200], users[200];
    key(e, conns, sizeof(conns), "connections", NULL);
    key(e, subs, sizeof(subs), "subscriptions", NULL);
    key(e, node, sizeof(node), "node:", e->node);
    snprintf(set, sizeof(set), "%s:clients", node);
    snprintf(users, sizeof(users), "%s:users", node);
    switch (n->kind) {
    case NOTE_OPEN:
        link_cmd(e, on_reply, "HSET connections", "HSET %s %s %s", conns, n->cid, n->text);
        link_cmd(e, on_reply, "SADD clients", "SADD %s %s", set, n->cid);
        if (n->resync && n->user)
            link_cmd(e, on_reply, "HINCRBY users", "HINCRBY %s %s 1", users, n->user);
        break;
    case NOTE_SUBS:
        link_cmd(e, on_reply, "HSET subscriptions", "HSET %s %s %s", subs, n->cid, n->text);
        break;
    case NOTE_RELEASE_USER:
        if (n->user)
            link_cmd(e, on_reply, "release user", "EVALSHA %s 1 %s %s", e->sha[RS_RELEASE], users, n->user);
        break;
    case NOTE_CLOSE:
        link_cmd(e, on_reply, "HDEL connections", "HDEL %s %s", conns, n->cid);
        link_cmd(e, on_reply, "HDEL subscriptions", "HDEL %s %s", subs, n->cid);
        link_cmd(e, on_reply, "SREM clients", "SREM %s %s", set, n->cid);
        if (n->user)
            link_cmd(e, on_reply, "release user", "EVALSHA %s 1 %s %s", e->sha[RS_RELEASE], users, n->user);
        break;
    }
}

static void free_note(struct redis_note *n) {
    free(n->text);
    free(n->user);
    free(n);
}

/* Sends a tick to the publish script. The tick stays ours until Redis
 * answers: without an answer it is delivered here, so nothing accepted is
 * lost. REDIS_OK or REDIS_ERR. */
static int send_publish(struct redis_engine *e, struct tick_in *in) {
    struct hub *h = &e->srv->hub;
    const char *name = h->syms->names[in->sym];
    char body[256], k1[128], k2[128], k3[128], k4[128], k5[128], start[40], hist[16];
    char vol[40] = "", ts[24], deadline[24];
    snprintf(body, sizeof(body), "%s|%.17g|%.17g|%.17g", name, in->price, in->has_bid ? in->bid : in->price,
             in->has_ask ? in->ask : in->price);
    if (in->has_volume)
        snprintf(vol, sizeof(vol), "%.17g", in->volume);
    snprintf(ts, sizeof(ts), "%lld", (long long)(in->timestamp ? in->timestamp : hub_now_ms()));
    double sp = h->syms->start[in->sym] > 0 ? h->syms->start[in->sym] : in->price;
    snprintf(start, sizeof(start), "%.17g", sp);
    key(e, k1, sizeof(k1), "seq:", name);
    key(e, k2, sizeof(k2), "first:", name);
    key(e, k3, sizeof(k3), "last:", name);
    key(e, k4, sizeof(k4), "tick:", name);
    key(e, k5, sizeof(k5), "history:", name);
    snprintf(hist, sizeof(hist), "%d", e->srv->cfg.feed.history_size);
    snprintf(deadline, sizeof(deadline), "%lld", (long long)link_deadline_ms(e));
    int rc = link_cmd(e, on_publish_reply, in, "EVALSHA %s 5 %s %s %s %s %s %s %s %s %s %s %s", e->sha[RS_PUBLISH],
                      k1, k2, k3, k4, k5, body, start, hist, vol, ts, deadline);
    if (rc == REDIS_OK) {
        e->inflight++;
        e->last_publish_ms = uv_now(&e->srv->loop);
        atomic_fetch_add(&e->published, 1);
    }
    return rc;
}

static void on_mail(struct mailbox *mb, struct mail *m, void *data) {
    struct redis_engine *e = data;
    struct hub *h = &e->srv->hub;
    link_settle(e); /* a failed link's ticks are delivered before anything newer */
    bool up = atomic_load(&e->up) && link_live(e, e->cmd.ac);
    switch (m->type) {
    case RM_PUBLISH: {
        struct tick_in *in = m->ptr;
        if (up && e->inflight >= (uint32_t)e->srv->cfg.redis.max_inflight) {
            count_error(e, "link stalled", "redis.max_inflight ticks awaiting Redis");
            link_fail(e, "stalled: redis.max_inflight ticks awaiting Redis", true);
            up = false;
        }
        if (up && send_publish(e, in) == REDIS_OK)
            break;
        hub_publish_local(h, in); /* Redis is down, or went down meanwhile */
        free(in);
        break;
    }
    case RM_SYMBOL:
        reconcile(e, (uint32_t)m->a);
        break;
    case RM_NOTE:
        if (up)
            handle_note(e, m->ptr); /* while down, the resync on reconnect covers it */
        free_note(m->ptr);
        break;
    case RM_ADMIT: {
        struct redis_admit *a = m->ptr;
        if (up) {
            char lim[16];
            snprintf(lim, sizeof(lim), "%d", a->limit);
            if (link_cmd(e, on_admit_reply, a, "EVALSHA %s 0 %s %s %s %s", e->sha[RS_ADMIT], e->prefix, e->node,
                                  a->user, lim) == REDIS_OK)
                break;
        }
        a->ok = true; /* local limits only */
        a->counted = false;
        if (worker_post(&e->srv->workers[a->worker], WM_ADMIT_RESULT, a, 0) < 0)
            free(a);
        break;
    }
    case RM_QUERY: {
        struct redis_query *q = m->ptr;
        char k[160], count[16];
        key(e, k, sizeof(k), "history:", h->syms->names[q->sym]);
        snprintf(count, sizeof(count), "%u",
                 q->analysis || q->limit > h->history_size ? h->history_size : q->limit);
        if (!up || link_cmd(e, on_query_reply, q, "XREVRANGE %s + - COUNT %s", k, count) != REDIS_OK) {
            answer_locally(e, q);
            query_free(q);
        }
        break;
    }
    case RM_CONTROL: {
        char *msg = m->ptr;
        if (up) {
            char k[160];
            key(e, k, sizeof(k), "control", NULL);
            link_cmd(e, on_reply, "PUBLISH control", "PUBLISH %s %s", k, msg);
            if (msg[0] == 'B' || msg[0] == 'U') {
                /* Keep the shared block list: B|node|ip|dur, U|node|ip */
                char ip[64] = "";
                long long dur = 0;
                const char *p = strchr(msg + 2, '|');
                if (p) {
                    const char *q = strchr(p + 1, '|');
                    size_t l = q ? (size_t)(q - p - 1) : strlen(p + 1);
                    if (l < sizeof(ip)) {
                        memcpy(ip, p + 1, l);
                        ip[l] = '\0';
                    }
                    if (q)
                        dur = strtoll(q + 1, NULL, 10);
                }
                key(e, k, sizeof(k), "blocked", NULL);
                if (msg[0] == 'B')
                    link_cmd(e, on_reply, "HSET blocked", "HSET %s %s %lld", k, ip,
                                      dur ? (long long)time(NULL) + dur : 0LL);
                else
                    link_cmd(e, on_reply, "HDEL blocked", "HDEL %s %s", k, ip);
            }
        }
        free(msg);
        break;
    }
    }
}

static void drop_mail(struct mail *m) {
    if (m->type == RM_NOTE)
        free_note(m->ptr);
    else if (m->type == RM_QUERY)
        query_free(m->ptr);
    else if (m->type == RM_PUBLISH || m->type == RM_CONTROL || m->type == RM_ADMIT)
        free(m->ptr);
}

int redis_engine_post(struct redis_engine *e, int type, void *ptr, uint64_t a) {
    struct mail m = {.type = type, .ptr = ptr, .a = a, .b = 0};
    if (!e->enabled || mailbox_post(&e->inbox, &m) < 0) {
        drop_mail(&m);
        return -1;
    }
    return 0;
}

void redis_engine_release_user(struct redis_engine *e, const char *user) {
    struct redis_note *n = calloc(1, sizeof(*n));
    if (!n)
        return;
    n->kind = NOTE_RELEASE_USER;
    n->user = strdup(user);
    if (!n->user) {
        free(n);
        return;
    }
    redis_engine_post(e, RM_NOTE, n, 0);
}

int redis_engine_command(struct redis_engine *e, void (*fn)(struct redisAsyncContext *, void *, void *), void *priv,
                         const char *fmt, ...) {
    if (!redis_engine_up(e))
        return -1;
    va_list ap;
    va_start(ap, fmt);
    int rc = link_vcmd(e, fn, priv, fmt, ap);
    va_end(ap);
    return rc == REDIS_OK ? 0 : -1;
}

int redis_engine_command_argv(struct redis_engine *e, void (*fn)(struct redisAsyncContext *, void *, void *),
                              void *priv, int argc, const char **argv) {
    if (!redis_engine_up(e))
        return -1;
    return link_cmd_argv(e, fn, priv, argc, argv) == REDIS_OK ? 0 : -1;
}

bool redis_engine_publish(struct redis_engine *e, const struct tick_in *in) {
    struct tick_in *copy = malloc(sizeof(*copy));
    if (!copy)
        return false;
    *copy = *in;
    struct mail m = {.type = RM_PUBLISH, .ptr = copy};
    if (mailbox_post(&e->inbox, &m) < 0) {
        free(copy);
        return false;
    }
    return true;
}

/* redis://[:password@]host[:port][/db] */
static int parse_url(struct redis_engine *e, const char *url) {
    if (strncmp(url, "redis://", 8) != 0)
        return -1;
    const char *p = url + 8;
    const char *at = strrchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p;
        e->password = strndup(pw, (size_t)(at - pw));
        p = at + 1;
    }
    const char *slash = strchr(p, '/');
    size_t hl = slash ? (size_t)(slash - p) : strlen(p);
    const char *colon = memchr(p, ':', hl);
    size_t hostlen = colon ? (size_t)(colon - p) : hl;
    if (hostlen == 0 || hostlen >= sizeof(e->host))
        return -1;
    memcpy(e->host, p, hostlen);
    e->host[hostlen] = '\0';
    e->port = 6379;
    if (colon) {
        char *end;
        long port = strtol(colon + 1, &end, 10);
        if (end != p + hl || port < 1 || port > 65535)
            return -1;
        e->port = (int)port;
    }
    e->db = 0;
    if (slash && slash[1]) {
        char *end;
        long db = strtol(slash + 1, &end, 10);
        if (*end || db < 0 || db > 1000000)
            return -1;
        e->db = (int)db;
    }
    return 0;
}

int redis_engine_start(struct redis_engine *e, struct server *srv, uv_loop_t *loop) {
    memset(e, 0, sizeof(*e));
    e->srv = srv;
    if (!srv->cfg.redis.url[0])
        return 0;
    if (parse_url(e, srv->cfg.redis.url) < 0) {
        /* The URL may hold a password: name the key, not the value. */
        fprintf(stderr, "tickgate: redis.url: expected redis://[:password@]host[:port][/db]\n");
        free(e->password);
        return -1;
    }
    e->prefix = strdup(srv->cfg.redis.key_prefix);
    e->subscribed = calloc(srv->syms.n, sizeof(bool));
    e->catch_up = calloc(srv->syms.n, sizeof(struct catch_up));
    e->echo = calloc((size_t)srv->cfg.redis.max_inflight, sizeof(struct echo_wait));
    if (!e->prefix || !e->subscribed || !e->catch_up || !e->echo || redis_scripts_sha(e->sha) < 0 ||
        mailbox_init(&e->inbox, loop, 65536, on_mail, e) < 0) {
        fprintf(stderr, "tickgate: cannot start the Redis engine: out of memory\n");
        free(e->prefix);
        free(e->subscribed);
        free(e->catch_up);
        free(e->echo);
        free(e->password);
        return -1;
    }
    char host[64];
    if (gethostname(host, sizeof(host)) != 0)
        strcpy(host, "node");
    host[16] = '\0';
    unsigned char rnd[4];
    FILE *f = fopen("/dev/urandom", "rb");
    if (!f || fread(rnd, 1, 4, f) != 4)
        memset(rnd, 0, sizeof(rnd));
    if (f)
        fclose(f);
    snprintf(e->node, sizeof(e->node), "%.16s-%d-%02x%02x%02x%02x", host, (int)getpid() % 10000000, rnd[0], rnd[1],
             rnd[2], rnd[3]);
    e->enabled = true;
    link_init(e);
    uv_timer_init(loop, &e->tick);
    e->tick.data = e;
    uv_timer_start(&e->tick, on_tick, TICK_MS, TICK_MS);
    link_connect_all(e);
    return 0;
}

void redis_engine_stop(struct redis_engine *e) {
    if (!e->enabled || e->stopping)
        return;
    /* This node's entries go now rather than after the TTL. */
    if (atomic_load(&e->up) && link_live(e, e->cmd.ac)) {
        char k[160], k2[200], now_s[24];
        key(e, k, sizeof(k), "node:", e->node);
        snprintf(now_s, sizeof(now_s), "%lld", (long long)time(NULL));
        link_cmd(e, NULL, NULL, "DEL %s", k);
        link_cmd(e, NULL, NULL, "EVALSHA %s 0 %s %s", e->sha[RS_CLEANUP], e->prefix, now_s);
        snprintf(k2, sizeof(k2), "%s:users", k);
        link_cmd(e, NULL, NULL, "DEL %s", k2);
    }
    e->stopping = true;
    atomic_store(&e->up, false);
    link_stop(e);
    uv_close((uv_handle_t *)&e->tick, NULL);
    mailbox_close(&e->inbox, drop_mail);
}

void redis_engine_free(struct redis_engine *e) {
    if (!e->enabled)
        return;
    mailbox_destroy(&e->inbox);
    free(e->subscribed);
    if (e->catch_up)
        for (uint32_t s = 0; s < e->srv->syms.n; s++)
            catch_up_reset(&e->catch_up[s]);
    free(e->catch_up);
    while (e->echo_n)
        echo_pop(e);
    free(e->echo);
    free(e->prefix);
    free(e->password);
    e->enabled = false;
}
