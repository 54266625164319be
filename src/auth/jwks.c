/* jwks.c - JWK Set parsing; see jwks.h. */
#include "auth/jwks.h"

#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <stdlib.h>
#include <string.h>

#include "auth/jwt.h"

#define MEMBER_MAX 1024 /* decoded bytes of one member: RSA moduli up to 8192 bits */

/* Decodes member name of key (base64url) into out (MEMBER_MAX); -1 when
 * missing, not a string, too long or not base64url. */
static long member(json_t *key, const char *name, unsigned char *out) {
    json_t *v = json_object_get(key, name);
    if (!json_is_string(v) || json_string_length(v) > 4 * MEMBER_MAX / 3)
        return -1;
    return b64url_decode(json_string_value(v), json_string_length(v), out);
}

static EVP_PKEY *from_params(const char *type, OSSL_PARAM_BLD *bld) {
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = params ? EVP_PKEY_CTX_new_from_name(NULL, type, NULL) : NULL;
    EVP_PKEY *k = NULL;
    if (!ctx || EVP_PKEY_fromdata_init(ctx) != 1 || EVP_PKEY_fromdata(ctx, &k, EVP_PKEY_PUBLIC_KEY, params) != 1)
        k = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return k;
}

static EVP_PKEY *rsa_key(json_t *key, const char **why) {
    unsigned char n[MEMBER_MAX], e[MEMBER_MAX];
    long nl = member(key, "n", n), el = member(key, "e", e);
    if (nl < 256 || el < 1 || el > 8 || n[0] == 0) {
        *why = "RSA key needs n (at least 2048 bits) and e";
        return NULL;
    }
    BIGNUM *bn = BN_bin2bn(n, (int)nl, NULL), *be = BN_bin2bn(e, (int)el, NULL);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *k = NULL;
    if (bn && be && bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be))
        k = from_params("RSA", bld);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn);
    BN_free(be);
    if (!k)
        *why = "RSA key not accepted";
    return k;
}

static EVP_PKEY *ec_key(json_t *key, const char **why) {
    unsigned char x[MEMBER_MAX], y[MEMBER_MAX], pt[65];
    const char *crv = json_string_value(json_object_get(key, "crv"));
    if (!crv || strcmp(crv, "P-256") != 0 || member(key, "x", x) != 32 || member(key, "y", y) != 32) {
        *why = "EC key needs crv P-256 and 32-byte x and y";
        return NULL;
    }
    pt[0] = 0x04; /* uncompressed point */
    memcpy(pt + 1, x, 32);
    memcpy(pt + 33, y, 32);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *k = NULL;
    if (bld && OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt)))
        k = from_params("EC", bld);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX *ctx = k ? EVP_PKEY_CTX_new_from_pkey(NULL, k, NULL) : NULL;
    if (k && (!ctx || EVP_PKEY_public_check(ctx) != 1)) { /* a point off the curve verifies nothing */
        EVP_PKEY_free(k);
        k = NULL;
    }
    EVP_PKEY_CTX_free(ctx);
    if (!k)
        *why = "EC key is not a P-256 point";
    return k;
}

static EVP_PKEY *okp_key(json_t *key, const char **why) {
    unsigned char x[MEMBER_MAX];
    const char *crv = json_string_value(json_object_get(key, "crv"));
    EVP_PKEY *k = NULL;
    if (crv && strcmp(crv, "Ed25519") == 0 && member(key, "x", x) == 32)
        k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, x, 32);
    if (!k)
        *why = "OKP key needs crv Ed25519 and a 32-byte x";
    return k;
}

