/* config.c - the settings' four layers (defaults, a file, the environment,
 * flags) over the table in config_keys.c; see config.h. */
#include "base/config.h"

#include "base/config_keys.h"
#include "base/ini_file.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

extern char **environ;


static const struct key *find_key(const char *section, const char *name) {
    for (size_t i = 0; i < CONFIG_NKEYS; i++)
        if (strcmp(CONFIG_KEYS[i].section, section) == 0 && strcmp(CONFIG_KEYS[i].name, name) == 0)
            return &CONFIG_KEYS[i];
    return NULL;
}

static bool section_known(const char *section, size_t len) {
    for (size_t i = 0; i < CONFIG_NKEYS; i++)
        if (strlen(CONFIG_KEYS[i].section) == len && strncmp(CONFIG_KEYS[i].section, section, len) == 0)
            return true;
    return false;
}

static bool parse_long(const char *v, long *out) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end != '\0')
        return false;
    *out = x;
    return true;
}

/* Sets key k from text v. origin names the layer for messages. */
static int set_value(struct config *cfg, const struct key *k, const char *v, const char *origin, FILE *err) {
    char *field = (char *)cfg + k->off;
    long x;
    switch (k->type) {
    case K_PATH:
        if (v[0] != '\0' && v[0] != '/') {
            fprintf(err, "tickgate: %s.%s (%s): '%s' must be empty or start with '/'\n", k->section, k->name, origin, v);
            return -1;
        }
        /* fall through */
    case K_SECRET:
    case K_STR: {
        char *copy = strdup(v);
        if (!copy)
            return -1;
        free(*(char **)field);
        *(char **)field = copy;
        return 0;
    }
    case K_INT:
    case K_LONG:
        if (!parse_long(v, &x) || x < k->min || x > k->max) {
            fprintf(err, "tickgate: %s.%s (%s): '%s' is not an integer in %ld..%ld\n", k->section, k->name, origin, v,
                    k->min, k->max);
            return -1;
        }
        if (k->type == K_INT)
            *(int *)field = (int)x;
        else
            *(long *)field = x;
        return 0;
    case K_DOUBLE: {
        char *end;
        errno = 0;
        double d = strtod(v, &end);
        if (errno || end == v || *end || !(d >= 0 && d <= 1e15)) {
            fprintf(err, "tickgate: %s.%s (%s): '%s' is not a number in 0..1e15\n", k->section, k->name, origin, v);
            return -1;
        }
        *(double *)field = d;
        return 0;
    }
    case K_BOOL:
        if (!strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "yes") || !strcasecmp(v, "on"))
            *(bool *)field = true;
        else if (!strcasecmp(v, "false") || !strcmp(v, "0") || !strcasecmp(v, "no") || !strcasecmp(v, "off"))
            *(bool *)field = false;
        else {
            fprintf(err, "tickgate: %s.%s (%s): '%s' is not a boolean (true/false)\n", k->section, k->name, origin, v);
            return -1;
        }
        return 0;
    case K_ENUM: {
        int idx = 0;
        const char *c = k->choices;
        size_t vl = strlen(v);
        while (*c) {
            const char *bar = strchr(c, '|');
            size_t cl = bar ? (size_t)(bar - c) : strlen(c);
            if (cl == vl && strncmp(c, v, vl) == 0) {
                *(int *)field = idx;
                return 0;
            }
            idx++;
            c += cl + (bar ? 1 : 0);
        }
        fprintf(err, "tickgate: %s.%s (%s): '%s' is not one of %s\n", k->section, k->name, origin, v, k->choices);
        return -1;
    }
    }
    return -1;
}

struct file_ctx {
    struct config *cfg;
    FILE *err;
    const char *path;
};

static int on_ini(void *user, const char *section, const char *name, const char *value, int line) {
    struct file_ctx *fc = user;
    const struct key *k = find_key(section, name);
    char origin[512];
    snprintf(origin, sizeof(origin), "%s:%d", fc->path, line);
    if (!k) {
        fprintf(fc->err, "tickgate: %s: unknown key %s.%s (see --help)\n", origin, section, name);
        return -1;
    }
    return set_value(fc->cfg, k, value, origin, fc->err);
}

