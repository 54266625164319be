/* test_clientip.c - unit tests for client address identity
 * (src/net/clientip.c): ip16_client_key, the key every per-IP rule uses. An
 * IPv6 address counts as its prefix, so one subscriber's /64 is one client;
 * IPv4 addresses (kept as ::ffff:a.b.c.d, which lies inside ::/64) are
 * never aggregated. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "net/clientip.h"

static struct ip16 ip(const char *s) {
    struct ip16 a;
    if (!ip16_parse(s, strlen(s), &a))
        fail_msg("'%s' does not parse", s);
    return a;
}

/* The key of addr at prefix, formatted. */
static const char *key(const char *addr, int prefix) {
    static char out[64];
    struct ip16 a = ip(addr), k = ip16_client_key(&a, prefix);
    ip16_format(&k, out, sizeof(out));
    return out;
}

static bool same(const char *a, const char *b, int prefix) {
    struct ip16 x = ip(a), y = ip(b);
    struct ip16 kx = ip16_client_key(&x, prefix), ky = ip16_client_key(&y, prefix);
    return memcmp(kx.b, ky.b, 16) == 0;
}

static void test_ipv6_aggregates_to_prefix(void **state) {
    (void)state;
    assert_string_equal(key("2001:db8:1:2:3:4:5:6", 64), "2001:db8:1:2::");
    assert_string_equal(key("2001:db8:1:2:3:4:5:6", 48), "2001:db8:1::");
    assert_string_equal(key("2001:db8:1:2:3:4:5:6", 56), "2001:db8:1::");
    assert_string_equal(key("2001:db8:1:2ff:3:4:5:6", 56), "2001:db8:1:200::");
    assert_string_equal(key("2001:db8:1:2ff:3:4:5:6", 60), "2001:db8:1:2f0::");
    assert_string_equal(key("2001:db8:1:2:3:4:5:6", 128), "2001:db8:1:2:3:4:5:6");
    assert_string_equal(key("::1", 64), "::");
    assert_true(same("::1", "::2", 64));
    assert_true(same("2001:db8::1", "2001:db8::ffff:ffff:ffff:ffff", 64));
    assert_false(same("2001:db8::1", "2001:db8:0:1::1", 64));
    assert_true(same("2001:db8::1", "2001:db8:0:1::1", 48));
    assert_false(same("::1", "::2", 128));
    /* bits past the prefix inside one byte are cleared, those before kept */
    assert_true(same("2001:db8:0:1::", "2001:db8:0:7::", 61));
    assert_false(same("2001:db8:0:1::", "2001:db8:0:9::", 61));
}

static void test_ipv4_never_aggregated(void **state) {
    (void)state;
    /* ::ffff:a.b.c.d is inside ::/64: it must not collapse */
    assert_string_equal(key("127.0.0.1", 64), "127.0.0.1");
    assert_string_equal(key("203.0.113.7", 32), "203.0.113.7");
    assert_false(same("127.0.0.1", "127.0.0.2", 64));
    assert_false(same("10.0.0.1", "10.0.0.2", 32));
    /* nor does an IPv4 client share a key with an IPv6 one */
    assert_false(same("127.0.0.1", "::1", 64));
    assert_false(same("0.0.0.0", "::", 64));
    assert_true(ip16_is_v4(&(struct ip16){{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4}}));
    struct ip16 v6 = ip("::1");
    assert_false(ip16_is_v4(&v6));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ipv6_aggregates_to_prefix),
        cmocka_unit_test(test_ipv4_never_aggregated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
