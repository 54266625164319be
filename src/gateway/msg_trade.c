/* msg_trade.c - paper trading: trade (an order to the broker, answered
 * later from its thread) and portfolio_subscribe. Both need a user. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/protocol_internal.h"
#include "net/conn.h"
#include "net/worker.h"
#include "pubsub/tick.h"
#include "trade/broker.h"

void msg_portfolio_subscribe(struct conn *c, json_t *id) {
    if (!session_of(c)->user_id) {
        proto_refuse(c, "forbidden", "portfolio needs an authenticated user", id, SV_FORBIDDEN);
        return;
    }
    conn_subs(c)->portfolio = true;
    proto_reply(c, json_pack("{s:s}", "type", "portfolio_subscribed"), id);
    char *u = strdup(session_of(c)->user_id);
    if (u)
        broker_post(gateway_of(c)->broker, BM_PORTFOLIO, u, 0, 0);
}

void msg_trade(struct conn *c, json_t *msg, json_t *id) {
    struct gateway *gw = gateway_of(c);
    if (!session_of(c)->user_id) {
        proto_refuse(c, "forbidden", "trading needs an authenticated user", id, SV_FORBIDDEN);
        return;
    }
    int sym = proto_query_symbol(c, msg, id);
    if (sym < 0)
        return;
    if (proto_entitlement(c, (uint32_t)sym) == ENT_NONE) {
        proto_not_entitled(c, (uint32_t)sym, NE_TRADE, id);
        return;
    }
    const char *side = json_string_value(json_object_get(msg, "side"));
    const char *type = json_string_value(json_object_get(msg, "order_type"));
    json_t *qty = json_object_get(msg, "quantity"), *lim = json_object_get(msg, "limit_price");
    bool limit = type && !strcmp(type, "limit");
    const char *bad = NULL;
    if (!side || (strcmp(side, "buy") && strcmp(side, "sell")))
        bad = "side must be buy or sell";
    else if (!type || (strcmp(type, "market") && !limit))
        bad = "order_type must be market or limit";
    else if (!json_is_number(qty) || !(json_number_value(qty) >= ORDER_QUANTITY_MIN) ||
             json_number_value(qty) > ORDER_QUANTITY_MAX)
        bad = "quantity must be a number in 0.000001..1e9";
    else if (limit && (!json_is_number(lim) || !(json_number_value(lim) >= TICK_PRICE_MIN) ||
                       json_number_value(lim) > TICK_PRICE_MAX))
        bad = "limit orders need limit_price in 0.000001..1e12 (the prices a tick can have)";
    if (bad) {
        proto_refuse(c, "invalid_message", bad, id, SV_INVALID_MESSAGE);
        return;
    }
    struct order *o = calloc(1, sizeof(*o));
    if (!o) {
        proto_send_error(c, "internal_error", "out of memory", id);
        return;
    }
    o->worker = c->w->id;
    o->conn_id = c->id;
    o->reply_id = proto_id_text(id);
    snprintf(o->user, sizeof(o->user), "%s", session_of(c)->user_id);
    protocol_client_id(c, o->client, sizeof(o->client));
    o->sym = (uint32_t)sym;
    o->side = strcmp(side, "buy") ? SIDE_SELL : SIDE_BUY;
    o->type = limit ? ORDER_LIMIT : ORDER_MARKET;
    o->quantity = json_number_value(qty);
    o->limit_price = limit ? json_number_value(lim) : 0;
    if (broker_post(gw->broker, BM_ORDER, o, 0, 0) < 0)
        proto_reply(c, json_pack("{s:s, s:s}", "type", "trade_rejected", "reason", "unavailable"), id);
}
