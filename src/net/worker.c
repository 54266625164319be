/* worker.c - a worker thread and its loop; see worker.h. */
#include "net/worker.h"

#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/config.h"
#include "net/conn.h"
#include "net/websocket.h"

#define TIMER_MS 100
/* A pass of queue writes (flush_dirty) runs before and after each poll,
 * and also after every FLUSH_EVERY_MAILS mails (ticks, mostly): under load
 * one turn drains thousands of ticks, and without this the first tick's
 * subscribers waited for the last one's fan-out. 64 ticks still fill each
 * send well. */
#ifndef FLUSH_EVERY_MAILS
#define FLUSH_EVERY_MAILS 64
#endif

/* A pass writes at most FLUSH_CHUNK queues, oldest dirty first, and the
 * loop polls its sockets (without blocking) between passes. A send costs
 * microseconds, so writing 1,000 queues takes milliseconds: a tick that
 * arrives meanwhile joins the queues not yet written in this sweep instead
 * of waiting for the sweep to end and a whole new one (the last subscriber
 * gets it up to a sweep sooner). A queue written and dirtied again goes to
 * the back, so no connection waits more than one sweep. */
static void on_idle(uv_idle_t *h) { (void)h; } /* its being active is the point */

#ifndef FLUSH_CHUNK
#define FLUSH_CHUNK 64
#endif

/* A queue whose socket took every write so far (not a slow reader) but
 * whose oldest message has waited longer than limits.shed_after_ms means
 * the sweeps themselves are behind: the fan-out sheds superseded ticks
 * (pubsub/subs.c) until they catch up, so the backlog does not move into
 * every connection's queue, where nothing sheds it. */
static void note_wait(struct worker *w, struct conn *c) {
    uint32_t after = (uint32_t)w->cfg->limits.shed_after_ms;
    if (!after || c->writing || c->congested || !c->out.count)
        return;
    uint64_t now = worker_now(w);
    if ((uint32_t)now - outq_at(&c->out, 0)->at_ms > after)
        w->behind_ms = now;
}

bool worker_behind(struct worker *w) {
    uint64_t after = (uint64_t)w->cfg->limits.shed_after_ms;
    return after && w->behind_ms && worker_now(w) - w->behind_ms < after;
}

static void flush_dirty(struct worker *w) {
    w->mails_unflushed = 0;
    for (int n = 0; n < FLUSH_CHUNK && w->dirty; n++) {
        struct conn *c = w->dirty;
        w->dirty = c->dirty_next;
        if (!w->dirty)
            w->dirty_tail = NULL;
        c->dirty = false;
        c->dirty_next = NULL;
        if (n == 0)
            note_wait(w, c); /* the oldest dirty queue of this pass speaks for it */
        conn_flush(c);
    }
    if (w->dirty)
        uv_idle_start(&w->flush_idle, on_idle);
    else
        uv_idle_stop(&w->flush_idle);
}

static void on_prepare(uv_prepare_t *h) { flush_dirty(h->data); }
static void on_check(uv_check_t *h) { flush_dirty(h->data); }

/* A tick's fan-out on a worker takes microseconds: fine buckets below a
 * millisecond, coarse ones above for the pathological. */
const double FANOUT_BOUNDS[FANOUT_BUCKETS] = {1e-6,   2.5e-6, 5e-6,  1e-5,  2.5e-5, 5e-5,  1e-4, 2.5e-4,
                                              5e-4,   1e-3,   2.5e-3, 5e-3, 1e-2,   5e-2,  0.25, 1e300};

void worker_record_fanout(struct worker *w, uint64_t ns) {
    double s = (double)ns / 1e9;
    int i = 0;
    while (i < FANOUT_BUCKETS - 1 && s > FANOUT_BOUNDS[i])
        i++;
    atomic_fetch_add_explicit(&w->stats.fanout_buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&w->stats.fanout_count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&w->stats.fanout_sum_ns, ns, memory_order_relaxed);
}

/* Releases what an undelivered mail owns. */
static void drop_mail(struct mail *m) {
    const struct worker_mail *kind = (const struct worker_mail *)m->type;
    if (kind->drop)
        kind->drop(m->ptr, m->a, m->b);
}

