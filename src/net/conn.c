/* conn.c - connection lifecycle, reads and batched writes; see conn.h. */
#include "net/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/config.h"
#include "net/worker.h"
#include "net/conn_tls.h"
#include "net/http.h"
#include "net/websocket.h"
#include "ws/deflate.h"

#define MAX_IOV 64

/* Pipelined requests: a connection whose queued answers reach this many
 * bytes is not read (nor its already-read requests answered) until they are
 * written, so a client that sends requests without reading the answers
 * holds at most this plus one answer, whatever it sends. */
#define HTTP_PAUSE_QUEUED (64u << 10)

/* Output queues are mostly small blocks, which the allocator keeps when
 * freed. A queue that grew past this many bytes asks its worker to hand
 * the freed pages back to the system once it is gone (drained or closed). */
#define CONN_TRIM_QUEUED (1u << 20)

/* Input that arrived while the connection could not take it. */
struct held_input {
    uint32_t len;
    uint8_t data[];
};

/* Connections come from per-worker slabs of CONN_SLAB slots: packed
 * together, with no allocator header each, and apart from the short-lived
 * handshake buffers, so what those leave behind can go back to the system.
 * Slabs live as long as the worker (memory follows the peak). */
#define CONN_SLAB 128

struct conn_slab {
    struct conn_slab *next;
    _Alignas(16) unsigned char slots[]; /* CONN_SLAB slots of conn_slot_size(w) */
};

/* A slot: the connection, then the rooms' upper area (conn_upper). */
static size_t conn_slot_size(const struct worker *w) {
    return (CONN_UPPER_OFFSET + w->hooks->conn_upper + 15) & ~(size_t)15;
}

static struct conn *conn_slot_alloc(struct worker *w) {
    size_t size = conn_slot_size(w);
    if (!w->free_conns) {
        struct conn_slab *s = malloc(sizeof(*s) + CONN_SLAB * size);
        if (!s)
            return NULL;
        s->next = w->slabs;
        w->slabs = s;
        for (int i = CONN_SLAB - 1; i >= 0; i--) {
            struct conn *c = (struct conn *)(s->slots + (size_t)i * size);
            c->next = w->free_conns;
            w->free_conns = c;
        }
    }
    struct conn *c = w->free_conns;
    w->free_conns = c->next;
    memset(c, 0, size);
    return c;
}

static void conn_slot_free(struct worker *w, struct conn *c) {
    c->next = w->free_conns;
    w->free_conns = c;
}

void conn_slabs_free(struct worker *w) {
    for (struct conn_slab *s = w->slabs, *n; s; s = n) {
        n = s->next;
        free(s);
    }
    w->slabs = NULL;
    w->free_conns = NULL;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
    struct conn *c = h->data;
    struct worker *w = c->w;
    /* One buffer per worker: a read callback consumes it completely before
     * the next read on any socket of this loop. */
    buf->base = (char *)w->rbuf;
    buf->len = WORKER_READ_BUF;
}

/* The single release path: unlinks c from every worker structure and frees
 * everything it owns. Runs only as the uv_close callback. */
static void on_closed(uv_handle_t *h) {
    struct conn *c = h->data;
    struct worker *w = c->w;
    w->hooks->release(c);
    if (c->deflate)
        ws_deflate_conn_released();
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    w->nconns--;
    conn_set_deadline(c, 0);
    if (c->dirty) {
        struct conn **pp = &w->dirty, *prev = NULL;
        while (*pp && *pp != c) {
            prev = *pp;
            pp = &(*pp)->dirty_next;
        }
        if (*pp) {
            *pp = c->dirty_next;
            if (w->dirty_tail == c)
                w->dirty_tail = prev;
        }
    }
    conn_http_done(c);
    if (c->paused)
        atomic_fetch_sub_explicit(&w->stats.http_paused, 1, memory_order_relaxed);
    if (c->big_queue)
        w->trim_due = true;
    free(c->held);
    outq_clear(&c->out);
    free(c->msg);
    free(c->ctrl);
    free(c->wreq); /* libuv is done with it: close cancels a pending write first */
    conn_tls_free(c);
    conn_slot_free(w, c);
    worker_conn_released(w);
}

