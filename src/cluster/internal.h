/* internal.h - what the cluster room's files share (engine.c, link.c,
 * ticks.c, state.c). Nothing outside src/cluster/ includes it. All of it
 * runs on the main thread's loop. */
#ifndef TG_CLUSTER_INTERNAL_H
#define TG_CLUSTER_INTERNAL_H

#include <hiredis/async.h>

#include "base/config.h"
#include "cluster/engine.h"
#include "cluster/link.h"
#include "cluster/shards.h"

struct hub;
struct tick;
struct recover_req;
struct redisReply;

/* A registry key or channel: out = prefix + a + b (on a cluster the
 * prefix carries the tag {registry}: shards.h). */
void cluster_key(struct redis_engine *e, char *out, size_t len, const char *a, const char *b);
/* A symbol's key or channel: prefix + kind + SYM (on a cluster
 * prefix + kind + {SYM}, so all of a symbol's share one slot). */
void cluster_sym_key(struct redis_engine *e, char *out, size_t len, const char *kind, const char *sym);

/* engine.c */
void redis_engine_became_up(struct redis_engine *e);
void redis_engine_count_error(struct redis_engine *e, const char *what, const char *detail);
/* Counts an error reply; NOSCRIPT fails the link. priv: what (text). */
void redis_engine_on_reply(redisAsyncContext *ac, void *reply, void *what);
#define count_error redis_engine_count_error
#define on_reply redis_engine_on_reply

/* ticks.c */
int cluster_send_publish(struct redis_engine *e, struct tick_in *in); /* REDIS_OK: the tick is the reply's */
void redis_engine_echo_flush(struct redis_engine *e);  /* own ticks not heard back: delivered here */
#define echo_flush redis_engine_echo_flush
void cluster_echo_pop(struct redis_engine *e);
void cluster_on_message(redisAsyncContext *ac, void *r, void *priv); /* the pub/sub link's replies */
void cluster_on_pubsub(struct redis_engine *e, struct redisReply *reply); /* ...and a cluster's sharded ones */
void cluster_reconcile(struct redis_engine *e, uint32_t sym);         /* (un)subscribe sym as wanted */
void cluster_catch_up_reset(struct catch_up *cu);
int64_t cluster_local_seq(struct hub *h, uint32_t sym, double *first);
/* "SYM|price|bid|ask|volume|ts|seq|first|epoch" -> symbol index, or -1;
 * epoch (HUB_EPOCH_MAX + 1 bytes, may be NULL) gets the tick's epoch. */
int cluster_parse_tick(struct redis_engine *e, const char *msg, size_t len, struct tick *t, double *first,
                       char *epoch);
/* This node's part of a new cluster epoch (8 characters of its own). */
const char *cluster_epoch_tag(struct redis_engine *e);

/* recover.c */
void cluster_recover(struct redis_engine *e, struct recover_req *r); /* RM_RECOVER */

/* state.c */
void cluster_handle_note(struct redis_engine *e, struct redis_note *n);
void cluster_free_note(struct redis_note *n);
void cluster_on_admit_reply(redisAsyncContext *ac, void *r, void *priv);
void cluster_on_blocked_list(redisAsyncContext *ac, void *r, void *priv);
void cluster_apply_control(struct redis_engine *e, const char *msg, size_t len);
void cluster_on_query_reply(redisAsyncContext *ac, void *r, void *priv);
void cluster_answer_locally(struct redis_engine *e, struct redis_query *q);
void cluster_query_free(struct redis_query *q);

#endif
