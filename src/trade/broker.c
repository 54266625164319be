/* broker.c - order recording and the paper broker; see broker.h. */
#include "trade/broker.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/audit.h"
#include "base/config.h"
#include "base/log.h"
#include "trade/order_book.h"
#include "pubsub/hub.h"
#include "pubsub/userevents.h"

#define USER_BUCKETS 1024
#define ORDERS_STREAM "tickgate:orders"

struct position {
    uint32_t sym;
    double qty, avg_price;
};

struct broker_user {
    struct broker_user *next;
    uint32_t open;              /* limit orders held (trade.max_open_orders) */
    double cash;
    struct position *pos;
    uint32_t npos, cap;
    char id[];
};

static const char *SIDES[] = {"buy", "sell"};
static const char *TYPES[] = {"market", "limit"};

static uint32_t hash_str(const char *s) {
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h % USER_BUCKETS;
}

static struct broker_user *user_get(struct broker *b, const char *id) {
    struct broker_user **bucket = (struct broker_user **)b->users + hash_str(id);
    for (struct broker_user *u = *bucket; u; u = u->next)
        if (strcmp(u->id, id) == 0)
            return u;
    struct broker_user *u = calloc(1, sizeof(*u) + strlen(id) + 1);
    if (!u)
        return NULL;
    strcpy(u->id, id);
    u->cash = b->env.cfg->paper_cash;
    u->next = *bucket;
    *bucket = u;
    return u;
}

static struct position *position(struct broker_user *u, uint32_t sym, bool create) {
    for (uint32_t i = 0; i < u->npos; i++)
        if (u->pos[i].sym == sym)
            return &u->pos[i];
    if (!create)
        return NULL;
    if (u->npos == u->cap) {
        uint32_t nc = u->cap ? u->cap * 2 : 4;
        struct position *n = realloc(u->pos, nc * sizeof(*n));
        if (!n)
            return NULL;
        u->pos = n;
        u->cap = nc;
    }
    struct position *p = &u->pos[u->npos++];
    p->sym = sym;
    p->qty = p->avg_price = 0;
    return p;
}

static json_t *portfolio_json(struct broker *b, struct broker_user *u) {
    json_t *arr = json_array();
    for (uint32_t i = 0; i < u->npos; i++)
        if (u->pos[i].qty != 0)
            json_array_append_new(arr, json_pack("{s:s, s:f, s:f}", "symbol", b->env.hub->syms->names[u->pos[i].sym],
                                                 "quantity", u->pos[i].qty, "avg_price", u->pos[i].avg_price));
    return json_pack("{s:f, s:o}", "cash", u->cash, "positions", arr);
}

static void send_portfolio(struct broker *b, struct broker_user *u, json_t *extra) {
    json_t *ev = portfolio_json(b, u);
    if (extra) {
        json_object_update(ev, extra);
        json_decref(extra);
    }
    /* The paper broker's book is this node's: its events stay on this node. */
    user_event_send(b->env.events, u->id, json_pack("{s:s, s:o}", "type", "portfolio_update", "event", ev), true,
                    false);
}

/* Replies to the ordering connection (id echoed). */
static void reply(struct broker *b, struct order *o, json_t *msg) {
    if (o->reply_id) {
        json_t *id = json_loads(o->reply_id, JSON_DECODE_ANY, NULL);
        if (id)
            json_object_set_new(msg, "id", id);
    }
    char *text = json_dumps(msg, JSON_COMPACT | JSON_REAL_PRECISION(15));
    json_decref(msg);
    if (text)
        b->ops.reply(b->ops.ctx, o->worker, o->conn_id, text);
}

static void reject(struct broker *b, struct order *o, const char *reason) {
    reply(b, o, json_pack("{s:s, s:s}", "type", "trade_rejected", "reason", reason));
}

static void order_free(struct order *o) {
    free(o->reply_id);
    free(o);
}

/* The order is over (filled, cancelled or refused): its user may open
 * another. Consumes o. */
static void order_done(struct order *o) {
    if (o->holder)
        o->holder->open--;
    order_free(o);
}

/* Cancels an accepted order and tells its user why. Consumes o. */
static void cancel(struct broker *b, struct broker_user *u, struct order *o, const char *why) {
    json_t *extra = json_pack("{s:s, s:s, s:s}", "kind", "order_cancelled", "order_id", o->order_id, "reason", why);
    if (u)
        send_portfolio(b, u, extra);
    else
        json_decref(extra);
    order_done(o);
}

static bool last_price(struct broker *b, uint32_t sym, double *price) {
    struct sym_state *s = &b->env.hub->st[sym];
    uv_mutex_lock(&s->lock);
    bool ok = s->has_price;
    *price = s->last.price;
    uv_mutex_unlock(&s->lock);
    return ok;
}

