/* engine.c - the Redis engine: start, stop, its mailbox, the periodic
 * liveness key and clean-up, the write-back on reconnect; see engine.h.
 * Links: link.c; ticks: ticks.c; shared state: state.c; scripts: scripts.c.
 *
 * Keys (prefix P, default "websocket:"): P"connections" and
 * P"subscriptions" (hashes by client id), P"nodes" (set of node ids),
 * P"node:<id>" (liveness, TTL), P"node:<id>:clients" (set),
 * P"node:<id>:users" (hash user -> connections), P"seq:<SYM>",
 * P"first:<SYM>", P"last:<SYM>", P"blocked" (hash ip -> until, 0 = no
 * end), with Sentinel P"writer:<SYM>" (sentinel.c). Channels: P"tick:<SYM>"
 * and P"control". On Redis Cluster: the same names with hash tags
 * (P"seq:{SYM}", ..., P"{registry}:connections", ...; shards.h). */
#include "cluster/engine.h"

#include <errno.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "cluster/control.h"
#include "cluster/internal.h"
#include "cluster/sentinel.h"
#include "net/worker.h"
#include "pubsub/hub.h"
#include "pubsub/replay.h"

#define TICK_MS 1000

void cluster_key(struct redis_engine *e, char *out, size_t len, const char *a, const char *b) {
    snprintf(out, len, "%s%s%s", e->rprefix, a, b ? b : "");
}

void cluster_sym_key(struct redis_engine *e, char *out, size_t len, const char *kind, const char *sym) {
    snprintf(out, len, e->shards ? "%s%s{%s}" : "%s%s%s", e->prefix, kind, sym);
}

/* An EVALSHA of a registry script (KEYS[1]: the nodes set, scripts.c). */
static int registry_script(struct redis_engine *e, redisCallbackFn *fn, void *priv, int script, const char *a,
                           const char *b, const char *c) {
    char nodes[160];
    cluster_key(e, nodes, sizeof(nodes), "nodes", NULL);
    return c ? link_cmdk(e, nodes, fn, priv, "EVALSHA %s 1 %s %s %s %s %s", e->sha[script], nodes, e->rprefix, a, b, c)
             : link_cmdk(e, nodes, fn, priv, "EVALSHA %s 1 %s %s %s", e->sha[script], nodes, e->rprefix, a);
}

/* Each kind of failure (what) has its own rate limit: Redis away must not
 * write a line per command, and one kind must not hide another's first
 * line. Main loop only. */
static struct log_limit *limit_of(const char *what) {
    static struct {
        const char *what;
        struct log_limit l;
    } kinds[16];
    static struct log_limit others;
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        if (!kinds[i].what)
            kinds[i].what = what;
        if (strcmp(kinds[i].what, what) == 0)
            return &kinds[i].l;
    }
    return &others;
}

void redis_engine_count_error(struct redis_engine *e, const char *what, const char *detail) {
    atomic_fetch_add(&e->errors, 1);
    log_limited(limit_of(what), LOG_WARN, "redis: %s%s%s", what, detail ? ": " : "", detail ? detail : "");
    /* A cluster's slot moved, or the cluster lost a slot: re-read the map
     * (shards.h: a redirect is never followed). */
    if (e->shards && detail &&
        (strncmp(detail, "MOVED ", 6) == 0 || strncmp(detail, "ASK ", 4) == 0 || strncmp(detail, "CLUSTERDOWN", 11) == 0 ||
         strncmp(detail, "TRYAGAIN", 8) == 0))
        link_fail(e, "cluster slot map changed", false);
}

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

/* Both links are ready: load the scripts, then write the node's whole
 * state back (one connection: Redis runs them in this order). */
