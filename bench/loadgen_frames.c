/* loadgen_frames.c - bytes in: one read per readiness (again while TLS
 * may hold more), the HTTP 101 response, WebSocket frames (a frame cut by a
 * read waits in the connection's LEFT_CAP leftover; a bigger one is
 * classified by its first bytes and the rest discarded), control frames,
 * and permessage-deflate payloads. Text goes to on_text. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <zlib.h>

#include "loadgen.h"

static uint8_t rbuf[RBUF_DATA + LEFT_CAP]; /* shared receive buffer, owned by the loop */

/* recv() on c, through its TLS session when it has one. */
static ssize_t io_recv(struct conn *c, void *p, size_t n) {
    return c->ssl ? lt_recv(c->ssl, p, n) : recv(c->fd, p, n, 0);
}

/* Inflated payloads by their compressed bytes: a shared compressed frame
 * (one deflate run for every subscriber, as tickgate and uWS's
 * SHARED_COMPRESSOR send it) is inflated once here too, so the load
 * generator's cost per compressed message stays near a plain one's. */
#define ZC_SLOTS 1024
#define ZC_IN 256
#define ZC_OUT 1024
static struct zc_entry {
    uint32_t len, olen;
    uint8_t in[ZC_IN];
    char out[ZC_OUT];
} zcache[ZC_SLOTS];

/* Inflates one permessage-deflate payload (the 00 00 ff ff the sender
 * removed appended): a static or cached buffer, NULL when it does not
 * inflate. */
static const char *inflate_msg(const uint8_t *p, size_t n, size_t *out_len) {
    static z_stream z;
    static bool ready;
    static uint8_t in[LEFT_CAP + 4], out[1 << 20];
    struct zc_entry *e = NULL;
    if (n <= ZC_IN) {
        uint64_t h = n, w;
        size_t i = 0;
        for (; i + 8 <= n; i += 8) { /* a word at a time: this runs per message */
            memcpy(&w, p + i, 8);
            h = (h ^ w) * 0x9E3779B97F4A7C15ull;
        }
        for (; i < n; i++)
            h = (h ^ p[i]) * 0x100000001B3ull;
        h ^= h >> 29;
        e = &zcache[h & (ZC_SLOTS - 1)];
        if (e->len == n && memcmp(e->in, p, n) == 0) {
            *out_len = e->olen;
            return e->out;
        }
    }
    if (!ready) {
        if (inflateInit2(&z, -15) != Z_OK)
            return NULL;
        ready = true;
    } else if (inflateReset(&z) != Z_OK) {
        return NULL;
    }
    if (n > LEFT_CAP)
        return NULL;
    memcpy(in, p, n);
    memcpy(in + n, "\x00\x00\xff\xff", 4);
    z.next_in = in;
    z.avail_in = (uInt)(n + 4);
    z.next_out = out;
    z.avail_out = sizeof(out);
    int rc = inflate(&z, Z_SYNC_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR)
        return NULL;
    *out_len = sizeof(out) - z.avail_out;
    if (e && *out_len <= ZC_OUT) {
        e->len = (uint32_t)n;
        memcpy(e->in, p, n);
        e->olen = (uint32_t)*out_len;
        memcpy(e->out, out, *out_len);
    }
    return (const char *)out;
}

static void on_frame(struct conn *c, int b0, const uint8_t *p, size_t n, bool truncated) {
    int op = b0 & 0x0f;
    if (!(b0 & 0x80) || op == 0) {
        S.proto_err++; /* fragments are not expected */
        return;
    }
    if (b0 & 0x40) { /* RSV1: a compressed message */
        size_t ml;
        const char *m = O.deflate && op == 1 && !truncated ? inflate_msg(p, n, &ml) : NULL;
        if (!m) {
            S.proto_err++;
            return;
        }
        S.compressed_rx++;
        on_text(c, m, ml, false);
        return;
    }
    switch (op) {
    case 1:
        on_text(c, (const char *)p, n, truncated);
        break;
    case 9:
        S.pings++;
        conn_send_frame(c, 10, p, n);
        break;
    case 10:
        break;
    case 8:
        if (c->state != ST_CLOSING) {
            S.closes_rx++; /* the server started it */
            uint16_t code = n >= 2 ? (uint16_t)(p[0] << 8 | p[1]) : 1000;
            if (code < 1000 || code == 1005 || code == 1006 || code == 1015)
                code = 1000;
            send_close(c, code);
            note_error(c->kind == K_PUB, "closed by server: ", n > 2 ? (const char *)p + 2 : "", n > 2 ? n - 2 : 0);
        }
        conn_close(c);
        break;
    default:
        S.proto_err++;
    }
}

