/* admin.c - admin API, admin_broadcast and gathers; see admin.h. */
#include "gateway/admin.h"

#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "base/log.h"
#include "gateway/protocol.h"
#include "auth/auth.h"
#include "auth/budget.h"
#include "auth/guard.h"
#include "base/audit.h"
#include "base/config.h"
#include "cluster/engine.h"
#include "gateway/gateway.h"
#include "net/clientip.h"
#include "pubsub/hub.h"
#include "pubsub/symbols.h"
#include "trade/broker.h"
#include "net/worker.h"
#include "gateway/session.h"
#include "net/conn.h"
#include "net/http.h"
#include "gateway/http_guard.h"
#include "ws/frame.h"
#include "net/websocket.h"
#include "cluster/engine.h"

#define BROADCAST_MAX_CHARS 4096

static void gather_free(struct gather *g) {
    json_decref(g->items);
    json_decref(g->reply_id);
    json_decref(g->frame_json);
    uv_mutex_destroy(&g->lock);
    free(g);
}

static struct gather *gather_new(struct conn *c, int kind, bool http, json_t *id) {
    struct gather *g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    uv_mutex_init(&g->lock);
    g->kind = kind;
    g->origin = c->w->id;
    g->conn_id = c->id;
    g->http = http;
    g->reply_id = id ? json_incref(id) : NULL;
    g->items = json_array();
    return g;
}

/* A gather visits every worker (GATHER_MAIL), then its requester's
 * (GATHER_DONE_MAIL); defined below. */
static const struct worker_mail GATHER_MAIL, GATHER_DONE_MAIL;

static void finish_one(struct worker *w, struct gather *g) {
    if (atomic_fetch_sub(&g->pending, 1) != 1)
        return;
    if (g->origin < 0) { /* nobody waits for an answer */
        gather_free(g);
        return;
    }
    struct worker *origin = &gateway_of_worker(w)->workers[g->origin];
    if (worker_post(origin, &GATHER_DONE_MAIL, g, 0, 0) < 0) {
        log_error("admin: requester's mailbox is full; request dropped");
        gather_free(g);
    }
}

static void gather_post_all(struct gateway *gw, struct worker *self, struct gather *g) {
    atomic_store(&g->pending, gw->nworkers);
    for (int i = 0; i < gw->nworkers; i++)
        if (worker_post(&gw->workers[i], &GATHER_MAIL, g, 0, 0) < 0)
            finish_one(self ? self : &gw->workers[i], g); /* that worker contributes nothing */
}

/* Sends g to every worker. The requester stops reading until the answer.
 * A broadcast also goes to the other nodes through Redis. */
static void gather_start(struct conn *c, struct gather *g) {
    struct gateway *gw = gateway_of(c);
    if (g->http) {
        c->awaiting = true;
        uv_read_stop((uv_stream_t *)&c->tcp);
    }
    if (g->kind == GATHER_BROADCAST && gw->redis->enabled) {
        char *frame = json_dumps(g->frame_json, JSON_COMPACT);
        if (frame)
            redis_engine_announce_broadcast(gw->redis, g->roles, frame);
        free(frame);
    }
    gather_post_all(gw, c->w, g);
}

void admin_broadcast_local(struct gateway *gw, json_t *frame_json, uint32_t roles) {
    struct gather *g = calloc(1, sizeof(*g));
    if (!g) {
        json_decref(frame_json);
        return;
    }
    uv_mutex_init(&g->lock);
    g->kind = GATHER_BROADCAST;
    g->origin = -1;
    g->items = json_array();
    g->frame_json = frame_json;
    g->roles = roles;
    gather_post_all(gw, NULL, g);
}

