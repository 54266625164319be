/* sentinel.c - Redis Sentinel: ask for the primary, verify it, follow
 * +switch-master, and the epoch check after a change of primary; see
 * sentinel.h. Main loop only. */
#include "cluster/sentinel.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/config.h"
#include "base/log.h"
#include "cluster/internal.h"
#include "cluster/uv_adapter.h"
#include "pubsub/hub.h"

#define REASK_EVERY 10     /* watch periods between two questions while all is well */
#define CHECK_CHUNK 256    /* symbols per epoch-check script */
#define SEQ_JUMP "1000000" /* a new primary's counters jump: more than it can plausibly have lost */

/* One atomic step per chunk of symbols (ARGV: prefix, the primary's
 * replication id, this node's epoch tag, SEQ_JUMP, names): a symbol whose
 * counter was last written under another primary (writer:<SYM> differs)
 * may lack ticks the old primary published, so it gets a new epoch, loses
 * its history stream, and its counter jumps by SEQ_JUMP (a node that saw
 * the lost seqs would drop new ticks numbered at or below them; after the
 * jump its clients see a visible jump instead). Then every symbol is
 * marked with this primary. Returns how many changed. */
static const char CHECK_LUA[] =
    "local p, id, tag, jump = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]) "
    "local t = redis.call('TIME') "
    "local ep = tag .. '-' .. t[1] .. string.format('%06d', tonumber(t[2])) "
    "local n = 0 "
    "for i = 5, #ARGV do "
    "  local s = ARGV[i] "
    "  local w = redis.call('GET', p .. 'writer:' .. s) "
    "  if w and w ~= id and redis.call('EXISTS', p .. 'epoch:' .. s) == 1 then "
    "    redis.call('SET', p .. 'epoch:' .. s, ep) redis.call('DEL', p .. 'history:' .. s) "
    "    if redis.call('EXISTS', p .. 'seq:' .. s) == 1 then redis.call('INCRBY', p .. 'seq:' .. s, jump) end "
    "    n = n + 1 end "
    "  if w ~= id then redis.call('SET', p .. 'writer:' .. s, id) end end "
    "return n";

static struct sentinel *sn_of(const redisAsyncContext *ac) { return ((struct redis_engine *)ac->data)->sentinel; }

static void ask_next(struct sentinel *sn);
static void on_watch_timer(uv_timer_t *t);

/* Opens a context to sentinel i with our adapter; NULL when it cannot. */
static redisAsyncContext *open_to(struct sentinel *sn, int i, void (*gone)(void *, const char *),
                                  void (*on_read)(void *), redisConnectCallback *connected) {
    struct redis_engine *e = sn->e;
    redisAsyncContext *ac = redisAsyncConnect(sn->at[i].host, sn->at[i].port);
    if (!ac)
        return NULL;
    struct redis_uv_hooks hooks = {.on_read = on_read, .on_gone = gone, .arg = sn};
    if (ac->err || redis_uv_attach(ac, e->loop, &hooks) < 0) {
        count_error(e, "sentinel connect failed", ac->err ? ac->errstr : NULL);
        redisAsyncFree(ac); /* not attached: no hook runs */
        return NULL;
    }
    ac->data = e;
    link_tune_socket(ac->c.fd, e->cfg->timeout_ms);
    redisAsyncSetConnectCallback(ac, connected);
    return ac;
}

/* "host", "port" from a sentinel (the answer or a +switch-master). */
static bool set_primary(struct redis_engine *e, const char *host, size_t hl, const char *port_s, bool *changed) {
    long port = strtol(port_s, NULL, 10);
    if (hl == 0 || hl >= sizeof(e->host) || port < 1 || port > 65535)
        return false;
    *changed = strlen(e->host) != hl || memcmp(e->host, host, hl) != 0 || e->port != (int)port;
    memcpy(e->host, host, hl);
    e->host[hl] = '\0';
    e->port = (int)port;
    return true;
}

