/* loadgen_conn.c - the connections' sockets: connect (optionally from a
 * --sources address), the TLS handshake, the upgrade request, the subscribe,
 * sends (a subscriber keeps a refused remainder in one malloc'd buffer, which
 * is rare; the publisher has its PUB_OUT_CAP queue), and close with its
 * accounting of where a connection failed. */
#include <errno.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loadgen.h"

struct conn *conns;
struct conn pubc;
uint8_t *lefts;
int epfd = -1;
int64_t g_now;
struct sockaddr_in srv_addr;
struct sockaddr_in sub_addrs[8], pub_addr;
struct in_addr *src_addrs;
int nsrc;
char *hs_req_sub[MAX_TOKENS], *hs_req_pub;
size_t hs_len_sub[MAX_TOKENS], hs_len_pub, hs_keyoff_sub[MAX_TOKENS], hs_keyoff_pub;
int ntok = 1;
uint8_t *pub_out;
size_t pub_off, pub_len;

/* ---------------------------------------------------------------- frames out */

/* Writes a masked client frame of payload p[0..n) at out (room: n + 14). */
size_t ws_frame(uint8_t *out, int op, const void *payload, size_t n) {
    const uint8_t *p = payload;
    size_t h = 0;
    out[h++] = (uint8_t)(0x80 | op);
    if (n < 126)
        out[h++] = (uint8_t)(0x80 | n);
    else if (n < 65536) {
        out[h++] = 0x80 | 126;
        out[h++] = (uint8_t)(n >> 8);
        out[h++] = (uint8_t)n;
    } else {
        out[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            out[h++] = (uint8_t)(n >> (8 * i));
    }
    uint64_t r = rng64();
    uint8_t m[4] = {(uint8_t)r, (uint8_t)(r >> 8), (uint8_t)(r >> 16), (uint8_t)(r >> 24)};
    memcpy(out + h, m, 4);
    h += 4;
    for (size_t i = 0; i < n; i++)
        out[h + i] = p[i] ^ m[i & 3];
    return h + n;
}

/* ---------------------------------------------------------------- connection plumbing */

static void ep_mod(struct conn *c, uint32_t ev) {
    struct epoll_event e = {.events = ev, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &e);
}

/* Closes c. failed: it ended before becoming active (a setup failure). */
void conn_close(struct conn *c) {
    if (c->fd < 0)
        return;
    close(c->fd);
    c->fd = -1;
    S.open_fds--;
    lt_free(c->ssl);
    c->ssl = NULL;
    free(c->wpend);
    c->wpend = NULL;
    c->wlen = c->woff = 0;
    c->nleft = 0;
    uint8_t st = c->state;
    c->state = ST_DONE;
    if (c->kind == K_PUB) {
        if (st != ST_CLOSING && publishing) {
            fprintf(stderr, "loadgen: publisher connection lost\n");
            incomplete = true;
        }
        return;
    }
    if (st == ST_CONNECTING || st == ST_HS_SENT) {
        if (c->aborted)
            S.aborted++;
        else
            S.hs_fail++;
        S.inflight--;
        S.setup_pending--;
    } else if (st == ST_WAIT_READY || st == ST_SUB_SENT) {
        if (c->aborted)
            S.aborted++;
        else
            S.setup_fail++;
        S.setup_pending--;
    } else if (st == ST_ACTIVE) {
        S.disconnects++;
    }
}

/* send()/recv() on c, through its TLS session when it has one. */
static ssize_t io_send(struct conn *c, const void *p, size_t n) {
    return c->ssl ? lt_send(c->ssl, p, n) : send(c->fd, p, n, MSG_NOSIGNAL);
}

/* Sends a frame's bytes on c, keeping what the socket refuses (rare for
 * subscribers: one small malloc'd remainder; the publisher has its queue). */
static void conn_send(struct conn *c, const uint8_t *buf, size_t len) {
    if (c->fd < 0)
        return;
    if (c->kind == K_PUB) {
        if (pub_off + pub_len + len > PUB_OUT_CAP) {
            memmove(pub_out, pub_out + pub_off, pub_len);
            pub_off = 0;
        }
        if (pub_len + len > PUB_OUT_CAP)
            return; /* control frame on a full queue: dropped */
        memcpy(pub_out + pub_off + pub_len, buf, len);
        pub_len += len;
        pub_flush();
        return;
    }
    if (c->wpend) {
        char *n = realloc(c->wpend, c->wlen + len);
        if (!n) {
            conn_close(c);
            return;
        }
        memcpy(n + c->wlen, buf, len);
        c->wpend = n;
        c->wlen += (uint32_t)len;
        return;
    }
    ssize_t w = io_send(c, buf, len);
    if (w < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            conn_close(c);
            return;
        }
        w = 0;
    }
    if ((size_t)w < len) {
        S.short_writes++;
        c->wpend = malloc(len - (size_t)w);
        if (!c->wpend) {
            conn_close(c);
            return;
        }
        memcpy(c->wpend, buf + w, len - (size_t)w);
        c->wlen = (uint32_t)(len - (size_t)w);
        c->woff = 0;
        c->epout = 1;
        ep_mod(c, EPOLLIN | EPOLLOUT);
    }
}

