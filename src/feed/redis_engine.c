/* redis_engine.c - Redis persistence and cross-node fan-out; see
 * redis_engine.h.
 *
 * Keys (prefix P, default "websocket:"): P"connections" and
 * P"subscriptions" (hashes by client id), P"nodes" (set of node ids),
 * P"node:<id>" (liveness, TTL), P"node:<id>:clients" (set),
 * P"node:<id>:users" (hash user -> connections), P"seq:<SYM>",
 * P"first:<SYM>", P"last:<SYM>", P"blocked" (hash ip -> until, 0 = no
 * end). Channels: P"tick:<SYM>" and P"control". */
#include "feed/redis_engine.h"

#include <errno.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "feed/redis_uv.h"
#include "core/server.h"
#include "core/worker.h"
#include "net/admin.h"
#include "pubsub/hub.h"
#include "pubsub/userevents.h"
#include "core/protocol.h"

#define TICK_MS 1000
#define CATCH_UP_TICKS 256 /* ticks a newly listening node replays from the stream */
#define BACKOFF_START_MS 100

/* INCR the seq, fix the session's first price, keep the last tick, publish
 * it: one atomic step, so every node sees one order. */
static const char PUBLISH_LUA[] =
    "local seq = redis.call('INCR', KEYS[1]) "
    "redis.call('SET', KEYS[2], ARGV[2], 'NX') "
    "local first = redis.call('GET', KEYS[2]) "
    "local vol = ARGV[4] "
    "if vol == '' then "          /* no volume given: the last tick's stays */
    "  local prev = redis.call('GET', KEYS[3]) "
    "  vol = prev and string.match(prev, '^[^|]*|[^|]*|[^|]*|[^|]*|([^|]*)') or '0' end "
    "local msg = ARGV[1] .. '|' .. vol .. '|' .. ARGV[5] .. '|' .. seq .. '|' .. first "
    "redis.call('SET', KEYS[3], msg) "
    "redis.call('XADD', KEYS[5], 'MAXLEN', ARGV[3], '*', 't', msg) "
    "redis.call('PUBLISH', KEYS[4], msg) "
    "return seq";

/* After a reconnect: Redis's seq must never fall behind what this node
 * handed out alone. */
static const char WRITEBACK_LUA[] =
    "local cur = tonumber(redis.call('GET', KEYS[1]) or '0') "
    "if tonumber(ARGV[1]) > cur then redis.call('SET', KEYS[1], ARGV[1]) end "
    "redis.call('SET', KEYS[2], ARGV[2], 'NX') return 1";

/* Per-user admission across every live node. */
static const char ADMIT_LUA[] =
    "local p, me, user, limit = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]) "
    "local total = 0 "
    "for _, n in ipairs(redis.call('SMEMBERS', p .. 'nodes')) do "
    "  if n == me or redis.call('EXISTS', p .. 'node:' .. n) == 1 then "
    "    total = total + tonumber(redis.call('HGET', p .. 'node:' .. n .. ':users', user) or '0') end end "
    "if total >= limit then return 0 end "
    "redis.call('HINCRBY', p .. 'node:' .. me .. ':users', user, 1) return 1";

static const char RELEASE_LUA[] =
    "local n = redis.call('HINCRBY', KEYS[1], ARGV[1], -1) "
    "if n <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end return n";

/* Removes one node's clients from the shared hashes, and its bookkeeping. */
static const char CLEAN_NODE_LUA[] =
    "local p, n = ARGV[1], ARGV[2] "
    "for _, c in ipairs(redis.call('SMEMBERS', p .. 'node:' .. n .. ':clients')) do "
    "  redis.call('HDEL', p .. 'connections', c) redis.call('HDEL', p .. 'subscriptions', c) end "
    "redis.call('DEL', p .. 'node:' .. n .. ':clients', p .. 'node:' .. n .. ':users') return 1";

/* Any node removes the entries of nodes whose liveness key has expired. */
static const char CLEANUP_LUA[] =
    "local p = ARGV[1] local removed = 0 "
    "for _, n in ipairs(redis.call('SMEMBERS', p .. 'nodes')) do "
    "  if redis.call('EXISTS', p .. 'node:' .. n) == 0 then "
    "    for _, c in ipairs(redis.call('SMEMBERS', p .. 'node:' .. n .. ':clients')) do "
    "      redis.call('HDEL', p .. 'connections', c) redis.call('HDEL', p .. 'subscriptions', c) end "
    "    redis.call('DEL', p .. 'node:' .. n .. ':clients', p .. 'node:' .. n .. ':users') "
    "    redis.call('SREM', p .. 'nodes', n) removed = removed + 1 end end "
    "return removed";

