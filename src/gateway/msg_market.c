/* msg_market.c - the market-data queries: get_history (the last ticks of
 * a symbol) and analysis (OHLC, VWAP and volume over a window), and the
 * text of their replies, shared with the Redis path (protocol.h). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/engine.h"
#include "gateway/protocol_internal.h"
#include "net/conn.h"
#include "net/worker.h"
#include "pubsub/hub.h"
#include "pubsub/tick.h"

char *protocol_history_text(struct gateway *gw, uint32_t sym, const struct tick *t, uint32_t n, const char *id_json) {
    const char *name = gw->syms->names[sym];
    size_t cap = 128 + strlen(name) + (size_t)n * (TICK_JSON_MAX + 1) + (id_json ? strlen(id_json) : 0);
    char *out = malloc(cap);
    if (!out)
        return NULL;
    size_t o = (size_t)snprintf(out, cap, "{\"type\":\"history\",\"symbol\":\"%s\",\"updates\":[", name);
    for (uint32_t i = 0; i < n; i++) {
        if (i)
            out[o++] = ',';
        o += tick_format(out + o, name, &t[i], false);
    }
    out[o++] = ']';
    if (id_json)
        o += (size_t)snprintf(out + o, cap - o, ",\"id\":%s", id_json);
    out[o++] = '}';
    out[o] = '\0';
    return out;
}

/* The analysis of the window_s seconds up to asof_ms (wall). */
static char *analysis_text(struct gateway *gw, uint32_t sym, const struct tick *t, uint32_t n, int window_s,
                           int64_t asof_ms, const char *id_json) {
    struct analysis a;
    hub_analyze(t, n, asof_ms, window_s, &a);
    json_t *o = json_pack("{s:s, s:s, s:i, s:f, s:f, s:f, s:f, s:f, s:f, s:i}", "type", "analysis_result", "symbol",
                          gw->syms->names[sym], "window_s", window_s, "open", a.open, "high", a.high, "low", a.low,
                          "close", a.close, "vwap", a.vwap, "volume", a.volume, "count", (int)a.count);
    if (o && id_json) {
        json_t *id = json_loads(id_json, JSON_DECODE_ANY, NULL);
        if (id)
            json_object_set_new(o, "id", id);
    }
    return proto_dump(o);
}

char *protocol_analysis_text(struct gateway *gw, uint32_t sym, const struct tick *t, uint32_t n, int window_s,
                             const char *id_json) {
    return analysis_text(gw, sym, t, n, window_s, hub_now_ms(), id_json);
}

/* get_history and analysis: from the shared stream when Redis is up, else
 * from this node's ring. */
void msg_query(struct conn *c, json_t *msg, json_t *id, bool analysis) {
    struct gateway *gw = gateway_of(c);
    int sym = proto_query_symbol(c, msg, id);
    long v;
    if (sym < 0 || !(analysis ? proto_int_field(c, msg, "window_s", 1, 3600, 300, &v, id)
                              : proto_int_field(c, msg, "limit", 1, 1000, 100, &v, id)))
        return;
    enum entitlement ent = proto_entitlement(c, (uint32_t)sym);
    if (ent == ENT_NONE) {
        proto_not_entitled(c, (uint32_t)sym, NE_QUERY, id);
        return;
    }
    /* A delayed client sees only ticks delay_s old: from this node's ring,
     * which every node fills from the same source timestamps. */
    int64_t now = hub_now_ms(), before = ent == ENT_DELAYED ? now - gw->hub->delay_ms : INT64_MAX;
    if (ent == ENT_REALTIME && redis_engine_up(gw->redis)) {
        struct redis_query *q = calloc(1, sizeof(*q));
        if (q) {
            q->worker = c->w->id;
            q->conn_id = c->id;
            q->id_json = proto_id_text(id);
            q->analysis = analysis;
            q->sym = (uint32_t)sym;
            q->limit = analysis ? 0 : (uint32_t)v;
            q->window_s = analysis ? (int)v : 0;
            if (redis_engine_post(gw->redis, RM_QUERY, q, 0) == 0)
                return;
        }
    }
    uint32_t cap = analysis ? gw->hub->history_size : (uint32_t)v;
    struct tick *t = malloc(sizeof(*t) * cap);
    char *idj = proto_id_text(id);
    char *text = NULL;
    if (t) {
        uint32_t n = hub_history_before(gw->hub, (uint32_t)sym, cap, before, t);
        text = analysis ? analysis_text(gw, (uint32_t)sym, t, n, (int)v, before < now ? before : now, idj)
                        : protocol_history_text(gw, (uint32_t)sym, t, n, idj);
    }
    free(t);
    free(idj);
    if (!text) {
        proto_send_error(c, "internal_error", "out of memory", id);
        return;
    }
    proto_send_text(c, text);
    free(text);
}
