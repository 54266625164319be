/* msg_auth.c - the authenticate message: a token or an API key gives an
 * open connection a new identity (role, limits, message budget). */
#include <jansson.h>
#include <string.h>

#include "auth/auth.h"
#include "cluster/engine.h"
#include "gateway/protocol_internal.h"
#include "net/conn.h"
#include "net/worker.h"

static json_t *user_json(const struct conn *c) { return session_of(c)->user_id ? json_string(session_of(c)->user_id) : json_null(); }

void msg_authenticate(struct conn *c, json_t *msg, json_t *id) {
    struct auth *a = gateway_of(c)->auth;
    json_t *tok = json_object_get(msg, "token"), *key = json_object_get(msg, "api_key");
    struct identity who;
    const char *why = NULL;
    int rc;
    if (json_is_string(tok))
        rc = auth_token(a, json_string_value(tok), json_string_length(tok), &who, &why);
    else if (json_is_string(key))
        rc = auth_api_key(a, json_string_value(key), json_string_length(key), &who, &why);
    else {
        proto_refuse(c, "invalid_message", "authenticate needs token or api_key (string)", id,
                     SV_INVALID_MESSAGE);
        return;
    }
    if (rc == 0 && who.user_id[0] && session_of(c)->guarded && !guard_switch_user(gateway_of(c)->guard, session_of(c)->user_id, who.user_id)) {
        rc = 429;
        why = "connection limit per user reached";
    }
    if (rc != 0) {
        auth_identity_release(&who);
        proto_audit(c, "AUTH_FAILED", json_pack("{s:s, s:s}", "reason", why, "stage", "authenticate"));
        proto_refuse(c, "auth_failed", why, id, SV_AUTH_FAILED);
        return;
    }
    if (session_of(c)->redis_user && session_of(c)->user_id && strcmp(session_of(c)->user_id, who.user_id) != 0) {
        /* Cluster-wide counts follow the handshake identity only: release it. */
        redis_engine_release_user(gateway_of(c)->redis, session_of(c)->user_id);
        session_of(c)->redis_user = false;
    }
    atomic_fetch_sub_explicit(&gateway_worker(c->w)->stats.by_role[session_of(c)->role], 1, memory_order_relaxed);
    protocol_set_identity(c, &who);
    proto_count(&gateway_worker(c->w)->stats.by_role[session_of(c)->role]);
    struct budget *nb = proto_identity_budget(c);
    if (nb) { /* the new identity's budget from now on (out of memory: the old one stays) */
        budget_put(gateway_of(c)->budgets, session_of(c)->budget, worker_now(c->w) * 1000000ULL);
        session_of(c)->budget = nb;
    }
    proto_reply(c,
                json_pack("{s:s, s:o, s:s}", "type", "authenticated", "user_id", user_json(c), "role",
                          role_name(session_of(c)->role)),
                id);
    proto_reapply_entitlements(c);
    proto_maybe_warn_expiry(c);
}