static void connect_all(struct redis_engine *e);

static void key(struct redis_engine *e, char *out, size_t len, const char *a, const char *b) {
    snprintf(out, len, "%s%s%s", e->prefix, a, b ? b : "");
}

static void count_error(struct redis_engine *e, const char *what, const char *detail) {
    atomic_fetch_add(&e->errors, 1);
    log_warn("redis: %s%s%s", what, detail ? ": " : "", detail ? detail : "");
}

/* Generic reply check: errors are counted, never swallowed. */
static void on_reply(redisAsyncContext *ac, void *r, void *priv) {
    struct redis_engine *e = ac->data;
    redisReply *reply = r;
    if (reply && reply->type == REDIS_REPLY_ERROR)
        count_error(e, priv ? (const char *)priv : "command failed", reply->str);
}

/* The publish script's answer. No answer (the link died): the tick was
 * most likely not published, so this node sequences it itself. */
static void on_publish_reply(redisAsyncContext *ac, void *r, void *priv) {
    struct redis_engine *e = ac->data;
    struct tick_in *in = priv;
    redisReply *reply = r;
    if (!reply || reply->type == REDIS_REPLY_ERROR) {
        if (reply)
            count_error(e, "publish script", reply->str);
        hub_publish_local(&e->srv->hub, in);
    }
    free(in);
}

static void set_down(struct redis_engine *e, const char *why) {
    e->ready = 0;
    if (atomic_exchange(&e->up, false))
        log_error("redis: down (%s); serving local clients only", why);
}

static void on_retry(uv_timer_t *t) {
    struct redis_engine *e = t->data;
    connect_all(e);
}

static void start_retry(struct redis_engine *e) {
    if (e->stopping || e->cmd || e->sub)
        return;
    uv_timer_start(&e->retry, on_retry, e->backoff_ms, 0);
    uint64_t cap = (uint64_t)e->srv->cfg.redis.reconnect_max_ms;
    e->backoff_ms = e->backoff_ms * 2 > cap ? cap : e->backoff_ms * 2;
}