void redis_engine_became_up(struct redis_engine *e) {
    struct hub *h = e->hub;
    char k1[160], k2[200];
    for (int i = 0; i < RS_COUNT; i++)
        link_cmd_each(e, on_reply, "SCRIPT LOAD", "SCRIPT LOAD %s", redis_script_text[i]);
    if (e->sentinel)
        sentinel_check_epochs(e); /* a new primary: epochs first, before any write-back or tick */
    atomic_store(&e->up, true);
    log_info("redis: up (%s:%d), node %s", e->host, e->port, e->node);
    int ttl = e->cfg->node_ttl_s;
    cluster_key(e, k1, sizeof(k1), "nodes", NULL);
    link_cmdk(e, k1, on_reply, "SADD nodes", "SADD %s %s", k1, e->node);
    cluster_key(e, k1, sizeof(k1), "node:", e->node);
    link_cmdk(e, k1, on_reply, "SET liveness", "SET %s 1 EX %d", k1, ttl);
    /* Forget what this node wrote before (clients that left while Redis
     * was away included); the workers' resync below writes the live ones. */
    registry_script(e, on_reply, "clean node state", RS_CLEAN_NODE, e->node, NULL, NULL);
    for (uint32_t s = 0; s < h->syms->n; s++) {
        double first;
        int64_t seq = cluster_local_seq(h, s, &first);
        if (seq <= 0)
            continue;
        char fs[40];
        snprintf(fs, sizeof(fs), "%.17g", first);
        cluster_sym_key(e, k1, sizeof(k1), "seq:", h->syms->names[s]);
        cluster_sym_key(e, k2, sizeof(k2), "first:", h->syms->names[s]);
        link_cmdk(e, k1, on_reply, "writeback", "EVALSHA %s 2 %s %s %lld %s", e->sha[RS_WRITEBACK], k1, k2,
                  (long long)seq, fs);
    }
    cluster_key(e, k1, sizeof(k1), "blocked", NULL);
    link_cmdk(e, k1, cluster_on_blocked_list, NULL, "HGETALL %s", k1);
    cluster_key(e, k1, sizeof(k1), "control", NULL);
    cluster_key(e, k2, sizeof(k2), "beat:", e->node); /* the watchdog's proof that this link hears */
    if (e->shards) /* a cluster: each primary's beat is subscribed with its link (shards.c) */
        link_subscribe(e, k1, true);
    else
        redisAsyncCommand(e->sub.ac, cluster_on_message, NULL, "SUBSCRIBE %s %s", k1, k2);
    memset(e->subscribed, 0, h->syms->n * sizeof(bool));
    for (uint32_t s = 0; s < h->syms->n; s++)
        cluster_catch_up_reset(&e->catch_up[s]);
    for (uint32_t s = 0; s < h->syms->n; s++)
        cluster_reconcile(e, s);
    /* Every worker re-sends its connections (the node's one registry). */
    for (int i = 0; i < e->nworkers; i++)
        worker_post(&e->workers[i], e->ops.resync, NULL, 0, 0);
    e->cleanup_due = 0;
}

/* Every second: this node's liveness key; every node_ttl_s/2 the clean-up
 * of dead nodes and expired blocks. */
static void on_tick(uv_timer_t *t) {
    struct redis_engine *e = t->data;
    if (!atomic_load(&e->up))
        return;
    char k[160], now_s[24];
    int ttl = e->cfg->node_ttl_s;
    cluster_key(e, k, sizeof(k), "node:", e->node);
    link_cmdk(e, k, on_reply, "SET liveness", "SET %s 1 EX %d", k, ttl);
    uint64_t now = uv_now(t->loop);
    if (now >= e->cleanup_due) {
        e->cleanup_due = now + (uint64_t)ttl * 1000 / 2;
        snprintf(now_s, sizeof(now_s), "%lld", (long long)time(NULL));
        registry_script(e, on_reply, "cleanup", RS_CLEANUP, now_s, NULL, NULL);
    }
}

static void on_mail(struct mailbox *mb, struct mail *m, void *data) {
    struct redis_engine *e = data;
    struct hub *h = e->hub;
    link_settle(e); /* a failed link's ticks are delivered before anything newer */
    bool up = atomic_load(&e->up) && link_live(e, e->cmd.ac);
    switch (m->type) {
    case RM_PUBLISH: {
        struct tick_in *in = m->ptr;
        if (up && e->inflight >= (uint32_t)e->cfg->max_inflight) {
            atomic_fetch_add(&e->inflight_full, 1);
            count_error(e, "link stalled", "redis.max_inflight ticks awaiting Redis");
            link_fail(e, "stalled: redis.max_inflight ticks awaiting Redis", true);
            up = false;
        }
        if (up && cluster_send_publish(e, in) == REDIS_OK)
            break;
        hub_publish_local(h, in); /* Redis is down, or went down meanwhile */
        free(in);
        break;
    }
    case RM_SYMBOL:
        cluster_reconcile(e, (uint32_t)m->a);
        break;
    case RM_NOTE:
        if (up)
            cluster_handle_note(e, m->ptr); /* while down, the resync on reconnect covers it */
        cluster_free_note(m->ptr);
        break;
    case RM_ADMIT: {
        struct redis_admit *a = m->ptr;
        if (up) {
            char lim[16];
            snprintf(lim, sizeof(lim), "%d", a->limit);
            if (registry_script(e, cluster_on_admit_reply, a, RS_ADMIT, e->node, a->user, lim) == REDIS_OK)
                break;
        }
        a->ok = true; /* local limits only */
        a->counted = false;
        if (worker_post(&e->workers[a->worker], e->ops.admit_result, a, 0, 0) < 0)
            free(a);
        break;
    }
    case RM_QUERY: {
        struct redis_query *q = m->ptr;
        char k[160], count[16];
        cluster_sym_key(e, k, sizeof(k), "history:", h->syms->names[q->sym]);
        snprintf(count, sizeof(count), "%u",
                 q->analysis || q->limit > h->history_size ? h->history_size : q->limit);
        if (!up || link_cmdk(e, k, cluster_on_query_reply, q, "XREVRANGE %s + - COUNT %s", k, count) != REDIS_OK) {
            cluster_answer_locally(e, q);
            cluster_query_free(q);
        }
        break;
    }
    case RM_RECOVER:
        cluster_recover(e, m->ptr);
        break;
    case RM_CONTROL: {
        char *msg = m->ptr;
        struct control_msg cm;
        if (up && control_parse(msg, strlen(msg), &cm) == 0) {
            char k[160], ip[64];
            cluster_key(e, k, sizeof(k), "control", NULL);
            link_cmdk(e, k, on_reply, "PUBLISH control", "%s %s %s", e->shards ? "SPUBLISH" : "PUBLISH", k, msg);
            cluster_key(e, k, sizeof(k), "blocked", NULL); /* the shared block list */
            ip16_format(&cm.ip, ip, sizeof(ip));
            if (cm.kind == 'B')
                link_cmdk(e, k, on_reply, "HSET blocked", "HSET %s %s %lld", k, ip,
                          cm.duration_s ? (long long)time(NULL) + cm.duration_s : 0LL);
            else if (cm.kind == 'U')
                link_cmdk(e, k, on_reply, "HDEL blocked", "HDEL %s %s", k, ip);
        }
        free(msg);
        break;
    }
    }
}

