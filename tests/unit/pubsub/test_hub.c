/* test_hub.c - unit tests for the hub's observers (src/pubsub/hub.c),
 * built without a server: the publish interceptor, the interest observer
 * (first and last subscriber, first watcher) and on_tick for watched
 * symbols, called under the symbol's lock in seq order.
 *
 * No worker is given (hub_set_workers with none) and no symbol is made
 * active while ticks flow, so nothing is posted to a worker. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pubsub/hub.h"

/* ---- fixtures and recorders --------------------------------------------- */

struct recorder {
    struct hub *hub;
    int published;              /* publish observer calls */
    bool take;                  /* what the publish observer answers */
    uint32_t interest[8];       /* interest calls per symbol */
    uint32_t ticks;             /* on_tick calls */
    uint32_t tick_sym;
    double prices[8];
    uint64_t seqs[8];           /* the symbol's seq when on_tick ran */
    bool is_last;               /* every on_tick's tick was the symbol's last */
};

static bool on_publish(void *ctx, const struct tick_in *in) {
    struct recorder *r = ctx;
    r->published++;
    return r->take;
}

static void on_interest(void *ctx, uint32_t sym) {
    struct recorder *r = ctx;
    if (sym < 8)
        r->interest[sym]++;
}

static void on_tick(void *ctx, uint32_t sym, double price) {
    struct recorder *r = ctx;
    /* Under the symbol's lock: the tick is the symbol's last. */
    struct sym_state *s = &r->hub->st[sym];
    if (s->last.price != price)
        r->is_last = false;
    r->tick_sym = sym;
    if (r->ticks < 8) {
        r->prices[r->ticks] = price;
        r->seqs[r->ticks] = s->last.seq;
    }
    r->ticks++;
}

struct fixture {
    struct symbol_table syms;
    struct hub hub;
    struct recorder rec;
};

static int setup(void **state) {
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(symbols_load(&f->syms, "", stderr), 0);
    assert_int_equal(hub_init(&f->hub, &f->syms, 16), 0);
    hub_set_workers(&f->hub, NULL, 0);
    f->rec.hub = &f->hub;
    f->rec.is_last = true;
    struct hub_observers obs = {
        .publish = on_publish,
        .publish_ctx = &f->rec,
        .interest = on_interest,
        .interest_ctx = &f->rec,
        .on_tick = on_tick,
        .tick_ctx = &f->rec,
    };
    hub_set_observers(&f->hub, &obs);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    struct fixture *f = *state;
    hub_free(&f->hub);
    symbols_free(&f->syms);
    free(f);
    return 0;
}

static struct tick_in tick(uint32_t sym, double price) {
    return (struct tick_in){.sym = sym, .price = price, .timestamp = 1700000000000};
}

/* ---- tests -------------------------------------------------------------- */

/* The publish observer decides: taken, the hub leaves the tick alone;
 * refused, the hub sequences it here. */
static void test_publish_interceptor(void **state) {
    struct fixture *f = *state;
    struct tick_in in = tick(1, 10.5);
    f->rec.take = true;
    assert_int_equal(hub_publish(&f->hub, &in), 0);
    assert_int_equal(f->rec.published, 1);
    assert_int_equal(f->hub.st[1].last.seq, 0);
    f->rec.take = false;
    assert_int_equal(hub_publish(&f->hub, &in), 0);
    assert_int_equal(f->rec.published, 2);
    assert_int_equal(f->hub.st[1].last.seq, 1);
    assert_true(f->hub.st[1].last.price == 10.5);
}

/* Without a publish observer (no cluster) every tick is sequenced here. */
static void test_no_observers(void **state) {
    struct fixture *f = *state;
    struct hub_observers none = {0};
    hub_set_observers(&f->hub, &none);
    struct tick_in in = tick(2, 3.0);
    assert_int_equal(hub_publish(&f->hub, &in), 0);
    assert_int_equal(f->hub.st[2].last.seq, 1);
    hub_activate(&f->hub, 2, 0); /* no interest observer: nothing to call */
    hub_deactivate(&f->hub, 2, 0);
    assert_int_equal(f->rec.interest[2], 0);
}

/* A watched symbol's ticks reach on_tick in seq order, under the lock,
 * whether sequenced here or delivered from the cluster; an unwatched one's
 * never do. */
