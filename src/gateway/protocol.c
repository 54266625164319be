/* protocol.c - the gateway's JSON protocol; see protocol.h.
 *
 * Every message goes through the same gate in the same order: parse, id,
 * type, rate limit, permission; only then its handler. Replies echo the
 * request's id. Nothing here logs message contents (they may hold tokens). */
#include "gateway/protocol.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth/auth.h"
#include "base/jsonw.h"
#include "app/server.h"
#include "net/worker.h"
#include "feed/publish.h"
#include "trade/broker.h"
#include "cluster/engine.h"
#include "pubsub/tick.h"
#include "gateway/admin.h"
#include "net/conn.h"
#include "pubsub/hub.h"
#include "pubsub/subs.h"
#include "ws/frame.h"
#include "ws/session.h"

#define SUBSCRIBE_MAX_SYMBOLS 100
#define EXPIRY_WARNING_S 60

static void persist_subs(struct conn *c);

static void count(_Atomic uint64_t *c) { atomic_fetch_add_explicit(c, 1, memory_order_relaxed); }

/* Sends o as one text frame and drops the reference. */
static void send_json(struct conn *c, json_t *o) {
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
    json_decref(o);
    if (!s) {
        ws_close(c, WS_CLOSE_INTERNAL, "internal error");
        return;
    }
    count(&c->w->stats.messages_sent);
    ws_send(c, WS_OP_TEXT, s, strlen(s));
    free(s);
}

/* Sends a reply, echoing the request's id (string <= 64 chars or integer). */
static void reply(struct conn *c, json_t *o, json_t *id) {
    if (o && id)
        json_object_set(o, "id", id);
    send_json(c, o);
}

static void send_error(struct conn *c, const char *code, const char *msg, json_t *id) {
    reply(c, json_pack("{s:s, s:s, s:s}", "type", "error", "code", code, "message", msg), id);
}

static const char *VIOLATION_NAMES[SV_COUNT] = {"rate_limited", "forbidden", "invalid_message", "auth_failed",
                                                "suspicious_content"};

static void audit_conn(struct conn *c, const char *event, json_t *details) {
    char cid[32], ip[64];
    protocol_client_id(c, cid, sizeof(cid));
    ip16_format(&c->cip, ip, sizeof(ip));
    audit_event(&c->w->srv->audit, event, cid, c->user_id, ip, details);
}

/* A security violation: raises the connection's threat level (high closes
 * it with 1008) and counts against its IP (critical blocks the IP and
 * closes all its connections on every worker). */
static void violation(struct conn *c, enum violation v) {
    struct server *srv = c->w->srv;
    count(&c->w->stats.violations[v]);
    _Static_assert(CONFIG_MAX_VIOLATIONS <= UINT16_MAX, "struct conn violations cannot reach high_violations");
    if (c->violations < UINT16_MAX)
        c->violations++;
    audit_conn(c, "SECURITY_VIOLATION", json_pack("{s:s, s:i}", "kind", VIOLATION_NAMES[v], "count", c->violations));
    if (guard_violation(&srv->guard, &c->cip, (int64_t)time(NULL)))
        server_block_ip(srv, &c->cip, srv->cfg.security.auto_block_s, "threat level critical");
    else if (c->violations >= srv->cfg.security.high_violations)
        ws_close(c, WS_CLOSE_POLICY, "threat level high");
}

void protocol_reply_later(struct server *srv, int worker, uint64_t conn_id, char *text) {
    struct reply_mail *r = malloc(sizeof(*r));
    if (!r) {
        free(text);
        return;
    }
    r->conn_id = conn_id;
    r->text = text;
    if (worker_post(&srv->workers[worker], WM_REPLY, r, 0) < 0)
        reply_mail_free(r);
}

void reply_mail_free(struct reply_mail *r) {
    free(r->text);
    free(r);
}

void reply_mail_deliver(struct worker *w, struct reply_mail *r) {
    for (struct conn *c = w->conns; c; c = c->next)
        if (c->id == r->conn_id && !c->closing && c->phase == PHASE_WS) {
            count(&w->stats.messages_sent);
            ws_send(c, WS_OP_TEXT, r->text, strlen(r->text));
            break;
        }
    reply_mail_free(r);
}

