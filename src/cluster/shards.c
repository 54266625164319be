/* shards.c - the engine on Redis Cluster: seeds, the slot map, one
 * command and one sharded pub/sub link per primary, routing by key; see
 * shards.h. Main loop only. */
#include "cluster/shards.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "cluster/internal.h"

static int cmd_on(struct redis_engine *e, struct redis_link *l, redisCallbackFn *fn, void *priv, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

struct shard {
    struct redis_engine *e;
    struct redis_link cmd;          /* hiredis async: commands and scripts */
    struct shard_sub sub;           /* SSUBSCRIBE */
    char beat[200];                 /* this node's beat channel, in a slot this primary owns */
};

struct shards {
    struct slot_map map;            /* the last map read */
    struct shard sh[SHARDS_MAX];
    int n;                          /* primaries with links (the map's, once read) */
    struct { char host[256]; int port; } seed[SHARDS_MAX + 1]; /* [0]: redis.url */
    int nseeds, next;
};

int shards_init(struct redis_engine *e) {
    struct shards *s = calloc(1, sizeof(*s));
    if (!s) {
        fprintf(stderr, "tickgate: cannot start the Redis engine: out of memory\n");
        return -1;
    }
    snprintf(s->seed[0].host, sizeof(s->seed[0].host), "%s", e->host);
    s->seed[0].port = e->port;
    s->nseeds = 1;
    e->shards = s;
    return 0;
}

void shards_free(struct redis_engine *e) {
    free(e->shards);
    e->shards = NULL;
}

void shards_next_seed(struct redis_engine *e) {
    struct shards *s = e->shards;
    int i = s->next++ % s->nseeds;
    snprintf(e->host, sizeof(e->host), "%s", s->seed[i].host);
    e->port = s->seed[i].port;
}

static struct shard *shard_of_ac(const struct redis_engine *e, const redisAsyncContext *ac) {
    struct shards *s = e->shards;
    for (int i = 0; s && ac && i < s->n; i++)
        if (s->sh[i].cmd.ac == ac)
            return &s->sh[i];
    return NULL;
}

bool shards_live(const struct redis_engine *e, const redisAsyncContext *ac) {
    struct shard *sh = shard_of_ac(e, ac);
    return sh && !sh->cmd.dead;
}

bool shards_open(const struct redis_engine *e) {
    struct shards *s = e->shards;
    for (int i = 0; s && i < s->n; i++)
        if (s->sh[i].cmd.ac || s->sh[i].sub.open)
            return true;
    return false;
}

bool link_sub_live(const struct redis_engine *e) {
    struct shards *s = e->shards;
    if (!s)
        return link_live(e, e->sub.ac);
    for (int i = 0; i < s->n; i++)
        if (!s->sh[i].sub.ready || s->sh[i].sub.failed)
            return false;
    return s->n > 0;
}

/* Every link of every primary answered its handshake: the engine is up. */
static void check_ready(struct redis_engine *e) {
    struct shards *s = e->shards;
    for (int i = 0; i < s->n; i++)
        if (!s->sh[i].cmd.ready || !s->sh[i].sub.ready)
            return;
    log_info("redis: cluster map read: %d primaries", s->n);
    redis_engine_became_up(e);
}

static void on_shard_ping(redisAsyncContext *ac, void *r, void *priv) {
    struct redis_engine *e = ac->data;
    redisReply *reply = r;
    struct shard *sh = shard_of_ac(e, ac);
    if (!reply || !sh || sh->cmd.dead)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        count_error(e, "handshake refused", reply->str);
        link_fail(e, "handshake refused", false);
        return;
    }
    sh->cmd.ready = true;
    check_ready(e);
}

void shards_on_connect(struct redis_engine *e, redisAsyncContext *ac) {
    redisAsyncCommand(ac, on_shard_ping, NULL, "PING");
}

/* The sub links' callbacks (shardsub.h). */
static void sub_ready(struct shard_sub *sub) {
    struct shard *sh = sub->data;
    shard_sub_send(sub, "SSUBSCRIBE", sh->beat); /* the watchdog's proof that this link hears */
    check_ready(sh->e);
}

static void sub_reply(struct shard_sub *sub, struct redisReply *r) {
    struct shard *sh = sub->data;
    cluster_on_pubsub(sh->e, r);
}

