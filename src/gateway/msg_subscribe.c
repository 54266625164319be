/* msg_subscribe.c - the price stream's messages: subscribe, unsubscribe
 * (per symbol, within the role's limit and the identity's entitlements)
 * and set_options (price batching). A subscribe's recover field is parsed
 * here and answered by pubsub's replay (pubsub/replay.h), through the
 * cluster when Redis is on; recovery is for real-time unthrottled
 * subscriptions, a delayed or throttled one answers recovered:false with
 * the snapshot of its mode (docs/protocol.md, recovery). */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/engine.h"
#include "gateway/protocol.h"
#include "gateway/protocol_internal.h"
#include "net/conn.h"
#include "net/worker.h"
#include "pubsub/replay.h"
#include "pubsub/subs.h"
#include "pubsub/symbols.h"

#define SUBSCRIBE_MAX_SYMBOLS 100

/* What a subscribe answers once its recovery question is answered (now,
 * or later from the cluster): a recover_req's upper. */
struct sub_reply {
    json_t *ok;         /* the accepted symbols, in the order of the items */
    json_t *fails;      /* its subscription_failed replies, in order */
    json_t *added;      /* symbols newly subscribed (audit) */
    json_t *id;         /* the request's id, or NULL */
    bool asked[SUBSCRIBE_MAX_SYMBOLS]; /* per item: in recover (held or not) */
};

/* How c receives sym now (ent not ENT_NONE): its role's throttle, delayed
 * when only delayed-entitled. */
static struct sub_mode mode_of(struct conn *c, enum entitlement ent) {
    return (struct sub_mode){gateway_of(c)->auth->roles.throttle[session_of(c)->role], ent == ENT_DELAYED};
}

static bool realtime(struct sub_mode m) { return !m.rate && !m.delayed; }

static void reply_free(struct recover_req *r) {
    struct sub_reply *sr = r->upper;
    if (sr) {
        json_decref(sr->ok);
        json_decref(sr->fails);
        json_decref(sr->added);
        json_decref(sr->id);
        free(sr);
    }
    recover_req_free(r);
}

/* subscription_confirmed (epochs; delayed; recovered when asked), the
 * failures, then per symbol the replay, or the snapshot of its mode, then
 * live. Entitlements are read again here: an authenticate may have come
 * while the cluster answered. */
static void subscribe_finish(struct conn *c, struct recover_req *r) {
    struct sub_reply *sr = r->upper;
    json_t *syms = json_array(), *epochs = json_object(), *recovered = NULL, *delayed = NULL, *late = NULL;
    enum entitlement ent[SUBSCRIBE_MAX_SYMBOLS];
    for (uint32_t i = 0; i < r->n; i++) {
        struct recover_item *it = &r->items[i];
        json_t *name = json_array_get(sr->ok, i);
        if ((ent[i] = proto_entitlement(c, it->sym)) == ENT_NONE) {
            subs_remove(c, it->sym); /* drops its hold too */
            if (!late)
                late = json_array();
            json_array_append(late, name);
            continue;
        }
        json_array_append(syms, name);
        json_object_set_new(epochs, json_string_value(name), json_string(it->epoch));
        if (ent[i] == ENT_DELAYED)
            json_array_append(delayed ? delayed : (delayed = json_array()), name);
        it->recovered = it->want && it->recovered && realtime(mode_of(c, ent[i]));
        if (sr->asked[i])
            json_object_set_new(recovered ? recovered : (recovered = json_object()), json_string_value(name),
                                json_boolean(it->recovered));
    }
    if (json_array_size(syms) || (json_array_size(sr->fails) == 0 && !late)) {
        json_t *o = json_pack("{s:s, s:o, s:o}", "type", "subscription_confirmed", "symbols", syms, "epochs", epochs);
        if (o && delayed)
            json_object_set(o, "delayed", delayed);
        if (o && recovered)
            json_object_set(o, "recovered", recovered);
        proto_reply(c, o, sr->id);
    } else {
        json_decref(syms);
        json_decref(epochs);
    }
    json_decref(delayed);
    json_decref(recovered);
    for (size_t f = 0; f < json_array_size(sr->fails); f++)
        proto_reply(c, json_incref(json_array_get(sr->fails, f)), sr->id);
    if (late) {
        proto_count(&gateway_worker(c->w)->stats.not_entitled[NE_SUBSCRIBE]);
        proto_reply(c, json_pack("{s:s, s:o, s:s}", "type", "subscription_failed", "symbols", late, "reason",
                                 "not_entitled"),
                    sr->id);
    }
    struct gateway_stats *st = &gateway_worker(c->w)->stats;
    for (uint32_t i = 0; i < r->n; i++) {
        struct recover_item *it = &r->items[i];
        if (ent[i] == ENT_NONE)
            continue;
        if (sr->asked[i])
            proto_count(&st->recoveries[it->recovered ? 0 : 1]);
        struct sub_mode m = mode_of(c, ent[i]);
        if (it->want && realtime(m)) {
            replay_start(c, it); /* the replay, or the snapshot when not recovered */
        } else if (subs_add_mode(c, it->sym, m) < 0) {
            proto_send_error(c, "internal_error", "out of memory", sr->id);
            break;
        }
    }
    if (json_array_size(sr->added)) {
        proto_audit(c, "SUBSCRIPTION_ADDED", json_pack("{s:O}", "symbols", sr->added));
        proto_persist_subs(c);
    }
}

