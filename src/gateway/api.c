/* api.c - POST /api/publish; see api.h. */
#include "gateway/api.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "auth/auth.h"
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
#include "feed/publish.h"
#include "net/conn.h"
#include "net/http.h"
#include "gateway/http_guard.h"
#include "pubsub/userevents.h"

/* Answers 401/403 unless the request carries credentials of a role that
 * may publish. Anonymous never may. Either refusal is a violation of the
 * client IP (credential guessing must not be free). */
static bool authorize_publish(struct conn *c, bool keep) {
    struct identity who;
    if (!http_guard_identify(c, keep, "api", &who))
        return false;
    if (!(roles_allows(&gateway_of(c)->auth->roles, who.role, ACT_PUBLISH) || who.role == ROLE_ADMIN ||
          who.role == ROLE_SUPER_ADMIN)) {
        http_guard_forbidden(c, keep, &who, "api", "role may not publish");
        return false;
    }
    return true;
}

void api_publish(struct conn *c, bool keep) {
    if (!authorize_publish(c, keep))
        return;
    json_t *body = json_loadb(c->http->body ? c->http->body : "", c->http->body_len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(body)) {
        json_decref(body);
        conn_http_error(c, 400, "invalid_json", "body must be a JSON object", NULL, keep);
        return;
    }
    json_t *updates = json_object_get(body, "updates");
    json_t *events = json_object_get(body, "user_events");
    const char *why = NULL;
    size_t nev = 0;
    if (events) {
        bool ok = json_is_array(events) && json_array_size(events) <= PUBLISH_MAX_UPDATES;
        size_t i;
        json_t *e;
        if (ok)
            json_array_foreach(events, i, e) ok = ok && json_is_object(e) &&
                                                  json_is_string(json_object_get(e, "user_id")) &&
                                                  json_is_object(json_object_get(e, "event"));
        if (!ok) {
            json_decref(body);
            conn_http_error(c, 400, "invalid_message",
                            "user_events must be [{\\\"user_id\\\": string, \\\"event\\\": object}]", NULL, keep);
            return;
        }
        nev = json_array_size(events);
    }
    int n = 0;
    if (updates) {
        n = publish_updates(gateway_of(c)->hub, updates, &why);
        if (n < 0) {
            json_decref(body);
            conn_http_error(c, 400, "invalid_message", why, NULL, keep);
            return;
        }
    }
    /* Each user event reaches that user's portfolio subscribers, on every
     * node when Redis is on. */
    for (size_t i = 0; i < nev; i++) {
        json_t *e = json_array_get(events, i);
        user_event_send(gateway_of(c)->events, json_string_value(json_object_get(e, "user_id")),
                        json_pack("{s:s, s:O}", "type", "portfolio_update", "event", json_object_get(e, "event")),
                        true, true);
    }
    json_decref(body);
    char out[96];
    int len = snprintf(out, sizeof(out), "{\"published\":%d,\"user_events\":%zu}", n, nev);
    conn_http_respond(c, 200, "application/json", out, (size_t)len, NULL, keep);
}
