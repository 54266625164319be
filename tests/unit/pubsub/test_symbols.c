/* test_symbols.c - unit tests for the symbol universe (src/pubsub/symbols.c):
 * symbol_valid against ^[A-Z0-9][A-Z0-9.\-:/_]{0,31}$, the built-in list,
 * symbols_find, and loading/rejecting symbols files.
 *
 * Temporary files are made with mkstemp and removed in teardown. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "pubsub/symbols.h"

/* ---- fixtures and helpers ----------------------------------------------- */

#define MAX_TMP 4
static char tmp_paths[MAX_TMP][64];
static int ntmp;
static char *errmsg; /* what the last load() wrote to its err FILE */

static int setup(void **state) {
    (void)state;
    ntmp = 0;
    errmsg = NULL;
    return 0;
}

static int teardown(void **state) {
    (void)state;
    for (int i = 0; i < ntmp; i++)
        unlink(tmp_paths[i]);
    ntmp = 0;
    free(errmsg);
    errmsg = NULL;
    return 0;
}

/* Writes len bytes of text to a new temporary file; returns its path. */
static const char *write_file(const char *text, size_t len) {
    assert_true(ntmp < MAX_TMP);
    const char *dir = getenv("TMPDIR");
    snprintf(tmp_paths[ntmp], sizeof(tmp_paths[ntmp]), "%s/tg_syms_XXXXXX",
             dir && *dir && strlen(dir) < 40 ? dir : "/tmp");
    int fd = mkstemp(tmp_paths[ntmp]);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
    return tmp_paths[ntmp++];
}

static const char *write_text(const char *text) { return write_file(text, strlen(text)); }

static int load(struct symbol_table *t, const char *path) {
    free(errmsg);
    errmsg = NULL;
    size_t sz = 0;
    FILE *err = open_memstream(&errmsg, &sz);
    assert_non_null(err);
    int rc = symbols_load(t, path, err);
    fclose(err);
    return rc;
}

static void expect_loaded(int rc, struct symbol_table *t) {
    if (rc != 0)
        fail_msg("symbols_load returned %d: %s", rc, errmsg ? errmsg : "(no message)");
    assert_string_equal(errmsg, "");
    assert_true(t->n > 0);
}

/* -1 and a message containing `what`. */
static void expect_rejected(int rc, const char *what) {
    if (rc != -1)
        fail_msg("symbols_load returned %d, expected -1 (%s)", rc, what);
    assert_non_null(errmsg);
    if (!strstr(errmsg, what))
        fail_msg("message '%s' does not contain '%s'", errmsg, what);
}

static int find(const struct symbol_table *t, const char *s) { return symbols_find(t, s, strlen(s)); }

static bool valid(const char *s) { return symbol_valid(s, strlen(s)); }

/* ---- symbol_valid ------------------------------------------------------- */

