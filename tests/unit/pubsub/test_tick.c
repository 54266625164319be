/* test_tick.c - unit tests for price_update formatting (src/pubsub/tick.c):
 * fmt_double (shortest decimal form, rounding, no "-0", large values) and
 * tick_format (valid JSON with exactly the protocol's fields and values,
 * checked with jansson). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <math.h>

#include "pubsub/symbols.h"
#include "pubsub/tick.h"

/* ---- helpers ------------------------------------------------------------ */

/* fmt_double into a NUL-filled buffer; checks the returned length is what
 * was written and nothing beyond it, and returns the text. */
static const char *fmt(double v, int decimals) {
    static char buf[512];
    memset(buf, 0, sizeof(buf));
    size_t n = fmt_double(buf, v, decimals);
    if (n >= 64 || strlen(buf) != n)
        fail_msg("fmt_double(%.17g, %d) returned %zu but wrote %zu bytes (\"%s\")", v, decimals, n, strlen(buf),
                 buf);
    return buf;
}

#define expect_fmt(v, d, want)                                                                                     \
    do {                                                                                                           \
        const char *got_ = fmt((v), (d));                                                                          \
        if (strcmp(got_, (want)) != 0)                                                                             \
            fail_msg("fmt_double(%.17g, %d) = \"%s\", expected \"%s\"", (double)(v), (d), got_, (want));           \
    } while (0)

