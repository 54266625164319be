/* redis_link.c - the engine's Redis connections; see redis_link.h. */
#include "cluster/internal.h"

#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "base/log.h"
#include "cluster/engine.h"
#include "cluster/scripts.h"
#include "cluster/sentinel.h"
#include "cluster/shards.h"
#include "cluster/uv_adapter.h"

#define BACKOFF_START_MS 100
#define STOP_WAIT_MS 1000 /* queued commands at shutdown: at most this (or timeout_ms) */

static uint64_t now_ms(const struct redis_engine *e) { return uv_now(e->loop); }

static uint64_t wall_ms(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

bool link_live(const struct redis_engine *e, const redisAsyncContext *ac) {
    return ac && ((ac == e->cmd.ac && !e->cmd.dead) || (ac == e->sub.ac && !e->sub.dead) ||
                  (e->shards && shards_live(e, ac)));
}

/* Any link not yet freed (a cluster's primaries' included). */
static bool any_open(const struct redis_engine *e) {
    return e->cmd.ac || e->sub.ac || (e->shards && shards_open(e));
}

static void set_down(struct redis_engine *e, const char *why) {
    if (atomic_exchange(&e->up, false))
        log_error("redis: down (%s); serving local clients only", why);
}

static void on_retry(uv_timer_t *t) { link_connect_all(t->data); }

/* Both links are gone: the next attempt after the backoff, and never
 * before the fence (the last tick whose fate is unknown is past its
 * deadline in Redis, so a resumed Redis cannot publish it to us). */
static void start_retry(struct redis_engine *e) {
    if (e->stopping || any_open(e) || uv_is_active((uv_handle_t *)&e->retry))
        return;
    uint64_t delay = e->backoff_ms, now = now_ms(e);
    if (e->fence_ms > now && e->fence_ms - now > delay)
        delay = e->fence_ms - now;
    uv_timer_start(&e->retry, on_retry, delay, 0);
    uint64_t cap = (uint64_t)e->cfg->reconnect_max_ms;
    e->backoff_ms = e->backoff_ms * 2 > cap ? cap : e->backoff_ms * 2;
}

static void reap(struct redis_engine *e) {
    uv_timer_stop(&e->reap);
    if (!e->stopping)
        redis_engine_echo_flush(e); /* before the pending publishes are delivered here */
    struct redis_link *ls[2] = {&e->cmd, &e->sub};
    for (int i = 0; i < 2; i++)
        if (ls[i]->ac && ls[i]->dead)
            redisAsyncFree(ls[i]->ac); /* pending callbacks run with no reply; gone hook clears ->ac */
    if (e->shards)
        shards_reap(e);
    set_down(e, e->fail_why ? e->fail_why : "connection lost");
    if (any_open(e))
        return;
    if (!e->stopping)
        start_retry(e);
    else if (!uv_is_closing((uv_handle_t *)&e->reap))
        uv_close((uv_handle_t *)&e->reap, NULL);
}

static void on_reap(uv_timer_t *t) { reap(t->data); }

void link_settle(struct redis_engine *e) {
    if ((e->cmd.ac && e->cmd.dead) || (e->sub.ac && e->sub.dead) || (e->shards && shards_dead(e)))
        reap(e);
}

void link_fail(struct redis_engine *e, const char *why, bool now) {
    bool marked = false;
    struct redis_link *ls[2] = {&e->cmd, &e->sub};
    for (int i = 0; i < 2; i++) {
        ls[i]->ready = false;
        if (ls[i]->ac && !ls[i]->dead) {
            ls[i]->dead = true;
            marked = true;
        }
    }
    if (e->shards && shards_mark_dead(e))
        marked = true;
    if (marked)
        e->fail_why = why;
    if (now || !any_open(e))
        reap(e);
    else
        uv_timer_start(&e->reap, on_reap, 0, 0);
}

static void on_link_read(void *arg) {
    struct redis_link *l = arg;
    l->progress_ms = now_ms(l->e);
}

/* hiredis freed the context, whoever asked. */
static void on_link_gone(void *arg, const char *err) {
    struct redis_link *l = arg;
    struct redis_engine *e = l->e;
    bool expected = l->dead;
    l->ac = NULL;
    l->dead = l->ready = false;
    if (!expected && !e->stopping) {
        redis_engine_count_error(e, "connection lost", err);
        link_fail(e, "connection lost", false);
    }
    link_after_gone(e);
}

void link_after_gone(struct redis_engine *e) {
    if (any_open(e))
        return;
    if (e->stopping) {
        if (!uv_is_closing((uv_handle_t *)&e->reap))
            uv_close((uv_handle_t *)&e->reap, NULL);
        return;
    }
    start_retry(e);
}

/* Both handshakes answered: the engine writes its state back. */
static void link_ready(struct redis_engine *e, struct redis_link *l) {
    l->ready = true;
    if (e->shards) { /* a cluster: the seed's map names the links to open */
        shards_ask_map(e);
        return;
    }
    if (e->cmd.ready && e->sub.ready) {
        e->backoff_ms = BACKOFF_START_MS;
        redis_engine_became_up(e);
    }
}

/* The pub/sub link's PING. */
static void on_sub_ready(redisAsyncContext *ac, void *r, void *priv) {
    struct redis_engine *e = ac->data;
    redisReply *reply = r;
    if (!reply || !link_live(e, ac))
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        redis_engine_count_error(e, "handshake refused", reply->str);
        link_fail(e, "handshake refused", false);
        return;
    }
    link_ready(e, &e->sub);
}

