/* recover.c - recovery's cluster side (PROTOCOL.md section 13): a
 * subscribe's epochs and replays from the shared epoch keys and history
 * streams, one RECOVER script per symbol, answered to the asking worker.
 * See pubsub/replay.h and cluster/internal.h. */

#include "cluster/internal.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/worker.h"
#include "pubsub/hub.h"
#include "pubsub/replay.h"

const char *cluster_epoch_tag(struct redis_engine *e) {
    size_t n = strlen(e->hub->local_epoch);
    return e->hub->local_epoch + (n > 8 ? n - 8 : 0); /* its random end */
}

static void answer(struct redis_engine *e, struct recover_req *r) {
    if (worker_post(&e->workers[r->worker], r->mail ? r->mail : e->ops.recover_result, r, 0, 0) < 0)
        r->drop(r);
}

/* Fills it from the script's {epoch, seq, entries}: recovered only when
 * the client's epoch is the current one and the entries are exactly the
 * ticks after its seq, consecutive, all of that epoch. False when the
 * reply is not one (the caller answers from this node instead). */
static bool take_reply(struct redis_engine *e, struct recover_item *it, redisReply *reply) {
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING || reply->element[0]->len > HUB_EPOCH_MAX ||
        reply->element[1]->type != REDIS_REPLY_STRING || reply->element[2]->type != REDIS_REPLY_ARRAY)
        return false;
    const char *ep = reply->element[0]->str;
    uint64_t seq = strtoull(reply->element[1]->str, NULL, 10);
    redisReply *entries = reply->element[2];
    it->recovered = false;
    if (it->want && strcmp(ep, it->epoch) == 0 && it->after <= seq && seq - it->after == entries->elements &&
        (it->t = malloc(sizeof(struct tick) * (entries->elements ? entries->elements : 1)))) {
        uint32_t n = 0;
        for (size_t i = 0; i < entries->elements; i++) {
            redisReply *en = entries->element[i], *f;
            char tep[HUB_EPOCH_MAX + 1];
            double first;
            if (en->type != REDIS_REPLY_ARRAY || en->elements != 2 || (f = en->element[1])->type != REDIS_REPLY_ARRAY ||
                f->elements != 2 || f->element[1]->type != REDIS_REPLY_STRING ||
                cluster_parse_tick(e, f->element[1]->str, f->element[1]->len, &it->t[n], &first, tep) != (int)it->sym ||
                it->t[n].seq != it->after + 1 + n || strcmp(tep, ep) != 0)
                break; /* a hole or another numbering: never a silent gap */
            n++;
        }
        it->n = n;
        it->recovered = n == entries->elements;
    }
    memcpy(it->epoch, ep, reply->element[0]->len + 1);
    return true;
}

/* A reply's priv is its item; until answered, the item's n holds its
 * index, which leads back to the request (on a cluster the symbols'
 * primaries answer in any order). */
static struct recover_req *req_of(struct recover_item *it) {
    return (struct recover_req *)((char *)(it - it->n) - offsetof(struct recover_req, items));
}

static void on_recover_reply(redisAsyncContext *ac, void *rep, void *priv) {
    struct redis_engine *e = ac->data;
    struct recover_item *it = priv;
    struct recover_req *r = req_of(it);
    it->n = 0;
    r->answered++;
    if (!take_reply(e, it, link_live(e, ac) ? rep : NULL)) {
        if (rep && ((redisReply *)rep)->type == REDIS_REPLY_ERROR)
            count_error(e, "recover script", ((redisReply *)rep)->str);
        replay_fill_item(e->hub, it); /* this one from this node's ring */
    }
    if (r->answered == r->sent)
        answer(e, r);
}

/* One script per symbol on the command link (answered in order). What
 * cannot be sent is answered from this node. */
void cluster_recover(struct redis_engine *e, struct recover_req *r) {
    struct hub *h = e->hub;
    r->sent = r->answered = 0;
    bool up = atomic_load(&e->up) && link_live(e, e->cmd.ac);
    for (uint32_t i = 0; i < r->n; i++) {
        struct recover_item *it = &r->items[i];
        const char *name = h->syms->names[it->sym];
        char k1[128], k2[128], k3[128], from[24] = "", count[16];
        cluster_sym_key(e, k1, sizeof(k1), "epoch:", name);
        cluster_sym_key(e, k2, sizeof(k2), "history:", name);
        cluster_sym_key(e, k3, sizeof(k3), "seq:", name);
        if (it->want)
            snprintf(from, sizeof(from), "%llu", (unsigned long long)it->after + 1);
        snprintf(count, sizeof(count), "%u", h->history_size);
        it->n = i; /* req_of() */
        if (!up || link_cmdk(e, k1, on_recover_reply, it, "EVALSHA %s 3 %s %s %s %s %s %s", e->sha[RS_RECOVER], k1, k2, k3,
                            from, count, cluster_epoch_tag(e)) != REDIS_OK) {
            up = false;
            it->n = 0;
            replay_fill_item(h, it);
            continue;
        }
        r->sent++;
    }
    if (r->sent == 0)
        answer(e, r);
}
