/* conn_tls.c - a TLS connection's reads and writes; see conn_tls.h. */
#include "net/conn_tls.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "net/conn.h"
#include "net/tls.h"
#include "net/worker.h"

int conn_tls_open(struct conn *c, struct tls_ctx *t) {
    struct tls_session *s = malloc(sizeof(*s));
    if (!s || tls_session_init(s, t, &c->w->tls_io) < 0) {
        free(s);
        return -ENOMEM;
    }
    c->tls = s;
    return 0;
}

void conn_tls_free(struct conn *c) {
    if (!c->tls)
        return;
    tls_session_free(c->tls);
    free(c->tls);
    c->tls = NULL;
}

static void on_tls_write(uv_write_t *req, int status);

/* Hands s->pend to one uv_write. 0, or -1 when c was closed. */
static int write_pending(struct conn *c) {
    struct tls_session *s = c->tls;
    if (!c->wreq && !(c->wreq = malloc(sizeof(*c->wreq)))) {
        conn_close(c);
        return -1;
    }
    c->wreq->data = c;
    uv_buf_t b = uv_buf_init((char *)s->pend, s->pend_len);
    if (uv_write(c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_tls_write) != 0) {
        conn_close(c);
        return -1;
    }
    c->writing = true;
    return 0;
}

/* Sends the records waiting in the worker's buffer: what the socket takes
 * now, the rest (copied) by one uv_write; while a write is in flight they
 * wait behind it. 0, or -1 when c was closed. */
static int send_records(struct conn *c) {
    struct tls_io *io = &c->w->tls_io;
    struct tls_session *s = c->tls;
    size_t len = io->out_len;
    io->out_len = 0;
    if (len == 0)
        return 0;
    if (c->writing) {
        uint8_t *p = s->later_len + len <= CONN_TLS_LATER_MAX ? realloc(s->later, s->later_len + len) : NULL;
        if (!p) {
            conn_close(c);
            return -1;
        }
        memcpy(p + s->later_len, io->out, len);
        s->later = p;
        s->later_len += (uint32_t)len;
        return 0;
    }
    uv_buf_t b = uv_buf_init((char *)io->out, len);
    ssize_t r = conn_send_now(c, &b, 1);
    if (r < 0) {
        conn_close(c);
        return -1;
    }
    atomic_fetch_add_explicit(&c->w->stats.bytes_sent, (uint64_t)r, memory_order_relaxed);
    if ((size_t)r == len)
        return 0;
    if (!(s->pend = malloc(len - (size_t)r))) {
        conn_close(c);
        return -1;
    }
    memcpy(s->pend, io->out + r, len - (size_t)r);
    s->pend_len = (uint32_t)(len - (size_t)r);
    return write_pending(c);
}

static void on_tls_write(uv_write_t *req, int status) {
    struct conn *c = req->data;
    struct tls_session *s = c->tls;
    c->writing = false;
    if (status < 0) {
        conn_close(c); /* pend is freed with the session */
        return;
    }
    atomic_fetch_add_explicit(&c->w->stats.bytes_sent, s->pend_len, memory_order_relaxed);
    free(s->pend);
    s->pend = s->later;
    s->pend_len = s->later_len;
    s->later = NULL;
    s->later_len = 0;
    if (s->pend) {
        write_pending(c);
        return;
    }
    conn_flush(c);
}

int conn_tls_read(struct conn *c, const uint8_t *data, size_t len, const uint8_t **plain, size_t *plen) {
    struct tls_io *io = &c->w->tls_io;
    enum tls_rc rc = tls_session_input(c->tls, io, data, len, plen);
    *plain = io->plain;
    if (send_records(c) < 0)
        return -1;
    if (rc == TLS_ERR) {
        conn_close(c);
        return -1;
    }
    return rc == TLS_EOF ? 1 : 0;
}

/* Encrypts up to CONN_TLS_FLUSH_BYTES of c's queue. Frames up to
 * CONN_TLS_GATHER_MAX bytes are copied into the worker's gather buffer and
 * go out together as one record: a record costs OpenSSL far more (nonce,
 * cipher set-up, tag, header) than copying a tick's frame, and the client
 * decrypts one record instead of one per frame. Larger frames are
 * encrypted straight from their shared block. 0 or -1. */
static int encrypt_queued(struct conn *c, struct tls_session *s, struct tls_io *io) {
    size_t taken = 0, glen = 0;
    int rc = 0;
    while (c->out.count > 0 && taken < CONN_TLS_FLUSH_BYTES && rc == 0) {
        struct outq_item *it = outq_at(&c->out, 0);
        size_t n = it->b->len - it->off;
        if (glen && (n > CONN_TLS_GATHER_MAX || glen + n > TLS_RECORD_MAX)) {
            rc = tls_session_write(s, io, io->gather, glen);
            glen = 0;
        }
        if (rc == 0 && n <= CONN_TLS_GATHER_MAX) {
            memcpy(io->gather + glen, it->b->p + it->off, n);
            glen += n;
        } else if (rc == 0) {
            rc = tls_session_write(s, io, it->b->p + it->off, n);
        }
        outq_consume(&c->out, n);
        taken += n;
    }
    if (glen && rc == 0)
        rc = tls_session_write(s, io, io->gather, glen);
    return rc;
}

int conn_tls_flush(struct conn *c) {
    struct tls_session *s = c->tls;
    struct tls_io *io = &c->w->tls_io;
    if (!s->ready)
        return 1; /* nothing is queued before the first request anyway */
    while (c->out.count > 0) {
        tls_session_batch(s, true);
        int rc = encrypt_queued(c, s, io);
        tls_session_batch(s, false);
        if (rc < 0) {
            io->out_len = 0;
            conn_close(c);
            return 1;
        }
        if (send_records(c) < 0 || c->writing)
            return 1;
    }
    return 0;
}

void conn_tls_close_notify(struct conn *c) {
    tls_session_close_notify(c->tls, &c->w->tls_io);
    send_records(c);
}
