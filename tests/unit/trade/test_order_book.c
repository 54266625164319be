/* test_order_book.c - unit tests for the price index of resting limit
 * orders (src/trade/order_book.c): a tick takes exactly the orders it
 * crosses, best limit first and oldest first among equal limits, buys
 * before sells; memory is returned when a side empties; a long random run
 * agrees with a brute-force model (issue 13, item 8). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "trade/order_book.h"

/* An order as the tests see it: the item handed to the book. */
struct o {
    int id;
    bool sell;
    double limit;
    uint64_t arrival;
    bool resting;
};

static void add(struct order_book *b, struct o *x) {
    assert_int_equal(order_book_add(b, x->sell, x->limit, x), 0);
    x->resting = true;
}

/* Takes everything a tick at price crosses; writes the ids in order. */
static int take_all(struct order_book *b, double price, int *ids, int max) {
    int n = 0;
    for (struct o *x; (x = order_book_take(b, price));) {
        assert_true(n < max);
        assert_true(x->resting);
        x->resting = false;
        ids[n++] = x->id;
    }
    return n;
}

static void test_empty_book(void **state) {
    (void)state;
    struct order_book b = {0};
    assert_null(order_book_take(&b, 100));
    assert_int_equal(order_book_size(&b), 0);
    order_book_clear(&b, NULL);
}

static void test_buys_best_limit_then_oldest(void **state) {
    (void)state;
    struct order_book b = {0};
    struct o v[] = {{1, false, 390, 0, false}, {2, false, 395, 0, false}, {3, false, 392, 0, false},
                    {4, false, 395, 0, false}};
    for (int i = 0; i < 4; i++)
        add(&b, &v[i]);
    int ids[8];
    assert_int_equal(take_all(&b, 396, ids, 8), 0); /* above every buy limit: nothing */
    assert_int_equal(take_all(&b, 393, ids, 8), 2); /* the two at 395, the older first */
    assert_int_equal(ids[0], 2);
    assert_int_equal(ids[1], 4);
    assert_int_equal(order_book_size(&b), 2);
    assert_int_equal(take_all(&b, 392, ids, 8), 1); /* a limit equal to the price is crossed */
    assert_int_equal(ids[0], 3);
    assert_int_equal(take_all(&b, 1, ids, 8), 1);
    assert_int_equal(ids[0], 1);
    assert_int_equal(order_book_size(&b), 0);
    assert_null(b.buy.v); /* an empty side keeps no memory */
    order_book_clear(&b, NULL);
}

static void test_sells_lowest_limit_first(void **state) {
    (void)state;
    struct order_book b = {0};
    struct o v[] = {{1, true, 410, 0, false}, {2, true, 405, 0, false}, {3, true, 412, 0, false},
                    {4, true, 405, 0, false}};
    for (int i = 0; i < 4; i++)
        add(&b, &v[i]);
    int ids[8];
    assert_int_equal(take_all(&b, 404.99, ids, 8), 0);
    assert_int_equal(take_all(&b, 410, ids, 8), 3);
    assert_int_equal(ids[0], 2);
    assert_int_equal(ids[1], 4);
    assert_int_equal(ids[2], 1);
    assert_int_equal(take_all(&b, 1e12, ids, 8), 1);
    assert_int_equal(ids[0], 3);
    assert_null(b.sell.v);
    order_book_clear(&b, NULL);
}

static void test_both_sides_buys_first(void **state) {
    (void)state;
    struct order_book b = {0};
    struct o v[] = {{1, true, 99, 0, false}, {2, false, 101, 0, false}, {3, false, 99, 0, false},
                    {4, true, 101, 0, false}};
    for (int i = 0; i < 4; i++)
        add(&b, &v[i]);
    int ids[8];
    /* 100 crosses the buy at 101 and the sell at 99, not the others. */
    assert_int_equal(take_all(&b, 100, ids, 8), 2);
    assert_int_equal(ids[0], 2);
    assert_int_equal(ids[1], 1);
    assert_int_equal(order_book_size(&b), 2);
    order_book_clear(&b, NULL);
}

static int dropped;
static void drop(void *item) {
    struct o *x = item;
    assert_true(x->resting);
    x->resting = false;
    dropped++;
}

static void test_clear_hands_back_every_item(void **state) {
    (void)state;
    struct order_book b = {0};
    static struct o v[100];
    for (int i = 0; i < 100; i++) {
        v[i] = (struct o){i, i % 3 == 0, 50 + i % 7, 0, false};
        add(&b, &v[i]);
    }
    dropped = 0;
    order_book_clear(&b, drop);
    assert_int_equal(dropped, 100);
    for (int i = 0; i < 100; i++)
        assert_false(v[i].resting);
    assert_int_equal(order_book_size(&b), 0);
    assert_null(b.buy.v);
    assert_null(b.sell.v);
    add(&b, &v[0]); /* usable again */
    assert_int_equal(order_book_size(&b), 1);
    order_book_clear(&b, NULL);
}

/* The model: the best resting order a tick crosses, by brute force. */
static struct o *model_best(struct o *v, int n, double price) {
    struct o *best = NULL;
    for (int pass = 0; pass < 2 && !best; pass++) /* buys, then sells */
        for (int i = 0; i < n; i++) {
            struct o *x = &v[i];
            if (!x->resting || x->sell != (pass == 1))
                continue;
            if (x->sell ? x->limit > price : x->limit < price)
                continue;
            bool better = !best || (x->sell ? x->limit < best->limit : x->limit > best->limit) ||
                          (x->limit == best->limit && x->arrival < best->arrival);
            if (better)
                best = x;
        }
    return best;
}

static void test_random_against_model(void **state) {
    (void)state;
    enum { N = 3000 };
    static struct o v[N];
    struct order_book b = {0};
    srand(1234);
    int added = 0, resting = 0;
    uint64_t arrival = 0;
    for (int step = 0; step < 9000; step++) {
        if (added < N && rand() % 3 != 0) {
            /* few distinct limits, so ties are common */
            v[added] = (struct o){added, rand() % 2 == 0, 90 + rand() % 21, arrival++, false};
            add(&b, &v[added]);
            added++;
            resting++;
        } else {
            double price = 90 + rand() % 21 + (rand() % 3 - 1) * 0.5;
            for (;;) {
                struct o *want = model_best(v, added, price);
                struct o *got = order_book_take(&b, price);
                if (want != got)
                    fail_msg("step %d, tick %g: the book gave order %d, the model %d", step, price,
                             got ? got->id : -1, want ? want->id : -1);
                if (!got)
                    break;
                got->resting = false;
                resting--;
            }
        }
        assert_int_equal(order_book_size(&b), (uint32_t)resting);
    }
    order_book_clear(&b, NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_book),
        cmocka_unit_test(test_buys_best_limit_then_oldest),
        cmocka_unit_test(test_sells_lowest_limit_first),
        cmocka_unit_test(test_both_sides_buys_first),
        cmocka_unit_test(test_clear_hands_back_every_item),
        cmocka_unit_test(test_random_against_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
