/* test_config.c - unit tests for the settings layers (src/base/config.c):
 * defaults < INI file < environment < --section.key=value flags, the
 * rejections (each naming the bad key), --help/--version, and
 * config_split_listen.
 *
 * Every test starts and ends with no TICKGATE_* variable in the environment
 * and removes the temporary INI files it wrote. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/config.h"
#include "../unit_env.h"


/* ---- fixtures ----------------------------------------------------------- */

#define MAX_TMP 4
static char tmp_paths[MAX_TMP][64];
static int ntmp;
static char *errmsg; /* what the last load() wrote to its err FILE */

static int setup(void **state) {
    (void)state;
    unit_clear_tickgate_env();
    ntmp = 0;
    errmsg = NULL;
    return 0;
}

static int teardown(void **state) {
    (void)state;
    unit_clear_tickgate_env();
    for (int i = 0; i < ntmp; i++)
        unlink(tmp_paths[i]);
    ntmp = 0;
    free(errmsg);
    errmsg = NULL;
    return 0;
}

/* Writes text to a new temporary INI file and returns its path (removed in
 * teardown). */
static const char *write_ini(const char *text) {
    assert_true(ntmp < MAX_TMP);
    const char *dir = getenv("TMPDIR");
    snprintf(tmp_paths[ntmp], sizeof(tmp_paths[ntmp]), "%s/tg_cfg_XXXXXX", dir && *dir && strlen(dir) < 40 ? dir : "/tmp");
    int fd = mkstemp(tmp_paths[ntmp]);
    assert_true(fd >= 0);
    size_t len = strlen(text);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
    return tmp_paths[ntmp++];
}

/* config_load with the NULL-terminated argument list; what it writes to err
 * lands in errmsg. */
static int load(struct config *cfg, ...) {
    char *argv[32];
    int argc = 0;
    va_list ap;
    va_start(ap, cfg);
    for (const char *a; (a = va_arg(ap, const char *)) != NULL;) {
        assert_true(argc < 31);
        argv[argc++] = (char *)a;
    }
    va_end(ap);
    argv[argc] = NULL;

    free(errmsg);
    errmsg = NULL;
    size_t sz = 0;
    FILE *err = open_memstream(&errmsg, &sz);
    assert_non_null(err);
    int rc = config_load(cfg, argc, argv, err);
    fclose(err);
    return rc;
}

/* The failure contract: -1, a message that names `key`, and nothing left
 * allocated in cfg (config_load frees it itself). */
static void expect_reject(int rc, const struct config *cfg, const char *key) {
    assert_int_equal(rc, -1);
    assert_non_null(errmsg);
    if (!strstr(errmsg, key))
        fail_msg("error message '%s' does not name '%s'", errmsg, key);
    assert_null(cfg->server.listen);
    assert_null(cfg->server.ws_path);
    assert_null(cfg->server.echo_path);
    assert_null(cfg->server.static_dir);
    assert_null(cfg->server.allowed_origins);
}

static void expect_ok(int rc) {
    if (rc != 0)
        fail_msg("config_load returned %d: %s", rc, errmsg ? errmsg : "(no message)");
    assert_string_equal(errmsg, ""); /* nothing printed on success */
}

/* ---- defaults ----------------------------------------------------------- */

static void check_defaults(const struct config *c) {
    assert_string_equal(c->server.listen, "127.0.0.1:8080");
    assert_int_equal(c->server.workers, 0);
    assert_string_equal(c->server.ws_path, "/ws");
    assert_string_equal(c->server.echo_path, "");
    assert_non_null(c->server.static_dir);
    assert_true(c->server.static_dir[0] != '\0');
    assert_string_equal(c->server.allowed_origins, "");
    assert_int_equal(c->server.handshake_timeout_ms, 5000);
    assert_int_equal(c->server.shutdown_grace_ms, 5000);
    assert_int_equal(c->server.max_http_body_bytes, 1048576);
    assert_int_equal(c->limits.max_connections, 100000);
    assert_int_equal(c->limits.max_message_bytes, 65536);
}