/* The cluster's answer, on the connection's worker. */
static void run_recovered(struct worker *w, void *ptr, uint64_t a, uint64_t b) {
    struct recover_req *r = ptr;
    struct conn *c = conn_find(w, r->conn_id);
    if (c && c->phase == PHASE_WS)
        subscribe_finish(c, r);
    reply_free(r);
}

static void drop_recovered(void *ptr, uint64_t a, uint64_t b) { reply_free(ptr); }

const struct worker_mail PROTOCOL_RECOVER_MAIL = {"recovered", run_recovered, drop_recovered};

/* The recover field (PROTOCOL.md section 13): an object whose keys are in
 * symbols, each {"seq": N >= 0, "epoch": E}. False after a refusal. */
static bool recover_valid(struct conn *c, json_t *rec, json_t *syms, json_t *id) {
    const char *key;
    json_t *v;
    if (!json_is_object(rec)) {
        proto_refuse(c, "invalid_message", "recover must be an object", id, SV_INVALID_MESSAGE);
        return false;
    }
    json_object_foreach(rec, key, v) {
        bool listed = false;
        for (size_t i = 0; i < json_array_size(syms) && !listed; i++)
            listed = strcmp(json_string_value(json_array_get(syms, i)), key) == 0;
        json_t *seq = json_object_get(v, "seq");
        if (!listed || !json_is_object(v) || !json_is_integer(seq) || json_integer_value(seq) < 0) {
            proto_refuse(c, "invalid_message",
                         listed ? "recover entries are {\"seq\": integer >= 0, \"epoch\": string}"
                                : "recover keys must be in symbols",
                         id, SV_INVALID_MESSAGE);
            return false;
        }
    }
    return true;
}

