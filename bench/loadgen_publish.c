/* loadgen_publish.c - the open-loop publisher: ticks are due by the clock
 * (rate epochs: the warmup, then one per step), written as publish messages
 * of up to --batch ticks into the publisher's queue, each tick's scheduled
 * time kept in its symbol's ring for the latency measure; steps sample CPU
 * and RSS at their edges; --ramp judges each step (delivered >= 95%, p99 <=
 * 100 ms, backlog <= 5%). */
#include <math.h>
#include <string.h>

#include "loadgen.h"

struct step steps[MAX_STEPS];
int nsteps_max;
static int cur_step = -1; /* -1: warmup */
int nsteps_run;
int64_t ramp_start, step_ns;
static int64_t pub_start, pub_stop_t;
bool publishing;
int eval_next, best_step = -1, failed_step = -1;
bool saturated;

static uint32_t rr_sym;
static int64_t ep_t0, ep_end;   /* current rate epoch: start, end */
static double ep_rate;
static uint64_t ep_sent;        /* ticks scheduled in this epoch */
static uint8_t pbuf[64 + 1000 * (MAX_SYMLEN + 48)]; /* publish payload scratch (batch <= 1000) */

static inline int64_t ep_ts(uint64_t i) { return ep_t0 + (int64_t)((double)i * 1e9 / ep_rate); }

static size_t put_u(char *o, uint64_t v) {
    char t[24];
    size_t n = 0;
    do
        t[n++] = (char)('0' + v % 10);
    while (v /= 10);
    for (size_t i = 0; i < n; i++)
        o[i] = t[n - 1 - i];
    return n;
}

/* Queues up to cnt ticks of this epoch starting at index ep_sent in one publish message. */
static void pub_message(uint64_t cnt) {
    char *p = (char *)pbuf;
    size_t n = 0;
    static const char head[] = "{\"type\":\"publish\",\"updates\":[";
    memcpy(p, head, sizeof(head) - 1);
    n = sizeof(head) - 1;
    struct step *st = cur_step >= 0 ? &steps[cur_step] : NULL;
    /* the server is not draining the publisher's socket: these ticks are skipped */
    if (pub_len + 14 + 64 + cnt * (MAX_SYMLEN + 48) > PUB_OUT_CAP || pubc.fd < 0) {
        if (st)
            st->skipped += cnt, st->scheduled += cnt;
        ep_sent += cnt;
        return;
    }
    if (st)
        h_add(&S.send_lag, g_now - ep_ts(ep_sent));
    for (uint64_t k = 0; k < cnt; k++) {
        int64_t ts = ep_ts(ep_sent++);
        uint32_t s = O.zipf ? zipf_pick() : rr_sym;
        if (!O.zipf)
            rr_sym = rr_sym + 1 == (uint32_t)O.nsyms ? 0 : rr_sym + 1;
        uint32_t tn = ++pub_n[s];
        ring_ts[((size_t)s << ring_shift) + (tn & ring_mask)] = ts;
        if (k)
            p[n++] = ',';
        memcpy(p + n, "{\"symbol\":\"", 11);
        n += 11;
        memcpy(p + n, sym_name[s], sym_len[s]);
        n += sym_len[s];
        memcpy(p + n, "\",\"price\":", 10);
        n += 10;
        uint64_t v = (uint64_t)tn + 1000;
        n += put_u(p + n, v / 1000);
        p[n++] = '.';
        p[n++] = (char)('0' + v / 100 % 10);
        p[n++] = (char)('0' + v / 10 % 10);
        p[n++] = (char)('0' + v % 10);
        p[n++] = '}';
        if (st) {
            st->scheduled++;
            st->published++;
            st->expected += subcount[s];
        }
    }
    p[n++] = ']';
    p[n++] = '}';
    if (pub_off + pub_len + n + 14 > PUB_OUT_CAP) {
        memmove(pub_out, pub_out + pub_off, pub_len);
        pub_off = 0;
    }
    pub_len += ws_frame(pub_out + pub_off + pub_len, 1, p, n);
    S.pub_msgs++;
}

void sample_step_start(struct step *st, int64_t t) {
    st->t_start = t;
    st->self_cpu_s = -self_cpu();
    double sc = srv_cpu();
    st->srv_cpu_s = sc < 0 ? NAN : -sc;
}
void sample_step_end(struct step *st, int64_t t) {
    st->t_end = t;
    st->self_cpu_s += self_cpu();
    double sc = srv_cpu();
    st->srv_cpu_s = sc < 0 ? NAN : st->srv_cpu_s + sc;
    st->srv_rss_kb = srv_mem(false);
}
static void begin_step(int k, int64_t t) {
    cur_step = k;
    nsteps_run = k + 1;
    steps[k].rate = O.rate * (O.ramp ? pow(1.25, k) : 1.0);
    if (O.rstorm && k == 1) { /* away: every symbol gets --recover-gap ticks in this step */
        steps[k].rate = ceil((double)O.rgap * O.nsyms / ((double)step_ns / 1e9)) + O.nsyms;
        rs_drop();
    } else if (O.rstorm && k == 2)
        rs_start(t);
    ep_t0 = t;
    ep_end = t + step_ns;
    ep_rate = steps[k].rate;
    ep_sent = 0;
    sample_step_start(&steps[k], t);
}