/* Tears both links down; the disconnect callbacks then schedule a retry. */
static void fail(struct redis_engine *e, const char *why) {
    set_down(e, why);
    if (e->cmd && !(e->cmd->c.flags & REDIS_DISCONNECTING))
        redisAsyncDisconnect(e->cmd);
    if (e->sub && !(e->sub->c.flags & REDIS_DISCONNECTING))
        redisAsyncDisconnect(e->sub);
    start_retry(e);
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
    struct redis_engine *e = ac->data;
    if (ac == e->cmd)
        e->cmd = NULL;
    if (ac == e->sub)
        e->sub = NULL;
    if (e->stopping)
        return;
    if (status != REDIS_OK)
        count_error(e, "connection lost", ac->errstr);
    fail(e, "connection lost");
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
    if (!atomic_load(&e->up) || !e->sub)
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
        redisAsyncCommand(e->cmd, on_marker, (void *)(uintptr_t)sym, "XREVRANGE %s + - COUNT 1", hk);
        redisAsyncCommand(e->sub, on_message, NULL, "SUBSCRIBE %s", ch);
    } else {
        redisAsyncCommand(e->sub, NULL, NULL, "UNSUBSCRIBE %s", ch);
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
    if (cu->have != 3 || !e->cmd)
        return;
    cu->have = 4; /* replay in flight */
    char k[160];
    key(e, k, sizeof(k), "history:", e->srv->hub.syms->names[sym]);
    if (redisAsyncCommand(e->cmd, on_catch_up, (void *)(uintptr_t)sym, "XRANGE %s %s + COUNT %u", k,
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
        ch->len > pl + 5 && strncmp(ch->str + pl, "tick:", 5) == 0 && e->cmd) {
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

/* Both links are ready: write the node's whole state back. */
static void became_up(struct redis_engine *e) {
    struct server *srv = e->srv;
    struct hub *h = &srv->hub;
    char k1[160], k2[200];
    atomic_store(&e->up, true);
    e->backoff_ms = BACKOFF_START_MS;
    log_info("redis: up (%s:%d), node %s", e->host, e->port, e->node);
    int ttl = srv->cfg.redis.node_ttl_s;
    key(e, k1, sizeof(k1), "nodes", NULL);
    redisAsyncCommand(e->cmd, on_reply, "SADD nodes", "SADD %s %s", k1, e->node);
    key(e, k1, sizeof(k1), "node:", e->node);
    redisAsyncCommand(e->cmd, on_reply, "SET liveness", "SET %s 1 EX %d", k1, ttl);
    /* Forget what this node wrote before (clients that left while Redis
     * was away included); the workers' resync below writes the live ones. */
    redisAsyncCommand(e->cmd, on_reply, "clean node state", "EVAL %s 0 %s %s", CLEAN_NODE_LUA, e->prefix, e->node);
    for (uint32_t s = 0; s < h->syms->n; s++) {
        double first;
        int64_t seq = local_seq_snapshot(h, s, &first);
        if (seq <= 0)
            continue;
        char fs[40];
        snprintf(fs, sizeof(fs), "%.17g", first);
        key(e, k1, sizeof(k1), "seq:", h->syms->names[s]);
        key(e, k2, sizeof(k2), "first:", h->syms->names[s]);
        redisAsyncCommand(e->cmd, on_reply, "writeback", "EVAL %s 2 %s %s %lld %s", WRITEBACK_LUA, k1, k2,
                          (long long)seq, fs);
    }
    key(e, k1, sizeof(k1), "blocked", NULL);
    redisAsyncCommand(e->cmd, on_blocked_list, NULL, "HGETALL %s", k1);
    key(e, k1, sizeof(k1), "control", NULL);
    redisAsyncCommand(e->sub, on_message, NULL, "SUBSCRIBE %s", k1);
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

static void on_ready(redisAsyncContext *ac, void *r, void *priv) {
    struct redis_engine *e = ac->data;
    redisReply *reply = r;
    if (!reply)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        count_error(e, "handshake refused", reply->str);
        fail(e, "handshake refused");
        return;
    }
    if (++e->ready == 2)
        became_up(e);
}

static void on_connect(const redisAsyncContext *cac, int status) {
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    struct redis_engine *e = ac->data;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback. */
        if (ac == e->cmd)
            e->cmd = NULL;
        if (ac == e->sub)
            e->sub = NULL;
        count_error(e, "connect failed", ac->errstr);
        fail(e, "connect failed");
        return;
    }
    if (e->password)
        redisAsyncCommand(ac, on_reply, "AUTH", "AUTH %s", e->password);
    if (ac == e->cmd)
        redisAsyncCommand(ac, on_ready, NULL, "SELECT %d", e->db);
    else
        redisAsyncCommand(ac, on_ready, NULL, "PING");
}

static redisAsyncContext *open_link(struct redis_engine *e) {
    redisAsyncContext *ac = redisAsyncConnect(e->host, e->port);
    if (!ac)
        return NULL;
    if (ac->err) {
        count_error(e, "connect failed", ac->errstr);
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = e;
    if (redis_uv_attach(ac, &e->srv->loop) < 0) {
        redisAsyncFree(ac);
        return NULL;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    return ac;
}

static void connect_all(struct redis_engine *e) {
    if (e->stopping)
        return;
    e->ready = 0;
    e->cmd = open_link(e);
    e->sub = e->cmd ? open_link(e) : NULL;
    if (!e->cmd || !e->sub)
        fail(e, "connect failed");
}

static void on_tick(uv_timer_t *t) {
    struct redis_engine *e = t->data;
    if (!atomic_load(&e->up) || !e->cmd)
        return;
    char k[160];
    int ttl = e->srv->cfg.redis.node_ttl_s;
    key(e, k, sizeof(k), "node:", e->node);
    redisAsyncCommand(e->cmd, on_reply, "SET liveness", "SET %s 1 EX %d", k, ttl);
    uint64_t now = uv_now(t->loop);
    if (now >= e->cleanup_due) {
        e->cleanup_due = now + (uint64_t)ttl * 1000 / 2;
        redisAsyncCommand(e->cmd, on_reply, "cleanup", "EVAL %s 0 %s", CLEANUP_LUA, e->prefix);
    }
}

static void on_admit_reply(redisAsyncContext *ac, void *r, void *priv) {
    struct redis_engine *e = ac->data;
    struct redis_admit *a = priv;
    redisReply *reply = r;
    if (reply && reply->type == REDIS_REPLY_ERROR)
        count_error(e, "admission script", reply->str);
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
        redisAsyncCommand(e->cmd, on_reply, "HSET connections", "HSET %s %s %s", conns, n->cid, n->text);
        redisAsyncCommand(e->cmd, on_reply, "SADD clients", "SADD %s %s", set, n->cid);
        if (n->resync && n->user)
            redisAsyncCommand(e->cmd, on_reply, "HINCRBY users", "HINCRBY %s %s 1", users, n->user);
        break;
    case NOTE_SUBS:
        redisAsyncCommand(e->cmd, on_reply, "HSET subscriptions", "HSET %s %s %s", subs, n->cid, n->text);
        break;
    case NOTE_RELEASE_USER:
        if (n->user)
            redisAsyncCommand(e->cmd, on_reply, "release user", "EVAL %s 1 %s %s", RELEASE_LUA, users, n->user);
        break;
    case NOTE_CLOSE:
        redisAsyncCommand(e->cmd, on_reply, "HDEL connections", "HDEL %s %s", conns, n->cid);
        redisAsyncCommand(e->cmd, on_reply, "HDEL subscriptions", "HDEL %s %s", subs, n->cid);
        redisAsyncCommand(e->cmd, on_reply, "SREM clients", "SREM %s %s", set, n->cid);
        if (n->user)
            redisAsyncCommand(e->cmd, on_reply, "release user", "EVAL %s 1 %s %s", RELEASE_LUA, users, n->user);
        break;
    }
}

static void free_note(struct redis_note *n) {
    free(n->text);
    free(n->user);
    free(n);
}

static void on_mail(struct mailbox *mb, struct mail *m, void *data) {
    struct redis_engine *e = data;
    struct hub *h = &e->srv->hub;
    bool up = atomic_load(&e->up) && e->cmd;
    switch (m->type) {
    case RM_PUBLISH: {
        struct tick_in *in = m->ptr;
        if (!up) {
            hub_publish_local(h, in); /* Redis went down meanwhile */
        } else {
            const char *name = h->syms->names[in->sym];
            char body[256], k1[128], k2[128], k3[128], k4[128], k5[128], start[40], hist[16];
            char vol[40] = "", ts[24];
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
            /* The tick stays ours until Redis answers: without an answer it
             * is delivered here, so nothing accepted is lost. */
            if (redisAsyncCommand(e->cmd, on_publish_reply, in, "EVAL %s 5 %s %s %s %s %s %s %s %s %s %s",
                                  PUBLISH_LUA, k1, k2, k3, k4, k5, body, start, hist, vol, ts) == REDIS_OK) {
                atomic_fetch_add(&e->published, 1);
                break;
            }
            hub_publish_local(h, in);
        }
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
            if (redisAsyncCommand(e->cmd, on_admit_reply, a, "EVAL %s 0 %s %s %s %s", ADMIT_LUA, e->prefix, e->node,
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
        if (!up || redisAsyncCommand(e->cmd, on_query_reply, q, "XREVRANGE %s + - COUNT %s", k, count) != REDIS_OK) {
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
            redisAsyncCommand(e->cmd, on_reply, "PUBLISH control", "PUBLISH %s %s", k, msg);
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
                    redisAsyncCommand(e->cmd, on_reply, "HSET blocked", "HSET %s %s %lld", k, ip,
                                      dur ? (long long)time(NULL) + dur : 0LL);
                else
                    redisAsyncCommand(e->cmd, on_reply, "HDEL blocked", "HDEL %s %s", k, ip);
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
    if (!e->prefix || !e->subscribed || !e->catch_up || mailbox_init(&e->inbox, loop, 65536, on_mail, e) < 0) {
        free(e->prefix);
        free(e->subscribed);
        free(e->catch_up);
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
    e->backoff_ms = BACKOFF_START_MS;
    uv_timer_init(loop, &e->retry);
    e->retry.data = e;
    uv_timer_init(loop, &e->tick);
    e->tick.data = e;
    uv_timer_start(&e->tick, on_tick, TICK_MS, TICK_MS);
    connect_all(e);
    return 0;
}

void redis_engine_stop(struct redis_engine *e) {
    if (!e->enabled || e->stopping)
        return;
    e->stopping = true;
    /* This node's entries go now rather than after the TTL. */
    if (atomic_load(&e->up) && e->cmd) {
        char k[160], k2[200];
        key(e, k, sizeof(k), "node:", e->node);
        redisAsyncCommand(e->cmd, NULL, NULL, "DEL %s", k);
        redisAsyncCommand(e->cmd, NULL, NULL, "EVAL %s 0 %s", CLEANUP_LUA, e->prefix);
        snprintf(k2, sizeof(k2), "%s:users", k);
        redisAsyncCommand(e->cmd, NULL, NULL, "DEL %s", k2);
    }
    atomic_store(&e->up, false);
    if (e->cmd)
        redisAsyncDisconnect(e->cmd); /* sends what is queued, then closes */
    if (e->sub)
        redisAsyncDisconnect(e->sub);
    uv_close((uv_handle_t *)&e->retry, NULL);
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
    free(e->prefix);
    free(e->password);
    e->enabled = false;
}