static void sub_fail(struct shard_sub *sub, const char *why, const char *detail) {
    struct shard *sh = sub->data;
    count_error(sh->e, why, detail);
    link_fail(sh->e, why, false);
}

static void sub_closed(struct shard_sub *sub) {
    struct shard *sh = sub->data;
    link_after_gone(sh->e);
}

/* Opens primary i's two links. False when one cannot even start. */
static bool open_shard(struct redis_engine *e, int i) {
    struct shards *s = e->shards;
    struct shard *sh = &s->sh[i];
    char tag[16];
    memset(sh, 0, sizeof(*sh));
    sh->e = e;
    sh->cmd.e = e;
    if (slot_tag_for(&s->map, i, tag, sizeof(tag)) < 0)
        return false;
    snprintf(sh->beat, sizeof(sh->beat), "%sbeat:{%s}:%s", e->prefix, tag, e->node);
    sh->sub.data = sh;
    sh->sub.ready_cb = sub_ready;
    sh->sub.reply_cb = sub_reply;
    sh->sub.fail_cb = sub_fail;
    sh->sub.closed_cb = sub_closed;
    s->n = i + 1; /* its links count from here on */
    return link_open(e, &sh->cmd, s->map.at[i].host, s->map.at[i].port) &&
           shard_sub_open(&sh->sub, e->loop, s->map.at[i].host, s->map.at[i].port, e->password,
                          e->cfg->timeout_ms) == 0;
}

/* CLUSTER INFO: the cluster must serve every slot now. */
static void on_info(redisAsyncContext *ac, void *r, void *priv) {
    struct redis_engine *e = ac->data;
    redisReply *reply = r;
    if (!reply || !link_live(e, ac))
        return;
    if (reply->type != REDIS_REPLY_STRING || !strstr(reply->str, "cluster_state:ok")) {
        count_error(e, "cluster not ready", reply->type == REDIS_REPLY_ERROR ? reply->str : "cluster_state is not ok");
        link_fail(e, "cluster not ready", false);
    }
}

static void on_slots(redisAsyncContext *ac, void *r, void *priv) {
    struct redis_engine *e = ac->data;
    struct shards *s = e->shards;
    const char *why = NULL;
    if (!r || !link_live(e, ac))
        return;
    if (((redisReply *)r)->type == REDIS_REPLY_ERROR || slot_map_parse(r, e->host, &s->map, &why) < 0) {
        count_error(e, "cluster map refused", why ? why : ((redisReply *)r)->str);
        link_fail(e, "cluster map refused", false);
        return;
    }
    /* The next attempts may start from any primary of this map. */
    s->nseeds = 1;
    for (int i = 0; i < s->map.n; i++) {
        memcpy(s->seed[s->nseeds].host, s->map.at[i].host, sizeof(s->map.at[i].host)); /* NUL within: slots.c */
        s->seed[s->nseeds++].port = s->map.at[i].port;
    }
    for (int i = 0; i < s->map.n; i++)
        if (!open_shard(e, i)) {
            count_error(e, "connect failed", s->map.at[i].host);
            link_fail(e, "connect failed", false);
            return;
        }
}

void shards_ask_map(struct redis_engine *e) {
    link_cmd(e, on_info, NULL, "CLUSTER INFO");
    link_cmd(e, on_slots, NULL, "CLUSTER SLOTS");
}

bool shards_mark_dead(struct redis_engine *e) {
    struct shards *s = e->shards;
    bool marked = false;
    for (int i = 0; s && i < s->n; i++) {
        struct shard *sh = &s->sh[i];
        sh->cmd.ready = false;
        if (sh->cmd.ac && !sh->cmd.dead) {
            sh->cmd.dead = true;
            marked = true;
        }
        if (sh->sub.open && !sh->sub.failed) {
            sh->sub.failed = true; /* its messages no longer count */
            marked = true;
        }
        sh->sub.ready = false;
    }
    return marked;
}

bool shards_dead(const struct redis_engine *e) {
    struct shards *s = e->shards;
    for (int i = 0; i < s->n; i++)
        if ((s->sh[i].cmd.ac && s->sh[i].cmd.dead) || (s->sh[i].sub.open && s->sh[i].sub.failed && !s->sh[i].sub.closing))
            return true;
    return false;
}

