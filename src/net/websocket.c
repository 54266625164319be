/* session.c - RFC 6455 over a connection; see session.h. */
#include "net/websocket.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "base/config.h"
#include "net/worker.h"
#include "net/conn.h"
#include "net/http.h"
#include "net/zframe.h"
#include "ws/deflate.h"
#include "ws/frame.h"
#include "ws/handshake.h"
#include "ws/utf8.h"

static void on_shutdown(uv_shutdown_t *req, int status) {
    free(req);
}

int ws_handshake_check(struct conn *c, char accept[WS_ACCEPT_LEN]) {
    struct http_req *r = c->http;
    size_t ul = 0, cl = 0, kl = 0, vl = 0;
    const char *up = http_req_header(r, "Upgrade", &ul);
    const char *cn = http_req_header(r, "Connection", &cl);
    const char *key = http_req_header(r, "Sec-WebSocket-Key", &kl);
    const char *ver = http_req_header(r, "Sec-WebSocket-Version", &vl);
    if (!up || !http_header_has_token(up, ul, "websocket") || !cn || !http_header_has_token(cn, cl, "upgrade")) {
        conn_http_error(c, 400, "bad_upgrade", "expected a WebSocket upgrade (Upgrade: websocket)", NULL, false);
        return 400;
    }
    if (!ver || vl != 2 || strncmp(ver, "13", 2) != 0) {
        conn_http_error(c, 400, "bad_version", "Sec-WebSocket-Version must be 13", "Sec-WebSocket-Version: 13\r\n",
                        false);
        return 400;
    }
    if (!key || !ws_key_valid(key, kl)) {
        conn_http_error(c, 400, "bad_key", "Sec-WebSocket-Key must be base64 of 16 bytes", NULL, false);
        return 400;
    }
    if (r->parser.http_major != 1 || r->parser.http_minor < 1) {
        conn_http_error(c, 400, "bad_upgrade", "WebSocket needs HTTP/1.1", NULL, false);
        return 400;
    }
    ws_accept_key(key, kl, accept);
    if (!accept[0]) {
        conn_http_error(c, 503, "unavailable", "out of memory", NULL, false);
        return 503;
    }
    return 0;
}

void ws_session_upgrade(struct conn *c, int ep, const char *accept) {
    char resp[384], offers[1024], ext[WS_DEFLATE_RESPONSE_MAX];
    http_req_header_all(c->http, "Sec-WebSocket-Extensions", offers, sizeof(offers));
    bool deflate = ws_deflate_negotiate(offers, strlen(offers), ext);
    int n = snprintf(resp, sizeof(resp),
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n%s%s%s\r\n",
                     accept, deflate ? "Sec-WebSocket-Extensions: " : "", deflate ? ext : "", deflate ? "\r\n" : "");
    struct outbuf *b = outbuf_new((size_t)n);
    if (!b) {
        conn_close(c);
        return;
    }
    memcpy(outbuf_payload(b), resp, (size_t)n);
    outbuf_seal_raw(b, (size_t)n);
    conn_send(c, b);
    conn_http_done(c);
    c->phase = PHASE_WS;
    c->endpoint = (uint8_t)ep;
    conn_set_deadline(c, 0);
    ws_parser_init(&c->parser, true);
    if (deflate) {
        c->deflate = true;
        c->parser.rsv1_ok = true;
        ws_deflate_conn_opened();
    }
    if (ep == EP_JSON)
        c->w->hooks->ws_open(c);
}

void ws_send(struct conn *c, unsigned opcode, const void *data, size_t len) {
    if (c->closing || c->close_sent)
        return;
    struct outbuf *b = outbuf_new(len);
    if (!b) {
        conn_close(c);
        return;
    }
    if (len)
        memcpy(outbuf_payload(b), data, len);
    outbuf_seal_ws(b, opcode, len);
    ws_send_frame(c, b);
}

struct outbuf *ws_frame_for(struct conn *c, struct outbuf *b) {
    return c->deflate ? zframe_pick(b) : b;
}

void ws_send_frame(struct conn *c, struct outbuf *b) {
    if (c->deflate) {
        b = zframe_pick(b);
        if (b->zsaved) { /* counted per receiving connection; the worker is the one writer */
            struct worker_stats *st = &c->w->stats;
            atomic_store_explicit(&st->ws_compressed_messages,
                                  atomic_load_explicit(&st->ws_compressed_messages, memory_order_relaxed) + 1,
                                  memory_order_relaxed);
            atomic_store_explicit(&st->ws_compression_saved_bytes,
                                  atomic_load_explicit(&st->ws_compression_saved_bytes, memory_order_relaxed) +
                                      b->zsaved,
                                  memory_order_relaxed);
        }
    }
    conn_send(c, b);
}