static void gather_contribute(struct worker *w, struct gather *g) {
    if (g->kind == GATHER_LIST) {
        json_t *mine = json_array();
        for (struct conn *c = w->conns; c; c = c->next) {
            if (c->closing || c->phase != PHASE_WS || c->endpoint != EP_JSON)
                continue;
            char cid[32], ip[64];
            protocol_client_id(c, cid, sizeof(cid));
            ip16_format(&c->cip, ip, sizeof(ip));
            const struct conn_subs *cs = conn_subs(c);
            json_t *syms = json_array();
            for (uint32_t i = 0; i < cs->nsubs; i++)
                json_array_append_new(syms, json_string(gateway_of_worker(w)->syms->names[cs->subs[i].sym]));
            json_array_append_new(mine, json_pack("{s:s, s:s?, s:s, s:s, s:I, s:i, s:o, s:s}", "id", cid, "user",
                                                  session_of(c)->user_id, "role", role_name(session_of(c)->role), "ip", ip, "connected_at",
                                                  (json_int_t)session_of(c)->connected_at, "subscriptions", (int)cs->nsubs,
                                                  "symbols", syms, "threat", protocol_threat(c)));
        }
        uv_mutex_lock(&g->lock);
        json_array_extend(g->items, mine);
        uv_mutex_unlock(&g->lock);
        json_decref(mine);
    } else {
        char *text = json_dumps(g->frame_json, JSON_COMPACT);
        long n = 0;
        if (text) {
            size_t tl = strlen(text);
            for (struct conn *c = w->conns; c; c = c->next) {
                if (c->closing || c->close_sent || c->phase != PHASE_WS || c->endpoint != EP_JSON)
                    continue;
                if (!(g->roles & (1u << session_of(c)->role)))
                    continue;
                ws_send(c, WS_OP_TEXT, text, tl);
                atomic_fetch_add_explicit(&w->stats.messages_sent, 1, memory_order_relaxed);
                n++;
            }
            free(text);
        }
        uv_mutex_lock(&g->lock);
        g->count += n;
        uv_mutex_unlock(&g->lock);
    }
    finish_one(w, g);
}

static void gather_abandon(struct gather *g, bool done) {
    if (done || atomic_fetch_sub(&g->pending, 1) == 1)
        gather_free(g); /* nobody is left to answer */
}


static void respond_json(struct conn *c, int status, json_t *o, bool keep) {
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!s) {
        conn_http_error(c, 500, "internal_error", "out of memory", NULL, false);
        return;
    }
    conn_http_respond(c, status, "application/json", s, strlen(s), NULL, keep);
    free(s);
}

static void gather_done(struct worker *w, struct gather *g) {
    struct conn *c = conn_find(w, g->conn_id);
    if (c) {
        json_t *o = g->kind == GATHER_LIST ? json_pack("{s:O}", "connections", g->items)
                                           : json_pack("{s:i}", "recipients", (int)g->count);
        if (g->http) {
            c->awaiting = false;
            respond_json(c, 200, o, false);
        } else {
            json_object_set_new(o, "type", json_string("broadcast_sent"));
            if (g->reply_id)
                json_object_set(o, "id", g->reply_id);
            char *s = json_dumps(o, JSON_COMPACT);
            json_decref(o);
            if (s) {
                ws_send(c, WS_OP_TEXT, s, strlen(s));
                free(s);
            }
        }
    }
    gather_free(g);
}

static void run_gather(struct worker *w, void *g, uint64_t a, uint64_t b) { gather_contribute(w, g); }
static void run_gather_done(struct worker *w, void *g, uint64_t a, uint64_t b) { gather_done(w, g); }
static void drop_gather(void *g, uint64_t a, uint64_t b) { gather_abandon(g, false); }
static void drop_gather_done(void *g, uint64_t a, uint64_t b) { gather_abandon(g, true); }
static const struct worker_mail GATHER_MAIL = {"gather", run_gather, drop_gather};
static const struct worker_mail GATHER_DONE_MAIL = {"gather_done", run_gather_done, drop_gather_done};

/* Validates {"message": string <= 4096 chars, "roles": [role]?}. Returns
 * NULL with *why set, or the broadcast's gather fields filled in g. */
