/* lifecycle.c - a connection's life on the JSON endpoint: its identity,
 * the greeting, liveness pings, token expiry, close reasons, release of
 * all it holds, and its record in Redis (protocol.h). */
#include "gateway/protocol.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/auth.h"
#include "base/jsonw.h"
#include "cluster/engine.h"
#include "gateway/protocol_internal.h"
#include "net/conn.h"
#include "net/worker.h"
#include "pubsub/hub.h"
#include "pubsub/subs.h"
#include "ws/frame.h"
#include "net/websocket.h"

#define EXPIRY_WARNING_S 60

/* The names of the symbols c is subscribed to, as a new JSON array. */
static json_t *sub_names(const struct conn *c) {
    const struct gateway *gw = gateway_of(c);
    json_t *a = json_array();
    for (uint32_t i = 0; i < conn_subs(c)->nsubs; i++)
        json_array_append_new(a, json_string(gw->syms->names[conn_subs(c)->subs[i].sym]));
    return a;
}

void proto_maybe_warn_expiry(struct conn *c) {
    if (!session_of(c)->token_exp || session_of(c)->expiry_warned)
        return;
    if ((int64_t)time(NULL) >= session_of(c)->token_exp - EXPIRY_WARNING_S) {
        session_of(c)->expiry_warned = true;
        json_int_t at = (json_int_t)session_of(c)->token_exp * 1000;
        proto_send_json(c, json_pack("{s:s, s:I}", "type", "token_expiring", "expires_at", at));
    }
}

static void free_user_id(struct conn *c) {
    if (session_of(c)->user_id != session_of(c)->uid_inl)
        free(session_of(c)->user_id);
    session_of(c)->user_id = NULL;
}

struct budget *proto_identity_budget(struct conn *c) {
    struct ip16 k = guard_key(gateway_of(c)->guard, &c->cip);
    return budget_for_client(gateway_of(c)->budgets, session_of(c)->user_id, &k);
}

void protocol_set_identity(struct conn *c, struct identity *id) {
    free_user_id(c);
    entitle_put(session_of(c)->ent_rt); /* the identity's entitlements replace the old ones */
    entitle_put(session_of(c)->ent_delayed);
    session_of(c)->ent_rt = id->symbols;
    session_of(c)->ent_delayed = id->delayed;
    id->symbols = id->delayed = NULL;
    size_t l = strlen(id->user_id);
    if (l && l < sizeof(session_of(c)->uid_inl)) /* most ids: kept in the connection */
        session_of(c)->user_id = memcpy(session_of(c)->uid_inl, id->user_id, l + 1);
    else if (l)
        session_of(c)->user_id = strdup(id->user_id);
    session_of(c)->role = (int8_t)id->role;
    session_of(c)->token_exp = id->exp;
    session_of(c)->expiry_warned = false;
}

void protocol_on_open(struct conn *c) {
    struct gateway *gw = gateway_of(c);
    const struct config *cfg = gw->cfg;
    char cid[32];
    protocol_client_id(c, cid, sizeof(cid));
    proto_count(&gateway_worker(c->w)->stats.by_role[session_of(c)->role]);
    proto_count(&c->w->stats.ws_total);
    uint64_t now = worker_now(c->w);
    session_of(c)->last_ping = now;
    c->last_rx = now;
    session_of(c)->connected_at = hub_now_ms();
    /* Every handshake comes through here: both texts are written directly
     * (no JSON tree), the greeting straight into its frame. */
    {
        char details[64], ip[64];
        struct jw w;
        jw_init(&w, details, sizeof(details));
        jw_lit(&w, "{\"role\":");
        jw_str(&w, role_name(session_of(c)->role));
        jw_lit(&w, "}");
        jw_raw(&w, "", 1);
        ip16_format(&c->cip, ip, sizeof(ip));
        audit_event_text(gw->audit, "CONNECTION_OPENED", cid, session_of(c)->user_id, ip, details);
    }
    session_of(c)->budget = proto_identity_budget(c); /* put in protocol_release_identity */
    size_t cap = 256 + jw_str_max(cid) + jw_str_max(session_of(c)->user_id);
    struct outbuf *b = session_of(c)->budget ? outbuf_new(cap) : NULL;
    if (!b) {
        ws_close(c, WS_CLOSE_INTERNAL, "internal error");
        return;
    }
    struct jw w;
    jw_init(&w, (char *)outbuf_payload(b), cap);
    jw_lit(&w, "{\"type\":\"connected\",\"client_id\":");
    jw_str(&w, cid);
    jw_lit(&w, ",\"user_id\":");
    jw_str(&w, session_of(c)->user_id);
    jw_lit(&w, ",\"role\":");
    jw_str(&w, role_name(session_of(c)->role));
    jw_lit(&w, ",\"heartbeat_interval_s\":");
    jw_i64(&w, cfg->limits.heartbeat_interval_s);
    jw_lit(&w, ",\"limits\":{\"max_subscriptions\":");
    jw_i64(&w, gw->auth->roles.max_symbols[session_of(c)->role]);
    jw_lit(&w, ",\"max_messages_per_minute\":");
    jw_i64(&w, cfg->limits.max_messages_per_minute);
    jw_lit(&w, ",\"max_message_bytes\":");
    jw_i64(&w, (int64_t)cfg->limits.max_message_bytes);
    jw_lit(&w, "}}");
    if (w.full) { /* cannot happen: cap covers the worst case */
        outbuf_unref(b);
        ws_close(c, WS_CLOSE_INTERNAL, "internal error");
        return;
    }
    outbuf_seal_ws(b, WS_OP_TEXT, w.n);
    proto_count(&c->w->stats.messages_sent);
    ws_send_frame(c, b);
    proto_maybe_warn_expiry(c);
    protocol_persist(c, false);
}

