/* loadgen_report.c - what is measured and how it is told: this process's
 * CPU, the --server-pid processes' CPU and memory from /proc, percentiles
 * of the histograms, and the report (text, or one JSON object with --json;
 * bench/measure.py reads its keys). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "loadgen.h"

struct stats S;

uint64_t h_pct(const struct hist *h, double q) {
    if (!h->n)
        return 0;
    uint64_t target = (uint64_t)ceil(q * (double)h->n), acc = 0;
    if (target < 1)
        target = 1;
    for (unsigned i = 0; i < H_N; i++) {
        acc += h->c[i];
        if (acc >= target) {
            uint64_t v = h_mid(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}

double self_cpu(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}
/* Server CPU seconds (utime + stime) from /proc/PID/stat, or -1. */
static double srv_cpu1(int pid);
/* CPU seconds of the measured processes together, or -1. */
double srv_cpu(void) {
    if (O.npids == 0)
        return -1;
    double sum = 0;
    for (int i = 0; i < O.npids; i++) {
        double v = srv_cpu1(O.pids[i]);
        if (v < 0)
            return -1;
        sum += v;
    }
    return sum;
}
static double srv_cpu1(int pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    unsigned long long ut = 0, st = 0;
    /* fields 3.. after ") ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}
/* VmRSS (or VmHWM with hwm) of the server in KiB, or -1. */
static int64_t srv_mem1(int pid, bool hwm);
int64_t srv_mem(bool hwm) {
    if (O.npids == 0)
        return -1;
    int64_t sum = 0;
    for (int i = 0; i < O.npids; i++) {
        int64_t v = srv_mem1(O.pids[i], hwm);
        if (v < 0)
            return -1;
        sum += v;
    }
    return sum;
}
static int64_t srv_mem1(int pid, bool hwm) {
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long long kb = -1;
    const char *key = hwm ? "VmHWM:" : "VmRSS:";
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, key, 6) == 0) {
            kb = atoll(line + 6);
            break;
        }
    fclose(f);
    return kb;
}
struct summary {
    double secs, pub_rate, deliv_rate, self_cpu, srv_cpu;
    uint64_t published, skipped, expected, delivered, lost;
    const struct hist *h;
    double rate;
    int64_t rss;
};

static void summarize(struct summary *m, int k) {
    const struct step *st = &steps[k];
    m->secs = (double)(st->t_end - st->t_start) / 1e9;
    if (m->secs <= 0)
        m->secs = 1e-9;
    m->rate = st->rate;
    m->published = st->published;
    m->skipped = st->skipped;
    m->expected = st->expected;
    m->delivered = st->delivered;
    m->lost = st->expected > st->delivered ? st->expected - st->delivered : 0;
    m->pub_rate = (double)st->published / m->secs;
    m->deliv_rate = (double)st->delivered / m->secs;
    m->self_cpu = 100 * st->self_cpu_s / m->secs;
    m->srv_cpu = isnan(st->srv_cpu_s) ? NAN : 100 * st->srv_cpu_s / m->secs;
    m->h = &st->h;
    m->rss = st->srv_rss_kb;
}

