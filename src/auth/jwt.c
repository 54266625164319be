/* jwt.c - HS256 JWT verification and signing; see jwt.h. */
#include "auth/jwt.h"
#include "auth/entitle.h"
#include "auth/jwks.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/ecdsa.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>

#define JWT_MAX_LEN 8192

static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t b64url_encode(const unsigned char *in, size_t len, char *out) {
    size_t o = 0, i = 0;
    for (; i + 2 < len; i += 3) {
        uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8) | in[i + 2];
        out[o++] = B64URL[(v >> 18) & 63];
        out[o++] = B64URL[(v >> 12) & 63];
        out[o++] = B64URL[(v >> 6) & 63];
        out[o++] = B64URL[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = B64URL[(v >> 18) & 63];
        out[o++] = B64URL[(v >> 12) & 63];
    } else if (len - i == 2) {
        uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8);
        out[o++] = B64URL[(v >> 18) & 63];
        out[o++] = B64URL[(v >> 12) & 63];
        out[o++] = B64URL[(v >> 6) & 63];
    }
    out[o] = '\0';
    return o;
}

static int b64val(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

long b64url_decode(const char *in, size_t len, unsigned char *out) {
    /* One spelling per byte string (RFC 7515 section 2): no '=' padding and
     * zero spare bits, so a token cannot be re-spelt and still verify. */
    if (len % 4 == 1)
        return -1;
    long o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64val(in[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    if (acc & ((1u << bits) - 1))
        return -1; /* non-zero spare bits: not the canonical encoding */
    return o;
}

/* Decodes one base64url part into a JSON object. */
static json_t *decode_part(const char *p, size_t len) {
    unsigned char buf[JWT_MAX_LEN];
    if (len > JWT_MAX_LEN)
        return NULL;
    long n = b64url_decode(p, len, buf);
    if (n < 0)
        return NULL;
    json_t *o = json_loadb((const char *)buf, (size_t)n, JSON_REJECT_DUPLICATES, NULL);
    if (o && !json_is_object(o)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static bool claim_time(json_t *o, const char *name, int64_t *out, bool *present) {
    json_t *v = json_object_get(o, name);
    *present = v != NULL;
    if (!v)
        return true;
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return true;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!(d > -1e15 && d < 1e15))
            return false; /* out of any sane range: not a time */
        *out = (int64_t)d;
        return true;
    }
    return false;
}

static bool aud_matches(json_t *aud, const char *want) {
    if (json_is_string(aud))
        return strcmp(json_string_value(aud), want) == 0;
    if (json_is_array(aud)) {
        size_t i;
        json_t *e;
        json_array_foreach(aud, i, e) if (json_is_string(e) && strcmp(json_string_value(e), want) == 0) return true;
    }
    return false;
}

int jwt_load_public_key(struct jwt_verifier *v, const char *path, FILE *err) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(err, "tickgate: auth.jwt_public_key_file: cannot read %s\n", path);
        return -1;
    }
    EVP_PKEY *k = PEM_read_PUBKEY(f, NULL, NULL, NULL);
    fclose(f);
    if (!k) {
        fprintf(err, "tickgate: auth.jwt_public_key_file: %s is not a PEM public key\n", path);
        return -1;
    }
    int id = EVP_PKEY_get_base_id(k);
    if (id != EVP_PKEY_RSA && id != EVP_PKEY_ED25519 && !(id == EVP_PKEY_EC && EVP_PKEY_get_bits(k) == 256)) {
        fprintf(err, "tickgate: auth.jwt_public_key_file: need an RSA, P-256 EC or Ed25519 key\n");
        EVP_PKEY_free(k);
        return -1;
    }
    v->pub = k;
    return 0;
}

/* ES256 signatures are r||s (32 bytes each); OpenSSL wants DER. */
static int es256_to_der(const unsigned char *raw, unsigned char *der, size_t cap) {
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, 32, NULL), *s = BN_bin2bn(raw + 32, 32, NULL);
    if (!sig || !r || !s || !ECDSA_SIG_set0(sig, r, s)) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(sig);
        return -1;
    }
    int n = i2d_ECDSA_SIG(sig, NULL);
    unsigned char *p = der;
    if (n <= 0 || (size_t)n > cap)
        n = -1;
    else
        i2d_ECDSA_SIG(sig, &p);
    ECDSA_SIG_free(sig);
    return n;
}