static void env_name(const struct key *k, char *out, size_t n) {
    snprintf(out, n, "TICKGATE_%s_%s", k->section, k->name);
    for (char *p = out; *p; p++)
        if (*p >= 'a' && *p <= 'z')
            *p = (char)(*p - 'a' + 'A');
}

/* Rejects TICKGATE_<SECTION>_* variables that name no key, so a typo in a
 * deployment's environment is an error instead of a silent default. */
static int check_env_unknown(FILE *err) {
    for (char **e = environ; *e; e++) {
        if (strncmp(*e, "TICKGATE_", 9) != 0)
            continue;
        const char *eq = strchr(*e, '=');
        size_t nl = eq ? (size_t)(eq - *e) : strlen(*e);
        bool known = false;
        for (size_t i = 0; i < CONFIG_NKEYS && !known; i++) {
            char name[128];
            env_name(&CONFIG_KEYS[i], name, sizeof(name));
            known = strlen(name) == nl && strncmp(name, *e, nl) == 0;
        }
        if (known)
            continue;
        const char *sec = *e + 9;
        const char *us = memchr(sec, '_', nl - 9);
        if (!us)
            continue;
        char lower[64];
        size_t sl = (size_t)(us - sec);
        if (sl >= sizeof(lower))
            continue;
        for (size_t i = 0; i < sl; i++)
            lower[i] = (char)(sec[i] >= 'A' && sec[i] <= 'Z' ? sec[i] - 'A' + 'a' : sec[i]);
        if (section_known(lower, sl)) {
            fprintf(err, "tickgate: unknown setting %.*s in the environment\n", (int)nl, *e);
            return -1;
        }
    }
    return 0;
}

bool config_key_doc(size_t i, struct config_key_doc *d) {
    if (i >= CONFIG_NKEYS)
        return false;
    const struct key *k = &CONFIG_KEYS[i];
    *d = (struct config_key_doc){k->section, k->name, k->def, k->help, k->choices, k->type == K_SECRET};
    return true;
}

bool config_key_same(const struct config *a, const struct config *b, size_t i) {
    const struct key *k = &CONFIG_KEYS[i];
    const char *fa = (const char *)a + k->off, *fb = (const char *)b + k->off;
    switch (k->type) {
    case K_STR:
    case K_PATH:
    case K_SECRET:
        return strcmp(*(char *const *)fa, *(char *const *)fb) == 0;
    case K_INT:
    case K_ENUM:
        return *(const int *)fa == *(const int *)fb;
    case K_LONG:
        return *(const long *)fa == *(const long *)fb;
    case K_BOOL:
        return *(const bool *)fa == *(const bool *)fb;
    case K_DOUBLE:
        return *(const double *)fa == *(const double *)fb;
    }
    return false;
}

void config_free(struct config *cfg) {
    for (size_t i = 0; i < CONFIG_NKEYS; i++)
        if (CONFIG_KEYS[i].type == K_STR || CONFIG_KEYS[i].type == K_PATH || CONFIG_KEYS[i].type == K_SECRET) {
            char **f = (char **)((char *)cfg + CONFIG_KEYS[i].off);
            free(*f);
            *f = NULL;
        }
}

/* Applies one "--section.key=value" argument. */
static int apply_flag(struct config *cfg, const char *arg, FILE *err) {
    const char *kv = arg + 2;
    const char *eq = strchr(kv, '=');
    const char *dot = strchr(kv, '.');
    /* Messages show the key part only: the value may be a secret. */
    int keylen = eq ? (int)(eq - arg) : (int)strlen(arg);
    if (!eq && dot) {
        fprintf(err, "tickgate: %s needs a value: write %s=VALUE (see --help)\n", arg, arg);
        return -1;
    }
    if (!eq || !dot || dot > eq) {
        fprintf(err, "tickgate: bad argument '%.*s' (expected --section.key=value; see --help)\n", keylen, arg);
        return -1;
    }
    char section[64], name[64];
    size_t sl = (size_t)(dot - kv), nl = (size_t)(eq - dot - 1);
    if (sl >= sizeof(section) || nl >= sizeof(name)) {
        fprintf(err, "tickgate: unknown key in '%.*s'\n", keylen, arg);
        return -1;
    }
    memcpy(section, kv, sl);
    section[sl] = '\0';
    memcpy(name, dot + 1, nl);
    name[nl] = '\0';
    const struct key *k = find_key(section, name);
    if (!k) {
        fprintf(err, "tickgate: unknown key %s.%s on the command line (see --help)\n", section, name);
        return -1;
    }
    return set_value(cfg, k, eq + 1, "command line", err);
}