const char *protocol_threat(const struct conn *c) {
    const struct config *cfg = &c->w->srv->cfg;
    if (c->violations >= cfg->security.high_violations)
        return "high";
    return c->violations >= cfg->security.medium_violations ? "medium" : "low";
}

/* True when s looks like script injection: <script, javascript:,
 * vbscript:, <iframe, eval(, expression(, or an on<event>= attribute
 * (on at a word start), case-insensitive. */
static bool suspicious_text(const char *s, size_t n) {
    static const char *NEEDLES[] = {"<script", "javascript:", "vbscript:", "<iframe", "eval(", "expression("};
    for (size_t i = 0; i < n; i++) {
        char ch = (char)(s[i] | 0x20);
        if (ch == '<' || ch == 'j' || ch == 'v' || ch == 'e') {
            for (size_t k = 0; k < sizeof(NEEDLES) / sizeof(NEEDLES[0]); k++) {
                size_t nl = strlen(NEEDLES[k]);
                if (i + nl <= n && strncasecmp(s + i, NEEDLES[k], nl) == 0)
                    return true;
            }
        }
        if (ch == 'o' && i + 2 < n && (s[i + 1] | 0x20) == 'n' &&
            (i == 0 || !((s[i - 1] >= 'a' && s[i - 1] <= 'z') || (s[i - 1] >= 'A' && s[i - 1] <= 'Z') ||
                         (s[i - 1] >= '0' && s[i - 1] <= '9') || s[i - 1] == '_'))) {
            size_t j = i + 2, letters = 0;
            while (j < n && (((s[j] | 0x20) >= 'a' && (s[j] | 0x20) <= 'z'))) {
                j++;
                letters++;
            }
            while (j < n && (s[j] == ' ' || s[j] == '\t'))
                j++;
            if (letters && j < n && s[j] == '=')
                return true;
        }
    }
    return false;
}

static bool suspicious_json(json_t *v, int depth) {
    if (depth > 32)
        return false; /* jansson's own depth limit comes first */
    if (json_is_string(v))
        return suspicious_text(json_string_value(v), json_string_length(v));
    const char *k;
    json_t *e;
    size_t i;
    if (json_is_object(v)) {
        json_object_foreach(v, k, e) if (suspicious_text(k, strlen(k)) || suspicious_json(e, depth + 1)) return true;
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, e) if (suspicious_json(e, depth + 1)) return true;
    }
    return false;
}

void protocol_client_id(const struct conn *c, char *out, size_t len) {
    /* The instance part keeps ids unique across nodes sharing one Redis. */
    snprintf(out, len, "c-%08x%llx", c->w->srv->instance, (unsigned long long)c->id);
}

static json_t *user_json(const struct conn *c) { return c->user_id ? json_string(c->user_id) : json_null(); }

static void maybe_warn_expiry(struct conn *c) {
    if (!c->token_exp || c->expiry_warned)
        return;
    if ((int64_t)time(NULL) >= c->token_exp - EXPIRY_WARNING_S) {
        c->expiry_warned = true;
        send_json(c, json_pack("{s:s, s:I}", "type", "token_expiring", "expires_at", (json_int_t)c->token_exp * 1000));
    }
}

static void free_user_id(struct conn *c) {
    if (c->user_id != c->uid_inl)
        free(c->user_id);
    c->user_id = NULL;
}

/* A reference to the message budget of c's identity: its user's, or its IP's. */
static struct budget *identity_budget(struct conn *c) {
    struct ip16 k = guard_key(&c->w->srv->guard, &c->cip);
    return budget_for_client(&c->w->srv->budgets, c->user_id, &k);
}

void protocol_set_identity(struct conn *c, const struct identity *id) {
    free_user_id(c);
    size_t l = strlen(id->user_id);
    if (l && l < sizeof(c->uid_inl)) /* most ids: kept in the connection */
        c->user_id = memcpy(c->uid_inl, id->user_id, l + 1);
    else if (l)
        c->user_id = strdup(id->user_id);
    c->role = (int8_t)id->role;
    c->token_exp = id->exp;
    c->expiry_warned = false;
}