static void test_on_tick_watched_only(void **state) {
    struct fixture *f = *state;
    struct tick_in in = tick(3, 1.0);
    hub_publish_local(&f->hub, &in);
    assert_int_equal(f->rec.ticks, 0);
    hub_watch(&f->hub, 3);
    hub_watch(&f->hub, 3);
    assert_true(hub_is_watched(&f->hub, 3));
    in.price = 2.0;
    hub_publish_local(&f->hub, &in);
    struct tick t = {.price = 3.0, .bid = 3.0, .ask = 3.0, .timestamp = 1700000000001, .seq = 3};
    hub_deliver(&f->hub, 3, &t, 1.0, "");
    hub_deliver(&f->hub, 3, &t, 1.0, ""); /* a repeat: not newer, not handed on */
    assert_int_equal(f->rec.ticks, 2);
    assert_int_equal(f->rec.tick_sym, 3);
    assert_true(f->rec.prices[0] == 2.0 && f->rec.prices[1] == 3.0);
    assert_int_equal(f->rec.seqs[0], 2);
    assert_int_equal(f->rec.seqs[1], 3);
    assert_true(f->rec.is_last);
    hub_unwatch(&f->hub, 3);
    assert_true(hub_is_watched(&f->hub, 3));
    hub_unwatch(&f->hub, 3);
    assert_false(hub_is_watched(&f->hub, 3));
    in.price = 4.0;
    hub_publish_local(&f->hub, &in);
    assert_int_equal(f->rec.ticks, 2);
}

/* Interest: a symbol's first and last local subscriber, and its first
 * watcher (the last one going tells no one). */
static void test_interest_edges(void **state) {
    struct fixture *f = *state;
    hub_activate(&f->hub, 4, 0);
    hub_activate(&f->hub, 4, 1);
    assert_int_equal(f->rec.interest[4], 1);
    assert_int_equal(atomic_load(&f->hub.active_streams), 1);
    hub_deactivate(&f->hub, 4, 0);
    assert_int_equal(f->rec.interest[4], 1);
    hub_deactivate(&f->hub, 4, 1);
    assert_int_equal(f->rec.interest[4], 2);
    assert_int_equal(atomic_load(&f->hub.active_streams), 0);
    hub_watch(&f->hub, 5);
    hub_watch(&f->hub, 5);
    assert_int_equal(f->rec.interest[5], 1);
    hub_unwatch(&f->hub, 5);
    hub_unwatch(&f->hub, 5);
    assert_int_equal(f->rec.interest[5], 1);
}

/* The seq ring answers "every tick after seq N", in order, only under the
 * current epoch and while every such tick is retained. */
static void test_replay_ring(void **state) {
    struct fixture *f = *state;
    struct tick out[16];
    uint32_t n;
    uint64_t last;
    char cur[HUB_EPOCH_MAX + 1];
    hub_epoch(&f->hub, 6, cur);
    assert_string_equal(cur, ""); /* a publish interceptor: the cluster's, not heard yet */
    assert_false(hub_replay(&f->hub, 6, 0, "", out, 16, &n, &last, cur));
    for (int i = 0; i < 20; i++) {
        struct tick_in in = tick(6, 1.0 + i);
        hub_publish_local(&f->hub, &in);
    }
    const char *ep = f->hub.local_epoch; /* sequenced here: this process's */
    assert_true(strlen(ep) > 0 && strlen(ep) <= HUB_EPOCH_MAX);
    assert_true(hub_replay(&f->hub, 6, 4, ep, out, 16, &n, &last, cur));
    assert_string_equal(cur, ep);
    assert_int_equal(n, 16);
    assert_int_equal(last, 20);
    for (uint32_t i = 0; i < n; i++)
        assert_int_equal(out[i].seq, 5 + i);
    assert_false(hub_replay(&f->hub, 6, 3, ep, out, 16, &n, &last, cur)); /* seq 4 is gone */
    assert_true(hub_replay(&f->hub, 6, 20, ep, out, 16, &n, &last, cur));
    assert_int_equal(n, 0);
    assert_false(hub_replay(&f->hub, 6, 21, ep, out, 16, &n, &last, cur));
    assert_false(hub_replay(&f->hub, 6, 10, "another", out, 16, &n, &last, cur));
    assert_false(hub_replay(&f->hub, 6, 10, ep, out, 8, &n, &last, cur)); /* more than the room given */
    /* The cluster's numbering takes over: older entries answer no more. */
    struct tick t = {.price = 2.0, .bid = 2.0, .ask = 2.0, .timestamp = 1700000000001, .seq = 21};
    hub_deliver(&f->hub, 6, &t, 1.0, "E2");
    assert_false(hub_replay(&f->hub, 6, 19, "E2", out, 16, &n, &last, cur));
    assert_false(hub_replay(&f->hub, 6, 20, ep, out, 16, &n, &last, cur));
    assert_true(hub_replay(&f->hub, 6, 20, "E2", out, 16, &n, &last, cur));
    assert_int_equal(n, 1);
    assert_int_equal(out[0].seq, 21);
    assert_string_equal(cur, "E2");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_publish_interceptor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_observers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_on_tick_watched_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_interest_edges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_ring, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