static void test_defaults(void **state) {
    (void)state;
    struct config c;
    expect_ok(load(&c, NULL));
    check_defaults(&c);
    config_free(&c);
    assert_null(c.server.listen); /* config_free clears the pointers */
    config_free(&c);              /* so freeing twice is harmless */
}

static void test_defaults_with_unrelated_env(void **state) {
    (void)state;
    /* TICKGATE_BIN (set by the integration test harness) and variables of
     * unknown sections are not settings and must not be rejected */
    setenv("TICKGATE_BIN", "/usr/bin/true", 1);
    setenv("TICKGATE_", "x", 1);
    setenv("TICKGATE_OTHERSECTION_THING", "1", 1);
    setenv("NOT_TICKGATE_SERVER_WORKERS", "7", 1);
    struct config c;
    expect_ok(load(&c, NULL));
    check_defaults(&c);
    config_free(&c);
    unsetenv("NOT_TICKGATE_SERVER_WORKERS");
}

/* ---- each layer alone --------------------------------------------------- */

static const char INI_ALL[] =
    "; a comment\n"
    "[server]\n"
    "listen = 0.0.0.0:9000\n"
    "workers = 2\n"
    "ws_path = /stream\n"
    "echo_path = /echo\n"
    "static_dir = /srv/www\n"
    "allowed_origins = https://a.example, https://b.example\n"
    "handshake_timeout_ms = 1500\n"
    "shutdown_grace_ms = 0\n"
    "max_http_body_bytes = 4096\n"
    "\n"
    "[limits]\n"
    "max_connections = 50\n"
    "max_message_bytes = 125\n";

static void check_ini_all(const struct config *c) {
    assert_string_equal(c->server.listen, "0.0.0.0:9000");
    assert_int_equal(c->server.workers, 2);
    assert_string_equal(c->server.ws_path, "/stream");
    assert_string_equal(c->server.echo_path, "/echo");
    assert_string_equal(c->server.static_dir, "/srv/www");
    assert_string_equal(c->server.allowed_origins, "https://a.example, https://b.example");
    assert_int_equal(c->server.handshake_timeout_ms, 1500);
    assert_int_equal(c->server.shutdown_grace_ms, 0);
    assert_int_equal(c->server.max_http_body_bytes, 4096);
    assert_int_equal(c->limits.max_connections, 50);
    assert_int_equal(c->limits.max_message_bytes, 125);
}

static void test_file_only(void **state) {
    (void)state;
    const char *path = write_ini(INI_ALL);
    struct config c;
    expect_ok(load(&c, "--config", path, NULL));
    check_ini_all(&c);
    config_free(&c);

    /* --config=FILE spelling */
    char arg[128];
    snprintf(arg, sizeof(arg), "--config=%s", path);
    expect_ok(load(&c, arg, NULL));
    check_ini_all(&c);
    config_free(&c);

    /* a file setting one key leaves the rest at their defaults */
    const char *one = write_ini("[server]\nworkers = 7\n");
    expect_ok(load(&c, "--config", one, NULL));
    assert_int_equal(c.server.workers, 7);
    assert_string_equal(c.server.listen, "127.0.0.1:8080");
    assert_int_equal(c.limits.max_message_bytes, 65536);
    config_free(&c);

    /* an empty file is fine */
    const char *empty = write_ini("");
    expect_ok(load(&c, "--config", empty, NULL));
    check_defaults(&c);
    config_free(&c);
}