void protocol_on_open(struct conn *c) {
    struct server *srv = c->w->srv;
    const struct config *cfg = &srv->cfg;
    char cid[32];
    protocol_client_id(c, cid, sizeof(cid));
    count(&c->w->stats.by_role[c->role]);
    count(&c->w->stats.ws_total);
    uint64_t now = worker_now(c->w);
    c->last_ping = now;
    c->last_rx = now;
    c->connected_at = hub_now_ms();
    /* Every handshake comes through here: both texts are written directly
     * (no JSON tree), the greeting straight into its frame. */
    {
        char details[64], ip[64];
        struct jw w;
        jw_init(&w, details, sizeof(details));
        jw_lit(&w, "{\"role\":");
        jw_str(&w, role_name(c->role));
        jw_lit(&w, "}");
        jw_raw(&w, "", 1);
        ip16_format(&c->cip, ip, sizeof(ip));
        audit_event_text(&srv->audit, "CONNECTION_OPENED", cid, c->user_id, ip, details);
    }
    c->budget = identity_budget(c); /* put in protocol_release_identity */
    size_t cap = 256 + jw_str_max(cid) + jw_str_max(c->user_id);
    struct outbuf *b = c->budget ? outbuf_new(cap) : NULL;
    if (!b) {
        ws_close(c, WS_CLOSE_INTERNAL, "internal error");
        return;
    }
    struct jw w;
    jw_init(&w, (char *)outbuf_payload(b), cap);
    jw_lit(&w, "{\"type\":\"connected\",\"client_id\":");
    jw_str(&w, cid);
    jw_lit(&w, ",\"user_id\":");
    jw_str(&w, c->user_id);
    jw_lit(&w, ",\"role\":");
    jw_str(&w, role_name(c->role));
    jw_lit(&w, ",\"heartbeat_interval_s\":");
    jw_i64(&w, cfg->limits.heartbeat_interval_s);
    jw_lit(&w, ",\"limits\":{\"max_subscriptions\":");
    jw_i64(&w, srv->auth.roles.max_symbols[c->role]);
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
    count(&c->w->stats.messages_sent);
    conn_send(c, b);
    maybe_warn_expiry(c);
    protocol_persist(c, false);
}

void protocol_liveness(struct conn *c, uint64_t now) {
    const struct config *cfg = &c->w->srv->cfg;
    /* A client is only timed out after it was pinged since it last spoke
     * (heartbeat_timeout_s >= heartbeat_interval_s: config refuses less). */
    if (now - c->last_rx >= (uint64_t)cfg->limits.heartbeat_timeout_s * 1000 && c->first_ping > c->last_rx) {
        ws_close(c, WS_CLOSE_HEARTBEAT, "heartbeat timeout");
        return;
    }
    if (now - c->last_ping >= (uint64_t)cfg->limits.heartbeat_interval_s * 1000) {
        c->last_ping = now;
        if (c->first_ping <= c->last_rx)
            c->first_ping = now; /* the first ping the client has not answered */
        ws_send(c, WS_OP_PING, "", 0);
    }
}

void protocol_sweep(struct conn *c, uint64_t now) {
    const struct config *cfg = &c->w->srv->cfg;
    if (c->token_exp) {
        if ((int64_t)time(NULL) - cfg->auth.jwt_leeway_s > c->token_exp) { /* no exp + leeway: overflow */
            ws_close(c, WS_CLOSE_TOKEN_EXPIRED, "token expired");
            return;
        }
        maybe_warn_expiry(c);
    }
}

/* The identity's token bucket (shared by its connections, kept across
 * reconnects): burst = per-minute figure, refilled continuously. */
static bool rate_ok(struct conn *c) {
    return c->budget && budget_take(&c->w->srv->budgets, c->budget, worker_now(c->w) * 1000000ULL, NULL);
}