void pub_stop(int64_t t) {
    if (!publishing)
        return;
    publishing = false;
    pub_stop_t = t;
    if (cur_step >= 0 && !steps[cur_step].t_end)
        sample_step_end(&steps[cur_step], t);
}

int64_t pub_next = INT64_MAX;

/* Sends every tick due by now (open loop); returns the time of the next tick
 * that will be due (or INT64_MAX). */
static int64_t pub_pump_(int64_t now);
int64_t pub_pump(int64_t now) { return pub_next = pub_pump_(now); }
static int64_t pub_pump_(int64_t now) {
    uint64_t budget = 8192; /* ticks per loop turn, so receiving is not starved */
    while (publishing) {
        int64_t until = now < ep_end ? now : ep_end - 1;
        uint64_t due_i = (uint64_t)floor((double)(until - ep_t0) * ep_rate / 1e9) + 1; /* ticks 0..due_i-1 due */
        uint64_t due = due_i > ep_sent ? due_i - ep_sent : 0;
        if (due > budget)
            due = budget;
        if (due && (O.batch <= 1 || due >= (uint64_t)O.batch || now - ep_ts(ep_sent) >= MS || now >= ep_end)) {
            budget -= due;
            while (due) {
                uint64_t m = due < (uint64_t)O.batch ? due : (uint64_t)O.batch;
                pub_message(m);
                due -= m;
            }
            pub_flush();
            if (!budget)
                return now;
            continue;
        }
        if (now >= ep_end) { /* epoch over: next step or stop */
            if (cur_step >= 0)
                sample_step_end(&steps[cur_step], ep_end);
            int next = cur_step + 1;
            if (next >= nsteps_max) {
                pub_stop(ep_end);
                break;
            }
            begin_step(next, ep_end);
            continue;
        }
        int64_t nx = ep_ts(ep_sent);
        if (O.batch > 1) {
            int64_t full = ep_ts(ep_sent + (uint64_t)O.batch - 1);
            nx = full < nx + MS ? full : nx + MS;
        }
        return nx < ep_end ? nx : ep_end;
    }
    return INT64_MAX;
}

/* Publishing starts: a --warmup epoch at the base rate (its ticks are
 * delivered but not measured), or step 0 at once. */
void pub_begin(int64_t now) {
    publishing = true;
    pub_start = now;
    ramp_start = now + (int64_t)(O.warmup * 1e9);
    if (O.warmup > 0) {
        cur_step = -1;
        ep_t0 = now;
        ep_end = ramp_start;
        ep_rate = O.rate;
        ep_sent = 0;
    } else
        begin_step(0, now);
}

void eval_step(int k) {
    struct step *st = &steps[k];
    st->evaluated = true;
    double ratio = st->expected ? (double)st->delivered / (double)st->expected : 1.0;
    uint64_t p99 = h_pct(&st->h, 0.99);
    st->pass = true;
    if (st->scheduled && (double)st->skipped > 0.05 * (double)st->scheduled) {
        st->pass = false;
        snprintf(st->why, sizeof(st->why), "publisher backlog: %.1f%% ticks skipped",
                 100.0 * (double)st->skipped / (double)st->scheduled);
    } else if (ratio < 0.95) {
        st->pass = false;
        snprintf(st->why, sizeof(st->why), "delivered %.1f%% of expected", 100 * ratio);
    } else if (p99 > 100 * (uint64_t)MS) {
        st->pass = false;
        snprintf(st->why, sizeof(st->why), "p99 %.1f ms > 100 ms", (double)p99 / 1e6);
    }
    if (st->pass)
        best_step = k;
    else if (failed_step < 0)
        failed_step = k;
    double secs = (double)(st->t_end - st->t_start) / 1e9;
    fprintf(stderr, "loadgen: step %d rate %.0f/s: published %.0f/s, delivered %.0f/s (%.1f%%), p99 %.2f ms, "
                    "loadgen cpu %.0f%% -> %s%s%s\n",
            k, st->rate, (double)st->published / secs, (double)st->delivered / secs, 100 * ratio,
            (double)p99 / 1e6, 100 * st->self_cpu_s / secs, st->pass ? "ok" : "FAIL", st->pass ? "" : ": ",
            st->why);
}
