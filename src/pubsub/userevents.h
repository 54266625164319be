/* userevents.h - messages for one user's connections, wherever they are:
 * portfolio_update (user events, paper fills) and trade_filled.
 *
 * The frame is built once, then posted to every worker; each worker hands
 * it to its own connections of that user (portfolio subscribers only, when
 * asked). With Redis the event also reaches the user's connections on every
 * other node. */
#ifndef TG_USEREVENTS_H
#define TG_USEREVENTS_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>

struct conn;
struct worker;
struct outbuf;

/* Where user events go, set by the app before any worker starts and
 * read-only after. */
struct user_events {
    struct worker *workers;     /* each gets every event */
    int nworkers;
    /* Tells the other nodes (the cluster's control channel); NULL: this
     * node only. Any thread. */
    void (*announce)(void *ctx, const char *user, bool portfolio_only, const char *event_json);
    void *announce_ctx;
    /* The user id of a JSON-endpoint WebSocket connection, or NULL when
     * anonymous (identity is the gateway's). On the connection's worker. */
    const char *(*user_of)(const struct conn *c);
};

struct user_event {
    atomic_int refs;            /* one per worker it was posted to */
    bool portfolio_only;        /* only connections that portfolio_subscribe'd */
    struct outbuf *frame;       /* the text frame, shared */
    const struct user_events *ue;
    char user[128];
};

/* Sends msg (consumed; a JSON object such as {"type":"portfolio_update",
 * ...}) to user's connections on this node and, when cluster, on the others
 * through the announce hook. Any thread. */
void user_event_send(struct user_events *ue, const char *user, json_t *msg, bool portfolio_only, bool cluster);

/* Worker side of a user event mail; drops the worker's reference. */
void user_event_deliver(struct worker *w, struct user_event *ev);

/* Drops one reference (also for mail that will never be handled). */
void user_event_unref(struct user_event *ev);

#endif
