/* guard.h - per-IP and per-user admission: connection counts, violation
 * history, threat escalation and IP blocks (PROTOCOL.md section 7).
 *
 * These figures are about a client across all workers, so they live in one
 * table owned by the guard and reached only through this API, under the
 * guard's lock (short critical sections, no I/O inside). Connections
 * themselves stay with their workers; the guard only counts them. Every
 * admitted connection is released exactly once, from the connection's one
 * release path, so the counts cannot drift. */
#ifndef TG_GUARD_H
#define TG_GUARD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include "net/clientip.h"

struct config;

#define GUARD_BUCKETS 4096

struct guard_ip;
struct guard_user;

struct guard {
    uv_mutex_t lock;                        /* guards everything below */
    struct guard_ip *ips[GUARD_BUCKETS];
    struct guard_user *users[GUARD_BUCKETS];
    int per_ip, per_user;                   /* limits, read-only */
    int critical, window_s, block_s;        /* escalation, read-only */
    int v6_prefix;                          /* IPv6 identity prefix (limits.ipv6_prefix_len), read-only */
    _Atomic long blocked;                   /* gauge: IPs blocked now */
    atomic_bool saved_dirty;                /* the saved (admin) blocks changed since guard_saved_blocks */
};

/* An admin block as kept in security.blocks_file (auth/blockfile.h). */
struct guard_saved {
    struct ip16 ip;                         /* the guard's key (an IPv6 prefix) */
    int64_t until;                          /* wall s; 0 = until unblocked */
    bool saved;                             /* an admin's, kept across restarts */
};

enum guard_verdict {
    GUARD_OK = 0,
    GUARD_BLOCKED = 403,
    GUARD_LIMIT = 429,
};

/* Every per-IP figure below keys on guard_key(ip): an IPv6 address counts
 * as its limits.ipv6_prefix_len prefix (clientip.h ip16_client_key). */
struct ip16 guard_key(const struct guard *g, const struct ip16 *ip);

/* Reads limits and security.blocked_ips. 0, or -1 naming the key in err. */
int guard_init(struct guard *g, const struct config *cfg, FILE *err);
void guard_free(struct guard *g);

/* Admits one connection of ip (and user, NULL for anonymous): GUARD_OK and
 * counted, or the refusal; *which gets "ip" or "user" for 429. */
enum guard_verdict guard_admit(struct guard *g, const struct ip16 *ip, const char *user, const char **which);

/* Releases what guard_admit counted. */
void guard_release(struct guard *g, const struct ip16 *ip, const char *user);

/* Moves an admitted connection from user old (NULL: anonymous) to user
 * (in-band authenticate). False, changing nothing, when user is at its
 * limit. */
bool guard_switch_user(struct guard *g, const char *old, const char *user);

/* True when ip is blocked now. */
bool guard_is_blocked(struct guard *g, const struct ip16 *ip);

/* Records a violation from ip at wall time now_s. True when this one makes
 * the IP critical: it is then blocked for security.auto_block_s. */
bool guard_violation(struct guard *g, const struct ip16 *ip, int64_t now_s);

/* Blocks of GUARD_FOREVER_S (a century) or longer are until unblocked: no
 * now + duration_s anywhere can overflow. */
#define GUARD_FOREVER_S INT64_C(3153600000)

/* Blocks ip for duration_s seconds (0 = until unblocked). */
void guard_block(struct guard *g, const struct ip16 *ip, int64_t duration_s);
/* The same for an admin's block, which is also saved: it is listed by
 * guard_saved_blocks until it expires or any unblock lifts it. */
void guard_block_saved(struct guard *g, const struct ip16 *ip, int64_t duration_s);

/* Unblocks; true when it was blocked. */
bool guard_unblock(struct guard *g, const struct ip16 *ip);

/* Copies up to max saved blocks in force into out (may be NULL when max is
 * 0) and clears saved_dirty; returns how many there are (more than max:
 * the rest were not copied). */
size_t guard_saved_blocks(struct guard *g, struct guard_saved *out, size_t max);

/* Every block in force (automatic, configured or an admin's), as
 * guard_saved_blocks but leaving saved_dirty alone (the admin page). */
size_t guard_blocks(struct guard *g, struct guard_saved *out, size_t max);

/* Drops expired blocks and idle entries; call periodically. */
void guard_sweep(struct guard *g, int64_t now_s);

#endif
