/* test_utf8.c - unit tests for the incremental UTF-8 validator (src/ws/utf8.c).
 *
 * Every case is checked one-shot (utf8_valid), through utf8_feed/utf8_complete
 * in one call, byte by byte, and split at every possible position across two
 * and three utf8_feed calls: the answer must never depend on how the bytes
 * were cut. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ws/utf8.h"

struct u8case {
    const char *name;
    const uint8_t *bytes;
    size_t len;
    bool valid;
};

#define B(...) ((const uint8_t[]){__VA_ARGS__}), sizeof((const uint8_t[]){__VA_ARGS__})
#define S(str) ((const uint8_t *)(str)), (sizeof(str) - 1)

/* Feeds the parts in order the way a caller would (stopping at the first
 * false, after which the state is undefined) and reports the final verdict. */
static bool feed_parts(const uint8_t *p, const size_t *cuts, size_t ncuts, size_t len) {
    struct utf8_state s;
    utf8_init(&s);
    size_t start = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        if (!utf8_feed(&s, p + start, end - start))
            return false;
        start = end;
    }
    return utf8_complete(&s);
}

/* Index of the first byte at which a byte-by-byte feed fails, or len when it
 * never does. */
static size_t first_fail_bytewise(const uint8_t *p, size_t len) {
    struct utf8_state s;
    utf8_init(&s);
    for (size_t i = 0; i < len; i++)
        if (!utf8_feed(&s, p + i, 1))
            return i;
    return len;
}

/* Runs every way of feeding c and checks each against c->valid. */
static void check_case(const struct u8case *c) {
    bool one = utf8_valid(c->bytes, c->len);
    if (one != c->valid)
        print_error("case '%s': utf8_valid() = %d, expected %d\n", c->name, one, c->valid);
    assert_int_equal(one, c->valid);

    /* single utf8_feed + utf8_complete */
    assert_int_equal(feed_parts(c->bytes, NULL, 0, c->len), c->valid);

    /* byte by byte */
    {
        struct utf8_state s;
        utf8_init(&s);
        bool ok = true;
        for (size_t i = 0; i < c->len && ok; i++)
            ok = utf8_feed(&s, c->bytes + i, 1);
        if (ok)
            ok = utf8_complete(&s);
        assert_int_equal(ok, c->valid);
    }

    /* empty feeds sprinkled in must change nothing */
    {
        struct utf8_state s;
        utf8_init(&s);
        bool ok = utf8_feed(&s, c->bytes, 0);
        for (size_t i = 0; i < c->len && ok; i++)
            ok = utf8_feed(&s, c->bytes + i, 1) && utf8_feed(&s, c->bytes + i, 0);
        if (ok)
            ok = utf8_complete(&s);
        assert_int_equal(ok, c->valid);
    }

    /* two parts: every cut 0..len */
    for (size_t i = 0; i <= c->len; i++) {
        size_t cuts[1] = {i};
        bool r = feed_parts(c->bytes, cuts, 1, c->len);
        if (r != c->valid)
            print_error("case '%s': split at %zu gave %d\n", c->name, i, r);
        assert_int_equal(r, c->valid);
    }

    /* three parts: every pair of cuts 0 <= i <= j <= len */
    for (size_t i = 0; i <= c->len; i++)
        for (size_t j = i; j <= c->len; j++) {
            size_t cuts[2] = {i, j};
            bool r = feed_parts(c->bytes, cuts, 2, c->len);
            if (r != c->valid)
                print_error("case '%s': split at %zu,%zu gave %d\n", c->name, i, j, r);
            assert_int_equal(r, c->valid);
        }
}

static void check_all(const struct u8case *cases, size_t n) {
    for (size_t i = 0; i < n; i++)
        check_case(&cases[i]);
}

/* ---- valid input -------------------------------------------------------- */