static void test_symbol_valid(void **state) {
    (void)state;
    static const char *OK[] = {
        "AAPL", "BRK.B", "EUR/USD", "BTC-USD", "X", "A_1:2", "0", "9", "1A", "A.", "A-", "A/", "A:", "A_",
        "ES:Z24", "A..B", "ZZZZZZZZ",
    };
    for (size_t i = 0; i < sizeof(OK) / sizeof(OK[0]); i++)
        if (!valid(OK[i]))
            fail_msg("'%s' should be valid", OK[i]);
    static const char *BAD[] = {
        "",      "aapl", "Aapl", "AAPl", ".A", "-A", ":A", "/A", "_A", "A B", " A", "A ", "\xc3\x84" /* Ä */,
        "A\xc3\x84", "A\t", "A\n", "A+B", "A*", "A,B", "A\"", "A\\", "A$", "A#", "A@", "A!", "A;B", "A=B",
        "A[0]", "A{", "A%", "A'",
    };
    for (size_t i = 0; i < sizeof(BAD) / sizeof(BAD[0]); i++)
        if (valid(BAD[i]))
            fail_msg("'%s' should be invalid", BAD[i]);

    char s[64];
    memset(s, 'A', sizeof(s));
    assert_true(symbol_valid(s, 32)); /* exactly 32 */
    assert_false(symbol_valid(s, 33));
    assert_false(symbol_valid(s, 64));
    s[0] = 'Z';
    memset(s + 1, '.', 31);
    assert_true(symbol_valid(s, 32));
    s[32] = '\0';
    assert_true(valid(s));
    s[32] = '.';
    s[33] = '\0';
    assert_false(valid(s));
    /* a NUL inside the length is not a symbol character */
    assert_false(symbol_valid("AB\0C", 4));
    /* only len bytes count */
    assert_true(symbol_valid("AAPL lower", 4));
    assert_false(symbol_valid("AAPL", 0));

    /* exhaustive single characters and second characters */
    for (int c = 1; c < 256; c++) {
        char one[2] = {(char)c, '\0'};
        bool first_ok = (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (symbol_valid(one, 1) != first_ok)
            fail_msg("first character 0x%02x: expected %s", c, first_ok ? "valid" : "invalid");
        char two[3] = {'A', (char)c, '\0'};
        bool next_ok = first_ok || c == '.' || c == '-' || c == ':' || c == '/' || c == '_';
        if (symbol_valid(two, 2) != next_ok)
            fail_msg("second character 0x%02x: expected %s", c, next_ok ? "valid" : "invalid");
    }
}

/* ---- the built-in universe ---------------------------------------------- */

static void test_builtin(void **state) {
    (void)state;
    struct symbol_table t;
    expect_loaded(load(&t, ""), &t);
    if (t.n < 90 || t.n > 150)
        fail_msg("built-in universe has %u symbols, expected 90..150", t.n);
    for (uint32_t i = 0; i < t.n; i++) {
        const char *name = t.names[i];
        if (!valid(name))
            fail_msg("built-in symbol %u '%s' is not valid", i, name);
        if (!(t.start[i] > 0))
            fail_msg("built-in symbol %s has start price %g", name, t.start[i]);
        if (find(&t, name) != (int)i)
            fail_msg("symbols_find('%s') = %d, expected %u", name, find(&t, name), i);
    }
    int aapl = find(&t, "AAPL");
    assert_true(aapl >= 0);
    assert_string_equal(t.names[aapl], "AAPL");
    assert_true(t.start[aapl] == 189.25);
    static const char *ALSO[] = {"MSFT", "BRK.B", "BTC-USD", "EUR/USD"};
    for (size_t i = 0; i < sizeof(ALSO) / sizeof(ALSO[0]); i++)
        if (find(&t, ALSO[i]) < 0)
            fail_msg("built-in universe lacks %s", ALSO[i]);
    symbols_free(&t);

    /* NULL path is the built-in list as well */
    expect_loaded(load(&t, NULL), &t);
    assert_true(find(&t, "AAPL") >= 0);
    symbols_free(&t);
}

static void test_builtin_find_misses(void **state) {
    (void)state;
    struct symbol_table t;
    expect_loaded(load(&t, ""), &t);
    static const char *MISS[] = {
        "AAP", "AA", "A", "AAPLX", "AAPL.", "aapl", "ZZZZ", "BRK", "BRK.", "BTC", "EUR", "EUR/", "MSF",
        " AAPL", "AAPL ", "",
    };
    for (size_t i = 0; i < sizeof(MISS) / sizeof(MISS[0]); i++)
        if (find(&t, MISS[i]) != -1)
            fail_msg("symbols_find('%s') = %d, expected -1", MISS[i], find(&t, MISS[i]));
    /* the length bounds the name: "AAPL" out of "AAPLXYZ" */
    int aapl = find(&t, "AAPL");
    assert_int_equal(symbols_find(&t, "AAPLXYZ", 4), aapl);
    assert_int_equal(symbols_find(&t, "AAPLXYZ", 3), -1);
    assert_int_equal(symbols_find(&t, "AAPL", 0), -1);
    /* over-long names */
    char longname[80];
    memset(longname, 'A', sizeof(longname));
    assert_int_equal(symbols_find(&t, longname, 33), -1);
    assert_int_equal(symbols_find(&t, longname, sizeof(longname)), -1);
    /* every proper prefix of every symbol misses (unless itself a symbol) */
    for (uint32_t i = 0; i < t.n; i++) {
        size_t n = strlen(t.names[i]);
        for (size_t l = 1; l < n; l++) {
            int r = symbols_find(&t, t.names[i], l);
            if (r != -1 && (strlen(t.names[r]) != l || strncmp(t.names[r], t.names[i], l) != 0))
                fail_msg("prefix '%.*s' of %s found as %s", (int)l, t.names[i], t.names[i], t.names[r]);
        }
    }
    symbols_free(&t);
}

/* ---- symbols files ------------------------------------------------------ */

static void test_file_load(void **state) {
    (void)state;
    const char *path = write_text("# tickgate symbols\n"
                                  "\n"
                                  "   \n"
                                  "\t\n"
                                  "AAPL\n"
                                  "  MSFT , 12.5\n"
                                  "BTC-USD,67000\n"
                                  "   # indented comment, AAPL,1\n"
                                  "AAPL,99\n"         /* duplicate: the first one wins */
                                  "MSFT,1\n"          /* duplicate with a price */
                                  "\tX_1:2,  0.5  \r\n" /* CRLF, tabs and spaces */
                                  "EUR/USD,1.0842\n"
                                  "LAST,3"); /* no final newline */
    struct symbol_table t;
    expect_loaded(load(&t, path), &t);
    assert_int_equal(t.n, 6);
    static const struct {
        const char *name;
        double price;
    } WANT[] = {
        {"AAPL", 0}, {"MSFT", 12.5}, {"BTC-USD", 67000}, {"X_1:2", 0.5}, {"EUR/USD", 1.0842}, {"LAST", 3},
    };
    for (size_t i = 0; i < sizeof(WANT) / sizeof(WANT[0]); i++) {
        int idx = find(&t, WANT[i].name);
        if (idx != (int)i)
            fail_msg("%s at %d, expected %zu (file order)", WANT[i].name, idx, i);
        assert_string_equal(t.names[idx], WANT[i].name);
        if (t.start[idx] != WANT[i].price)
            fail_msg("%s: start %g, expected %g", WANT[i].name, t.start[idx], WANT[i].price);
    }
    assert_int_equal(find(&t, "GOOG"), -1); /* not the built-in list */
    assert_int_equal(find(&t, "#"), -1);
    symbols_free(&t);
    assert_int_equal(t.n, 0);
    assert_null(t.names);
}

static void test_file_single(void **state) {
    (void)state;
    struct symbol_table t;
    expect_loaded(load(&t, write_text("ONE\n")), &t);
    assert_int_equal(t.n, 1);
    assert_int_equal(find(&t, "ONE"), 0);
    assert_true(t.start[0] == 0);
    symbols_free(&t);
    /* the largest and smallest accepted prices (one printed step: 6 decimals) */
    expect_loaded(load(&t, write_text("BIG,1e12\nSMALL,0.000001\n")), &t);
    assert_true(t.start[find(&t, "BIG")] == 1e12);
    assert_true(t.start[find(&t, "SMALL")] == 0.000001);
    symbols_free(&t);
}

static void test_file_rejects(void **state) {
    (void)state;
    static const struct {
        const char *text, *what;
    } C[] = {
        {"AAPL\nbad sym\n", "not a valid symbol"},
        {"AAPL\naapl\n", "'aapl'"},
        {"AAPL\n.DOT,3\n", "'.DOT'"},
        {"AAPL\nA B,3\n", "'A B'"},
        {"AAPL\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n", "not a valid symbol"}, /* 33 chars */
        {",12.5\n", "not a valid symbol"},                                 /* empty name */
        {"X,abc\n", "bad start price"},
        {"X,-1\n", "bad start price"},
        {"X,0\n", "bad start price"},
        {"X,\n", "bad start price"},
        {"X, \n", "bad start price"},
        {"X,12.5abc\n", "bad start price"},
        {"X,12.5,3\n", "bad start price"},
        {"X,nan\n", "bad start price"},
        {"X,inf\n", "bad start price"},
        {"X,1e13\n", "bad start price"},
        {"X,1e-9\n", "bad start price"},   /* would print as 0 (issue 13, item 15) */
        {"X,1e-300\n", "bad start price"},
        {"", "no symbols"},
        {"\n\n   \n", "no symbols"},
        {"# only a comment\n#another\n", "no symbols"},
    };
    for (size_t i = 0; i < sizeof(C) / sizeof(C[0]); i++) {
        struct symbol_table t;
        const char *path = write_text(C[i].text);
        int rc = load(&t, path);
        expect_rejected(rc, C[i].what);
        if (!strstr(errmsg, "feed.symbols_file"))
            fail_msg("message '%s' does not name feed.symbols_file", errmsg);
        assert_null(t.names); /* nothing left allocated */
        assert_int_equal(t.n, 0);
        unlink(path);
        ntmp--;
    }
    /* the line number is reported */
    struct symbol_table t;
    expect_rejected(load(&t, write_text("A\nB\n# c\nbad\n")), ":4");
    expect_rejected(load(&t, write_text("A\nB,x\n")), ":2");
}

static void test_file_missing(void **state) {
    (void)state;
    struct symbol_table t;
    expect_rejected(load(&t, "/nonexistent/tickgate-symbols.txt"), "/nonexistent/tickgate-symbols.txt");
    assert_null(t.names);
}

/* A comment line longer than the reader's line buffer must stay a comment:
 * its tail must not be read as a symbol of its own (nor reported against a
 * wrong line). Either loading the file with just AAPL or rejecting the
 * over-long line is acceptable; silently adding "ZZZZ" is not. */
static void test_file_long_comment(void **state) {
    (void)state;
    char text[600];
    size_t n = 0;
    text[n++] = '#';
    memset(text + n, 'x', 254);
    n += 254;
    memcpy(text + n, "ZZZZ\nAAPL,1\n", 12);
    n += 12;
    struct symbol_table t;
    int rc = load(&t, write_file(text, n));
    if (rc == 0) {
        bool tail_loaded = find(&t, "ZZZZ") != -1;
        uint32_t count = t.n;
        symbols_free(&t);
        if (tail_loaded || count != 1)
            fail_msg("the tail of a 259-byte comment line became symbol ZZZZ (%u symbols loaded)", count);
    }
}

/* SYMBOLS_MAX symbols load; one more is refused with a message. */
static void test_file_capacity(void **state) {
    (void)state;
    size_t cap = (size_t)SYMBOLS_MAX * 8 + 16;
    char *text = malloc(cap);
    assert_non_null(text);
    size_t n = 0;
    for (unsigned i = 0; i < SYMBOLS_MAX; i++)
        n += (size_t)snprintf(text + n, cap - n, "S%u\n", i);
    struct symbol_table t;
    expect_loaded(load(&t, write_file(text, n)), &t);
    assert_int_equal(t.n, SYMBOLS_MAX);
    assert_int_equal(find(&t, "S0"), 0);
    assert_int_equal(find(&t, "S65535"), 65535);
    assert_int_equal(find(&t, "S65536"), -1);
    for (unsigned i = 0; i < SYMBOLS_MAX; i += 997) {
        char s[16];
        snprintf(s, sizeof(s), "S%u", i);
        assert_int_equal(find(&t, s), (int)i);
    }
    symbols_free(&t);
    /* duplicates do not count against the cap */
    size_t m = n + (size_t)snprintf(text + n, cap - n, "S0,5\n");
    expect_loaded(load(&t, write_file(text, m)), &t);
    assert_int_equal(t.n, SYMBOLS_MAX);
    symbols_free(&t);
    m = n + (size_t)snprintf(text + n, cap - n, "S%u\n", (unsigned)SYMBOLS_MAX);
    expect_rejected(load(&t, write_file(text, m)), "more than 65536");
    free(text);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_symbol_valid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_builtin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_builtin_find_misses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_single, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_rejects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_long_comment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_capacity, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
