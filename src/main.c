/* main.c - the tickgate command: the gateway, and its helper subcommands
 * `hash-key` (the stored form of an API key) and `token` (mint a JWT with
 * the configured secret, for development and tests). */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/auth.h"
#include "auth/jwks.h"
#include "auth/jwt.h"
#include "base/config.h"
#include "app/server.h"

static int cmd_hash_key(int argc, char **argv) {
    if (argc != 1) {
        fprintf(stderr, "usage: tickgate hash-key KEY\n");
        return 2;
    }
    char out[72];
    auth_hash_key(argv[0], strlen(argv[0]), out);
    printf("%s\n", out);
    return 0;
}

/* Token lifetimes: 1 s to a century, so now + ttl cannot overflow. A ttl
 * that is not a plain number in that range is 0 (a usage error). */
#define TOKEN_TTL_MAX 3153600000L

static long parse_ttl(const char *s) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    return errno || end == s || *end || v < 1 || v > TOKEN_TTL_MAX ? 0 : v;
}

static int cmd_token(int argc, char **argv) {
    const char *sub = NULL, *role = NULL, *kid = NULL, *lists[2] = {NULL, NULL};
    long ttl = 3600;
    char **rest = calloc((size_t)argc + 1, sizeof(char *));
    int nrest = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--sub") && i + 1 < argc)
            sub = argv[++i];
        else if (!strcmp(argv[i], "--role") && i + 1 < argc)
            role = argv[++i];
        else if (!strcmp(argv[i], "--ttl") && i + 1 < argc)
            ttl = parse_ttl(argv[++i]);
        else if (!strcmp(argv[i], "--symbols") && i + 1 < argc)
            lists[0] = argv[++i];
        else if (!strcmp(argv[i], "--delayed-symbols") && i + 1 < argc)
            lists[1] = argv[++i];
        else if (!strcmp(argv[i], "--kid") && i + 1 < argc)
            kid = argv[++i];
        else
            rest[nrest++] = argv[i]; /* configuration flags: the secret */
    }
    struct config cfg;
    struct auth a;
    int rc = 2;
    if (!sub || ttl <= 0 || (role && (role_from_name(role) < 0 || role_from_name(role) == ROLE_ANONYMOUS))) {
        fprintf(stderr, "usage: tickgate token --sub USER [--role ROLE] [--ttl SECONDS] [--symbols A,B*]\n"
                        "       [--delayed-symbols X*] [--kid KID] [--auth.jwt_secret=... | --auth.jwks_file=...]\n"
                        "roles: super_admin admin analyst trader viewer publisher\n"
                        "--ttl: 1 to %ld seconds (default 3600)\n", TOKEN_TTL_MAX);
        free(rest);
        return 2;
    }
    if (config_load(&cfg, nrest, rest, stderr) != 0) {
        free(rest);
        return 2;
    }
    if (auth_init(&a, &cfg, stderr) < 0)
        goto out_cfg;
    /* --kid names an oct key of the JWK Set to sign with; else the
     * configured secret signs and the kid is only written in the header. */
    const struct jwk *k = kid ? jwks_find(a.jwks, kid) : NULL;
    const unsigned char *secret = k && k->secret ? k->secret : a.jwt.secret;
    size_t secret_len = k && k->secret ? k->secret_len : a.jwt.secret_len;
    if (!secret_len) {
        fprintf(stderr, "tickgate token: no secret configured (auth.jwt_secret, auth.jwt_secret_file, or --kid "
                        "of an oct key in auth.jwks_file)\n");
        goto out_auth;
    }
    time_t now = time(NULL);
    json_t *p = json_pack("{s:s, s:I, s:I}", "sub", sub, "iat", (json_int_t)now, "exp", (json_int_t)(now + ttl));
    if (role)
        json_object_set_new(p, "role", json_string(role));
    static const char *CLAIMS[2] = {"symbols", "delayed_symbols"};
    for (int l = 0; l < 2; l++) {
        if (!lists[l])
            continue;
        const char *why = NULL;
        struct entitle_set *check = entitle_get_list(lists[l], &why);
        if (!check) {
            fprintf(stderr, "tickgate token: --%s: %s (patterns: SYMBOL, PREFIX* or *)\n",
                    l ? "delayed-symbols" : "symbols", why);
            json_decref(p);
            goto out_auth;
        }
        entitle_put(check);
        json_t *arr = json_array();
        const char *cur = lists[l], *item;
        size_t len;
        while (config_list_next(&cur, &item, &len))
            json_array_append_new(arr, json_stringn(item, len));
        json_object_set_new(p, CLAIMS[l], arr);
    }
    if (cfg.auth.jwt_issuer[0])
        json_object_set_new(p, "iss", json_string(cfg.auth.jwt_issuer));
    if (cfg.auth.jwt_audience[0])
        json_object_set_new(p, "aud", json_string(cfg.auth.jwt_audience));
    char *payload = json_dumps(p, JSON_COMPACT);
    json_decref(p);
    char *tok = payload ? jwt_sign_hs256_kid(secret, secret_len, kid, payload) : NULL;
    free(payload);
    if (tok) {
        printf("%s\n", tok);
        free(tok);
        rc = 0;
    }
out_auth:
    auth_free(&a);
out_cfg:
    config_free(&cfg);
    free(rest);
    return rc;
}

int main(int argc, char **argv) {
    static struct server srv;
    if (argc >= 2 && !strcmp(argv[1], "hash-key"))
        return cmd_hash_key(argc - 2, argv + 2);
    if (argc >= 2 && !strcmp(argv[1], "token"))
        return cmd_token(argc - 2, argv + 2);
    int rc = config_load(&srv.cfg, argc - 1, argv + 1, stderr);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    if (server_init(&srv) < 0) {
        config_free(&srv.cfg);
        return 2;
    }
    rc = server_run(&srv);
    server_free(&srv);
    config_free(&srv.cfg);
    return rc;
}
