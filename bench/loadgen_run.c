/* loadgen_run.c - the run: the phases (connect, which is the whole run for
 * --handshake-only storms, paced by --hs-rate or not; publish; idle;
 * drain; close) and the epoll loop that drives them and the connections.
 * The loop wakes at the time the phase or the publisher asks for (epoll
 * timeouts in ns with epoll_pwait2), and keeps the publisher's schedule
 * while busy receiving. */
#include <errno.h>
#include <math.h>
#include <sys/epoll.h>

#include "loadgen.h"

bool incomplete;
volatile sig_atomic_t got_signal;
static bool pub_needed; /* streaming: the publisher must be up */

enum phase { P_CONNECT, P_PUBLISH, P_IDLE, P_DRAIN, P_CLOSE, P_END };
static enum phase phase = P_CONNECT;
static int64_t phase_end;

static void begin_close(int64_t now) {
    phase = P_CLOSE;
    phase_end = now + SEC;
    for (int i = 0; i < O.conns; i++) {
        struct conn *c = &conns[i];
        if (c->fd < 0)
            continue;
        if (c->state == ST_ACTIVE) {
            send_close(c, 1000);
            c->state = ST_CLOSING;
        } else {
            c->aborted = 1;
            conn_close(c);
        }
    }
    if (pubc.fd >= 0) {
        if (pubc.state == ST_ACTIVE) {
            send_close(&pubc, 1000);
            pubc.state = ST_CLOSING;
        } else
            conn_close(&pubc);
    }
}

uint64_t total_expected(void) {
    uint64_t e = 0;
    for (int k = 0; k < nsteps_run; k++)
        e += steps[k].expected;
    return e;
}
uint64_t total_delivered(void) {
    uint64_t d = 0;
    for (int k = 0; k < nsteps_run; k++)
        d += steps[k].delivered;
    return d;
}

static int64_t last_scan;

/* Setup timeouts and the ready fallback, every 50 ms while connecting. */
void setup_scan(int64_t now) {
    if (now - last_scan < 50 * MS)
        return;
    last_scan = now;
    for (int i = 0; i < S.next_conn; i++) {
        struct conn *c = &conns[i];
        if (c->fd < 0)
            continue;
        if ((c->state == ST_CONNECTING || c->state == ST_HS_SENT) && now - c->t0 > 10 * SEC) {
            S.hs_timeout++;
            conn_close(c);
        } else if (c->state == ST_WAIT_READY && now - c->t0 > 2 * SEC) {
            S.ready_fallback++; /* server sent no first frame: subscribe anyway */
            send_subscribe(c);
        } else if (c->state == ST_SUB_SENT && now - c->t0 > 10 * SEC) {
            conn_close(c);
        }
    }
}

/* Advances the phase machine; returns the next time it wants to run. */
static int64_t phase_step(int64_t now) {
    switch (phase) {
    case P_CONNECT: {
        int64_t paced = INT64_MAX; /* --hs-rate: when the next handshake is due */
        while (S.next_conn < O.conns && S.inflight < O.concurrency) {
            if (O.hs_rate > 0) {
                paced = S.t_begin + (int64_t)((double)S.next_conn * 1e9 / O.hs_rate);
                if (now < paced)
                    break;
                paced = INT64_MAX;
            }
            g_now = now;
            conn_start(&conns[S.next_conn++]);
        }
        setup_scan(now);
        if (pub_needed && pubc.state == ST_DONE) {
            fprintf(stderr, "loadgen: publisher connection failed%s%s\n", S.first_pub_error[0] ? ": " : "",
                    S.first_pub_error);
            incomplete = true;
            begin_close(now);
            return now;
        }
        if (pub_needed && (pubc.state == ST_CONNECTING || pubc.state == ST_HS_SENT || pubc.state == ST_WAIT_READY) &&
            now - pubc.t0 > 10 * SEC) {
            note_error(true, "", "setup timed out", 15);
            conn_close(&pubc);
            return now;
        }
        if (pub_needed && pubc.state == ST_WAIT_READY && now - pubc.t0 > 2 * SEC)
            became_active(&pubc); /* no first frame from the server: go ahead */
        if (S.next_conn < O.conns || S.setup_pending > 0 || (pub_needed && pubc.state != ST_ACTIVE))
            return paced < now + 50 * MS ? paced : now + 50 * MS;
        S.t_setup_done = now;
        S.rss_setup = srv_mem(false);
        {
            double secs = (double)(now - S.t_begin) / 1e9, sc = srv_cpu();
            S.conn_self_pct = secs > 0 ? 100 * (self_cpu() - S.cpu0_self) / secs : 0;
            S.conn_srv_pct = secs > 0 && sc >= 0 && S.cpu0_srv >= 0 ? 100 * (sc - S.cpu0_srv) / secs : NAN;
        }
        if (!O.json)
            fprintf(stderr, "loadgen: %llu/%d connections up in %.2f s\n", (unsigned long long)S.hs_ok, O.conns,
                    (double)(now - S.t_first_connect) / 1e9);
        if (O.storm) {
            begin_close(now);
            return now;
        }
        if (O.idle) {
            phase = P_IDLE;
            phase_end = now + (int64_t)(O.duration * 1e9);
            steps[0].rate = 0;
            sample_step_start(&steps[0], now);
            return now;
        }
        phase = P_PUBLISH;
        pub_begin(now);
        return now;
    }
    case P_PUBLISH: {
        if (pubc.fd < 0)
            pub_stop(now);
        int64_t nx = pub_pump(now);
        if (O.rstorm) {
            rs_pump(now);
            if (RS.state == RS_STORM && nx > now + 20 * MS)
                nx = now + 20 * MS;
        }
        if (O.ramp) {
            int64_t grace = step_ns / 2 < SEC ? step_ns / 2 : SEC;
            while (eval_next < nsteps_run && steps[eval_next].t_end && now >= steps[eval_next].t_end + grace) {
                eval_step(eval_next++);
                if (failed_step >= 0) {
                    pub_stop(now);
                    saturated = true;
                    break;
                }
            }
            int64_t ev = eval_next < nsteps_run && steps[eval_next].t_end ? steps[eval_next].t_end + grace
                                                                            : now + 50 * MS;
            if (ev < nx)
                nx = ev;
        }
        if (!publishing) {
            phase = P_DRAIN;
            phase_end = now + (int64_t)(O.drain_s * 1e9);
            return now;
        }
        return nx < now + 50 * MS ? nx : now + 50 * MS;
    }
    case P_IDLE:
        if (now < phase_end)
            return phase_end < now + 200 * MS ? phase_end : now + 200 * MS;
        sample_step_end(&steps[0], now);
        begin_close(now);
        return now;
    case P_DRAIN:
        pub_flush();
        if ((total_delivered() + S.stale >= total_expected() && !pub_len) || now >= phase_end) {
            begin_close(now);
            return now;
        }
        return now + 5 * MS;
    case P_CLOSE:
        if (S.open_fds > 0 && now < phase_end)
            return now + 20 * MS;
        for (int i = 0; i < O.conns; i++)
            conn_close(&conns[i]);
        conn_close(&pubc);
        phase = P_END;
        return now;
    case P_END:
        break;
    }
    return now;
}