void protocol_liveness(struct conn *c, uint64_t now) {
    const struct config *cfg = gateway_of(c)->cfg;
    /* A client is only timed out after it was pinged since it last spoke
     * (heartbeat_timeout_s >= heartbeat_interval_s: config refuses less). */
    if (now - c->last_rx >= (uint64_t)cfg->limits.heartbeat_timeout_s * 1000 && session_of(c)->first_ping > c->last_rx) {
        ws_close(c, WS_CLOSE_HEARTBEAT, "heartbeat timeout");
        return;
    }
    if (now - session_of(c)->last_ping >= (uint64_t)cfg->limits.heartbeat_interval_s * 1000) {
        session_of(c)->last_ping = now;
        if (session_of(c)->first_ping <= c->last_rx)
            session_of(c)->first_ping = now; /* the first ping the client has not answered */
        ws_send(c, WS_OP_PING, "", 0);
    }
}

void protocol_sweep(struct conn *c, uint64_t now) {
    const struct config *cfg = gateway_of(c)->cfg;
    if (session_of(c)->token_exp) {
        if ((int64_t)time(NULL) - cfg->auth.jwt_leeway_s > session_of(c)->token_exp) { /* no exp + leeway: overflow */
            ws_close(c, WS_CLOSE_TOKEN_EXPIRED, "token expired");
            return;
        }
        proto_maybe_warn_expiry(c);
    }
}

void protocol_on_close(struct conn *c, unsigned code) {
    if (!c->close_code)
        c->close_code = (uint16_t)code;
}

static const char *DR_LABELS[DR_COUNT] = {"client_close", "shutdown", "protocol_error", "policy", "internal_error",
                                          "slow_consumer", "heartbeat_timeout", "token_expired", "network"};

const char *protocol_disc_reason_name(int r) { return r >= 0 && r < DR_COUNT ? DR_LABELS[r] : "unknown"; }

static enum disc_reason reason_of(const struct conn *c) {
    if (c->peer_closed_first)
        return DR_CLIENT_CLOSE;
    switch (c->close_code) {
    case 0: return DR_NETWORK;
    case WS_CLOSE_GOING_AWAY: return DR_SHUTDOWN;
    case WS_CLOSE_PROTOCOL: case WS_CLOSE_UNSUPPORTED: case WS_CLOSE_INVALID_DATA: case WS_CLOSE_TOO_BIG:
        return DR_PROTOCOL;
    case WS_CLOSE_POLICY: return DR_POLICY;
    case WS_CLOSE_INTERNAL: return DR_INTERNAL;
    case WS_CLOSE_TRY_AGAIN: return DR_SLOW_CONSUMER;
    case WS_CLOSE_HEARTBEAT: return DR_HEARTBEAT;
    case WS_CLOSE_TOKEN_EXPIRED: return DR_TOKEN_EXPIRED;
    default: return DR_CLIENT_CLOSE;
    }
}

