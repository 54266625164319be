/* auth.c - credentials to identity; see auth.h. */
#include "auth/auth.h"
#include "auth/jwks.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base/config.h"
#include "base/log.h"

#define MIN_SECRET 32

static void sha256(const void *p, size_t len, unsigned char out[32]) {
    unsigned int l = 0;
    EVP_Digest(p, len, out, &l, EVP_sha256(), NULL);
}

void auth_hash_key(const char *key, size_t len, char out[72]) {
    unsigned char h[32];
    sha256(key, len, h);
    memcpy(out, "sha256:", 7);
    for (int i = 0; i < 32; i++)
        snprintf(out + 7 + 2 * i, 3, "%02x", h[i]);
}

const char *auth_failure_str(int f) {
    static const char *N[AUTHF_COUNT] = {"invalid_token", "expired", "invalid_api_key",
                                         "unknown_user",  "inactive_user", "anonymous_disabled"};
    return f >= 0 && f < AUTHF_COUNT ? N[f] : "other";
}

static void users_free(struct users *u) {
    if (!u)
        return;
    for (size_t i = 0; i < u->n; i++) {
        free(u->v[i].id);
        free(u->v[i].username);
        free(u->v[i].keys);
        entitle_put(u->v[i].symbols);
        entitle_put(u->v[i].delayed);
    }
    free(u->v);
    free(u);
}

static int hexnib(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Loads and validates a users file. NULL after a message to err. */
static struct users *users_load(const char *path, FILE *err) {
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        if (je.line > 0)
            fprintf(err, "tickgate: auth.users_file: %s:%d: %s\n", path, je.line, je.text);
        else /* cannot open or read: jansson's text names the reason */
            fprintf(err, "tickgate: auth.users_file: %s\n", je.text);
        return NULL;
    }
    json_t *arr = json_object_get(root, "users");
    struct users *u = calloc(1, sizeof(*u));
    if (!u || !json_is_array(arr)) {
        fprintf(err, "tickgate: auth.users_file: %s: expected {\"users\": [...]}\n", path);
        goto fail;
    }
    u->v = calloc(json_array_size(arr) + 1, sizeof(struct user));
    if (!u->v)
        goto fail;
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e) {
        struct user *x = &u->v[u->n++];
        const char *id = json_string_value(json_object_get(e, "id"));
        const char *role = json_string_value(json_object_get(e, "role"));
        json_t *active = json_object_get(e, "active");
        json_t *keys = json_object_get(e, "api_keys");
        if (!id || !*id || strlen(id) >= 128) {
            fprintf(err, "tickgate: auth.users_file: %s: user %zu needs a string id (< 128 chars)\n", path, i);
            goto fail;
        }
        x->id = strdup(id);
        const char *un = json_string_value(json_object_get(e, "username"));
        x->username = strdup(un ? un : id);
        x->role = role ? role_from_name(role) : ROLE_VIEWER;
        if (x->role < 0 || x->role == ROLE_ANONYMOUS) {
            fprintf(err, "tickgate: auth.users_file: %s: user %s has an unknown role\n", path, id);
            goto fail;
        }
        x->active = active ? json_is_true(active) : true;
        if (keys && !json_is_array(keys)) {
            fprintf(err, "tickgate: auth.users_file: %s: user %s: api_keys must be an array\n", path, id);
            goto fail;
        }
        const char *why;
        json_t *sy = json_object_get(e, "symbols"), *dl = json_object_get(e, "delayed_symbols");
        if ((sy && !(x->symbols = entitle_get_json(sy, &why))) || (dl && !(x->delayed = entitle_get_json(dl, &why)))) {
            fprintf(err, "tickgate: auth.users_file: %s: user %s: %s: %s (patterns: SYMBOL, PREFIX* or *)\n", path,
                    id, x->symbols || !sy ? "delayed_symbols" : "symbols", why);
            goto fail;
        }
        x->keys = calloc(json_array_size(keys) + 1, 32);
        size_t k;
        json_t *ke;
        json_array_foreach(keys, k, ke) {
            const char *s = json_string_value(ke);
            if (!s || strlen(s) != 71 || strncmp(s, "sha256:", 7) != 0) {
                fprintf(err, "tickgate: auth.users_file: %s: user %s: api_keys entries must be sha256:<64 hex> "
                             "(see tickgate hash-key)\n", path, id);
                goto fail;
            }
            for (int b = 0; b < 32; b++) {
                int hi = hexnib(s[7 + 2 * b]), lo = hexnib(s[8 + 2 * b]);
                if (hi < 0 || lo < 0) {
                    fprintf(err, "tickgate: auth.users_file: %s: user %s: bad hex in api key hash\n", path, id);
                    goto fail;
                }
                x->keys[x->nkeys][b] = (unsigned char)(hi * 16 + lo);
            }
            x->nkeys++;
        }
        if (!x->id || !x->username || !x->keys)
            goto fail;
    }
    json_decref(root);
    return u;
