/* simulator.c - the seeded random-walk feed; see simulator.h. */
#include "feed/simulator.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pubsub/hub.h"

#define SIM_PERIOD_MS 10
#define SIM_MAX_PER_RUN 100000

static uint64_t next_u64(struct simulator *s) {
    uint64_t x = s->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    s->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* Uniform in (0, 1). */
static double next_unit(struct simulator *s) { return ((double)(next_u64(s) >> 11) + 0.5) / 9007199254740992.0; }

/* Standard normal (Box-Muller). */
static double next_normal(struct simulator *s) {
    double u = next_unit(s), v = next_unit(s);
    return sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v);
}

static double round_to(double v, double step) { return round(v / step) * step; }

static void on_timer(uv_timer_t *t) {
    struct simulator *s = t->data;
    struct hub *h = s->hub;
    uint64_t now = uv_now(t->loop);
    s->owed += (double)(now - s->last_ms) * s->ticks_per_ms;
    s->last_ms = now;
    if (s->owed > SIM_MAX_PER_RUN)
        s->owed = SIM_MAX_PER_RUN; /* after a stall, don't burst */
    uint32_t n = 0;
    for (uint32_t i = 0; i < h->syms->n; i++)
        if (hub_is_active(h, i))
            s->active[n++] = i;
    if (n == 0) {
        s->owed = 0; /* idle: nobody watches anything */
        return;
    }
    while (s->owed >= 1.0) {
        s->owed -= 1.0;
        uint32_t sym = s->active[next_u64(s) % n];
        double p = s->price[sym];
        /* ~0.05% per tick volatility, mean-reverting towards the start. */
        double start = h->syms->start[sym] > 0 ? h->syms->start[sym] : 100.0;
        p *= exp(0.0005 * next_normal(s) - 0.0001 * log(p / start));
        double step = p < 10 ? 0.0001 : 0.01;
        p = round_to(p, step);
        if (p < step)
            p = step;
        s->price[sym] = p;
        s->volume[sym] = (double)(1 + next_u64(s) % 500) * 100; /* traded in this tick */
        double half = fmax(step, round_to(p * 0.0001, step));
        struct tick_in in = {.sym = sym, .price = p, .bid = p - half, .ask = p + half, .volume = s->volume[sym],
                             .has_bid = true, .has_ask = true, .has_volume = true, .timestamp = 0};
        hub_publish(h, &in);
    }
}

int sim_start(struct simulator *s, uv_loop_t *loop, struct hub *h, int ticks_per_s, uint64_t seed) {
    memset(s, 0, sizeof(*s));
    uint32_t n = h->syms->n;
    s->hub = h;
    s->rng = seed * 0x9E3779B97F4A7C15ULL + 1;
    s->price = calloc(n, sizeof(double));
    s->volume = calloc(n, sizeof(double));
    s->active = calloc(n, sizeof(uint32_t));
    if (!s->price || !s->volume || !s->active) {
        sim_free(s);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < n; i++)
        s->price[i] = h->syms->start[i] > 0 ? h->syms->start[i] : 100.0;
    s->ticks_per_ms = ticks_per_s / 1000.0;
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    s->last_ms = uv_now(loop);
    uv_timer_start(&s->timer, on_timer, SIM_PERIOD_MS, SIM_PERIOD_MS);
    s->running = true;
    return 0;
}

void sim_stop(struct simulator *s) {
    if (!s->running)
        return;
    s->running = false;
    uv_close((uv_handle_t *)&s->timer, NULL);
}

void sim_free(struct simulator *s) {
    free(s->price);
    free(s->volume);
    free(s->active);
    s->price = s->volume = NULL;
    s->active = NULL;
}
