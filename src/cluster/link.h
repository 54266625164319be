/* redis_link.h - the engine's two Redis connections (commands, pub/sub):
 * connect, handshake, liveness, reconnect with backoff, stop. Internal to
 * the engine (redis_engine.c is its only user).
 *
 * One release path: a link's context is freed by hiredis (a connect or
 * read error) or by reap() (a failure this side decided, or stop); either
 * way the adapter's gone hook clears link->ac, and only when both links are
 * gone is a reconnect scheduled. A failure marks both links dead at once,
 * so their replies stop counting, and frees them outside hiredis's
 * callbacks, where the pending replies' callbacks run (with no reply) in
 * the order the commands were sent.
 *
 * Liveness: a link with commands outstanding that has read nothing for
 * redis.timeout_ms is stalled (a stopped Redis, a partition, a full
 * buffer), and so is a pub/sub link that missed the node's own beat, which
 * the command link publishes every timeout/4. TCP keepalive and
 * TCP_USER_TIMEOUT catch a dead peer under the same bound. */
#ifndef TG_REDIS_LINK_H
#define TG_REDIS_LINK_H

#include <stdarg.h>
#include <stdbool.h>
#include <hiredis/async.h>

struct redis_engine;
struct redis_link;

/* The first attempt, and each retry: opens both links (with Sentinel,
 * after asking it for the primary: sentinel.h). */
void link_connect_all(struct redis_engine *e);

/* Opens both links to e->host:e->port now. */
void link_open_all(struct redis_engine *e);

/* Links down: the next attempt now, backoff reset (a new primary is
 * known), yet never before the fence. */
void link_retry_now(struct redis_engine *e);

/* Opens link l to host:port (its handshake follows on connect). */
bool link_open(struct redis_engine *e, struct redis_link *l, const char *host, int port);

/* A link was freed: when none is left, the retry (or, stopping, the end). */
void link_after_gone(struct redis_engine *e);

/* Command link l's context when it counts (its no-progress clock started
 * when it was idle), else NULL; a command on it. */
redisAsyncContext *link_cmd_ac(struct redis_engine *e, struct redis_link *l);
int link_vcmd_link(struct redis_engine *e, struct redis_link *l, redisCallbackFn *fn, void *priv, const char *fmt,
                   va_list ap);

/* Keepalive and TCP_USER_TIMEOUT on a Redis socket (timeout_ms bound). */
void link_tune_socket(int fd, int timeout_ms);

/* Both links go down for why (logged once). now: free them at once (only
 * outside hiredis's callbacks); otherwise on the next loop turn. */
void link_fail(struct redis_engine *e, const char *why, bool now);

/* Frees a failed link pair now, if one is waiting (callers that must see
 * every earlier tick settled before they deliver locally). */
void link_settle(struct redis_engine *e);

/* True when ac is a link that still counts (not failed). */
bool link_live(const struct redis_engine *e, const redisAsyncContext *ac);

/* A command on the command link; starts the no-progress clock when it
 * was idle. REDIS_OK or REDIS_ERR. */
int link_cmd(struct redis_engine *e, redisCallbackFn *fn, void *priv, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int link_vcmd(struct redis_engine *e, redisCallbackFn *fn, void *priv, const char *fmt, va_list ap);
int link_cmd_argv(struct redis_engine *e, redisCallbackFn *fn, void *priv, int argc, const char **argv);

/* A tick's deadline in Redis's clock: now + redis.timeout_ms. */
int64_t link_deadline_ms(const struct redis_engine *e);

/* Starts the watchdog and beat timer (at engine start). */
void link_init(struct redis_engine *e);

/* Shutdown: queued commands get up to a bounded wait, then both links
 * are freed; the timers close once both are gone. */
void link_stop(struct redis_engine *e);

#endif