static void drop_mail(struct mail *m) {
    if (m->type == RM_NOTE)
        cluster_free_note(m->ptr);
    else if (m->type == RM_QUERY)
        cluster_query_free(m->ptr);
    else if (m->type == RM_RECOVER)
        ((struct recover_req *)m->ptr)->drop(m->ptr);
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

bool redis_engine_recover(struct redis_engine *e, struct recover_req *r) {
    struct mail m = {.type = RM_RECOVER, .ptr = r};
    return redis_engine_up(e) && mailbox_post(&e->inbox, &m) == 0;
}

void redis_engine_symbol_interest(struct redis_engine *e, uint32_t sym) { redis_engine_post(e, RM_SYMBOL, NULL, sym); }

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

/* A call of the rooms above awaiting its reply (the command's priv). */
struct pending_call {
    void (*appended)(void *priv, bool ok);
    void (*priced)(void *priv, double price);
    void *priv;
};

static void on_appended(redisAsyncContext *ac, void *r, void *p) {
    struct pending_call *c = p;
    redisReply *reply = r;
    c->appended(c->priv, reply && reply->type != REDIS_REPLY_ERROR);
    free(c);
}

/* GET last:<SYM> answered: "SYM|price|...". */
static void on_last_price(redisAsyncContext *ac, void *r, void *p) {
    struct pending_call *c = p;
    redisReply *reply = r;
    double price = 0;
    if (reply && reply->type == REDIS_REPLY_STRING) {
        char buf[64];
        const char *bar = memchr(reply->str, '|', reply->len);
        size_t l = bar ? reply->len - (size_t)(bar + 1 - reply->str) : 0;
        if (l) { /* the price field only: strtod stops at its '|' */
            l = l < sizeof(buf) ? l : sizeof(buf) - 1;
            memcpy(buf, bar + 1, l);
            buf[l] = '\0';
            price = strtod(buf, NULL);
        }
    }
    c->priced(c->priv, price > 0 ? price : 0);
    free(c);
}

int redis_engine_append(struct redis_engine *e, const char *stream, int nfields, const char **fields,
                        void (*done)(void *priv, bool ok), void *priv) {
    const char *argv[3 + 32];
    struct pending_call *c = NULL;
    if (!redis_engine_up(e) || nfields > 32 || !(c = calloc(1, sizeof(*c))))
        return -1;
    c->appended = done;
    c->priv = priv;
    argv[0] = "XADD";
    argv[1] = stream;
    argv[2] = "*";
    memcpy(argv + 3, fields, (size_t)nfields * sizeof(*fields));
    if (link_cmdk_argv(e, stream, on_appended, c, 3 + nfields, argv) != REDIS_OK) {
        free(c);
        return -1;
    }
    return 0;
}

int redis_engine_last_price(struct redis_engine *e, uint32_t sym, void (*done)(void *priv, double price), void *priv) {
    struct pending_call *c = NULL;
    if (!redis_engine_up(e) || !(c = calloc(1, sizeof(*c))))
        return -1;
    c->priced = done;
    c->priv = priv;
    char k[160];
    cluster_sym_key(e, k, sizeof(k), "last:", e->hub->syms->names[sym]);
    if (link_cmdk(e, k, on_last_price, c, "GET %s", k) != REDIS_OK) {
        free(c);
        return -1;
    }
    return 0;
}

static void announce(struct redis_engine *e, char *msg) {
    if (msg)
        redis_engine_post(e, RM_CONTROL, msg, 0);
}

void redis_engine_announce_block(struct redis_engine *e, const struct ip16 *ip, int64_t duration_s) {
    if (e->enabled)
        announce(e, control_block(e->node, ip, duration_s));
}

void redis_engine_announce_unblock(struct redis_engine *e, const struct ip16 *ip) {
    if (e->enabled)
        announce(e, control_unblock(e->node, ip));
}

void redis_engine_announce_broadcast(struct redis_engine *e, uint32_t roles, const char *frame_json) {
    if (e->enabled)
        announce(e, control_broadcast(e->node, roles, frame_json));
}

void redis_engine_announce_user_event(struct redis_engine *e, const char *user, bool portfolio_only,
                                      const char *event_json) {
    if (e->enabled)
        announce(e, control_user_event(e->node, user, portfolio_only, event_json));
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

int redis_engine_start(struct redis_engine *e, const struct redis_engine_env *env, const struct redis_engine_ops *ops) {
    memset(e, 0, sizeof(*e));
    e->cfg = env->cfg;
    e->loop = env->loop;
    e->hub = env->hub;
    e->guard = env->guard;
    e->events = env->events;
    e->workers = env->workers;
    e->nworkers = env->nworkers;
    e->ops = *ops;
    uv_loop_t *loop = e->loop;
    uint32_t nsyms = e->hub->syms->n;
    bool sentinel = e->cfg->sentinels[0] != '\0';
    if (!e->cfg->url[0] && !sentinel)
        return 0;
    if (e->cfg->url[0] && parse_url(e, e->cfg->url) < 0) {
        /* The URL may hold a password: name the key, not the value. */
        fprintf(stderr, "tickgate: redis.url: expected redis://[:password@]host[:port][/db]\n");
        free(e->password);
        return -1;
    }
    if (sentinel && sentinel_parse(e) < 0) { /* redis.url gave the password and db only */
        free(e->password);
        return -1;
    }
    if (e->cfg->cluster && e->db != 0) {
        fprintf(stderr, "tickgate: redis.url: a Redis Cluster has database 0 only (redis.cluster is true)\n");
        free(e->password);
        return -1;
    }
    if (e->cfg->cluster && shards_init(e) < 0) {
        free(e->password);
        return -1;
    }
    e->prefix = strdup(e->cfg->key_prefix);
    if (e->prefix && asprintf(&e->rprefix, "%s%s", e->prefix, e->shards ? REGISTRY_TAG : "") < 0)
        e->rprefix = NULL;
    e->subscribed = calloc(nsyms, sizeof(bool));
    e->catch_up = calloc(nsyms, sizeof(struct catch_up));
    e->echo = calloc((size_t)e->cfg->max_inflight, sizeof(struct echo_wait));
    if (!e->prefix || !e->rprefix || !e->subscribed || !e->catch_up || !e->echo || redis_scripts_sha(e->sha) < 0 ||
        mailbox_init(&e->inbox, loop, 65536, on_mail, e) < 0) {
        fprintf(stderr, "tickgate: cannot start the Redis engine: out of memory\n");
        shards_free(e);
        free(e->rprefix);
        free(e->prefix);
        free(e->subscribed);
        free(e->catch_up);
        free(e->echo);
        free(e->password);
        sentinel_free(e);
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
    if (sentinel)
        sentinel_start(e); /* the watch; the first connect asks the sentinels */
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
        cluster_key(e, k, sizeof(k), "node:", e->node);
        snprintf(now_s, sizeof(now_s), "%lld", (long long)time(NULL));
        link_cmdk(e, k, NULL, NULL, "DEL %s", k);
        registry_script(e, NULL, NULL, RS_CLEANUP, now_s, NULL, NULL);
        snprintf(k2, sizeof(k2), "%s:users", k);
        link_cmdk(e, k2, NULL, NULL, "DEL %s", k2);
    }
    e->stopping = true;
    atomic_store(&e->up, false);
    sentinel_stop(e);
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
        for (uint32_t s = 0; s < e->hub->syms->n; s++)
            cluster_catch_up_reset(&e->catch_up[s]);
    free(e->catch_up);
    while (e->echo_n)
        cluster_echo_pop(e);
    free(e->echo);
    free(e->prefix);
    free(e->rprefix);
    free(e->password);
    sentinel_free(e);
    shards_free(e);
    e->enabled = false;
}