/* The text is a JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)? */
static bool json_number_syntax(const char *s) {
    if (*s == '-')
        s++;
    if (*s == '0')
        s++;
    else if (*s >= '1' && *s <= '9')
        while (*s >= '0' && *s <= '9')
            s++;
    else
        return false;
    if (*s == '.') {
        s++;
        if (!(*s >= '0' && *s <= '9'))
            return false;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    if (*s == 'e' || *s == 'E') { /* JSON allows an exponent */
        s++;
        if (*s == '+' || *s == '-')
            s++;
        if (!(*s >= '0' && *s <= '9'))
            return false;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    return *s == '\0';
}

/* ---- fmt_double --------------------------------------------------------- */

static void test_fmt_double_examples(void **state) {
    (void)state;
    expect_fmt(189.23, 6, "189.23");
    expect_fmt(189.25, 6, "189.25");
    expect_fmt(0.0, 6, "0");
    expect_fmt(-0.0, 6, "0");
    expect_fmt(-1.5, 6, "-1.5");
    expect_fmt(1.5, 6, "1.5");
    expect_fmt(1e-7, 6, "0");
    expect_fmt(-0.0000001, 6, "0"); /* rounds to zero: no "-0" */
    expect_fmt(-0.0000004, 6, "0");
    expect_fmt(-0.0000006, 6, "-0.000001");
    expect_fmt(123456789.123456, 6, "123456789.123456");
    expect_fmt(0.000001, 6, "0.000001"); /* leading zeros of the fraction kept */
    expect_fmt(0.00001, 6, "0.00001");
    expect_fmt(1.000001, 6, "1.000001");
    expect_fmt(100.0, 6, "100");
    expect_fmt(100.1, 6, "100.1");
    expect_fmt(-100.0, 6, "-100");
    expect_fmt(10.0, 0, "10");
    expect_fmt(0.9999999, 6, "1"); /* carries into the integer part */
    expect_fmt(-0.9999999, 6, "-1");
    expect_fmt(9.9999999, 6, "10");
    expect_fmt(1.0842, 6, "1.0842");
    expect_fmt(67250.0, 6, "67250");
    expect_fmt(1234.5678, 4, "1234.5678");
    expect_fmt(1234.56789, 4, "1234.5679");
    expect_fmt(0.6649, 4, "0.6649");
    expect_fmt(-12.00004, 4, "-12");
    expect_fmt(-12.00006, 4, "-12.0001");
    expect_fmt(999999999999.9999999, 6, "1000000000000");
    expect_fmt(1e12, 6, "1000000000000");
    expect_fmt(1.5, 0, "2");
    /* not finite: 0 */
    expect_fmt(NAN, 6, "0");
    expect_fmt(INFINITY, 6, "0");
    expect_fmt(-INFINITY, 6, "0");
}

/* Large values take the printf path; they must be complete and parse back. */
static void test_fmt_double_large(void **state) {
    (void)state;
    static const double V[] = {1e17, -1e17, 9e12, 9.5e12, 1.8e13, 123456789012345.6, 1e18, 9.2e18, 1e19, 1e20};
    for (size_t i = 0; i < sizeof(V) / sizeof(V[0]); i++) {
        for (int d = 4; d <= 6; d += 2) {
            const char *s = fmt(V[i], d);
            if (!json_number_syntax(s))
                fail_msg("fmt_double(%.17g, %d) = \"%s\" is not a JSON number", V[i], d, s);
            char *end;
            double back = strtod(s, &end);
            assert_int_equal(*end, '\0');
            if (fabs(back - V[i]) > fabs(V[i]) * 1e-15 + 0.5 * pow(10, -d))
                fail_msg("fmt_double(%.17g, %d) = \"%s\" parses back as %.17g", V[i], d, s, back);
        }
    }
    const char *s = fmt(1e17, 6);
    assert_true(strtod(s, NULL) == 1e17);
    /* where v * 10^decimals exceeds 2^53 the digits are not exact, but the
     * text must still read back as the same double */
    static const struct {
        double v;
        int d;
    } RT[] = {
        {18446744073709.0, 4}, {12345678901.123, 6}, {999999999999.5, 6}, {987654321098.765432, 6},
        {1e12, 6},             {123456789.123456, 6}, {4503599627370.496, 4},
    };
    for (size_t i = 0; i < sizeof(RT) / sizeof(RT[0]); i++) {
        s = fmt(RT[i].v, RT[i].d);
        if (strtod(s, NULL) != RT[i].v)
            fail_msg("fmt_double(%.17g, %d) = \"%s\" reads back as %.17g", RT[i].v, RT[i].d, s, strtod(s, NULL));
    }
}

/* Values far beyond any price (a publisher may send any finite non-negative
 * bid, ask or volume) must still be written completely, and the returned
 * length must be the number of bytes written. */
static void test_fmt_double_huge(void **state) {
    (void)state;
    static const double V[] = {1e24, 1e25, 1e30, -1e30, 1.7976931348623157e308};
    int bad = 0;
    for (size_t i = 0; i < sizeof(V) / sizeof(V[0]); i++) {
        char buf[512];
        memset(buf, 0, sizeof(buf));
        size_t n = fmt_double(buf, V[i], 6);
        size_t w = strlen(buf);
        double back = strtod(buf, NULL);
        if (n != w || !json_number_syntax(buf) || fabs(back - V[i]) > fabs(V[i]) * 1e-15) {
            print_error("fmt_double(%.17g, 6) returned %zu, wrote %zu bytes \"%s\"\n", V[i], n, w, buf);
            bad++;
        }
    }
    if (bad)
        fail_msg("%d huge values were formatted wrongly", bad);
}

/* Random values in the fast range: the output is a canonical JSON number
 * (no trailing zeros in the fraction, no "-0") within half a unit of the
 * last decimal of v. */
static void test_fmt_double_random(void **state) {
    (void)state;
    uint64_t x = 0x9E3779B97F4A7C15u;
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int d = (int)(x % 7);                           /* 0..6 */
        double mag = pow(10, (double)((x >> 8) % 19) - 6); /* 1e-6 .. 1e12 */
        double v = (double)((x >> 16) & 0xFFFFFFFFu) / 4294967296.0 * mag;
        if (x & 1)
            v = -v;
        const char *s = fmt(v, d);
        if (!json_number_syntax(s))
            fail_msg("fmt_double(%.17g, %d) = \"%s\" is not a JSON number", v, d, s);
        if (strcmp(s, "-0") == 0)
            fail_msg("fmt_double(%.17g, %d) = \"-0\"", v, d);
        const char *dot = strchr(s, '.');
        if (dot) {
            if (s[strlen(s) - 1] == '0')
                fail_msg("fmt_double(%.17g, %d) = \"%s\" has a trailing zero", v, d, s);
            if ((int)strlen(dot + 1) > d)
                fail_msg("fmt_double(%.17g, %d) = \"%s\" has too many decimals", v, d, s);
        }
        double back = strtod(s, NULL);
        double tol = 0.5 * pow(10, -d) * (1 + 1e-9) + fabs(v) * 4e-16;
        if (fabs(back - v) > tol)
            fail_msg("fmt_double(%.17g, %d) = \"%s\" is off by %g", v, d, s, fabs(back - v));
    }
}

/* ---- tick_format -------------------------------------------------------- */

static json_t *format_and_parse(const char *symbol, const struct tick *t, bool snapshot, size_t *len) {
    char buf[4096];
    memset(buf, 'Z', sizeof(buf));
    size_t n = tick_format(buf, symbol, t, snapshot);
    *len = n;
    if (n > TICK_JSON_MAX)
        fail_msg("tick_format returned %zu > TICK_JSON_MAX (%d)", n, TICK_JSON_MAX);
    for (size_t i = n; i < sizeof(buf); i++)
        if (buf[i] != 'Z')
            fail_msg("tick_format wrote byte %zu beyond its length %zu", i, n);
    json_error_t err;
    json_t *o = json_loadb(buf, n, JSON_REJECT_DUPLICATES, &err);
    if (!o)
        fail_msg("not JSON (%s): %.*s", err.text, (int)n, buf);
    assert_true(json_is_object(o));
    return o;
}

static void expect_number(json_t *o, const char *key, double want) {
    json_t *v = json_object_get(o, key);
    if (!json_is_number(v))
        fail_msg("field %s missing or not a number", key);
    if (json_number_value(v) != want)
        fail_msg("field %s = %.17g, expected %.17g", key, json_number_value(v), want);
}

static void expect_integer(json_t *o, const char *key, json_int_t want) {
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v))
        fail_msg("field %s missing or not an integer", key);
    if (json_integer_value(v) != want)
        fail_msg("field %s = %lld, expected %lld", key, (long long)json_integer_value(v), (long long)want);
}