void shards_reap(struct redis_engine *e) {
    struct shards *s = e->shards;
    for (int i = 0; s && i < s->n; i++) {
        struct shard *sh = &s->sh[i];
        if (sh->cmd.ac && sh->cmd.dead)
            redisAsyncFree(sh->cmd.ac); /* pending callbacks run with no reply */
        if (sh->sub.failed)
            shard_sub_close(&sh->sub);
    }
}

void shards_stop(struct redis_engine *e) {
    struct shards *s = e->shards;
    for (int i = 0; s && i < s->n; i++) {
        struct shard *sh = &s->sh[i];
        sh->sub.failed = true;
        shard_sub_close(&sh->sub);
        if (sh->cmd.ac && sh->cmd.ready && !sh->cmd.dead) {
            sh->cmd.dead = true; /* queued commands (this node's clean-up) are sent first */
            redisAsyncDisconnect(sh->cmd.ac);
        } else if (sh->cmd.ac) {
            sh->cmd.dead = true;
            redisAsyncFree(sh->cmd.ac);
        }
    }
}

bool shards_watch(struct redis_engine *e, uint64_t now, uint64_t timeout) {
    struct shards *s = e->shards;
    bool up = atomic_load(&e->up);
    for (int i = 0; i < s->n; i++) {
        struct shard *sh = &s->sh[i];
        bool cmd_late = sh->cmd.ac && !sh->cmd.dead && now - sh->cmd.progress_ms > timeout &&
                        (!sh->cmd.ready || sh->cmd.ac->replies.head);
        bool sub_late = sh->sub.open && !sh->sub.failed && now - sh->sub.progress_ms > timeout &&
                        (!sh->sub.ready || up);
        if (cmd_late || sub_late) {
            count_error(e, "link stalled", s->map.at[i].host);
            link_fail(e, "stalled: a cluster primary did not answer within redis.timeout_ms", true);
            return true;
        }
    }
    for (int i = 0; up && i < s->n; i++)
        cmd_on(e, &s->sh[i].cmd, redis_engine_on_reply, "beat", "SPUBLISH %s 1", s->sh[i].beat);
    return false;
}

static int cmd_on(struct redis_engine *e, struct redis_link *l, redisCallbackFn *fn, void *priv, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = link_vcmd_link(e, l, fn, priv, fmt, ap);
    va_end(ap);
    return rc;
}

static struct redis_link *route(struct redis_engine *e, const char *key) {
    struct shards *s = e->shards;
    if (!s)
        return &e->cmd;
    if (s->n == 0)
        return NULL;
    int i = s->map.owner[slot_of(key, strlen(key))];
    return i < s->n ? &s->sh[i].cmd : NULL;
}

int link_cmdk(struct redis_engine *e, const char *key, redisCallbackFn *fn, void *priv, const char *fmt, ...) {
    struct redis_link *l = route(e, key);
    if (!l)
        return REDIS_ERR;
    va_list ap;
    va_start(ap, fmt);
    int rc = link_vcmd_link(e, l, fn, priv, fmt, ap);
    va_end(ap);
    return rc;
}

int link_cmdk_argv(struct redis_engine *e, const char *key, redisCallbackFn *fn, void *priv, int argc,
                   const char **argv) {
    struct redis_link *l = route(e, key);
    redisAsyncContext *ac = l ? link_cmd_ac(e, l) : NULL;
    return ac ? redisAsyncCommandArgv(ac, fn, priv, argc, argv, NULL) : REDIS_ERR;
}

void link_cmd_each(struct redis_engine *e, redisCallbackFn *fn, void *priv, const char *fmt, ...) {
    struct shards *s = e->shards;
    int n = s ? s->n : 1;
    for (int i = 0; i < n; i++) {
        va_list ap;
        va_start(ap, fmt);
        link_vcmd_link(e, s ? &s->sh[i].cmd : &e->cmd, fn, priv, fmt, ap);
        va_end(ap);
    }
}

void link_subscribe(struct redis_engine *e, const char *channel, bool on) {
    struct shards *s = e->shards;
    if (!s) {
        redisAsyncCommand(e->sub.ac, on ? cluster_on_message : NULL, NULL, on ? "SUBSCRIBE %s" : "UNSUBSCRIBE %s",
                          channel);
        return;
    }
    int i = s->map.owner[slot_of(channel, strlen(channel))];
    if (i < s->n && shard_sub_send(&s->sh[i].sub, on ? "SSUBSCRIBE" : "SUNSUBSCRIBE", channel) < 0)
        link_fail(e, "pub/sub write failed", false);
}
