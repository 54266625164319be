/* metrics.c - Prometheus text and JSON stats; see metrics.h. */
#include "gateway/metrics.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/auth.h"
#include "gateway/protocol.h"
#include "auth/auth.h"
#include "auth/budget.h"
#include "auth/guard.h"
#include "base/audit.h"
#include "base/config.h"
#include "cluster/engine.h"
#include "gateway/gateway.h"
#include "net/clientip.h"
#include "net/tls.h"
#include "pubsub/hub.h"
#include "pubsub/lanes.h"
#include "pubsub/symbols.h"
#include "trade/broker.h"
#include "net/worker.h"
#include "net/conn.h"
#include "ws/deflate.h"
#include "net/http.h"
#include "base/log.h"
#include "gateway/ready.h"

static const char *SV_NAMES[SV_COUNT] = {"rate_limited", "forbidden", "invalid_message", "auth_failed",
                                         "suspicious_content"};
static const char *TYPE_NAMES[ACT_COUNT + 1] = {"heartbeat", "authenticate", "subscribe", "unsubscribe",
                                                "set_options", "get_history", "analysis", "portfolio_subscribe",
                                                "trade", "admin_broadcast", "publish", "invalid"};

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

/* Totals across workers. */
struct totals {
    uint64_t ws_open, ws_total, http, http_paused, bytes, sent, subs, conflated, slow_disc, rate_limited;
    uint64_t zmsgs, zsaved;
    uint64_t by_role[ROLE_COUNT], received[ACT_COUNT + 1], disc[DR_COUNT], viol[SV_COUNT], recoveries[2];
    uint64_t buckets[FANOUT_BUCKETS], fcount, fsum_ns;
    uint64_t not_entitled[NE_COUNT], delayed_subs, throttled_subs, throttled_dropped, delay_conflated, shed;
    int64_t last_sweep;
};

static void gather(struct gateway *gw, struct totals *t) {
    memset(t, 0, sizeof(*t));
    t->last_sweep = INT64_MAX;
    for (int i = 0; i < gw->nworkers; i++) {
        struct worker_stats *s = &gw->workers[i].stats;
        t->ws_open += LOAD(s->ws_open);
        t->ws_total += LOAD(s->ws_total);
        t->http += LOAD(s->http_requests);
        t->http_paused += LOAD(s->http_paused);
        t->bytes += LOAD(s->bytes_sent);
        t->sent += LOAD(s->messages_sent);
        t->zmsgs += LOAD(s->ws_compressed_messages);
        t->zsaved += LOAD(s->ws_compression_saved_bytes);
        t->subs += LOAD(s->subscriptions);
        t->conflated += LOAD(s->conflated);
        t->slow_disc += LOAD(s->slow_disconnects);
        t->rate_limited += LOAD(s->rate_limited);
        const struct gateway_stats *g = &gateway_worker(&gw->workers[i])->stats;
        for (int r = 0; r < ROLE_COUNT; r++)
            t->by_role[r] += LOAD(g->by_role[r]);
        for (int a = 0; a <= ACT_COUNT; a++)
            t->received[a] += LOAD(g->received[a]);
        for (int k = 0; k < 2; k++)
            t->recoveries[k] += LOAD(g->recoveries[k]);
        for (int k = 0; k < NE_COUNT; k++)
            t->not_entitled[k] += LOAD(g->not_entitled[k]);
        const struct worker_lanes *wl = gw->workers[i].subs ? gw->workers[i].subs->lanes : NULL;
        if (wl) {
            t->delayed_subs += LOAD(wl->delayed_subs);
            t->throttled_subs += LOAD(wl->throttled_subs);
            t->throttled_dropped += LOAD(wl->throttled_dropped);
            t->delay_conflated += LOAD(wl->delay_conflated);
        }
        if (gw->workers[i].subs)
            t->shed += LOAD(gw->workers[i].subs->shed);
        for (int d = 0; d < DR_COUNT; d++)
            t->disc[d] += LOAD(s->disconnects[d]);
        for (int v = 0; v < SV_COUNT; v++)
            t->viol[v] += LOAD(s->violations[v]);
        for (int b = 0; b < FANOUT_BUCKETS; b++)
            t->buckets[b] += LOAD(s->fanout_buckets[b]);
        t->fcount += LOAD(s->fanout_count);
        t->fsum_ns += LOAD(s->fanout_sum_ns);
        int64_t ls = LOAD(s->last_sweep_s);
        if (ls < t->last_sweep)
            t->last_sweep = ls; /* the oldest: every sweeper ran at least then */
    }
    if (t->last_sweep == INT64_MAX)
        t->last_sweep = 0;
}