static void close_listeners(struct worker *w) {
    if (w->listening) {
        uv_close((uv_handle_t *)&w->listener, NULL);
        w->listening = false;
    }
    if (w->tls_listening) {
        uv_close((uv_handle_t *)&w->tls_listener, NULL);
        w->tls_listening = false;
    }
}

static void close_handles(struct worker *w) {
    if (w->stopped)
        return;
    w->stopped = true;
    close_listeners(w);
    uv_close((uv_handle_t *)&w->timer, NULL);
    uv_close((uv_handle_t *)&w->sweeper, NULL);
    uv_close((uv_handle_t *)&w->liveness, NULL);
    uv_close((uv_handle_t *)&w->batcher, NULL);
    uv_close((uv_handle_t *)&w->replayer, NULL);
    uv_close((uv_handle_t *)&w->accept_retry, NULL);
    uv_close((uv_handle_t *)&w->flush_prepare, NULL);
    uv_close((uv_handle_t *)&w->flush_check, NULL);
    uv_close((uv_handle_t *)&w->flush_idle, NULL);
    mailbox_close(&w->inbox, drop_mail);
}

void worker_conn_released(struct worker *w) {
    if (w->shutting_down && w->nconns == 0)
        close_handles(w);
}

/* Stop accepting and start the close handshake with every client. */
static void begin_shutdown(struct worker *w) {
    if (w->shutting_down)
        return;
    w->shutting_down = true;
    close_listeners(w);
    for (struct conn *c = w->conns; c; c = c->next) {
        if (c->phase == PHASE_WS)
            ws_close(c, WS_CLOSE_GOING_AWAY, "server shutting down");
        else
            conn_http_end(c);
    }
    worker_conn_released(w);
}

/* The drain's window: three quarters of the grace, so the last closes
 * are done before the grace timer forces what is left. */
static uint64_t drain_window_ms(const struct config *cfg) {
    uint64_t g = (uint64_t)cfg->server.shutdown_grace_ms;
    return g > 400 ? g * 3 / 4 : g / 2;
}

static bool ws_open(const struct conn *c) { return !c->closing && c->phase == PHASE_WS && !c->close_sent; }

static void begin_drain(struct worker *w) {
    if (w->draining || w->shutting_down)
        return;
    w->draining = true;
    w->drain_start = uv_now(&w->loop);
    w->drain_ms = drain_window_ms(w->cfg);
    for (struct conn *c = w->conns; c; c = c->next) {
        if (!ws_open(c))
            continue;
        w->drain_total++;
        if (c->endpoint == EP_JSON)
            w->hooks->lame_duck(c);
    }
}

/* At timer resolution: closes the share of the drain's clients due by
 * now (total * elapsed / window), ends the drain when none is left. */
static void drain_step(struct worker *w, uint64_t now) {
    uint64_t elapsed = now - w->drain_start;
    uint64_t due = elapsed >= w->drain_ms ? w->drain_total : (uint64_t)w->drain_total * elapsed / w->drain_ms;
    bool left = false;
    for (struct conn *c = w->conns; c; c = c->next) {
        if (!ws_open(c))
            continue;
        if (w->drain_closed < due) {
            w->drain_closed++;
            ws_close(c, WS_CLOSE_GOING_AWAY, "server draining");
        } else {
            left = true;
        }
    }
    if (!left || elapsed >= w->drain_ms)
        begin_shutdown(w);
}

static void force_close(struct worker *w) {
    begin_shutdown(w);
    for (struct conn *c = w->conns; c; c = c->next)
        conn_close(c);
}

/* The one place freed memory goes back to the system (a trim walks the
 * whole heap: at most once a second). Due after a large output queue of a
 * client that did not read is gone, and after TRIM_AFTER_ACCEPTS
 * handshakes once their burst is over (none in flight) or, for a steady
 * churn that never runs out of handshakes, two seconds later: handshakes
 * borrow a few KiB each and give them back at the upgrade, so idle
 * connections cost what they hold, not what their handshakes once
 * needed. */
#define TRIM_AFTER_ACCEPTS 256