/* Relations between keys that each passed their own bounds. 0, or -1
 * after naming the key to change. */
static int check_relations(const struct config *cfg, FILE *err) {
    if (!cfg->server.static_dir[0]) { /* "" + "/etc/passwd" would serve the whole file system */
        fprintf(err, "tickgate: server.static_dir: must name a directory\n");
        return -1;
    }
    if (cfg->limits.heartbeat_timeout_s < cfg->limits.heartbeat_interval_s) {
        fprintf(err,
                "tickgate: limits.heartbeat_timeout_s: %d is less than limits.heartbeat_interval_s (%d): "
                "clients would time out before they are pinged\n",
                cfg->limits.heartbeat_timeout_s, cfg->limits.heartbeat_interval_s);
        return -1;
    }
    if (!cfg->redis.sentinels[0] != !cfg->redis.sentinel_master[0]) {
        fprintf(err, "tickgate: redis.%s: needs redis.%s too (Sentinel needs both, or neither)\n",
                cfg->redis.sentinels[0] ? "sentinels" : "sentinel_master",
                cfg->redis.sentinels[0] ? "sentinel_master" : "sentinels");
        return -1;
    }
    if (cfg->redis.cluster && (!cfg->redis.url[0] || cfg->redis.sentinels[0])) {
        fprintf(err, "tickgate: redis.cluster: needs redis.url (any node of the cluster) and no redis.sentinels\n");
        return -1;
    }
    if (cfg->redis.cluster && strpbrk(cfg->redis.key_prefix, "{}")) {
        fprintf(err, "tickgate: redis.key_prefix: no '{' or '}' with redis.cluster (the keys' hash tags are tickgate's)\n");
        return -1;
    }
    if (cfg->redis.sentinels[0] && config_check_hostports(cfg->redis.sentinels, 16) < 0) {
        fprintf(err, "tickgate: redis.sentinels: '%s' is not a comma list of 1 to 16 HOST:PORT (port 1..65535)\n",
                cfg->redis.sentinels);
        return -1;
    }
    if (cfg->security.medium_violations > cfg->security.high_violations) {
        fprintf(err,
                "tickgate: security.medium_violations: %d is more than security.high_violations (%d): "
                "threat level medium would never be seen\n",
                cfg->security.medium_violations, cfg->security.high_violations);
        return -1;
    }
    return 0;
}