static const char *const FIELDS[] = {"type",   "symbol", "price",          "bid",       "ask",
                                     "volume", "change", "change_percent", "timestamp", "seq"};

static void expect_exact_fields(json_t *o, bool snapshot) {
    size_t nf = sizeof(FIELDS) / sizeof(FIELDS[0]);
    for (size_t i = 0; i < nf; i++)
        if (!json_object_get(o, FIELDS[i]))
            fail_msg("field %s missing", FIELDS[i]);
    if (snapshot)
        assert_true(json_is_true(json_object_get(o, "snapshot")));
    else
        assert_null(json_object_get(o, "snapshot"));
    assert_int_equal(json_object_size(o), nf + (snapshot ? 1 : 0));
}

static void test_tick_format_fields(void **state) {
    (void)state;
    struct tick t = {
        .price = 189.25,
        .bid = 189.2,
        .ask = 189.3,
        .volume = 1234.5678,
        .change = 1.25,
        .change_percent = 0.6649,
        .timestamp = 1700000000123,
        .seq = 42,
    };
    for (int snap = 0; snap <= 1; snap++) {
        size_t n;
        json_t *o = format_and_parse("AAPL", &t, snap != 0, &n);
        expect_exact_fields(o, snap != 0);
        assert_string_equal(json_string_value(json_object_get(o, "type")), "price_update");
        assert_string_equal(json_string_value(json_object_get(o, "symbol")), "AAPL");
        expect_number(o, "price", 189.25);
        expect_number(o, "bid", 189.2);
        expect_number(o, "ask", 189.3);
        expect_number(o, "volume", 1234.5678);
        expect_number(o, "change", 1.25);
        expect_number(o, "change_percent", 0.6649);
        expect_integer(o, "timestamp", 1700000000123LL);
        expect_integer(o, "seq", 42);
        json_decref(o);
    }
}

static void test_tick_format_exact_text(void **state) {
    (void)state;
    struct tick t = {.price = 1.0842, .bid = 1.0841, .ask = 1.0843, .volume = 0, .change = -0.0001,
                     .change_percent = -0.0092, .timestamp = 1, .seq = 7};
    char buf[TICK_JSON_MAX + 1];
    size_t n = tick_format(buf, "EUR/USD", &t, false);
    buf[n] = '\0';
    assert_string_equal(buf, "{\"type\":\"price_update\",\"symbol\":\"EUR/USD\",\"price\":1.0842,\"bid\":1.0841,"
                             "\"ask\":1.0843,\"volume\":0,\"change\":-0.0001,\"change_percent\":-0.0092,"
                             "\"timestamp\":1,\"seq\":7}");
    n = tick_format(buf, "EUR/USD", &t, true);
    buf[n] = '\0';
    assert_string_equal(buf, "{\"type\":\"price_update\",\"symbol\":\"EUR/USD\",\"price\":1.0842,\"bid\":1.0841,"
                             "\"ask\":1.0843,\"volume\":0,\"change\":-0.0001,\"change_percent\":-0.0092,"
                             "\"timestamp\":1,\"seq\":7,\"snapshot\":true}");
}

