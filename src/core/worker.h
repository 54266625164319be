/* worker.h - a worker thread: one libuv loop that owns its connections.
 *
 * Each worker accepts on its own SO_REUSEPORT listener (the kernel spreads
 * new connections), reads, parses and writes for the connections it
 * accepted, and never touches another worker's. Other threads reach it only
 * through its mailbox. */
#ifndef TG_WORKER_H
#define TG_WORKER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "core/mailbox.h"

struct server;
struct conn;

#define WORKER_READ_BUF (64 * 1024)

/* Mail types a worker understands. */
enum worker_mail {
    WM_SHUTDOWN = 1,   /* stop accepting, close clients with 1001 */
    WM_FORCE_CLOSE,    /* grace expired: close every socket now */
};

/* Counters a worker owns; read (relaxed) by the metrics module. */
struct worker_stats {
    _Atomic uint64_t accepted;
    _Atomic uint64_t ws_open;          /* gauge: WebSocket connections now */
    _Atomic uint64_t http_requests;
    _Atomic uint64_t bytes_sent;
    _Atomic uint64_t frames_received;
};

struct worker {
    int id;
    struct server *srv;            /* read-only after start */
    uv_loop_t loop;
    uv_thread_t thread;
    uv_tcp_t listener;
    bool listening;
    struct mailbox inbox;          /* the only way in from other threads */
    uv_timer_t timer;              /* deadlines: handshake timeout, close wait */
    uv_prepare_t flush_prepare;    /* flush writes queued by timers */
    uv_check_t flush_check;        /* flush writes queued by I/O callbacks */
    uint8_t *rbuf;                 /* read buffer shared by all connections */
    bool rbuf_busy;                /* a read callback holds rbuf */
    struct conn *conns;            /* every connection of this worker */
    uint64_t nconns;
    struct conn *dirty;            /* connections with output to flush */
    struct conn *timed;            /* connections with a deadline */
    uint64_t next_id;              /* connection id sequence */
    bool shutting_down;
    bool stopped;                  /* handles closed, loop ending */
    int listen_fd;                 /* bound socket handed over by the server */
    struct worker_stats stats;
    _Atomic uint64_t heartbeat_ms; /* monotonic ms stamped by the timer: liveness */
};

/* Starts the thread. fd is a bound, not yet listening, socket. 0 or -errno. */
int worker_start(struct worker *w, struct server *srv, int id, int fd);

/* Posts mail; 0 or -ENOSPC. */
int worker_post(struct worker *w, int type, void *ptr, uint64_t a);

/* Waits for the thread to end and frees what it owned. */
void worker_join(struct worker *w);

/* Called by the connection release path: lets a stopping worker finish. */
void worker_conn_released(struct worker *w);

/* Milliseconds of the worker's loop clock. */
static inline uint64_t worker_now(struct worker *w) { return uv_now(&w->loop); }

#endif
