/* msg_subscribe.c - the price stream's messages: subscribe, unsubscribe
 * (per symbol, within the role's limit) and set_options (price batching). */
#include <jansson.h>
#include <stdbool.h>

#include "gateway/protocol_internal.h"
#include "net/conn.h"
#include "net/worker.h"
#include "pubsub/subs.h"
#include "pubsub/symbols.h"

#define SUBSCRIBE_MAX_SYMBOLS 100

void msg_subscribe(struct conn *c, json_t *msg, json_t *id) {
    struct gateway *gw = gateway_of(c);
    json_t *syms = json_object_get(msg, "symbols");
    if (!json_is_array(syms)) {
        proto_refuse(c, "invalid_message", "subscribe needs symbols: [string]", id, SV_INVALID_MESSAGE);
        return;
    }
    size_t n = json_array_size(syms);
    if (n > SUBSCRIBE_MAX_SYMBOLS) {
        proto_refuse(c, "invalid_message", "at most 100 symbols per subscribe", id, SV_INVALID_MESSAGE);
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (!json_is_string(json_array_get(syms, i))) {
            proto_refuse(c, "invalid_message", "symbols must be strings", id, SV_INVALID_MESSAGE);
            return;
        }
    int limit = gw->auth->roles.max_symbols[session_of(c)->role];
    int have = conn_subs(c)->nsubs;
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
        int idx = symbols_find(gw->syms, name, len);
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
        proto_reply(c, json_pack("{s:s, s:o}", "type", "subscription_confirmed", "symbols", ok), id);
    else
        json_decref(ok);
    struct {
        json_t *list;
        const char *reason;
    } fails[] = {{invalid, "invalid_symbol"}, {unknown, "unknown_symbol"}, {over, "limit_exceeded"}};
    for (size_t f = 0; f < 3; f++) {
        if (json_array_size(fails[f].list))
            proto_reply(c,
                        json_pack("{s:s, s:o, s:s}", "type", "subscription_failed", "symbols", fails[f].list,
                                  "reason", fails[f].reason),
                        id);
        else
            json_decref(fails[f].list);
    }
    json_t *added = json_array();
    for (int k = 0; k < nacc; k++) {
        bool had = subs_has(c, (uint32_t)accepted_idx[k]);
        if (subs_add(c, (uint32_t)accepted_idx[k]) < 0) {
            proto_send_error(c, "internal_error", "out of memory", id);
            break;
        }
        if (!had)
            json_array_append_new(added, json_string(gw->syms->names[accepted_idx[k]]));
    }
    if (json_array_size(added)) {
        proto_audit(c, "SUBSCRIPTION_ADDED", json_pack("{s:o}", "symbols", added));
        proto_persist_subs(c);
    } else {
        json_decref(added);
    }
}

void msg_unsubscribe(struct conn *c, json_t *msg, json_t *id) {
    json_t *syms = json_object_get(msg, "symbols");
    size_t n = json_array_size(syms);
    bool ok = json_is_array(syms) && n <= SUBSCRIBE_MAX_SYMBOLS;
    for (size_t i = 0; ok && i < n; i++)
        ok = json_is_string(json_array_get(syms, i));
    if (!ok) {
        proto_refuse(c, "invalid_message", "unsubscribe needs symbols: [string] (at most 100)", id,
                     SV_INVALID_MESSAGE);
        return;
    }
    json_t *removed = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_array_get(syms, i);
        int idx = symbols_find(gateway_of(c)->syms, json_string_value(s), json_string_length(s));
        if (idx >= 0 && subs_has(c, (uint32_t)idx)) {
            subs_remove(c, (uint32_t)idx);
            json_array_append(removed, s);
        }
    }
    if (json_array_size(removed)) {
        proto_audit(c, "SUBSCRIPTION_REMOVED", json_pack("{s:o}", "symbols", removed));
        proto_persist_subs(c);
    } else {
        json_decref(removed);
    }
    proto_reply(c, json_pack("{s:s, s:O}", "type", "unsubscription_confirmed", "symbols", syms), id);
}

void msg_set_options(struct conn *c, json_t *msg, json_t *id) {
    long ms;
    if (!json_object_get(msg, "batch_ms")) {
        proto_refuse(c, "invalid_message", "set_options needs batch_ms: 0..1000", id, SV_INVALID_MESSAGE);
        return;
    }
    if (!proto_int_field(c, msg, "batch_ms", 0, 1000, 0, &ms, id))
        return;
    if (subs_set_batch(c, (uint16_t)ms) < 0) {
        proto_send_error(c, "internal_error", "out of memory", id);
        return;
    }
    proto_reply(c, json_pack("{s:s, s:i}", "type", "options_set", "batch_ms", (int)ms), id);
}