static void maybe_trim(struct worker *w, uint64_t now) {
    uint64_t accepted = atomic_load_explicit(&w->stats.accepted, memory_order_relaxed);
    if (accepted - w->trimmed_at >= TRIM_AFTER_ACCEPTS) {
        if (!w->churn_ms)
            w->churn_ms = now;
        if (w->handshaking == 0 || now - w->churn_ms >= 2000) {
            w->trim_due = true;
            w->trimmed_at = accepted;
            w->churn_ms = 0;
        }
    }
    if (w->trim_due && now - w->trim_ms >= 1000) {
        w->trim_due = false;
        w->trim_ms = now;
        malloc_trim(0);
    }
}

static void on_timer(uv_timer_t *h) {
    struct worker *w = h->data;
    uint64_t now = uv_now(&w->loop);
    atomic_store_explicit(&w->heartbeat_ms, uv_hrtime() / 1000000, memory_order_relaxed);
    /* Fallback for a shutdown mail that could not be posted. */
    if (atomic_load(w->env.shutting_down) && !w->shutting_down)
        begin_drain(w);
    if (w->draining && !w->shutting_down)
        drain_step(w, now);
    for (struct conn *c = w->timed, *next; c; c = next) {
        next = c->tnext;
        if (c->deadline <= now)
            conn_close(c); /* slow request, or no reply to our close frame */
    }
    maybe_trim(w, now);
}

/* The sweeper: starts with the worker, nobody has to remember it. */
static void on_sweep(uv_timer_t *h) {
    struct worker *w = h->data;
    uint64_t now = uv_now(&w->loop);
    for (struct conn *c = w->conns; c; c = c->next)
        if (!c->closing && c->phase == PHASE_WS && c->endpoint == EP_JSON && !c->close_sent)
            w->hooks->sweep(c, now);
    atomic_store_explicit(&w->stats.last_sweep_s, (int64_t)time(NULL), memory_order_relaxed);
}

/* Liveness runs on its own clock, a quarter of the heartbeat interval
 * (at most 1 s), so pings go out every heartbeat_interval_s and a silent
 * client is closed at heartbeat_timeout_s whatever the sweeper's period. */
static uint64_t liveness_period_ms(const struct config *cfg) {
    uint64_t q = (uint64_t)cfg->limits.heartbeat_interval_s * 1000 / 4;
    return q < 1000 ? q : 1000;
}

static void on_liveness(uv_timer_t *h) {
    struct worker *w = h->data;
    uint64_t now = uv_now(&w->loop);
    for (struct conn *c = w->conns; c; c = c->next)
        if (!c->closing && c->phase == PHASE_WS && c->endpoint == EP_JSON && !c->close_sent)
            w->hooks->liveness(c, now);
}

void worker_retime(struct worker *w) {
    uint64_t sweep_ms = (uint64_t)w->cfg->limits.sweep_interval_s * 1000, live_ms = liveness_period_ms(w->cfg);
    if (w->stopped)
        return;
    if (uv_timer_get_repeat(&w->sweeper) != sweep_ms)
        uv_timer_start(&w->sweeper, on_sweep, sweep_ms, sweep_ms);
    if (uv_timer_get_repeat(&w->liveness) != live_ms)
        uv_timer_start(&w->liveness, on_liveness, live_ms, live_ms);
}

static void on_mail(struct mailbox *mb, struct mail *m, void *data) {
    const struct worker_mail *kind = (const struct worker_mail *)m->type;
    struct worker *w = data;
    kind->run(w, m->ptr, m->a, m->b);
    if (++w->mails_unflushed >= FLUSH_EVERY_MAILS)
        flush_dirty(w);
}

static void run_shutdown(struct worker *w, void *ptr, uint64_t a, uint64_t b) {
    begin_drain(w);
    drain_step(w, uv_now(&w->loop)); /* nobody to drain: stop at once */
}
static void run_force_close(struct worker *w, void *ptr, uint64_t a, uint64_t b) { force_close(w); }
static const struct worker_mail SHUTDOWN_MAIL = {"shutdown", run_shutdown, NULL};
static const struct worker_mail FORCE_CLOSE_MAIL = {"force_close", run_force_close, NULL};