fail:
    json_decref(root);
    users_free(u);
    return NULL;
}

static char *read_secret_file(const char *path, size_t *len, FILE *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(err, "tickgate: auth.jwt_secret_file: cannot read %s: %s\n", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(4097);
    size_t n = buf ? fread(buf, 1, 4096, f) : 0;
    fclose(f);
    if (!buf)
        return NULL;
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    buf[n] = '\0';
    *len = n;
    return buf;
}

int auth_init(struct auth *a, const struct config *cfg, FILE *err) {
    memset(a, 0, sizeof(*a));
    uv_rwlock_init(&a->users_lock); /* first: auth_free is the one cleanup path */
    if (roles_init(&a->roles, cfg, err) < 0) {
        auth_free(a);
        return -1;
    }
    a->allow_anonymous = cfg->auth.allow_anonymous;
    if (cfg->auth.anonymous_symbols[0]) {
        const char *why;
        a->anonymous_symbols = entitle_get_list(cfg->auth.anonymous_symbols, &why);
        if (!a->anonymous_symbols) {
            fprintf(err, "tickgate: auth.anonymous_symbols: %s (patterns: SYMBOL, PREFIX* or *)\n", why);
            auth_free(a);
            return -1;
        }
    }
    /* algorithms: only HS256 is implemented; anything else is a start error. */
    const char *cur = cfg->auth.jwt_algorithms, *p;
    size_t l;
    while (config_list_next(&cur, &p, &l)) {
        if (l == 5 && strncmp(p, "HS256", 5) == 0) {
            a->jwt.algs |= JWT_HS256;
        } else if (l == 5 && strncmp(p, "RS256", 5) == 0) {
            a->jwt.algs |= JWT_RS256;
        } else if (l == 5 && strncmp(p, "ES256", 5) == 0) {
            a->jwt.algs |= JWT_ES256;
        } else if (l == 5 && strncmp(p, "EdDSA", 5) == 0) {
            a->jwt.algs |= JWT_EDDSA;
        } else {
            fprintf(err,
                    "tickgate: auth.jwt_algorithms: '%.*s' is not supported (supported: HS256, RS256, ES256, EdDSA)\n",
                    (int)l, p);
            auth_free(a);
            return -1;
        }
    }
    size_t sl = 0;
    char *secret = NULL;
    if (cfg->auth.jwt_secret_file[0]) {
        secret = read_secret_file(cfg->auth.jwt_secret_file, &sl, err);
        if (!secret) {
            auth_free(a);
            return -1;
        }
    } else if (cfg->auth.jwt_secret[0]) {
        secret = strdup(cfg->auth.jwt_secret);
        sl = strlen(cfg->auth.jwt_secret);
    }
    if (secret && sl < MIN_SECRET) {
        fprintf(err, "tickgate: auth.jwt_secret%s: the HS256 secret must be at least %d bytes\n",
                cfg->auth.jwt_secret_file[0] ? "_file" : "", MIN_SECRET);
        OPENSSL_cleanse(secret, sl);
        free(secret);
        auth_free(a);
        return -1;
    }
    a->jwt.secret = (unsigned char *)secret;
    a->jwt.secret_len = sl;
    if (cfg->auth.jwt_public_key_file[0] && jwt_load_public_key(&a->jwt, cfg->auth.jwt_public_key_file, err) < 0) {
        auth_free(a);
        return -1;
    }
    if (cfg->auth.jwks_file[0]) {
        a->jwks_path = strdup(cfg->auth.jwks_file);
        a->jwt.jwks = a->jwks = jwks_load(cfg->auth.jwks_file, err);
        if (!a->jwks) {
            auth_free(a);
            return -1;
        }
    }
    if ((a->jwt.algs & (JWT_RS256 | JWT_ES256 | JWT_EDDSA)) && !a->jwt.pub && !a->jwks) {
        fprintf(err, "tickgate: auth.jwt_algorithms: RS256/ES256/EdDSA need auth.jwt_public_key_file or auth.jwks_file\n");
        auth_free(a);
        return -1;
    }
    if (a->jwt.pub && (a->jwt.algs & JWT_RS256) && EVP_PKEY_get_base_id(a->jwt.pub) != EVP_PKEY_RSA &&
        !(a->jwt.algs & JWT_ES256)) {
        fprintf(err, "tickgate: auth.jwt_public_key_file: RS256 needs an RSA key\n");
        auth_free(a);
        return -1;
    }
    if (a->jwt.pub && (a->jwt.algs & JWT_ES256) && EVP_PKEY_get_base_id(a->jwt.pub) != EVP_PKEY_EC &&
        !(a->jwt.algs & JWT_RS256)) {
        fprintf(err, "tickgate: auth.jwt_public_key_file: ES256 needs a P-256 EC key\n");
        auth_free(a);
        return -1;
    }
    a->jwt.issuer = cfg->auth.jwt_issuer[0] ? strdup(cfg->auth.jwt_issuer) : NULL;
    a->jwt.audience = cfg->auth.jwt_audience[0] ? strdup(cfg->auth.jwt_audience) : NULL;
    a->jwt.leeway_s = cfg->auth.jwt_leeway_s;
    if (cfg->auth.users_file[0]) {
        a->users_path = strdup(cfg->auth.users_file);
        a->users = users_load(a->users_path, err);
        if (!a->users) {
            auth_free(a);
            return -1;
        }
    }
    return 0;
}

void auth_free(struct auth *a) {
    if (a->jwt.secret) {
        OPENSSL_cleanse(a->jwt.secret, a->jwt.secret_len);
        free(a->jwt.secret);
    }
    EVP_PKEY_free(a->jwt.pub);
    free(a->jwt.issuer);
    free(a->jwt.audience);
    free(a->users_path);
    users_free(a->users);
    entitle_put(a->anonymous_symbols);
    free(a->jwks_path);
    jwks_free(a->jwks);
    uv_rwlock_destroy(&a->users_lock);
    memset(a, 0, sizeof(*a));
}

int auth_keys_prepare(const struct auth *a, struct jwks **out, FILE *err) {
    *out = NULL;
    if (!a->jwks_path)
        return 0;
    *out = jwks_load(a->jwks_path, err);
    return *out ? 0 : -1;
}

struct jwks *auth_keys_install(struct auth *a, struct jwks *k) {
    if (!a->jwks_path)
        return k;
    uv_rwlock_wrlock(&a->users_lock);
    struct jwks *old = a->jwks;
    a->jwt.jwks = a->jwks = k;
    uv_rwlock_wrunlock(&a->users_lock);
    return old; /* no verification holds it: they run under the read lock */
}

size_t auth_keys_count(const struct jwks *k) { return k ? k->n : 0; }

void auth_keys_free(struct jwks *k) { jwks_free(k); }

int auth_users_prepare(const struct auth *a, struct users **out, FILE *err) {
    *out = NULL;
    if (!a->users_path)
        return 0;
    *out = users_load(a->users_path, err);
    return *out ? 0 : -1;
}

struct users *auth_users_install(struct auth *a, struct users *u) {
    if (!a->users_path)
        return u;
    uv_rwlock_wrlock(&a->users_lock);
    struct users *old = a->users;
    a->users = u;
    uv_rwlock_wrunlock(&a->users_lock);
    return old;
}

size_t auth_users_count(const struct users *u) { return u ? u->n : 0; }

void auth_users_free(struct users *u) { users_free(u); }

void auth_identity_release(struct identity *id) {
    entitle_put(id->symbols);
    entitle_put(id->delayed);
    id->symbols = id->delayed = NULL;
}

static int fail(struct auth *a, int f, int status, const char **reason) {
    atomic_fetch_add_explicit(&a->failures[f], 1, memory_order_relaxed);
    *reason = auth_failure_str(f);
    return status;
}

int auth_token(struct auth *a, const char *tok, size_t len, struct identity *id, const char **reason) {
    id->symbols = id->delayed = NULL; /* auth_identity_release is safe whatever the result */
    struct jwt_claims cl;
    uv_rwlock_rdlock(&a->users_lock); /* the JWK Set may be replaced on SIGHUP */
    enum jwt_result r = jwt_verify(&a->jwt, tok, len, (int64_t)time(NULL), &cl);
    uv_rwlock_rdunlock(&a->users_lock);
    if (r == JWT_EXPIRED)
        return fail(a, AUTHF_EXPIRED, 401, reason);
    if (r != JWT_OK)
        return fail(a, AUTHF_INVALID_TOKEN, 401, reason);
    int role = cl.role[0] ? role_from_name(cl.role) : ROLE_VIEWER;
    if (role < 0 || role == ROLE_ANONYMOUS) {
        jwt_claims_release(&cl);
        return fail(a, AUTHF_INVALID_TOKEN, 401, reason);
    }
    int status = 0;
    uv_rwlock_rdlock(&a->users_lock);
    if (a->users) {
        /* With a users file, sub must name an active user, whose role wins. */
        const struct user *u = NULL;
        for (size_t i = 0; i < a->users->n && !u; i++)
            if (strcmp(a->users->v[i].id, cl.sub) == 0)
                u = &a->users->v[i];
        if (!u)
            status = fail(a, AUTHF_UNKNOWN_USER, 403, reason);
        else if (!u->active)
            status = fail(a, AUTHF_INACTIVE_USER, 403, reason);
        else {
            role = u->role;
            /* The users file wins over the token for each list it names. */
            if (u->symbols) {
                entitle_put(cl.symbols);
                cl.symbols = entitle_ref(u->symbols);
            }
            if (u->delayed) {
                entitle_put(cl.delayed);
                cl.delayed = entitle_ref(u->delayed);
            }
        }
    }
    uv_rwlock_rdunlock(&a->users_lock);
    if (status) {
        jwt_claims_release(&cl);
        return status;
    }
    snprintf(id->user_id, sizeof(id->user_id), "%s", cl.sub);
    id->role = role;
    id->exp = cl.exp;
    id->symbols = cl.symbols; /* handed on */
    id->delayed = cl.delayed;
    return 0;
}

int auth_api_key(struct auth *a, const char *key, size_t len, struct identity *id, const char **reason) {
    id->symbols = id->delayed = NULL;
    unsigned char h[32];
    sha256(key, len, h);
    const struct user *found = NULL;
    uv_rwlock_rdlock(&a->users_lock);
    if (a->users)
        for (size_t i = 0; i < a->users->n; i++)
            for (size_t k = 0; k < a->users->v[i].nkeys; k++)
                if (CRYPTO_memcmp(a->users->v[i].keys[k], h, 32) == 0 && !found)
                    found = &a->users->v[i];
    int status = 0;
    if (!found)
        status = fail(a, AUTHF_INVALID_KEY, 401, reason);
    else if (!found->active)
        status = fail(a, AUTHF_INACTIVE_USER, 403, reason);
    else {
        snprintf(id->user_id, sizeof(id->user_id), "%s", found->id);
        id->role = found->role;
        id->exp = 0;
        id->symbols = entitle_ref(found->symbols);
        id->delayed = entitle_ref(found->delayed);
    }
    uv_rwlock_rdunlock(&a->users_lock);
    return status;
}

int auth_identify(struct auth *a, const struct credentials *cr, struct identity *id, const char **reason) {
    id->symbols = id->delayed = NULL;
    if (cr->unusable) /* an Authorization header we cannot use is a failed credential */
        return fail(a, AUTHF_INVALID_TOKEN, 401, reason);
    if (cr->token)
        return auth_token(a, cr->token, cr->token_len, id, reason);
    if (cr->key)
        return auth_api_key(a, cr->key, cr->key_len, id, reason);
    if (!a->allow_anonymous)
        return fail(a, AUTHF_ANONYMOUS_DISABLED, 401, reason);
    id->user_id[0] = '\0';
    id->role = ROLE_ANONYMOUS;
    id->exp = 0;
    id->symbols = entitle_ref(a->anonymous_symbols);
    id->delayed = NULL;
    return 0;
}