static void test_env_only(void **state) {
    (void)state;
    setenv("TICKGATE_SERVER_WORKERS", "4", 1);
    setenv("TICKGATE_SERVER_LISTEN", "[::1]:0", 1);
    setenv("TICKGATE_SERVER_ECHO_PATH", "/echo", 1);
    setenv("TICKGATE_SERVER_ALLOWED_ORIGINS", "http://x", 1);
    setenv("TICKGATE_LIMITS_MAX_MESSAGE_BYTES", "1000", 1);
    setenv("TICKGATE_LIMITS_MAX_CONNECTIONS", "100000000", 1);
    struct config c;
    expect_ok(load(&c, NULL));
    assert_int_equal(c.server.workers, 4);
    assert_string_equal(c.server.listen, "[::1]:0");
    assert_string_equal(c.server.echo_path, "/echo");
    assert_string_equal(c.server.allowed_origins, "http://x");
    assert_int_equal(c.limits.max_message_bytes, 1000);
    assert_int_equal(c.limits.max_connections, 100000000);
    assert_string_equal(c.server.ws_path, "/ws"); /* untouched */
    config_free(&c);
}

static void test_flag_only(void **state) {
    (void)state;
    struct config c;
    expect_ok(load(&c, "--server.workers=3", NULL));
    assert_int_equal(c.server.workers, 3);
    assert_string_equal(c.server.listen, "127.0.0.1:8080");
    config_free(&c);

    expect_ok(load(&c, "--server.workers=256", "--server.listen=localhost:1", "--server.ws_path=/a/b",
                   "--server.echo_path=/e", "--server.allowed_origins=", "--limits.max_connections=1",
                   "--server.max_http_body_bytes=0", NULL));
    assert_int_equal(c.server.workers, 256);
    assert_string_equal(c.server.listen, "localhost:1");
    assert_string_equal(c.server.ws_path, "/a/b");
    assert_string_equal(c.server.echo_path, "/e");
    assert_string_equal(c.server.allowed_origins, "");
    assert_int_equal(c.limits.max_connections, 1);
    assert_int_equal(c.server.max_http_body_bytes, 0);
    config_free(&c);

    /* a value may itself contain '=' and '.' */
    expect_ok(load(&c, "--server.allowed_origins=http://a.b/?x=y", NULL));
    assert_string_equal(c.server.allowed_origins, "http://a.b/?x=y");
    config_free(&c);

    /* the last flag for a key wins */
    expect_ok(load(&c, "--server.workers=1", "--server.workers=2", NULL));
    assert_int_equal(c.server.workers, 2);
    config_free(&c);
}

/* ---- precedence: default < file < env < flag ---------------------------- */

static void test_precedence_combined(void **state) {
    (void)state;
    const char *path = write_ini("[server]\nworkers = 2\n");
    struct config c;

    /* file alone */
    expect_ok(load(&c, "--config", path, NULL));
    assert_int_equal(c.server.workers, 2);
    config_free(&c);

    /* file < env */
    setenv("TICKGATE_SERVER_WORKERS", "4", 1);
    expect_ok(load(&c, "--config", path, NULL));
    assert_int_equal(c.server.workers, 4);
    config_free(&c);

    /* file < env < flag */
    expect_ok(load(&c, "--config", path, "--server.workers=3", NULL));
    assert_int_equal(c.server.workers, 3);
    config_free(&c);

    /* the flag may come before --config: order on the line does not matter */
    expect_ok(load(&c, "--server.workers=3", "--config", path, NULL));
    assert_int_equal(c.server.workers, 3);
    config_free(&c);

    /* env < flag, no file */
    expect_ok(load(&c, "--server.workers=3", NULL));
    assert_int_equal(c.server.workers, 3);
    config_free(&c);

    /* file < flag, no env */
    unsetenv("TICKGATE_SERVER_WORKERS");
    expect_ok(load(&c, "--config", path, "--server.workers=3", NULL));
    assert_int_equal(c.server.workers, 3);
    config_free(&c);

    /* env alone beats the default */
    setenv("TICKGATE_SERVER_WORKERS", "4", 1);
    expect_ok(load(&c, NULL));
    assert_int_equal(c.server.workers, 4);
    config_free(&c);
}

