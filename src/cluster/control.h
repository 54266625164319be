/* control.h - the control channel's message format, in one place: what
 * one node tells the others (IP blocks, admin broadcasts, user events).
 * Internal to the cluster room; the rooms above announce through
 * redis_engine_announce_* (engine.h).
 *
 * Wire form (PUBLISH P"control"), the origin node first so it can skip
 * its own: "B|node|ip|duration_s" (0 = until unblocked), "U|node|ip",
 * "M|node|roles|frame-json", "E|node|portfolio_only(0|1)|user|event-json"
 * (a user id never holds '|'). */
#ifndef TG_CLUSTER_CONTROL_H
#define TG_CLUSTER_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/clientip.h"

struct control_msg {
    char kind;                  /* 'B', 'U', 'M', 'E' */
    char node[40];
    struct ip16 ip;             /* B, U */
    int64_t duration_s;         /* B */
    uint32_t roles;             /* M: bit set of roles */
    bool portfolio_only;        /* E */
    char user[128];             /* E */
    const char *json;           /* M, E: into the parsed text */
    size_t json_len;
};

/* Parses msg[0..len). 0, or -1 when it is not a control message. */
int control_parse(const char *msg, size_t len, struct control_msg *m);

/* The wire forms (malloc'd, NULL when out of memory or unsayable). */
char *control_block(const char *node, const struct ip16 *ip, int64_t duration_s);
char *control_unblock(const char *node, const struct ip16 *ip);
char *control_broadcast(const char *node, uint32_t roles, const char *frame_json);
char *control_user_event(const char *node, const char *user, bool portfolio_only, const char *event_json);

#endif