void msg_subscribe(struct conn *c, json_t *msg, json_t *id) {
    struct gateway *gw = gateway_of(c);
    json_t *syms = json_object_get(msg, "symbols");
    json_t *rec = json_object_get(msg, "recover");
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
    if (rec && !recover_valid(c, rec, syms, id))
        return;
    int limit = gw->auth->roles.max_symbols[session_of(c)->role];
    int have = conn_subs(c)->nsubs;
    json_t *ok = json_array(), *invalid = json_array(), *unknown = json_array(), *over = json_array();
    json_t *denied = json_array();
    int accepted_idx[SUBSCRIBE_MAX_SYMBOLS];
    struct sub_mode accepted_mode[SUBSCRIBE_MAX_SYMBOLS];
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
        enum entitlement ent = proto_entitlement(c, (uint32_t)idx);
        if (ent == ENT_NONE) { /* in recover too: refused like any other */
            json_array_append(denied, s);
            continue;
        }
        if (!subs_has(c, (uint32_t)idx)) {
            if (have >= limit) {
                json_array_append(over, s);
                continue;
            }
            have++;
        }
        accepted_mode[nacc] = mode_of(c, ent);
        accepted_idx[nacc++] = idx;
        json_array_append(ok, s);
    }
    if (json_array_size(denied))
        proto_count(&gateway_worker(c->w)->stats.not_entitled[NE_SUBSCRIBE]);
    struct recover_req *r = recover_req_new((uint32_t)nacc);
    struct sub_reply *sr = calloc(1, sizeof(*sr));
    json_t *fails = json_array();
    struct {
        json_t *list;
        const char *reason;
    } fl[] = {{invalid, "invalid_symbol"}, {unknown, "unknown_symbol"}, {over, "limit_exceeded"},
              {denied, "not_entitled"}};
    for (size_t f = 0; f < sizeof(fl) / sizeof(fl[0]); f++) {
        if (json_array_size(fl[f].list))
            json_array_append_new(fails, json_pack("{s:s, s:O, s:s}", "type", "subscription_failed", "symbols",
                                                   fl[f].list, "reason", fl[f].reason));
        json_decref(fl[f].list);
    }
    if (!r || !sr) {
        free(sr);
        recover_req_free(r);
        json_decref(ok);
        json_decref(fails);
        proto_send_error(c, "internal_error", "out of memory", id);
        return;
    }
    *sr = (struct sub_reply){.ok = ok, .fails = fails, .added = json_array(), .id = json_incref(id)};
    *r = (struct recover_req){.worker = c->w->id, .conn_id = c->id, .upper = sr, .drop = reply_free, .n = (uint32_t)nacc};
    bool ask_cluster = false;
    for (int k = 0; k < nacc; k++) {
        struct recover_item *it = &r->items[k];
        const char *name = gw->syms->names[accepted_idx[k]];
        json_t *v = rec ? json_object_get(rec, name) : NULL;
        it->sym = (uint32_t)accepted_idx[k];
        if (!subs_has(c, it->sym))
            json_array_append_new(sr->added, json_string(name));
        sr->asked[k] = v != NULL;
        if (v && realtime(accepted_mode[k]) && replay_hold(c, it->sym) == 0) {
            it->want = true;
            it->after = (uint64_t)json_integer_value(json_object_get(v, "seq"));
            const char *ep = json_string_value(json_object_get(v, "epoch")); /* another form: never current */
            snprintf(it->epoch, sizeof(it->epoch), "%s", ep && strlen(ep) <= HUB_EPOCH_MAX ? ep : "");
            ask_cluster = true;
        } else if (gw->redis->enabled) {
            char cur[HUB_EPOCH_MAX + 1];
            hub_epoch(gw->hub, it->sym, cur);
            ask_cluster |= !*cur; /* the cluster's epoch, not heard yet */
        }
    }
    if (ask_cluster && redis_engine_recover(gw->redis, r))
        return; /* answered through PROTOCOL_RECOVER_MAIL */
    replay_fill_local(gw->hub, r);
    subscribe_finish(c, r);
    reply_free(r);
}

void proto_reapply_entitlements(struct conn *c) {
    struct gateway *gw = gateway_of(c);
    uint32_t n = conn_subs(c)->nsubs;
    uint32_t *syms = n ? malloc(n * sizeof(*syms)) : NULL;
    if (!syms)
        return;
    for (uint32_t i = 0; i < n; i++)
        syms[i] = conn_subs(c)->subs[i].sym;
    json_t *gone = json_array();
    for (uint32_t i = 0; i < n; i++) {
        enum entitlement ent = proto_entitlement(c, syms[i]);
        struct sub_mode had, want = mode_of(c, ent);
        /* A move out of real time ends a recovery (its snapshot instead). */
        if (ent == ENT_NONE) {
            subs_remove(c, syms[i]);
            json_array_append_new(gone, json_string(gw->syms->names[syms[i]]));
        } else if (subs_mode(c, syms[i], &had) && (had.rate != want.rate || had.delayed != want.delayed) &&
                   subs_add_mode(c, syms[i], want) < 0) {
            subs_remove(c, syms[i]); /* out of memory: not left in a mode it no longer has */
        }
    }
    free(syms);
    if (json_array_size(gone)) {
        proto_audit(c, "SUBSCRIPTION_REMOVED", json_pack("{s:O, s:s}", "symbols", gone, "reason", "not_entitled"));
        proto_send_json(c, json_pack("{s:s, s:o, s:s}", "type", "subscription_failed", "symbols", gone, "reason",
                                     "not_entitled"));
        proto_persist_subs(c);
    } else {
        json_decref(gone);
    }
}

void protocol_reapply_modes(struct conn *c) { proto_reapply_entitlements(c); }

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
