/* protocol.c - the gateway's JSON protocol; see protocol.h. */
#include "core/protocol.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "core/server.h"
#include "core/worker.h"
#include "net/conn.h"
#include "ws/frame.h"
#include "ws/session.h"

static uint64_t wall_ms(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

/* Sends o as one text frame and drops the reference. */
static void send_json(struct conn *c, json_t *o) {
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!s) {
        ws_close(c, WS_CLOSE_INTERNAL, "internal error");
        return;
    }
    ws_send(c, WS_OP_TEXT, s, strlen(s));
    free(s);
}

/* Adds the request's id (string <= 64 chars or integer) to a reply. */
static void echo_id(json_t *reply, json_t *id) {
    if (id)
        json_object_set(reply, "id", id);
}

static void send_error(struct conn *c, const char *code, const char *msg, json_t *id) {
    json_t *o = json_pack("{s:s, s:s, s:s}", "type", "error", "code", code, "message", msg);
    echo_id(o, id);
    send_json(c, o);
}

static void client_id(const struct conn *c, char *out, size_t len) {
    snprintf(out, len, "c-%llx", (unsigned long long)c->id);
}

void protocol_on_open(struct conn *c) {
    const struct config *cfg = &c->w->srv->cfg;
    char cid[32];
    client_id(c, cid, sizeof(cid));
    send_json(c, json_pack("{s:s, s:s, s:n, s:s, s:{s:I}}", "type", "connected", "client_id", cid, "user_id",
                           "role", "anonymous", "limits", "max_message_bytes",
                           (json_int_t)cfg->limits.max_message_bytes));
}

void protocol_on_message(struct conn *c, const char *data, size_t len) {
    json_error_t err;
    json_t *msg = json_loadb(data, len, JSON_REJECT_DUPLICATES, &err);
    if (!msg) {
        send_error(c, "invalid_json", "message is not valid JSON", NULL);
        return;
    }
    if (!json_is_object(msg)) {
        send_error(c, "invalid_message", "message must be a JSON object", NULL);
        json_decref(msg);
        return;
    }
    json_t *id = json_object_get(msg, "id");
    if (id && !((json_is_string(id) && json_string_length(id) <= 64) || json_is_integer(id))) {
        send_error(c, "invalid_message", "id must be a string of at most 64 characters or an integer", NULL);
        json_decref(msg);
        return;
    }
    const char *type = json_string_value(json_object_get(msg, "type"));
    if (!type) {
        send_error(c, "invalid_message", "missing string field 'type'", id);
    } else if (strcmp(type, "heartbeat") == 0) {
        json_t *o = json_pack("{s:s, s:I}", "type", "heartbeat_ack", "server_time", (json_int_t)wall_ms());
        echo_id(o, id);
        send_json(c, o);
    } else {
        send_error(c, "unknown_type", "unknown message type", id);
    }
    json_decref(msg);
}

void protocol_on_close(struct conn *c, unsigned code) { (void)c; (void)code; }

void protocol_on_release(struct conn *c) { (void)c; }