static void send_close_frame(struct conn *c, unsigned code, const char *reason) {
    uint8_t p[125];
    size_t rl = reason ? strlen(reason) : 0;
    if (rl > 123)
        rl = 123;
    p[0] = (uint8_t)(code >> 8);
    p[1] = (uint8_t)code;
    if (rl)
        memcpy(p + 2, reason, rl);
    ws_send(c, WS_OP_CLOSE, p, 2 + rl);
    c->close_sent = true;
}

void ws_close(struct conn *c, unsigned code, const char *reason) {
    if (c->closing || c->close_sent)
        return;
    c->w->hooks->ws_closing(c, code);
    send_close_frame(c, code, reason);
    conn_set_deadline(c, worker_now(c->w) + WS_CLOSE_WAIT_MS);
}

/* Fails the connection (RFC 6455 7.1.7): the input can no longer be
 * trusted, so after the close frame we send FIN, ignore the rest and close
 * on the peer's EOF or the close-wait deadline. */
static void ws_fail(struct conn *c, unsigned code, const char *reason) {
    if (!c->close_sent) {
        c->w->hooks->ws_closing(c, code);
        send_close_frame(c, code, reason);
    }
    c->discard = true;
    c->shutdown_after_flush = true;
    conn_set_deadline(c, worker_now(c->w) + WS_CLOSE_WAIT_MS);
    conn_flush(c);
}

static void deliver(struct conn *c, uint8_t op, uint8_t *data, size_t len) {
    if (c->close_sent)
        return; /* data after our close frame is discarded */
    if (c->endpoint == EP_ECHO)
        ws_send(c, op, data, len);
    else
        c->w->hooks->ws_message(c, (char *)data, len);
}

static void handle_control(struct conn *c, uint8_t op) {
    switch (op) {
    case WS_OP_PING:
        ws_send(c, WS_OP_PONG, c->ctrl, c->ctrl_len);
        return;
    case WS_OP_PONG:
        return; /* activity only */
    case WS_OP_CLOSE: {
        unsigned code = WS_CLOSE_NORMAL;
        if (c->ctrl_len == 1) {
            ws_fail(c, WS_CLOSE_PROTOCOL, "close payload of 1 byte");
            return;
        }
        if (c->ctrl_len >= 2) {
            code = ((unsigned)c->ctrl[0] << 8) | c->ctrl[1];
            if (!ws_close_code_valid(code)) {
                ws_fail(c, WS_CLOSE_PROTOCOL, "invalid close code");
                return;
            }
            if (!utf8_valid(c->ctrl + 2, c->ctrl_len - 2u)) {
                ws_fail(c, WS_CLOSE_INVALID_DATA, "invalid UTF-8 in close reason");
                return;
            }
        }
        c->close_rcvd = true;
        if (!c->close_sent) {
            c->peer_closed_first = true;
            c->w->hooks->ws_closing(c, code);
            send_close_frame(c, code, NULL);
        }
        /* Handshake complete: the server closes TCP first (RFC 6455 7.1.1). */
        c->close_after_flush = true;
        uv_read_stop((uv_stream_t *)&c->tcp);
        conn_flush(c);
        return;
    }
    }
}

/* Replaces the compressed message *m, *ml by its inflated text (the
 * thread's buffer, ws/deflate.h), validated as UTF-8 for a text message.
 * 0, or -1 after failing the connection. */
static int inflate_message(struct conn *c, uint8_t op, uint8_t **m, size_t *ml, size_t max) {
    uint8_t *out;
    size_t n;
    int rc = ws_inflate(*m, *ml, max, &out, &n);
    if (rc < 0) {
        ws_fail(c, (unsigned)-rc, rc == -WS_CLOSE_TOO_BIG       ? "message too big"
                                  : rc == -WS_CLOSE_INVALID_DATA ? "invalid compressed data"
                                                                 : "out of memory");
        return -1;
    }
    if (op == WS_OP_TEXT && !utf8_valid(out, n)) {
        ws_fail(c, WS_CLOSE_INVALID_DATA, "invalid UTF-8");
        return -1;
    }
    *m = out;
    *ml = n;
    return 0;
}

