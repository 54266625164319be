/* metrics.c - Prometheus text and JSON stats; see metrics.h. */
#include "gateway/metrics.h"

#include <assert.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/auth.h"
#include "gateway/protocol.h"
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
    uint64_t authf[AUTHF_COUNT];
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
    for (int f = 0; f < AUTHF_COUNT; f++)
        t->authf[f] = LOAD(gw->auth->failures[f]);
}

/* The label values of the families both outputs list. */
struct names {
    const char *roles[ROLE_COUNT], *discs[DR_COUNT], *authfs[AUTHF_COUNT];
};

static void names_fill(struct names *n) {
    for (int r = 0; r < ROLE_COUNT; r++)
        n->roles[r] = role_name(r);
    for (int d = 0; d < DR_COUNT; d++)
        n->discs[d] = protocol_disc_reason_name(d);
    for (int f = 0; f < AUTHF_COUNT; f++)
        n->authfs[f] = auth_failure_str(f);
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

/* A metric without labels: one value, in /metrics and, when stats is set,
 * in /api/stats under the same name (one list, so the two cannot drift). */
struct scalar {
    const char *name, *type, *help;
    int64_t v;
    bool stats;
};

#define SCALARS_MAX 40

static size_t scalars(struct gateway *gw, const struct totals *t, struct scalar *s) {
    size_t n = 0;
#define ADD(nm, ty, stats_, val, hlp)                                                                                  \
    do {                                                                                                               \
        assert(n < SCALARS_MAX);                                                                                       \
        s[n++] = (struct scalar){nm, ty, hlp, (int64_t)(val), stats_};                                                 \
    } while (0)
    ADD("connections_total", "counter", true, t->ws_total, "WebSocket connections accepted.");
    ADD("messages_sent_total", "counter", true, t->sent, "Messages queued to clients.");
    ADD("ws_compressed_messages_total", "counter", true, t->zmsgs,
        "Messages sent compressed (permessage-deflate), per receiving connection.");
    ADD("ws_compressions_total", "counter", true, ws_deflate_runs(),
        "Deflate runs on outbound data (a shared frame counts once).");
    ADD("ws_compression_saved_bytes_total", "counter", true, t->zsaved,
        "Bytes not sent thanks to compression, per receiving connection.");
    ADD("bytes_sent_total", "counter", true, t->bytes, "Bytes written to client sockets.");
    ADD("http_requests_total", "counter", true, t->http, "HTTP requests parsed.");
    ADD("http_paused_connections", "gauge", true, t->http_paused,
        "HTTP connections not read while their answers wait for the client.");
    ADD("subscriptions", "gauge", true, t->subs, "Symbol subscriptions held by clients.");
    ADD("active_streams", "gauge", true, atomic_load(&gw->hub->active_streams),
        "Symbols with at least one local subscriber.");
    ADD("ticks_published_total", "counter", true, LOAD(gw->hub->ticks_published), "Ticks sequenced by this node.");
    ADD("fanout_dropped_total", "counter", true, LOAD(gw->hub->frames_dropped),
        "Tick frames a full worker mailbox refused (must stay 0).");
    ADD("rate_limited_total", "counter", true, t->rate_limited, "Client messages dropped by the rate limit.");
    ADD("delayed_subscriptions", "gauge", false, t->delayed_subs, "Subscriptions delivered delayed by feed.delay_s.");
    ADD("throttled_subscriptions", "gauge", false, t->throttled_subs,
        "Subscriptions delivered throttled ([throttle]).");
    ADD("throttled_dropped_total", "counter", false, t->throttled_dropped,
        "Updates a throttle replaced by a newer one (per lane).");
    ADD("delay_conflated_total", "counter", false, t->delay_conflated,
        "Delayed frames a delay line replaced (newest per resolution slot).");
    ADD("shed_ticks_total", "counter", true, t->shed,
        "Ticks a worker behind by limits.shed_after_ms skipped: a newer one of the symbol was queued.");
    ADD("slow_consumer_conflated_total", "counter", true, t->conflated,
        "Updates replaced by a newer one for a backed-up client.");
    ADD("slow_consumer_disconnects_total", "counter", true, t->slow_disc,
        "Clients closed with 1013 as slow consumers.");
    ADD("redis_up", "gauge", true, redis_engine_up(gw->redis) ? 1 : 0,
        "1 when the Redis engine is connected (0 when down or not configured).");
    ADD("redis_errors_total", "counter", true, LOAD(gw->redis->errors), "Redis connection and command errors.");
    ADD("redis_inflight_full_total", "counter", false, LOAD(gw->redis->inflight_full),
        "Times redis.max_inflight ticks awaited Redis: the links were dropped, ticks served locally meanwhile.");
    ADD("redis_published_total", "counter", false, LOAD(gw->redis->published),
        "Ticks sent through Redis for cluster-wide sequencing.");
    ADD("blocked_ips", "gauge", true, atomic_load(&gw->guard->blocked), "IP addresses blocked now.");
    ADD("handshakes_rate_limited_total", "counter", false, LOAD(gw->budgets->refused[BUDGET_CONNECT_IP]),
        "WebSocket handshakes refused by the per-IP handshake rate.");
    ADD("rate_budgets", "gauge", false, atomic_load(&gw->budgets->count),
        "Rate buckets held: messages per user or anonymous IP, handshakes per IP.");
    ADD("rate_budgets_evicted_total", "counter", false, LOAD(gw->budgets->evicted),
        "Unused rate buckets forgotten before full (table bound).");
    ADD("tls_reload_failures_total", "counter", false, gw->tls ? tls_ctx_reload_failures(gw->tls) : 0,
        "SIGHUP reloads of the TLS certificate and key that failed (old pair kept).");
    ADD("audit_events_dropped_total", "counter", true, LOAD(gw->audit->dropped),
        "Audit events dropped because the writer's queue was full.");
    ADD("audit_events_written_total", "counter", true, LOAD(gw->audit->written), "Audit events written.");
    ADD("ready", "gauge", false, gateway_not_ready(gw) ? 0 : 1,
        "1 while /ready answers 200 (serving, first Redis sync done, not draining).");
    ADD("log_lines_suppressed_total", "counter", false, log_suppressed_total(),
        "Repeated error lines not written (rate limit per call site).");
    ADD("start_time_seconds", "gauge", false, gw->started_ms / 1000, "When this process started (Unix time).");
    ADD("sweeper_last_run_timestamp_seconds", "gauge", true, t->last_sweep,
        "When every worker's sweeper had last run.");
#undef ADD
    return n;
}

/* One family of labelled counters or gauges. */
static void family(struct out *o, const char *name, const char *type, const char *help, const char *label,
                   const char *const *keys, const uint64_t *vals, int n) {
    head(o, name, type, help);
    for (int i = 0; i < n; i++)
        put(o, "tickgate_%s{%s=\"%s\"} %llu\n", name, label, keys[i], (unsigned long long)vals[i]);
}

static const char *NE_NAMES[NE_COUNT] = {"subscribe", "query", "trade"};
static const char *RECOVERY_NAMES[2] = {"recovered", "missed"};
static const char *RELOAD_NAMES[2] = {"applied", "refused"};

void metrics_respond(struct conn *c, bool keep) {
    struct gateway *gw = gateway_of(c);
    struct totals t;
    gather(gw, &t);
    struct out o = {malloc(8192), 0, 8192, false};
    if (!o.buf) {
        conn_http_error(c, 500, "internal_error", "out of memory", NULL, false);
        return;
    }
    struct names nm;
    names_fill(&nm);
    uint64_t reloads[2] = {LOAD(gw->reloads[0]), LOAD(gw->reloads[1])};
    family(&o, "connections", "gauge", "Open WebSocket connections by role.", "role", nm.roles, t.by_role, ROLE_COUNT);
    family(&o, "disconnections_total", "counter", "WebSocket connections ended, by reason.", "reason", nm.discs, t.disc,
           DR_COUNT);
    family(&o, "messages_received_total", "counter", "Client messages received, by type.", "type", TYPE_NAMES,
           t.received, ACT_COUNT + 1);
    family(&o, "security_violations_total", "counter", "Security violations, by kind.", "kind", SV_NAMES, t.viol,
           SV_COUNT);
    family(&o, "auth_failures_total", "counter", "Failed authentications, by reason.", "reason", nm.authfs, t.authf,
           AUTHF_COUNT);
    family(&o, "entitlement_refusals_total", "counter",
           "Requests for symbols the client is not entitled to, by request.", "request", NE_NAMES, t.not_entitled,
           NE_COUNT);
    family(&o, "recoveries_total", "counter", "Subscriptions that asked to recover, by result.", "result",
           RECOVERY_NAMES, t.recoveries, 2);
    family(&o, "config_reloads_total", "counter", "SIGHUP reloads, applied or refused (nothing changed).", "result",
           RELOAD_NAMES, reloads, 2);
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
    struct scalar s[SCALARS_MAX];
    size_t n = scalars(gw, &t, s);
    for (size_t i = 0; i < n; i++) {
        head(&o, s[i].name, s[i].type, s[i].help);
        put(&o, "tickgate_%s %lld\n", s[i].name, (long long)s[i].v);
    }
    if (o.oom) {
        free(o.buf);
        conn_http_error(c, 500, "internal_error", "out of memory", NULL, false);
        return;
    }
    conn_http_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", o.buf, o.len, NULL, keep);
    free(o.buf);
}

static json_t *json_family(const char *const *keys, const uint64_t *vals, int n) {
    json_t *o = json_object();
    for (int i = 0; o && i < n; i++)
        json_object_set_new(o, keys[i], json_integer((json_int_t)vals[i]));
    return o;
}

void stats_respond(struct conn *c, bool keep) {
    struct gateway *gw = gateway_of(c);
    struct totals t;
    gather(gw, &t);
    struct names nm;
    names_fill(&nm);
    json_t *o = json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:I, s:f, s:I, s:i}", "connections",
                          json_family(nm.roles, t.by_role, ROLE_COUNT), "disconnections_total",
                          json_family(nm.discs, t.disc, DR_COUNT), "messages_received_total",
                          json_family(TYPE_NAMES, t.received, ACT_COUNT + 1), "security_violations_total",
                          json_family(SV_NAMES, t.viol, SV_COUNT), "auth_failures_total",
                          json_family(nm.authfs, t.authf, AUTHF_COUNT), "recoveries_total",
                          json_family(RECOVERY_NAMES, t.recoveries, 2), "connections_open", (json_int_t)t.ws_open,
                          "fanout_seconds_avg", t.fcount ? (double)t.fsum_ns / 1e9 / (double)t.fcount : 0.0,
                          "fanout_count", (json_int_t)t.fcount, "workers", gw->nworkers);
    struct scalar s[SCALARS_MAX];
    size_t n = scalars(gw, &t, s);
    for (size_t i = 0; o && i < n; i++)
        if (s[i].stats)
            json_object_set_new(o, s[i].name, json_integer((json_int_t)s[i].v));
    char *js = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!js) {
        conn_http_error(c, 500, "internal_error", "out of memory", NULL, false);
        return;
    }
    conn_http_respond(c, 200, "application/json", js, strlen(js), NULL, keep);
    free(js);
}
