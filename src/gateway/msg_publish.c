/* msg_publish.c - the publish message: a publisher's price updates into
 * the hub. */
#include <jansson.h>

#include "feed/publish.h"
#include "gateway/protocol_internal.h"
#include "net/conn.h"
#include "net/worker.h"

void msg_publish(struct conn *c, json_t *msg, json_t *id) {
    const char *why = NULL;
    int n = publish_updates(gateway_of(c)->hub, json_object_get(msg, "updates"), &why);
    if (n < 0) {
        proto_refuse(c, "invalid_message", why, id, SV_INVALID_MESSAGE);
        return;
    }
    proto_reply(c, json_pack("{s:s, s:i}", "type", "published", "count", n), id);
}