static void on_subscribe(struct conn *c, json_t *msg, json_t *id) {
    struct server *srv = c->w->srv;
    json_t *syms = json_object_get(msg, "symbols");
    if (!json_is_array(syms)) {
        send_error(c, "invalid_message", "subscribe needs symbols: [string]", id);
        violation(c, SV_INVALID_MESSAGE);
        return;
    }
    size_t n = json_array_size(syms);
    if (n > SUBSCRIBE_MAX_SYMBOLS) {
        send_error(c, "invalid_message", "at most 100 symbols per subscribe", id);
        violation(c, SV_INVALID_MESSAGE);
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (!json_is_string(json_array_get(syms, i))) {
            send_error(c, "invalid_message", "symbols must be strings", id);
            violation(c, SV_INVALID_MESSAGE);
            return;
        }
    int limit = srv->auth.roles.max_symbols[c->role];
    int have = c->nsubs;
    json_t *ok = json_array(), *invalid = json_array(), *unknown = json_array(), *over = json_array();
    int accepted_idx[SUBSCRIBE_MAX_SYMBOLS];
    int nacc = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_array_get(syms, i);
        const char *name = json_string_value(s);
        size_t len = json_string_length(s);
        if (!symbol_valid(name, len)) {
            json_array_append(invalid, s);
            continue;
        }
        int idx = symbols_find(&srv->syms, name, len);
        if (idx < 0) {
            json_array_append(unknown, s);
            continue;
        }
        bool dup = false;
        for (int k = 0; k < nacc && !dup; k++)
            dup = accepted_idx[k] == idx;
        if (dup)
            continue;
        if (!subs_has(c, (uint32_t)idx)) {
            if (have >= limit) {
                json_array_append(over, s);
                continue;
            }
            have++;
        }
        accepted_idx[nacc++] = idx;
        json_array_append(ok, s);
    }
    if (nacc > 0 || (json_array_size(invalid) + json_array_size(unknown) + json_array_size(over)) == 0)
        reply(c, json_pack("{s:s, s:o}", "type", "subscription_confirmed", "symbols", ok), id);
    else
        json_decref(ok);
    struct {
        json_t *list;
        const char *reason;
    } fails[] = {{invalid, "invalid_symbol"}, {unknown, "unknown_symbol"}, {over, "limit_exceeded"}};
    for (size_t f = 0; f < 3; f++) {
        if (json_array_size(fails[f].list))
            reply(c, json_pack("{s:s, s:o, s:s}", "type", "subscription_failed", "symbols", fails[f].list, "reason",
                               fails[f].reason), id);
        else
            json_decref(fails[f].list);
    }
    json_t *added = json_array();
    for (int k = 0; k < nacc; k++) {
        bool had = subs_has(c, (uint32_t)accepted_idx[k]);
        if (subs_add(c, (uint32_t)accepted_idx[k]) < 0) {
            send_error(c, "internal_error", "out of memory", id);
            break;
        }
        if (!had)
            json_array_append_new(added, json_string(srv->syms.names[accepted_idx[k]]));
    }
    if (json_array_size(added)) {
        audit_conn(c, "SUBSCRIPTION_ADDED", json_pack("{s:o}", "symbols", added));
        persist_subs(c);
    } else {
        json_decref(added);
    }
}

static void on_unsubscribe(struct conn *c, json_t *msg, json_t *id) {
    json_t *syms = json_object_get(msg, "symbols");
    size_t n = json_array_size(syms);
    bool ok = json_is_array(syms) && n <= SUBSCRIBE_MAX_SYMBOLS;
    for (size_t i = 0; ok && i < n; i++)
        ok = json_is_string(json_array_get(syms, i));
    if (!ok) {
        send_error(c, "invalid_message", "unsubscribe needs symbols: [string] (at most 100)", id);
        violation(c, SV_INVALID_MESSAGE);
        return;
    }
    json_t *removed = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_array_get(syms, i);
        int idx = symbols_find(&c->w->srv->syms, json_string_value(s), json_string_length(s));
        if (idx >= 0 && subs_has(c, (uint32_t)idx)) {
            subs_remove(c, (uint32_t)idx);
            json_array_append(removed, s);
        }
    }
    if (json_array_size(removed)) {
        audit_conn(c, "SUBSCRIPTION_REMOVED", json_pack("{s:o}", "symbols", removed));
        persist_subs(c);
    } else {
        json_decref(removed);
    }
    reply(c, json_pack("{s:s, s:O}", "type", "unsubscription_confirmed", "symbols", syms), id);
}

