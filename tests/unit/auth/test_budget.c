/* test_budget.c - unit tests for per-identity rate budgets
 * (src/auth/budget.c): the token bucket (burst, continuous refill), one
 * bucket per identity shared by its holders and kept across a release and
 * a new get (a reconnect does not refill it), kinds kept apart, unused
 * buckets forgotten once full again, the bound on unused buckets and its
 * policy (the one unused the longest goes first), and the lock-free take
 * from many threads giving out exactly the burst.
 *
 * The .c is included to reach the bucket's fields. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../../src/auth/budget.c"

#define SEC 1000000000ULL
#define T0 (1000 * SEC) /* monotonic time of the tests' start */

static struct budget *user(struct budgets *b, const char *id) {
    struct budget *x = budget_get(b, BUDGET_MSG_USER, id, strlen(id));
    assert_non_null(x);
    return x;
}

static int take_all(struct budgets *b, struct budget *x, uint64_t now) {
    int n = 0;
    while (budget_take(b, x, now, NULL))
        n++;
    return n;
}

static void test_burst_then_refill(void **state) {
    (void)state;
    struct budgets b;
    budgets_init(&b, 60, 600);
    struct budget *x = user(&b, "alice");
    assert_int_equal(take_all(&b, x, T0), 60); /* burst = per-minute figure */
    uint64_t wait = 0;
    assert_false(budget_take(&b, x, T0, &wait));
    assert_true(wait > 0 && wait <= SEC);
    assert_false(budget_take(&b, x, T0 + SEC - 1, NULL));
    assert_true(budget_take(&b, x, T0 + SEC, NULL)); /* one a second */
    assert_false(budget_take(&b, x, T0 + SEC, NULL));
    assert_int_equal(take_all(&b, x, T0 + 11 * SEC), 10);
    /* a long pause refills to the burst, never beyond */
    assert_int_equal(take_all(&b, x, T0 + 3600 * SEC), 60);
    /* time going back a little (another worker's older loop time) is fine */
    assert_false(budget_take(&b, x, T0 + 3599 * SEC, NULL));
    assert_int_equal(atomic_load(&b.refused[BUDGET_MSG_USER]), 7); /* each take_all ends with one */
    budget_put(&b, x, T0 + 3600 * SEC);
    budgets_free(&b);
}

static void test_reconnect_keeps_the_debt(void **state) {
    (void)state;
    struct budgets b;
    budgets_init(&b, 5, 600);
    struct budget *x = user(&b, "bob");
    assert_int_equal(take_all(&b, x, T0), 5);
    budget_put(&b, x, T0); /* the last connection closes */
    assert_int_equal(b.nidle, 1);
    budget_sweep(&b, T0 + SEC); /* not full yet: kept */
    struct budget *y = user(&b, "bob"); /* reconnect */
    assert_ptr_equal(x, y);
    assert_int_equal(b.nidle, 0);
    assert_false(budget_take(&b, y, T0 + SEC, NULL));
    assert_true(budget_take(&b, y, T0 + 12 * SEC, NULL)); /* 5 a minute: one per 12 s */
    /* two holders share one bucket */
    struct budget *z = user(&b, "bob");
    assert_ptr_equal(y, z);
    assert_false(budget_take(&b, z, T0 + 12 * SEC, NULL));
    budget_put(&b, y, T0 + 12 * SEC);
    assert_int_equal(b.nidle, 0); /* z still holds it */
    assert_false(budget_take(&b, z, T0 + 12 * SEC, NULL));
    budget_put(&b, z, T0 + 12 * SEC);
    assert_int_equal(b.nidle, 1);
    /* unused and full again after at most a minute: forgotten, and a new
     * one is full */
    budget_sweep(&b, T0 + 73 * SEC);
    assert_int_equal(b.nidle, 0);
    assert_int_equal(atomic_load(&b.count), 0);
    x = user(&b, "bob");
    assert_int_equal(take_all(&b, x, T0 + 73 * SEC), 5);
    budget_put(&b, x, T0 + 73 * SEC);
    budgets_free(&b);
}

static void test_full_bucket_is_not_kept(void **state) {
    (void)state;
    struct budgets b;
    budgets_init(&b, 60, 600);
    struct budget *x = user(&b, "quiet");
    budget_put(&b, x, T0); /* took nothing: nothing to remember */
    assert_int_equal(b.nidle, 0);
    assert_int_equal(atomic_load(&b.count), 0);
    budgets_free(&b);
}