static void test_tick_format_rounding_and_edges(void **state) {
    (void)state;
    struct tick t = {
        .price = 100.0000004,     /* 6 decimals */
        .bid = 99.9999996,
        .ask = 0.0000001,
        .volume = 12.34567,       /* 4 decimals */
        .change = -0.0000001,     /* rounds to 0, not -0 */
        .change_percent = -0.00004,
        .timestamp = -5,          /* negative: 0 */
        .seq = (uint64_t)INT64_MAX,
    };
    size_t n;
    json_t *o = format_and_parse("BRK.B", &t, false, &n);
    expect_exact_fields(o, false);
    assert_string_equal(json_string_value(json_object_get(o, "symbol")), "BRK.B");
    expect_number(o, "price", 100);
    expect_number(o, "bid", 100);
    expect_number(o, "ask", 0);
    expect_number(o, "volume", 12.3457);
    expect_number(o, "change", 0);
    expect_number(o, "change_percent", 0);
    expect_integer(o, "timestamp", 0);
    expect_integer(o, "seq", INT64_MAX);
    json_decref(o);

    /* zero tick, seq 0 */
    struct tick z;
    memset(&z, 0, sizeof(z));
    o = format_and_parse("X", &z, true, &n);
    expect_exact_fields(o, true);
    expect_number(o, "price", 0);
    expect_integer(o, "timestamp", 0);
    expect_integer(o, "seq", 0);
    json_decref(o);

    /* non-finite values are written as 0, keeping the JSON valid */
    struct tick nf = {.price = NAN, .bid = INFINITY, .ask = -INFINITY, .volume = NAN, .change = NAN,
                      .change_percent = INFINITY, .timestamp = 1, .seq = 1};
    o = format_and_parse("X", &nf, false, &n);
    expect_number(o, "price", 0);
    expect_number(o, "bid", 0);
    expect_number(o, "change_percent", 0);
    json_decref(o);
}

/* The longest realistic tick: a 32-character symbol, prices at the 1e12 cap
 * the publish path enforces, negative changes with all decimals. */
static void test_tick_format_long(void **state) {
    (void)state;
    char sym[SYMBOL_MAX + 1];
    memset(sym, 'W', SYMBOL_MAX);
    sym[SYMBOL_MAX] = '\0';
    struct tick t = {
        .price = 999999999999.123456,
        .bid = 999999999999.123456,
        .ask = 999999999999.123456,
        .volume = 999999999999.1234,
        .change = -999999999999.123456,
        .change_percent = -99999999999999.1234,
        .timestamp = 99999999999999,
        .seq = UINT64_C(999999999999999999),
    };
    size_t n;
    json_t *o = format_and_parse(sym, &t, true, &n);
    expect_exact_fields(o, true);
    assert_string_equal(json_string_value(json_object_get(o, "symbol")), sym);
    json_decref(o);
}

/* bid, ask and volume are only required to be finite and non-negative by
 * the publish path, and change_percent grows without bound when the first
 * price is tiny; tick_format must stay within TICK_JSON_MAX and valid JSON
 * whatever finite values the tick holds. */
static void test_tick_format_huge_values(void **state) {
    (void)state;
    char sym[SYMBOL_MAX + 1];
    memset(sym, 'W', SYMBOL_MAX);
    sym[SYMBOL_MAX] = '\0';
    struct tick t = {
        .price = 1e12,
        .bid = 1e30,
        .ask = 1e30,
        .volume = 1e300,
        .change = -1e12,
        .change_percent = 1e40,
        .timestamp = 1700000000000,
        .seq = 1,
    };
    size_t n;
    json_t *o = format_and_parse(sym, &t, true, &n);
    expect_exact_fields(o, true);
    json_decref(o);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fmt_double_examples),
        cmocka_unit_test(test_fmt_double_large),
        cmocka_unit_test(test_fmt_double_huge),
        cmocka_unit_test(test_fmt_double_random),
        cmocka_unit_test(test_tick_format_fields),
        cmocka_unit_test(test_tick_format_exact_text),
        cmocka_unit_test(test_tick_format_rounding_and_edges),
        cmocka_unit_test(test_tick_format_long),
        cmocka_unit_test(test_tick_format_huge_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
