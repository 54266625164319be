/* fuzz_jwt.c - JWT verification and base64url (src/auth/jwt.c).
 *
 * Input: [mode][bytes...]
 *   mode bits 0-1: verifier  0 HS256 | 1 RS256 (fuzz/keys/rs256.pub.pem) |
 *                            2 ES256 (fuzz/keys/es256.pub.pem) |
 *                            3 HS256+RS256 with the RSA key, iss and aud required
 *   mode bit 2:    re-sign: bytes are "HEADER-JSON \0 PAYLOAD-JSON"; the
 *                  harness base64url-encodes both and signs them with the
 *                  HS256 secret, so the claims checks see arbitrary JSON
 *                  behind a valid signature (verifiers 0 and 3)
 *   mode bit 3:    JWK Set (auth/jwks.c): bytes are the set's text; checks
 *                  every parsed key has a kid, one algorithm and key
 *                  material of its type, kids are unique, and a token made
 *                  with an oct key of the set verifies through it
 *   otherwise:     bytes are the token as a client would send it.
 * Always: b64url_decode on the bytes, which must round-trip canonically.
 * Checks: JWT_OK only for an algorithm the verifier accepts with a key of
 * its kind, with a signature the harness did make (raw HS256 tokens can
 * only verify when they were in the corpus); accepted claims are sane
 * (sub non-empty < 128 bytes, role < 32, exp not past); same answer twice. */
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdbool.h>

#include "auth/jwks.h"
#include "auth/jwt.h"
#include "fuzz_common.h"

#ifndef FUZZ_DIR
#define FUZZ_DIR "fuzz"
#endif

/* 2026-01-01T00:00:00Z: tokens in the corpus expire in 2100. */
#define NOW_S 1767225600
#define SECRET "tickgate-fuzz-secret-0123456789abcdef0123"

static struct jwt_verifier V[4];
static unsigned signed_with; /* re-sign mode: the algorithm the harness signed with */

static void init(void) {
    static bool done;
    if (done)
        return;
    done = true;
    FILE *err = stderr;
    V[0].algs = JWT_HS256;
    V[0].secret = (unsigned char *)strdup(SECRET);
    V[0].secret_len = strlen(SECRET);
    V[1].algs = JWT_RS256;
    V[2].algs = JWT_ES256;
    V[3].algs = JWT_HS256 | JWT_RS256;
    V[3].secret = (unsigned char *)strdup(SECRET);
    V[3].secret_len = strlen(SECRET);
    V[3].issuer = strdup("tickgate-fuzz");
    V[3].audience = strdup("tickgate");
    if (jwt_load_public_key(&V[1], FUZZ_DIR "/keys/rs256.pub.pem", err) < 0 ||
        jwt_load_public_key(&V[2], FUZZ_DIR "/keys/es256.pub.pem", err) < 0 ||
        jwt_load_public_key(&V[3], FUZZ_DIR "/keys/rs256.pub.pem", err) < 0)
        abort();
    for (int i = 0; i < 4; i++)
        V[i].leeway_s = 30;
}

static void check_b64(const uint8_t *data, size_t size) {
    unsigned char *out = malloc(3 * size / 4 + 3);
    long n = b64url_decode((const char *)data, size, out);
    if (n >= 0) {
        char *enc = malloc(4 * ((size_t)n / 3 + 1) + 1);
        size_t el = b64url_encode(out, (size_t)n, enc);
        FUZZ_CHECK(el == size && memcmp(enc, data, el) == 0,
                   "b64url_decode accepted a non-canonical encoding (%zu chars, re-encoded %zu)", size, el);
        free(enc);
    }
    free(out);
    /* encode -> decode is the identity */
    char *enc = malloc(4 * (size / 3 + 1) + 1);
    size_t el = b64url_encode(data, size, enc);
    FUZZ_CHECK(el == (size * 4 + 2) / 3 && enc[el] == '\0', "b64url_encode length %zu for %zu bytes", el, size);
    unsigned char *dec = malloc(3 * el / 4 + 3);
    long dl = b64url_decode(enc, el, dec);
    FUZZ_CHECK(dl == (long)size && memcmp(dec, data, size) == 0, "b64url round trip failed (%zu bytes)", size);
    free(dec);
    free(enc);
}

/* The alg named by a token's header, decoded here independently. */
static unsigned header_alg(const char *tok, size_t len) {
    const char *dot = memchr(tok, '.', len);
    if (!dot)
        return 0;
    size_t hl = (size_t)(dot - tok);
    unsigned char *buf = malloc(3 * hl / 4 + 3);
    long n = b64url_decode(tok, hl, buf);
    unsigned a = 0;
    if (n >= 0) {
        json_t *h = json_loadb((const char *)buf, (size_t)n, JSON_REJECT_DUPLICATES, NULL);
        const char *alg = json_string_value(json_object_get(h, "alg"));
        if (alg)
            a = !strcmp(alg, "HS256") ? JWT_HS256 : !strcmp(alg, "RS256") ? JWT_RS256
                : !strcmp(alg, "ES256") ? JWT_ES256 : 0;
        json_decref(h);
    }
    free(buf);
    return a;
}

