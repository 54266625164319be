/* blocks.c - blocking an IP on this node and the others, and the node's
 * connection count; see gateway.h. */
#include "gateway/gateway.h"

#include <string.h>

#include "auth/guard.h"
#include "base/audit.h"
#include "base/config.h"
#include "base/log.h"
#include "cluster/engine.h"
#include "net/websocket.h"
#include "ws/frame.h"

bool gateway_conn_reserve(struct gateway *gw) {
    long n = atomic_fetch_add(&gw->connections, 1);
    if (n >= gw->cfg->limits.max_connections) {
        atomic_fetch_sub(&gw->connections, 1);
        return false;
    }
    return true;
}

void gateway_conn_release(struct gateway *gw) { atomic_fetch_sub(&gw->connections, 1); }

/* On a worker: every connection of a blocked IP (a, b: its 16 bytes; an
 * IPv6 block covers its whole prefix): WebSockets, echo included, close
 * 1008; HTTP ones once their answers are out. */
static void run_block_ip(struct worker *w, void *ptr, uint64_t a, uint64_t b) {
    struct guard *g = gateway_of_worker(w)->guard;
    struct ip16 ip;
    memcpy(ip.b, &a, 8);
    memcpy(ip.b + 8, &b, 8);
    ip = guard_key(g, &ip);
    for (struct conn *c = w->conns; c; c = c->next) {
        struct ip16 k = guard_key(g, &c->cip);
        if (c->closing || memcmp(k.b, ip.b, 16) != 0)
            continue;
        if (c->phase == PHASE_WS)
            ws_close(c, WS_CLOSE_POLICY, "IP blocked");
        else
            conn_http_end(c);
    }
}

static const struct worker_mail BLOCK_IP_MAIL = {"block_ip", run_block_ip, NULL};

/* Blocks here (saved: an admin's, kept in security.blocks_file), audits it
 * and closes the IP's connections on every worker. */
static void block_local(struct gateway *gw, const struct ip16 *ip, int64_t duration_s, const char *why, bool saved) {
    if (saved)
        guard_block_saved(gw->guard, ip, duration_s);
    else
        guard_block(gw->guard, ip, duration_s);
    char text[64];
    ip16_format(ip, text, sizeof(text));
    audit_event(gw->audit, "IP_BLOCKED", NULL, NULL, text,
                json_pack("{s:s, s:I}", "reason", why, "duration_s", (json_int_t)duration_s));
    uint64_t a, b;
    memcpy(&a, ip->b, 8);
    memcpy(&b, ip->b + 8, 8);
    for (int i = 0; i < gw->nworkers; i++)
        if (worker_post(&gw->workers[i], &BLOCK_IP_MAIL, NULL, a, b) < 0)
            log_error("worker %d: mailbox full; connections of a blocked IP stay until they reconnect", i);
}

/* block_local, then the same on every other node through Redis. */
static void block_everywhere(struct gateway *gw, const struct ip16 *ip, int64_t duration_s, const char *why,
                             bool saved) {
    if (duration_s < 0 || duration_s >= GUARD_FOREVER_S)
        duration_s = 0; /* until unblocked, here and in Redis (where now + it would wrap) */
    block_local(gw, ip, duration_s, why, saved);
    redis_engine_announce_block(gw->redis, ip, duration_s);
}

void gateway_block_ip(struct gateway *gw, const struct ip16 *ip, int64_t duration_s, const char *why) {
    block_everywhere(gw, ip, duration_s, why, false);
}

void gateway_block_ip_admin(struct gateway *gw, const struct ip16 *ip, int64_t duration_s) {
    block_everywhere(gw, ip, duration_s, "admin", true);
}

void gateway_block_ip_local(struct gateway *gw, const struct ip16 *ip, int64_t duration_s, const char *why) {
    block_local(gw, ip, duration_s, why, false);
}
