/* entitlement.c - what a client's entitlements (auth/entitle.h, held in
 * its session since identity time) allow on a symbol. */
#include <string.h>

#include "auth/entitle.h"
#include "gateway/protocol_internal.h"

enum entitlement proto_entitlement(const struct conn *c, uint32_t sym) {
    const struct session *s = session_of(c);
    if (!s->ent_rt && !s->ent_delayed)
        return ENT_REALTIME; /* the common case: nothing named, everything real time */
    const char *name = gateway_of(c)->syms->names[sym];
    size_t len = strlen(name);
    if (!s->ent_rt || entitle_match(s->ent_rt, name, len))
        return ENT_REALTIME;
    if (s->ent_delayed && entitle_match(s->ent_delayed, name, len))
        return ENT_DELAYED;
    return ENT_NONE;
}

void proto_not_entitled(struct conn *c, uint32_t sym, enum not_entitled_kind kind, json_t *id) {
    char msg[96];
    snprintf(msg, sizeof(msg), "not entitled to %s", gateway_of(c)->syms->names[sym]);
    proto_count(&gateway_worker(c->w)->stats.not_entitled[kind]);
    proto_send_error(c, "forbidden", msg, id); /* the client has not paid for it: no violation */
}
