/* broker.h - orders: recording, acknowledgement and the paper broker
 * (PROTOCOL.md section 4, trade).
 *
 * Runs on the main thread's loop; workers post orders to its mailbox and
 * get trade_accepted / trade_rejected back for the ordering connection. An
 * order is acknowledged only after it is recorded: appended to the Redis
 * Stream tickgate:orders when Redis is configured (refused while Redis is
 * down), otherwise kept in the broker's book and the audit log. With
 * trade.paper the broker fills market orders at the last price and limit
 * orders at the first tick that crosses, keeps each user's cash and
 * positions, and sends trade_filled and portfolio_update. A user has at
 * most trade.max_open_orders limit orders open (from the funds check until
 * they fill or are cancelled); resting ones are indexed by symbol and price
 * (trade/order_book.h), so a tick touches only the orders it fills. */
#ifndef TG_BROKER_H
#define TG_BROKER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "base/mailbox.h"

struct server;

enum broker_mail {
    BM_ORDER = 1,       /* ptr: struct order */
    BM_TICK,            /* a: symbol, b: price bits (double), for pending limits */
    BM_PORTFOLIO,       /* ptr: malloc'd user id: send the portfolio */
};

/* Order quantities: fractions down to one millionth (a smaller one would
 * buy for a cost that rounds to nothing). Limit prices are tick prices:
 * TICK_PRICE_MIN..TICK_PRICE_MAX (pubsub/tick.h). */
#define ORDER_QUANTITY_MIN 0.000001
#define ORDER_QUANTITY_MAX 1e9

enum order_side { SIDE_BUY = 0, SIDE_SELL };
enum order_type { ORDER_MARKET = 0, ORDER_LIMIT };

struct order {
    int worker;
    uint64_t conn_id;
    char *reply_id;            /* the request's id as JSON text, or NULL */
    char user[128];
    char client[40];
    uint32_t sym;
    int side, type;
    double quantity, limit_price;
    double ref_price;          /* last price when checked (0 = none) */
    char order_id[48];
    int64_t ts;                /* ms accepted */
    struct broker_user *holder; /* counted in this user's open orders, or NULL */
    struct broker *broker;      /* set when the broker takes it */
};

struct broker_user;
struct order_book;

struct broker {
    struct server *srv;
    struct mailbox inbox;
    bool started;
    uint64_t next_order;
    struct order_book *books;       /* per symbol: resting limit orders by price */
    void *users;                    /* paper portfolios: USER_BUCKETS lists */
};

int broker_start(struct broker *b, struct server *srv, uv_loop_t *loop);
void broker_stop(struct broker *b);
void broker_free(struct broker *b);

/* Posts to the broker; frees ptr on failure. 0 or -1. */
int broker_post(struct broker *b, int type, void *ptr, uint64_t a, uint64_t bb);

/* A tick for sym: posted (the hub's on_tick observer) only while limit
 * orders rest on it (each one watches its symbol: hub_watch). */
void broker_tick(struct broker *b, uint32_t sym, double price);

#endif