/* Funds check for quantity at price. NULL when the order can go on. */
static const char *affordable(struct broker_user *u, const struct order *o, double price) {
    if (o->side == SIDE_BUY)
        return u->cash + 1e-9 >= o->quantity * price ? NULL : "insufficient_cash";
    struct position *p = position(u, o->sym, false);
    return p && p->qty + 1e-9 >= o->quantity ? NULL : "insufficient_position";
}

/* Applies a fill and tells the user. Consumes o. */
static void fill(struct broker *b, struct order *o, double price) {
    struct broker_user *u = user_get(b, o->user);
    const char *why = u ? affordable(u, o, price) : "internal_error";
    if (why) {
        cancel(b, u, o, why); /* a resting order that can no longer be paid for */
        return;
    }
    struct position *p = position(u, o->sym, true);
    if (!p) {
        cancel(b, u, o, "internal_error");
        return;
    }
    if (o->side == SIDE_BUY) {
        p->avg_price = (p->avg_price * p->qty + price * o->quantity) / (p->qty + o->quantity);
        p->qty += o->quantity;
        u->cash -= o->quantity * price;
    } else {
        p->qty -= o->quantity;
        u->cash += o->quantity * price;
        if (fabs(p->qty) < 1e-12)
            p->qty = p->avg_price = 0;
    }
    int64_t now = hub_now_ms();
    const char *symbol = b->env.hub->syms->names[o->sym];
    user_event_send(b->env.events, o->user,
                    json_pack("{s:s, s:s, s:s, s:s, s:f, s:f, s:I}", "type", "trade_filled", "order_id", o->order_id,
                              "symbol", symbol, "side", SIDES[o->side], "quantity", o->quantity, "price", price,
                              "timestamp", (json_int_t)now),
                    false, false);
    send_portfolio(b, u, json_pack("{s:s, s:s}", "kind", "fill", "order_id", o->order_id));
    order_done(o);
}

/* The order is recorded: acknowledge it, then work it. Consumes o. */
static void accepted(struct broker *b, struct order *o) {
    reply(b, o, json_pack("{s:s, s:s}", "type", "trade_accepted", "order_id", o->order_id));
    audit_event(b->env.audit, "ORDER_ACCEPTED", o->client, o->user, NULL,
                json_pack("{s:s, s:s, s:s, s:s, s:f}", "order_id", o->order_id, "symbol",
                          b->env.hub->syms->names[o->sym], "side", SIDES[o->side], "order_type", TYPES[o->type],
                          "quantity", o->quantity));
    if (!b->env.cfg->paper) {
        order_done(o); /* an order system consuming the stream fills it */
        return;
    }
    double last = o->ref_price;
    bool have = last > 0;
    if (o->type == ORDER_MARKET) {
        fill(b, o, last);
        return;
    }
    if (have && ((o->side == SIDE_BUY && last <= o->limit_price) || (o->side == SIDE_SELL && last >= o->limit_price))) {
        fill(b, o, last); /* marketable now */
        return;
    }
    if (order_book_add(&b->books[o->sym], o->side == SIDE_SELL, o->limit_price, o) < 0) {
        cancel(b, o->holder, o, "internal_error");
        return;
    }
    hub_watch(b->env.hub, o->sym); /* its ticks, from every node */
}

/* The order store answered: recorded (ok) or not. */
static void on_recorded(void *priv, bool ok) {
    struct order *o = priv;
    struct broker *b = o->broker;
    if (!ok) {
        reject(b, o, "order_store_unavailable");
        order_done(o);
        return;
    }
    accepted(b, o);
}

static void order_checked(struct broker *b, struct order *o);

/* The cluster's last price for a market order (0: unknown, keep ours). */
static void on_cluster_price(void *priv, double price) {
    struct order *o = priv;
    if (price > 0)
        o->ref_price = price;
    order_checked(o->broker, o);
}

static void on_order(struct broker *b, struct order *o) {
    o->broker = b;
    snprintf(o->order_id, sizeof(o->order_id), "o-%08x%llx", b->env.instance, (unsigned long long)++b->next_order);
    o->ts = hub_now_ms();
    double last;
    o->ref_price = last_price(b, o->sym, &last) ? last : 0;
    /* This node hears only the symbols it watches: ask the cluster. */
    if (b->env.cfg->paper && o->type == ORDER_MARKET && b->ops.last_price &&
        b->ops.last_price(b->ops.store, o->sym, on_cluster_price, o) == 0)
        return;
    order_checked(b, o);
}