/* The primary is known: links down, open them; open to another server,
 * drop them (the reconnect asks again and writes the state back). */
static void follow(struct redis_engine *e, bool changed) {
    if (e->stopping)
        return;
    if (!e->cmd.ac && !e->sub.ac) {
        link_retry_now(e);
        return;
    }
    if (changed) {
        log_info("redis: Sentinel names a new primary %s:%d", e->host, e->port);
        link_fail(e, "primary switched (Sentinel)", false);
    }
}

static void on_ask_reply(redisAsyncContext *ac, void *r, void *priv) {
    struct sentinel *sn = sn_of(ac);
    redisReply *reply = r;
    if (!reply || ac != sn->ask)
        return;
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 && reply->element[0]->type == REDIS_REPLY_STRING &&
        reply->element[1]->type == REDIS_REPLY_STRING) {
        bool changed = false;
        if (set_primary(sn->e, reply->element[0]->str, reply->element[0]->len, reply->element[1]->str, &changed)) {
            sn->answered = true;
            redisAsyncDisconnect(ac);
            follow(sn->e, changed);
            return;
        }
    }
    /* nil (an unknown name) or an error: the next sentinel */
    count_error(sn->e, "sentinel names no primary",
                reply->type == REDIS_REPLY_ERROR ? reply->str : sn->e->cfg->sentinel_master);
    redisAsyncDisconnect(ac);
}

static void on_ask_connect(const redisAsyncContext *cac, int status) {
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    struct sentinel *sn = sn_of(ac);
    if (status != REDIS_OK) { /* hiredis frees it: the gone hook moves on */
        count_error(sn->e, "sentinel connect failed", ac->errstr);
        return;
    }
    redisAsyncCommand(ac, on_ask_reply, NULL, "SENTINEL get-master-addr-by-name %s", sn->e->cfg->sentinel_master);
}

static void on_ask_gone(void *arg, const char *err) {
    struct sentinel *sn = arg;
    sn->ask = NULL;
    uv_timer_stop(&sn->ask_timer);
    if (!sn->answered && !sn->stopping)
        ask_next(sn);
}

static void on_ask_timeout(uv_timer_t *t) {
    struct sentinel *sn = t->data;
    if (sn->ask) {
        count_error(sn->e, "sentinel timed out", NULL);
        redisAsyncFree(sn->ask); /* the gone hook moves on */
    }
}

static void nothing_read(void *arg) {}

/* The next sentinel of this round; none left: the attempt fails (the
 * links' backoff asks again), unless links are open (nothing to do). */
static void ask_next(struct sentinel *sn) {
    struct redis_engine *e = sn->e;
    while (sn->tried < sn->n) {
        int i = sn->next;
        sn->next = (sn->next + 1) % sn->n;
        sn->tried++;
        sn->answered = false;
        if ((sn->ask = open_to(sn, i, on_ask_gone, nothing_read, on_ask_connect))) {
            uv_timer_start(&sn->ask_timer, on_ask_timeout, (uint64_t)e->cfg->timeout_ms, 0);
            return;
        }
    }
    if (!e->cmd.ac && !e->sub.ac && !e->stopping) {
        count_error(e, "no sentinel named a primary", e->cfg->sentinel_master);
        e->fail_why = "no sentinel named a primary";
        link_fail(e, e->fail_why, true); /* down, backoff, then asked again */
    }
}

void sentinel_ask(struct redis_engine *e) {
    struct sentinel *sn = e->sentinel;
    if (sn->ask || sn->stopping)
        return; /* its answer serves this call too */
    sn->tried = 0;
    ask_next(sn);
}

/* +switch-master "<name> <old-ip> <old-port> <new-ip> <new-port>";
 * a (re)subscription asks again (events were missed meanwhile). */
