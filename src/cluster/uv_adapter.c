/* redis_uv.c - hiredis async events on libuv; see redis_uv.h. */
#include "cluster/uv_adapter.h"

#include <hiredis/async.h>
#include <stdlib.h>

struct redis_uv {
    redisAsyncContext *ac;  /* NULL once hiredis cleaned up */
    uv_poll_t poll;
    int events;
    struct redis_uv_hooks hooks;
};

static void on_poll(uv_poll_t *h, int status, int events) {
    struct redis_uv *p = h->data;
    if (!p->ac)
        return;
    if (status < 0) {
        /* Reset or error: a read now fails and hiredis disconnects, running
         * every pending callback with a NULL reply. */
        redisAsyncHandleRead(p->ac);
        return;
    }
    if (events & UV_READABLE) {
        p->hooks.on_read(p->hooks.arg);
        redisAsyncHandleRead(p->ac);
    }
    if (p->ac && (events & UV_WRITABLE))
        redisAsyncHandleWrite(p->ac);
}

static void update(struct redis_uv *p, int add, int del) {
    p->events = (p->events | add) & ~del;
    if (p->events)
        uv_poll_start(&p->poll, p->events, on_poll);
    else
        uv_poll_stop(&p->poll);
}

static void add_read(void *d) { update(d, UV_READABLE, 0); }
static void del_read(void *d) { update(d, 0, UV_READABLE); }
static void add_write(void *d) { update(d, UV_WRITABLE, 0); }
static void del_write(void *d) { update(d, 0, UV_WRITABLE); }

static void on_closed(uv_handle_t *h) { free(h->data); }

static void cleanup(void *d) {
    struct redis_uv *p = d;
    const char *err = p->ac->err ? p->ac->errstr : NULL;
    p->ac = NULL;
    uv_close((uv_handle_t *)&p->poll, on_closed);
    p->hooks.on_gone(p->hooks.arg, err);
}

int redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop, const struct redis_uv_hooks *hooks) {
    if (ac->ev.data)
        return -1;
    struct redis_uv *p = calloc(1, sizeof(*p));
    if (!p)
        return -1;
    if (uv_poll_init(loop, &p->poll, ac->c.fd) != 0) {
        free(p);
        return -1;
    }
    p->ac = ac;
    p->hooks = *hooks;
    p->poll.data = p;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    ac->ev.data = p;
    return 0;
}
