/* test_handshake.c - unit tests for the RFC 6455 opening handshake helpers
 * (src/ws/handshake.c): ws_accept_key, ws_key_valid, http_header_has_token. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "ws/handshake.h"

/* ---- ws_accept_key ------------------------------------------------------ */

static void check_accept(const char *key, const char *expect) {
    char out[WS_ACCEPT_LEN];
    memset(out, 'X', sizeof(out));
    ws_accept_key(key, strlen(key), out);
    assert_string_equal(out, expect);
    assert_int_equal(strlen(out), WS_ACCEPT_LEN - 1);
}

static void test_accept_rfc_example(void **state) {
    (void)state;
    /* RFC 6455 section 1.3 */
    check_accept("dGhlIHNhbXBsZSBub25jZQ==", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void test_accept_more_keys(void **state) {
    (void)state;
    check_accept("x3JJHMbDL1EzLkh9GBhXDw==", "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
    check_accept("AAAAAAAAAAAAAAAAAAAAAA==", "ICX+Yqv66kxgM0FcWaLWlFLwTAI=");
}

static void test_accept_uses_len(void **state) {
    (void)state;
    /* the key need not be NUL-terminated: only len bytes are hashed */
    const char buf[] = "dGhlIHNhbXBsZSBub25jZQ==GARBAGE AFTER THE KEY";
    char out[WS_ACCEPT_LEN];
    ws_accept_key(buf, 24, out);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    /* and a different length gives a different answer */
    ws_accept_key(buf, 23, out);
    assert_string_not_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_int_equal(strlen(out), WS_ACCEPT_LEN - 1);
}

/* ---- ws_key_valid ------------------------------------------------------- */

static bool kv(const char *key) { return ws_key_valid(key, strlen(key)); }

static void test_key_valid_good(void **state) {
    (void)state;
    assert_true(kv("dGhlIHNhbXBsZSBub25jZQ=="));
    assert_true(kv("x3JJHMbDL1EzLkh9GBhXDw=="));
    assert_true(kv("AAAAAAAAAAAAAAAAAAAAAA=="));
    assert_true(kv("/////////////////////w=="));
    assert_true(kv("+++++++++++++++++++++g=="));
    assert_true(kv("0123456789abcdefghijkQ=="));
    assert_true(kv("ABCDEFGHIJKLMNOPQRSTUA=="));
    /* every canonical final character */
    assert_true(kv("dGhlIHNhbXBsZSBub25jZA=="));
    assert_true(kv("dGhlIHNhbXBsZSBub25jZg=="));
    assert_true(kv("dGhlIHNhbXBsZSBub25jZw=="));

    /* base64 of any 16 bytes is valid: encode a few hundred with OpenSSL */
    uint32_t x = 12345;
    for (int n = 0; n < 500; n++) {
        unsigned char raw[16];
        for (int i = 0; i < 16; i++) {
            x = x * 1103515245u + 12345u;
            raw[i] = (unsigned char)(x >> 16);
        }
        if (n == 0)
            memset(raw, 0, sizeof(raw));
        if (n == 1)
            memset(raw, 0xFF, sizeof(raw));
        char key[32];
        int kl = EVP_EncodeBlock((unsigned char *)key, raw, 16);
        assert_int_equal(kl, 24);
        if (!ws_key_valid(key, (size_t)kl))
            fail_msg("canonical key '%s' rejected", key);
    }
}

static void test_key_valid_not_nul_terminated(void **state) {
    (void)state;
    const char k[24] = {'d', 'G', 'h', 'l', 'I', 'H', 'N', 'h', 'b', 'X', 'B', 's',
                        'Z', 'S', 'B', 'u', 'b', '2', '5', 'j', 'Z', 'Q', '=', '='};
    assert_true(ws_key_valid(k, sizeof(k)));
    /* a valid key followed by more bytes is judged on len */
    const char longer[] = "dGhlIHNhbXBsZSBub25jZQ==AAAA";
    assert_true(ws_key_valid(longer, 24));
    assert_false(ws_key_valid(longer, 28));
}

static void test_key_valid_wrong_length(void **state) {
    (void)state;
    assert_false(kv(""));
    assert_false(ws_key_valid("dGhlIHNhbXBsZSBub25jZQ==", 0));
    assert_false(kv("dGhlIHNhbXBsZSBub25jZQ="));    /* 23 */
    assert_false(kv("dGhlIHNhbXBsZSBub25jZQ"));     /* 22, no padding */
    assert_false(kv("dGhlIHNhbXBsZSBub25jZQ==="));  /* 25 */
    assert_false(kv("AdGhlIHNhbXBsZSBub25jZQ==")); /* 25 */
    assert_false(kv("dGhlIHNhbXBsZSBub25jZQ==    "));
    assert_false(kv(" dGhlIHNhbXBsZSBub25jZQ=="));
    /* base64 of 15 and 17 and 20 bytes */
    assert_false(kv("AAAAAAAAAAAAAAAAAAAA"));
    assert_false(kv("AAAAAAAAAAAAAAAAAAAAAAA="));  /* 23 chars + one pad */
    assert_false(kv("AAAAAAAAAAAAAAAAAAAAAAAAAAA="));
    assert_false(kv("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
}

static void test_key_valid_missing_padding(void **state) {
    (void)state;
    assert_false(kv("dGhlIHNhbXBsZSBub25jZQAA"));
    assert_false(kv("dGhlIHNhbXBsZSBub25jZQA="));
    assert_false(kv("dGhlIHNhbXBsZSBub25jZQ=A"));
    assert_false(kv("dGhlIHNhbXBsZSBub25jZQ= "));
    assert_false(kv("dGhlIHNhbXBsZSBub25jZQ =")); /* padding must be the last two chars */
    assert_false(kv("dGhlIHNhbXBsZSBub25j==ZQ"));
}

static void test_key_valid_bad_chars(void **state) {
    (void)state;
    const char *good = "dGhlIHNhbXBsZSBub25jZQ==";
    /* replace each of the first 22 characters with each bad character */
    const char bad[] = {'-', '_', ' ', '\t', '=', '.', '!', '*', '\r', '\n', '\0', '\x7f', '\x80', '\xc3', '\xff', ':', '@', '[', '`', '{'};
    for (size_t pos = 0; pos < 22; pos++)
        for (size_t b = 0; b < sizeof(bad); b++) {
            char k[24];
            memcpy(k, good, 24);
            k[pos] = bad[b];
            if (ws_key_valid(k, 24))
                fail_msg("key with 0x%02x at %zu accepted", (unsigned)(unsigned char)bad[b], pos);
        }
    /* base64url alphabet is not base64 */
    assert_false(kv("dGhlIHNhbXBsZSB-b25jZQ=="));
    assert_false(kv("dGhlIHNhbXBsZSB_b25jZQ=="));
}

static void test_key_valid_non_canonical(void **state) {
    (void)state;
    /* 16 bytes = 128 bits; the 22nd character carries only 2 of its 6 bits,
     * so its low 4 bits must be 0: only A, Q, g, w are canonical */
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 0; i < 64; i++) {
        char k[25];
        memcpy(k, "dGhlIHNhbXBsZSBub25jZQ==", 25);
        k[21] = alphabet[i];
        bool expect = (i & 0x0F) == 0;
        if (ws_key_valid(k, 24) != expect)
            fail_msg("key '%s': expected %d", k, expect);
    }
    assert_false(kv("dGhlIHNhbXBsZSBub25jZR=="));
    assert_false(kv("dGhlIHNhbXBsZSBub25jZB=="));
    assert_false(kv("dGhlIHNhbXBsZSBub25jZ/=="));
}

/* ---- http_header_has_token ---------------------------------------------- */

static bool ht(const char *v, const char *token) { return http_header_has_token(v, strlen(v), token); }

static void test_token_basic(void **state) {
    (void)state;
    assert_true(ht("Upgrade", "upgrade"));
    assert_true(ht("upgrade", "upgrade"));
    assert_true(ht("UPGRADE", "upgrade"));
    assert_true(ht("uPgRaDe", "UpGrAdE"));
    assert_true(ht("keep-alive, Upgrade", "upgrade"));
    assert_true(ht("keep-alive, Upgrade", "keep-alive"));
    assert_true(ht("Upgrade, keep-alive", "upgrade"));
    assert_true(ht("Upgrade,keep-alive", "keep-alive"));
    assert_true(ht("websocket", "websocket"));
    assert_true(ht("WebSocket", "websocket"));
}

static void test_token_no_partial_match(void **state) {
    (void)state;
    assert_false(ht("upgrades", "upgrade"));
    assert_false(ht("upgrade", "upgrades"));
    assert_false(ht("keep-alive, upgrades", "upgrade"));
    assert_false(ht("xupgrade", "upgrade"));
    assert_false(ht("keep-alive", "keep"));
    assert_false(ht("keep-alive", "alive"));
    assert_false(ht("up grade", "upgrade"));
    assert_false(ht("upgrade-insecure", "upgrade"));
    assert_false(ht("close", "upgrade"));
    assert_false(ht("websocket2", "websocket"));
}

static void test_token_whitespace(void **state) {
    (void)state;
    assert_true(ht("  Upgrade", "upgrade"));
    assert_true(ht("Upgrade  ", "upgrade"));
    assert_true(ht("\tUpgrade\t", "upgrade"));
    assert_true(ht("keep-alive,\tUpgrade", "upgrade"));
    assert_true(ht("keep-alive ,Upgrade", "keep-alive"));
    assert_true(ht("keep-alive \t, \t Upgrade \t", "upgrade"));
    assert_true(ht("keep-alive \t, \t Upgrade \t", "keep-alive"));
    assert_true(ht(",,Upgrade,,", "upgrade"));
    assert_true(ht(" , ,Upgrade", "upgrade"));
    assert_true(ht("a, b, c, d, e, Upgrade", "upgrade"));
    assert_true(ht("Upgrade, a, b", "upgrade"));
}

static void test_token_empty(void **state) {
    (void)state;
    assert_false(ht("", "upgrade"));
    assert_false(http_header_has_token(NULL, 0, "upgrade"));
    assert_false(ht(" ", "upgrade"));
    assert_false(ht("\t \t", "upgrade"));
    assert_false(ht(",", "upgrade"));
    assert_false(ht(" , , ", "upgrade"));
}

static void test_token_uses_len(void **state) {
    (void)state;
    /* only len bytes are looked at; the value need not be NUL-terminated */
    const char v[] = "keep-alive, Upgrade";
    assert_true(http_header_has_token(v, sizeof(v) - 1, "upgrade"));
    assert_false(http_header_has_token(v, sizeof(v) - 2, "upgrade")); /* "Upgrad" */
    assert_true(http_header_has_token(v, 10, "keep-alive"));
    assert_false(http_header_has_token(v, 9, "keep-alive"));
    assert_false(http_header_has_token(v, 0, "keep-alive"));
    const char w[] = "websocketXYZ";
    assert_true(http_header_has_token(w, 9, "websocket"));
    const char x[7] = {'U', 'p', 'g', 'r', 'a', 'd', 'e'};
    assert_true(http_header_has_token(x, sizeof(x), "upgrade"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_rfc_example),
        cmocka_unit_test(test_accept_more_keys),
        cmocka_unit_test(test_accept_uses_len),
        cmocka_unit_test(test_key_valid_good),
        cmocka_unit_test(test_key_valid_not_nul_terminated),
        cmocka_unit_test(test_key_valid_wrong_length),
        cmocka_unit_test(test_key_valid_missing_padding),
        cmocka_unit_test(test_key_valid_bad_chars),
        cmocka_unit_test(test_key_valid_non_canonical),
        cmocka_unit_test(test_token_basic),
        cmocka_unit_test(test_token_no_partial_match),
        cmocka_unit_test(test_token_whitespace),
        cmocka_unit_test(test_token_empty),
        cmocka_unit_test(test_token_uses_len),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