static void test_precedence_per_key(void **state) {
    (void)state;
    /* each layer sets some keys; each key takes the highest layer that set it */
    const char *path = write_ini("[server]\n"
                                 "listen = 10.0.0.1:1000\n"
                                 "workers = 2\n"
                                 "ws_path = /from-file\n"
                                 "static_dir = /file/dir\n"
                                 "[limits]\n"
                                 "max_connections = 11\n");
    setenv("TICKGATE_SERVER_WORKERS", "4", 1);
    setenv("TICKGATE_SERVER_WS_PATH", "/from-env", 1);
    setenv("TICKGATE_LIMITS_MAX_MESSAGE_BYTES", "4096", 1);
    struct config c;
    expect_ok(load(&c, "--config", path, "--server.ws_path=/from-flag", "--server.shutdown_grace_ms=77", NULL));
    assert_string_equal(c.server.listen, "10.0.0.1:1000");   /* file */
    assert_string_equal(c.server.static_dir, "/file/dir");   /* file */
    assert_int_equal(c.limits.max_connections, 11);          /* file */
    assert_int_equal(c.server.workers, 4);                   /* env over file */
    assert_int_equal(c.limits.max_message_bytes, 4096);      /* env */
    assert_string_equal(c.server.ws_path, "/from-flag");     /* flag over env over file */
    assert_int_equal(c.server.shutdown_grace_ms, 77);        /* flag */
    assert_int_equal(c.server.handshake_timeout_ms, 5000);   /* default */
    assert_int_equal(c.server.keepalive_max_s, 60);          /* default */
    assert_string_equal(c.server.echo_path, "");             /* default */
    config_free(&c);
}

/* ---- rejections --------------------------------------------------------- */

static void test_reject_unknown_key_in_file(void **state) {
    (void)state;
    struct config c;
    const char *path = write_ini("[server]\nworkers = 2\nbogus = 1\n");
    expect_reject(load(&c, "--config", path, NULL), &c, "server.bogus");
    assert_non_null(strstr(errmsg, path)); /* and the file */

    const char *p2 = write_ini("[nosuchsection]\nworkers = 2\n");
    expect_reject(load(&c, "--config", p2, NULL), &c, "nosuchsection.workers");

    /* a key from another section is unknown in this one */
    const char *p3 = write_ini("[limits]\nworkers = 2\n");
    expect_reject(load(&c, "--config", p3, NULL), &c, "limits.workers");
}

static void test_reject_unknown_flag(void **state) {
    (void)state;
    struct config c;
    expect_reject(load(&c, "--server.bogus=1", NULL), &c, "server.bogus");
    expect_reject(load(&c, "--nosuch.workers=1", NULL), &c, "nosuch.workers");
    expect_reject(load(&c, "--server.workers=1", "--limits.workers=1", NULL), &c, "limits.workers");
    /* malformed flags */
    expect_reject(load(&c, "--server.workers", NULL), &c, "--server.workers");
    /* only the key part is echoed: the value may be a secret */
    expect_reject(load(&c, "--workers=3", NULL), &c, "--workers");
    expect_reject(load(&c, "--", NULL), &c, "--");
    /* a positional argument */
    expect_reject(load(&c, "extra", NULL), &c, "extra");
    /* --config without a file name */
    expect_reject(load(&c, "--config", NULL), &c, "--config");
    /* over-long section or key name */
    expect_reject(load(&c, "--server.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa=1",
                       NULL),
                  &c, "unknown key");
}

static void test_reject_unknown_env(void **state) {
    (void)state;
    struct config c;
    setenv("TICKGATE_SERVER_BOGUS", "1", 1);
    expect_reject(load(&c, NULL), &c, "TICKGATE_SERVER_BOGUS");
    unsetenv("TICKGATE_SERVER_BOGUS");

    setenv("TICKGATE_LIMITS_WORKERS", "1", 1);
    expect_reject(load(&c, NULL), &c, "TICKGATE_LIMITS_WORKERS");
    unsetenv("TICKGATE_LIMITS_WORKERS");

    /* the name must match exactly, not just start like a key */
    setenv("TICKGATE_SERVER_WORKERSX", "1", 1);
    expect_reject(load(&c, NULL), &c, "TICKGATE_SERVER_WORKERSX");
    unsetenv("TICKGATE_SERVER_WORKERSX");

    /* a known key alone is fine again */
    setenv("TICKGATE_SERVER_WORKERS", "1", 1);
    expect_ok(load(&c, NULL));
    assert_int_equal(c.server.workers, 1);
    config_free(&c);
}