static bool broadcast_params(json_t *msg, const char *from, struct gather *g, const char **why) {
    json_t *m = json_object_get(msg, "message"), *roles = json_object_get(msg, "roles");
    if (!json_is_string(m) || json_string_length(m) == 0 ||
        json_string_length(m) > BROADCAST_MAX_CHARS * 4) { /* bytes bound first, chars below */
        *why = "message must be a non-empty string of at most 4096 characters";
        return false;
    }
    size_t chars = 0;
    for (const unsigned char *p = (const unsigned char *)json_string_value(m); *p; p++)
        chars += (*p & 0xC0) != 0x80;
    if (chars > BROADCAST_MAX_CHARS) {
        *why = "message must be a non-empty string of at most 4096 characters";
        return false;
    }
    g->roles = roles ? 0 : 0xFFFFFFFFu;
    if (roles) {
        size_t i;
        json_t *r;
        if (!json_is_array(roles)) {
            *why = "roles must be an array of role names";
            return false;
        }
        json_array_foreach(roles, i, r) {
            int ri = json_is_string(r) ? role_from_name(json_string_value(r)) : -1;
            if (ri < 0) {
                *why = "roles must be an array of role names";
                return false;
            }
            g->roles |= 1u << ri;
        }
    }
    g->frame_json = json_pack("{s:s, s:O, s:s}", "type", "broadcast", "message", m, "from", from ? from : "system");
    return g->frame_json != NULL;
}

void admin_ws_broadcast(struct conn *c, json_t *msg, json_t *id) {
    struct gather *g = gather_new(c, GATHER_BROADCAST, false, id);
    const char *why = "out of memory";
    if (!g || !broadcast_params(msg, session_of(c)->user_id, g, &why)) {
        json_t *e = json_pack("{s:s, s:s, s:s}", "type", "error", "code", "invalid_message", "message", why);
        if (id)
            json_object_set(e, "id", id);
        char *s = json_dumps(e, JSON_COMPACT);
        json_decref(e);
        if (s) {
            ws_send(c, WS_OP_TEXT, s, strlen(s));
            free(s);
        }
        if (g)
            gather_free(g);
        return;
    }
    char cid[32];
    protocol_client_id(c, cid, sizeof(cid));
    audit_event(gateway_of(c)->audit, "ADMIN_ACTION", cid, session_of(c)->user_id, NULL,
                json_pack("{s:s}", "action", "broadcast"));
    gather_start(c, g);
}

/* Admin credentials: Bearer JWT or X-API-Key of role admin or super_admin.
 * A refusal (401, 403) is a violation of the client IP. */
static bool authorize_admin(struct conn *c, bool keep, struct identity *who) {
    if (!http_guard_identify(c, keep, "admin_api", who))
        return false;
    if (who->role != ROLE_ADMIN && who->role != ROLE_SUPER_ADMIN) {
        http_guard_forbidden(c, keep, who, "admin_api", "admin role required");
        return false;
    }
    return true;
}

static json_t *body_object(struct conn *c, bool keep) {
    json_t *b = json_loadb(c->http->body ? c->http->body : "", c->http->body_len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(b)) {
        json_decref(b);
        conn_http_error(c, 400, "invalid_json", "body must be a JSON object", NULL, keep);
        return NULL;
    }
    return b;
}

/* GET /api/admin/blocks: the blocks in force on this node, at most
 * ADMIN_BLOCKS_MAX (truncated: true beyond). */
#define ADMIN_BLOCKS_MAX 1000

static json_t *blocks_json(struct gateway *gw) {
    struct guard_saved *v = malloc(ADMIN_BLOCKS_MAX * sizeof(*v));
    if (!v)
        return NULL;
    size_t n = guard_blocks(gw->guard, v, ADMIN_BLOCKS_MAX);
    json_t *arr = json_array();
    for (size_t i = 0; i < n && i < ADMIN_BLOCKS_MAX; i++) {
        char ip[64];
        ip16_format(&v[i].ip, ip, sizeof(ip));
        json_array_append_new(arr, json_pack("{s:s, s:o, s:b}", "ip", ip, "until",
                                             v[i].until ? json_integer(v[i].until) : json_null(), "kept", v[i].saved));
    }
    free(v);
    return json_pack("{s:o, s:b}", "blocks", arr, "truncated", n > ADMIN_BLOCKS_MAX);
}