struct out {
    char *buf;
    size_t len, cap;
    bool oom;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->oom = true;
            return;
        }
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        size_t ncap = o->cap * 2 + (size_t)n;
        char *nb = realloc(o->buf, ncap);
        if (!nb) {
            o->oom = true;
            return;
        }
        o->buf = nb;
        o->cap = ncap;
    }
}

static void head(struct out *o, const char *name, const char *type, const char *help) {
    put(o, "# HELP tickgate_%s %s\n# TYPE tickgate_%s %s\n", name, help, name, type);
}

bool metrics_authorized(struct conn *c) {
    const char *tok = gateway_of(c)->cfg->server.metrics_token;
    if (!tok[0])
        return true;
    size_t hl = 0, tl = strlen(tok);
    const char *h = http_req_header(c->http, "Authorization", &hl);
    if (!h || hl < 7 || strncasecmp(h, "Bearer ", 7) != 0)
        return false;
    h += 7;
    hl -= 7;
    unsigned diff = hl != tl;
    for (size_t i = 0; i < tl; i++)
        diff |= (unsigned char)tok[i] ^ (unsigned char)(i < hl ? h[i] : 0);
    return diff == 0;
}

void metrics_respond(struct conn *c, bool keep) {
    struct gateway *gw = gateway_of(c);
    struct totals t;
    gather(gw, &t);
    struct out o = {malloc(8192), 0, 8192, false};
    if (!o.buf) {
        conn_http_error(c, 500, "internal_error", "out of memory", NULL, false);
        return;
    }
    head(&o, "connections", "gauge", "Open WebSocket connections by role.");
    for (int r = 0; r < ROLE_COUNT; r++)
        put(&o, "tickgate_connections{role=\"%s\"} %llu\n", role_name(r), (unsigned long long)t.by_role[r]);
    head(&o, "connections_total", "counter", "WebSocket connections accepted.");
    put(&o, "tickgate_connections_total %llu\n", (unsigned long long)t.ws_total);
    head(&o, "disconnections_total", "counter", "WebSocket connections ended, by reason.");
    for (int d = 0; d < DR_COUNT; d++)
        put(&o, "tickgate_disconnections_total{reason=\"%s\"} %llu\n", protocol_disc_reason_name(d), (unsigned long long)t.disc[d]);
    head(&o, "messages_received_total", "counter", "Client messages received, by type.");
    for (int a = 0; a <= ACT_COUNT; a++)
        put(&o, "tickgate_messages_received_total{type=\"%s\"} %llu\n", TYPE_NAMES[a],
            (unsigned long long)t.received[a]);
    head(&o, "messages_sent_total", "counter", "Messages queued to clients.");
    put(&o, "tickgate_messages_sent_total %llu\n", (unsigned long long)t.sent);
    head(&o, "ws_compressed_messages_total", "counter", "Messages sent compressed (permessage-deflate), per receiving connection.");
    put(&o, "tickgate_ws_compressed_messages_total %llu\n", (unsigned long long)t.zmsgs);
    head(&o, "ws_compressions_total", "counter", "Deflate runs on outbound data (a shared frame counts once).");
    put(&o, "tickgate_ws_compressions_total %llu\n", (unsigned long long)ws_deflate_runs());
    head(&o, "ws_compression_saved_bytes_total", "counter", "Bytes not sent thanks to compression, per receiving connection.");
    put(&o, "tickgate_ws_compression_saved_bytes_total %llu\n", (unsigned long long)t.zsaved);
    head(&o, "bytes_sent_total", "counter", "Bytes written to client sockets.");
    put(&o, "tickgate_bytes_sent_total %llu\n", (unsigned long long)t.bytes);
    head(&o, "http_requests_total", "counter", "HTTP requests parsed.");
    put(&o, "tickgate_http_requests_total %llu\n", (unsigned long long)t.http);
    head(&o, "http_paused_connections", "gauge", "HTTP connections not read while their answers wait for the client.");
    put(&o, "tickgate_http_paused_connections %llu\n", (unsigned long long)t.http_paused);
    head(&o, "subscriptions", "gauge", "Symbol subscriptions held by clients.");
    put(&o, "tickgate_subscriptions %llu\n", (unsigned long long)t.subs);
    head(&o, "active_streams", "gauge", "Symbols with at least one local subscriber.");
    put(&o, "tickgate_active_streams %ld\n", atomic_load(&gw->hub->active_streams));
    head(&o, "ticks_published_total", "counter", "Ticks sequenced by this node.");
    put(&o, "tickgate_ticks_published_total %llu\n", (unsigned long long)LOAD(gw->hub->ticks_published));
    head(&o, "fanout_dropped_total", "counter", "Tick frames a full worker mailbox refused (must stay 0).");
    put(&o, "tickgate_fanout_dropped_total %llu\n", (unsigned long long)LOAD(gw->hub->frames_dropped));
    head(&o, "fanout_seconds", "histogram", "Tick in to queued for its last local subscriber.");
    uint64_t cum = 0;
    for (int b = 0; b < FANOUT_BUCKETS; b++) {
        cum += t.buckets[b];
        if (b == FANOUT_BUCKETS - 1)
            put(&o, "tickgate_fanout_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
        else
            put(&o, "tickgate_fanout_seconds_bucket{le=\"%g\"} %llu\n", FANOUT_BOUNDS[b], (unsigned long long)cum);
    }
    put(&o, "tickgate_fanout_seconds_sum %.9f\ntickgate_fanout_seconds_count %llu\n", (double)t.fsum_ns / 1e9,
        (unsigned long long)t.fcount);
    head(&o, "rate_limited_total", "counter", "Client messages dropped by the rate limit.");
    put(&o, "tickgate_rate_limited_total %llu\n", (unsigned long long)t.rate_limited);
    head(&o, "security_violations_total", "counter", "Security violations, by kind.");
    for (int v = 0; v < SV_COUNT; v++)
        put(&o, "tickgate_security_violations_total{kind=\"%s\"} %llu\n", SV_NAMES[v], (unsigned long long)t.viol[v]);
    head(&o, "auth_failures_total", "counter", "Failed authentications, by reason.");
    for (int f = 0; f < AUTHF_COUNT; f++)
        put(&o, "tickgate_auth_failures_total{reason=\"%s\"} %llu\n", auth_failure_str(f),
            (unsigned long long)LOAD(gw->auth->failures[f]));
    static const char *NE_NAMES[NE_COUNT] = {"subscribe", "query", "trade"};
    head(&o, "entitlement_refusals_total", "counter", "Requests for symbols the client is not entitled to, by request.");
    for (int k = 0; k < NE_COUNT; k++)
        put(&o, "tickgate_entitlement_refusals_total{request=\"%s\"} %llu\n", NE_NAMES[k],
            (unsigned long long)t.not_entitled[k]);
    head(&o, "delayed_subscriptions", "gauge", "Subscriptions delivered delayed by feed.delay_s.");
    put(&o, "tickgate_delayed_subscriptions %llu\n", (unsigned long long)t.delayed_subs);
    head(&o, "throttled_subscriptions", "gauge", "Subscriptions delivered throttled ([throttle]).");
    put(&o, "tickgate_throttled_subscriptions %llu\n", (unsigned long long)t.throttled_subs);
    head(&o, "throttled_dropped_total", "counter", "Updates a throttle replaced by a newer one (per lane).");
    put(&o, "tickgate_throttled_dropped_total %llu\n", (unsigned long long)t.throttled_dropped);
    head(&o, "delay_conflated_total", "counter", "Delayed frames a delay line replaced (newest per resolution slot).");
    put(&o, "tickgate_delay_conflated_total %llu\n", (unsigned long long)t.delay_conflated);
    head(&o, "shed_ticks_total", "counter",
         "Ticks a worker behind by limits.shed_after_ms skipped: a newer one of the symbol was queued.");
    put(&o, "tickgate_shed_ticks_total %llu\n", (unsigned long long)t.shed);
    head(&o, "slow_consumer_conflated_total", "counter", "Updates replaced by a newer one for a backed-up client.");
    put(&o, "tickgate_slow_consumer_conflated_total %llu\n", (unsigned long long)t.conflated);
    head(&o, "slow_consumer_disconnects_total", "counter", "Clients closed with 1013 as slow consumers.");
    put(&o, "tickgate_slow_consumer_disconnects_total %llu\n", (unsigned long long)t.slow_disc);
    head(&o, "recoveries_total", "counter", "Subscriptions that asked to recover, by result.");
    put(&o, "tickgate_recoveries_total{result=\"recovered\"} %llu\ntickgate_recoveries_total{result=\"missed\"} %llu\n",
        (unsigned long long)t.recoveries[0], (unsigned long long)t.recoveries[1]);
    head(&o, "redis_up", "gauge", "1 when the Redis engine is connected (0 when down or not configured).");
    put(&o, "tickgate_redis_up %d\n", redis_engine_up(gw->redis) ? 1 : 0);
    head(&o, "redis_errors_total", "counter", "Redis connection and command errors.");
    put(&o, "tickgate_redis_errors_total %llu\n", (unsigned long long)LOAD(gw->redis->errors));
    head(&o, "redis_inflight_full_total", "counter",
         "Times redis.max_inflight ticks awaited Redis: the links were dropped, ticks served locally meanwhile.");
    put(&o, "tickgate_redis_inflight_full_total %llu\n", (unsigned long long)LOAD(gw->redis->inflight_full));
    head(&o, "redis_published_total", "counter", "Ticks sent through Redis for cluster-wide sequencing.");
    put(&o, "tickgate_redis_published_total %llu\n", (unsigned long long)LOAD(gw->redis->published));
    head(&o, "blocked_ips", "gauge", "IP addresses blocked now.");
    put(&o, "tickgate_blocked_ips %ld\n", atomic_load(&gw->guard->blocked));
    head(&o, "handshakes_rate_limited_total", "counter", "WebSocket handshakes refused by the per-IP handshake rate.");
    put(&o, "tickgate_handshakes_rate_limited_total %llu\n",
        (unsigned long long)LOAD(gw->budgets->refused[BUDGET_CONNECT_IP]));
    head(&o, "rate_budgets", "gauge", "Rate buckets held: messages per user or anonymous IP, handshakes per IP.");
    put(&o, "tickgate_rate_budgets %ld\n", atomic_load(&gw->budgets->count));
    head(&o, "rate_budgets_evicted_total", "counter", "Unused rate buckets forgotten before full (table bound).");
    put(&o, "tickgate_rate_budgets_evicted_total %llu\n", (unsigned long long)LOAD(gw->budgets->evicted));
    head(&o, "tls_reload_failures_total", "counter", "SIGHUP reloads of the TLS certificate and key that failed (old pair kept).");
    put(&o, "tickgate_tls_reload_failures_total %llu\n",
        (unsigned long long)(gw->tls ? tls_ctx_reload_failures(gw->tls) : 0));
    head(&o, "audit_events_dropped_total", "counter", "Audit events dropped because the writer's queue was full.");
    put(&o, "tickgate_audit_events_dropped_total %llu\n", (unsigned long long)LOAD(gw->audit->dropped));
    head(&o, "audit_events_written_total", "counter", "Audit events written.");
    put(&o, "tickgate_audit_events_written_total %llu\n", (unsigned long long)LOAD(gw->audit->written));
    head(&o, "ready", "gauge", "1 while /ready answers 200 (serving, first Redis sync done, not draining).");
    put(&o, "tickgate_ready %d\n", gateway_not_ready(gw) ? 0 : 1);
    head(&o, "config_reloads_total", "counter", "SIGHUP reloads, applied or refused (nothing changed).");
    put(&o, "tickgate_config_reloads_total{result=\"applied\"} %llu\ntickgate_config_reloads_total{result=\"refused\"} %llu\n",
        (unsigned long long)LOAD(gw->reloads[0]), (unsigned long long)LOAD(gw->reloads[1]));
    head(&o, "log_lines_suppressed_total", "counter", "Repeated error lines not written (rate limit per call site).");
    put(&o, "tickgate_log_lines_suppressed_total %llu\n", (unsigned long long)log_suppressed_total());
    head(&o, "start_time_seconds", "gauge", "When this process started (Unix time).");
    put(&o, "tickgate_start_time_seconds %llu\n", (unsigned long long)(gw->started_ms / 1000));
    head(&o, "sweeper_last_run_timestamp_seconds", "gauge", "When every worker's sweeper had last run.");
    put(&o, "tickgate_sweeper_last_run_timestamp_seconds %lld\n", (long long)t.last_sweep);
    if (o.oom) {
        free(o.buf);
        conn_http_error(c, 500, "internal_error", "out of memory", NULL, false);
        return;
    }
    conn_http_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", o.buf, o.len, NULL, keep);
    free(o.buf);
}

void stats_respond(struct conn *c, bool keep) {
    struct gateway *gw = gateway_of(c);
    struct totals t;
    gather(gw, &t);
    json_t *roles = json_object(), *disc = json_object(), *recv = json_object(), *viol = json_object(),
           *authf = json_object();
    for (int r = 0; r < ROLE_COUNT; r++)
        json_object_set_new(roles, role_name(r), json_integer((json_int_t)t.by_role[r]));
    for (int d = 0; d < DR_COUNT; d++)
        json_object_set_new(disc, protocol_disc_reason_name(d), json_integer((json_int_t)t.disc[d]));
    for (int a = 0; a <= ACT_COUNT; a++)
        json_object_set_new(recv, TYPE_NAMES[a], json_integer((json_int_t)t.received[a]));
    for (int v = 0; v < SV_COUNT; v++)
        json_object_set_new(viol, SV_NAMES[v], json_integer((json_int_t)t.viol[v]));
    for (int f = 0; f < AUTHF_COUNT; f++)
        json_object_set_new(authf, auth_failure_str(f), json_integer((json_int_t)LOAD(gw->auth->failures[f])));
    json_t *o = json_pack(
        "{s:o, s:I, s:I, s:o, s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:I, s:I, s:I, s:f, s:I, s:i}",
        "connections", roles, "connections_open", (json_int_t)t.ws_open, "connections_total", (json_int_t)t.ws_total,
        "disconnections_total", disc, "messages_received_total", recv, "messages_sent_total", (json_int_t)t.sent,
        "bytes_sent_total", (json_int_t)t.bytes, "subscriptions", (json_int_t)t.subs, "active_streams",
        (json_int_t)atomic_load(&gw->hub->active_streams), "ticks_published_total",
        (json_int_t)LOAD(gw->hub->ticks_published), "fanout_dropped_total", (json_int_t)LOAD(gw->hub->frames_dropped),
        "rate_limited_total", (json_int_t)t.rate_limited, "http_requests_total", (json_int_t)t.http,
        "security_violations_total", viol, "auth_failures_total", authf, "slow_consumer_conflated_total",
        (json_int_t)t.conflated, "slow_consumer_disconnects_total", (json_int_t)t.slow_disc,
        "sweeper_last_run_timestamp_seconds", (json_int_t)t.last_sweep, "fanout_seconds_avg",
        t.fcount ? (double)t.fsum_ns / 1e9 / (double)t.fcount : 0.0, "fanout_count", (json_int_t)t.fcount,
        "workers", gw->nworkers);
    if (o) {
        json_object_set_new(o, "ws_compressed_messages_total", json_integer((json_int_t)t.zmsgs));
        json_object_set_new(o, "shed_ticks_total", json_integer((json_int_t)t.shed));
        json_object_set_new(o, "ws_compressions_total", json_integer((json_int_t)ws_deflate_runs()));
        json_object_set_new(o, "ws_compression_saved_bytes_total", json_integer((json_int_t)t.zsaved));
        json_object_set_new(o, "blocked_ips", json_integer(atomic_load(&gw->guard->blocked)));
        json_object_set_new(o, "http_paused_connections", json_integer((json_int_t)t.http_paused));
        json_object_set_new(o, "redis_up", json_integer(redis_engine_up(gw->redis) ? 1 : 0));
        json_object_set_new(o, "recoveries_total",
                            json_pack("{s:I, s:I}", "recovered", (json_int_t)t.recoveries[0], "missed",
                                      (json_int_t)t.recoveries[1]));
        json_object_set_new(o, "redis_errors_total", json_integer((json_int_t)LOAD(gw->redis->errors)));
        json_object_set_new(o, "audit_events_dropped_total", json_integer((json_int_t)LOAD(gw->audit->dropped)));
        json_object_set_new(o, "audit_events_written_total", json_integer((json_int_t)LOAD(gw->audit->written)));
    }
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!s) {
        conn_http_error(c, 500, "internal_error", "out of memory", NULL, false);
        return;
    }
    conn_http_respond(c, 200, "application/json", s, strlen(s), NULL, keep);
    free(s);
}
