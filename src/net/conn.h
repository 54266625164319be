/* conn.h - one client connection: the single source of truth about it.
 *
 * Everything the gateway knows about a client lives in this struct, owned
 * by the worker that accepted it: socket, HTTP request in progress,
 * WebSocket parser and message buffer, output queue and (later) identity
 * and subscriptions. Nothing else keeps a second registry of connections.
 *
 * Lifetime: conn_close() starts the end whatever the cause (peer close,
 * error, timeout, shutdown, half-finished handshake); the memory and every
 * link to it are released in exactly one place, the uv_close callback, never
 * inside the callback that decided to close. */
#ifndef TG_CONN_H
#define TG_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "net/clientip.h"
#include "net/outbuf.h"
#include "ws/frame.h"
#include "ws/utf8.h"

struct worker;
struct http_req;
struct held_input;
struct tls_ctx;
struct tls_session;

enum conn_phase {
    PHASE_HTTP = 0,   /* reading requests */
    PHASE_WS,         /* upgraded */
};

enum ws_endpoint {
    EP_JSON = 0,      /* server.ws_path: the gateway protocol */
    EP_ECHO,          /* server.echo_path: plain echo */
};

struct conn {
    uv_tcp_t tcp;                  /* tcp.data = this; first member */
    uv_write_t *wreq;              /* the one write in flight; allocated when first needed */
    struct worker *w;              /* owner; never changes */
    struct conn *prev, *next;      /* worker's list of all connections (next: free list in a slab) */
    struct conn *dirty_next;       /* worker's flush list (if dirty) */
    struct conn *tprev, *tnext;    /* worker's deadline list (if deadline) */
    uint64_t id;                   /* unique on this node */
    uint64_t deadline;             /* loop ms; 0 = none (HTTP phase, close wait) */
    struct http_req *http;         /* PHASE_HTTP only */
    struct held_input *held;       /* input kept while it cannot be taken (at most one read); owned */
    struct outq out;               /* bytes waiting for the socket (plaintext under TLS) */
    struct tls_session *tls;       /* TLS session (net/conn_tls.h), owned; NULL = plain TCP */
    uint32_t inflight;             /* bytes at the front of out owned by wreq */
    uint8_t phase;                 /* enum conn_phase */
    uint8_t endpoint;              /* enum ws_endpoint, PHASE_WS only */
    uint8_t family;                /* AF_INET or AF_INET6 */
    /* flags */
    unsigned closing : 1;          /* uv_close called; skip everything */
    unsigned dirty : 1;            /* on the worker's flush list */
    unsigned writing : 1;          /* wreq in flight */
    unsigned close_after_flush : 1; /* close the socket once outq is empty */
    unsigned close_sent : 1;       /* our close frame is queued */
    unsigned counted : 1;          /* counted in server-wide WS connections */
    unsigned close_rcvd : 1;       /* the peer's close frame arrived */
    unsigned peer_closed_first : 1; /* the peer started the close handshake */
    unsigned discard : 1;          /* failed: ignore further input */
    unsigned shutdown_after_flush : 1; /* send FIN once outq is empty */
    unsigned congested : 1;        /* over max_outbound_bytes: updates conflated */
    unsigned awaiting : 1;         /* HTTP answer comes later (gather, Redis); not reading */
    unsigned paused : 1;           /* HTTP: not read while its answers wait (back-pressure) */
    unsigned http_ip : 1;          /* HTTP: counted for cip by the guard (gateway/http_guard.h) */
    unsigned http_slot : 1;        /* HTTP: holds a limits.max_connections slot */
    unsigned big_queue : 1;        /* out passed CONN_TRIM_QUEUED: trim once it is gone */
    unsigned deflate : 1;          /* permessage-deflate negotiated (ws/deflate.h) */
    unsigned msg_z : 1;            /* the data message in progress is compressed (RSV1) */
    uint16_t port;                 /* peer port */
    uint16_t close_code;           /* close handshake code; 0 = none (network) */
    uint8_t ip[16];                /* peer address (v4 in the first 4 bytes) */
    struct ip16 cip;               /* client IP (section 7), set by each request */
    /* WebSocket receive state (PHASE_WS) */
    struct ws_parser parser;
    struct utf8_state utf8;        /* validation of the text message in progress */
    uint8_t msg_op;                /* opcode of the data message in progress; 0 = none */
    uint8_t ctrl_len;
    uint32_t msg_len, msg_cap;
    uint8_t *msg;                  /* reassembly buffer of a fragmented message */
    uint8_t *direct;               /* whole message still in the read buffer */
    uint8_t *ctrl;                 /* control frame payload (125 B), allocated when first needed */
    uint64_t last_rx;              /* loop ms of the last frame received */
    /* The rooms above keep their per-connection state in the same slot,
     * right after this struct (conn_upper): no allocation of its own. */
};

/* Where a connection's upper area starts: the rooms above lay their state
 * out there (pubsub's struct conn_subs first, then the gateway's session),
 * worker_env.conn_upper bytes of it, zeroed with the slot. */
#define CONN_UPPER_OFFSET ((sizeof(struct conn) + 15) & ~(size_t)15)

static inline void *conn_upper(struct conn *c) { return (unsigned char *)c + CONN_UPPER_OFFSET; }

/* Frees the worker's connection slabs (worker end, no connection left). */
void conn_slabs_free(struct worker *w);

/* Takes a freshly accepted socket into a new connection, a TLS one when
 * tls is given (its handshake is bounded like a request). 0 or -errno. */
int conn_accept(struct worker *w, uv_stream_t *listener, struct tls_ctx *tls);

/* Starts closing c; safe to call repeatedly and from any callback. */
void conn_close(struct conn *c);

/* Queues b (taking over the reference) and schedules a flush. After close
 * has started the block is just dropped. */
void conn_send(struct conn *c, struct outbuf *b);

/* Writes every queued block that the socket takes now; called by the
 * worker once per loop turn for each dirty connection. */
void conn_flush(struct conn *c);

/* Frees the HTTP request state (upgrade or release); after a burst of
 * handshakes, hands freed memory back to the system. */
void conn_http_done(struct conn *c);

/* Sets (ms > 0: loop time) or clears (0) the connection's deadline; the
 * worker closes it when the deadline passes. */
void conn_set_deadline(struct conn *c, uint64_t ms);

/* Reads again after a pause (an answer that waited for another thread, or
 * answers that waited for the client): first takes the input kept from
 * before the pause. */
void conn_resume_read(struct conn *c);

/* Ends an HTTP-phase connection gracefully: reads nothing more, closes once
 * the answers already queued are written. */
void conn_http_end(struct conn *c);

/* The worker's connection with this id that is not closing, or NULL
 * (answers that come back later: admission, admin gathers, replies). */
struct conn *conn_find(struct worker *w, uint64_t id);

/* Sends a complete HTTP response. headers: extra "Name: value\r\n" lines
 * or NULL. keep_alive false closes the socket after it is written; so does
 * the first response after server.keepalive_max_s. */
void conn_http_respond(struct conn *c, int status, const char *ctype, const char *body, size_t len,
                       const char *headers, bool keep_alive);

/* Responds with {"error": code, "message": msg}. */
void conn_http_error(struct conn *c, int status, const char *code, const char *msg, const char *headers,
                     bool keep_alive);

#endif