void protocol_on_release(struct conn *c) {
    struct gateway *gw = gateway_of(c);
    if (conn_subs(c)->nsubs)
        proto_audit(c, "SUBSCRIPTION_REMOVED",
                    json_pack("{s:o, s:s}", "symbols", sub_names(c), "reason", "disconnect"));
    subs_batch_release(c);
    subs_remove_all(c);
    proto_audit(c, "CONNECTION_CLOSED",
                json_pack("{s:i, s:s}", "code", c->close_code, "reason", DR_LABELS[reason_of(c)]));
    if (gw->redis->enabled) {
        struct redis_note *n = calloc(1, sizeof(*n));
        if (n) {
            n->kind = NOTE_CLOSE;
            protocol_client_id(c, n->cid, sizeof(n->cid));
            n->user = session_of(c)->redis_user && session_of(c)->user_id ? strdup(session_of(c)->user_id) : NULL;
            redis_engine_post(gw->redis, RM_NOTE, n, 0);
        }
        session_of(c)->redis_user = false;
    }
    atomic_fetch_sub_explicit(&gateway_worker(c->w)->stats.by_role[session_of(c)->role], 1, memory_order_relaxed);
    proto_count(&c->w->stats.disconnects[reason_of(c)]);
    protocol_release_identity(c);
}

void protocol_release_identity(struct conn *c) {
    struct gateway *gw = gateway_of(c);
    budget_put(gw->budgets, session_of(c)->budget, worker_now(c->w) * 1000000ULL);
    session_of(c)->budget = NULL;
    if (session_of(c)->guarded) {
        guard_release(gw->guard, &c->cip, session_of(c)->user_id);
        session_of(c)->guarded = false;
    }
    if (session_of(c)->redis_user && session_of(c)->user_id) { /* refused before the upgrade */
        redis_engine_release_user(gw->redis, session_of(c)->user_id);
        session_of(c)->redis_user = false;
    }
    free_user_id(c);
    entitle_put(session_of(c)->ent_rt);
    entitle_put(session_of(c)->ent_delayed);
    session_of(c)->ent_rt = session_of(c)->ent_delayed = NULL;
}

/* A Redis note of kind for c carrying o (consumed) as text, or NULL out of
 * memory. */
static struct redis_note *note_new(struct conn *c, enum note_kind kind, json_t *o) {
    struct redis_note *n = calloc(1, sizeof(*n));
    char *text = proto_dump(o);
    if (!n || !text) {
        free(n);
        free(text);
        return NULL;
    }
    n->kind = kind;
    protocol_client_id(c, n->cid, sizeof(n->cid));
    n->text = text;
    return n;
}

void proto_persist_subs(struct conn *c) {
    struct gateway *gw = gateway_of(c);
    if (!gw->redis->enabled)
        return;
    struct redis_note *n = note_new(c, NOTE_SUBS, sub_names(c));
    if (n)
        redis_engine_post(gw->redis, RM_NOTE, n, 0);
}

void protocol_persist(struct conn *c, bool resync) {
    struct gateway *gw = gateway_of(c);
    if (!gw->redis->enabled)
        return;
    char ip[64];
    ip16_format(&c->cip, ip, sizeof(ip));
    json_t *o = json_pack("{s:s, s:s?, s:s, s:s, s:I}", "node", gw->redis->node, "user_id", session_of(c)->user_id, "role",
                          role_name(session_of(c)->role), "ip", ip, "connected_at", (json_int_t)session_of(c)->connected_at);
    struct redis_note *n = note_new(c, NOTE_OPEN, o);
    if (!n)
        return;
    n->resync = resync;
    if (resync && session_of(c)->user_id) { /* the resync rebuilds the node's user counts */
        n->user = strdup(session_of(c)->user_id);
        session_of(c)->redis_user = n->user != NULL;
    }
    redis_engine_post(gw->redis, RM_NOTE, n, 0);
    if (resync || conn_subs(c)->nsubs)
        proto_persist_subs(c);
}

static void run_resync(struct worker *w, void *ptr, uint64_t a, uint64_t b) {
    for (struct conn *c = w->conns; c; c = c->next)
        if (!c->closing && c->phase == PHASE_WS && c->endpoint == EP_JSON)
            protocol_persist(c, true);
}

const struct worker_mail PROTOCOL_RESYNC_MAIL = {"redis_resync", run_resync, NULL};