/* Verifies an RS256/ES256/EdDSA signature over data with key. */
static bool verify_pkey(EVP_PKEY *key, unsigned alg, const char *data, size_t dl, const unsigned char *sig,
                        size_t sl) {
    unsigned char der[160];
    if (alg == JWT_EDDSA && sl != 64)
        return false;
    if (alg == JWT_ES256) {
        if (sl != 64)
            return false;
        int n = es256_to_der(sig, der, sizeof(der));
        if (n < 0)
            return false;
        sig = der;
        sl = (size_t)n;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx && EVP_DigestVerifyInit(ctx, NULL, alg == JWT_EDDSA ? NULL : EVP_sha256(), NULL, key) == 1 &&
              EVP_DigestVerify(ctx, sig, sl, (const unsigned char *)data, dl) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}

enum jwt_result jwt_verify(const struct jwt_verifier *v, const char *tok, size_t len, int64_t now_s,
                           struct jwt_claims *out) {
    out->symbols = out->delayed = NULL; /* jwt_claims_release is safe whatever the result */
    if (len == 0 || len > JWT_MAX_LEN)
        return JWT_MALFORMED;
    const char *d1 = memchr(tok, '.', len);
    if (!d1)
        return JWT_MALFORMED;
    const char *d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok));
    if (!d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - tok)))
        return JWT_MALFORMED;
    json_t *hdr = decode_part(tok, (size_t)(d1 - tok));
    if (!hdr)
        return JWT_MALFORMED;
    const char *alg = json_string_value(json_object_get(hdr, "alg"));
    /* The header names the algorithm, but only a configured one with a key
     * of its own kind is used: no "none", no HS256 keyed with a public key. */
    unsigned a = !alg ? 0 : !strcmp(alg, "HS256") ? JWT_HS256 : !strcmp(alg, "RS256") ? JWT_RS256
                 : !strcmp(alg, "ES256") ? JWT_ES256 : !strcmp(alg, "EdDSA") ? JWT_EDDSA : 0;
    /* "crit" lists extensions the token must not be read without (RFC 7515
     * 4.1.11, e.g. RFC 7797's unencoded payload); we implement none. */
    bool crit = json_object_get(hdr, "crit") != NULL;
    json_t *kidj = json_object_get(hdr, "kid");
    char kid[JWKS_KID_MAX];
    bool kid_ok = !kidj || (json_is_string(kidj) && json_string_length(kidj) < sizeof(kid));
    if (kid_ok && kidj)
        snprintf(kid, sizeof(kid), "%s", json_string_value(kidj));
    json_decref(hdr);
    if (crit || !kid_ok)
        return JWT_MALFORMED;
    if (!a || !(v->algs & a))
        return JWT_BAD_ALG;
    const unsigned char *secret = v->secret;
    size_t secret_len = v->secret_len;
    EVP_PKEY *key = v->pub;
    if (v->jwks) {
        /* The set is the only source of keys: the kid names one, whose type
         * pins its algorithm; without a kid, the one key for the alg. */
        const struct jwk *k = kidj ? jwks_find(v->jwks, kid) : jwks_single(v->jwks, a);
        if (!k)
            return JWT_BAD_KEY;
        if (k->alg != a)
            return JWT_BAD_ALG;
        secret = k->secret;
        secret_len = k->secret_len;
        key = k->pkey;
    } else if (a == JWT_HS256 && !secret_len) {
        return JWT_BAD_ALG;
    } else if (a != JWT_HS256) {
        int id = key ? EVP_PKEY_get_base_id(key) : 0;
        if ((a == JWT_RS256 && id != EVP_PKEY_RSA) || (a == JWT_ES256 && id != EVP_PKEY_EC) ||
            (a == JWT_EDDSA && id != EVP_PKEY_ED25519))
            return JWT_BAD_ALG;
    }
    unsigned char got[1024];
    size_t sl = len - (size_t)(d2 + 1 - tok);
    if (sl > 4 * sizeof(got) / 3)
        return JWT_BAD_SIGNATURE;
    long gl = b64url_decode(d2 + 1, sl, got);
    if (gl < 0)
        return JWT_BAD_SIGNATURE;
    if (a == JWT_HS256) {
        /* Signature over "header.payload", compared in constant time. */
        unsigned char want[EVP_MAX_MD_SIZE];
        unsigned int wl = 0;
        if (!HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)tok, (size_t)(d2 - tok), want, &wl) ||
            gl != (long)wl || CRYPTO_memcmp(want, got, wl) != 0)
            return JWT_BAD_SIGNATURE;
    } else if (!verify_pkey(key, a, tok, (size_t)(d2 - tok), got, (size_t)gl)) {
        return JWT_BAD_SIGNATURE;
    }
    json_t *pl = decode_part(d1 + 1, (size_t)(d2 - d1 - 1));
    if (!pl)
        return JWT_MALFORMED;
    enum jwt_result rc = JWT_OK;
    const char *sub = json_string_value(json_object_get(pl, "sub"));
    json_t *role = json_object_get(pl, "role");
    int64_t exp = 0, nbf = 0, iat = 0;
    bool has_exp, has_nbf, has_iat;
    if (!sub || !*sub || strlen(sub) >= sizeof(out->sub) || !claim_time(pl, "exp", &exp, &has_exp) || !has_exp ||
        !claim_time(pl, "nbf", &nbf, &has_nbf) || !claim_time(pl, "iat", &iat, &has_iat) ||
        (role && (!json_is_string(role) || json_string_length(role) >= sizeof(out->role)))) {
        rc = JWT_BAD_CLAIMS;
        goto out;
    }
    if (exp < now_s - v->leeway_s) { /* written so a huge exp cannot overflow */
        rc = JWT_EXPIRED;
        goto out;
    }
    if ((has_nbf && nbf > now_s + v->leeway_s) || (has_iat && iat > now_s + v->leeway_s)) {
        rc = JWT_NOT_YET_VALID;
        goto out;
    }
    if (v->issuer) {
        const char *iss = json_string_value(json_object_get(pl, "iss"));
        if (!iss || strcmp(iss, v->issuer) != 0) {
            rc = JWT_BAD_ISSUER;
            goto out;
        }
    }
    if (v->audience && !aud_matches(json_object_get(pl, "aud"), v->audience)) {
        rc = JWT_BAD_AUDIENCE;
        goto out;
    }
    const char *why;
    json_t *sy = json_object_get(pl, "symbols"), *dl = json_object_get(pl, "delayed_symbols");
    out->symbols = sy ? entitle_get_json(sy, &why) : NULL;
    out->delayed = dl ? entitle_get_json(dl, &why) : NULL;
    if ((sy && !out->symbols) || (dl && !out->delayed)) {
        jwt_claims_release(out);
        rc = JWT_BAD_CLAIMS;
        goto out;
    }
    strcpy(out->sub, sub);
    snprintf(out->role, sizeof(out->role), "%s", role ? json_string_value(role) : "");
    out->exp = exp < JWT_TIME_MAX ? exp : JWT_TIME_MAX; /* saturated: see jwt.h */
