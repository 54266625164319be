/* ready.c - /ready and the reconnect advisory; see ready.h. */
#include "gateway/ready.h"

#include <stdio.h>
#include <string.h>

#include "base/config.h"
#include "cluster/engine.h"
#include "gateway/gateway.h"
#include "gateway/protocol_internal.h"
#include "net/conn.h"

const char *gateway_not_ready(const struct gateway *gw) {
    if (atomic_load(gw->shutting_down))
        return "draining";
    if (!atomic_load(&gw->serving))
        return "starting";
    if (gw->redis->enabled && !atomic_load(&gw->redis->synced))
        return "redis_sync";
    return NULL;
}

void ready_respond(struct conn *c, bool keep_alive) {
    const char *why = gateway_not_ready(gateway_of(c));
    char body[96];
    if (why)
        snprintf(body, sizeof(body), "{\"ready\":false,\"reason\":\"%s\"}", why);
    else
        snprintf(body, sizeof(body), "{\"ready\":true}");
    conn_http_respond(c, why ? 503 : 200, "application/json", body, strlen(body),
                      why ? "Cache-Control: no-store\r\nRetry-After: 1\r\n" : "Cache-Control: no-store\r\n",
                      keep_alive);
}

/* splitmix64: the jitter needs spread, not secrecy. */
static uint64_t mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

void ready_lame_duck(struct conn *c) {
    struct gateway *gw = gateway_of(c);
    uint64_t span = (uint64_t)gw->cfg->server.shutdown_grace_ms / 2;
    uint64_t r = mix(c->id ^ ((uint64_t)gw->instance << 32) ^ uv_hrtime());
    char text[64];
    snprintf(text, sizeof(text), "{\"type\":\"reconnect\",\"after_ms\":%llu}",
             (unsigned long long)(span ? r % (span + 1) : 0));
    proto_send_text(c, text);
}