int worker_post_shutdown(struct worker *w) { return worker_post(w, &SHUTDOWN_MAIL, NULL, 0, 0); }
int worker_post_force_close(struct worker *w) { return worker_post(w, &FORCE_CLOSE_MAIL, NULL, 0, 0); }

static void on_connection(uv_stream_t *listener, int status);

void worker_set_tls(struct worker *w, struct tls_ctx *t, int fd) {
    w->tls = t;
    w->tls_fd = fd;
}

/* Listens on a duplicate of the TLS socket: after EMFILE the socket itself
 * stays bound and listening (connections wait in its backlog) while the
 * handle is closed. 0 or -1. */
static int tls_listen_open(struct worker *w) {
    int fd = dup(w->tls_fd);
    if (fd < 0)
        return -1;
    uv_tcp_init(&w->loop, &w->tls_listener);
    w->tls_listener.data = w;
    int rc = uv_tcp_open(&w->tls_listener, fd);
    if (rc != 0)
        close(fd);
    if (rc != 0 || uv_listen((uv_stream_t *)&w->tls_listener, 4096, on_connection) != 0) {
        uv_close((uv_handle_t *)&w->tls_listener, NULL);
        return -1;
    }
    w->tls_listening = true;
    return 0;
}

/* Out of descriptors: the listener is closed (libuv would otherwise retry
 * accept in a loop that never yields); the kernel sends new connections to
 * the other workers' sockets meanwhile. A second later a fresh SO_REUSEPORT
 * socket is bound, and again every second until descriptors are back. */
static void on_accept_retry(uv_timer_t *t) {
    struct worker *w = t->data;
    if (w->shutting_down)
        return;
    if (w->tls && !w->tls_listening && tls_listen_open(w) < 0) {
        uv_timer_start(&w->accept_retry, on_accept_retry, 1000, 0);
        return;
    }
    if (w->listening)
        return;
    int fd = w->env.listen_socket(w->env.ctx);
    if (fd < 0) {
        uv_timer_start(&w->accept_retry, on_accept_retry, 1000, 0);
        return;
    }
    uv_tcp_init(&w->loop, &w->listener);
    w->listener.data = w;
    if (uv_tcp_open(&w->listener, fd) != 0 || uv_listen((uv_stream_t *)&w->listener, 4096, on_connection) != 0) {
        uv_close((uv_handle_t *)&w->listener, NULL);
        uv_timer_start(&w->accept_retry, on_accept_retry, 1000, 0);
        return;
    }
    w->listening = true;
    w->accept_paused = false;
    log_info("worker %d: accepting again", w->id);
}

static void on_connection(uv_stream_t *listener, int status) {
    struct worker *w = listener->data;
    bool tls = listener == (uv_stream_t *)&w->tls_listener;
    if ((status == UV_EMFILE || status == UV_ENFILE) && tls) {
        if (w->tls_listening) {
            w->tls_listening = false;
            log_warn("worker %d: accept (tls): %s; not accepting for 1 s", w->id, uv_strerror(status));
            uv_close((uv_handle_t *)&w->tls_listener, NULL);
            uv_timer_start(&w->accept_retry, on_accept_retry, 1000, 0);
        }
        return;
    }
    if (status == UV_EMFILE || status == UV_ENFILE) {
        if (!w->accept_paused && w->listening) {
            w->accept_paused = true;
            w->listening = false;
            log_warn("worker %d: accept: %s; not accepting for 1 s", w->id, uv_strerror(status));
            uv_close((uv_handle_t *)&w->listener, NULL);
            uv_timer_start(&w->accept_retry, on_accept_retry, 1000, 0);
        }
        return;
    }
    if (status < 0) {
        log_rl(LOG_WARN, "worker %d: accept: %s", w->id, uv_strerror(status));
        return;
    }
    if (w->shutting_down)
        return;
    int rc = conn_accept(w, listener, tls ? w->tls : NULL);
    if (rc < 0)
        log_rl(LOG_WARN, "worker %d: accept failed: %s", w->id, strerror(-rc));
}

static void worker_main(void *arg) {
    struct worker *w = arg;
    uv_run(&w->loop, UV_RUN_DEFAULT);
    uv_loop_close(&w->loop);
    w->env.ended(w->env.ctx);
}