/* Fills k from the JSON key j; NULL, or why it cannot. */
static const char *parse_key(json_t *j, struct jwk *k) {
    static const char *PRIVATE[] = {"d", "p", "q", "dp", "dq", "qi", "oth"};
    static const struct {
        const char *kty, *alg;
        unsigned bit;
    } TYPES[] = {{"oct", "HS256", JWT_HS256}, {"RSA", "RS256", JWT_RS256}, {"EC", "ES256", JWT_ES256},
                 {"OKP", "EdDSA", JWT_EDDSA}};
    if (!json_is_object(j))
        return "not an object";
    const char *kty = json_string_value(json_object_get(j, "kty"));
    const char *kid = json_string_value(json_object_get(j, "kid"));
    json_t *alg = json_object_get(j, "alg"), *use = json_object_get(j, "use");
    if (!kid || !*kid || json_string_length(json_object_get(j, "kid")) >= JWKS_KID_MAX ||
        strlen(kid) != json_string_length(json_object_get(j, "kid")))
        return "kid missing or not a string of at most 127 bytes";
    snprintf(k->kid, sizeof(k->kid), "%s", kid);
    size_t t = 0;
    while (t < 4 && !(kty && strcmp(kty, TYPES[t].kty) == 0))
        t++;
    if (t == 4)
        return "kty must be oct, RSA, EC or OKP";
    if (alg && !(json_is_string(alg) && strcmp(json_string_value(alg), TYPES[t].alg) == 0))
        return "alg does not match the key type (oct HS256, RSA RS256, EC ES256, OKP EdDSA)";
    if (use && !(json_is_string(use) && strcmp(json_string_value(use), "sig") == 0))
        return "use must be sig";
    k->alg = TYPES[t].bit;
    const char *why = NULL;
    if (k->alg == JWT_HS256) {
        unsigned char buf[MEMBER_MAX];
        long n = member(j, "k", buf);
        if (n < JWKS_MIN_SECRET) {
            OPENSSL_cleanse(buf, sizeof(buf));
            return "oct key needs k of at least 32 bytes";
        }
        k->secret = malloc((size_t)n);
        if (k->secret)
            memcpy(k->secret, buf, (size_t)n);
        k->secret_len = (size_t)n;
        OPENSSL_cleanse(buf, sizeof(buf));
        return k->secret ? NULL : "out of memory";
    }
    for (size_t p = 0; p < sizeof(PRIVATE) / sizeof(PRIVATE[0]); p++)
        if (json_object_get(j, PRIVATE[p]))
            return "holds a private key member: publish public keys only";
    k->pkey = k->alg == JWT_RS256 ? rsa_key(j, &why) : k->alg == JWT_ES256 ? ec_key(j, &why) : okp_key(j, &why);
    return k->pkey ? NULL : why;
}

struct jwks *jwks_parse(const char *text, size_t len, char *err, size_t errlen) {
    if (len > JWKS_MAX_BYTES) {
        snprintf(err, errlen, "larger than %d bytes", JWKS_MAX_BYTES);
        return NULL;
    }
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    json_t *keys = json_object_get(root, "keys");
    struct jwks *s = NULL;
    if (!json_is_array(keys)) {
        snprintf(err, errlen, "expected {\"keys\": [...]}");
        goto out;
    }
    size_t n = json_array_size(keys);
    if (n > JWKS_MAX_KEYS) {
        snprintf(err, errlen, "more than %d keys", JWKS_MAX_KEYS);
        goto out;
    }
    s = calloc(1, sizeof(*s));
    if (!s || !(s->v = calloc(n + 1, sizeof(*s->v)))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        const char *why = parse_key(json_array_get(keys, i), &s->v[s->n++]);
        if (!why && jwks_find(&(struct jwks){s->v, s->n - 1}, s->v[s->n - 1].kid))
            why = "kid used twice";
        if (why) {
            snprintf(err, errlen, "key %zu: %s", i, why);
            goto fail;
        }
    }
    goto out;
fail:
    jwks_free(s);
    s = NULL;
out:
    json_decref(root);
    return s;
}

struct jwks *jwks_load(const char *path, FILE *err) {
    FILE *f = fopen(path, "rb");
    char *buf = malloc(JWKS_MAX_BYTES + 1);
    size_t n = f && buf ? fread(buf, 1, JWKS_MAX_BYTES + 1, f) : 0;
    bool ok = f && buf && !ferror(f);
    if (f)
        fclose(f);
    char why[160] = "cannot read it";
    struct jwks *s = ok ? jwks_parse(buf, n, why, sizeof(why)) : NULL;
    free(buf);
    if (!s)
        fprintf(err, "tickgate: auth.jwks_file: %s: %s\n", path, why);
    return s;
}

void jwks_free(struct jwks *s) {
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++) {
        if (s->v[i].secret) {
            OPENSSL_cleanse(s->v[i].secret, s->v[i].secret_len);
            free(s->v[i].secret);
        }
        EVP_PKEY_free(s->v[i].pkey);
    }
    free(s->v);
    free(s);
}

const struct jwk *jwks_find(const struct jwks *s, const char *kid) {
    for (size_t i = 0; s && i < s->n; i++)
        if (strcmp(s->v[i].kid, kid) == 0)
            return &s->v[i];
    return NULL;
}

const struct jwk *jwks_single(const struct jwks *s, unsigned alg) {
    const struct jwk *one = NULL;
    for (size_t i = 0; s && i < s->n; i++)
        if (s->v[i].alg == alg) {
            if (one)
                return NULL;
            one = &s->v[i];
        }
    return one;
}
