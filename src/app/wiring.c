/* wiring.c - the rooms' observers and ops, pointed at each other; see
 * wiring.h. */
#include "app/wiring.h"

#include <stdlib.h>

#include "app/server.h"
#include "gateway/admin.h"
#include "gateway/protocol.h"
#include "gateway/session.h"
#include "gateway/router.h"

static bool hub_to_cluster(void *e, const struct tick_in *in) { return redis_engine_publish(e, in); }
static void interest_to_cluster(void *e, uint32_t sym) { redis_engine_symbol_interest(e, sym); }
static bool recover_to_cluster(void *e, struct recover_req *r) { return redis_engine_recover(e, r); }
static void tick_to_broker(void *b, uint32_t sym, double price) { broker_tick(b, sym, price); }

static void user_event_to_cluster(void *e, const char *user, bool portfolio_only, const char *event_json) {
    redis_engine_announce_user_event(e, user, portfolio_only, event_json);
}


void wiring_hub(struct server *srv) {
    bool cluster = srv->redis.enabled;
    struct hub_observers obs = {
        .publish = cluster ? hub_to_cluster : NULL,
        .publish_ctx = &srv->redis,
        .interest = cluster ? interest_to_cluster : NULL,
        .interest_ctx = &srv->redis,
        .on_tick = tick_to_broker,
        .tick_ctx = &srv->broker,
        .recover = cluster ? recover_to_cluster : NULL,
        .recover_ctx = &srv->redis,
    };
    hub_set_workers(&srv->hub, srv->workers, srv->nworkers);
    hub_set_delay(&srv->hub, (int64_t)srv->cfg.feed.delay_s * 1000);
    hub_set_observers(&srv->hub, &obs);
    srv->events = (struct user_events){
        .workers = srv->workers,
        .nworkers = srv->nworkers,
        .announce = cluster ? user_event_to_cluster : NULL,
        .announce_ctx = &srv->redis,
        .user_of = session_user,
    };
}

/* The engine's calls up: another node's block and broadcast, a shared
 * query's answer. */
static void block_from_cluster(void *gw, const struct ip16 *ip, int64_t duration_s) {
    gateway_block_ip_local(gw, ip, duration_s, "cluster");
}

static void broadcast_from_cluster(void *gw, json_t *msg, uint32_t roles) { admin_broadcast_local(gw, msg, roles); }

static void answer_from_cluster(void *gw, const struct redis_query *q, const struct tick *t, uint32_t n) {
    char *text = q->analysis ? protocol_analysis_text(gw, q->sym, t, n, q->window_s, q->id_json)
                             : protocol_history_text(gw, q->sym, t, n, q->id_json);
    if (text)
        protocol_reply_later(gw, q->worker, q->conn_id, text);
}

/* The broker's calls out: the late reply, the order store in Redis. */
static void reply_from_broker(void *gw, int worker, uint64_t conn_id, char *text) {
    protocol_reply_later(gw, worker, conn_id, text);
}

static int store_append(void *e, const char *stream, int nfields, const char **fields, void (*done)(void *, bool),
                        void *priv) {
    return redis_engine_append(e, stream, nfields, fields, done, priv);
}

static int store_last_price(void *e, uint32_t sym, void (*done)(void *, double), void *priv) {
    return redis_engine_last_price(e, sym, done, priv);
}

static int start_broker(struct server *srv) {
    bool cluster = srv->redis.enabled;
    struct broker_env env = {
        .cfg = &srv->cfg.trade,
        .loop = &srv->loop,
        .hub = &srv->hub,
        .events = &srv->events,
        .audit = &srv->audit,
        .instance = srv->instance,
    };
    struct broker_ops ops = {
        .ctx = &srv->gw,
        .reply = reply_from_broker,
        .store = &srv->redis,
        .append = cluster ? store_append : NULL,
        .last_price = cluster ? store_last_price : NULL,
    };
    return broker_start(&srv->broker, &env, &ops);
}

int wiring_start(struct server *srv) {
    struct redis_engine_env env = {
        .cfg = &srv->cfg.redis,
        .loop = &srv->loop,
        .hub = &srv->hub,
        .guard = &srv->guard,
        .events = &srv->events,
        .workers = srv->workers,
        .nworkers = srv->nworkers,
    };
    struct redis_engine_ops ops = {
        .resync = &PROTOCOL_RESYNC_MAIL,
        .admit_result = &ROUTER_ADMIT_MAIL,
        .recover_result = &PROTOCOL_RECOVER_MAIL,
        .ctx = &srv->gw,
        .block_local = block_from_cluster,
        .broadcast_local = broadcast_from_cluster,
        .answer_query = answer_from_cluster,
    };
    if (redis_engine_start(&srv->redis, &env, &ops) < 0 || start_broker(srv) < 0)
        return -1;
    wiring_hub(srv);
    return 0;
}