static void test_empty(void **state) {
    (void)state;
    struct utf8_state s;
    utf8_init(&s);
    assert_true(utf8_complete(&s));
    assert_true(utf8_feed(&s, (const uint8_t *)"", 0));
    assert_true(utf8_complete(&s));
    assert_true(utf8_valid((const uint8_t *)"", 0));
}

static void test_ascii(void **state) {
    (void)state;
    const struct u8case cases[] = {
        {"single a", S("a"), true},
        {"NUL", B(0x00), true},
        {"DEL 7F", B(0x7F), true},
        {"all printable", S(" !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`"
                            "abcdefghijklmnopqrstuvwxyz{|}~"), true},
        {"7 bytes", S("1234567"), true},
        {"8 bytes", S("12345678"), true},
        {"9 bytes", S("123456789"), true},
        {"control chars", B(0x01, 0x09, 0x0A, 0x0D, 0x1B, 0x1F), true},
        {"json", S("{\"op\":\"subscribe\",\"topics\":[\"BTC-USD\"]}"), true},
    };
    check_all(cases, sizeof(cases) / sizeof(cases[0]));

    /* every byte 0x00..0x7F, one long buffer (exercises the 8-byte path) */
    uint8_t all[128];
    for (int i = 0; i < 128; i++)
        all[i] = (uint8_t)i;
    assert_true(utf8_valid(all, sizeof(all)));
    struct u8case c = {"0x00..0x7F", all, sizeof(all), true};
    check_case(&c);
}

