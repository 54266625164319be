/* wiring.c - the rooms' observers and ops, pointed at each other; see
 * wiring.h. */
#include "app/wiring.h"

#include "app/server.h"

static bool hub_to_cluster(void *e, const struct tick_in *in) { return redis_engine_publish(e, in); }
static void interest_to_cluster(void *e, uint32_t sym) { redis_engine_symbol_interest(e, sym); }
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
    };
    hub_set_workers(&srv->hub, srv->workers, srv->nworkers);
    hub_set_observers(&srv->hub, &obs);
    srv->events = (struct user_events){
        .workers = srv->workers,
        .nworkers = srv->nworkers,
        .announce = cluster ? user_event_to_cluster : NULL,
        .announce_ctx = &srv->redis,
    };
}
