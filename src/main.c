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

static const char HASH_KEY_USAGE[] =
    "usage: tickgate hash-key KEY\n"
    "Prints the stored form of an API key (sha256:<64 hex>) for the api_keys list of a user\n"
    "in the users file (auth.users_file). A key starting with '-' goes after '--'.\n";

static int cmd_hash_key(int argc, char **argv) {
    if (argc == 1 && (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h"))) {
        fputs(HASH_KEY_USAGE, stdout);
        return 0;
    }
    if (argc == 2 && !strcmp(argv[0], "--")) {
        argc--;
        argv++;
    } else if (argc == 1 && argv[0][0] == '-') {
        fprintf(stderr, "tickgate hash-key: '%s' looks like an option; to hash it, write: tickgate hash-key -- KEY\n",
                argv[0]);
        return 2;
    }
    if (argc != 1) {
        fprintf(stderr, "tickgate hash-key: expected exactly one KEY\n%s", HASH_KEY_USAGE);
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

#define TOKEN_TTL_DEFAULT 3600

static void token_usage(FILE *out) {
    fprintf(out,
            "usage: tickgate token --sub USER [--role ROLE] [--ttl SECONDS] [--symbols A,B*] [--delayed-symbols X*]\n"
            "       [--kid KID] [--config FILE] [--auth.jwt_secret_file=... | --auth.jwks_file=...]\n"
            "Prints an HS256 JWT for USER signed with the configured secret (development and tests).\n"
            "  --role  super_admin admin analyst trader viewer publisher (default: none, the server takes viewer\n"
            "          or the users file's role)\n"
            "  --ttl   lifetime, 1 to %ld seconds (default %d: one hour)\n"
            "  --symbols, --delayed-symbols  entitlement claims: patterns SYMBOL, PREFIX* or *\n"
            "  --kid   the header's kid; an oct key of auth.jwks_file with that kid signs\n",
            TOKEN_TTL_MAX, TOKEN_TTL_DEFAULT);
}

static int cmd_token(int argc, char **argv) {
    const char *sub = NULL, *role = NULL, *ttl_text = NULL, *kid = NULL, *lists[2] = {NULL, NULL};
    long ttl = TOKEN_TTL_DEFAULT;
    char **rest = calloc((size_t)argc + 1, sizeof(char *));
    int nrest = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            token_usage(stdout);
            free(rest);
            return 0;
        }
        static const char *VALUED[] = {"--sub", "--role", "--ttl", "--symbols", "--delayed-symbols", "--kid"};
        bool valued = false;
        for (size_t v = 0; v < sizeof(VALUED) / sizeof(VALUED[0]); v++)
            valued |= !strcmp(argv[i], VALUED[v]);
        if (valued && i + 1 >= argc) {
            fprintf(stderr, "tickgate token: %s needs a value\n", argv[i]);
            token_usage(stderr);
            free(rest);
            return 2;
        }
        if (!strcmp(argv[i], "--sub"))
            sub = argv[++i];
        else if (!strcmp(argv[i], "--role"))
            role = argv[++i];
        else if (!strcmp(argv[i], "--ttl"))
            ttl = parse_ttl(ttl_text = argv[++i]);
        else if (!strcmp(argv[i], "--symbols"))
            lists[0] = argv[++i];
        else if (!strcmp(argv[i], "--delayed-symbols"))
            lists[1] = argv[++i];
        else if (!strcmp(argv[i], "--kid"))
            kid = argv[++i];
        else
            rest[nrest++] = argv[i]; /* configuration flags: the secret */
    }
    struct config cfg;
    struct auth a;
    int rc = 2;
    const char *why = NULL;
    char buf[160];
    if (!sub)
        why = "--sub USER is required";
    else if (ttl <= 0)
        why = (snprintf(buf, sizeof(buf), "--ttl '%.40s' is not a whole number of seconds in 1..%ld", ttl_text,
                        TOKEN_TTL_MAX), buf);
    else if (role && (role_from_name(role) < 0 || role_from_name(role) == ROLE_ANONYMOUS))
        why = (snprintf(buf, sizeof(buf), "--role '%.40s' is not a role a token can carry", role), buf);
    if (why) {
        fprintf(stderr, "tickgate token: %s\n", why);
        token_usage(stderr);
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
        why = NULL;
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
    srv.argc = argc - 1; /* a SIGHUP reload reads the same flags again */
    srv.argv = argv + 1;
    if (server_init(&srv) < 0) {
        config_free(&srv.cfg);
        return 2;
    }
    rc = server_run(&srv);
    server_free(&srv);
    config_free(&srv.cfg);
    return rc;
}