void conn_http_done(struct conn *c) {
    if (!c->http)
        return;
    struct worker *w = c->w;
    w->hooks->http_idle(c);
    http_req_free(c->http);
    c->http = NULL;
    w->handshaking--;
}

void conn_set_deadline(struct conn *c, uint64_t ms) {
    struct worker *w = c->w;
    bool linked = c->deadline != 0;
    c->deadline = ms;
    if (ms && !linked) {
        c->tprev = NULL;
        c->tnext = w->timed;
        if (w->timed)
            w->timed->tprev = c;
        w->timed = c;
    } else if (!ms && linked) {
        if (c->tprev)
            c->tprev->tnext = c->tnext;
        else
            w->timed = c->tnext;
        if (c->tnext)
            c->tnext->tprev = c->tprev;
        c->tprev = c->tnext = NULL;
    }
}

void conn_close(struct conn *c) {
    if (c->closing)
        return;
    c->closing = true;
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

struct conn *conn_find(struct worker *w, uint64_t id) {
    for (struct conn *c = w->conns; c; c = c->next)
        if (c->id == id && !c->closing)
            return c;
    return NULL;
}

static void mark_dirty(struct conn *c) {
    if (c->dirty)
        return;
    c->dirty = true;
    c->dirty_next = NULL;
    if (c->w->dirty_tail)
        c->w->dirty_tail->dirty_next = c;
    else
        c->w->dirty = c;
    c->w->dirty_tail = c;
}

void conn_send(struct conn *c, struct outbuf *b) {
    if (c->closing || (c->close_sent && !c->close_after_flush && c->phase == PHASE_WS && b->kind == OB_TICK)) {
        outbuf_unref(b);
        return;
    }
    /* Bound for the replies a WebSocket client makes us queue by not
     * reading (ticks are conflated before they get here). It judges what is
     * already queued: one message larger than the bound (a history, a
     * price_batch under a small max_outbound_bytes) is no sign of a client
     * that does not read. HTTP answers are bounded by not reading the
     * requests behind them (HTTP_PAUSE_QUEUED). */
    if (c->phase == PHASE_WS && b->kind != OB_TICK &&
        c->out.bytes > 2 * (uint64_t)c->w->cfg->limits.max_outbound_bytes) {
        outbuf_unref(b);
        atomic_fetch_add_explicit(&c->w->stats.slow_disconnects, 1, memory_order_relaxed);
        if (!c->close_code)
            c->close_code = WS_CLOSE_TRY_AGAIN;
        conn_close(c);
        return;
    }
    if (outq_push(&c->out, b, (uint32_t)worker_now(c->w)) < 0) {
        log_rl(LOG_WARN, "conn %llu: out of memory queueing output; closing", (unsigned long long)c->id);
        conn_close(c);
        return;
    }
    if (c->out.bytes >= CONN_TRIM_QUEUED)
        c->big_queue = true;
    mark_dirty(c);
}

/* The end of an HTTP connection's life: server.keepalive_max_s after its
 * accept, however busy it is. Loop ms. */
static uint64_t http_life_end(const struct conn *c) {
    return c->http->born_ms + (uint64_t)c->w->cfg->server.keepalive_max_s * 1000;
}

/* The deadline of the next request: server.handshake_timeout_ms from now
 * (accept, or the last answer written), never past the connection's life. */
static uint64_t http_deadline(const struct conn *c) {
    uint64_t next = worker_now(c->w) + (uint64_t)c->w->cfg->server.handshake_timeout_ms;
    uint64_t end = http_life_end(c);
    return next < end ? next : end;
}

static void on_write(uv_write_t *req, int status);

/* One non-blocking send of the blocks (uv_buf_t is struct iovec's layout
 * on Unix): bytes taken, 0 when the socket is full, or -1 when it failed.
 * send/sendmsg rather than libuv's write/writev: the socket calls skip the
 * VFS layer, whose per-call share of a one-frame send fell from 13.5% to
 * 10.5% of the server's CPU in the fixed-rate fan-out (perf; the rest is
 * TCP and loopback). Only called with no uv_write in flight, so libuv's
 * own queue is empty. */
ssize_t conn_send_now(struct conn *c, uv_buf_t *iov, unsigned n) {
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0)
        return -1;
    struct msghdr mh = {.msg_iov = (struct iovec *)iov, .msg_iovlen = n};
    ssize_t r;
    do
        r = n == 1 ? send(fd, iov[0].base, iov[0].len, MSG_NOSIGNAL | MSG_DONTWAIT)
                   : sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
    return r;
}