/* The command link's TIME: how far Redis's clock is from ours, so that a
 * tick's deadline is stated in Redis's time whatever the skew. */
static void on_cmd_ready(redisAsyncContext *ac, void *r, void *priv) {
    struct redis_engine *e = ac->data;
    redisReply *reply = r;
    if (!reply || !link_live(e, ac))
        return;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 || reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_STRING) {
        redis_engine_count_error(e, "handshake refused", reply->type == REDIS_REPLY_ERROR ? reply->str : "TIME");
        link_fail(e, "handshake refused", false);
        return;
    }
    int64_t redis_ms = strtoll(reply->element[0]->str, NULL, 10) * 1000 + strtoll(reply->element[1]->str, NULL, 10) / 1000;
    e->clock_offset_ms = redis_ms - (int64_t)wall_ms();
    link_ready(e, &e->cmd);
}

static void on_handshake_reply(redisAsyncContext *ac, void *r, void *priv) {
    struct redis_engine *e = ac->data;
    redisReply *reply = r;
    if (reply && reply->type == REDIS_REPLY_ERROR && link_live(e, ac)) {
        redis_engine_count_error(e, priv, reply->str);
        link_fail(e, "handshake refused", false);
    }
}

static void on_connect(const redisAsyncContext *cac, int status) {
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    struct redis_engine *e = ac->data;
    if (!link_live(e, ac))
        return; /* failed meanwhile: reap frees it */
    if (status != REDIS_OK) {
        /* hiredis frees this context after we return (the gone hook). */
        redis_engine_count_error(e, "connect failed", ac->errstr);
        link_fail(e, "connect failed", false);
        return;
    }
    if (e->password)
        redisAsyncCommand(ac, on_handshake_reply, "AUTH", "AUTH %s", e->password);
    redisAsyncCommand(ac, NULL, NULL, "CLIENT SETNAME tickgate-%s", e->node); /* for operators; refused: no matter */
    if (ac == e->cmd.ac) {
        if (e->sentinel)
            sentinel_verify(e, ac); /* a replica is never written to */
        redisAsyncCommand(ac, on_handshake_reply, "SELECT", "SELECT %d", e->db);
        redisAsyncCommand(ac, on_cmd_ready, NULL, "TIME");
    } else if (e->shards && ac != e->sub.ac) {
        shards_on_connect(e, ac);
    } else {
        redisAsyncCommand(ac, on_sub_ready, NULL, "PING");
    }
}

/* A dead peer is noticed by the kernel too: keepalive probes on an idle
 * link, and TCP_USER_TIMEOUT for data that is never acknowledged. */
void link_tune_socket(int fd, int timeout_ms) {
    int on = 1, idle = timeout_ms / 1000 > 0 ? timeout_ms / 1000 : 1, intvl = idle, cnt = 3;
    unsigned int uto = (unsigned int)timeout_ms;
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &uto, sizeof(uto));
}

bool link_open(struct redis_engine *e, struct redis_link *l, const char *host, int port) {
    redisAsyncContext *ac = redisAsyncConnect(host, port);
    if (!ac)
        return false;
    if (ac->err) {
        redis_engine_count_error(e, "connect failed", ac->errstr);
        redisAsyncFree(ac); /* not attached yet: no hook runs */
        return false;
    }
    ac->data = e;
    struct redis_uv_hooks hooks = {.on_read = on_link_read, .on_gone = on_link_gone, .arg = l};
    if (redis_uv_attach(ac, e->loop, &hooks) < 0) {
        redisAsyncFree(ac);
        return false;
    }
    link_tune_socket(ac->c.fd, e->cfg->timeout_ms);
    l->ac = ac;
    l->dead = l->ready = false;
    l->progress_ms = now_ms(e);
    redisAsyncSetConnectCallback(ac, on_connect);
    return true;
}

void link_connect_all(struct redis_engine *e) {
    if (e->stopping || any_open(e))
        return;
    if (e->sentinel)
        sentinel_ask(e); /* its answer opens the links */
    else
        link_open_all(e);
}

void link_retry_now(struct redis_engine *e) {
    if (e->stopping || any_open(e))
        return;
    uint64_t now = now_ms(e);
    uv_timer_stop(&e->retry);
    e->backoff_ms = BACKOFF_START_MS;
    if (e->fence_ms > now)
        uv_timer_start(&e->retry, on_retry, e->fence_ms - now, 0);
    else
        link_open_all(e);
}

void link_open_all(struct redis_engine *e) {
    if (e->stopping || any_open(e))
        return;
    e->fail_why = NULL;
    if (e->shards) { /* a cluster: the seed link first (shards.h) */
        shards_next_seed(e);
        if (!link_open(e, &e->cmd, e->host, e->port))
            link_fail(e, "connect failed", true);
        return;
    }
    if (!link_open(e, &e->cmd, e->host, e->port) || !link_open(e, &e->sub, e->host, e->port))
        link_fail(e, "connect failed", true);
}