static void on_authenticate(struct conn *c, json_t *msg, json_t *id) {
    struct auth *a = &c->w->srv->auth;
    json_t *tok = json_object_get(msg, "token"), *key = json_object_get(msg, "api_key");
    struct identity who;
    const char *why = NULL;
    int rc;
    if (json_is_string(tok))
        rc = auth_token(a, json_string_value(tok), json_string_length(tok), &who, &why);
    else if (json_is_string(key))
        rc = auth_api_key(a, json_string_value(key), json_string_length(key), &who, &why);
    else {
        send_error(c, "invalid_message", "authenticate needs token or api_key (string)", id);
        violation(c, SV_INVALID_MESSAGE);
        return;
    }
    if (rc == 0 && who.user_id[0] && c->guarded && !guard_switch_user(&c->w->srv->guard, c->user_id, who.user_id)) {
        rc = 429;
        why = "connection limit per user reached";
    }
    if (rc != 0) {
        audit_conn(c, "AUTH_FAILED", json_pack("{s:s, s:s}", "reason", why, "stage", "authenticate"));
        send_error(c, "auth_failed", why, id);
        violation(c, SV_AUTH_FAILED);
        return;
    }
    if (c->redis_user && c->user_id && strcmp(c->user_id, who.user_id) != 0) {
        /* Cluster-wide counts follow the handshake identity only: release it. */
        redis_engine_release_user(&c->w->srv->redis, c->user_id);
        c->redis_user = false;
    }
    atomic_fetch_sub_explicit(&c->w->stats.by_role[c->role], 1, memory_order_relaxed);
    protocol_set_identity(c, &who);
    count(&c->w->stats.by_role[c->role]);
    struct budget *nb = identity_budget(c);
    if (nb) { /* the new identity's budget from now on (out of memory: the old one stays) */
        budget_put(&c->w->srv->budgets, c->budget, worker_now(c->w) * 1000000ULL);
        c->budget = nb;
    }
    reply(c, json_pack("{s:s, s:o, s:s}", "type", "authenticated", "user_id", user_json(c), "role", role_name(c->role)),
          id);
    maybe_warn_expiry(c);
}

/* The request id as JSON text (for replies made on another thread). */
static char *id_text(json_t *id) { return id ? json_dumps(id, JSON_ENCODE_ANY) : NULL; }