/* Hands every queued byte to the socket: first as one non-blocking send
 * (most writes finish here), the rest as one uv_write whose completion
 * flushes again. The blocks stay referenced by the queue until written. */
void conn_flush(struct conn *c) {
    if (c->closing || c->writing)
        return;
    if (c->congested)
        c->w->hooks->drain(c);
    if (c->tls && conn_tls_flush(c) != 0)
        return; /* a write in flight, or closed; else nothing is left for the loop below */
    while (c->out.count > 0) {
        uv_buf_t iov[MAX_IOV];
        unsigned n = 0;
        size_t total = 0;
        for (uint32_t i = 0; i < c->out.count && n < MAX_IOV; i++, n++) {
            struct outq_item *it = outq_at(&c->out, i);
            iov[n] = uv_buf_init((char *)it->b->p + it->off, it->b->len - it->off);
            total += iov[n].len;
        }
        ssize_t r = conn_send_now(c, iov, n);
        if (r < 0) {
            conn_close(c);
            return;
        }
        atomic_fetch_add_explicit(&c->w->stats.bytes_sent, (uint64_t)r, memory_order_relaxed);
        outq_consume(&c->out, (size_t)r);
        if (c->congested)
            c->w->hooks->drain(c);
        if ((size_t)r < total) {
            /* The socket is full: let libuv finish the rest (up to MAX_IOV
             * blocks) and come back in on_write. */
            n = 0;
            size_t inflight = 0;
            for (uint32_t i = 0; i < c->out.count && n < MAX_IOV; i++, n++) {
                struct outq_item *it = outq_at(&c->out, i);
                iov[n] = uv_buf_init((char *)it->b->p + it->off, it->b->len - it->off);
                inflight += iov[n].len;
            }
            c->inflight = (uint32_t)inflight;
            if (!c->wreq && !(c->wreq = malloc(sizeof(*c->wreq)))) {
                conn_close(c);
                return;
            }
            c->wreq->data = c;
            if (uv_write(c->wreq, (uv_stream_t *)&c->tcp, iov, n, on_write) != 0) {
                conn_close(c);
                return;
            }
            c->writing = true;
            return;
        }
    }
    if (c->big_queue) {
        c->big_queue = false;
        c->w->trim_due = true;
    }
    if (c->tls && (c->close_after_flush || c->shutdown_after_flush))
        conn_tls_close_notify(c);
    if (c->close_after_flush)
        conn_close(c);
    else if (c->shutdown_after_flush && !c->closing)
        ws_session_shutdown_write(c);
    else if (c->phase == PHASE_HTTP && !c->awaiting) {
        /* Every answer is written: no request in progress. */
        c->w->hooks->http_idle(c);
        conn_set_deadline(c, http_deadline(c));
        if (c->paused)
            conn_resume_read(c);
    }
}

