/* test_ini_file.c - unit tests for the configuration file's syntax
 * (src/base/ini_file.c): sections, comments, quotes, and errors that name
 * the file and line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/ini_file.h"

static char path[64];
static char seen[1024]; /* "section.key=value@line;" per key */
static char *errmsg;

static const char *write_file(const char *text) {
    snprintf(path, sizeof(path), "/tmp/tg_ini_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static int on_kv(void *ctx, const char *section, const char *key, const char *value, int line) {
    size_t n = strlen(seen);
    snprintf(seen + n, sizeof(seen) - n, "%s.%s=%s@%d;", section, key, value, line);
    return ctx && strcmp(key, (const char *)ctx) == 0 ? -1 : 0;
}

static int read_text(const char *text, const char *fail_key) {
    seen[0] = '\0';
    free(errmsg);
    errmsg = NULL;
    size_t sz;
    FILE *err = open_memstream(&errmsg, &sz);
    int rc = ini_file_read(write_file(text), on_kv, (void *)fail_key, err);
    fclose(err);
    unlink(path);
    return rc;
}

static void expect_error(const char *text, const char *needle) {
    assert_int_equal(read_text(text, NULL), -1);
    if (!strstr(errmsg, needle))
        fail_msg("'%s' does not contain '%s'", errmsg, needle);
}

static void test_values_comments_quotes(void **state) {
    assert_int_equal(read_text("; comment\n# comment\n\n[server]\nlisten = 127.0.0.1:0 ; inline\n"
                               "ws_path=\"/w s\" # after quotes\n[ auth ]\njwt_issuer = 'a;b#c'\n"
                               "jwt_audience = x#y\nempty =\n",
                               NULL),
                     0);
    assert_string_equal(seen, "server.listen=127.0.0.1:0@5;server.ws_path=/w s@6;auth.jwt_issuer=a;b#c@8;"
                              "auth.jwt_audience=x#y@9;auth.empty=@10;");
}

static void test_errors_name_the_line(void **state) {
    expect_error("[server]\nlisten 127.0.0.1:1\n", ":2: expected KEY = VALUE, found no '=' after 'listen'");
    expect_error("listen = x\n", ":1: key 'listen' before any [section]");
    expect_error("[server\n", ":1: expected [section]");
    expect_error("[server]\n\n\nws_path = \"/ws\n", ":4: server.ws_path: unterminated quote");
    expect_error("[server]\n= 3\n", ":2: '=' without a key");
    expect_error("[server]\nws_path = \"/ws\" junk\n", ":2:");
}

static void test_missing_file_says_why(void **state) {
    size_t sz;
    free(errmsg);
    errmsg = NULL;
    FILE *err = open_memstream(&errmsg, &sz);
    assert_int_equal(ini_file_read("/nonexistent/tickgate.ini", on_kv, NULL, err), -1);
    fclose(err);
    assert_non_null(strstr(errmsg, "/nonexistent/tickgate.ini: No such file or directory"));
}

static void test_callback_failure_stops(void **state) {
    assert_int_equal(read_text("[a]\nx = 1\ny = 2\nz = 3\n", "y"), -1);
    assert_string_equal(seen, "a.x=1@2;a.y=2@3;");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values_comments_quotes),
        cmocka_unit_test(test_errors_name_the_line),
        cmocka_unit_test(test_missing_file_says_why),
        cmocka_unit_test(test_callback_failure_stops),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    free(errmsg);
    return rc;
}