char *protocol_history_text(struct server *srv, uint32_t sym, const struct tick *t, uint32_t n, const char *id_json) {
    const char *name = srv->syms.names[sym];
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

char *protocol_analysis_text(struct server *srv, uint32_t sym, const struct tick *t, uint32_t n, int window_s,
                             const char *id_json) {
    struct analysis a;
    hub_analyze(t, n, hub_now_ms(), window_s, &a);
    json_t *o = json_pack("{s:s, s:s, s:i, s:f, s:f, s:f, s:f, s:f, s:f, s:i}", "type", "analysis_result", "symbol",
                          srv->syms.names[sym], "window_s", window_s, "open", a.open, "high", a.high, "low", a.low,
                          "close", a.close, "vwap", a.vwap, "volume", a.volume, "count", (int)a.count);
    if (o && id_json) {
        json_t *id = json_loads(id_json, JSON_DECODE_ANY, NULL);
        if (id)
            json_object_set_new(o, "id", id);
    }
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
    json_decref(o);
    return s;
}

/* symbol field of a query: a known symbol, or an error reply. */
static int query_symbol(struct conn *c, json_t *msg, json_t *id) {
    json_t *s = json_object_get(msg, "symbol");
    int sym = json_is_string(s) && symbol_valid(json_string_value(s), json_string_length(s))
                  ? symbols_find(&c->w->srv->syms, json_string_value(s), json_string_length(s))
                  : -2;
    if (sym < 0) {
        send_error(c, "invalid_message", sym == -2 ? "symbol must be a valid symbol" : "unknown symbol", id);
        violation(c, SV_INVALID_MESSAGE);
    }
    return sym;
}

/* An integer field in lo..hi (def when absent), or an error reply. */
static bool int_field(struct conn *c, json_t *msg, const char *name, long lo, long hi, long def, long *out,
                      json_t *id) {
    json_t *v = json_object_get(msg, name);
    if (!v) {
        *out = def;
        if (def >= lo)
            return true;
    } else if (json_is_integer(v) && json_integer_value(v) >= lo && json_integer_value(v) <= hi) {
        *out = (long)json_integer_value(v);
        return true;
    }
    char text[96];
    snprintf(text, sizeof(text), "%s must be an integer in %ld..%ld", name, lo, hi);
    send_error(c, "invalid_message", text, id);
    violation(c, SV_INVALID_MESSAGE);
    return false;
}

/* get_history and analysis: from the shared stream when Redis is up, else
 * from this node's ring. */
static void on_query(struct conn *c, json_t *msg, json_t *id, bool analysis) {
    struct server *srv = c->w->srv;
    int sym = query_symbol(c, msg, id);
    long v;
    if (sym < 0 || !(analysis ? int_field(c, msg, "window_s", 1, 3600, 300, &v, id)
                              : int_field(c, msg, "limit", 1, 1000, 100, &v, id)))
        return;
    if (redis_engine_up(&srv->redis)) {
        struct redis_query *q = calloc(1, sizeof(*q));
        if (q) {
            q->worker = c->w->id;
            q->conn_id = c->id;
            q->id_json = id_text(id);
            q->analysis = analysis;
            q->sym = (uint32_t)sym;
            q->limit = analysis ? 0 : (uint32_t)v;
            q->window_s = analysis ? (int)v : 0;
            if (redis_engine_post(&srv->redis, RM_QUERY, q, 0) == 0)
                return;
        }
    }
    uint32_t cap = analysis ? srv->hub.history_size : (uint32_t)v;
    struct tick *t = malloc(sizeof(*t) * cap);
    char *idj = id_text(id);
    char *text = NULL;
    if (t) {
        uint32_t n = hub_history(&srv->hub, (uint32_t)sym, cap, t);
        text = analysis ? protocol_analysis_text(srv, (uint32_t)sym, t, n, (int)v, idj)
                        : protocol_history_text(srv, (uint32_t)sym, t, n, idj);
    }
    free(t);
    free(idj);
    if (!text) {
        send_error(c, "internal_error", "out of memory", id);
        return;
    }
    count(&c->w->stats.messages_sent);
    ws_send(c, WS_OP_TEXT, text, strlen(text));
    free(text);
}

static void on_set_options(struct conn *c, json_t *msg, json_t *id) {
    long ms;
    if (!json_object_get(msg, "batch_ms")) {
        send_error(c, "invalid_message", "set_options needs batch_ms: 0..1000", id);
        violation(c, SV_INVALID_MESSAGE);
        return;
    }
    if (!int_field(c, msg, "batch_ms", 0, 1000, 0, &ms, id))
        return;
    if (subs_set_batch(c, (uint16_t)ms) < 0) {
        send_error(c, "internal_error", "out of memory", id);
        return;
    }
    reply(c, json_pack("{s:s, s:i}", "type", "options_set", "batch_ms", (int)ms), id);
}

static void on_portfolio_subscribe(struct conn *c, json_t *id) {
    if (!c->user_id) {
        send_error(c, "forbidden", "portfolio needs an authenticated user", id);
        violation(c, SV_FORBIDDEN);
        return;
    }
    c->portfolio = true;
    reply(c, json_pack("{s:s}", "type", "portfolio_subscribed"), id);
    char *u = strdup(c->user_id);
    if (u)
        broker_post(&c->w->srv->broker, BM_PORTFOLIO, u, 0, 0);
}

static void on_trade(struct conn *c, json_t *msg, json_t *id) {
    struct server *srv = c->w->srv;
    if (!c->user_id) {
        send_error(c, "forbidden", "trading needs an authenticated user", id);
        violation(c, SV_FORBIDDEN);
        return;
    }
    int sym = query_symbol(c, msg, id);
    if (sym < 0)
        return;
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
        send_error(c, "invalid_message", bad, id);
        violation(c, SV_INVALID_MESSAGE);
        return;
    }
    struct order *o = calloc(1, sizeof(*o));
    if (!o) {
        send_error(c, "internal_error", "out of memory", id);
        return;
    }
    o->worker = c->w->id;
    o->conn_id = c->id;
    o->reply_id = id_text(id);
    snprintf(o->user, sizeof(o->user), "%s", c->user_id);
    protocol_client_id(c, o->client, sizeof(o->client));
    o->sym = (uint32_t)sym;
    o->side = strcmp(side, "buy") ? SIDE_SELL : SIDE_BUY;
    o->type = limit ? ORDER_LIMIT : ORDER_MARKET;
    o->quantity = json_number_value(qty);
    o->limit_price = limit ? json_number_value(lim) : 0;
    if (broker_post(&srv->broker, BM_ORDER, o, 0, 0) < 0)
        reply(c, json_pack("{s:s, s:s}", "type", "trade_rejected", "reason", "unavailable"), id);
}