void run(void) {
    S.t_begin = g_now = now_ns();
    S.rss_before = srv_mem(false);
    S.cpu0_self = self_cpu();
    S.cpu0_srv = srv_cpu();
    int64_t deadline = S.t_begin + (int64_t)(O.timeout * 1e9);
    pub_needed = !O.storm && !O.idle;
    if (pub_needed) /* the publisher is not counted among the connections */
        conn_start(&pubc);

    struct epoll_event evs[1024];
    bool use_pwait2 = true;
    int64_t t_ret = now_ns(); /* when epoll last returned */
    for (;;) {
        int64_t now = g_now = now_ns();
        if (got_signal || now >= deadline) {
            fprintf(stderr, "loadgen: %s; reporting what was measured\n",
                    got_signal ? "interrupted" : "global deadline reached");
            incomplete = true;
            if (publishing)
                pub_stop(now);
            if (O.idle && steps[0].t_start && !steps[0].t_end)
                sample_step_end(&steps[0], now);
            break;
        }
        int64_t next = phase_step(now);
        if (phase == P_END)
            break;
        if (next > deadline)
            next = deadline;
        int64_t wait = next - now_ns();
        if (wait < 0 || (O.spin && phase == P_PUBLISH))
            wait = 0;
        int n;
        int64_t t_wait = now_ns();
        if (t_wait - t_ret > S.max_turn && phase == P_PUBLISH)
            S.max_turn = t_wait - t_ret; /* events handled + phase step */
        if (use_pwait2) {
            struct timespec ts = {.tv_sec = wait / SEC, .tv_nsec = wait % SEC};
            n = epoll_pwait2(epfd, evs, 1024, &ts, NULL);
            if (n < 0 && errno == ENOSYS) {
                use_pwait2 = false;
                continue;
            }
        } else
            n = epoll_wait(epfd, evs, 1024, (int)((wait + MS - 1) / MS));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("epoll_wait");
            incomplete = true;
            break;
        }
        t_ret = g_now = now_ns();
        if (phase == P_PUBLISH && g_now - t_wait - wait > S.max_oversleep) /* woken late: not run */
            S.max_oversleep = g_now - t_wait - wait;
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            uint32_t e = evs[i].events;
            if (c->fd < 0)
                continue;
            if (c->state == ST_CONNECTING) {
                if (c->ssl)
                    tls_step(c, false);
                else
                    on_connected(c);
                continue;
            }
            if (e & (EPOLLIN | EPOLLHUP | EPOLLERR))
                on_readable(c);
            if (c->fd >= 0 && (e & EPOLLOUT))
                on_writable(c);
            if (publishing && g_now >= pub_next) /* keep the schedule while busy receiving */
                pub_pump(g_now);
        }
    }
}
