/* test_guard.c - unit tests for per-IP admission (src/auth/guard.c) keyed by
 * client identity: with limits.ipv6_prefix_len (64 by default) every address
 * of one IPv6 /64 shares one connection count, one violation history and
 * one block; IPv4 addresses stay apart; /128 restores per-address rules.
 * And the admin blocks listed for security.blocks_file (guard_saved_blocks):
 * only saved ones, until unblocked or expired. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "auth/guard.h"
#include "base/config.h"

static struct config cfg;

static struct ip16 ip(const char *s) {
    struct ip16 a;
    if (!ip16_parse(s, strlen(s), &a))
        fail_msg("'%s' does not parse", s);
    return a;
}

/* A guard with per-IP limit per_ip, critical threshold 3 and the given
 * IPv6 prefix and blocked_ips. */
static int start(struct guard *g, int per_ip, int prefix, const char *blocked) {
    memset(&cfg, 0, sizeof(cfg));
    cfg.limits.max_connections_per_ip = per_ip;
    cfg.limits.max_connections_per_user = 5;
    cfg.limits.ipv6_prefix_len = prefix;
    cfg.security.critical_violations = 3;
    cfg.security.critical_window_s = 600;
    cfg.security.auto_block_s = 300;
    cfg.security.blocked_ips = (char *)blocked;
    return guard_init(g, &cfg, stderr);
}

static enum guard_verdict admit(struct guard *g, const char *addr) {
    struct ip16 a = ip(addr);
    const char *which = NULL;
    return guard_admit(g, &a, NULL, &which);
}

static bool blocked(struct guard *g, const char *addr) {
    struct ip16 a = ip(addr);
    return guard_is_blocked(g, &a);
}

static void test_ipv6_slash64_is_one_client(void **state) {
    (void)state;
    struct guard g;
    assert_int_equal(start(&g, 2, 64, ""), 0);
    assert_int_equal(admit(&g, "2001:db8::1"), GUARD_OK);
    assert_int_equal(admit(&g, "2001:db8::2"), GUARD_OK);
    /* a third address of the same /64: the per-IP limit of 2 is reached */
    assert_int_equal(admit(&g, "2001:db8::ffff:1:2:3"), GUARD_LIMIT);
    /* another /64 is another client */
    assert_int_equal(admit(&g, "2001:db8:0:1::1"), GUARD_OK);
    /* releasing through another address of the /64 frees the shared count */
    struct ip16 a = ip("2001:db8::7");
    guard_release(&g, &a, NULL);
    assert_int_equal(admit(&g, "2001:db8::3"), GUARD_OK);
    guard_free(&g);
}

static void test_ipv4_addresses_stay_apart(void **state) {
    (void)state;
    struct guard g;
    assert_int_equal(start(&g, 1, 64, ""), 0);
    assert_int_equal(admit(&g, "127.0.0.1"), GUARD_OK);
    assert_int_equal(admit(&g, "127.0.0.2"), GUARD_OK); /* ::ffff:127.0.0.2 is in ::/64, yet apart */
    assert_int_equal(admit(&g, "127.0.0.1"), GUARD_LIMIT);
    assert_int_equal(admit(&g, "::1"), GUARD_OK);
    guard_free(&g);
}

static void test_prefix_128_is_per_address(void **state) {
    (void)state;
    struct guard g;
    assert_int_equal(start(&g, 1, 128, ""), 0);
    assert_int_equal(admit(&g, "2001:db8::1"), GUARD_OK);
    assert_int_equal(admit(&g, "2001:db8::2"), GUARD_OK);
    struct ip16 a = ip("2001:db8::1");
    guard_block(&g, &a, 0);
    assert_true(blocked(&g, "2001:db8::1"));
    assert_false(blocked(&g, "2001:db8::2"));
    guard_free(&g);
}

