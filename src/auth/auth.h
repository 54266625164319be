/* auth.h - who is connecting: credentials to identity (PROTOCOL.md s.2).
 *
 * Owns the JWT verifier, the role table, the JWK Set and the users file.
 * The users table and the JWK Set are replaced whole on SIGHUP under a
 * read-write lock: lookups (any
 * worker) take it shared, the reload (main thread) exclusive. Secrets and
 * keys are compared in constant time and never logged. */
#ifndef TG_AUTH_H
#define TG_AUTH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include "auth/entitle.h"
#include "auth/jwt.h"
#include "auth/roles.h"

struct config;

/* Entitlements (PROTOCOL.md s.14) are references to interned sets
 * (auth/entitle.h): whoever holds an identity either hands them on or
 * drops them with auth_identity_release. */
struct identity {
    char user_id[128];          /* "" for anonymous */
    int role;                   /* enum role */
    int64_t exp;                /* token expiry (s), 0 when not a token */
    struct entitle_set *symbols; /* real time: NULL = every symbol */
    struct entitle_set *delayed; /* delayed: NULL = none */
};

struct user {
    char *id;
    char *username;
    int role;
    bool active;
    unsigned char (*keys)[32];  /* SHA-256 of each API key */
    size_t nkeys;
    struct entitle_set *symbols; /* field "symbols": wins over the token's; NULL = not named */
    struct entitle_set *delayed; /* field "delayed_symbols", likewise */
};

struct users {
    struct user *v;
    size_t n;
};

enum auth_failure {
    AUTHF_INVALID_TOKEN = 0,    /* malformed, bad alg/signature/claims */
    AUTHF_EXPIRED,
    AUTHF_INVALID_KEY,
    AUTHF_UNKNOWN_USER,
    AUTHF_INACTIVE_USER,
    AUTHF_ANONYMOUS_DISABLED,
    AUTHF_COUNT,
};

struct auth {
    struct roles roles;         /* changed only by a reload, workers parked */
    struct jwt_verifier jwt;    /* read-only after init */
    bool allow_anonymous;
    struct entitle_set *anonymous_symbols; /* auth.anonymous_symbols; NULL = every symbol */
    char *users_path;           /* NULL = no users file */
    char *jwks_path;            /* NULL = no JWK Set */
    struct jwks *jwks;          /* auth.jwks_file's keys (jwt.jwks points here) */
    uv_rwlock_t users_lock;     /* guards users and jwks */
    struct users *users;
    _Atomic uint64_t failures[AUTHF_COUNT]; /* metrics: auth_failures_total{reason} */
};

/* Reads secrets and the users file. 0, or -1 after naming the key in err. */
int auth_init(struct auth *a, const struct config *cfg, FILE *err);
void auth_free(struct auth *a);

/* A reload of the users file in two steps (app/reload.c): prepare reads
 * and validates it (*out NULL when no users file is configured; -1 after
 * naming the problem in err), install puts it in place and returns the
 * previous table, for auth_users_free. */
int auth_users_prepare(const struct auth *a, struct users **out, FILE *err);
struct users *auth_users_install(struct auth *a, struct users *u);
size_t auth_users_count(const struct users *u);
void auth_users_free(struct users *u);

/* The same two steps for auth.jwks_file (key rotation): tokens verify
 * with the new set once installed; connections stay. */
int auth_keys_prepare(const struct auth *a, struct jwks **out, FILE *err);
struct jwks *auth_keys_install(struct auth *a, struct jwks *k);
size_t auth_keys_count(const struct jwks *k);
void auth_keys_free(struct jwks *k);

/* What a client presented (the gateway finds it in the request): a token,
 * else an API key, else nothing (anonymous, when allowed). */
struct credentials {
    const char *token;          /* NULL: none */
    size_t token_len;
    const char *key;            /* NULL: none */
    size_t key_len;
    bool unusable;              /* an Authorization header that is not Bearer: refused */
};

/* Result of resolving credentials: 0 = identity filled (its entitlement
 * references are the caller's), else the HTTP status to refuse with (401
 * or 403; no reference held); *reason is a short fixed string. */
int auth_identify(struct auth *a, const struct credentials *cr, struct identity *id, const char **reason);
int auth_token(struct auth *a, const char *tok, size_t len, struct identity *id, const char **reason);
int auth_api_key(struct auth *a, const char *key, size_t len, struct identity *id, const char **reason);

/* Drops the entitlement references of id (fields set NULL). */
void auth_identity_release(struct identity *id);

/* "sha256:<hex>" of key into out (72 bytes). */
void auth_hash_key(const char *key, size_t len, char out[72]);

/* Label of a failure reason for metrics. */
const char *auth_failure_str(int f);

#endif
