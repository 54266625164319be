/* test_jwt.c - unit tests for HS256 JWT verification and signing
 * (src/auth/jwt.c): b64url_encode/b64url_decode, jwt_sign_hs256, jwt_verify
 * (algorithm, signature, time, claim, issuer and audience checks, malformed
 * tokens), jwt_result_str, and a known-answer token made by PyJWT.
 *
 * The .c is included so the static helpers (decode_part, aud_matches) are
 * reachable; the Makefile drops jwt.o from the link. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../../src/auth/jwt.c"

/* ---- helpers ------------------------------------------------------------ */

#define SECRET "0123456789abcdef0123456789abcdef"
#define NOW ((int64_t)1700000000)
#define LEEWAY 30
#define HDR_HS256 "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

/* PyJWT 2.6.0:
 *   jwt.encode({'sub':'u1','exp':4102444800},
 *              '0123456789abcdef0123456789abcdef', algorithm='HS256') */
#define PYJWT_TOKEN                                                                                                \
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1MSIsImV4cCI6NDEwMjQ0NDgwMH0."                                  \
    "LPMhLh8iZ20OMNoHXlbT0_7kS2pbOOktAqFPSbywQjc"

static unsigned char secret_buf[] = SECRET;

/* A verifier accepting HS256 with SECRET and LEEWAY seconds of leeway. */
static struct jwt_verifier verifier(void) {
    struct jwt_verifier v;
    memset(&v, 0, sizeof(v));
    v.algs = JWT_HS256;
    v.secret = secret_buf;
    v.secret_len = sizeof(secret_buf) - 1;
    v.leeway_s = LEEWAY;
    return v;
}

/* Builds "b64(header).b64(payload).b64(HMAC-SHA256(key, first two parts))"
 * by hand. key == NULL leaves the signature part empty. Returns a malloc'd
 * token. */
static char *make_token_raw(const char *key, const void *hdr, size_t hlen, const void *pl, size_t plen) {
    size_t cap = 4 * ((hlen + plen) / 3 + 4) + 128;
    char *t = malloc(cap);
    assert_non_null(t);
    size_t n = b64url_encode(hdr, hlen, t);
    t[n++] = '.';
    n += b64url_encode(pl, plen, t + n);
    t[n++] = '.';
    t[n] = '\0';
    if (key) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int ml = 0;
        assert_non_null(HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)t, n - 1, mac, &ml));
        assert_int_equal(ml, 32);
        n += b64url_encode(mac, ml, t + n);
    }
    assert_true(n < cap);
    return t;
}

static char *make_token(const char *key, const char *hdr, const char *payload) {
    return make_token_raw(key, hdr, strlen(hdr), payload, strlen(payload));
}

/* A token signed by jwt_sign_hs256 with SECRET. */
static char *sign(const char *payload) {
    char *t = jwt_sign_hs256(secret_buf, sizeof(secret_buf) - 1, payload);
    assert_non_null(t);
    return t;
}

static enum jwt_result verify_at(const struct jwt_verifier *v, const char *tok, int64_t now,
                                 struct jwt_claims *out) {
    struct jwt_claims scratch;
    if (!out)
        out = &scratch;
    memset(out, 0, sizeof(*out));
    return jwt_verify(v, tok, strlen(tok), now, out);
}

/* Verifies tok (not freed) at NOW with the default verifier and checks the
 * result. */
#define expect_result(tok, want)                                                                                   \
    do {                                                                                                           \
        struct jwt_verifier v_ = verifier();                                                                       \
        enum jwt_result got_ = verify_at(&v_, (tok), NOW, NULL);                                                   \
        if (got_ != (want))                                                                                        \
            fail_msg("%s: expected %s, got %s", (tok), jwt_result_str(want), jwt_result_str(got_));                \
    } while (0)

/* Signs payload with jwt_sign_hs256 and expects want at NOW. */
static void expect_payload(const char *payload, enum jwt_result want) {
    char *t = sign(payload);
    struct jwt_verifier v = verifier();
    enum jwt_result got = verify_at(&v, t, NOW, NULL);
    if (got != want)
        fail_msg("payload %s: expected %s, got %s", payload, jwt_result_str(want), jwt_result_str(got));
    free(t);
}

/* ---- base64url ---------------------------------------------------------- */