static void on_write(uv_write_t *req, int status) {
    struct conn *c = req->data;
    c->writing = false;
    if (status < 0) {
        conn_close(c);
        return;
    }
    /* uv_write completes only when all its buffers are written. */
    atomic_fetch_add_explicit(&c->w->stats.bytes_sent, c->inflight, memory_order_relaxed);
    outq_consume(&c->out, c->inflight);
    c->inflight = 0;
    conn_flush(c);
}

/* Keeps data[0..len) (at most one read) until the connection can take it,
 * and stops reading meanwhile. */
static void hold_input(struct conn *c, const uint8_t *data, size_t len) {
    struct held_input *h = malloc(sizeof(*h) + len);
    if (!h) {
        log_rl(LOG_WARN, "conn %llu: out of memory keeping input; closing", (unsigned long long)c->id);
        conn_close(c);
        return;
    }
    h->len = (uint32_t)len;
    memcpy(h->data, data, len);
    free(c->held);
    c->held = h;
    uv_read_stop((uv_stream_t *)&c->tcp);
}

/* Takes input: HTTP requests one at a time, then (after an upgrade) the
 * WebSocket's bytes. Input the connection cannot take now is held: while
 * an answer comes later (awaiting), and while HTTP_PAUSE_QUEUED bytes of
 * answers wait for the client (paused, resumed by conn_flush when they are
 * written). data stays the caller's. */
static void conn_input(struct conn *c, const uint8_t *data, size_t len) {
    while (len > 0 && !c->closing && c->phase == PHASE_HTTP) {
        if (c->close_after_flush)
            return; /* answered with Connection: close: nothing more is read */
        if (c->awaiting || c->out.bytes >= HTTP_PAUSE_QUEUED) {
            if (!c->awaiting && !c->paused) {
                c->paused = true;
                atomic_fetch_add_explicit(&c->w->stats.http_paused, 1, memory_order_relaxed);
            }
            hold_input(c, data, len);
            return;
        }
        size_t used = 0;
        enum http_status_rc rc = http_req_feed(c->http, (const char *)data, len, &used);
        if (rc == HTTP_NEED_MORE)
            return;
        if (rc == HTTP_ERROR) {
            int st = c->http->error_status;
            const char *code = st == 431 ? "headers_too_large" : st == 413 ? "body_too_large" : "bad_request";
            conn_http_error(c, st, code, http_reason(st), NULL, false);
            return;
        }
        data += used;
        len -= used;
        atomic_fetch_add_explicit(&c->w->stats.http_requests, 1, memory_order_relaxed);
        c->w->hooks->http_request(c);
        if (c->phase == PHASE_HTTP && !c->closing && !c->close_after_flush && !c->awaiting) {
            /* The next request's time starts once the answers are written
             * (conn_flush); the client reading them is bounded by the life. */
            http_req_reset(c->http);
            conn_set_deadline(c, http_life_end(c));
        }
    }
    if (len > 0 && !c->closing && c->phase == PHASE_WS)
        ws_session_feed(c, (uint8_t *)data, len);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    struct conn *c = s->data;
    if (nread == 0)
        return;
    if (nread < 0) {
        /* EOF or error: nothing more can arrive, so nothing can be answered. */
        conn_close(c);
        return;
    }
    if (c->tls) {
        const uint8_t *plain;
        size_t n;
        int rc = conn_tls_read(c, (uint8_t *)buf->base, (size_t)nread, &plain, &n);
        if (rc >= 0 && n > 0)
            conn_input(c, plain, n);
        if (rc > 0)
            conn_close(c); /* close_notify: nothing more can arrive */
        return;
    }
    conn_input(c, (uint8_t *)buf->base, (size_t)nread);
}