static void test_reject_bad_int(void **state) {
    (void)state;
    struct config c;
    static const char *bad_workers[] = {"abc", "3x", "", "3.5", "0x10", "257", "-1", "99999999999999999999", "1e3"};
    for (size_t i = 0; i < sizeof(bad_workers) / sizeof(bad_workers[0]); i++) {
        char arg[64];
        snprintf(arg, sizeof(arg), "--server.workers=%s", bad_workers[i]);
        expect_reject(load(&c, arg, NULL), &c, "server.workers");

        setenv("TICKGATE_SERVER_WORKERS", bad_workers[i], 1);
        expect_reject(load(&c, NULL), &c, "server.workers");
        unsetenv("TICKGATE_SERVER_WORKERS");
    }
    /* bounds of the other integer keys */
    expect_reject(load(&c, "--server.handshake_timeout_ms=99", NULL), &c, "server.handshake_timeout_ms");
    expect_reject(load(&c, "--server.handshake_timeout_ms=600001", NULL), &c, "server.handshake_timeout_ms");
    expect_reject(load(&c, "--server.shutdown_grace_ms=-1", NULL), &c, "server.shutdown_grace_ms");
    expect_reject(load(&c, "--server.keepalive_max_s=0", NULL), &c, "server.keepalive_max_s");
    expect_reject(load(&c, "--server.keepalive_max_s=86401", NULL), &c, "server.keepalive_max_s");
    expect_reject(load(&c, "--server.max_http_body_bytes=1073741825", NULL), &c, "server.max_http_body_bytes");
    expect_reject(load(&c, "--limits.max_connections=0", NULL), &c, "limits.max_connections");
    expect_reject(load(&c, "--limits.max_message_bytes=124", NULL), &c, "limits.max_message_bytes");
    expect_reject(load(&c, "--limits.max_message_bytes=67108865", NULL), &c, "limits.max_message_bytes");

    /* and the edges themselves are accepted */
    expect_ok(load(&c, "--server.handshake_timeout_ms=100", "--server.max_http_body_bytes=1073741824",
                   "--limits.max_message_bytes=67108864", "--server.workers=0", NULL));
    assert_int_equal(c.server.handshake_timeout_ms, 100);
    assert_int_equal(c.server.max_http_body_bytes, 1073741824L);
    assert_int_equal(c.limits.max_message_bytes, 67108864L);
    config_free(&c);

    /* from the file too, naming the key and the file */
    const char *path = write_ini("[server]\nworkers = lots\n");
    expect_reject(load(&c, "--config", path, NULL), &c, "server.workers");
    assert_non_null(strstr(errmsg, path));
    const char *p2 = write_ini("[limits]\nmax_connections = 100000001\n");
    expect_reject(load(&c, "--config", p2, NULL), &c, "limits.max_connections");
}

static void test_reject_bad_listen(void **state) {
    (void)state;
    struct config c;
    static const char *bad[] = {"nope", "127.0.0.1:70000", "127.0.0.1:65536", "127.0.0.1:-1", ":8080",
                                "127.0.0.1:", "127.0.0.1:80x", "[::1]", "[::1:80", "[]:80", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char arg[64];
        snprintf(arg, sizeof(arg), "--server.listen=%s", bad[i]);
        expect_reject(load(&c, arg, NULL), &c, "server.listen");

        setenv("TICKGATE_SERVER_LISTEN", bad[i], 1);
        expect_reject(load(&c, NULL), &c, "server.listen");
        unsetenv("TICKGATE_SERVER_LISTEN");
    }
    const char *path = write_ini("[server]\nlisten = nope\n");
    expect_reject(load(&c, "--config", path, NULL), &c, "server.listen");

    /* a bad value in a lower layer is fine when a higher one replaces it */
    setenv("TICKGATE_SERVER_LISTEN", "nope", 1);
    expect_ok(load(&c, "--server.listen=127.0.0.1:0", NULL));
    assert_string_equal(c.server.listen, "127.0.0.1:0");
    config_free(&c);
}