static void on_publish(struct conn *c, json_t *msg, json_t *id) {
    const char *why = NULL;
    int n = publish_updates(&c->w->srv->hub, json_object_get(msg, "updates"), &why);
    if (n < 0) {
        send_error(c, "invalid_message", why, id);
        violation(c, SV_INVALID_MESSAGE);
        return;
    }
    reply(c, json_pack("{s:s, s:i}", "type", "published", "count", n), id);
}

void protocol_on_message(struct conn *c, const char *data, size_t len) {
    struct worker *w = c->w;
    json_t *msg = json_loadb(data, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL);
    if (!msg) {
        count(&w->stats.received[ACT_COUNT]);
        send_error(c, "invalid_json", "message is not valid JSON", NULL);
        violation(c, SV_INVALID_MESSAGE);
        return;
    }
    json_t *id = json_object_get(msg, "id");
    if (!json_is_object(msg) ||
        (id && !((json_is_string(id) && json_string_length(id) <= 64) || json_is_integer(id)))) {
        count(&w->stats.received[ACT_COUNT]);
        send_error(c, "invalid_message",
                   json_is_object(msg) ? "id must be a string of at most 64 characters or an integer"
                                       : "message must be a JSON object",
                   NULL);
        violation(c, SV_INVALID_MESSAGE);
        json_decref(msg);
        return;
    }
    const char *type = json_string_value(json_object_get(msg, "type"));
    int act = type ? action_for_type(type) : -1;
    count(&w->stats.received[act < 0 ? ACT_COUNT : act]);
    if (!type) {
        send_error(c, "invalid_message", "missing string field 'type'", id);
        violation(c, SV_INVALID_MESSAGE);
    } else if (act < 0) {
        send_error(c, "unknown_type", "unknown message type", id);
        violation(c, SV_INVALID_MESSAGE);
    } else if (!rate_ok(c)) {
        count(&w->stats.rate_limited);
        audit_conn(c, "RATE_LIMITED", json_pack("{s:s}", "type", type));
        send_error(c, "rate_limited", "too many messages; slow down", id);
        violation(c, SV_RATE_LIMITED);
    } else if (!roles_allows(&w->srv->auth.roles, c->role, (enum action)act)) {
        send_error(c, "forbidden", "your role may not do this", id);
        violation(c, SV_FORBIDDEN);
    } else if (w->srv->cfg.security.suspicious_content && suspicious_json(msg, 0)) {
        send_error(c, "suspicious_content", "message dropped: it contains a script-injection pattern", id);
        violation(c, SV_SUSPICIOUS);
    } else {
        if (act != ACT_HEARTBEAT)
            audit_conn(c, "MESSAGE_RECEIVED", json_pack("{s:s}", "type", type));
        switch (act) {
        case ACT_HEARTBEAT:
            reply(c, json_pack("{s:s, s:I}", "type", "heartbeat_ack", "server_time", (json_int_t)hub_now_ms()), id);
            break;
        case ACT_SUBSCRIBE:
            on_subscribe(c, msg, id);
            break;
        case ACT_UNSUBSCRIBE:
            on_unsubscribe(c, msg, id);
            break;
        case ACT_AUTHENTICATE:
            on_authenticate(c, msg, id);
            break;
        case ACT_PUBLISH:
            on_publish(c, msg, id);
            break;
        case ACT_ADMIN_BROADCAST:
            admin_ws_broadcast(c, msg, id);
            break;
        case ACT_SET_OPTIONS:
            on_set_options(c, msg, id);
            break;
        case ACT_DATA:
            on_query(c, msg, id, false);
            break;
        case ACT_ANALYSIS:
            on_query(c, msg, id, true);
            break;
        case ACT_PORTFOLIO:
            on_portfolio_subscribe(c, id);
            break;
        case ACT_TRADE:
            on_trade(c, msg, id);
            break;
        default:
            send_error(c, "unknown_type", "this message type is not available in this version", id);
            break;
        }
    }
    json_decref(msg);
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
    struct server *srv = c->w->srv;
    if (c->nsubs) {
        json_t *syms = json_array();
        for (uint32_t i = 0; i < c->nsubs; i++)
            json_array_append_new(syms, json_string(srv->syms.names[c->subs[i].sym]));
        audit_conn(c, "SUBSCRIPTION_REMOVED", json_pack("{s:o, s:s}", "symbols", syms, "reason", "disconnect"));
    }
    subs_batch_release(c);
    subs_remove_all(c);
    audit_conn(c, "CONNECTION_CLOSED", json_pack("{s:i, s:s}", "code", c->close_code, "reason", DR_LABELS[reason_of(c)]));
    if (srv->redis.enabled) {
        struct redis_note *n = calloc(1, sizeof(*n));
        if (n) {
            n->kind = NOTE_CLOSE;
            protocol_client_id(c, n->cid, sizeof(n->cid));
            n->user = c->redis_user && c->user_id ? strdup(c->user_id) : NULL;
            redis_engine_post(&srv->redis, RM_NOTE, n, 0);
        }
        c->redis_user = false;
    }
    atomic_fetch_sub_explicit(&c->w->stats.by_role[c->role], 1, memory_order_relaxed);
    count(&c->w->stats.disconnects[reason_of(c)]);
    protocol_release_identity(c);
}