void conn_resume_read(struct conn *c) {
    if (c->closing)
        return;
    if (c->paused) {
        c->paused = false;
        atomic_fetch_sub_explicit(&c->w->stats.http_paused, 1, memory_order_relaxed);
    }
    struct held_input *h = c->held;
    c->held = NULL;
    if (h) {
        conn_input(c, h->data, h->len);
        free(h);
        if (c->closing || c->held || c->awaiting || c->close_after_flush)
            return; /* stopped again, or reads nothing more */
    }
    int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc != 0 && rc != UV_EALREADY)
        conn_close(c);
}

void conn_http_end(struct conn *c) {
    if (c->closing)
        return;
    if (!c->writing && c->out.count == 0) {
        conn_close(c);
        return;
    }
    c->close_after_flush = true;
    uv_read_stop((uv_stream_t *)&c->tcp);
}

int conn_accept(struct worker *w, uv_stream_t *listener, struct tls_ctx *tls) {
    struct conn *c = conn_slot_alloc(w);
    if (!c)
        return -ENOMEM;
    c->w = w;
    if (uv_tcp_init(&w->loop, &c->tcp) != 0) {
        conn_slot_free(w, c);
        return -EIO;
    }
    c->tcp.data = c;
    /* From here on the one release path is conn_close -> on_closed. */
    c->id = ((uint64_t)w->id << 48) | ++w->next_id;
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    w->nconns++;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return -EIO;
    }
    atomic_fetch_add_explicit(&w->stats.accepted, 1, memory_order_relaxed);
    if (tls && conn_tls_open(c, tls) < 0) {
        conn_close(c);
        return -ENOMEM;
    }
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            memcpy(c->ip, &a->sin_addr, 4);
            c->port = ntohs(a->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            memcpy(c->ip, &a->sin6_addr, 16);
            c->port = ntohs(a->sin6_port);
        }
        c->family = (uint8_t)ss.ss_family;
    }
    /* TCP_NODELAY comes with the socket: set on the listener (server.c). */
    c->http = http_req_new((size_t)w->cfg->server.max_http_body_bytes);
    if (!c->http) {
        conn_close(c);
        return -ENOMEM;
    }
    w->handshaking++;
    c->http->born_ms = worker_now(w);
    conn_set_deadline(c, http_deadline(c));
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        conn_close(c);
        return -EIO;
    }
    return 0;
}

void conn_http_respond(struct conn *c, int status, const char *ctype, const char *body, size_t len,
                       const char *headers, bool keep_alive) {
    if (c->closing)
        return;
    if (keep_alive && c->http && worker_now(c->w) >= http_life_end(c))
        keep_alive = false; /* server.keepalive_max_s: the connection's last answer */
    char head[1024];
    int hl = snprintf(head, sizeof(head),
                      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                      "Cache-Control: no-store\r\n%s%s\r\n",
                      status, http_reason(status), ctype, len, headers ? headers : "",
                      keep_alive ? "" : "Connection: close\r\n");
    if (hl < 0 || (size_t)hl >= sizeof(head)) {
        conn_close(c);
        return;
    }
    bool head_only = c->http && http_req_is_head(c->http);
    size_t blen = head_only ? 0 : len;
    struct outbuf *b = outbuf_new((size_t)hl + blen);
    if (!b) {
        conn_close(c);
        return;
    }
    memcpy(outbuf_payload(b), head, (size_t)hl);
    if (blen)
        memcpy(outbuf_payload(b) + hl, body, blen);
    outbuf_seal_raw(b, (size_t)hl + blen);
    conn_send(c, b);
    if (!keep_alive) {
        c->close_after_flush = true;
        uv_read_stop((uv_stream_t *)&c->tcp);
    }
}

void conn_http_error(struct conn *c, int status, const char *code, const char *msg, const char *headers,
                     bool keep_alive) {
    char body[512];
    /* code and msg are fixed strings of ours, never client input. */
    int n = snprintf(body, sizeof(body), "{\"error\":\"%s\",\"message\":\"%s\"}", code, msg);
    conn_http_respond(c, status, "application/json", body, (size_t)n, headers, keep_alive);
}
