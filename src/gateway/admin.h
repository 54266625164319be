/* admin.h - the admin API (PROTOCOL.md section 1) and admin_broadcast.
 *
 * Listing connections and broadcasting touch every worker's connections,
 * which only their own worker may read. So a request becomes a `gather`:
 * posted to every worker, each contributes what it owns, and the last one
 * hands the gather back to the requester's worker, which answers (if the
 * requester is still there) and frees it. */
#ifndef TG_ADMIN_H
#define TG_ADMIN_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct conn;
struct gateway;
struct worker;

enum gather_kind { GATHER_LIST = 0, GATHER_BROADCAST };

struct gather {
    atomic_int pending;        /* workers still to contribute */
    int kind;                  /* enum gather_kind */
    int origin;                /* requester's worker */
    uint64_t conn_id;          /* requester */
    bool http;                 /* answer over HTTP (else a WebSocket reply) */
    json_t *reply_id;          /* WebSocket request id, or NULL */
    uv_mutex_t lock;           /* guards items and count */
    json_t *items;             /* GATHER_LIST: connection objects */
    long count;                /* GATHER_BROADCAST: recipients */
    json_t *frame_json;        /* GATHER_BROADCAST: the broadcast message */
    uint32_t roles;            /* GATHER_BROADCAST: bit per target role */
};

/* Routes /api/admin/... (path) for c. */
void admin_http(struct conn *c, const char *path, bool keep_alive);

/* The WebSocket admin_broadcast message (permission already checked). */
void admin_ws_broadcast(struct conn *c, json_t *msg, json_t *id);

/* Delivers a broadcast (frame_json consumed) to this node's clients of the
 * given roles; no answer. Used for broadcasts from other nodes. */
void admin_broadcast_local(struct gateway *gw, json_t *frame_json, uint32_t roles);


#endif