static void json_escape(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static void jnum(FILE *f, const char *k, double v, bool comma) {
    if (isnan(v) || isinf(v))
        fprintf(f, "\"%s\":null%s", k, comma ? "," : "");
    else if (v == floor(v) && fabs(v) < 1e15)
        fprintf(f, "\"%s\":%.0f%s", k, v, comma ? "," : "");
    else
        fprintf(f, "\"%s\":%.3f%s", k, v, comma ? "," : "");
}

void report(void) {
    const char *mode = O.storm ? "handshake" : O.idle ? "idle" : O.ramp ? "ramp" : "stream";
    double hs_secs = S.t_last_hs > S.t_first_connect ? (double)(S.t_last_hs - S.t_first_connect) / 1e9 : 0;
    double hs_rate = hs_secs > 0 ? (double)S.hs_ok / hs_secs : 0;
    bool streamed = !O.storm && !O.idle && nsteps_run > 0;
    int k = O.ramp ? best_step : 0;
    struct summary m = {0};
    if (streamed && k >= 0)
        summarize(&m, k);
    /* whole run totals (all steps) for loss accounting */
    uint64_t exp_all = total_expected(), del_all = total_delivered();
    struct summary idle = {0};
    if (O.idle && steps[0].t_end)
        summarize(&idle, 0);
    FILE *f = stdout;
    if (O.json) {
        fprintf(f, "{\"mode\":\"%s\",\"complete\":%s,", mode, incomplete ? "false" : "true");
        jnum(f, "conns_requested", O.conns, true);
        jnum(f, "conns", (double)S.hs_ok, true);
        jnum(f, "handshake_failures", (double)S.hs_fail, true);
        jnum(f, "connect_errors", (double)S.connect_err, true);
        jnum(f, "http_errors", (double)S.http_err, true);
        jnum(f, "handshake_timeouts", (double)S.hs_timeout, true);
        jnum(f, "setup_failures", (double)S.setup_fail, true);
        jnum(f, "aborted", (double)S.aborted, true);
        jnum(f, "handshakes_per_s", hs_rate, true);
        jnum(f, "handshake_p50_ms", (double)h_pct(&S.hs_lat, .5) / 1e6, true);
        jnum(f, "handshake_p99_ms", (double)h_pct(&S.hs_lat, .99) / 1e6, true);
        jnum(f, "handshake_max_ms", (double)S.hs_lat.max / 1e6, true);
        if (O.tls) {
            jnum(f, "tls_failures", (double)S.tls_fail, true);
            jnum(f, "tls_resumed", (double)S.tls_resumed, true);
        }
        if (!O.storm) {
            jnum(f, "subscribed", (double)S.sub_ok, true);
            jnum(f, "subscribed_none", (double)S.sub_empty, true);
            jnum(f, "symbols_rejected", (double)S.sub_rejected_syms, true);
            jnum(f, "subscription_failed_msgs", (double)S.sub_failed_msgs, true);
            uint32_t mf = 0;
            for (int i = 0; subcount && i < O.nsyms; i++)
                mf = subcount[i] > mf ? subcount[i] : mf;
            jnum(f, "max_subscribers_per_symbol", mf, true);
        }
        if (streamed) {
            fprintf(f, "\"best_step\":%d,", k);
            if (O.ramp)
                fprintf(f, "\"saturated\":%s,", saturated ? "true" : "false");
        }
        if (streamed && k >= 0) {
            jnum(f, "target_rate", m.rate, true);
            jnum(f, "seconds", m.secs, true);
            jnum(f, "published", (double)m.published, true);
            jnum(f, "publish_rate", m.pub_rate, true);
            jnum(f, "publish_skipped", (double)m.skipped, true);
            jnum(f, "delivered", (double)m.delivered, true);
            jnum(f, "delivered_per_s", m.deliv_rate, true);
            jnum(f, "expected", (double)m.expected, true);
            jnum(f, "lost", (double)m.lost, true);
            jnum(f, "p50_us", (double)h_pct(m.h, .5) / 1e3, true);
            jnum(f, "p90_us", (double)h_pct(m.h, .9) / 1e3, true);
            jnum(f, "p99_us", (double)h_pct(m.h, .99) / 1e3, true);
            jnum(f, "p999_us", (double)h_pct(m.h, .999) / 1e3, true);
            jnum(f, "max_us", (double)m.h->max / 1e3, true);
            jnum(f, "mean_us", m.h->n ? (double)m.h->sum / (double)m.h->n / 1e3 : 0, true);
            if (!O.ramp) { /* first tenth of the subscribers .. last tenth */
                fprintf(f, "\"p99_by_decile_us\":[");
                for (int d = 0; d < 10; d++)
                    fprintf(f, "%s%.0f", d ? "," : "", (double)h_pct(&S.by_pos[d], .99) / 1e3);
                fprintf(f, "],");
            }
            jnum(f, "send_lag_p99_us", (double)h_pct(&S.send_lag, .99) / 1e3, true);
            jnum(f, "send_lag_max_us", (double)S.send_lag.max / 1e3, true);
            jnum(f, "loop_max_turn_us", (double)S.max_turn / 1e3, true);
            jnum(f, "loop_max_oversleep_us", (double)S.max_oversleep / 1e3, true);
            jnum(f, "loadgen_cpu_pct", m.self_cpu, true);
            jnum(f, "server_cpu_pct", m.srv_cpu, true);
            jnum(f, "server_rss_kb", (double)m.rss, true);
        }
        if (streamed) {
            jnum(f, "all_expected", (double)exp_all, true);
            jnum(f, "all_delivered", (double)del_all, true);
            jnum(f, "all_lost", exp_all > del_all ? (double)(exp_all - del_all) : 0, true);
            fprintf(f, "\"steps\":[");
            for (int i = 0; i < nsteps_run; i++) {
                struct summary s;
                if (!steps[i].t_end)
                    continue;
                summarize(&s, i);
                fprintf(f, "%s{", i ? "," : "");
                jnum(f, "rate", s.rate, true);
                jnum(f, "publish_rate", s.pub_rate, true);
                jnum(f, "delivered_per_s", s.deliv_rate, true);
                jnum(f, "expected", (double)s.expected, true);
                jnum(f, "lost", (double)s.lost, true);
                jnum(f, "p50_us", (double)h_pct(s.h, .5) / 1e3, true);
                jnum(f, "p99_us", (double)h_pct(s.h, .99) / 1e3, true);
                jnum(f, "max_us", (double)s.h->max / 1e3, true);
                jnum(f, "loadgen_cpu_pct", s.self_cpu, true);
                jnum(f, "server_cpu_pct", s.srv_cpu, true);
                fprintf(f, "\"pass\":%s", steps[i].evaluated ? (steps[i].pass ? "true" : "false") : "null");
                if (steps[i].evaluated && !steps[i].pass) {
                    fprintf(f, ",\"why\":");
                    json_escape(f, steps[i].why);
                }
                fprintf(f, "}");
            }
            fprintf(f, "],");
            jnum(f, "pub_messages", (double)S.pub_msgs, true);
            jnum(f, "pub_acks", (double)S.pub_acks, true);
            jnum(f, "pub_errors", (double)S.pub_errors, true);
            jnum(f, "snapshots", (double)S.snapshots, true);
            jnum(f, "gaps", (double)S.gaps, true);
            jnum(f, "dups", (double)S.dups, true);
            jnum(f, "stale", (double)S.stale, true);
            jnum(f, "unmatched", (double)S.unmatched, true);
        }
        if (O.idle) {
            jnum(f, "hold_seconds", idle.secs, true);
            jnum(f, "server_cpu_pct", idle.srv_cpu, true);
            jnum(f, "loadgen_cpu_pct", idle.self_cpu, true);
            jnum(f, "server_rss_kb", (double)idle.rss, true);
        }
        if (O.storm) {
            jnum(f, "server_cpu_pct", S.conn_srv_pct, true);
            jnum(f, "loadgen_cpu_pct", S.conn_self_pct, true);
        }
        jnum(f, "server_rss_before_kb", (double)S.rss_before, true);
        jnum(f, "server_rss_connected_kb", (double)S.rss_setup, true);
        jnum(f, "server_rss_end_kb", (double)S.rss_end, true);
        jnum(f, "server_hwm_kb", (double)S.hwm_end, true);
        if (S.rss_before > 0 && S.rss_setup > 0 && S.hs_ok)
            jnum(f, "server_bytes_per_conn", (double)(S.rss_setup - S.rss_before) * 1024.0 / (double)S.hs_ok, true);
        jnum(f, "server_closes", (double)S.closes_rx, true);
        jnum(f, "disconnects", (double)S.disconnects, true);
        jnum(f, "server_errors", (double)S.server_errors, true);
        jnum(f, "compressed_rx", (double)S.compressed_rx, true);
        jnum(f, "delayed_rx", (double)S.delayed_rx, true);
        if (O.rstorm) {
            uint32_t gap = UINT32_MAX;
            for (int i = 0; i < O.nsyms; i++)
                if (RS.n_live[i] - RS.n_drop[i] < gap)
                    gap = RS.n_live[i] - RS.n_drop[i];
            jnum(f, "recover_conns", O.rstorm, true);
            jnum(f, "recover_reconnected", (double)RS.next, true);
            jnum(f, "recover_live", RS.live, true);
            jnum(f, "recover_all_live_ms", RS.t_all ? (double)(RS.t_all - RS.t0) / 1e6 : NAN, true);
            jnum(f, "recover_live_p50_ms", (double)h_pct(&RS.ttl, .5) / 1e6, true);
            jnum(f, "recover_live_p99_ms", (double)h_pct(&RS.ttl, .99) / 1e6, true);
            jnum(f, "recover_missed_ticks_min", gap == UINT32_MAX ? 0 : gap, true);
            jnum(f, "recover_symbols_recovered", (double)RS.recovered, true);
            jnum(f, "recover_symbols_missed", (double)RS.missed, true);
            jnum(f, "recover_rx", (double)RS.rx, true);
            jnum(f, "recover_gaps", (double)RS.gaps, true);
            jnum(f, "recover_dups", (double)RS.dups, true);
            jnum(f, "steady_p99_before_us", (double)h_pct(&steps[0].h, .99) / 1e3, true);
            jnum(f, "steady_p99_storm_us", (double)h_pct(&RS.steady_storm, .99) / 1e3, true);
            jnum(f, "steady_p999_storm_us", (double)h_pct(&RS.steady_storm, .999) / 1e3, true);
        }
        jnum(f, "pings", (double)S.pings, true);
        jnum(f, "protocol_errors", (double)S.proto_err, true);
        fprintf(f, "\"first_error\":");
        json_escape(f, S.first_error);
        fprintf(f, ",\"first_pub_error\":");
        json_escape(f, S.first_pub_error);
        fprintf(f, "}\n");
        fflush(f);
        return;
    }
    fprintf(f, "mode                 %s%s\n", mode, incomplete ? "  (INCOMPLETE: deadline or failure)" : "");
    fprintf(f, "connections          %llu of %d (handshake failures %llu: connect %llu, http %llu, timeout %llu; "
               "setup failures %llu; aborted %llu)\n",
            (unsigned long long)S.hs_ok, O.conns, (unsigned long long)S.hs_fail, (unsigned long long)S.connect_err,
            (unsigned long long)S.http_err, (unsigned long long)S.hs_timeout, (unsigned long long)S.setup_fail,
            (unsigned long long)S.aborted);
    fprintf(f, "handshakes/s         %.0f  (p50 %.2f ms, p99 %.2f ms, max %.2f ms)\n", hs_rate,
            (double)h_pct(&S.hs_lat, .5) / 1e6, (double)h_pct(&S.hs_lat, .99) / 1e6, (double)S.hs_lat.max / 1e6);
    if (O.tls)
        fprintf(f, "tls                  %llu handshakes failed, %llu resumed a session\n",
                (unsigned long long)S.tls_fail, (unsigned long long)S.tls_resumed);
    if (S.t_setup_done) {
        fprintf(f, "connect phase        %.2f s, loadgen cpu %.0f%%", (double)(S.t_setup_done - S.t_begin) / 1e9,
                S.conn_self_pct);
        if (!isnan(S.conn_srv_pct))
            fprintf(f, ", server cpu %.0f%%", S.conn_srv_pct);
        fprintf(f, "\n");
    }
    uint32_t maxfan = 0, watched = 0;
    for (int i = 0; subcount && i < O.nsyms; i++) {
        watched += subcount[i] > 0;
        if (subcount[i] > maxfan)
            maxfan = subcount[i];
    }
    if (!O.storm)
        fprintf(f, "subscribed           %llu (none accepted %llu, symbols rejected %llu); %u symbols watched, "
                   "the busiest by %u\n",
                (unsigned long long)S.sub_ok, (unsigned long long)S.sub_empty,
                (unsigned long long)S.sub_rejected_syms, watched, maxfan);
    if (streamed && k < 0)
        fprintf(f, "ramp                 no step passed\n");
    if (streamed && k >= 0) {
        if (O.ramp) {
            fprintf(f, "ramp steps           %-9s %9s %11s %9s %9s %9s %7s %7s\n", "rate", "pub/s", "deliv/s", "lost",
                    "p50 us", "p99 us", "lg cpu", "srv cpu");
            for (int i = 0; i < nsteps_run; i++) {
                struct summary s;
                if (!steps[i].t_end)
                    continue;
                summarize(&s, i);
                fprintf(f, "  step %-2d            %-9.0f %9.0f %11.0f %9llu %9.0f %9.0f %6.0f%% %6.0f%%  %s%s\n", i,
                        s.rate, s.pub_rate, s.deliv_rate, (unsigned long long)s.lost, (double)h_pct(s.h, .5) / 1e3,
                        (double)h_pct(s.h, .99) / 1e3, s.self_cpu, s.srv_cpu,
                        steps[i].evaluated ? (steps[i].pass ? "ok" : "FAIL ") : "-",
                        steps[i].evaluated && !steps[i].pass ? steps[i].why : "");
            }
            fprintf(f, "best sustained step  %d%s\n", k, saturated ? "" : " (ramp ended before saturation)");
        }
        fprintf(f, "publish rate         %.0f ticks/s (target %.0f; %llu ticks in %.1f s, skipped %llu; fan-out %.0f)\n",
                m.pub_rate, m.rate, (unsigned long long)m.published, m.secs, (unsigned long long)m.skipped,
                m.published ? (double)m.expected / (double)m.published : 0.0);
        fprintf(f, "delivered            %.0f msgs/s (%llu of %llu expected, lost %llu = %.3f%%)\n", m.deliv_rate,
                (unsigned long long)m.delivered, (unsigned long long)m.expected, (unsigned long long)m.lost,
                m.expected ? 100.0 * (double)m.lost / (double)m.expected : 0.0);
        fprintf(f, "latency us           p50 %.0f  p90 %.0f  p99 %.0f  p99.9 %.0f  max %.0f  (mean %.0f)\n",
                (double)h_pct(m.h, .5) / 1e3, (double)h_pct(m.h, .9) / 1e3, (double)h_pct(m.h, .99) / 1e3,
                (double)h_pct(m.h, .999) / 1e3, (double)m.h->max / 1e3,
                m.h->n ? (double)m.h->sum / (double)m.h->n / 1e3 : 0.0);
        fprintf(f, "send lag us          p50 %.0f  p99 %.0f  max %.0f  (publish time behind schedule)\n",
                (double)h_pct(&S.send_lag, .5) / 1e3, (double)h_pct(&S.send_lag, .99) / 1e3,
                (double)S.send_lag.max / 1e3);
        fprintf(f, "loop                 longest turn %.1f ms, longest oversleep %.1f ms\n", (double)S.max_turn / 1e6,
                (double)S.max_oversleep / 1e6);
        fprintf(f, "cpu                  loadgen %.0f%%", m.self_cpu);
        if (!isnan(m.srv_cpu))
            fprintf(f, ", server %.0f%%", m.srv_cpu);
        fprintf(f, "\n");
        if (O.ramp)
            fprintf(f, "whole run            expected %llu, delivered %llu, lost %llu\n", (unsigned long long)exp_all,
                    (unsigned long long)del_all, (unsigned long long)(exp_all > del_all ? exp_all - del_all : 0));
        fprintf(f, "other                pub msgs %llu, acks %llu, pub errors %llu, snapshots %llu, gaps %llu, "
                   "dups %llu, stale %llu, unmatched %llu, pings %llu\n",
                (unsigned long long)S.pub_msgs, (unsigned long long)S.pub_acks, (unsigned long long)S.pub_errors,
                (unsigned long long)S.snapshots, (unsigned long long)S.gaps, (unsigned long long)S.dups,
                (unsigned long long)S.stale, (unsigned long long)S.unmatched, (unsigned long long)S.pings);
    }
    if (O.idle && idle.secs > 0) {
        fprintf(f, "held                 %.1f s", idle.secs);
        if (!isnan(idle.srv_cpu))
            fprintf(f, ", server cpu %.1f%%", idle.srv_cpu);
        if (idle.rss > 0)
            fprintf(f, ", server rss at end of hold %lld KiB", (long long)idle.rss);
        fprintf(f, ", pings answered %llu\n", (unsigned long long)S.pings);
    }
    if (O.server_pid > 0) {
        fprintf(f, "server rss           before %lld KiB, connected %lld KiB, end %lld KiB, peak %lld KiB",
                (long long)S.rss_before, (long long)S.rss_setup, (long long)S.rss_end, (long long)S.hwm_end);
        if (S.rss_before > 0 && S.rss_setup > 0 && S.hs_ok)
            fprintf(f, " (%.0f B/conn)", (double)(S.rss_setup - S.rss_before) * 1024.0 / (double)S.hs_ok);
        fprintf(f, "\n");
    }
    fprintf(f, "closes               server-initiated %llu, unexpected disconnects %llu, server errors %llu, protocol "
               "errors %llu\n",
            (unsigned long long)S.closes_rx, (unsigned long long)S.disconnects, (unsigned long long)S.server_errors,
            (unsigned long long)S.proto_err);
    if (S.first_error[0])
        fprintf(f, "first error          %s\n", S.first_error);
    if (S.first_pub_error[0])
        fprintf(f, "publisher error      %s\n", S.first_pub_error);
    fflush(f);
}
