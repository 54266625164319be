/* test_control.c - unit tests for the control channel's format
 * (src/cluster/control.c): every message built is parsed back to what was
 * said, and malformed text (from Redis: any other client may publish) is
 * refused, never read past its end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cluster/control.h"

static struct ip16 ip(const char *s) {
    struct ip16 v;
    assert_true(ip16_parse(s, strlen(s), &v));
    return v;
}

static void round_trips(void **state) {
    struct control_msg m;
    struct ip16 a = ip("192.0.2.7"), b = ip("2001:db8::1");
    char *s = control_block("node-1", &a, 300);
    assert_int_equal(control_parse(s, strlen(s), &m), 0);
    assert_int_equal(m.kind, 'B');
    assert_string_equal(m.node, "node-1");
    assert_memory_equal(m.ip.b, a.b, 16);
    assert_int_equal(m.duration_s, 300);
    free(s);

    s = control_unblock("node-2", &b);
    assert_int_equal(control_parse(s, strlen(s), &m), 0);
    assert_int_equal(m.kind, 'U');
    assert_memory_equal(m.ip.b, b.b, 16);
    free(s);

    s = control_broadcast("n", 5, "{\"type\":\"broadcast\",\"m\":\"a|b\"}");
    assert_int_equal(control_parse(s, strlen(s), &m), 0);
    assert_int_equal(m.kind, 'M');
    assert_int_equal(m.roles, 5);
    assert_int_equal(m.json_len, strlen("{\"type\":\"broadcast\",\"m\":\"a|b\"}"));
    assert_memory_equal(m.json, "{\"type\":\"broadcast\"", 19);
    free(s);

    s = control_user_event("n", "alice", true, "{\"x\":\"|\"}");
    assert_int_equal(control_parse(s, strlen(s), &m), 0);
    assert_int_equal(m.kind, 'E');
    assert_true(m.portfolio_only);
    assert_string_equal(m.user, "alice");
    assert_int_equal(m.json_len, 9);
    free(s);

    assert_null(control_user_event("n", "a|b", false, "{}")); /* unsayable */
}

static void malformed_refused(void **state) {
    static const char *bad[] = {"", "B", "B|", "X|n|1.2.3.4|0", "B|n", "B|n|not-an-ip|5", "U|n|", "M|n",
                                "E|n|1", "E|n|12|u|{}", "E|n|1|u", "Bn|1.2.3.4|0",
                                "B|nodenodenodenodenodenodenodenodenodenode-longer-than-forty|1.2.3.4|0"};
    struct control_msg m;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t len = strlen(bad[i]);
        char *copy = malloc(len ? len : 1); /* exactly len bytes: ASan sees any over-read */
        memcpy(copy, bad[i], len);
        assert_int_equal(control_parse(copy, len, &m), -1);
        free(copy);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trips),
        cmocka_unit_test(malformed_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