int config_load(struct config *cfg, int argc, char **argv, FILE *err) {
    const char *file = NULL;
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < CONFIG_NKEYS; i++)
        if (set_value(cfg, &CONFIG_KEYS[i], CONFIG_KEYS[i].def, "default", err) < 0)
            goto fail;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            config_print_help(stdout);
            config_free(cfg);
            return 1;
        }
        if (!strcmp(argv[i], "--print-man") || !strcmp(argv[i], "--print-config")) {
            (argv[i][8] == 'm' ? config_print_man : config_print_example)(stdout);
            config_free(cfg);
            return 1;
        }
        if (!strcmp(argv[i], "--version")) {
            printf("tickgate %s\n", TG_VERSION);
            config_free(cfg);
            return 1;
        }
        if (!strcmp(argv[i], "--config")) {
            if (i + 1 >= argc) {
                fprintf(err, "tickgate: --config needs a file name\n");
                goto fail;
            }
            file = argv[++i];
        } else if (!strncmp(argv[i], "--config=", 9)) {
            file = argv[i] + 9;
        } else if (strncmp(argv[i], "--", 2) != 0) {
            if (i > 0 && !strncmp(argv[i - 1], "--", 2) && !strchr(argv[i - 1], '='))
                /* "--key value": the value is not shown, it may be a secret. */
                fprintf(err, "tickgate: %s takes its value after '=': write %s=VALUE, not a space (see --help)\n",
                        argv[i - 1], argv[i - 1]);
            else
                fprintf(err, "tickgate: unexpected argument '%s' (see --help)\n", argv[i]);
            goto fail;
        }
    }
    if (file) {
        struct file_ctx fc = {cfg, err, file};
        if (ini_file_read(file, on_ini, &fc, err) < 0)
            goto fail;
    }
    if (check_env_unknown(err) < 0)
        goto fail;
    for (size_t i = 0; i < CONFIG_NKEYS; i++) {
        char name[128];
        env_name(&CONFIG_KEYS[i], name, sizeof(name));
        const char *v = getenv(name);
        if (v && set_value(cfg, &CONFIG_KEYS[i], v, "environment", err) < 0)
            goto fail;
    }
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--config")) {
            i++;
            continue;
        }
        if (!strncmp(argv[i], "--config=", 9))
            continue;
        if (apply_flag(cfg, argv[i], err) < 0)
            goto fail;
    }
    char host[256];
    int port;
    if (config_split_listen(cfg->server.listen, host, sizeof(host), &port) < 0) {
        fprintf(err, "tickgate: server.listen: '%s' is not HOST:PORT with a port in 0..65535\n", cfg->server.listen);
        goto fail;
    }
    if (cfg->server.tls_listen[0]) {
        if (config_split_listen(cfg->server.tls_listen, host, sizeof(host), &port) < 0) {
            fprintf(err, "tickgate: server.tls_listen: '%s' is not HOST:PORT with a port in 0..65535\n",
                    cfg->server.tls_listen);
            goto fail;
        }
        if (!cfg->server.tls_cert[0] || !cfg->server.tls_key[0]) {
            fprintf(err, "tickgate: server.tls_listen: needs server.tls_cert and server.tls_key\n");
            goto fail;
        }
    }
    if (!cfg->server.ws_path[0]) { /* empty would leave the gateway without its endpoint */
        fprintf(err, "tickgate: server.ws_path: must not be empty (the WebSocket endpoint, e.g. /ws)\n");
        goto fail;
    }
    if (cfg->server.echo_path[0] && strcmp(cfg->server.echo_path, cfg->server.ws_path) == 0) {
        fprintf(err, "tickgate: server.echo_path: must differ from server.ws_path\n");
        goto fail;
    }
    if (check_relations(cfg, err) < 0)
        goto fail;
    return 0;
fail:
    config_free(cfg);
    return -1;
}

bool config_list_next(const char **cursor, const char **item, size_t *len) {
    const char *p = *cursor;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (!*p) {
            *cursor = p;
            return false;
        }
        const char *e = p;
        while (*e && *e != ',')
            e++;
        size_t l = (size_t)(e - p);
        while (l && (p[l - 1] == ' ' || p[l - 1] == '\t'))
            l--;
        *cursor = e;
        if (l) {
            *item = p;
            *len = l;
            return true;
        }
        p = e;
    }
}

int config_check_hostports(const char *list, int max) {
    const char *cur = list, *item;
    size_t len;
    int n = 0;
    while (config_list_next(&cur, &item, &len)) {
        char one[300], host[256];
        int port;
        if (++n > max || len >= sizeof(one))
            return -1;
        memcpy(one, item, len);
        one[len] = '\0';
        if (config_split_listen(one, host, sizeof(host), &port) < 0 || port == 0)
            return -1;
    }
    return n ? n : -1;
}

int config_split_listen(const char *listen, char *host, size_t hostlen, int *port) {
    const char *colon = strrchr(listen, ':');
    if (!colon || colon == listen)
        return -1;
    const char *hs = listen, *he = colon;
    if (*hs == '[') {
        if (he[-1] != ']')
            return -1;
        hs++;
        he--;
    }
    size_t hl = (size_t)(he - hs);
    if (hl == 0 || hl >= hostlen)
        return -1;
    long p;
    if (!parse_long(colon + 1, &p) || p < 0 || p > 65535)
        return -1;
    memcpy(host, hs, hl);
    host[hl] = '\0';
    *port = (int)p;
    return 0;
}