void conn_send_frame(struct conn *c, int op, const void *p, size_t n) {
    uint8_t f[256 + 14];
    if (n > 256)
        n = 256;
    conn_send(c, f, ws_frame(f, op, p, n));
}

void pub_flush(void) {
    struct conn *c = &pubc;
    while (pub_len && c->fd >= 0) {
        ssize_t w = io_send(c, pub_out + pub_off, pub_len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (!c->epout) {
                    c->epout = 1;
                    ep_mod(c, EPOLLIN | EPOLLOUT);
                }
                return;
            }
            conn_close(c);
            return;
        }
        pub_off += (size_t)w;
        pub_len -= (size_t)w;
    }
    if (!pub_len) {
        pub_off = 0;
        if (c->epout && c->fd >= 0) {
            c->epout = 0;
            ep_mod(c, EPOLLIN);
        }
    }
}

void on_writable(struct conn *c) {
    if (c->kind == K_PUB) {
        pub_flush();
        return;
    }
    while (c->wpend) {
        ssize_t w = io_send(c, c->wpend + c->woff, c->wlen - c->woff);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            conn_close(c);
            return;
        }
        c->woff += (uint32_t)w;
        if (c->woff == c->wlen) {
            free(c->wpend);
            c->wpend = NULL;
            c->wlen = c->woff = 0;
        }
    }
    c->epout = 0;
    ep_mod(c, EPOLLIN);
}

void send_close(struct conn *c, uint16_t code) {
    uint8_t p[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    conn_send_frame(c, 8, p, 2);
}

/* ---------------------------------------------------------------- setup */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static bool send_request_now(struct conn *c);

void conn_start(struct conn *c) {
    c->state = ST_CONNECTING;
    c->t0 = g_now;
    if (c->kind == K_SUB) {
        S.setup_pending++;
        S.inflight++;
        if (!S.t_first_connect)
            S.t_first_connect = g_now;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        S.connect_err++;
        c->state = ST_DONE;
        if (c->kind == K_SUB) {
            S.hs_fail++;
            S.inflight--;
            S.setup_pending--;
        }
        return;
    }
    c->fd = fd;
    S.open_fds++;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (nsrc) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr = src_addrs[c->id % (uint32_t)nsrc]};
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
            S.connect_err++;
            conn_close(c);
            return;
        }
    }
    const struct sockaddr_in *to = c->kind == K_PUB ? &pub_addr : &sub_addrs[c->id % (uint32_t)O.nports];
    if (connect(fd, (const struct sockaddr *)to, sizeof(*to)) < 0 && errno != EINPROGRESS) {
        S.connect_err++;
        conn_close(c);
        return;
    }
    if (O.tls) {
        if (!(c->ssl = lt_new(fd))) {
            S.tls_fail++;
            conn_close(c);
            return;
        }
        tls_step(c, true);
        return;
    }
    if (send_request_now(c))
        return;
    struct epoll_event e = {.events = EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &e) < 0) {
        S.connect_err++;
        conn_close(c);
    }
}

/* The upgrade request with a fresh Sec-WebSocket-Key (16 random bytes in
 * base64: 22 chars + "=="). */
static char *next_request(struct conn *c, size_t *len) {
    int t = (int)(c->id % (uint32_t)ntok);
    char *req = c->kind == K_PUB ? hs_req_pub : hs_req_sub[t];
    size_t ko = c->kind == K_PUB ? hs_keyoff_pub : hs_keyoff_sub[t];
    *len = c->kind == K_PUB ? hs_len_pub : hs_len_sub[t];
    uint64_t a = rng64(), b = rng64();
    for (int i = 0; i < 22; i++) {
        uint64_t src = i < 11 ? a >> (6 * i) : b >> (6 * (i - 11));
        req[ko + (size_t)i] = B64[src & 63];
    }
    req[ko + 21] = B64[(b >> 60) & 0x30]; /* last char carries 2 bits: keep it canonical */
    return req;
}

static void send_upgrade(struct conn *c) {
    size_t len;
    char *req = next_request(c, &len);
    c->state = ST_HS_SENT;
    ep_mod(c, EPOLLIN);
    conn_send(c, (const uint8_t *)req, len);
}

