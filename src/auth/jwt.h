/* jwt.h - compact JWS verification (RFC 7515/7519): HS256, RS256, ES256,
 * EdDSA (Ed25519), keyed by configuration or by a JWK Set (auth/jwks.h,
 * the key named by the header's kid); HS256 signing for the `token`
 * command.
 *
 * The accepted algorithms are exactly those configured: "none", an
 * algorithm not configured, or a header naming one algorithm while the key
 * is of another kind are all refused. Signatures are compared in constant
 * time. Nothing here logs; callers never log tokens. */
#ifndef TG_JWT_H
#define TG_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum jwt_alg { JWT_HS256 = 1u << 0, JWT_RS256 = 1u << 1, JWT_ES256 = 1u << 2, JWT_EDDSA = 1u << 3 };

struct jwks;

typedef struct evp_pkey_st EVP_PKEY;

struct jwt_verifier {
    unsigned algs;              /* enum jwt_alg bits accepted */
    unsigned char *secret;      /* HS256 key, owned */
    size_t secret_len;
    EVP_PKEY *pub;              /* RS256 (RSA), ES256 (P-256) or EdDSA (Ed25519) key, owned */
    const struct jwks *jwks;    /* auth.jwks_file: when set, the only keys (by kid); the owner's */
    char *issuer;               /* required iss, or NULL */
    char *audience;             /* required aud, or NULL */
    int leeway_s;
};

enum jwt_result {
    JWT_OK = 0,
    JWT_MALFORMED,              /* not three base64url parts of JSON */
    JWT_BAD_ALG,                /* none, not configured, or no key for it */
    JWT_BAD_SIGNATURE,
    JWT_EXPIRED,
    JWT_NOT_YET_VALID,          /* nbf or iat in the future */
    JWT_BAD_CLAIMS,             /* sub/exp missing or ill-typed, bad role */
    JWT_BAD_ISSUER,
    JWT_BAD_AUDIENCE,
    JWT_BAD_KEY,                /* JWK Set: kid unknown, or no kid and not one key for the alg */
};

/* 9999-12-31T23:59:59Z: the latest time a claim is taken to name. */
#define JWT_TIME_MAX INT64_C(253402300799)

struct entitle_set;

struct jwt_claims {
    char sub[128];
    char role[32];              /* "" when the token has none */
    int64_t exp;                /* seconds since the epoch, at most JWT_TIME_MAX:
                                 * later is read as that, so exp + leeway or
                                 * exp * 1000 cannot overflow downstream */
    struct entitle_set *symbols;  /* claim "symbols" (auth/entitle.h), a reference; NULL = absent */
    struct entitle_set *delayed;  /* claim "delayed_symbols", likewise */
};

/* Drops the references a verified token's claims hold (NULL-safe fields). */
void jwt_claims_release(struct jwt_claims *c);

/* Verifies token (len bytes) at time now_s. On JWT_OK the caller owns the
 * claims' references (jwt_claims_release); on any other result none is
 * held. "symbols"/"delayed_symbols" that are not arrays of valid patterns
 * are JWT_BAD_CLAIMS. */
enum jwt_result jwt_verify(const struct jwt_verifier *v, const char *token, size_t len, int64_t now_s,
                           struct jwt_claims *out);

/* Loads a PEM public key; fills v->pub. 0 or -1 (message to err). */
int jwt_load_public_key(struct jwt_verifier *v, const char *path, FILE *err);

/* Short reason for metrics and error messages (never the token). */
const char *jwt_result_str(enum jwt_result r);

/* Signs payload_json with HS256; returns a malloc'd token or NULL. */
char *jwt_sign_hs256(const unsigned char *secret, size_t secret_len, const char *payload_json);

/* The same with "kid" in the header (kid NULL: none; at most 127 bytes of
 * [A-Za-z0-9._-], else NULL). */
char *jwt_sign_hs256_kid(const unsigned char *secret, size_t secret_len, const char *kid, const char *payload_json);

/* base64url without padding. out must hold 4*ceil(len/3)+1 bytes; returns
 * the length written. */
size_t b64url_encode(const unsigned char *in, size_t len, char *out);

/* Decodes canonical base64url: no padding, spare bits zero (anything else,
 * '=' included, is -1). Returns the length, or -1. out must hold
 * 3*len/4+3 bytes. */
long b64url_decode(const char *in, size_t len, unsigned char *out);

#endif