out:
    json_decref(pl);
    return rc;
}

void jwt_claims_release(struct jwt_claims *c) {
    entitle_put(c->symbols);
    entitle_put(c->delayed);
    c->symbols = c->delayed = NULL;
}

const char *jwt_result_str(enum jwt_result r) {
    switch (r) {
    case JWT_OK: return "ok";
    case JWT_MALFORMED: return "malformed";
    case JWT_BAD_ALG: return "bad_alg";
    case JWT_BAD_SIGNATURE: return "bad_signature";
    case JWT_EXPIRED: return "expired";
    case JWT_NOT_YET_VALID: return "not_yet_valid";
    case JWT_BAD_CLAIMS: return "bad_claims";
    case JWT_BAD_ISSUER: return "bad_issuer";
    case JWT_BAD_AUDIENCE: return "bad_audience";
    case JWT_BAD_KEY: return "unknown_key";
    }
    return "invalid";
}

char *jwt_sign_hs256(const unsigned char *secret, size_t secret_len, const char *payload_json) {
    return jwt_sign_hs256_kid(secret, secret_len, NULL, payload_json);
}

char *jwt_sign_hs256_kid(const unsigned char *secret, size_t secret_len, const char *kid, const char *payload_json) {
    char hdr[64 + JWKS_KID_MAX];
    if (kid && (strlen(kid) >= JWKS_KID_MAX || strspn(kid, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                                           "0123456789._-") != strlen(kid)))
        return NULL;
    size_t hl = (size_t)snprintf(hdr, sizeof(hdr), "{\"alg\":\"HS256\",\"typ\":\"JWT\"%s%s%s}",
                                 kid ? ",\"kid\":\"" : "", kid ? kid : "", kid ? "\"" : "");
    size_t pl = strlen(payload_json);
    size_t cap = 4 * ((hl + pl) / 3 + 2) + 100;
    char *t = malloc(cap);
    if (!t)
        return NULL;
    size_t n = b64url_encode((const unsigned char *)hdr, hl, t);
    t[n++] = '.';
    n += b64url_encode((const unsigned char *)payload_json, pl, t + n);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int ml = 0;
    if (!HMAC(EVP_sha256(), secret, (int)secret_len, (unsigned char *)t, n, mac, &ml)) {
        free(t);
        return NULL;
    }
    t[n++] = '.';
    b64url_encode(mac, ml, t + n);
    return t;
}