static void test_reject_bad_paths(void **state) {
    (void)state;
    struct config c;
    expect_reject(load(&c, "--server.echo_path=echo", NULL), &c, "server.echo_path");
    expect_reject(load(&c, "--server.ws_path=ws", NULL), &c, "server.ws_path");
    setenv("TICKGATE_SERVER_ECHO_PATH", "echo/", 1);
    expect_reject(load(&c, NULL), &c, "server.echo_path");
    unsetenv("TICKGATE_SERVER_ECHO_PATH");
    const char *path = write_ini("[server]\necho_path = x\n");
    expect_reject(load(&c, "--config", path, NULL), &c, "server.echo_path");

    /* echo_path equal to ws_path */
    expect_reject(load(&c, "--server.echo_path=/ws", NULL), &c, "server.echo_path");
    expect_reject(load(&c, "--server.ws_path=/x", "--server.echo_path=/x", NULL), &c, "server.echo_path");

    /* ws_path cannot be empty: the gateway would have no endpoint */
    expect_reject(load(&c, "--server.ws_path=", NULL), &c, "server.ws_path");

    /* empty echo_path (off) and a leading '/' are fine */
    expect_ok(load(&c, "--server.echo_path=", NULL));
    assert_string_equal(c.server.echo_path, "");
    config_free(&c);
    expect_ok(load(&c, "--server.echo_path=/", NULL));
    assert_string_equal(c.server.echo_path, "/");
    config_free(&c);
}

/* Keys within their own bounds whose combination cannot work, and bounds
 * tied to the width of the fields that count them (issue 13, items 6, 15). */
static void test_reject_relations_and_field_bounds(void **state) {
    (void)state;
    struct config c;
    expect_reject(load(&c, "--server.static_dir=", NULL), &c, "server.static_dir");
    expect_reject(load(&c, "--limits.heartbeat_timeout_s=29", "--limits.heartbeat_interval_s=30", NULL), &c,
                  "limits.heartbeat_timeout_s");
    setenv("TICKGATE_LIMITS_HEARTBEAT_INTERVAL_S", "120", 1); /* against the default timeout, 90 */
    expect_reject(load(&c, NULL), &c, "limits.heartbeat_interval_s");
    unsetenv("TICKGATE_LIMITS_HEARTBEAT_INTERVAL_S");
    const char *path = write_ini("[security]\nmedium_violations = 7\nhigh_violations = 6\n");
    expect_reject(load(&c, "--config", path, NULL), &c, "security.medium_violations");
    expect_reject(load(&c, "--security.high_violations=65536", NULL), &c, "security.high_violations");
    expect_reject(load(&c, "--security.medium_violations=65536", NULL), &c, "security.medium_violations");
    expect_reject(load(&c, "--limits.max_subscriptions_per_client=100001", NULL), &c,
                  "limits.max_subscriptions_per_client");
    expect_reject(load(&c, "--limits.viewer_max_symbols=100001", NULL), &c, "limits.viewer_max_symbols");
    expect_reject(load(&c, "--trade.max_open_orders=0", NULL), &c, "trade.max_open_orders"); /* item 8 */
    expect_reject(load(&c, "--trade.max_open_orders=100001", NULL), &c, "trade.max_open_orders");
    expect_ok(load(&c, NULL));
    assert_int_equal(c.trade.max_open_orders, 100);
    config_free(&c);

    /* the edges are accepted */
    expect_ok(load(&c, "--limits.heartbeat_timeout_s=30", "--limits.heartbeat_interval_s=30",
                   "--security.medium_violations=65535", "--security.high_violations=65535",
                   "--limits.max_subscriptions_per_client=100000", NULL));
    assert_int_equal(c.security.high_violations, CONFIG_MAX_VIOLATIONS);
    assert_int_equal(c.limits.max_subscriptions_per_client, CONFIG_MAX_SUBSCRIPTIONS);
    config_free(&c);
}

