/* test_jwks.c - unit tests for the JWK Set parser (src/auth/jwks.c) and
 * kid selection in jwt_verify (PROTOCOL.md section 14): each key type and
 * the algorithm it pins, refused sets (bad members, private parts,
 * duplicate kids, off-curve points, too many keys), and a token's kid
 * choosing its key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth/jwks.h"
#include "auth/jwt.h"

/* base64url of "jwks-unit-secret-0123456789abcdef0123456789" (43 bytes) */
#define SECRET "jwks-unit-secret-0123456789abcdef0123456789"
#define OCT_K "andrcy11bml0LXNlY3JldC0wMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OQ"
/* RFC 8037 A.2: an Ed25519 public key */
#define ED_X "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
/* RFC 7515 A.3: a P-256 public key */
#define EC_X "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"
#define EC_Y "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"

static struct jwks *parse(const char *text, char *err) { return jwks_parse(text, strlen(text), err, 160); }

static void test_each_type(void **state) {
    (void)state;
    char err[160] = "";
    struct jwks *s = parse("{\"keys\":[{\"kty\":\"oct\",\"kid\":\"h\",\"k\":\"" OCT_K "\",\"alg\":\"HS256\"},"
                           "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"e\",\"x\":\"" ED_X "\",\"use\":\"sig\"},"
                           "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"p\",\"x\":\"" EC_X "\",\"y\":\"" EC_Y "\"}]}",
                           err);
    assert_non_null(s);
    assert_int_equal(s->n, 3);
    assert_int_equal(jwks_find(s, "h")->alg, JWT_HS256);
    assert_int_equal(jwks_find(s, "h")->secret_len, strlen(SECRET));
    assert_memory_equal(jwks_find(s, "h")->secret, SECRET, strlen(SECRET));
    assert_int_equal(jwks_find(s, "e")->alg, JWT_EDDSA);
    assert_int_equal(jwks_find(s, "p")->alg, JWT_ES256);
    assert_null(jwks_find(s, "x"));
    assert_ptr_equal(jwks_single(s, JWT_EDDSA), jwks_find(s, "e"));
    assert_null(jwks_single(s, JWT_RS256));
    jwks_free(s);
}

static void test_refused(void **state) {
    (void)state;
    static const struct {
        const char *text, *why;
    } BAD[] = {
        {"[]", "expected"},
        {"{\"keys\":[{\"kty\":\"oct\",\"k\":\"" OCT_K "\"}]}", "kid"},
        {"{\"keys\":[{\"kty\":\"oct\",\"kid\":\"a\",\"k\":\"c2hvcnQ\"}]}", "32 bytes"},
        {"{\"keys\":[{\"kty\":\"oct\",\"kid\":\"a\",\"k\":\"" OCT_K "\"},{\"kty\":\"oct\",\"kid\":\"a\",\"k\":\"" OCT_K
         "\"}]}", "kid used twice"},
        {"{\"keys\":[{\"kty\":\"oct\",\"kid\":\"a\",\"k\":\"" OCT_K "\",\"alg\":\"EdDSA\"}]}", "alg does not match"},
        {"{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed448\",\"kid\":\"a\",\"x\":\"" ED_X "\"}]}", "Ed25519"},
        {"{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"a\",\"x\":\"" ED_X "\",\"d\":\"" ED_X "\"}]}",
         "private"},
        {"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"a\",\"x\":\"" EC_X "\",\"y\":\"" EC_X "\"}]}",
         "P-256 point"},
        {"{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"a\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}", "2048"},
        {"{\"keys\":[{\"kty\":\"none\",\"kid\":\"a\"}]}", "kty"},
        {"{\"keys\":[{\"kty\":\"oct\",\"kid\":\"a\",\"k\":\"" OCT_K "=\"}]}", "32 bytes"},
    };
    for (size_t i = 0; i < sizeof(BAD) / sizeof(BAD[0]); i++) {
        char err[160] = "";
        struct jwks *s = parse(BAD[i].text, err);
        if (s || !strstr(err, BAD[i].why))
            fail_msg("case %zu: expected refusal with '%s', got '%s'", i, BAD[i].why, err);
        assert_null(strstr(err, SECRET)); /* never key material in a message */
    }
}

static void test_too_many_keys(void **state) {
    (void)state;
    size_t cap = 128 * (JWKS_MAX_KEYS + 2);
    char *t = malloc(cap), err[160];
    size_t o = (size_t)snprintf(t, cap, "{\"keys\":[");
    for (int i = 0; i <= JWKS_MAX_KEYS; i++)
        o += (size_t)snprintf(t + o, cap - o, "%s{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"%d\",\"x\":\"%s\"}",
                              i ? "," : "", i, ED_X);
    snprintf(t + o, cap - o, "]}");
    assert_null(parse(t, err));
    assert_non_null(strstr(err, "more than"));
    free(t);
}

static void test_kid_selects_key(void **state) {
    (void)state;
    char err[160];
    struct jwks *s = parse("{\"keys\":[{\"kty\":\"oct\",\"kid\":\"h1\",\"k\":\"" OCT_K "\"},"
                           "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"e1\",\"x\":\"" ED_X "\"}]}",
                           err);
    assert_non_null(s);
    struct jwt_verifier v = {.algs = JWT_HS256 | JWT_EDDSA, .jwks = s, .leeway_s = 30};
    const char *pl = "{\"sub\":\"u\",\"exp\":4102444800}";
    struct jwt_claims cl;
    char *t = jwt_sign_hs256_kid((const unsigned char *)SECRET, strlen(SECRET), "h1", pl);
    assert_int_equal(jwt_verify(&v, t, strlen(t), 1700000000, &cl), JWT_OK);
    free(t);
    t = jwt_sign_hs256_kid((const unsigned char *)SECRET, strlen(SECRET), NULL, pl); /* the one oct key */
    assert_int_equal(jwt_verify(&v, t, strlen(t), 1700000000, &cl), JWT_OK);
    free(t);
    t = jwt_sign_hs256_kid((const unsigned char *)SECRET, strlen(SECRET), "nope", pl);
    assert_int_equal(jwt_verify(&v, t, strlen(t), 1700000000, &cl), JWT_BAD_KEY);
    free(t);
    t = jwt_sign_hs256_kid((const unsigned char *)SECRET, strlen(SECRET), "e1", pl); /* HS256 naming an OKP key */
    assert_int_equal(jwt_verify(&v, t, strlen(t), 1700000000, &cl), JWT_BAD_ALG);
    free(t);
    assert_null(jwt_sign_hs256_kid((const unsigned char *)SECRET, strlen(SECRET), "bad\"kid", pl));
    jwks_free(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_type),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_too_many_keys),
        cmocka_unit_test(test_kid_selects_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