void on_connected(struct conn *c) {
    int err = 0;
    socklen_t l = sizeof(err);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0 || err) {
        S.connect_err++;
        conn_close(c);
        return;
    }
    send_upgrade(c);
}

/* --tls: the TLS handshake runs in state ST_CONNECTING (setup timeouts and
 * failure counts see it as connecting); the upgrade request goes out when
 * it is done. first: c is not in the epoll set yet. */
void tls_step(struct conn *c, bool first) {
    bool want_write = false;
    int r = lt_handshake(c->ssl, &want_write);
    struct epoll_event e = {.events = r == 0 && want_write ? EPOLLOUT : EPOLLIN, .data.ptr = c};
    if (r < 0 || epoll_ctl(epfd, first ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, c->fd, &e) < 0) {
        S.tls_fail++;
        conn_close(c);
        return;
    }
    if (r == 0)
        return;
    if (lt_resumed(c->ssl))
        S.tls_resumed++;
    send_upgrade(c);
}

/* On loopback the three-way handshake is over by the time a non-blocking
 * connect returns: send the upgrade request at once and register for input
 * only (one epoll_ctl, no writability wake-up, no SO_ERROR check). The
 * load generator's own cost per handshake bounds the storm scenario, so
 * this matters. Returns false when the socket is not writable yet (the
 * caller then waits for EPOLLOUT as usual). */
static bool send_request_now(struct conn *c) {
    size_t len;
    char *req = next_request(c, &len);
    ssize_t w = send(c->fd, req, len, MSG_NOSIGNAL);
    if (w < 0)
        return false; /* not connected yet (EAGAIN/ENOTCONN) or failed: the EPOLLOUT path reports it */
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &e) < 0) {
        S.connect_err++;
        conn_close(c);
        return true;
    }
    c->state = ST_HS_SENT;
    if ((size_t)w < len)
        conn_send(c, (const uint8_t *)req + w, len - (size_t)w);
    return true;
}

void send_subscribe(struct conn *c) {
    char buf[96 + MAX_PER * (2 * MAX_SYMLEN + 96)];
    size_t n = 0;
    memcpy(buf, "{\"type\":\"subscribe\",\"symbols\":[", 31);
    n = 31;
    const uint32_t *cs = &csym[(size_t)c->id * (size_t)O.per];
    for (int j = 0; j < O.per; j++) {
        if (j)
            buf[n++] = ',';
        buf[n++] = '"';
        memcpy(buf + n, sym_name[cs[j]], sym_len[cs[j]]);
        n += sym_len[cs[j]];
        buf[n++] = '"';
    }
    buf[n++] = ']';
    if (c->again) { /* "recover":{"S":{"seq":N,"epoch":"E"},...} */
        const uint32_t *sq = &RS.seq[(size_t)c->id * (size_t)O.per];
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, ",\"recover\":{");
        for (int j = 0, k = 0; j < O.per; j++) {
            if (cs[j] == NO_SYM || !RS.epoch[cs[j]][0] || !sq[j])
                continue;
            n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s\"%s\":{\"seq\":%u,\"epoch\":\"%s\"}", k++ ? "," : "",
                                  sym_name[cs[j]], sq[j], RS.epoch[cs[j]]);
        }
        buf[n++] = '}';
    }
    buf[n++] = '}';
    uint8_t f[sizeof(buf) + 14];
    c->state = ST_SUB_SENT;
    c->t0 = g_now;
    conn_send(c, f, ws_frame(f, 1, buf, n));
}

void became_active(struct conn *c) {
    c->state = ST_ACTIVE;
    if (c->kind == K_SUB)
        S.setup_pending--;
}

/* The upgrade request with token (a Bearer header when non-empty) and a
 * placeholder key at *keyoff, patched per connection by next_request. */
char *build_request(const char *token, size_t *len, size_t *keyoff) {
    size_t cap = 512 + strlen(O.path) + strlen(O.host) + (token ? strlen(token) : 0);
    char *r = xcalloc(1, cap);
    int n = snprintf(r, cap,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: ",
                     O.path, O.host, O.port);
    *keyoff = (size_t)n;
    n += snprintf(r + n, cap - (size_t)n, "AAAAAAAAAAAAAAAAAAAAAA==\r\nSec-WebSocket-Version: 13\r\n");
    if (token && *token)
        n += snprintf(r + n, cap - (size_t)n, "Authorization: Bearer %s\r\n", token);
    if (O.deflate)
        n += snprintf(r + n, cap - (size_t)n, "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n");
    n += snprintf(r + n, cap - (size_t)n, "\r\n");
    *len = (size_t)n;
    return r;
}