static void test_reject_missing_file(void **state) {
    (void)state;
    struct config c;
    const char *missing = "/nonexistent-dir-for-tickgate-tests/tickgate.ini";
    expect_reject(load(&c, "--config", missing, NULL), &c, missing);
    expect_reject(load(&c, "--config=/nonexistent-dir-for-tickgate-tests/x.ini", NULL), &c,
                  "/nonexistent-dir-for-tickgate-tests/x.ini");
}

static void test_reject_ini_syntax(void **state) {
    (void)state;
    struct config c;
    const char *path = write_ini("[server]\nworkers = 2\nthis line has no equals sign\n");
    expect_reject(load(&c, "--config", path, NULL), &c, path);
    assert_non_null(strstr(errmsg, ":3")); /* the line number */
}

/* ---- --help / --version ------------------------------------------------- */

/* Runs load() with stdout redirected to a temp file; returns what was
 * printed (malloc'd). */
static char *load_capturing_stdout(struct config *cfg, int *rc, const char *arg) {
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    assert_true(saved >= 0);
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    assert_true(dup2(fileno(tmp), STDOUT_FILENO) >= 0);
    *rc = load(cfg, arg, NULL);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    fseek(tmp, 0, SEEK_END);
    long n = ftell(tmp);
    assert_true(n >= 0);
    rewind(tmp);
    char *out = calloc(1, (size_t)n + 1);
    assert_non_null(out);
    assert_int_equal(fread(out, 1, (size_t)n, tmp), (size_t)n);
    fclose(tmp);
    return out;
}

static void test_help_and_version(void **state) {
    (void)state;
    struct config c;
    int rc;
    char *out = load_capturing_stdout(&c, &rc, "--help");
    assert_int_equal(rc, 1);
    assert_null(c.server.listen); /* freed on this path too */
    assert_non_null(strstr(out, "server.workers"));
    assert_non_null(strstr(out, "limits.max_message_bytes"));
    assert_non_null(strstr(out, "usage"));
    free(out);

    out = load_capturing_stdout(&c, &rc, "-h");
    assert_int_equal(rc, 1);
    assert_null(c.server.listen);
    free(out);

    out = load_capturing_stdout(&c, &rc, "--version");
    assert_int_equal(rc, 1);
    assert_null(c.server.listen);
    assert_non_null(strstr(out, "tickgate"));
    free(out);

    /* --help wins even with a bad flag before it: nothing is applied yet */
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    FILE *devnull = fopen("/dev/null", "w");
    assert_non_null(devnull);
    dup2(fileno(devnull), STDOUT_FILENO);
    rc = load(&c, "--server.bogus=1", "--help", NULL);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    fclose(devnull);
    assert_int_equal(rc, 1);

    /* config_print_help to any FILE */
    char *buf = NULL;
    size_t sz = 0;
    FILE *f = open_memstream(&buf, &sz);
    assert_non_null(f);
    config_print_help(f);
    fclose(f);
    assert_non_null(strstr(buf, "[server]"));
    assert_non_null(strstr(buf, "[limits]"));
    assert_non_null(strstr(buf, "server.listen (default: 127.0.0.1:8080)"));
    assert_non_null(strstr(buf, "server.echo_path (default: \"\")"));
    free(buf);
}

/* ---- config_split_listen ------------------------------------------------ */

