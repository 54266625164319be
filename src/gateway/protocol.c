/* protocol.c - the gateway's JSON protocol; see protocol.h: the gate every
 * message goes through, the dispatch to its family's handler (msg_*.c), and
 * the helpers they share (protocol_internal.h). A connection's life, from
 * greeting to release, is in lifecycle.c.
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
#include "gateway/admin.h"
#include "gateway/protocol_internal.h"
#include "net/conn.h"
#include "net/worker.h"
#include "pubsub/hub.h"
#include "ws/frame.h"
#include "net/websocket.h"

char *proto_dump(json_t *o) {
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
    json_decref(o);
    return s;
}

void proto_send_text(struct conn *c, const char *text) {
    proto_count(&c->w->stats.messages_sent);
    ws_send(c, WS_OP_TEXT, text, strlen(text));
}

void proto_send_json(struct conn *c, json_t *o) {
    char *s = proto_dump(o);
    if (!s) {
        ws_close(c, WS_CLOSE_INTERNAL, "internal error");
        return;
    }
    proto_send_text(c, s);
    free(s);
}

/* The id echoed is a string <= 64 chars or an integer (the gate checked). */
void proto_reply(struct conn *c, json_t *o, json_t *id) {
    if (o && id)
        json_object_set(o, "id", id);
    proto_send_json(c, o);
}

void proto_send_error(struct conn *c, const char *code, const char *msg, json_t *id) {
    proto_reply(c, json_pack("{s:s, s:s, s:s}", "type", "error", "code", code, "message", msg), id);
}

static const char *VIOLATION_NAMES[SV_COUNT] = {"rate_limited", "forbidden", "invalid_message", "auth_failed",
                                                "suspicious_content"};

void proto_audit(struct conn *c, const char *event, json_t *details) {
    char cid[32], ip[64];
    protocol_client_id(c, cid, sizeof(cid));
    ip16_format(&c->cip, ip, sizeof(ip));
    audit_event(gateway_of(c)->audit, event, cid, session_of(c)->user_id, ip, details);
}

/* Critical blocks the IP on every worker. */
void proto_violation(struct conn *c, enum violation v) {
    struct gateway *gw = gateway_of(c);
    proto_count(&c->w->stats.violations[v]);
    _Static_assert(CONFIG_MAX_VIOLATIONS <= UINT16_MAX, "struct conn violations cannot reach high_violations");
    if (session_of(c)->violations < UINT16_MAX)
        session_of(c)->violations++;
    proto_audit(c, "SECURITY_VIOLATION", json_pack("{s:s, s:i}", "kind", VIOLATION_NAMES[v], "count", session_of(c)->violations));
    if (guard_violation(gw->guard, &c->cip, (int64_t)time(NULL)))
        gateway_block_ip(gw, &c->cip, gw->cfg->security.auto_block_s, "threat level critical");
    else if (session_of(c)->violations >= gw->cfg->security.high_violations)
        ws_close(c, WS_CLOSE_POLICY, "threat level high");
}

void proto_refuse(struct conn *c, const char *code, const char *msg, json_t *id, enum violation v) {
    proto_send_error(c, code, msg, id);
    proto_violation(c, v);
}

static void run_reply(struct worker *w, void *text, uint64_t conn_id, uint64_t unused) {
    struct conn *c = conn_find(w, conn_id);
    if (c && c->phase == PHASE_WS)
        proto_send_text(c, text);
    free(text);
}

static void drop_reply(void *text, uint64_t conn_id, uint64_t unused) { free(text); }
static const struct worker_mail REPLY_MAIL = {"reply", run_reply, drop_reply};

void protocol_reply_later(struct gateway *gw, int worker, uint64_t conn_id, char *text) {
    if (worker_post(&gw->workers[worker], &REPLY_MAIL, text, conn_id, 0) < 0)
        free(text);
}

const char *protocol_threat(const struct conn *c) {
    const struct config *cfg = gateway_of(c)->cfg;
    if (session_of(c)->violations >= cfg->security.high_violations)
        return "high";
    return session_of(c)->violations >= cfg->security.medium_violations ? "medium" : "low";
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
    snprintf(out, len, "c-%08x%llx", gateway_of(c)->instance, (unsigned long long)c->id);
}

/* The identity's token bucket (shared by its connections, kept across
 * reconnects): burst = per-minute figure, refilled continuously. */
static bool rate_ok(struct conn *c) {
    return session_of(c)->budget && budget_take(gateway_of(c)->budgets, session_of(c)->budget, worker_now(c->w) * 1000000ULL, NULL);
}

