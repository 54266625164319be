/* shards.h - the engine on Redis Cluster (redis.cluster = true; PROTOCOL.md
 * section 16). Internal to the cluster room.
 *
 * Topology: the engine's command link (link.c) goes to a seed node (the
 * redis.url node, then in turn every primary of the last map) and reads
 * CLUSTER INFO (cluster_state must be ok) and CLUSTER SLOTS; then one
 * command link (hiredis async) and one sharded pub/sub link (shardsub.h)
 * per primary. The engine is up when every link of every primary is: a
 * slot unserved (a primary down, the cluster down, a slot unassigned)
 * keeps the whole node degraded, serving its clients alone, as on a
 * single Redis that is down. Any link failing drops them all; the
 * reconnect reads the map again and writes the node's state back.
 *
 * Routing: a command goes to the primary owning its key's slot
 * (slots.h). A MOVED, ASK or CLUSTERDOWN reply is never followed or
 * re-sent (a re-sent tick could be sequenced twice): it counts as an
 * error and drops the links, so the next attempt reads the new map - one
 * map refresh per redirect, paced by the reconnect backoff.
 *
 * Keys: every key of a symbol carries the hash tag {SYM} (its slot holds
 * its counter, epoch, history, last tick and tick channel), and the
 * node registry (connections, nodes, liveness, per-user counts, blocks,
 * the control channel) the tag {registry}, so every script runs in one
 * slot (docs/scaling.md). */
#ifndef TG_CLUSTER_SHARDS_H
#define TG_CLUSTER_SHARDS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <hiredis/async.h>

#include "cluster/shardsub.h"
#include "cluster/slots.h"

struct redis_engine;
struct redis_link;

#define REGISTRY_TAG "{registry}:"

/* Parses nothing: e's host/port (redis.url) become the first seed.
 * 0, or -1 with a message to stderr (out of memory). */
int shards_init(struct redis_engine *e);
void shards_free(struct redis_engine *e);

/* The next seed into e->host / e->port (each connect attempt). */
void shards_next_seed(struct redis_engine *e);

/* The seed link is ready: read the map, open the primaries' links. */
void shards_ask_map(struct redis_engine *e);

/* A primary's command link connected: its handshake (AUTH was sent). */
void shards_on_connect(struct redis_engine *e, redisAsyncContext *ac);

bool shards_live(const struct redis_engine *e, const redisAsyncContext *ac);
bool shards_open(const struct redis_engine *e);  /* any primary's link not yet freed */
bool shards_mark_dead(struct redis_engine *e);   /* link_fail: true if one was live */
void shards_reap(struct redis_engine *e);        /* frees the dead ones (outside hiredis callbacks) */
bool shards_dead(const struct redis_engine *e);  /* one marked dead awaits its reap */
void shards_stop(struct redis_engine *e);

/* The watchdog (every timeout/4): a stalled link fails them all (true);
 * else, when up, this node's beat on every primary. */
bool shards_watch(struct redis_engine *e, uint64_t now, uint64_t timeout);

/* A command on the link of key's primary (the command link on one Redis). */
int link_cmdk(struct redis_engine *e, const char *key, redisCallbackFn *fn, void *priv, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
int link_cmdk_argv(struct redis_engine *e, const char *key, redisCallbackFn *fn, void *priv, int argc,
                   const char **argv);
/* The same command on every primary (SCRIPT LOAD). */
void link_cmd_each(struct redis_engine *e, redisCallbackFn *fn, void *priv, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Subscribes (on) or unsubscribes channel: SUBSCRIBE on one Redis,
 * SSUBSCRIBE on the primary owning its slot on a cluster. */
void link_subscribe(struct redis_engine *e, const char *channel, bool on);
bool link_sub_live(const struct redis_engine *e);

#endif
