/* userevents.c - per-user messages across workers and nodes; see
 * userevents.h. */
#include "pubsub/userevents.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/worker.h"
#include "net/conn.h"
#include "net/outbuf.h"
#include "pubsub/subs.h"
#include "ws/frame.h"
#include "net/websocket.h"

void user_event_unref(struct user_event *ev) {
    if (atomic_fetch_sub(&ev->refs, 1) == 1) {
        outbuf_unref(ev->frame);
        free(ev);
    }
}

static void run_user_event(struct worker *w, void *ev, uint64_t a, uint64_t b) { user_event_deliver(w, ev); }
static void drop_user_event(void *ev, uint64_t a, uint64_t b) { user_event_unref(ev); }
/* One reference to an event for the user's connections on a worker. */
static const struct worker_mail USER_EVENT_MAIL = {"user_event", run_user_event, drop_user_event};

void user_event_send(struct user_events *ue, const char *user, json_t *msg, bool portfolio_only, bool cluster) {
    char *text = msg ? json_dumps(msg, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
    json_decref(msg);
    if (!text || strlen(user) >= sizeof(((struct user_event *)0)->user)) {
        free(text);
        return;
    }
    size_t tl = strlen(text);
    if (cluster && ue->announce)
        ue->announce(ue->announce_ctx, user, portfolio_only, text);
    struct user_event *ev = calloc(1, sizeof(*ev));
    struct outbuf *b = ev ? outbuf_new(tl) : NULL;
    if (!b) {
        free(ev);
        free(text);
        return;
    }
    memcpy(outbuf_payload(b), text, tl);
    free(text);
    outbuf_seal_ws(b, WS_OP_TEXT, tl);
    ev->frame = b;
    ev->portfolio_only = portfolio_only;
    ev->ue = ue;
    snprintf(ev->user, sizeof(ev->user), "%s", user);
    atomic_init(&ev->refs, ue->nworkers + 1);
    for (int i = 0; i < ue->nworkers; i++)
        if (worker_post(&ue->workers[i], &USER_EVENT_MAIL, ev, 0, 0) < 0)
            user_event_unref(ev);
    user_event_unref(ev);
}

void user_event_deliver(struct worker *w, struct user_event *ev) {
    for (struct conn *c = w->conns; c; c = c->next) {
        if (c->closing || c->close_sent || c->phase != PHASE_WS || c->endpoint != EP_JSON)
            continue;
        const char *user = ev->ue->user_of(c);
        if (!user || (ev->portfolio_only && !conn_subs(c)->portfolio) || strcmp(user, ev->user) != 0)
            continue;
        atomic_fetch_add_explicit(&w->stats.messages_sent, 1, memory_order_relaxed);
        ws_send_frame(c, outbuf_ref(ev->frame));
    }
    user_event_unref(ev);
}
