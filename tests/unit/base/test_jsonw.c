/* test_jsonw.c - unit tests for the JSON text writer (src/base/jsonw.c):
 * strings come out exactly as jansson's JSON_COMPACT prints them (escapes
 * of quotes, backslashes and every control character, UTF-8 untouched),
 * integers over the whole int64 range, and a full buffer is reported, never
 * overrun. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "base/jsonw.h"

/* jw_str's output for s must equal jansson's dump of the same string. */
static void same_as_jansson(const char *s) {
    char buf[512];
    struct jw w;
    jw_init(&w, buf, sizeof(buf));
    jw_str(&w, s);
    assert_false(w.full);
    assert_true(w.n <= jw_str_max(s));
    json_t *j = json_string(s);
    assert_non_null(j);
    char *want = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(j);
    assert_int_equal(w.n, strlen(want));
    assert_memory_equal(buf, want, w.n);
    free(want);
}

static void test_strings_match_jansson(void **state) {
    (void)state;
    same_as_jansson("");
    same_as_jansson("plain");
    same_as_jansson("quote \" and backslash \\ and slash /");
    same_as_jansson("tab\tnewline\ncr\rbs\bff\f");
    same_as_jansson("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\x88"); /* é € 📈 */
    same_as_jansson("\x7f del stays");
    char all[40];
    for (int i = 1; i < 32; i++)
        all[i - 1] = (char)i;
    all[31] = '\0';
    same_as_jansson(all);
}

static void test_null_and_max(void **state) {
    (void)state;
    char buf[16];
    struct jw w;
    jw_init(&w, buf, sizeof(buf));
    jw_str(&w, NULL);
    assert_int_equal(w.n, 4);
    assert_memory_equal(buf, "null", 4);
    assert_int_equal(jw_str_max(NULL), 4);
    /* the bound holds for the worst case: every byte escaped as \u00XX */
    char worst[9] = "\x01\x02\x03\x04\x05\x06\x07\x0e";
    char out[64];
    jw_init(&w, out, jw_str_max(worst));
    jw_str(&w, worst);
    assert_false(w.full);
    assert_int_equal(w.n, jw_str_max(worst));
}

static void test_integers(void **state) {
    (void)state;
    const int64_t v[] = {0, 1, -1, 9, 10, 42, -42, 1000000007, INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        char buf[32], want[32];
        struct jw w;
        jw_init(&w, buf, sizeof(buf));
        jw_i64(&w, v[i]);
        snprintf(want, sizeof(want), "%lld", (long long)v[i]);
        assert_int_equal(w.n, strlen(want));
        assert_memory_equal(buf, want, w.n);
    }
}

static void test_full_buffer_stops(void **state) {
    (void)state;
    char buf[8] = "zzzzzzz";
    struct jw w;
    jw_init(&w, buf, 4);
    jw_lit(&w, "{\"a\":1}");
    assert_true(w.full);
    assert_int_equal(w.n, 0);
    jw_str(&w, "x"); /* nothing more once full */
    assert_int_equal(w.n, 0);
    assert_memory_equal(buf, "zzzzzzz", 8);
    jw_init(&w, buf, 5);
    jw_str(&w, "abcd"); /* needs 6 */
    assert_true(w.full);
    assert_true(w.n <= 5);
}

static void test_object(void **state) {
    (void)state;
    char buf[128];
    struct jw w;
    jw_init(&w, buf, sizeof(buf));
    jw_lit(&w, "{\"user\":");
    jw_str(&w, "a\"b");
    jw_lit(&w, ",\"n\":");
    jw_i64(&w, -7);
    jw_lit(&w, "}");
    json_error_t err;
    json_t *o = json_loadb(buf, w.n, 0, &err);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "user")), "a\"b");
    assert_int_equal(json_integer_value(json_object_get(o, "n")), -7);
    json_decref(o);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strings_match_jansson), cmocka_unit_test(test_null_and_max),
        cmocka_unit_test(test_integers),             cmocka_unit_test(test_full_buffer_stops),
        cmocka_unit_test(test_object),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