static void test_split_listen(void **state) {
    (void)state;
    char host[64];
    int port = -1;

    assert_int_equal(config_split_listen("127.0.0.1:8080", host, sizeof(host), &port), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 8080);

    assert_int_equal(config_split_listen("[::1]:0", host, sizeof(host), &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 0);

    assert_int_equal(config_split_listen("localhost:8080", host, sizeof(host), &port), 0);
    assert_string_equal(host, "localhost");
    assert_int_equal(port, 8080);

    assert_int_equal(config_split_listen("0.0.0.0:65535", host, sizeof(host), &port), 0);
    assert_string_equal(host, "0.0.0.0");
    assert_int_equal(port, 65535);

    assert_int_equal(config_split_listen("[fe80::1:2:3]:443", host, sizeof(host), &port), 0);
    assert_string_equal(host, "fe80::1:2:3");
    assert_int_equal(port, 443);

    assert_int_equal(config_split_listen("[::]:1", host, sizeof(host), &port), 0);
    assert_string_equal(host, "::");
    assert_int_equal(port, 1);
}

static void test_split_listen_bad(void **state) {
    (void)state;
    static const char *bad[] = {"nope", "", ":", ":8080", "host:", "127.0.0.1:70000", "127.0.0.1:65536",
                                "127.0.0.1:-1", "host:80x", "host:8 0", "[::1]", "[::1:80", "[]:80",
                                "host:99999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char host[64];
        int port = 12345;
        strcpy(host, "untouched");
        if (config_split_listen(bad[i], host, sizeof(host), &port) != -1)
            fail_msg("'%s' accepted (host '%s' port %d)", bad[i], host, port);
        /* outputs are left alone on failure */
        assert_string_equal(host, "untouched");
        assert_int_equal(port, 12345);
    }
}

static void test_split_listen_hostlen(void **state) {
    (void)state;
    char host[16];
    int port;
    /* "localhost" needs 10 bytes with the NUL */
    assert_int_equal(config_split_listen("localhost:80", host, 10, &port), 0);
    assert_string_equal(host, "localhost");
    assert_int_equal(config_split_listen("localhost:80", host, 9, &port), -1);
    assert_int_equal(config_split_listen("[::1]:80", host, 4, &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(config_split_listen("[::1]:80", host, 3, &port), -1);
}

/* redis.sentinels: a comma list of 1..max HOST:PORT, ports 1..65535. */
static void test_check_hostports(void **state) {
    (void)state;
    assert_int_equal(config_check_hostports("127.0.0.1:26379", 16), 1);
    assert_int_equal(config_check_hostports(" a:1, [::1]:26379 ,b:65535", 16), 3);
    static const char *bad[] = {"", " , ", "a", "a:0", "a:1,b", "a:1,:2", "a:65536"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (config_check_hostports(bad[i], 16) != -1)
            fail_msg("'%s' accepted", bad[i]);
    assert_int_equal(config_check_hostports("a:1,b:2,c:3", 2), -1);
}

/* redis.cluster: needs redis.url, no Sentinel, and a key prefix without
 * braces (the hash tags are tickgate's). */
static void test_cluster_relations(void **state) {
    (void)state;
    struct config c;
    expect_reject(load(&c, "--redis.cluster=true", NULL), &c, "redis.cluster");
    expect_reject(load(&c, "--redis.cluster=true", "--redis.url=redis://a:1", "--redis.sentinels=a:2",
                       "--redis.sentinel_master=m", NULL),
                  &c, "redis.cluster");
    expect_reject(load(&c, "--redis.cluster=true", "--redis.url=redis://a:1", "--redis.key_prefix=x{y}:", NULL), &c,
                  "redis.key_prefix");
    expect_ok(load(&c, "--redis.cluster=true", "--redis.url=redis://a:1", NULL));
    assert_true(c.redis.cluster);
    config_free(&c);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void) {
    const struct CMUnitTest tests[] = {
        T(test_defaults),
        T(test_defaults_with_unrelated_env),
        T(test_file_only),
        T(test_env_only),
        T(test_flag_only),
        T(test_precedence_combined),
        T(test_precedence_per_key),
        T(test_reject_unknown_key_in_file),
        T(test_reject_unknown_flag),
        T(test_reject_unknown_env),
        T(test_reject_bad_int),
        T(test_reject_bad_listen),
        T(test_reject_bad_paths),
        T(test_reject_relations_and_field_bounds),
        T(test_reject_missing_file),
        T(test_reject_ini_syntax),
        T(test_help_and_version),
        T(test_split_listen),
        T(test_split_listen_bad),
        T(test_split_listen_hostlen),
        T(test_check_hostports),
        T(test_cluster_relations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
