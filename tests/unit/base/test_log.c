/* test_log.c - unit tests for the log (src/base/log.c): text and JSON line
 * shapes, fields, levels, and the per-call-site rate limit. stderr is
 * redirected to a temporary file and read back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "base/log.h"

static char path[64];
static int saved = -1;

static void capture(void) {
    snprintf(path, sizeof(path), "/tmp/tg_log_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stderr);
    saved = dup(2);
    dup2(fd, 2);
    close(fd);
}

/* Restores stderr and returns what was written (malloc'd). */
static char *captured(void) {
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    FILE *f = fopen(path, "r");
    static char buf[16384];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    unlink(path);
    return strdup(buf);
}

static void test_text_line(void **state) {
    log_set_format(LOG_TEXT);
    log_set_level(LOG_INFO);
    capture();
    log_debug("hidden");
    log_event(LOG_WARN, "reload failed", "reason", "bad value", "key", "limits.x", NULL);
    char *out = captured();
    assert_null(strstr(out, "hidden"));
    /* 2026-12-04T08:00:00.123Z warn reload failed reason="bad value" key=limits.x */
    assert_int_equal(strlen(out) > 25 && out[4] == '-' && out[10] == 'T' && out[23] == 'Z', 1);
    assert_non_null(strstr(out, " warn reload failed reason=\"bad value\" key=limits.x\n"));
    free(out);
}

static void test_json_line(void **state) {
    log_set_format(LOG_JSON);
    log_set_level(LOG_DEBUG);
    capture();
    log_msg(LOG_DEBUG, "quote \" and\nnewline %d", 7);
    log_event(LOG_ERROR, "x", "k", "v\"w", NULL);
    char *out = captured();
    log_set_format(LOG_TEXT);
    log_set_level(LOG_INFO);
    char *second = strchr(out, '\n');
    assert_non_null(second);
    *second++ = '\0';
    json_error_t je;
    json_t *a = json_loads(out, 0, &je), *b = json_loads(second, JSON_DISABLE_EOF_CHECK, &je);
    assert_non_null(a);
    assert_non_null(b);
    assert_string_equal(json_string_value(json_object_get(a, "level")), "debug");
    assert_string_equal(json_string_value(json_object_get(a, "msg")), "quote \" and\nnewline 7");
    assert_int_equal(strlen(json_string_value(json_object_get(a, "ts"))), 24);
    assert_string_equal(json_string_value(json_object_get(b, "level")), "error");
    assert_string_equal(json_string_value(json_object_get(b, "k")), "v\"w");
    json_decref(a);
    json_decref(b);
    free(out);
}

static void test_rate_limit(void **state) {
    static struct log_limit site;
    log_set_format(LOG_TEXT);
    uint64_t before = log_suppressed_total();
    capture();
    for (int i = 0; i < 100; i++)
        log_limited(&site, LOG_WARN, "redis: connect failed %d", i);
    char *out = captured();
    assert_non_null(strstr(out, "connect failed 0"));
    assert_null(strstr(out, "connect failed 1"));
    assert_int_equal(log_suppressed_total() - before, 99);
    /* The next line after the period says how many were dropped. */
    site.last_ms -= LOG_LIMIT_MS + 1;
    capture();
    log_limited(&site, LOG_WARN, "redis: connect failed again");
    free(out);
    out = captured();
    assert_non_null(strstr(out, "connect failed again (99 similar lines suppressed"));
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_line),
        cmocka_unit_test(test_json_line),
        cmocka_unit_test(test_rate_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