static void test_b64url_known_vectors(void **state) {
    (void)state;
    /* RFC 4648 section 10, without padding */
    static const struct {
        const char *in, *out;
    } V[] = {
        {"", ""},       {"f", "Zg"},         {"fo", "Zm8"},        {"foo", "Zm9v"},
        {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"},
    };
    for (size_t i = 0; i < sizeof(V) / sizeof(V[0]); i++) {
        char out[32];
        memset(out, 'X', sizeof(out));
        size_t n = b64url_encode((const unsigned char *)V[i].in, strlen(V[i].in), out);
        assert_int_equal(n, strlen(V[i].out));
        assert_string_equal(out, V[i].out);
        unsigned char dec[32];
        long d = b64url_decode(V[i].out, strlen(V[i].out), dec);
        assert_int_equal(d, (long)strlen(V[i].in));
        assert_memory_equal(dec, V[i].in, (size_t)d);
    }
    /* the URL-safe alphabet: 62 is '-', 63 is '_' (standard base64 "+/8=") */
    const unsigned char hi[] = {0xfb, 0xff};
    char out[8];
    assert_int_equal(b64url_encode(hi, 2, out), 3);
    assert_string_equal(out, "-_8");
    unsigned char dec[8];
    assert_int_equal(b64url_decode("-_8", 3, dec), 2);
    assert_memory_equal(dec, hi, 2);
    const unsigned char all[] = {0xf8, 0x00, 0x00};
    assert_int_equal(b64url_encode(all, 3, out), 4);
    assert_string_equal(out, "-AAA");
}

static void test_b64url_round_trip(void **state) {
    (void)state;
    uint32_t seed = 12345;
    for (size_t len = 0; len <= 300; len++) {
        unsigned char in[300], dec[300 + 3];
        char enc[4 * 100 + 8];
        for (size_t i = 0; i < len; i++) {
            seed = seed * 1103515245u + 12345u;
            in[i] = (unsigned char)(seed >> 16);
        }
        memset(enc, 'X', sizeof(enc));
        size_t n = b64url_encode(in, len, enc);
        assert_int_equal(n, (4 * len + 2) / 3); /* no padding */
        assert_int_equal(enc[n], '\0');
        assert_int_not_equal(n % 4, 1);
        for (size_t i = 0; i < n; i++)
            if (!strchr(B64URL, enc[i]))
                fail_msg("len %zu: '%c' is not in the base64url alphabet", len, enc[i]);
        long d = b64url_decode(enc, n, dec);
        assert_int_equal(d, (long)len);
        if (len)
            assert_memory_equal(dec, in, len);
        /* padding is another spelling of the same bytes: refused */
        char padded[sizeof(enc) + 3];
        memcpy(padded, enc, n);
        size_t pn = n;
        while (pn % 4)
            padded[pn++] = '=';
        if (pn != n)
            assert_int_equal(b64url_decode(padded, pn, dec), -1);
        padded[pn++] = '=';
        assert_int_equal(b64url_decode(padded, pn, dec), -1);
        /* spare bits set in the last character: refused */
        if (n % 4) {
            char odd[sizeof(enc)];
            memcpy(odd, enc, n);
            odd[n - 1] = B64URL[strchr(B64URL, odd[n - 1]) - B64URL + 1];
            assert_int_equal(b64url_decode(odd, n, dec), -1);
        }
    }
}

static void test_b64url_decode_rejects(void **state) {
    (void)state;
    static const char *BAD[] = {
        /* lengths 4 or 6, so only the character can be the reason */
        "Zm9v+A", "Zm9v/A", /* the standard alphabet's 62 and 63 */
        "Zm 9",   "Zm9\n",  "Zm.9",   "Z=m9", /* '=' before the end */
        "=Zm9",   "Zm9\x80", "Z\xc3\xa4Z", "Zm9v\t\t",
        /* padding, even where standard base64 would need it */
        "Zg==", "Zm8=", "Zm9v=", "Zm9v====", "Zm9vYg==", "==",
    };
    unsigned char out[32];
    for (size_t i = 0; i < sizeof(BAD) / sizeof(BAD[0]); i++)
        if (b64url_decode(BAD[i], strlen(BAD[i]), out) != -1)
            fail_msg("'%s' should be rejected", BAD[i]);
    /* NUL inside the given length */
    assert_int_equal(b64url_decode("Zm\0v", 4, out), -1);
    /* len % 4 == 1 can encode no whole byte */
    static const char *ONE[] = {"A", "Zm9vY", "Zm9vYmFyZ", "A===", "Zm9vY="};
    for (size_t i = 0; i < sizeof(ONE) / sizeof(ONE[0]); i++)
        if (b64url_decode(ONE[i], strlen(ONE[i]), out) != -1)
            fail_msg("'%s' (length %% 4 == 1) should be rejected", ONE[i]);
    /* the length argument bounds the read: "Zm9v" of "Zm9v!!!" */
    assert_int_equal(b64url_decode("Zm9v!!!", 4, out), 3);
    assert_memory_equal(out, "foo", 3);
    assert_int_equal(b64url_decode("", 0, out), 0);
}

/* ---- signing ------------------------------------------------------------ */

static void test_known_answer_pyjwt(void **state) {
    (void)state;
    struct jwt_verifier v = verifier();
    struct jwt_claims c;
    assert_int_equal(verify_at(&v, PYJWT_TOKEN, NOW, &c), JWT_OK);
    assert_string_equal(c.sub, "u1");
    assert_string_equal(c.role, "");
    assert_true(c.exp == 4102444800LL);
    /* PyJWT serialises with the same header and compact separators, so
     * jwt_sign_hs256 must produce the identical token */
    char *t = sign("{\"sub\":\"u1\",\"exp\":4102444800}");
    assert_string_equal(t, PYJWT_TOKEN);
    free(t);
    /* and by hand with the same key */
    t = make_token(SECRET, HDR_HS256, "{\"sub\":\"u1\",\"exp\":4102444800}");
    assert_string_equal(t, PYJWT_TOKEN);
    free(t);
    /* valid until exactly exp + leeway */
    assert_int_equal(verify_at(&v, PYJWT_TOKEN, 4102444800LL + LEEWAY, NULL), JWT_OK);
    assert_int_equal(verify_at(&v, PYJWT_TOKEN, 4102444800LL + LEEWAY + 1, NULL), JWT_EXPIRED);
}

static void test_sign_shape(void **state) {
    (void)state;
    char *t = sign("{\"sub\":\"x\",\"exp\":1}");
    char *d1 = strchr(t, '.');
    assert_non_null(d1);
    char *d2 = strchr(d1 + 1, '.');
    assert_non_null(d2);
    assert_null(strchr(d2 + 1, '.'));
    assert_int_equal(strlen(d2 + 1), 43); /* 32-byte MAC, unpadded */
    unsigned char hdr[64];
    long n = b64url_decode(t, (size_t)(d1 - t), hdr);
    assert_int_equal(n, (long)strlen(HDR_HS256));
    assert_memory_equal(hdr, HDR_HS256, (size_t)n);
    for (const char *p = t; *p; p++)
        assert_true(*p == '.' || strchr(B64URL, *p));
    free(t);
}

/* ---- valid tokens ------------------------------------------------------- */

static void test_valid_token(void **state) {
    (void)state;
    char *t = sign("{\"sub\":\"alice\",\"role\":\"trader\",\"exp\":1700003600,\"iat\":1700000000,"
                   "\"nbf\":1699999000,\"extra\":{\"x\":[1,2]}}");
    struct jwt_verifier v = verifier();
    struct jwt_claims c;
    memset(&c, 0x55, sizeof(c));
    assert_int_equal(jwt_verify(&v, t, strlen(t), NOW, &c), JWT_OK);
    assert_string_equal(c.sub, "alice");
    assert_string_equal(c.role, "trader");
    assert_true(c.exp == 1700003600LL);
    free(t);

    /* no role: "" */
    t = sign("{\"sub\":\"bob\",\"exp\":1700003600}");
    memset(&c, 0x55, sizeof(c));
    assert_int_equal(jwt_verify(&v, t, strlen(t), NOW, &c), JWT_OK);
    assert_string_equal(c.sub, "bob");
    assert_string_equal(c.role, "");
    free(t);

    /* exp as a JSON real is a NumericDate too */
    t = sign("{\"sub\":\"bob\",\"exp\":1700003600.75}");
    assert_int_equal(verify_at(&v, t, NOW, &c), JWT_OK);
    assert_true(c.exp == 1700003600LL);
    free(t);

    /* header with extra fields and no typ */
    char *h = make_token(SECRET, "{\"kid\":\"k1\",\"alg\":\"HS256\"}", "{\"sub\":\"carol\",\"exp\":1700003600}");
    assert_int_equal(verify_at(&v, h, NOW, &c), JWT_OK);
    assert_string_equal(c.sub, "carol");
    free(h);
}

static void test_length_bounds_read(void **state) {
    (void)state;
    /* the token need not be NUL-terminated: only len bytes count */
    char *t = sign("{\"sub\":\"alice\",\"exp\":1700003600}");
    size_t n = strlen(t);
    char *buf = malloc(n + 8);
    assert_non_null(buf);
    memcpy(buf, t, n);
    memcpy(buf + n, ".x.y.z!!", 8);
    struct jwt_verifier v = verifier();
    struct jwt_claims c;
    assert_int_equal(jwt_verify(&v, buf, n, NOW, &c), JWT_OK);
    assert_string_equal(c.sub, "alice");
    /* one byte short: the signature no longer matches */
    assert_int_equal(jwt_verify(&v, buf, n - 1, NOW, &c), JWT_BAD_SIGNATURE);
    free(buf);
    free(t);
}

static void test_claim_length_limits(void **state) {
    (void)state;
    char sub[200], pl[400];
    struct jwt_verifier v = verifier();
    struct jwt_claims c;
    /* sub of 127 bytes fits sub[128] */
    memset(sub, 'a', 127);
    sub[127] = '\0';
    snprintf(pl, sizeof(pl), "{\"sub\":\"%s\",\"exp\":1700003600}", sub);
    char *t = sign(pl);
    assert_int_equal(verify_at(&v, t, NOW, &c), JWT_OK);
    assert_string_equal(c.sub, sub);
    free(t);
    /* 128 bytes does not */
    memset(sub, 'a', 128);
    sub[128] = '\0';
    snprintf(pl, sizeof(pl), "{\"sub\":\"%s\",\"exp\":1700003600}", sub);
    expect_payload(pl, JWT_BAD_CLAIMS);
    /* role of 31 bytes fits role[32]; 32 does not */
    char role[40];
    memset(role, 'r', 31);
    role[31] = '\0';
    snprintf(pl, sizeof(pl), "{\"sub\":\"s\",\"role\":\"%s\",\"exp\":1700003600}", role);
    t = sign(pl);
    assert_int_equal(verify_at(&v, t, NOW, &c), JWT_OK);
    assert_string_equal(c.role, role);
    free(t);
    memset(role, 'r', 32);
    role[32] = '\0';
    snprintf(pl, sizeof(pl), "{\"sub\":\"s\",\"role\":\"%s\",\"exp\":1700003600}", role);
    expect_payload(pl, JWT_BAD_CLAIMS);
}

/* ---- signature ---------------------------------------------------------- */

static void test_wrong_secret(void **state) {
    (void)state;
    char *t = make_token("another-secret-another-secret-xx", HDR_HS256, "{\"sub\":\"alice\",\"exp\":1700003600}");
    expect_result(t, JWT_BAD_SIGNATURE);
    free(t);
    /* the verifier's key differs by one byte */
    t = sign("{\"sub\":\"alice\",\"exp\":1700003600}");
    unsigned char other[] = SECRET;
    other[0] ^= 1;
    struct jwt_verifier v = verifier();
    v.secret = other;
    assert_int_equal(verify_at(&v, t, NOW, NULL), JWT_BAD_SIGNATURE);
    /* a prefix of the key */
    v.secret = secret_buf;
    v.secret_len = sizeof(secret_buf) - 2;
    assert_int_equal(verify_at(&v, t, NOW, NULL), JWT_BAD_SIGNATURE);
    free(t);
}

static void test_tampered(void **state) {
    (void)state;
    char *good = sign("{\"sub\":\"alice\",\"role\":\"viewer\",\"exp\":1700003600}");
    char *evil = sign("{\"sub\":\"alice\",\"role\":\"super_admin\",\"exp\":1700003600}");
    expect_result(good, JWT_OK);
    /* evil's header.payload with good's signature */
    const char *gs = strrchr(good, '.');
    const char *es = strrchr(evil, '.');
    char *mix = malloc(strlen(evil) + strlen(good) + 1);
    assert_non_null(mix);
    memcpy(mix, evil, (size_t)(es - evil));
    strcpy(mix + (es - evil), gs);
    expect_result(mix, JWT_BAD_SIGNATURE);
    free(mix);

    /* flipping any single character of the token (to another alphabet
     * character) never verifies */
    size_t n = strlen(good);
    char *t = malloc(n + 1);
    assert_non_null(t);
    struct jwt_verifier v = verifier();
    for (size_t i = 0; i < n; i++) {
        if (good[i] == '.')
            continue;
        memcpy(t, good, n + 1);
        /* flip the top bit of the 6-bit value: never a spare bit */
        t[i] = B64URL[b64val(t[i]) ^ 32];
        enum jwt_result r = verify_at(&v, t, NOW, NULL);
        if (r == JWT_OK)
            fail_msg("token with byte %zu changed still verifies", i);
    }
    /* signature changed, truncated, extended, emptied */
    memcpy(t, good, n + 1);
    t[n - 1] = t[n - 1] == 'A' ? 'Q' : 'A';
    expect_result(t, JWT_BAD_SIGNATURE);
    memcpy(t, good, n + 1);
    t[n - 1] = '\0';
    expect_result(t, JWT_BAD_SIGNATURE);
    memcpy(t, good, n + 1);
    t[n - 4] = '\0';
    expect_result(t, JWT_BAD_SIGNATURE);
    memcpy(t, good, n + 1);
    *(strrchr(t, '.') + 1) = '\0';
    expect_result(t, JWT_BAD_SIGNATURE);
    free(t);
    char *longer = malloc(n + 200);
    assert_non_null(longer);
    snprintf(longer, n + 200, "%sAAAA", good);
    expect_result(longer, JWT_BAD_SIGNATURE);
    snprintf(longer, n + 200, "%s%s", good, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    expect_result(longer, JWT_BAD_SIGNATURE);
    /* signature not base64url */
    memcpy(longer, good, n + 1);
    longer[n - 2] = '+';
    expect_result(longer, JWT_BAD_SIGNATURE);
    free(longer);
    free(good);
    free(evil);
}

/* A valid token re-spelt (padding on a part, spare bits set) is another
 * token: a verifier that accepts it makes tokens malleable. */
static void test_non_canonical_spellings(void **state) {
    (void)state;
    char *good = sign("{\"sub\":\"alice\",\"exp\":1700003600}");
    expect_result(good, JWT_OK);
    size_t n = strlen(good);
    char *t = malloc(n + 8);
    assert_non_null(t);
    snprintf(t, n + 8, "%s=", good);
    expect_result(t, JWT_BAD_SIGNATURE);
    snprintf(t, n + 8, "%s==", good);
    expect_result(t, JWT_BAD_SIGNATURE);
    /* spare bits of the signature's last character (43 chars: 2 spare) */
    memcpy(t, good, n + 1);
    int last = b64val(t[n - 1]);
    assert_int_equal(last & 3, 0);
    t[n - 1] = B64URL[last | 1];
    expect_result(t, JWT_BAD_SIGNATURE);
    free(t);
    free(good);
    /* a payload padded to a multiple of 4 and signed as sent: the signature
     * is good, the spelling is not */
    const char *pl = "{\"sub\":\"alic\",\"exp\":1700003600}"; /* 31 bytes: 42 chars + "==" */
    char h[64], p[64], si[160], tok[256];
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int ml = 0;
    b64url_encode((const unsigned char *)HDR_HS256, strlen(HDR_HS256), h);
    size_t pn = b64url_encode((const unsigned char *)pl, strlen(pl), p);
    assert_int_equal(pn % 4, 2);
    memcpy(p + pn, "==", 3);
    int sn = snprintf(si, sizeof(si), "%s.%s", h, p);
    assert_non_null(HMAC(EVP_sha256(), SECRET, 32, (unsigned char *)si, (size_t)sn, mac, &ml));
    size_t tn = (size_t)snprintf(tok, sizeof(tok), "%s.", si);
    b64url_encode(mac, ml, tok + tn);
    expect_result(tok, JWT_MALFORMED);
    /* a header with "crit" asks for an extension we do not implement */
    char *c = make_token(SECRET, "{\"alg\":\"HS256\",\"crit\":[\"b64\"],\"b64\":false}",
                         "{\"sub\":\"alice\",\"exp\":1700003600}");
    expect_result(c, JWT_MALFORMED);
    free(c);
}

/* ---- algorithm ---------------------------------------------------------- */

static void test_alg_none(void **state) {
    (void)state;
    const char *pl = "{\"sub\":\"alice\",\"role\":\"super_admin\",\"exp\":1700003600}";
    char *t = make_token(NULL, "{\"alg\":\"none\",\"typ\":\"JWT\"}", pl);
    assert_int_equal(t[strlen(t) - 1], '.'); /* empty signature */
    expect_result(t, JWT_BAD_ALG);
    free(t);
    static const char *HDRS[] = {
        "{\"alg\":\"none\"}", "{\"alg\":\"None\"}", "{\"alg\":\"NONE\"}", "{\"alg\":\"\"}",
        "{\"typ\":\"JWT\"}",  "{}",                 "{\"alg\":null}",   "{\"alg\":256}",
        "{\"alg\":[\"HS256\"]}", "{\"alg\":\"hs256\"}", "{\"alg\":\"HS256 \"}",
    };
    for (size_t i = 0; i < sizeof(HDRS) / sizeof(HDRS[0]); i++) {
        t = make_token(NULL, HDRS[i], pl);
        expect_result(t, JWT_BAD_ALG);
        free(t);
        /* even with an HMAC that would match */
        t = make_token(SECRET, HDRS[i], pl);
        expect_result(t, JWT_BAD_ALG);
        free(t);
    }
}

static void test_alg_other(void **state) {
    (void)state;
    const char *pl = "{\"sub\":\"alice\",\"exp\":1700003600}";
    static const char *ALGS[] = {"RS256", "HS512", "HS384", "ES256", "PS256", "EdDSA"};
    for (size_t i = 0; i < sizeof(ALGS) / sizeof(ALGS[0]); i++) {
        char hdr[64];
        snprintf(hdr, sizeof(hdr), "{\"alg\":\"%s\",\"typ\":\"JWT\"}", ALGS[i]);
        char *t = make_token(SECRET, hdr, pl); /* HMAC-SHA256 with our key */
        expect_result(t, JWT_BAD_ALG);
        free(t);
    }
}

static void test_verifier_without_hs256(void **state) {
    (void)state;
    char *t = sign("{\"sub\":\"alice\",\"exp\":1700003600}");
    struct jwt_verifier v = verifier();
    v.secret = NULL;
    v.secret_len = 0;
    assert_int_equal(verify_at(&v, t, NOW, NULL), JWT_BAD_ALG);
    v = verifier();
    v.secret_len = 0; /* empty key */
    assert_int_equal(verify_at(&v, t, NOW, NULL), JWT_BAD_ALG);
    v = verifier();
    v.algs = 0; /* HS256 not configured */
    assert_int_equal(verify_at(&v, t, NOW, NULL), JWT_BAD_ALG);
    v = verifier();
    v.algs = ~(unsigned)JWT_HS256;
    assert_int_equal(verify_at(&v, t, NOW, NULL), JWT_BAD_ALG);
    free(t);
}

/* ---- time claims -------------------------------------------------------- */

static void test_expiry(void **state) {
    (void)state;
    char *t = sign("{\"sub\":\"alice\",\"exp\":1700000000}");
    struct jwt_verifier v = verifier();
    assert_int_equal(verify_at(&v, t, NOW - 1000, NULL), JWT_OK);
    assert_int_equal(verify_at(&v, t, NOW, NULL), JWT_OK);
    assert_int_equal(verify_at(&v, t, NOW + 1, NULL), JWT_OK);      /* within leeway */
    assert_int_equal(verify_at(&v, t, NOW + LEEWAY, NULL), JWT_OK); /* at the edge */
    assert_int_equal(verify_at(&v, t, NOW + LEEWAY + 1, NULL), JWT_EXPIRED);
    assert_int_equal(verify_at(&v, t, NOW + 86400, NULL), JWT_EXPIRED);
    v.leeway_s = 0;
    assert_int_equal(verify_at(&v, t, NOW, NULL), JWT_OK);
    assert_int_equal(verify_at(&v, t, NOW + 1, NULL), JWT_EXPIRED);
    free(t);
    /* exp 0 and negative */
    expect_payload("{\"sub\":\"alice\",\"exp\":0}", JWT_EXPIRED);
    expect_payload("{\"sub\":\"alice\",\"exp\":-5}", JWT_EXPIRED);
    /* a real exp expired */
    expect_payload("{\"sub\":\"alice\",\"exp\":1699999000.5}", JWT_EXPIRED);
}

/* A far-future exp is a token that (practically) never expires. Neither
 * adding the leeway to an exp at the top of the int64 range (signed
 * overflow) nor converting a huge real exp to int64_t (out-of-range
 * conversion) may turn it into "expired": both are undefined behaviour, and
 * in practice they wrap to a negative exp. Accepted results: ok, or
 * bad_claims for an out-of-range NumericDate. */
static void test_exp_far_future(void **state) {
    (void)state;
    static const char *PLS[] = {
        "{\"sub\":\"alice\",\"exp\":9223372036854775807}",
        "{\"sub\":\"alice\",\"exp\":9223372036854775790}",
        "{\"sub\":\"alice\",\"exp\":1e300}",
        "{\"sub\":\"alice\",\"exp\":9.3e18}",
    };
    struct jwt_verifier v = verifier();
    int bad = 0;
    for (size_t i = 0; i < sizeof(PLS) / sizeof(PLS[0]); i++) {
        char *t = sign(PLS[i]);
        enum jwt_result r = verify_at(&v, t, NOW, NULL);
        if (r != JWT_OK && r != JWT_BAD_CLAIMS) {
            print_error("payload %s, leeway %d: got %s, expected ok (or bad_claims)\n", PLS[i], LEEWAY,
                        jwt_result_str(r));
            bad++;
        }
        free(t);
    }
    if (bad)
        fail_msg("%d far-future exp values were reported as %s", bad, "not ok");
    /* with no leeway INT64_MAX itself is fine (no addition overflows) */
    v.leeway_s = 0;
    char *t = sign(PLS[0]);
    assert_int_equal(verify_at(&v, t, NOW, NULL), JWT_OK);
    free(t);
    /* the exp handed out is saturated, so callers may add a leeway or
     * convert to milliseconds without overflow */
    struct jwt_claims c;
    v.leeway_s = LEEWAY;
    for (size_t i = 0; i < 2; i++) {
        t = sign(PLS[i]);
        assert_int_equal(verify_at(&v, t, NOW, &c), JWT_OK);
        assert_true(c.exp == JWT_TIME_MAX);
        free(t);
    }
    t = sign("{\"sub\":\"alice\",\"exp\":253402300798}");
    assert_int_equal(verify_at(&v, t, NOW, &c), JWT_OK);
    assert_true(c.exp == JWT_TIME_MAX - 1);
    free(t);
}

static void test_not_yet_valid(void **state) {
    (void)state;
    static const char *CLAIMS[] = {"nbf", "iat"};
    struct jwt_verifier v = verifier();
    for (size_t i = 0; i < 2; i++) {
        char pl[128];
        snprintf(pl, sizeof(pl), "{\"sub\":\"alice\",\"exp\":1700003600,\"%s\":%lld}", CLAIMS[i],
                 (long long)(NOW + LEEWAY + 1));
        char *t = sign(pl);
        assert_int_equal(verify_at(&v, t, NOW, NULL), JWT_NOT_YET_VALID);
        assert_int_equal(verify_at(&v, t, NOW + 1, NULL), JWT_OK); /* now within leeway */
        free(t);
        snprintf(pl, sizeof(pl), "{\"sub\":\"alice\",\"exp\":1700003600,\"%s\":%lld}", CLAIMS[i],
                 (long long)(NOW + LEEWAY));
        t = sign(pl);
        assert_int_equal(verify_at(&v, t, NOW, NULL), JWT_OK);
        v.leeway_s = 0;
        assert_int_equal(verify_at(&v, t, NOW, NULL), JWT_NOT_YET_VALID);
        v.leeway_s = LEEWAY;
        free(t);
        snprintf(pl, sizeof(pl), "{\"sub\":\"alice\",\"exp\":1700003600,\"%s\":%lld}", CLAIMS[i],
                 (long long)(NOW + 3600));
        expect_payload(pl, JWT_NOT_YET_VALID);
        snprintf(pl, sizeof(pl), "{\"sub\":\"alice\",\"exp\":1700003600,\"%s\":%lld}", CLAIMS[i],
                 (long long)(NOW - 3600));
        expect_payload(pl, JWT_OK);
        /* as a real */
        snprintf(pl, sizeof(pl), "{\"sub\":\"alice\",\"exp\":1700003600,\"%s\":%lld.5}", CLAIMS[i],
                 (long long)(NOW + 3600));
        expect_payload(pl, JWT_NOT_YET_VALID);
    }
    /* expiry is checked before nbf: a token both expired and not yet valid */
    expect_payload("{\"sub\":\"alice\",\"exp\":1,\"nbf\":1800000000}", JWT_EXPIRED);
}

/* ---- claims ------------------------------------------------------------- */

static void test_bad_claims(void **state) {
    (void)state;
    static const char *BAD[] = {
        "{\"exp\":1700003600}",                                  /* missing sub */
        "{\"sub\":\"\",\"exp\":1700003600}",                     /* empty sub */
        "{\"sub\":null,\"exp\":1700003600}",                     /* sub null */
        "{\"sub\":42,\"exp\":1700003600}",                       /* sub a number */
        "{\"sub\":[\"alice\"],\"exp\":1700003600}",              /* sub an array */
        "{\"sub\":\"alice\"}",                                   /* missing exp */
        "{\"sub\":\"alice\",\"exp\":\"1700003600\"}",            /* exp a string */
        "{\"sub\":\"alice\",\"exp\":null}",                      /* exp null */
        "{\"sub\":\"alice\",\"exp\":true}",                      /* exp a bool */
        "{\"sub\":\"alice\",\"exp\":{}}",                        /* exp an object */
        "{\"sub\":\"alice\",\"exp\":1700003600,\"role\":5}",     /* role a number */
        "{\"sub\":\"alice\",\"exp\":1700003600,\"role\":null}",  /* role null */
        "{\"sub\":\"alice\",\"exp\":1700003600,\"role\":[\"admin\"]}",
        "{\"sub\":\"alice\",\"exp\":1700003600,\"role\":true}",
        "{\"sub\":\"alice\",\"exp\":1700003600,\"nbf\":\"0\"}",  /* nbf a string */
        "{\"sub\":\"alice\",\"exp\":1700003600,\"iat\":\"0\"}",  /* iat a string */
        "{\"sub\":\"alice\",\"exp\":1700003600,\"iat\":null}",
        "{\"sub\":\"alice\",\"exp\":\"1\",\"nbf\":1800000000}",  /* claims before time */
    };
    for (size_t i = 0; i < sizeof(BAD) / sizeof(BAD[0]); i++)
        expect_payload(BAD[i], JWT_BAD_CLAIMS);
    /* empty role string is allowed (no role) */
    expect_payload("{\"sub\":\"alice\",\"exp\":1700003600,\"role\":\"\"}", JWT_OK);
}

/* ---- issuer and audience ------------------------------------------------ */

static void test_issuer(void **state) {
    (void)state;
    struct jwt_verifier v = verifier();
    char iss[] = "https://auth.example";
    v.issuer = iss;
    static const struct {
        const char *pl;
        enum jwt_result want;
    } C[] = {
        {"{\"sub\":\"a\",\"exp\":1700003600,\"iss\":\"https://auth.example\"}", JWT_OK},
        {"{\"sub\":\"a\",\"exp\":1700003600}", JWT_BAD_ISSUER},
        {"{\"sub\":\"a\",\"exp\":1700003600,\"iss\":\"https://evil.example\"}", JWT_BAD_ISSUER},
        {"{\"sub\":\"a\",\"exp\":1700003600,\"iss\":\"https://auth.example/\"}", JWT_BAD_ISSUER},
        {"{\"sub\":\"a\",\"exp\":1700003600,\"iss\":\"https://auth.exampl\"}", JWT_BAD_ISSUER},
        {"{\"sub\":\"a\",\"exp\":1700003600,\"iss\":\"\"}", JWT_BAD_ISSUER},
        {"{\"sub\":\"a\",\"exp\":1700003600,\"iss\":7}", JWT_BAD_ISSUER},
        {"{\"sub\":\"a\",\"exp\":1700003600,\"iss\":[\"https://auth.example\"]}", JWT_BAD_ISSUER},
    };
    for (size_t i = 0; i < sizeof(C) / sizeof(C[0]); i++) {
        char *t = sign(C[i].pl);
        enum jwt_result r = verify_at(&v, t, NOW, NULL);
        if (r != C[i].want)
            fail_msg("%s: expected %s, got %s", C[i].pl, jwt_result_str(C[i].want), jwt_result_str(r));
        free(t);
    }
    /* without a configured issuer any iss is accepted */
    expect_payload("{\"sub\":\"a\",\"exp\":1700003600,\"iss\":\"whoever\"}", JWT_OK);
}

static void test_audience(void **state) {
    (void)state;
    struct jwt_verifier v = verifier();
    char aud[] = "tickgate";
    v.audience = aud;
    static const struct {
        const char *pl;
        enum jwt_result want;
    } C[] = {
        {"{\"sub\":\"a\",\"exp\":1700003600,\"aud\":\"tickgate\"}", JWT_OK},
        {"{\"sub\":\"a\",\"exp\":1700003600,\"aud\":[\"tickgate\"]}", JWT_OK},
        {"{\"sub\":\"a\",\"exp\":1700003600,\"aud\":[\"other\",\"tickgate\"]}", JWT_OK},
        {"{\"sub\":\"a\",\"exp\":1700003600,\"aud\":[1,null,\"tickgate\"]}", JWT_OK},
        {"{\"sub\":\"a\",\"exp\":1700003600}", JWT_BAD_AUDIENCE},
        {"{\"sub\":\"a\",\"exp\":1700003600,\"aud\":\"other\"}", JWT_BAD_AUDIENCE},
        {"{\"sub\":\"a\",\"exp\":1700003600,\"aud\":\"tickgatex\"}", JWT_BAD_AUDIENCE},
        {"{\"sub\":\"a\",\"exp\":1700003600,\"aud\":\"TICKGATE\"}", JWT_BAD_AUDIENCE},
        {"{\"sub\":\"a\",\"exp\":1700003600,\"aud\":[]}", JWT_BAD_AUDIENCE},
        {"{\"sub\":\"a\",\"exp\":1700003600,\"aud\":[\"other\",\"x\"]}", JWT_BAD_AUDIENCE},
        {"{\"sub\":\"a\",\"exp\":1700003600,\"aud\":[[\"tickgate\"]]}", JWT_BAD_AUDIENCE},
        {"{\"sub\":\"a\",\"exp\":1700003600,\"aud\":{\"tickgate\":1}}", JWT_BAD_AUDIENCE},
        {"{\"sub\":\"a\",\"exp\":1700003600,\"aud\":3}", JWT_BAD_AUDIENCE},
        {"{\"sub\":\"a\",\"exp\":1700003600,\"aud\":null}", JWT_BAD_AUDIENCE},
    };
    for (size_t i = 0; i < sizeof(C) / sizeof(C[0]); i++) {
        char *t = sign(C[i].pl);
        enum jwt_result r = verify_at(&v, t, NOW, NULL);
        if (r != C[i].want)
            fail_msg("%s: expected %s, got %s", C[i].pl, jwt_result_str(C[i].want), jwt_result_str(r));
        free(t);
    }
    /* issuer is checked before audience */
    char iss[] = "me";
    v.issuer = iss;
    char *t = sign("{\"sub\":\"a\",\"exp\":1700003600,\"iss\":\"you\",\"aud\":\"nope\"}");
    assert_int_equal(verify_at(&v, t, NOW, NULL), JWT_BAD_ISSUER);
    free(t);
    t = sign("{\"sub\":\"a\",\"exp\":1700003600,\"iss\":\"me\",\"aud\":\"nope\"}");
    assert_int_equal(verify_at(&v, t, NOW, NULL), JWT_BAD_AUDIENCE);
    free(t);
    t = sign("{\"sub\":\"a\",\"exp\":1700003600,\"iss\":\"me\",\"aud\":[\"tickgate\"]}");
    assert_int_equal(verify_at(&v, t, NOW, NULL), JWT_OK);
    free(t);
    /* aud_matches directly */
    json_t *j = json_loads("[\"a\",\"tickgate\"]", 0, NULL);
    assert_true(aud_matches(j, "tickgate"));
    assert_false(aud_matches(j, "tick"));
    json_decref(j);
    assert_false(aud_matches(NULL, "tickgate"));
}

/* ---- malformed tokens --------------------------------------------------- */

static void test_malformed_parts(void **state) {
    (void)state;
    char *good = sign("{\"sub\":\"alice\",\"exp\":1700003600}");
    size_t n = strlen(good);
    char *t = malloc(n + 64);
    assert_non_null(t);

    expect_result("", JWT_MALFORMED);
    expect_result("abc", JWT_MALFORMED);
    expect_result(".", JWT_MALFORMED);
    expect_result("..", JWT_MALFORMED);
    expect_result("...", JWT_MALFORMED);
    /* two parts: header.payload */
    memcpy(t, good, n + 1);
    *strrchr(t, '.') = '\0';
    expect_result(t, JWT_MALFORMED);
    /* two parts: header.payload. with the separator moved */
    memcpy(t, good, n + 1);
    *strrchr(t, '.') = 'A';
    expect_result(t, JWT_MALFORMED);
    /* four parts */
    snprintf(t, n + 64, "%s.", good);
    expect_result(t, JWT_MALFORMED);
    snprintf(t, n + 64, "%s.AAAA", good);
    expect_result(t, JWT_MALFORMED);
    snprintf(t, n + 64, "AAAA.%s", good);
    expect_result(t, JWT_MALFORMED);
    /* a NUL inside len is not a separator and not base64url */
    memcpy(t, good, n + 1);
    t[3] = '\0';
    struct jwt_verifier v = verifier();
    struct jwt_claims c;
    assert_int_equal(jwt_verify(&v, t, n, NOW, &c), JWT_MALFORMED);
    free(t);
    free(good);
}

static void test_malformed_header(void **state) {
    (void)state;
    const char *pl = "{\"sub\":\"alice\",\"exp\":1700003600}";
    static const char *HDRS[] = {
        "not json",
        "[\"HS256\"]",                                   /* JSON array */
        "[{\"alg\":\"HS256\"}]",
        "\"HS256\"",                                     /* JSON string */
        "42",
        "null",
        "",
        "{\"alg\":\"HS256\"",                            /* truncated */
        "{\"alg\":\"HS256\"} x",                         /* trailing garbage */
        "{\"alg\":\"HS256\",\"alg\":\"none\"}",          /* duplicate key */
    };
    for (size_t i = 0; i < sizeof(HDRS) / sizeof(HDRS[0]); i++) {
        char *t = make_token(SECRET, HDRS[i], pl);
        expect_result(t, JWT_MALFORMED);
        free(t);
    }
    /* header not base64url */
    char *good = sign(pl);
    char *t = malloc(strlen(good) + 1);
    assert_non_null(t);
    strcpy(t, good);
    t[5] = '*';
    expect_result(t, JWT_MALFORMED);
    /* header part of length % 4 == 1 */
    strcpy(t, good);
    memmove(t + 1, strchr(good, '.'), strlen(strchr(good, '.')) + 1);
    t[0] = 'e';
    expect_result(t, JWT_MALFORMED);
    free(t);
    free(good);
    /* the static decoder itself */
    json_t *o = decode_part("e30", 3); /* "{}" */
    assert_non_null(o);
    assert_true(json_is_object(o));
    json_decref(o);
    assert_null(decode_part("WzFd", 4)); /* "[1]" */
    assert_null(decode_part("!!!!", 4));
}

static void test_malformed_payload(void **state) {
    (void)state;
    /* correctly signed, but the payload is not a JSON object */
    static const char *PLS[] = {
        "not json", "[\"sub\",\"alice\"]", "\"alice\"", "1700003600", "", "{\"sub\":\"alice\",\"exp\":1",
        "{\"sub\":\"alice\",\"sub\":\"root\",\"exp\":1700003600}", /* duplicate key */
    };
    for (size_t i = 0; i < sizeof(PLS) / sizeof(PLS[0]); i++) {
        char *t = make_token(SECRET, HDR_HS256, PLS[i]);
        expect_result(t, JWT_MALFORMED);
        free(t);
    }
    /* an embedded NUL must not shorten sub ("admin\0x" is not "admin") */
    char *t = make_token(SECRET, HDR_HS256, "{\"sub\":\"admin\\u0000x\",\"exp\":1700003600}");
    struct jwt_verifier v = verifier();
    struct jwt_claims c;
    enum jwt_result r = verify_at(&v, t, NOW, &c);
    if (r == JWT_OK && strcmp(c.sub, "admin") == 0)
        fail_msg("sub with an embedded NUL was truncated to \"admin\"");
    free(t);
    /* payload not base64url (and signed as such) */
    const char *raw = "eyJhbGciOiJIUzI1NiJ9.e30*.";
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int ml = 0;
    assert_non_null(HMAC(EVP_sha256(), SECRET, 32, (const unsigned char *)raw, strlen(raw) - 1, mac, &ml));
    char tok[128];
    size_t n = strlen(raw);
    memcpy(tok, raw, n);
    b64url_encode(mac, ml, tok + n);
    expect_result(tok, JWT_MALFORMED);
}

/* Builds a correctly signed token of exactly `want` bytes by padding a
 * claim; returns it malloc'd. */
static char *token_of_length(size_t want) {
    char *pl = malloc(want + 64);
    assert_non_null(pl);
    for (size_t fill = want * 3 / 4 - 200; fill < want; fill++) {
        int k = snprintf(pl, want + 64, "{\"sub\":\"alice\",\"exp\":1700003600,\"pad\":\"");
        memset(pl + k, 'x', fill);
        strcpy(pl + k + fill, "\"}");
        char *t = sign(pl);
        size_t n = strlen(t);
        if (n == want) {
            free(pl);
            return t;
        }
        free(t);
        if (n > want)
            break;
    }
    free(pl);
    fail_msg("no token of exactly %zu bytes", want);
    return NULL;
}

static void test_size_limit(void **state) {
    (void)state;
    char *t = token_of_length(JWT_MAX_LEN); /* 8192: still accepted */
    assert_int_equal(strlen(t), 8192);
    expect_result(t, JWT_OK);
    free(t);
    t = token_of_length(JWT_MAX_LEN + 1);
    assert_int_equal(strlen(t), 8193);
    expect_result(t, JWT_MALFORMED);
    free(t);
    t = token_of_length(20000);
    expect_result(t, JWT_MALFORMED);
    free(t);
}

static void test_result_str(void **state) {
    (void)state;
    static const struct {
        enum jwt_result r;
        const char *s;
    } R[] = {
        {JWT_OK, "ok"},
        {JWT_MALFORMED, "malformed"},
        {JWT_BAD_ALG, "bad_alg"},
        {JWT_BAD_SIGNATURE, "bad_signature"},
        {JWT_EXPIRED, "expired"},
        {JWT_NOT_YET_VALID, "not_yet_valid"},
        {JWT_BAD_CLAIMS, "bad_claims"},
        {JWT_BAD_ISSUER, "bad_issuer"},
        {JWT_BAD_AUDIENCE, "bad_audience"},
    };
    for (size_t i = 0; i < sizeof(R) / sizeof(R[0]); i++)
        assert_string_equal(jwt_result_str(R[i].r), R[i].s);
    assert_string_equal(jwt_result_str((enum jwt_result)99), "invalid");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64url_known_vectors),
        cmocka_unit_test(test_b64url_round_trip),
        cmocka_unit_test(test_b64url_decode_rejects),
        cmocka_unit_test(test_known_answer_pyjwt),
        cmocka_unit_test(test_sign_shape),
        cmocka_unit_test(test_valid_token),
        cmocka_unit_test(test_length_bounds_read),
        cmocka_unit_test(test_claim_length_limits),
        cmocka_unit_test(test_wrong_secret),
        cmocka_unit_test(test_tampered),
        cmocka_unit_test(test_non_canonical_spellings),
        cmocka_unit_test(test_alg_none),
        cmocka_unit_test(test_alg_other),
        cmocka_unit_test(test_verifier_without_hs256),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_not_yet_valid),
        cmocka_unit_test(test_bad_claims),
        cmocka_unit_test(test_issuer),
        cmocka_unit_test(test_audience),
        cmocka_unit_test(test_malformed_parts),
        cmocka_unit_test(test_malformed_header),
        cmocka_unit_test(test_malformed_payload),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_result_str),
        /* last: under UBSan (make asan) its overflow aborts the program */
        cmocka_unit_test(test_exp_far_future),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
