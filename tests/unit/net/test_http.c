/* test_http.c - unit tests for the request parser's strictness
 * (src/net/http.c): what a proxy in front could read differently is 400,
 * whatever the read boundaries; what RFC 9112 allows still parses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "net/http.h"

/* Feeds req in pieces of `chunk` bytes (0: whole) the way conn.c does, up to
 * the first complete request. Returns 1 when complete, -status on an error,
 * 0 when more is needed; *body gets the body of a complete request. */
static int feed(const char *req, size_t len, size_t chunk, char *body, size_t bodylen) {
    struct http_req *r = http_req_new(1024);
    assert_non_null(r);
    int out = 0;
    for (size_t off = 0; off < len && out == 0;) {
        size_t n = chunk && len - off > chunk ? chunk : len - off;
        size_t used = 0;
        enum http_status_rc rc = http_req_feed(r, req + off, n, &used);
        assert_true(used <= n);
        if (rc == HTTP_ERROR)
            out = -r->error_status;
        else if (rc == HTTP_COMPLETE)
            out = 1;
        else
            assert_int_equal(used, n);
        off += n;
    }
    if (out == 1 && body)
        snprintf(body, bodylen, "%.*s", (int)r->body_len, r->body ? r->body : "");
    http_req_free(r);
    return out;
}

/* The same verdict whole and split at every byte boundary. */
static int verdict(const char *req, size_t len) {
    int whole = feed(req, len, 0, NULL, 0);
    for (size_t chunk = 1; chunk < len; chunk++) {
        int parts = feed(req, len, chunk, NULL, 0);
        if (parts != whole)
            fail_msg("chunk %zu: %d, whole: %d for %s", chunk, parts, whole, req);
    }
    return whole;
}

#define VERDICT(lit) verdict(lit, sizeof(lit) - 1)

/* ---- refused: request smuggling material ---------------------------------- */

static void test_space_before_colon_400(void **state) {
    (void)state;
    /* http-parser honours this Content-Length; a proxy may not. */
    assert_int_equal(VERDICT("POST /api/publish HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\nhello"), -400);
    assert_int_equal(VERDICT("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n"), -400);
    assert_int_equal(VERDICT("GET / HTTP/1.1\r\nHost: x\r\nX Y: z\r\n\r\n"), -400);
}

static void test_obs_fold_400(void **state) {
    (void)state;
    assert_int_equal(VERDICT("GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n"), -400);
    assert_int_equal(VERDICT("GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\r\n\tb\r\n\r\n"), -400);
    assert_int_equal(VERDICT("GET /health HTTP/1.1\r\nHost: x\r\nX-A:\r\n b\r\n\r\n"), -400);
    assert_int_equal(VERDICT("GET /health HTTP/1.1\nHost: x\nX-A: a\n b\n\n"), -400);
    /* a folded Host, and whitespace before the first field (RFC 9112 2.2) */
    assert_int_equal(VERDICT("GET /health HTTP/1.1\r\nHost:\r\n x\r\n\r\n"), -400);
    assert_int_equal(VERDICT("GET /health HTTP/1.1\r\n Host: x\r\n\r\n"), -400);
}

static void test_target_with_whitespace_400(void **state) {
    (void)state;
    assert_int_equal(VERDICT("GET /a\tb HTTP/1.1\r\nHost: x\r\n\r\n"), -400);
    assert_int_equal(VERDICT("GET /a b HTTP/1.1\r\nHost: x\r\n\r\n"), -400);
}

static void test_transfer_encoding_in_http10_400(void **state) {
    (void)state;
    assert_int_equal(VERDICT("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), -400);
}

static void test_host_missing_or_repeated_400(void **state) {
    (void)state;
    assert_int_equal(VERDICT("GET /health HTTP/1.1\r\n\r\n"), -400);
    assert_int_equal(VERDICT("GET /health HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n"), -400);
    assert_int_equal(VERDICT("GET /health HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n"), -400);
}

/* ---- still accepted ---------------------------------------------------------- */

static void test_lenient_where_rfc_allows(void **state) {
    (void)state;
    char body[64];
    /* HTTP/1.0 needs no Host; bare LF ends lines; empty lines before the
     * request line are ignored; whitespace inside a value is data. */
    assert_int_equal(VERDICT("GET /health HTTP/1.0\r\n\r\n"), 1);
    assert_int_equal(VERDICT("GET /health HTTP/1.1\nHost: x\n\n"), 1);
    assert_int_equal(VERDICT("\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n"), 1);
    assert_int_equal(VERDICT("GET /health HTTP/1.1\r\nHost: x\r\nX-A: a \t b\r\n\r\n"), 1);
    /* A body that contains line breaks followed by spaces is not a header. */
    static const char post[] = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\na\r\n b\r\n";
    assert_int_equal(VERDICT(post), 1);
    assert_int_equal(feed(post, sizeof(post) - 1, 0, body, sizeof(body)), 1);
    assert_string_equal(body, "a\r\n b\r\n");
    static const char chunked[] = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    assert_int_equal(VERDICT(chunked), 1);
}

/* The line scan starts over with each request of a keep-alive connection. */
static void test_second_request_scanned_afresh(void **state) {
    (void)state;
    static const char two[] = "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nX: 1\r\n 2\r\n\r\n";
    struct http_req *r = http_req_new(0);
    size_t used = 0, len = sizeof(two) - 1;
    assert_int_equal(http_req_feed(r, two, len, &used), HTTP_COMPLETE);
    assert_string_equal(r->path, "/a");
    http_req_reset(r);
    size_t used2 = 0;
    assert_int_equal(http_req_feed(r, two + used, len - used, &used2), HTTP_ERROR);
    assert_int_equal(r->error_status, 400);
    http_req_free(r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_space_before_colon_400),
        cmocka_unit_test(test_obs_fold_400),
        cmocka_unit_test(test_target_with_whitespace_400),
        cmocka_unit_test(test_transfer_encoding_in_http10_400),
        cmocka_unit_test(test_host_missing_or_repeated_400),
        cmocka_unit_test(test_lenient_where_rfc_allows),
        cmocka_unit_test(test_second_request_scanned_afresh),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