/* Funds checked against the reference price, then recorded. */
static void order_checked(struct broker *b, struct order *o) {
    const struct trade_config *cfg = b->env.cfg;
    if (cfg->paper) {
        struct broker_user *u = user_get(b, o->user);
        double last = o->ref_price, price;
        bool have = last > 0;
        if (o->type == ORDER_MARKET && !have) {
            reject(b, o, "no_price");
            order_free(o);
            return;
        }
        price = o->type == ORDER_MARKET ? last : o->limit_price;
        const char *why = "internal_error";
        if (u && o->type == ORDER_LIMIT && u->open >= (uint32_t)cfg->max_open_orders)
            why = "too_many_open_orders"; /* first: at the cap nothing more may rest, whatever it costs */
        else if (u)
            why = affordable(u, o, price);
        if (why) {
            reject(b, o, why);
            order_free(o);
            return;
        }
        if (o->type == ORDER_LIMIT) { /* held from here until it fills or is cancelled */
            u->open++;
            o->holder = u;
        }
    }
    if (b->ops.append) {
        /* Recorded in the stream first; acknowledged only then. */
        char qty[40], lim[40], ts[24];
        snprintf(qty, sizeof(qty), "%.17g", o->quantity);
        snprintf(lim, sizeof(lim), "%.17g", o->type == ORDER_LIMIT ? o->limit_price : 0.0);
        snprintf(ts, sizeof(ts), "%lld", (long long)o->ts);
        const char *fields[] = {"order_id", o->order_id, "user_id", o->user, "symbol", b->env.hub->syms->names[o->sym],
                                "side", SIDES[o->side], "quantity", qty, "order_type", TYPES[o->type],
                                "limit_price", lim, "ts", ts};
        int n = (int)(sizeof(fields) / sizeof(fields[0]));
        if (b->ops.append(b->ops.store, ORDERS_STREAM, n, fields, on_recorded, o) < 0) {
            reject(b, o, "order_store_unavailable");
            order_done(o);
        }
        return;
    }
    accepted(b, o);
}

/* Fills the orders a tick crosses, best limit first; the others are not
 * touched. */
static void on_tick(struct broker *b, uint32_t sym, double price) {
    for (struct order *o; (o = order_book_take(&b->books[sym], price));) {
        hub_unwatch(b->env.hub, sym);
        fill(b, o, price);
    }
}

static void on_mail(struct mailbox *mb, struct mail *m, void *data) {
    struct broker *b = data;
    switch (m->type) {
    case BM_ORDER:
        on_order(b, m->ptr);
        break;
    case BM_TICK: {
        double price;
        memcpy(&price, &m->b, sizeof(price));
        on_tick(b, (uint32_t)m->a, price);
        break;
    }
    case BM_PORTFOLIO: {
        struct broker_user *u = b->env.cfg->paper ? user_get(b, m->ptr) : NULL;
        if (u)
            send_portfolio(b, u, json_pack("{s:s}", "kind", "snapshot"));
        free(m->ptr);
        break;
    }
    }
}

static void drop_order(void *o) { order_free(o); }

static void drop_mail(struct mail *m) {
    if (m->type == BM_ORDER)
        order_free(m->ptr);
    else if (m->type == BM_PORTFOLIO)
        free(m->ptr);
}

int broker_post(struct broker *b, int type, void *ptr, uint64_t a, uint64_t bb) {
    struct mail m = {.type = type, .ptr = ptr, .a = a, .b = bb};
    if (!b->started || mailbox_post(&b->inbox, &m) < 0) {
        drop_mail(&m);
        return -1;
    }
    return 0;
}

void broker_tick(struct broker *b, uint32_t sym, double price) {
    uint64_t bits;
    memcpy(&bits, &price, sizeof(bits));
    broker_post(b, BM_TICK, NULL, sym, bits);
}

int broker_start(struct broker *b, const struct broker_env *env, const struct broker_ops *ops) {
    memset(b, 0, sizeof(*b));
    b->env = *env;
    b->ops = *ops;
    b->books = calloc(env->hub->syms->n, sizeof(*b->books));
    b->users = calloc(USER_BUCKETS, sizeof(struct broker_user *));
    if (!b->books || !b->users || mailbox_init(&b->inbox, env->loop, 65536, on_mail, b) < 0) {
        free(b->books);
        free(b->users);
        return -1;
    }
    b->started = true;
    return 0;
}

void broker_stop(struct broker *b) {
    if (b->started)
        mailbox_close(&b->inbox, drop_mail);
}

void broker_free(struct broker *b) {
    if (!b->started)
        return;
    mailbox_destroy(&b->inbox);
    for (uint32_t s = 0; s < b->env.hub->syms->n; s++)
        order_book_clear(&b->books[s], drop_order);
    struct broker_user **bk = (struct broker_user **)b->users;
    for (int i = 0; i < USER_BUCKETS; i++)
        for (struct broker_user *u = bk[i], *n; u; u = n) {
            n = u->next;
            free(u->pos);
            free(u);
        }
    free(b->books);
    free(b->users);
    b->started = false;
}
