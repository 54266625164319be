/* shardsub.c - a sharded pub/sub connection; see shardsub.h. */
#include "cluster/shardsub.h"

#include <hiredis/hiredis.h>
#include <hiredis/read.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/link.h"

#define SUB_BUF 65536

struct sub_write {
    uv_write_t req;
    char *cmd;
};

static void fail(struct shard_sub *s, const char *why, const char *detail) {
    if (s->failed || s->closing)
        return;
    s->failed = true;
    s->fail_cb(s, why, detail);
}

static void on_close(uv_handle_t *h) {
    struct shard_sub *s = h->data;
    if (s->reader)
        redisReaderFree(s->reader);
    s->reader = NULL;
    free(s->buf);
    s->buf = NULL;
    s->open = s->closing = false;
    s->closed_cb(s);
}

void shard_sub_close(struct shard_sub *s) {
    if (!s->open || s->closing)
        return;
    s->closing = true;
    s->ready = false;
    uv_close((uv_handle_t *)&s->tcp, on_close);
}

static void on_written(uv_write_t *req, int status) {
    struct sub_write *w = (struct sub_write *)req;
    struct shard_sub *s = req->data;
    free(w->cmd);
    free(w);
    if (status < 0 && status != UV_ECANCELED)
        fail(s, "pub/sub write failed", uv_strerror(status));
}

static int send_raw(struct shard_sub *s, char *cmd, int len) {
    struct sub_write *w = malloc(sizeof(*w));
    if (!w || len < 0) {
        free(w);
        free(cmd);
        return -1;
    }
    w->cmd = cmd;
    w->req.data = s;
    uv_buf_t b = uv_buf_init(cmd, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)&s->tcp, &b, 1, on_written) < 0) {
        free(cmd);
        free(w);
        return -1;
    }
    return 0;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
    struct shard_sub *s = h->data;
    *b = uv_buf_init(s->buf, SUB_BUF);
}

/* Handshake replies (AUTH's +OK, PING's +PONG), then the owner's. */
static void take(struct shard_sub *s, redisReply *r) {
    if (s->handshake > 0) {
        if (r->type == REDIS_REPLY_ERROR) {
            fail(s, "handshake refused", r->str);
            return;
        }
        if (--s->handshake == 0) {
            s->ready = true;
            s->ready_cb(s);
        }
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        fail(s, "pub/sub command refused", r->str);
        return;
    }
    s->reply_cb(s, r);
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
    struct shard_sub *s = st->data;
    if (n < 0) {
        fail(s, "connection lost", n == UV_EOF ? NULL : uv_strerror((int)n));
        return;
    }
    if (n == 0 || s->failed || s->closing)
        return;
    s->progress_ms = uv_now(st->loop);
    if (redisReaderFeed(s->reader, b->base, (size_t)n) != REDIS_OK) {
        fail(s, "protocol error", NULL);
        return;
    }
    void *reply;
    while (!s->failed && !s->closing) {
        if (redisReaderGetReply(s->reader, &reply) != REDIS_OK) {
            fail(s, "protocol error", NULL);
            return;
        }
        if (!reply)
            break;
        take(s, reply);
        freeReplyObject(reply);
    }
}

static int send_argv(struct shard_sub *s, int argc, const char **argv) {
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, argc, argv, NULL);
    return send_raw(s, cmd, len);
}

int shard_sub_send(struct shard_sub *s, const char *verb, const char *channel) {
    if (!s->open || s->closing || s->failed)
        return -1;
    const char *argv[2] = {verb, channel};
    return send_argv(s, 2, argv);
}

static void on_connect(uv_connect_t *req, int status) {
    struct shard_sub *s = req->data;
    if (s->closing)
        return;
    if (status < 0) {
        fail(s, "connect failed", uv_strerror(status));
        return;
    }
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&s->tcp, &fd) == 0)
        link_tune_socket(fd, s->timeout_ms);
    if (uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read) < 0) {
        fail(s, "connect failed", "read");
        return;
    }
    s->progress_ms = uv_now(s->tcp.loop);
    const char *auth[2] = {"AUTH", s->password}, *ping = "PING";
    if ((s->password && send_argv(s, 2, auth) < 0) || send_argv(s, 1, &ping) < 0)
        fail(s, "out of memory", NULL);
}

int shard_sub_open(struct shard_sub *s, uv_loop_t *loop, const char *ip, int port, const char *password,
                   int timeout_ms) {
    struct sockaddr_storage sa;
    if (uv_ip4_addr(ip, port, (struct sockaddr_in *)&sa) != 0 && uv_ip6_addr(ip, port, (struct sockaddr_in6 *)&sa) != 0)
        return -1;
    s->reader = redisReaderCreate();
    s->buf = malloc(SUB_BUF);
    if (!s->reader || !s->buf || uv_tcp_init(loop, &s->tcp) != 0) {
        if (s->reader)
            redisReaderFree(s->reader);
        free(s->buf);
        s->reader = NULL;
        s->buf = NULL;
        return -1;
    }
    s->tcp.data = s;
    s->open = true;
    s->closing = s->ready = s->failed = false;
    s->password = password;
    s->timeout_ms = timeout_ms;
    s->handshake = password ? 2 : 1;
    s->progress_ms = uv_now(loop);
    s->connect.data = s;
    int rc = uv_tcp_connect(&s->connect, &s->tcp, (const struct sockaddr *)&sa, on_connect);
    if (rc < 0) { /* closed by the owner after on_fail, as any failure */
        fail(s, "connect failed", uv_strerror(rc));
    }
    return 0;
}