void ws_session_feed(struct conn *c, uint8_t *data, size_t len) {
    long max = c->w->cfg->limits.max_message_bytes;
    if (c->discard)
        return;
    for (;;) {
        if (c->closing || c->discard || c->close_rcvd)
            return;
        struct ws_frame_event ev;
        ssize_t n = ws_parse(&c->parser, data, len, &ev);
        if (n < 0) {
            ws_fail(c, (unsigned)-n, "protocol error");
            return;
        }
        data += n;
        len -= (size_t)n;
        switch (ev.type) {
        case WS_EV_NONE:
            return;
        case WS_EV_HEADER:
            c->last_rx = worker_now(c->w);
            if (ws_op_is_control(ev.opcode)) {
                c->ctrl_len = 0;
                if (!c->ctrl && !(c->ctrl = malloc(125))) {
                    ws_fail(c, WS_CLOSE_INTERNAL, "out of memory");
                    return;
                }
                break;
            }
            if (ev.opcode == WS_OP_CONT) {
                if (!c->msg_op) {
                    ws_fail(c, WS_CLOSE_PROTOCOL, "continuation without a message");
                    return;
                }
            } else {
                if (c->msg_op) {
                    ws_fail(c, WS_CLOSE_PROTOCOL, "new message inside a fragmented one");
                    return;
                }
                if (ev.opcode == WS_OP_BINARY && c->endpoint == EP_JSON) {
                    ws_fail(c, WS_CLOSE_UNSUPPORTED, "binary frames are not supported");
                    return;
                }
                c->msg_op = ev.opcode;
                c->msg_z = ev.rsv1;
                c->msg_len = 0;
                c->direct = NULL;
                utf8_init(&c->utf8);
            }
            if ((uint64_t)c->msg_len + ev.length > (uint64_t)max) {
                ws_fail(c, WS_CLOSE_TOO_BIG, "message too big");
                return;
            }
            break;
        case WS_EV_PAYLOAD:
            if (ws_op_is_control(ev.opcode)) {
                memcpy(c->ctrl + c->ctrl_len, ev.data, ev.len);
                c->ctrl_len = (uint8_t)(c->ctrl_len + ev.len);
                break;
            }
            if (c->msg_op == WS_OP_TEXT && !c->msg_z && !utf8_feed(&c->utf8, ev.data, ev.len)) {
                ws_fail(c, WS_CLOSE_INVALID_DATA, "invalid UTF-8");
                return;
            }
            if (ev.fin && ev.opcode != WS_OP_CONT && ev.len == ev.length) {
                /* A whole unfragmented message in this read: no copy. */
                c->direct = ev.data;
                c->msg_len = (uint32_t)ev.len;
                break;
            }
            if (c->msg_len + ev.len > c->msg_cap) {
                uint32_t ncap = c->msg_cap ? c->msg_cap : 256;
                while (ncap < c->msg_len + ev.len)
                    ncap *= 2;
                uint8_t *nb = realloc(c->msg, ncap);
                if (!nb) {
                    ws_fail(c, WS_CLOSE_INTERNAL, "out of memory");
                    return;
                }
                c->msg = nb;
                c->msg_cap = ncap;
            }
            memcpy(c->msg + c->msg_len, ev.data, ev.len);
            c->msg_len += (uint32_t)ev.len;
            break;
        case WS_EV_FRAME_END:
            if (ws_op_is_control(ev.opcode)) {
                handle_control(c, ev.opcode);
                break;
            }
            if (!ev.fin)
                break;
            if (c->msg_op == WS_OP_TEXT && !c->msg_z && !utf8_complete(&c->utf8)) {
                ws_fail(c, WS_CLOSE_INVALID_DATA, "invalid UTF-8");
                return;
            }
            {
                uint8_t op = c->msg_op;
                uint8_t *m = c->direct ? c->direct : c->msg;
                size_t ml = c->msg_len;
                c->msg_op = 0;
                c->msg_len = 0;
                c->direct = NULL;
                if (c->msg_z && inflate_message(c, op, &m, &ml, (size_t)max) < 0)
                    return;
                deliver(c, op, m ? m : (uint8_t *)"", ml);
                /* Fragmented messages are rare: an idle client holds no buffer. */
                free(c->msg);
                c->msg = NULL;
                c->msg_cap = 0;
            }
            break;
        }
    }
}

static void do_shutdown(struct conn *c) {
    uv_shutdown_t *req = malloc(sizeof(*req));
    if (!req || uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        free(req);
        conn_close(c);
    }
}

void ws_session_shutdown_write(struct conn *c) {
    c->shutdown_after_flush = false;
    do_shutdown(c);
}
