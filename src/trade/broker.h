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
 * (trade/order_book.h), so a tick touches only the orders it fills; each
 * one watches its symbol in the hub (hub_watch), which hands the broker
 * that symbol's ticks (broker_tick, through the hub's on_tick observer).
 *
 * The broker knows the rooms below it (broker_env) and calls the others
 * through the ops the app gives it (broker_ops): the gateway's late reply
 * to the ordering connection, the order store (the cluster). */
#ifndef TG_BROKER_H
#define TG_BROKER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "base/mailbox.h"

struct audit;
struct hub;
struct trade_config;
struct user_events;

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

/* What the broker works with, from the rooms below it (all outlive it). */
struct broker_env {
    const struct trade_config *cfg;
    uv_loop_t *loop;                /* the main thread's: the broker runs on it */
    struct hub *hub;                /* last prices, the symbols, tick watching */
    struct user_events *events;     /* trade_filled, portfolio_update */
    struct audit *audit;            /* ORDER_ACCEPTED */
    uint32_t instance;              /* this process's random id: unique order ids */
};

/* The calls the broker makes out of its layer, given by the app; on the
 * broker's loop. */
struct broker_ops {
    void *ctx;
    /* Sends text (one JSON message, consumed) to connection conn_id of
     * worker (the gateway's late reply). */
    void (*reply)(void *ctx, int worker, uint64_t conn_id, char *text);
    /* The order store (Redis; NULL: none, orders are kept here only).
     * append: the order's record (nfields strings: field, value, ...) to
     * the stream; done(priv, ok) once stored or not. last_price: the
     * cluster's last price of sym, done(priv, price), 0 when unknown. Both
     * return -1 when the store cannot take the call now (done never runs). */
    void *store;
    int (*append)(void *store, const char *stream, int nfields, const char **fields, void (*done)(void *priv, bool ok),
                  void *priv);
    int (*last_price)(void *store, uint32_t sym, void (*done)(void *priv, double price), void *priv);
};

struct broker {
    struct broker_env env;
    struct broker_ops ops;
    struct mailbox inbox;
    bool started;
    uint64_t next_order;
    struct order_book *books;       /* per symbol: resting limit orders by price */
    void *users;                    /* paper portfolios: USER_BUCKETS lists */
};

/* 0, or -1 when memory is short. */
int broker_start(struct broker *b, const struct broker_env *env, const struct broker_ops *ops);
void broker_stop(struct broker *b);
void broker_free(struct broker *b);

/* Posts to the broker; frees ptr on failure. 0 or -1. */
int broker_post(struct broker *b, int type, void *ptr, uint64_t a, uint64_t bb);

/* A tick for sym: posted (the hub's on_tick observer) only while limit
 * orders rest on it (each one watches its symbol: hub_watch). */
void broker_tick(struct broker *b, uint32_t sym, double price);

#endif