/* A command link when it counts, with its no-progress clock started
 * if nothing was outstanding. */
redisAsyncContext *link_cmd_ac(struct redis_engine *e, struct redis_link *l) {
    redisAsyncContext *ac = l->ac;
    if (!ac || l->dead)
        return NULL;
    if (!ac->replies.head)
        l->progress_ms = now_ms(e);
    return ac;
}

static redisAsyncContext *cmd_link(struct redis_engine *e) { return link_cmd_ac(e, &e->cmd); }

int link_vcmd_link(struct redis_engine *e, struct redis_link *l, redisCallbackFn *fn, void *priv, const char *fmt,
                   va_list ap) {
    redisAsyncContext *ac = link_cmd_ac(e, l);
    return ac ? redisvAsyncCommand(ac, fn, priv, fmt, ap) : REDIS_ERR;
}

int link_vcmd(struct redis_engine *e, redisCallbackFn *fn, void *priv, const char *fmt, va_list ap) {
    return link_vcmd_link(e, &e->cmd, fn, priv, fmt, ap);
}

int link_cmd(struct redis_engine *e, redisCallbackFn *fn, void *priv, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = link_vcmd(e, fn, priv, fmt, ap);
    va_end(ap);
    return rc;
}

int link_cmd_argv(struct redis_engine *e, redisCallbackFn *fn, void *priv, int argc, const char **argv) {
    redisAsyncContext *ac = cmd_link(e);
    return ac ? redisAsyncCommandArgv(ac, fn, priv, argc, argv, NULL) : REDIS_ERR;
}

int64_t link_deadline_ms(const struct redis_engine *e) {
    return (int64_t)wall_ms() + e->clock_offset_ms + e->cfg->timeout_ms;
}

/* Every timeout/4: the beat that proves the pub/sub link alive, and the
 * check of both links. */
static void on_watch(uv_timer_t *t) {
    struct redis_engine *e = t->data;
    uint64_t now = now_ms(e), timeout = (uint64_t)e->cfg->timeout_ms;
    struct redis_link *ls[2] = {&e->cmd, &e->sub};
    for (int i = 0; i < 2; i++) {
        struct redis_link *l = ls[i];
        if (!l->ac || l->dead || now - l->progress_ms <= timeout)
            continue;
        bool waiting = !l->ready || (l == &e->sub ? atomic_load(&e->up) : l->ac->replies.head != NULL);
        if (!waiting)
            continue;
        redis_engine_count_error(e, l->ready ? "link stalled" : "handshake timed out", NULL);
        link_fail(e, l->ready ? "stalled: no answer within redis.timeout_ms" : "connect timed out", true);
        return;
    }
    if (e->shards) { /* a cluster: its primaries' links and beats */
        shards_watch(e, now, timeout);
        return;
    }
    if (atomic_load(&e->up)) {
        char ch[200];
        snprintf(ch, sizeof(ch), "%sbeat:%s", e->prefix, e->node);
        link_cmd(e, redis_engine_on_reply, "beat", "PUBLISH %s 1", ch);
    }
}

void link_init(struct redis_engine *e) {
    e->backoff_ms = BACKOFF_START_MS;
    e->cmd.e = e->sub.e = e;
    uv_timer_init(e->loop, &e->retry);
    e->retry.data = e;
    uv_timer_init(e->loop, &e->reap);
    e->reap.data = e;
    uv_timer_init(e->loop, &e->watch);
    e->watch.data = e;
    uint64_t period = (uint64_t)e->cfg->timeout_ms / 4;
    uv_timer_start(&e->watch, on_watch, period, period);
}

void link_stop(struct redis_engine *e) {
    uv_close((uv_handle_t *)&e->retry, NULL);
    uv_close((uv_handle_t *)&e->watch, NULL);
    if (e->shards)
        shards_stop(e);
    if (e->sub.ac) { /* nothing to flush on pub/sub */
        e->sub.dead = true;
        redisAsyncFree(e->sub.ac);
    }
    if (e->cmd.ac && e->cmd.ready && !e->cmd.dead) {
        /* Sends what is queued (this node's clean-up), then closes; a hung
         * Redis gets STOP_WAIT_MS, then the reap frees it. */
        e->cmd.dead = true;
        e->fail_why = "stopping";
        uint64_t wait = (uint64_t)e->cfg->timeout_ms < STOP_WAIT_MS ? (uint64_t)e->cfg->timeout_ms
                                                                              : STOP_WAIT_MS;
        uv_timer_start(&e->reap, on_reap, wait, 0);
        redisAsyncDisconnect(e->cmd.ac); /* may free at once: no reply pending */
    } else if (e->cmd.ac) {
        e->cmd.dead = true;
        redisAsyncFree(e->cmd.ac);
    }
    if (!any_open(e) && !uv_is_closing((uv_handle_t *)&e->reap))
        uv_close((uv_handle_t *)&e->reap, NULL);
}
