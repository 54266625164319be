/* redis_uv.h - hiredis async events on a libuv loop.
 *
 * Our own small adapter instead of hiredis's adapters/libuv.h, for two
 * measured reasons: that adapter ignores a poll error (a connection reset
 * while the peer is stopped is then never noticed, and the commands in
 * flight never get their NULL reply), and it leaks its state when
 * uv_poll_init fails. Here an error is handed to hiredis as a read, which
 * fails and disconnects properly. */
#ifndef TG_REDIS_UV_H
#define TG_REDIS_UV_H

#include <uv.h>

struct redisAsyncContext;

/* What the owner of a context learns from the adapter: bytes arrived
 * (progress, for its liveness watchdog) and the context is gone (hiredis
 * freed it, whichever path freed it). Both get arg. */
struct redis_uv_hooks {
    void (*on_read)(void *arg);
    void (*on_gone)(void *arg, const char *err); /* err: hiredis's reason, NULL if none */
    void *arg;
};

/* Attaches ac to loop; hooks is copied. 0, or -1 (ac untouched). */
int redis_uv_attach(struct redisAsyncContext *ac, uv_loop_t *loop, const struct redis_uv_hooks *hooks);

#endif
