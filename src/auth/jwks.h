/* jwks.h - a JWK Set (RFC 7517) of JWT verification keys (PROTOCOL.md
 * section 14, auth.jwks_file).
 *
 * Each key has a kid (unique in the set) and a type that pins the one
 * algorithm it verifies: oct -> HS256 (k: at least 32 bytes), RSA -> RS256
 * (n, e; at least 2048 bits), EC P-256 -> ES256 (x, y: a point on the
 * curve), OKP Ed25519 -> EdDSA (x). A key's optional "alg" must name that
 * algorithm and its optional "use" must be "sig"; private members of an
 * asymmetric key (d, p, q, ...) are refused: the set is published, so a
 * private key in it is a leak, not a configuration. At most JWKS_MAX_KEYS
 * keys and JWKS_MAX_BYTES of text. A set is read-only once parsed. */
#ifndef TG_JWKS_H
#define TG_JWKS_H

#include <stddef.h>
#include <stdio.h>

typedef struct evp_pkey_st EVP_PKEY;

#define JWKS_MAX_KEYS 256
#define JWKS_MAX_BYTES (1 << 20)
#define JWKS_KID_MAX 128            /* kid length, exclusive */
#define JWKS_MIN_SECRET 32

struct jwk {
    char kid[JWKS_KID_MAX];
    unsigned alg;                   /* one enum jwt_alg bit (auth/jwt.h) */
    unsigned char *secret;          /* oct: the key, owned (cleansed on free) */
    size_t secret_len;
    EVP_PKEY *pkey;                 /* RSA, EC, OKP: the public key, owned */
};

struct jwks {
    struct jwk *v;
    size_t n;
};

/* Parses text (len bytes). NULL after writing why (a fixed message naming
 * the key's index and member, never key material) into err[errlen]. */
struct jwks *jwks_parse(const char *text, size_t len, char *err, size_t errlen);

/* Reads and parses path; NULL after a message naming auth.jwks_file to err. */
struct jwks *jwks_load(const char *path, FILE *err);

void jwks_free(struct jwks *s);

/* The key named kid, or NULL. */
const struct jwk *jwks_find(const struct jwks *s, const char *kid);

/* The single key for alg, or NULL when the set holds none or several. */
const struct jwk *jwks_single(const struct jwks *s, unsigned alg);

#endif