void protocol_release_identity(struct conn *c) {
    struct server *srv = c->w->srv;
    budget_put(&srv->budgets, c->budget, worker_now(c->w) * 1000000ULL);
    c->budget = NULL;
    if (c->guarded) {
        guard_release(&srv->guard, &c->cip, c->user_id);
        c->guarded = false;
    }
    if (c->redis_user && c->user_id) { /* refused before the upgrade */
        redis_engine_release_user(&srv->redis, c->user_id);
        c->redis_user = false;
    }
    free_user_id(c);
}

static void persist_subs(struct conn *c) {
    struct server *srv = c->w->srv;
    if (!srv->redis.enabled)
        return;
    json_t *a = json_array();
    for (uint32_t i = 0; i < c->nsubs; i++)
        json_array_append_new(a, json_string(srv->syms.names[c->subs[i].sym]));
    struct redis_note *n = calloc(1, sizeof(*n));
    char *text = json_dumps(a, JSON_COMPACT | JSON_REAL_PRECISION(15));
    json_decref(a);
    if (!n || !text) {
        free(n);
        free(text);
        return;
    }
    n->kind = NOTE_SUBS;
    protocol_client_id(c, n->cid, sizeof(n->cid));
    n->text = text;
    redis_engine_post(&srv->redis, RM_NOTE, n, 0);
}

void protocol_persist(struct conn *c, bool resync) {
    struct server *srv = c->w->srv;
    if (!srv->redis.enabled)
        return;
    char ip[64];
    ip16_format(&c->cip, ip, sizeof(ip));
    json_t *o = json_pack("{s:s, s:s?, s:s, s:s, s:I}", "node", srv->redis.node, "user_id", c->user_id, "role",
                          role_name(c->role), "ip", ip, "connected_at", (json_int_t)c->connected_at);
    struct redis_note *n = calloc(1, sizeof(*n));
    char *text = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
    json_decref(o);
    if (!n || !text) {
        free(n);
        free(text);
        return;
    }
    n->kind = NOTE_OPEN;
    n->resync = resync;
    protocol_client_id(c, n->cid, sizeof(n->cid));
    n->text = text;
    if (resync && c->user_id) { /* the resync rebuilds the node's user counts */
        n->user = strdup(c->user_id);
        c->redis_user = n->user != NULL;
    }
    redis_engine_post(&srv->redis, RM_NOTE, n, 0);
    if (resync || c->nsubs)
        persist_subs(c);
}