static void on_watch_msg(redisAsyncContext *ac, void *r, void *priv) {
    struct sentinel *sn = sn_of(ac);
    redisReply *reply = r;
    if (!reply || ac != sn->watch || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = reply->element[0]->str;
    if (strcmp(kind, "subscribe") == 0) {
        sentinel_ask(sn->e);
        return;
    }
    redisReply *body = reply->element[2];
    if (strcmp(kind, "message") != 0 || body->type != REDIS_REPLY_STRING)
        return;
    char name[256], oh[256], op[16], nh[256], np[16];
    if (sscanf(body->str, "%255s %255s %15s %255s %15s", name, oh, op, nh, np) != 5 ||
        strcmp(name, sn->e->cfg->sentinel_master) != 0)
        return;
    bool changed = false;
    if (!set_primary(sn->e, nh, strlen(nh), np, &changed))
        return;
    log_info("redis: +switch-master %s: %s:%s -> %s:%s", name, oh, op, nh, np);
    follow(sn->e, changed);
}

static void on_watch_connect(const redisAsyncContext *cac, int status) {
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    struct sentinel *sn = sn_of(ac);
    if (status != REDIS_OK) {
        count_error(sn->e, "sentinel connect failed", ac->errstr);
        return;
    }
    redisAsyncCommand(ac, on_watch_msg, NULL, "SUBSCRIBE +switch-master");
}

static void on_watch_gone(void *arg, const char *err) {
    struct sentinel *sn = arg;
    sn->watch = NULL;
    if (!sn->stopping)
        log_warn("redis: sentinel %s:%d lost (%s); watching the next", sn->at[sn->watch_at].host,
                 sn->at[sn->watch_at].port, err ? err : "closed");
    sn->watch_at = (sn->watch_at + 1) % sn->n;
    if (!sn->stopping) { /* the next sentinel now; after a whole round, a period later */
        uint64_t period = (uint64_t)sn->e->cfg->timeout_ms;
        uv_timer_start(&sn->watch_timer, on_watch_timer, sn->watch_at == 0 ? period : 0, period);
    }
}

/* Every redis.timeout_ms: (re)connect the watch; now and then ask again,
 * in case the watched sentinel stalled and missed an event. */
static void on_watch_timer(uv_timer_t *t) {
    struct sentinel *sn = t->data;
    if (!sn->watch) {
        sn->watch = open_to(sn, sn->watch_at, on_watch_gone, nothing_read, on_watch_connect);
        if (!sn->watch)
            sn->watch_at = (sn->watch_at + 1) % sn->n;
        return;
    }
    if (++sn->periods % REASK_EVERY == 0 && atomic_load(&sn->e->up))
        sentinel_ask(sn->e);
}

static void on_role(redisAsyncContext *ac, void *r, void *priv) {
    struct redis_engine *e = ac->data;
    redisReply *reply = r;
    if (!reply || !link_live(e, ac))
        return;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 || reply->element[0]->type != REDIS_REPLY_STRING ||
        strcmp(reply->element[0]->str, "master") != 0) {
        count_error(e, "not a primary", e->host);
        link_fail(e, "the server the sentinel named is not a primary (ROLE)", false);
    }
}

static void on_replid(redisAsyncContext *ac, void *r, void *priv) {
    struct redis_engine *e = ac->data;
    redisReply *reply = r;
    if (!reply || !link_live(e, ac))
        return;
    const char *id = reply->type == REDIS_REPLY_STRING ? strstr(reply->str, "master_replid:") : NULL;
    size_t n = id ? strcspn(id + 14, "\r\n") : 0;
    if (n == 0 || n >= sizeof(e->sentinel->replid)) {
        count_error(e, "handshake refused", "INFO replication: no master_replid");
        link_fail(e, "handshake refused", false);
        return;
    }
    memcpy(e->sentinel->replid, id + 14, n);
    e->sentinel->replid[n] = '\0';
}

void sentinel_verify(struct redis_engine *e, redisAsyncContext *ac) {
    e->sentinel->replid[0] = '\0';
    redisAsyncCommand(ac, on_role, NULL, "ROLE");
    redisAsyncCommand(ac, on_replid, NULL, "INFO replication");
}