int worker_start(struct worker *w, const struct worker_env *env, int id, int fd) {
    int rc;
    w->id = id;
    w->env = *env;
    w->cfg = env->cfg;
    w->hooks = env->hooks;
    w->listen_fd = fd;
    w->rbuf = malloc(WORKER_READ_BUF);
    if (!w->rbuf)
        return -ENOMEM;
    if ((rc = uv_loop_init(&w->loop)) != 0)
        goto out_buf;
    if ((rc = mailbox_init(&w->inbox, &w->loop, 65536, on_mail, w)) != 0)
        goto out_loop;
    if ((rc = w->hooks->start(w)) != 0)
        goto out_mailbox;
    uv_timer_init(&w->loop, &w->timer);
    w->timer.data = w;
    uv_timer_init(&w->loop, &w->sweeper);
    w->sweeper.data = w;
    uv_timer_init(&w->loop, &w->liveness);
    w->liveness.data = w;
    uv_timer_init(&w->loop, &w->batcher);
    w->batcher.data = w;
    uv_timer_init(&w->loop, &w->replayer);
    w->replayer.data = w;
    uv_timer_init(&w->loop, &w->accept_retry);
    w->accept_retry.data = w;
    uv_prepare_init(&w->loop, &w->flush_prepare);
    w->flush_prepare.data = w;
    uv_check_init(&w->loop, &w->flush_check);
    w->flush_check.data = w;
    uv_idle_init(&w->loop, &w->flush_idle);
    uv_tcp_init(&w->loop, &w->listener);
    w->listener.data = w;
    w->listening = true;
    if ((rc = uv_tcp_open(&w->listener, fd)) != 0 ||
        (rc = uv_listen((uv_stream_t *)&w->listener, 4096, on_connection)) != 0) {
        log_error("worker %d: listen: %s", id, uv_strerror(rc));
        goto out_handles;
    }
    if (w->tls && (tls_io_init(&w->tls_io, WORKER_READ_BUF) < 0 || tls_listen_open(w) < 0)) {
        log_error("worker %d: cannot listen for TLS", id);
        rc = -EIO;
        goto out_handles;
    }
    uv_timer_start(&w->timer, on_timer, TIMER_MS, TIMER_MS);
    uint64_t sweep_ms = (uint64_t)w->cfg->limits.sweep_interval_s * 1000;
    uv_timer_start(&w->sweeper, on_sweep, sweep_ms, sweep_ms);
    uint64_t live_ms = liveness_period_ms(w->cfg);
    uv_timer_start(&w->liveness, on_liveness, live_ms, live_ms);
    atomic_store(&w->stats.last_sweep_s, (int64_t)time(NULL));
    uv_prepare_start(&w->flush_prepare, on_prepare);
    uv_check_start(&w->flush_check, on_check);
    atomic_store(&w->heartbeat_ms, uv_hrtime() / 1000000);
    if ((rc = uv_thread_create(&w->thread, worker_main, w)) != 0)
        goto out_handles;
    return 0;
out_handles:
    close_handles(w);
    uv_run(&w->loop, UV_RUN_DEFAULT); /* let the close callbacks run */
    w->hooks->stop(w);
    mailbox_destroy(&w->inbox);
    goto out_loop;
out_mailbox:
    mailbox_close(&w->inbox, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    mailbox_destroy(&w->inbox);
out_loop:
    uv_loop_close(&w->loop);
out_buf:
    free(w->rbuf);
    w->rbuf = NULL;
    if (w->tls) {
        tls_io_free(&w->tls_io);
        close(w->tls_fd);
    }
    return rc < 0 ? rc : -EIO;
}

int worker_post(struct worker *w, const struct worker_mail *kind, void *ptr, uint64_t a, uint64_t b) {
    struct mail m = {.type = (uintptr_t)kind, .ptr = ptr, .a = a, .b = b};
    return mailbox_post(&w->inbox, &m);
}

void worker_join(struct worker *w) {
    uv_thread_join(&w->thread);
    conn_slabs_free(w);
    w->hooks->stop(w);
    mailbox_destroy(&w->inbox);
    free(w->rbuf);
    w->rbuf = NULL;
    if (w->tls) {
        tls_io_free(&w->tls_io);
        close(w->tls_fd);
    }
}