void admin_http(struct conn *c, const char *path, bool keep) {
    struct gateway *gw = gateway_of(c);
    bool get = http_req_is_get(c->http), post = http_req_is_post(c->http);
    const char *name = path + strlen("/api/admin/");
    bool list = !strcmp(name, "connections") || !strcmp(name, "blocks");
    bool known = list || !strcmp(name, "block_ip") || !strcmp(name, "unblock_ip") || !strcmp(name, "broadcast");
    if (!known) {
        conn_http_error(c, 404, "not_found", "no such path", NULL, keep);
        return;
    }
    if ((list && !get) || (!list && !post)) {
        conn_http_error(c, 405, "method_not_allowed", "method not allowed for this path",
                        list ? "Allow: GET\r\n" : "Allow: POST\r\n", keep);
        return;
    }
    struct identity who;
    if (!authorize_admin(c, keep, &who))
        return;
    char ipbuf[64];
    ip16_format(&c->cip, ipbuf, sizeof(ipbuf));
    if (!strcmp(name, "blocks")) {
        respond_json(c, 200, blocks_json(gw), keep);
        return;
    }
    if (list) {
        audit_event(gw->audit, "ADMIN_ACTION", NULL, who.user_id, ipbuf, json_pack("{s:s}", "action", "connections"));
        struct gather *g = gather_new(c, GATHER_LIST, true, NULL);
        if (!g) {
            conn_http_error(c, 503, "unavailable", "out of memory", NULL, false);
            return;
        }
        gather_start(c, g);
        return;
    }
    json_t *body = body_object(c, keep);
    if (!body)
        return;
    if (!strcmp(name, "broadcast")) {
        struct gather *g = gather_new(c, GATHER_BROADCAST, true, NULL);
        const char *why = "out of memory";
        if (!g || !broadcast_params(body, who.user_id, g, &why)) {
            if (g)
                gather_free(g);
            conn_http_error(c, 400, "invalid_message", why, NULL, keep);
        } else {
            audit_event(gw->audit, "ADMIN_ACTION", NULL, who.user_id, ipbuf,
                        json_pack("{s:s}", "action", "broadcast"));
            gather_start(c, g);
        }
        json_decref(body);
        return;
    }
    json_t *ipj = json_object_get(body, "ip"), *dur = json_object_get(body, "duration_s");
    struct ip16 ip;
    if (!json_is_string(ipj) || !ip16_parse(json_string_value(ipj), json_string_length(ipj), &ip) ||
        (dur && (!json_is_integer(dur) || json_integer_value(dur) < 0))) {
        json_decref(body);
        conn_http_error(c, 400, "invalid_message", "expected {\\\"ip\\\": address, \\\"duration_s\\\": seconds?}", NULL,
                        keep);
        return;
    }
    char canon[64];
    ip16_format(&ip, canon, sizeof(canon));
    json_t *reply;
    if (!strcmp(name, "block_ip")) {
        int64_t d = dur ? (int64_t)json_integer_value(dur) : 0;
        audit_event(gw->audit, "ADMIN_ACTION", NULL, who.user_id, ipbuf,
                    json_pack("{s:s, s:s, s:I}", "action", "block_ip", "target", canon, "duration_s", (json_int_t)d));
        gateway_block_ip_admin(gw, &ip, d);
        reply = json_pack("{s:s, s:I}", "blocked", canon, "duration_s", (json_int_t)d);
    } else {
        bool was = guard_unblock(gw->guard, &ip);
        audit_event(gw->audit, "ADMIN_ACTION", NULL, who.user_id, ipbuf,
                    json_pack("{s:s, s:s}", "action", "unblock_ip", "target", canon));
        audit_event(gw->audit, "IP_UNBLOCKED", NULL, NULL, canon, json_pack("{s:b}", "was_blocked", was));
        redis_engine_announce_unblock(gw->redis, &ip);
        reply = json_pack("{s:s, s:b}", "unblocked", canon, "was_blocked", was);
    }
    json_decref(body);
    respond_json(c, 200, reply, keep);
}