static void on_checked(redisAsyncContext *ac, void *r, void *priv) {
    struct redis_engine *e = ac->data;
    redisReply *reply = r;
    if (!reply || !link_live(e, ac))
        return;
    if (reply->type == REDIS_REPLY_INTEGER && reply->integer > 0)
        log_warn("redis: primary %s:%d has another replication history: %lld symbols get a new epoch", e->host,
                 e->port, (long long)reply->integer);
    else if (reply->type == REDIS_REPLY_ERROR) {
        count_error(e, "epoch check", reply->str);
        link_fail(e, "epoch check failed", false); /* never write under an unchecked epoch */
    }
}

void sentinel_check_epochs(struct redis_engine *e) {
    const struct symbol_table *syms = e->hub->syms;
    const char *argv[7 + CHECK_CHUNK];
    for (uint32_t s = 0; s < syms->n; s += CHECK_CHUNK) {
        uint32_t k = syms->n - s < CHECK_CHUNK ? syms->n - s : CHECK_CHUNK;
        argv[0] = "EVAL";
        argv[1] = CHECK_LUA;
        argv[2] = "0";
        argv[3] = e->prefix;
        argv[4] = e->sentinel->replid;
        argv[5] = cluster_epoch_tag(e);
        argv[6] = SEQ_JUMP;
        for (uint32_t j = 0; j < k; j++)
            argv[7 + j] = syms->names[s + j];
        link_cmd_argv(e, on_checked, NULL, 7 + (int)k, argv);
    }
}

int sentinel_parse(struct redis_engine *e) {
    struct sentinel *sn = calloc(1, sizeof(*sn));
    if (!sn) {
        fprintf(stderr, "tickgate: cannot start the Redis engine: out of memory\n");
        return -1;
    }
    const char *cur = e->cfg->sentinels, *item;
    size_t len;
    while (sn->n < SENTINEL_MAX && config_list_next(&cur, &item, &len)) {
        char one[300];
        snprintf(one, sizeof(one), "%.*s", (int)len, item);
        if (config_split_listen(one, sn->at[sn->n].host, sizeof(sn->at[0].host), &sn->at[sn->n].port) < 0 ||
            sn->at[sn->n].port == 0) {
            fprintf(stderr, "tickgate: redis.sentinels: '%s' is not HOST:PORT\n", one);
            free(sn);
            return -1;
        }
        sn->n++;
    }
    if (sn->n == 0 || !e->cfg->sentinel_master[0]) {
        fprintf(stderr, "tickgate: redis.sentinels: needs HOST:PORT and redis.sentinel_master\n");
        free(sn);
        return -1;
    }
    sn->e = e;
    e->sentinel = sn;
    return 0;
}

void sentinel_start(struct redis_engine *e) {
    struct sentinel *sn = e->sentinel;
    uv_timer_init(e->loop, &sn->ask_timer);
    sn->ask_timer.data = sn;
    uv_timer_init(e->loop, &sn->watch_timer);
    sn->watch_timer.data = sn;
    uv_timer_start(&sn->watch_timer, on_watch_timer, 0, (uint64_t)e->cfg->timeout_ms);
    log_info("redis: Sentinel mode: %d sentinel(s), primary '%s'", sn->n, e->cfg->sentinel_master);
}

void sentinel_stop(struct redis_engine *e) {
    struct sentinel *sn = e->sentinel;
    if (!sn)
        return;
    sn->stopping = true;
    if (sn->ask)
        redisAsyncFree(sn->ask);
    if (sn->watch)
        redisAsyncFree(sn->watch);
    uv_close((uv_handle_t *)&sn->ask_timer, NULL);
    uv_close((uv_handle_t *)&sn->watch_timer, NULL);
}

void sentinel_free(struct redis_engine *e) {
    free(e->sentinel);
    e->sentinel = NULL;
}
