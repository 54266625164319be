/* fuzz_config.c - configuration (src/base/config.c): the INI file through
 * base/ini_file.c, command-line flags and TICKGATE_* environment variables, all
 * via config_load, then what start-up parses out of the values: roles
 * (roles_init / roles_parse_actions), CIDR lists (server.trusted_proxies,
 * security.blocked_ips through guard_init), comma lists
 * (config_list_next) and server.listen (config_split_listen).
 *
 * Input: INI-TEXT \0 ARGS \0 ENV
 *   ARGS: one command-line argument a line ("--config FILE" is added)
 *   ENV:  NAME=VALUE lines; only names starting with TICKGATE_ are set
 *         (and unset again afterwards)
 * Checks: config_load returns 0/1/-1; on 0 every string key is set, the
 * listen address splits, numeric keys hold their bounds; the parsers after
 * it never misbehave; config_free leaves nothing behind (LeakSanitizer). */
#include <stdbool.h>
#include <unistd.h>

#include "auth/guard.h"
#include "auth/roles.h"
#include "base/config.h"
#include "fuzz_common.h"
#include "net/clientip.h"

static char *path; /* the input file (fuzz_common.h) */
static FILE *devnull;

static void init(void) {
    static bool done;
    if (done)
        return;
    done = true;
    path = fuzz_file_create("ini");
    devnull = fopen("/dev/null", "w");
    for (char **e = environ; *e; e++)
        if (!strncmp(*e, "TICKGATE_", 9))
            abort(); /* the harness must run without TICKGATE_* variables */
}

/* Splits [p, p+n) at '\n' into NUL-terminated strings (in place). */
static int split_lines(char *p, size_t n, char **out, int max) {
    int k = 0;
    size_t s = 0;
    for (size_t i = 0; i <= n && k < max; i++) {
        if (i == n || p[i] == '\n') {
            p[i] = '\0';
            if (i > s)
                out[k++] = p + s;
            s = i + 1;
        }
    }
    return k;
}

static void after_load(struct config *cfg) {
    FUZZ_CHECK(cfg->server.listen && cfg->server.ws_path && cfg->server.echo_path && cfg->auth.jwt_secret &&
                   cfg->roles.viewer && cfg->redis.url && cfg->audit.path && cfg->feed.symbols_file,
               "a string key is NULL after a successful load");
    char host[256];
    int port = -1;
    FUZZ_CHECK(config_split_listen(cfg->server.listen, host, sizeof(host), &port) == 0 && port >= 0 &&
                   port <= 65535,
               "server.listen '%s' accepted but does not split", cfg->server.listen);
    FUZZ_CHECK(cfg->server.ws_path[0] == '/', "ws_path '%s' accepted (must start with '/')", cfg->server.ws_path);
    FUZZ_CHECK(cfg->limits.max_message_bytes >= 125 && cfg->limits.max_outbound_bytes >= 4096 &&
                   cfg->server.handshake_timeout_ms >= 100 && cfg->limits.max_connections >= 1,
               "a numeric key is outside its bounds");
    struct roles r;
    if (roles_init(&r, cfg, devnull) == 0)
        for (int i = 0; i < ROLE_COUNT; i++)
            FUZZ_CHECK(r.max_symbols[i] >= 0, "role %d: max_symbols %d", i, r.max_symbols[i]);
    struct cidr_list l;
    if (cidr_list_parse(&l, cfg->server.trusted_proxies, "server.trusted_proxies", devnull) == 0) {
        for (size_t i = 0; i < l.n; i++) {
            FUZZ_CHECK(l.v[i].bits <= 128, "prefix length %u", l.v[i].bits);
            char text[64];
            ip16_format(&l.v[i].net, text, sizeof(text));
            struct ip16 back;
            FUZZ_CHECK(ip16_parse(text, strlen(text), &back), "ip16_format gave '%s', which does not parse", text);
            FUZZ_CHECK(cidr_list_match(&l, &l.v[i].net), "a network does not match its own address");
        }
        cidr_list_free(&l);
    }
    struct guard g;
    if (guard_init(&g, cfg, devnull) == 0)
        guard_free(&g);
    const char *lists[] = {cfg->server.allowed_origins, cfg->auth.jwt_algorithms, cfg->security.blocked_ips};
    for (size_t i = 0; i < 3; i++) {
        const char *cur = lists[i], *item;
        size_t len, total = strlen(lists[i]);
        while (config_list_next(&cur, &item, &len)) {
            FUZZ_CHECK(len > 0 && item >= lists[i] && item + len <= lists[i] + total, "list item out of range");
            FUZZ_CHECK(item[0] != ' ' && item[0] != ',' && item[len - 1] != ' ', "item not trimmed");
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    init();
    /* One spare byte: split_lines terminates the last line in place. */
    char *buf = malloc(size + 1);
    if (!buf)
        abort();
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *z1 = memchr(buf, 0, size);
    size_t ini_len = z1 ? (size_t)(z1 - buf) : size;
    char *args = z1 ? z1 + 1 : buf + size;
    size_t args_len = z1 ? size - ini_len - 1 : 0;
    char *z2 = memchr(args, 0, args_len);
    char *env = z2 ? z2 + 1 : args + args_len;
    size_t env_len = z2 ? (size_t)(buf + size - env) : 0;
    if (z2)
        args_len = (size_t)(z2 - args);

    fuzz_file_write(buf, ini_len);

    char *argv[66];
    int argc = 0;
    argv[argc++] = "--config";
    argv[argc++] = path;
    argc += split_lines(args, args_len, argv + argc, 64);

    char *envs[16];
    int nenv = split_lines(env, env_len, envs, 16);
    char *names[16];
    int nset = 0;
    for (int i = 0; i < nenv; i++) {
        char *eq = strchr(envs[i], '=');
        if (!eq || strncmp(envs[i], "TICKGATE_", 9) != 0)
            continue;
        *eq = '\0';
        if (setenv(envs[i], eq + 1, 1) == 0)
            names[nset++] = envs[i];
    }

    struct config cfg;
    int rc = config_load(&cfg, argc, argv, devnull);
    FUZZ_CHECK(rc == 0 || rc == 1 || rc == -1, "config_load returned %d", rc);
    if (rc == 0) {
        after_load(&cfg);
        config_free(&cfg);
    }
    for (int i = 0; i < nset; i++)
        unsetenv(names[i]);
    free(buf);
    return 0;
}