static void verify(const struct jwt_verifier *v, int vi, const char *tok, size_t len) {
    struct jwt_claims cl, cl2;
    memset(&cl, 0xA5, sizeof(cl));
    enum jwt_result r = jwt_verify(v, tok, len, NOW_S, &cl);
    enum jwt_result r2 = jwt_verify(v, tok, len, NOW_S, &cl2);
    FUZZ_CHECK(r == r2, "jwt_verify not deterministic: %d then %d", r, r2);
    FUZZ_CHECK(r >= JWT_OK && r <= JWT_BAD_KEY, "result %d", r);
    const char *s = jwt_result_str(r);
    FUZZ_CHECK(s && *s, "no result string");
    FUZZ_CHECK(r == JWT_OK || (!cl.symbols && !cl.delayed), "a refused token holds entitlements");
    FUZZ_CHECK((cl.symbols == cl2.symbols) && (cl.delayed == cl2.delayed), "entitlements not interned");
    jwt_claims_release(&cl2);
    if (r != JWT_OK) {
        jwt_claims_release(&cl);
        return;
    }
    unsigned a = header_alg(tok, len);
    FUZZ_CHECK(a && (v->algs & a), "verifier %d accepted a token whose alg (%u) it does not allow", vi, a);
    FUZZ_CHECK(a != JWT_HS256 || v->secret_len, "HS256 accepted without a secret");
    FUZZ_CHECK(!signed_with || a == signed_with, "token signed with HMAC accepted as alg %u (algorithm confusion)", a);
    FUZZ_CHECK(memchr(cl.sub, 0, sizeof(cl.sub)) && cl.sub[0], "sub empty or not terminated");
    FUZZ_CHECK(memchr(cl.role, 0, sizeof(cl.role)), "role not terminated");
    FUZZ_CHECK(cl.exp >= NOW_S - v->leeway_s, "expired token accepted: exp %lld", (long long)cl.exp);
    FUZZ_CHECK(!strcmp(cl.sub, cl2.sub) && !strcmp(cl.role, cl2.role) && cl.exp == cl2.exp, "claims differ");
    jwt_claims_release(&cl);
}

static void fuzz_jwks(const uint8_t *data, size_t size) {
    char err[160] = "";
    struct jwks *s = jwks_parse((const char *)data, size, err, sizeof(err));
    if (!s) {
        FUZZ_CHECK(err[0], "refused set without a reason");
        return;
    }
    FUZZ_CHECK(s->n <= JWKS_MAX_KEYS, "%zu keys", s->n);
    for (size_t i = 0; i < s->n; i++) {
        const struct jwk *k = &s->v[i];
        FUZZ_CHECK(k->kid[0] && memchr(k->kid, 0, sizeof(k->kid)), "key %zu: kid", i);
        FUZZ_CHECK(k->alg == JWT_HS256 || k->alg == JWT_RS256 || k->alg == JWT_ES256 || k->alg == JWT_EDDSA,
                   "key %zu: alg %u", i, k->alg);
        FUZZ_CHECK(k->alg == JWT_HS256 ? k->secret && k->secret_len >= JWKS_MIN_SECRET && !k->pkey
                                       : k->pkey && !k->secret, "key %zu: material does not match its type", i);
        FUZZ_CHECK(jwks_find(s, k->kid) == k, "key %zu: kid not unique", i);
        if (k->alg != JWT_HS256 || i > 4)
            continue;
        char *tok = jwt_sign_hs256_kid(k->secret, k->secret_len, NULL, "{\"sub\":\"f\",\"exp\":4102444800}");
        struct jwt_verifier v = {.algs = JWT_HS256, .jwks = s};
        struct jwt_claims cl;
        enum jwt_result r = tok ? jwt_verify(&v, tok, strlen(tok), NOW_S, &cl) : JWT_OK;
        FUZZ_CHECK(r == (jwks_single(s, JWT_HS256) == k ? JWT_OK : JWT_BAD_KEY), "oct key %zu without kid: %d", i, r);
        jwt_claims_release(&cl);
        free(tok);
    }
    jwks_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    init();
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    data++;
    size--;
    check_b64(data, size);
    if (mode & 8) {
        fuzz_jwks(data, size);
        return 0;
    }
    int vi = mode & 3;
    if (mode & 4) {
        /* Re-sign: HEADER-JSON \0 PAYLOAD-JSON -> b64(h).b64(p).HMAC */
        const uint8_t *z = memchr(data, 0, size);
        size_t hl = z ? (size_t)(z - data) : size;
        const uint8_t *pl = z ? z + 1 : data + size;
        size_t pll = z ? size - hl - 1 : 0;
        if (vi == 1 || vi == 2)
            vi = 0;
        size_t cap = 4 * (hl / 3 + 1) + 4 * (pll / 3 + 1) + 4 * (32 / 3 + 1) + 8;
        char *tok = malloc(cap);
        size_t n = b64url_encode(data, hl, tok);
        tok[n++] = '.';
        n += b64url_encode(pl, pll, tok + n);
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int ml = 0;
        if (!HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (const unsigned char *)tok, n, mac, &ml))
            abort();
        tok[n++] = '.';
        n += b64url_encode(mac, ml, tok + n);
        uint8_t *exact = fuzz_dup((const uint8_t *)tok, n);
        signed_with = JWT_HS256;
        verify(&V[vi], vi, (const char *)exact, n);
        signed_with = 0;
        free(exact);
        free(tok);
        return 0;
    }
    uint8_t *tok = fuzz_dup(data, size);
    verify(&V[vi], vi, (const char *)tok, size);
    free(tok);
    return 0;
}