char *proto_id_text(json_t *id) { return id ? json_dumps(id, JSON_ENCODE_ANY) : NULL; }

int proto_query_symbol(struct conn *c, json_t *msg, json_t *id) {
    json_t *s = json_object_get(msg, "symbol");
    int sym = json_is_string(s) && symbol_valid(json_string_value(s), json_string_length(s))
                  ? symbols_find(gateway_of(c)->syms, json_string_value(s), json_string_length(s))
                  : -2;
    if (sym < 0)
        proto_refuse(c, "invalid_message", sym == -2 ? "symbol must be a valid symbol" : "unknown symbol", id,
                     SV_INVALID_MESSAGE);
    return sym;
}

bool proto_int_field(struct conn *c, json_t *msg, const char *name, long lo, long hi, long def, long *out,
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
    proto_refuse(c, "invalid_message", text, id, SV_INVALID_MESSAGE);
    return false;
}

void protocol_on_message(struct conn *c, const char *data, size_t len) {
    struct worker *w = c->w;
    json_t *msg = json_loadb(data, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL);
    if (!msg) {
        proto_count(&gateway_worker(w)->stats.received[ACT_COUNT]);
        proto_refuse(c, "invalid_json", "message is not valid JSON", NULL, SV_INVALID_MESSAGE);
        return;
    }
    json_t *id = json_object_get(msg, "id");
    if (!json_is_object(msg) ||
        (id && !((json_is_string(id) && json_string_length(id) <= 64) || json_is_integer(id)))) {
        proto_count(&gateway_worker(w)->stats.received[ACT_COUNT]);
        proto_refuse(c, "invalid_message",
                     json_is_object(msg) ? "id must be a string of at most 64 characters or an integer"
                                         : "message must be a JSON object",
                     NULL, SV_INVALID_MESSAGE);
        json_decref(msg);
        return;
    }
    const char *type = json_string_value(json_object_get(msg, "type"));
    int act = type ? action_for_type(type) : -1;
    proto_count(&gateway_worker(w)->stats.received[act < 0 ? ACT_COUNT : act]);
    if (!type) {
        proto_refuse(c, "invalid_message", "missing string field 'type'", id, SV_INVALID_MESSAGE);
    } else if (act < 0) {
        proto_refuse(c, "unknown_type", "unknown message type", id, SV_INVALID_MESSAGE);
    } else if (!rate_ok(c)) {
        proto_count(&w->stats.rate_limited);
        proto_audit(c, "RATE_LIMITED", json_pack("{s:s}", "type", type));
        proto_refuse(c, "rate_limited", "too many messages; slow down", id, SV_RATE_LIMITED);
    } else if (!roles_allows(&gateway_of_worker(w)->auth->roles, session_of(c)->role, (enum action)act)) {
        proto_refuse(c, "forbidden", "your role may not do this", id, SV_FORBIDDEN);
    } else if (gateway_of_worker(w)->cfg->security.suspicious_content && suspicious_json(msg, 0)) {
        proto_refuse(c, "suspicious_content", "message dropped: it contains a script-injection pattern", id,
                     SV_SUSPICIOUS);
    } else {
        if (act != ACT_HEARTBEAT)
            proto_audit(c, "MESSAGE_RECEIVED", json_pack("{s:s}", "type", type));
        switch (act) {
        case ACT_HEARTBEAT:
            proto_reply(c, json_pack("{s:s, s:I}", "type", "heartbeat_ack", "server_time", (json_int_t)hub_now_ms()),
                        id);
            break;
        case ACT_SUBSCRIBE:
            msg_subscribe(c, msg, id);
            break;
        case ACT_UNSUBSCRIBE:
            msg_unsubscribe(c, msg, id);
            break;
        case ACT_AUTHENTICATE:
            msg_authenticate(c, msg, id);
            break;
        case ACT_PUBLISH:
            msg_publish(c, msg, id);
            break;
        case ACT_ADMIN_BROADCAST:
            admin_ws_broadcast(c, msg, id);
            break;
        case ACT_SET_OPTIONS:
            msg_set_options(c, msg, id);
            break;
        case ACT_DATA:
            msg_query(c, msg, id, false);
            break;
        case ACT_ANALYSIS:
            msg_query(c, msg, id, true);
            break;
        case ACT_PORTFOLIO:
            msg_portfolio_subscribe(c, id);
            break;
        case ACT_TRADE:
            msg_trade(c, msg, id);
            break;
        default:
            proto_send_error(c, "unknown_type", "this message type is not available in this version", id);
            break;
        }
    }
    json_decref(msg);
}
