/* test_entitle.c - unit tests for symbol entitlement patterns
 * (src/auth/entitle.c, PROTOCOL.md section 14): pattern syntax, exact and
 * prefix matching, "*", the empty set, interning (same patterns share one
 * set whatever their order or repetition) and release of the last
 * reference. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "auth/entitle.h"

static struct entitle_set *from(const char *list) {
    const char *why = NULL;
    struct entitle_set *s = entitle_get_list(list, &why);
    assert_non_null(s);
    return s;
}

static bool m(const struct entitle_set *s, const char *name) { return entitle_match(s, name, strlen(name)); }

static void test_pattern_syntax(void **state) {
    (void)state;
    const char *ok[] = {"AAPL", "*", "NASDAQ:*", "BRK.B", "A", "X*", "EUR/USD", "0123456789ABCDEF0123456789ABCDEF"};
    const char *bad[] = {"", "aapl", "A*B", "*A", "**", ".A", "A B", "0123456789ABCDEF0123456789ABCDEFG", "A**"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        assert_true(entitle_pattern_valid(ok[i], strlen(ok[i])));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(entitle_pattern_valid(bad[i], strlen(bad[i])));
}

static void test_exact_and_prefix(void **state) {
    (void)state;
    struct entitle_set *s = from("MSFT, AAPL, NASDAQ:*, BRK*");
    assert_true(m(s, "AAPL"));
    assert_true(m(s, "MSFT"));
    assert_false(m(s, "AAP"));
    assert_false(m(s, "AAPLX"));
    assert_true(m(s, "NASDAQ:TSLA"));
    assert_true(m(s, "NASDAQ:"));
    assert_false(m(s, "NYSE:IBM"));
    assert_true(m(s, "BRK.B"));
    assert_true(m(s, "BRK"));
    assert_false(m(s, "BR"));
    entitle_put(s);
}

static void test_star_and_empty(void **state) {
    (void)state;
    struct entitle_set *all = from("AAPL,*"), *none = from("");
    assert_true(m(all, "ANYTHING"));
    assert_false(m(none, "AAPL"));
    entitle_put(all);
    entitle_put(none);
}

static void test_interned_and_freed(void **state) {
    (void)state;
    size_t before = entitle_sets_alive();
    struct entitle_set *a = from("AAPL,MS*,AAPL"), *b = from("MS*, AAPL");
    assert_ptr_equal(a, b);
    assert_int_equal(entitle_sets_alive(), before + 1);
    struct entitle_set *c = from("AAPL");
    assert_ptr_not_equal(a, c);
    entitle_put(a);
    entitle_put(c);
    assert_int_equal(entitle_sets_alive(), before + 1);
    entitle_put(b);
    assert_int_equal(entitle_sets_alive(), before);
}

static void test_json_lists(void **state) {
    (void)state;
    const char *why = NULL;
    json_t *ok = json_loads("[\"AAPL\", \"X*\"]", 0, NULL), *bad1 = json_loads("[\"AAPL\", 1]", 0, NULL),
           *bad2 = json_loads("\"AAPL\"", JSON_DECODE_ANY, NULL), *bad3 = json_loads("[\"aapl\"]", 0, NULL);
    struct entitle_set *s = entitle_get_json(ok, &why);
    assert_non_null(s);
    assert_true(m(s, "XYZ"));
    entitle_put(s);
    assert_null(entitle_get_json(bad1, &why));
    assert_string_equal(why, "not an array of strings");
    assert_null(entitle_get_json(bad2, &why));
    assert_null(entitle_get_json(bad3, &why));
    assert_string_equal(why, "invalid pattern");
    json_t *many = json_array();
    for (int i = 0; i <= ENTITLE_PATTERNS_MAX; i++)
        json_array_append_new(many, json_string("A"));
    assert_null(entitle_get_json(many, &why));
    assert_string_equal(why, "too many patterns");
    json_decref(ok);
    json_decref(bad1);
    json_decref(bad2);
    json_decref(bad3);
    json_decref(many);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pattern_syntax),   cmocka_unit_test(test_exact_and_prefix),
        cmocka_unit_test(test_star_and_empty),   cmocka_unit_test(test_interned_and_freed),
        cmocka_unit_test(test_json_lists),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
