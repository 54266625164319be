/* state.c - what the cluster keeps for the rooms above: persisted
 * connections (notes), cluster-wide admission, the shared block list and
 * control messages, shared history queries. See cluster/internal.h. */

#include "cluster/control.h"
#include "cluster/internal.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/guard.h"
#include "net/worker.h"
#include "pubsub/hub.h"
#include "pubsub/userevents.h"

void cluster_query_free(struct redis_query *q) {
    free(q->id_json);
    free(q);
}

/* Answers q from ticks (oldest first): the gateway formats the reply. */
static void answer_query(struct redis_engine *e, struct redis_query *q, const struct tick *t, uint32_t n) {
    e->ops.answer_query(e->ops.ctx, q, t, n);
}

/* Answers q from this node's own ring (Redis unavailable). */
void cluster_answer_locally(struct redis_engine *e, struct redis_query *q) {
    uint32_t cap = q->analysis ? e->hub->history_size : q->limit;
    struct tick *t = malloc(sizeof(*t) * (cap ? cap : 1));
    if (t) {
        uint32_t n = hub_history(e->hub, q->sym, cap, t);
        answer_query(e, q, t, n);
        free(t);
    }
}

/* XREVRANGE reply: [[id, ["t", msg]], ...] newest first. */
void cluster_on_query_reply(redisAsyncContext *ac, void *r, void *priv) {
    struct redis_engine *e = ac->data;
    struct redis_query *q = priv;
    redisReply *reply = r;
    if (!reply || reply->type != REDIS_REPLY_ARRAY) {
        if (reply && reply->type == REDIS_REPLY_ERROR)
            count_error(e, "history query", reply->str);
        cluster_answer_locally(e, q);
        cluster_query_free(q);
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
        if (cluster_parse_tick(e, fields->element[1]->str, fields->element[1]->len, &t[got], &first, NULL) == (int)q->sym)
            got++;
    }
    if (t)
        answer_query(e, q, t, got);
    free(t);
    cluster_query_free(q);
}

void cluster_apply_control(struct redis_engine *e, const char *msg, size_t len) {
    struct control_msg m;
    if (control_parse(msg, len, &m) < 0 || strcmp(m.node, e->node) == 0)
        return; /* not one, or our own: already applied here */
    json_t *j;
    switch (m.kind) {
    case 'B':
        e->ops.block_local(e->ops.ctx, &m.ip, m.duration_s);
        break;
    case 'U':
        guard_unblock(e->guard, &m.ip);
        break;
    case 'E':
        if ((j = json_loadb(m.json, m.json_len, 0, NULL)))
            user_event_send(e->events, m.user, j, m.portfolio_only, false);
        break;
    case 'M':
        if ((j = json_loadb(m.json, m.json_len, 0, NULL)))
            e->ops.broadcast_local(e->ops.ctx, j, m.roles);
        break;
    }
}

/* HGETALL of the shared block list (at connect): the live blocks apply
 * here too. Its answer, the last of the connect's state, completes the
 * node's first sync (/ready): a node never reports ready while it would
 * still admit an IP the cluster has blocked. */
void cluster_on_blocked_list(redisAsyncContext *ac, void *r, void *priv) {
    struct redis_engine *e = ac->data;
    redisReply *reply = r;
    if (reply && link_live(e, ac))
        atomic_store(&e->synced, true);
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
            guard_block(e->guard, &ip, until ? until - now : 0);
    }
}

/* The admission script's answer, handed to the asking worker. */
void cluster_on_admit_reply(redisAsyncContext *ac, void *r, void *priv) {
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
    if (worker_post(&e->workers[a->worker], e->ops.admit_result, a, 0, 0) < 0)
        free(a);
}

void cluster_handle_note(struct redis_engine *e, struct redis_note *n) {
    char conns[160], subs[160], node[160], set[200], users[200];
    cluster_key(e, conns, sizeof(conns), "connections", NULL);
    cluster_key(e, subs, sizeof(subs), "subscriptions", NULL);
    cluster_key(e, node, sizeof(node), "node:", e->node);
    snprintf(set, sizeof(set), "%s:clients", node);
    snprintf(users, sizeof(users), "%s:users", node);
    switch (n->kind) {
    case NOTE_OPEN:
        link_cmdk(e, conns, on_reply, "HSET connections", "HSET %s %s %s", conns, n->cid, n->text);
        link_cmdk(e, set, on_reply, "SADD clients", "SADD %s %s", set, n->cid);
        if (n->resync && n->user)
            link_cmdk(e, users, on_reply, "HINCRBY users", "HINCRBY %s %s 1", users, n->user);
        break;
    case NOTE_SUBS:
        link_cmdk(e, subs, on_reply, "HSET subscriptions", "HSET %s %s %s", subs, n->cid, n->text);
        break;
    case NOTE_RELEASE_USER:
        if (n->user)
            link_cmdk(e, users, on_reply, "release user", "EVALSHA %s 1 %s %s", e->sha[RS_RELEASE], users, n->user);
        break;
    case NOTE_CLOSE:
        link_cmdk(e, conns, on_reply, "HDEL connections", "HDEL %s %s", conns, n->cid);
        link_cmdk(e, subs, on_reply, "HDEL subscriptions", "HDEL %s %s", subs, n->cid);
        link_cmdk(e, set, on_reply, "SREM clients", "SREM %s %s", set, n->cid);
        if (n->user)
            link_cmdk(e, users, on_reply, "release user", "EVALSHA %s 1 %s %s", e->sha[RS_RELEASE], users, n->user);
        break;
    }
}

void cluster_free_note(struct redis_note *n) {
    free(n->text);
    free(n->user);
    free(n);
}