static void test_kinds_and_keys_apart(void **state) {
    (void)state;
    struct budgets b;
    budgets_init(&b, 2, 3);
    struct ip16 ip;
    assert_true(ip16_parse("192.0.2.1", 9, &ip));
    struct budget *u = budget_for_client(&b, "192.0.2.1", &ip);
    struct budget *a = budget_for_client(&b, NULL, &ip);
    assert_ptr_not_equal(u, a);
    assert_int_equal(take_all(&b, u, T0), 2);
    assert_int_equal(take_all(&b, a, T0), 2);
    for (int i = 0; i < 3; i++)
        assert_true(budget_take_key(&b, BUDGET_CONNECT_IP, ip.b, 16, T0, NULL));
    uint64_t wait = 0;
    assert_false(budget_take_key(&b, BUDGET_CONNECT_IP, ip.b, 16, T0, &wait));
    assert_true(wait > 0 && wait <= 20 * SEC);
    assert_true(budget_take_key(&b, BUDGET_CONNECT_IP, ip.b, 16, T0 + 20 * SEC, NULL));
    /* a user id that is a prefix of another is another identity */
    struct budget *p = user(&b, "ab"), *q = user(&b, "abc");
    assert_ptr_not_equal(p, q);
    assert_null(budget_get(&b, BUDGET_MSG_USER, "x", BUDGET_KEY_MAX + 1));
    budget_put(&b, u, T0);
    budget_put(&b, a, T0);
    budget_put(&b, p, T0);
    budget_put(&b, q, T0);
    budgets_free(&b);
}

static void test_unused_buckets_bounded(void **state) {
    (void)state;
    struct budgets b;
    budgets_init(&b, 10, 600);
    char id[32];
    /* BUDGET_IDLE_MAX + 10 identities each leave a debt behind */
    for (int i = 0; i < BUDGET_IDLE_MAX + 10; i++) {
        snprintf(id, sizeof(id), "u%d", i);
        struct budget *x = user(&b, id);
        assert_true(budget_take(&b, x, T0, NULL));
        budget_put(&b, x, T0 + (uint64_t)i);
    }
    assert_int_equal(b.nidle, BUDGET_IDLE_MAX);
    assert_int_equal(atomic_load(&b.evicted), 10);
    /* the ten released first were forgotten: they come back full */
    struct budget *x = user(&b, "u0");
    assert_int_equal(take_all(&b, x, T0), 10);
    budget_put(&b, x, T0);
    /* a later one kept its debt */
    snprintf(id, sizeof(id), "u%d", BUDGET_IDLE_MAX);
    x = user(&b, id);
    assert_int_equal(take_all(&b, x, T0), 9);
    budget_put(&b, x, T0);
    /* all full again a minute later: the sweep empties the table */
    budget_sweep(&b, T0 + 61 * SEC + BUDGET_IDLE_MAX);
    assert_int_equal(b.nidle, 0);
    assert_int_equal(atomic_load(&b.count), 0);
    budgets_free(&b);
}

struct racer {
    struct budgets *b;
    struct budget *x;
    int got;
};

static void race(void *arg) {
    struct racer *r = arg;
    for (int i = 0; i < 20000; i++)
        if (budget_take(r->b, r->x, T0, NULL))
            r->got++;
}

static void test_threads_share_exactly_the_burst(void **state) {
    (void)state;
    struct budgets b;
    budgets_init(&b, 10000, 600);
    struct budget *x = user(&b, "many");
    struct racer r[4];
    uv_thread_t t[4];
    for (int i = 0; i < 4; i++) {
        r[i] = (struct racer){&b, x, 0};
        assert_int_equal(uv_thread_create(&t[i], race, &r[i]), 0);
    }
    int total = 0;
    for (int i = 0; i < 4; i++) {
        uv_thread_join(&t[i]);
        total += r[i].got;
    }
    assert_int_equal(total, 10000);
    budget_put(&b, x, T0);
    budgets_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_refill),
        cmocka_unit_test(test_reconnect_keeps_the_debt),
        cmocka_unit_test(test_full_bucket_is_not_kept),
        cmocka_unit_test(test_kinds_and_keys_apart),
        cmocka_unit_test(test_unused_buckets_bounded),
        cmocka_unit_test(test_threads_share_exactly_the_burst),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