static void test_blocks_cover_the_prefix(void **state) {
    (void)state;
    struct guard g;
    assert_int_equal(start(&g, 10, 64, "2001:db8:0:5::9, 192.0.2.1"), 0);
    assert_true(blocked(&g, "2001:db8:0:5::1"));
    assert_true(blocked(&g, "2001:db8:0:5:ffff::"));
    assert_false(blocked(&g, "2001:db8:0:6::1"));
    assert_true(blocked(&g, "192.0.2.1"));
    assert_false(blocked(&g, "192.0.2.2"));
    assert_int_equal(admit(&g, "2001:db8:0:5::77"), GUARD_BLOCKED);
    /* an admin block of one address, an unblock through another */
    struct ip16 a = ip("2001:db8:7::1"), b = ip("2001:db8:7::2");
    guard_block(&g, &a, 60);
    assert_true(blocked(&g, "2001:db8:7::abcd"));
    assert_true(guard_unblock(&g, &b));
    assert_false(blocked(&g, "2001:db8:7::1"));
    assert_int_equal(atomic_load(&g.blocked), 2);
    guard_free(&g);
    /* a prefix of exactly the identity length is accepted; others are not */
    assert_int_equal(start(&g, 10, 64, "2001:db8:0:5::/64"), 0);
    assert_true(blocked(&g, "2001:db8:0:5::1"));
    guard_free(&g);
    assert_int_equal(start(&g, 10, 64, "2001:db8::/48"), -1);
    assert_int_equal(start(&g, 10, 64, "192.0.2.0/24"), -1);
}

static void test_violations_count_per_prefix(void **state) {
    (void)state;
    struct guard g;
    assert_int_equal(start(&g, 10, 64, ""), 0);
    int64_t now = (int64_t)time(NULL);
    struct ip16 a = ip("2001:db8::1"), b = ip("2001:db8::2"), c = ip("2001:db8::3");
    assert_false(guard_violation(&g, &a, now));
    assert_false(guard_violation(&g, &b, now));
    assert_true(guard_violation(&g, &c, now)); /* the third from the /64: critical */
    assert_true(blocked(&g, "2001:db8::4"));
    guard_free(&g);
}

static void test_saved_blocks_listed(void **state) {
    (void)state;
    struct guard g;
    assert_int_equal(start(&g, 10, 64, "192.0.2.9"), 0);
    assert_int_equal(guard_saved_blocks(&g, NULL, 0), 0); /* configured: not saved */
    struct ip16 a = ip("192.0.2.1"), b = ip("2001:db8::1"), c = ip("192.0.2.3");
    guard_block_saved(&g, &a, 0);
    guard_block_saved(&g, &b, 60);
    guard_block(&g, &c, 60); /* automatic or from another node: not saved */
    assert_true(atomic_load(&g.saved_dirty));
    struct guard_saved v[4];
    assert_int_equal(guard_saved_blocks(&g, v, 4), 2);
    assert_false(atomic_load(&g.saved_dirty));
    int64_t now = (int64_t)time(NULL);
    for (int i = 0; i < 2; i++) {
        if (!memcmp(v[i].ip.b, a.b, 16)) {
            assert_true(v[i].until == 0);
        } else {
            struct ip16 k = guard_key(&g, &b);
            assert_memory_equal(v[i].ip.b, k.b, 16); /* the prefix */
            assert_true(v[i].until >= now + 59 && v[i].until <= now + 61);
        }
    }
    assert_int_equal(guard_saved_blocks(&g, v, 1), 2); /* counted beyond max */
    /* an unblock (through any address of the prefix) drops it */
    struct ip16 b2 = ip("2001:db8::2");
    assert_true(guard_unblock(&g, &b2));
    assert_true(atomic_load(&g.saved_dirty));
    assert_int_equal(guard_saved_blocks(&g, v, 4), 1);
    /* expiry drops it at the sweep */
    guard_block_saved(&g, &c, 5);
    assert_int_equal(guard_saved_blocks(&g, v, 4), 2);
    guard_sweep(&g, now + 10);
    assert_true(atomic_load(&g.saved_dirty));
    assert_int_equal(guard_saved_blocks(&g, v, 4), 1);
    guard_free(&g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ipv6_slash64_is_one_client),
        cmocka_unit_test(test_ipv4_addresses_stay_apart),
        cmocka_unit_test(test_prefix_128_is_per_address),
        cmocka_unit_test(test_blocks_cover_the_prefix),
        cmocka_unit_test(test_violations_count_per_prefix),
        cmocka_unit_test(test_saved_blocks_listed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