static void test_multibyte_valid(void **state) {
    (void)state;
    const struct u8case cases[] = {
        {"2-byte e-acute U+00E9", B(0xC3, 0xA9), true},
        {"3-byte euro U+20AC", B(0xE2, 0x82, 0xAC), true},
        {"4-byte U+1F600", B(0xF0, 0x9F, 0x98, 0x80), true},
        {"4-byte U+1D11E", B(0xF0, 0x9D, 0x84, 0x9E), true},
        {"mixed", B('a', 0xC3, 0xA9, 'b', 0xE2, 0x82, 0xAC, 'c', 0xF0, 0x9F, 0x98, 0x80, 'd'), true},
        /* first code points after the surrogate gap, and right below it */
        {"U+D7FF", B(0xED, 0x9F, 0xBF), true},
        {"U+E000", B(0xEE, 0x80, 0x80), true},
        {"U+FFFD", B(0xEF, 0xBF, 0xBD), true},
        {"U+FEFF BOM", B(0xEF, 0xBB, 0xBF), true},
        /* noncharacters are valid UTF-8 */
        {"U+FFFE", B(0xEF, 0xBF, 0xBE), true},
        {"U+10FFFE", B(0xF4, 0x8F, 0xBF, 0xBE), true},
        /* each 4-byte lead F1..F4 */
        {"F1 lead U+40000", B(0xF1, 0x80, 0x80, 0x80), true},
        {"F3 lead U+FFFFF", B(0xF3, 0xBF, 0xBF, 0xBF), true},
        {"F4 lead U+100000", B(0xF4, 0x80, 0x80, 0x80), true},
        /* E1..EC, EE, EF 3-byte leads take the full 80..BF range */
        {"E1 80 80 U+1000", B(0xE1, 0x80, 0x80), true},
        {"EC BF BF U+CFFF", B(0xEC, 0xBF, 0xBF), true},
        {"C2 80 U+0080", B(0xC2, 0x80), true},
        {"DF BF U+07FF", B(0xDF, 0xBF), true},
    };
    check_all(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_boundaries(void **state) {
    (void)state;
    const struct u8case cases[] = {
        {"U+0000", B(0x00), true},
        {"U+007F", B(0x7F), true},
        {"U+0080", B(0xC2, 0x80), true},
        {"U+07FF", B(0xDF, 0xBF), true},
        {"U+0800", B(0xE0, 0xA0, 0x80), true},
        {"U+FFFF", B(0xEF, 0xBF, 0xBF), true},
        {"U+10000", B(0xF0, 0x90, 0x80, 0x80), true},
        {"U+10FFFF", B(0xF4, 0x8F, 0xBF, 0xBF), true},
        /* the first illegal value after each boundary */
        {"U+110000", B(0xF4, 0x90, 0x80, 0x80), false},
        {"U+D800", B(0xED, 0xA0, 0x80), false},
        {"U+DFFF", B(0xED, 0xBF, 0xBF), false},
        {"all boundaries in one", B(0x7F, 0xC2, 0x80, 0xDF, 0xBF, 0xE0, 0xA0, 0x80, 0xEF, 0xBF, 0xBF, 0xF0, 0x90, 0x80,
                                    0x80, 0xF4, 0x8F, 0xBF, 0xBF), true},
    };
    check_all(cases, sizeof(cases) / sizeof(cases[0]));
}

/* Markus Kuhn's UTF-8 decoder capability and stress test, and the Autobahn
 * test suite's case 6.x strings. */
static void test_kuhn_autobahn(void **state) {
    (void)state;
    const struct u8case cases[] = {
        /* Kuhn 1: the Greek word "kosme" */
        {"kosme", S("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"), true},
        /* same literal as UTF-8 source text */
        {"kosme literal", S("κόσμε"), true},
        /* Autobahn 6.2.x */
        {"Hello-mu@ss...-UTF-8!!", S("Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!"), true},
        {"Hello-mu literal", S("Hello-µ@ßöäüàá-UTF-8!!"), true},
        /* Autobahn 6.3.x: kosme, then an invalid tail */
        {"kosme + ED A0 80 + edited", S("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64"),
         false},
        /* Autobahn 6.4.x: invalid in the middle, the start is fine */
        {"kosme + F4 90 80 80", S("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80\xce\xba"), false},
        /* Kuhn 3.3: sequences with the last byte missing */
        {"kuhn 3.3.1 C0", B(0xC0), false},
        {"kuhn 3.3.2 E0 80", B(0xE0, 0x80), false},
        {"kuhn 3.3.6 DF", B(0xDF), false},
        {"kuhn 3.3.7 EF BF", B(0xEF, 0xBF), false},
        {"kuhn 3.3.8 F7 BF BF", B(0xF7, 0xBF, 0xBF), false},
        /* Kuhn 3.4: all ten missing-last-byte sequences concatenated */
        {"kuhn 3.4", B(0xC0, 0xE0, 0x80, 0xF0, 0x80, 0x80, 0xF8, 0x80, 0x80, 0x80, 0xFC, 0x80, 0x80, 0x80, 0x80, 0xDF,
                       0xEF, 0xBF, 0xF7, 0xBF, 0xBF, 0xFB, 0xBF, 0xBF, 0xBF, 0xFD, 0xBF, 0xBF, 0xBF, 0xBF),
         false},
        /* Kuhn 3.5: impossible bytes */
        {"kuhn 3.5.1 FE", B(0xFE), false},
        {"kuhn 3.5.2 FF", B(0xFF), false},
        {"kuhn 3.5.3 FE FE FF FF", B(0xFE, 0xFE, 0xFF, 0xFF), false},
        /* Kuhn 4.1: overlong slash */
        {"kuhn 4.1.1 C0 AF", B(0xC0, 0xAF), false},
        {"kuhn 4.1.2 E0 80 AF", B(0xE0, 0x80, 0xAF), false},
        {"kuhn 4.1.3 F0 80 80 AF", B(0xF0, 0x80, 0x80, 0xAF), false},
        {"kuhn 4.1.4 F8 80 80 80 AF", B(0xF8, 0x80, 0x80, 0x80, 0xAF), false},
        {"kuhn 4.1.5 FC 80 80 80 80 AF", B(0xFC, 0x80, 0x80, 0x80, 0x80, 0xAF), false},
        /* Kuhn 4.2: maximum overlongs */
        {"kuhn 4.2.1 C1 BF", B(0xC1, 0xBF), false},
        {"kuhn 4.2.2 E0 9F BF", B(0xE0, 0x9F, 0xBF), false},
        {"kuhn 4.2.3 F0 8F BF BF", B(0xF0, 0x8F, 0xBF, 0xBF), false},
        /* Kuhn 5.2: paired surrogates */
        {"kuhn 5.2.1 D800 DC00", B(0xED, 0xA0, 0x80, 0xED, 0xB0, 0x80), false},
        {"kuhn 5.2.8 DBFF DFFF", B(0xED, 0xAF, 0xBF, 0xED, 0xBF, 0xBF), false},
        /* Kuhn 5.3: noncharacters are fine */
        {"kuhn 5.3.1 U+FFFE", B(0xEF, 0xBF, 0xBE), true},
        {"kuhn 5.3.2 U+FFFF", B(0xEF, 0xBF, 0xBF), true},
    };
    check_all(cases, sizeof(cases) / sizeof(cases[0]));
}

/* ---- invalid input ------------------------------------------------------ */

static void test_overlong(void **state) {
    (void)state;
    const struct u8case cases[] = {
        {"C0 80 (overlong NUL)", B(0xC0, 0x80), false},
        {"C1 BF (overlong U+007F)", B(0xC1, 0xBF), false},
        {"E0 80 80 (overlong NUL)", B(0xE0, 0x80, 0x80), false},
        {"E0 9F BF (overlong U+07FF)", B(0xE0, 0x9F, 0xBF), false},
        {"F0 80 80 80 (overlong NUL)", B(0xF0, 0x80, 0x80, 0x80), false},
        {"F0 8F BF BF (overlong U+FFFF)", B(0xF0, 0x8F, 0xBF, 0xBF), false},
        {"C0 AF", B(0xC0, 0xAF), false},
        {"ascii then C0 80", B('o', 'k', 0xC0, 0x80), false},
    };
    check_all(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_surrogates(void **state) {
    (void)state;
    const struct u8case cases[] = {
        {"ED A0 80 (U+D800)", B(0xED, 0xA0, 0x80), false},
        {"ED BF BF (U+DFFF)", B(0xED, 0xBF, 0xBF), false},
        {"ED AD BF (U+DB7F)", B(0xED, 0xAD, 0xBF), false},
        {"ED B0 80 (U+DC00)", B(0xED, 0xB0, 0x80), false},
        {"ED 9F BF (U+D7FF) is fine", B(0xED, 0x9F, 0xBF), true},
        {"surrogate after text", B('a', 'b', 'c', 0xED, 0xA0, 0x80, 'd'), false},
    };
    check_all(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_above_max(void **state) {
    (void)state;
    const struct u8case cases[] = {
        {"F4 90 80 80 (U+110000)", B(0xF4, 0x90, 0x80, 0x80), false},
        {"F4 BF BF BF", B(0xF4, 0xBF, 0xBF, 0xBF), false},
        {"F5 80 80 80", B(0xF5, 0x80, 0x80, 0x80), false},
        {"F6", B(0xF6), false},
        {"F7 BF BF BF", B(0xF7, 0xBF, 0xBF, 0xBF), false},
        {"F8 88 80 80 80 (5-byte)", B(0xF8, 0x88, 0x80, 0x80, 0x80), false},
        {"FC 84 80 80 80 80 (6-byte)", B(0xFC, 0x84, 0x80, 0x80, 0x80, 0x80), false},
        {"FE", B(0xFE), false},
        {"FF", B(0xFF), false},
    };
    check_all(cases, sizeof(cases) / sizeof(cases[0]));

    /* every lead byte F5..FF is rejected at once, even alone */
    for (unsigned b = 0xF5; b <= 0xFF; b++) {
        uint8_t one = (uint8_t)b;
        struct utf8_state s;
        utf8_init(&s);
        assert_false(utf8_feed(&s, &one, 1));
        assert_false(utf8_valid(&one, 1));
    }
}

static void test_stray_continuation(void **state) {
    (void)state;
    const struct u8case cases[] = {
        {"80", B(0x80), false},
        {"BF", B(0xBF), false},
        {"80 BF", B(0x80, 0xBF), false},
        {"ascii 80", B('a', 0x80), false},
        {"2-byte then extra 80", B(0xC3, 0xA9, 0x80), false},
        {"3-byte then extra 80", B(0xE2, 0x82, 0xAC, 0x80), false},
        {"4-byte then extra 80", B(0xF0, 0x9F, 0x98, 0x80, 0x80), false},
        /* a new lead byte where a continuation byte was expected */
        {"C3 C3 A9", B(0xC3, 0xC3, 0xA9), false},
        {"E2 82 41", B(0xE2, 0x82, 'A'), false},
        {"F0 9F 98 41", B(0xF0, 0x9F, 0x98, 'A'), false},
        {"C3 then ascii", B(0xC3, 'A'), false},
    };
    check_all(cases, sizeof(cases) / sizeof(cases[0]));

    /* every continuation byte 0x80..0xBF is rejected as a lead */
    for (unsigned b = 0x80; b <= 0xBF; b++) {
        uint8_t one = (uint8_t)b;
        assert_false(utf8_valid(&one, 1));
    }
    /* and every ASCII byte is rejected where a continuation is due */
    for (unsigned b = 0x00; b <= 0x7F; b++) {
        uint8_t two[2] = {0xC3, (uint8_t)b};
        assert_false(utf8_valid(two, 2));
    }
}

static void test_truncated(void **state) {
    (void)state;
    const struct u8case cases[] = {
        {"C3", B(0xC3), false},
        {"E2", B(0xE2), false},
        {"E2 82", B(0xE2, 0x82), false},
        {"F0", B(0xF0), false},
        {"F0 9F", B(0xF0, 0x9F), false},
        {"F0 9F 98", B(0xF0, 0x9F, 0x98), false},
        {"text then C3", B('h', 'i', 0xC3), false},
        {"text then F4 8F BF", B('h', 'i', 0xF4, 0x8F, 0xBF), false},
    };
    check_all(cases, sizeof(cases) / sizeof(cases[0]));

    /* truncation is not an error for utf8_feed, only for utf8_complete, and
     * the rest of the code point may follow in a later call */
    static const uint8_t smile[] = {0xF0, 0x9F, 0x98, 0x80};
    for (size_t cut = 1; cut < sizeof(smile); cut++) {
        struct utf8_state s;
        utf8_init(&s);
        assert_true(utf8_feed(&s, smile, cut));
        assert_false(utf8_complete(&s));
        assert_true(utf8_feed(&s, smile + cut, sizeof(smile) - cut));
        assert_true(utf8_complete(&s));
    }
    /* need counts down per continuation byte */
    struct utf8_state s;
    utf8_init(&s);
    assert_true(utf8_feed(&s, smile, 1));
    assert_int_equal(s.need, 3);
    assert_true(utf8_feed(&s, smile + 1, 1));
    assert_int_equal(s.need, 2);
    assert_true(utf8_feed(&s, smile + 2, 1));
    assert_int_equal(s.need, 1);
    assert_true(utf8_feed(&s, smile + 3, 1));
    assert_int_equal(s.need, 0);
}

/* The constraint on the second byte (E0/ED/F0/F4) must hold across a split
 * between the lead and that byte, and only apply to the second byte. */
static void test_split_second_byte_constraint(void **state) {
    (void)state;
    struct {
        uint8_t lead, second;
        bool ok;
    } t[] = {
        {0xE0, 0x9F, false}, {0xE0, 0xA0, true},  {0xED, 0x9F, true},  {0xED, 0xA0, false},
        {0xF0, 0x8F, false}, {0xF0, 0x90, true},  {0xF4, 0x8F, true},  {0xF4, 0x90, false},
        {0xE1, 0x80, true},  {0xEE, 0xBF, true},  {0xF1, 0x80, true},  {0xF3, 0xBF, true},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        struct utf8_state s;
        utf8_init(&s);
        assert_true(utf8_feed(&s, &t[i].lead, 1));
        assert_int_equal(utf8_feed(&s, &t[i].second, 1), t[i].ok);
        if (!t[i].ok)
            continue;
        /* third (and fourth) byte: the full 80..BF range again */
        uint8_t lo = 0x80, hi = 0xBF;
        assert_true(utf8_feed(&s, t[i].lead >= 0xF0 ? &lo : &hi, 1));
        if (t[i].lead >= 0xF0)
            assert_true(utf8_feed(&s, &hi, 1));
        assert_true(utf8_complete(&s));
    }
}

/* Invalid bytes at every position of a long ASCII run: the 8-byte fast path
 * must never skip over them, and a valid multibyte code point at any offset
 * is accepted. */
static void test_fast_path_offsets(void **state) {
    (void)state;
    uint8_t buf[40];
    for (size_t pos = 0; pos + 4 <= sizeof(buf); pos++) {
        memset(buf, 'x', sizeof(buf));
        buf[pos] = 0xFF;
        assert_false(utf8_valid(buf, sizeof(buf)));
        assert_int_equal(first_fail_bytewise(buf, sizeof(buf)), pos);

        memset(buf, 'x', sizeof(buf));
        buf[pos] = 0x80; /* stray continuation */
        assert_false(utf8_valid(buf, sizeof(buf)));

        memset(buf, 'x', sizeof(buf));
        buf[pos] = 0xF0; /* truncated: ASCII where continuation is due */
        assert_false(utf8_valid(buf, sizeof(buf)));

        memset(buf, 'x', sizeof(buf));
        memcpy(buf + pos, "\xF0\x9F\x98\x80", 4);
        assert_true(utf8_valid(buf, sizeof(buf)));

        /* a lead byte as the very last byte: fine for feed, not complete */
        memset(buf, 'x', sizeof(buf));
        buf[sizeof(buf) - 1] = 0xE2;
        struct utf8_state s;
        utf8_init(&s);
        assert_true(utf8_feed(&s, buf + pos, sizeof(buf) - pos));
        assert_false(utf8_complete(&s));
    }
}

/* A long mixed text, fed in every chunk size 1..len. */
static void test_chunk_sizes(void **state) {
    (void)state;
    static const char text[] = "Hello-µ@ßöäüàá-UTF-8!! κόσμε € 😀 𝄞 plain ascii tail 0123456789";
    const uint8_t *p = (const uint8_t *)text;
    size_t len = sizeof(text) - 1;
    assert_true(utf8_valid(p, len));
    for (size_t chunk = 1; chunk <= len; chunk++) {
        struct utf8_state s;
        utf8_init(&s);
        for (size_t off = 0; off < len; off += chunk) {
            size_t n = len - off < chunk ? len - off : chunk;
            assert_true(utf8_feed(&s, p + off, n));
        }
        assert_true(utf8_complete(&s));
    }
    /* the whole text (long) split at every two and three positions */
    struct u8case c = {"long mixed text", p, len, true};
    check_case(&c);

    /* the same text cut in the middle of the emoji is truncated */
    const char *emoji = strstr(text, "😀");
    assert_non_null(emoji);
    struct u8case e = {"text cut inside emoji", p, (size_t)(emoji - text) + 2, false};
    check_case(&e);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_ascii),
        cmocka_unit_test(test_multibyte_valid),
        cmocka_unit_test(test_boundaries),
        cmocka_unit_test(test_kuhn_autobahn),
        cmocka_unit_test(test_overlong),
        cmocka_unit_test(test_surrogates),
        cmocka_unit_test(test_above_max),
        cmocka_unit_test(test_stray_continuation),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_split_second_byte_constraint),
        cmocka_unit_test(test_fast_path_offsets),
        cmocka_unit_test(test_chunk_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