/* Consumes complete frames of buf[0..len); returns bytes consumed (the rest
 * is a frame cut by the read, at most LEFT_CAP bytes). */
static size_t parse_frames(struct conn *c, uint8_t *buf, size_t len) {
    size_t off = 0;
    if (c->skip) {
        size_t k = c->skip < len ? (size_t)c->skip : len;
        c->skip -= k;
        off = k;
    }
    while (c->fd >= 0 && len - off >= 2) {
        uint8_t *f = buf + off;
        size_t avail = len - off, hl = 2;
        uint64_t pl = f[1] & 0x7f;
        if (f[1] & 0x80) {
            S.proto_err++; /* servers must not mask */
            conn_close(c);
            return len;
        }
        if (pl == 126) {
            if (avail < 4)
                break;
            pl = (uint64_t)f[2] << 8 | f[3];
            hl = 4;
        } else if (pl == 127) {
            if (avail < 10)
                break;
            pl = 0;
            for (int i = 0; i < 8; i++)
                pl = pl << 8 | f[2 + i];
            hl = 10;
        }
        if (avail - hl < pl) {
            if (hl + pl <= LEFT_CAP)
                break; /* wait for the rest */
            /* too big to keep: classify by what we have, discard the rest */
            on_frame(c, f[0], f + hl, avail - hl, true);
            c->skip = pl - (avail - hl);
            return len;
        }
        on_frame(c, f[0], f + hl, (size_t)pl, false);
        off += hl + (size_t)pl;
    }
    return off;
}

/* Consumes the HTTP response; returns bytes consumed or (size_t)-1 on failure. */
static size_t parse_http(struct conn *c, uint8_t *buf, size_t len) {
    if (len >= 12 && memcmp(buf, "HTTP/1.1 101", 12) != 0) {
        if (c->kind == K_SUB)
            S.http_err++;
        const uint8_t *eol = memchr(buf, '\r', len);
        size_t el = eol ? (size_t)(eol - buf) : (len < 40 ? len : 40);
        note_error(c->kind == K_PUB, "handshake: ", (const char *)buf, el);
        return (size_t)-1;
    }
    uint8_t *e = memmem(buf, len, "\r\n\r\n", 4);
    if (!e)
        return len >= LEFT_CAP ? (size_t)-1 : 0;
    if (c->kind == K_SUB) {
        S.hs_ok++;
        S.inflight--;
        h_add(&S.hs_lat, g_now - c->t0);
        S.t_last_hs = g_now;
    }
    c->t0 = g_now;
    if (O.storm && c->kind == K_SUB)
        became_active(c);
    else
        c->state = ST_WAIT_READY;
    return (size_t)(e + 4 - buf);
}

/* One read; true when it filled the buffer on a TLS connection: OpenSSL
 * may hold more that epoll will not announce, so read again. */
static bool read_once(struct conn *c) {
    uint8_t *left = lefts + (size_t)c->id * LEFT_CAP;
    size_t have = c->nleft;
    if (have)
        memcpy(rbuf, left, have);
    ssize_t r = io_recv(c, rbuf + have, RBUF_DATA);
    if (r <= 0) {
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return false;
        if (r == 0 && c->state != ST_CLOSING)
            S.eof_rx++;
        if (c->kind == K_PUB && c->state != ST_CLOSING)
            note_error(true, "", "connection ended by server", 26);
        conn_close(c);
        return false;
    }
    g_now = now_ns();
    size_t len = have + (size_t)r, off = 0;
    c->nleft = 0;
    if (c->state == ST_HS_SENT) {
        off = parse_http(c, rbuf, len);
        if (off == (size_t)-1) {
            conn_close(c);
            return false;
        }
        if (c->state == ST_HS_SENT) { /* headers incomplete */
            memcpy(left, rbuf, len);
            c->nleft = (uint16_t)len;
            return false;
        }
    }
    off += parse_frames(c, rbuf + off, len - off);
    if (c->fd >= 0 && off < len) {
        memcpy(left, rbuf + off, len - off);
        c->nleft = (uint16_t)(len - off);
    }
    return c->ssl && c->fd >= 0 && (size_t)r == RBUF_DATA;
}

void on_readable(struct conn *c) {
    while (read_once(c))
        ;
}
