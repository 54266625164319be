/* test_roles.c - unit tests for the permission table (src/auth/roles.c):
 * the default table roles_init builds from the default configuration
 * (PROTOCOL.md section 3), symbol limits, action_for_type,
 * roles_parse_actions, role_from_name/role_name, and [roles] overrides given
 * as --roles.ROLE=... flags.
 *
 * Every test starts and ends with no TICKGATE_* variable in the environment,
 * so the defaults are the compiled-in ones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth/roles.h"
#include "base/config.h"
#include "../unit_env.h"


/* ---- fixtures and helpers ----------------------------------------------- */

static char *errmsg; /* what the last call wrote to its err FILE */

static int setup(void **state) {
    (void)state;
    unit_clear_tickgate_env();
    errmsg = NULL;
    return 0;
}

static int teardown(void **state) {
    (void)state;
    unit_clear_tickgate_env();
    free(errmsg);
    errmsg = NULL;
    return 0;
}

#define BIT(a) (1u << (a))
#define BASE (BIT(ACT_HEARTBEAT) | BIT(ACT_AUTHENTICATE) | BIT(ACT_SUBSCRIBE) | BIT(ACT_UNSUBSCRIBE) | BIT(ACT_SET_OPTIONS))
#define ALL ((1u << ACT_COUNT) - 1)

static const char *ACTION_NAME[ACT_COUNT] = {"heartbeat", "authenticate", "subscribe", "unsubscribe",
                                             "set_options", "data", "analysis", "portfolio",
                                             "trade", "admin_broadcast", "publish"};
static const char *ROLE_NAME[ROLE_COUNT] = {"super_admin", "admin", "analyst", "trader",
                                           "viewer", "publisher", "anonymous"};

/* PROTOCOL.md section 3: the default table. */
static const uint32_t DEFAULT_ACTIONS[ROLE_COUNT] = {
    [ROLE_SUPER_ADMIN] = ALL,
    [ROLE_ADMIN] = BASE | BIT(ACT_ADMIN_BROADCAST),
    [ROLE_ANALYST] = BASE | BIT(ACT_ANALYSIS),
    [ROLE_TRADER] = BASE | BIT(ACT_PORTFOLIO) | BIT(ACT_TRADE),
    [ROLE_VIEWER] = BASE | BIT(ACT_DATA),
    [ROLE_PUBLISHER] = BIT(ACT_HEARTBEAT) | BIT(ACT_PUBLISH),
    [ROLE_ANONYMOUS] = BIT(ACT_HEARTBEAT) | BIT(ACT_AUTHENTICATE) | BIT(ACT_SUBSCRIBE) | BIT(ACT_UNSUBSCRIBE) |
                       BIT(ACT_SET_OPTIONS),
};
static const int DEFAULT_LIMITS[ROLE_COUNT] = {100, 100, 100, 100, 10, 0, 3};

/* config_load with the given flags, then roles_init. Returns roles_init's
 * result; errors land in errmsg. */
static int build(struct roles *r, int argc, const char *const *args) {
    char *argv[16];
    assert_true(argc < 16);
    for (int i = 0; i < argc; i++)
        argv[i] = (char *)args[i];
    argv[argc] = NULL;
    struct config cfg;
    free(errmsg);
    errmsg = NULL;
    size_t sz = 0;
    FILE *err = open_memstream(&errmsg, &sz);
    assert_non_null(err);
    int rc = config_load(&cfg, argc, argv, err);
    if (rc != 0) {
        fclose(err);
        fail_msg("config_load returned %d: %s", rc, errmsg);
    }
    memset(r, 0xA5, sizeof(*r));
    rc = roles_init(r, &cfg, err);
    fclose(err);
    config_free(&cfg);
    return rc;
}

/* Checks every (role, action) pair of r against want. */
static void check_table(const struct roles *r, const uint32_t want[ROLE_COUNT]) {
    for (int role = 0; role < ROLE_COUNT; role++) {
        for (int a = 0; a < ACT_COUNT; a++) {
            bool expect = (want[role] & BIT(a)) != 0;
            if (roles_allows(r, role, (enum action)a) != expect)
                fail_msg("role %s, action %s: expected %s", ROLE_NAME[role], ACTION_NAME[a],
                         expect ? "allowed" : "forbidden");
        }
        if (r->actions[role] != want[role])
            fail_msg("role %s: action bits 0x%x, expected 0x%x", ROLE_NAME[role], r->actions[role], want[role]);
    }
}

/* roles_parse_actions into *out with errors in errmsg. */
static int parse(const char *list, uint32_t *out) {
    free(errmsg);
    errmsg = NULL;
    size_t sz = 0;
    FILE *err = open_memstream(&errmsg, &sz);
    assert_non_null(err);
    int rc = roles_parse_actions(list, out, err, "roles.test");
    fclose(err);
    return rc;
}

/* ---- the default table --------------------------------------------------- */

static void test_default_table(void **state) {
    (void)state;
    struct roles r;
    assert_int_equal(build(&r, 0, NULL), 0);
    assert_string_equal(errmsg, "");
    check_table(&r, DEFAULT_ACTIONS);
}

/* The same table spelled out per role, as PROTOCOL.md section 3 lists it. */
static void test_default_table_by_role(void **state) {
    (void)state;
    struct roles r;
    assert_int_equal(build(&r, 0, NULL), 0);
    /* super_admin: everything */
    for (int a = 0; a < ACT_COUNT; a++)
        assert_true(roles_allows(&r, ROLE_SUPER_ADMIN, (enum action)a));
    /* the base actions: everyone but publisher */
    static const enum action BASE_LIST[] = {ACT_HEARTBEAT, ACT_AUTHENTICATE, ACT_SUBSCRIBE, ACT_UNSUBSCRIBE,
                                            ACT_SET_OPTIONS};
    for (size_t i = 0; i < 5; i++) {
        assert_true(roles_allows(&r, ROLE_ADMIN, BASE_LIST[i]));
        assert_true(roles_allows(&r, ROLE_ANALYST, BASE_LIST[i]));
        assert_true(roles_allows(&r, ROLE_TRADER, BASE_LIST[i]));
        assert_true(roles_allows(&r, ROLE_VIEWER, BASE_LIST[i]));
        assert_true(roles_allows(&r, ROLE_ANONYMOUS, BASE_LIST[i]));
    }
    assert_true(roles_allows(&r, ROLE_PUBLISHER, ACT_HEARTBEAT));
    assert_false(roles_allows(&r, ROLE_PUBLISHER, ACT_AUTHENTICATE));
    assert_false(roles_allows(&r, ROLE_PUBLISHER, ACT_SUBSCRIBE));
    assert_false(roles_allows(&r, ROLE_PUBLISHER, ACT_UNSUBSCRIBE));
    assert_false(roles_allows(&r, ROLE_PUBLISHER, ACT_SET_OPTIONS));
    /* the extras */
    assert_true(roles_allows(&r, ROLE_ADMIN, ACT_ADMIN_BROADCAST));
    assert_true(roles_allows(&r, ROLE_ANALYST, ACT_ANALYSIS));
    assert_true(roles_allows(&r, ROLE_TRADER, ACT_PORTFOLIO));
    assert_true(roles_allows(&r, ROLE_TRADER, ACT_TRADE));
    assert_true(roles_allows(&r, ROLE_VIEWER, ACT_DATA));
    assert_true(roles_allows(&r, ROLE_PUBLISHER, ACT_PUBLISH));
    /* only super_admin and publisher publish */
    for (int role = 0; role < ROLE_COUNT; role++)
        assert_int_equal(roles_allows(&r, role, ACT_PUBLISH), role == ROLE_SUPER_ADMIN || role == ROLE_PUBLISHER);
    /* only super_admin and admin broadcast */
    for (int role = 0; role < ROLE_COUNT; role++)
        assert_int_equal(roles_allows(&r, role, ACT_ADMIN_BROADCAST),
                         role == ROLE_SUPER_ADMIN || role == ROLE_ADMIN);
    /* anonymous gets nothing beyond the base */
    for (int a = ACT_DATA; a < ACT_COUNT; a++)
        assert_false(roles_allows(&r, ROLE_ANONYMOUS, (enum action)a));
    /* out-of-range roles are denied everything */
    for (int a = 0; a < ACT_COUNT; a++) {
        assert_false(roles_allows(&r, -1, (enum action)a));
        assert_false(roles_allows(&r, ROLE_COUNT, (enum action)a));
        assert_false(roles_allows(&r, 1000, (enum action)a));
    }
}

static void test_default_limits(void **state) {
    (void)state;
    struct roles r;
    assert_int_equal(build(&r, 0, NULL), 0);
    for (int role = 0; role < ROLE_COUNT; role++)
        if (r.max_symbols[role] != DEFAULT_LIMITS[role])
            fail_msg("role %s: max_symbols %d, expected %d", ROLE_NAME[role], r.max_symbols[role],
                     DEFAULT_LIMITS[role]);
}

static void test_limits_follow_config(void **state) {
    (void)state;
    static const char *const ARGS[] = {"--limits.max_subscriptions_per_client=50", "--limits.viewer_max_symbols=7",
                                       "--limits.anonymous_max_symbols=0"};
    struct roles r;
    assert_int_equal(build(&r, 3, ARGS), 0);
    static const int WANT[ROLE_COUNT] = {50, 50, 50, 50, 7, 0, 0};
    for (int role = 0; role < ROLE_COUNT; role++)
        if (r.max_symbols[role] != WANT[role])
            fail_msg("role %s: max_symbols %d, expected %d", ROLE_NAME[role], r.max_symbols[role], WANT[role]);
    check_table(&r, DEFAULT_ACTIONS);
}

/* ---- overrides ---------------------------------------------------------- */

static void test_override_viewer(void **state) {
    (void)state;
    static const char *const ARGS[] = {"--roles.viewer=heartbeat"};
    struct roles r;
    assert_int_equal(build(&r, 1, ARGS), 0);
    assert_string_equal(errmsg, "");
    assert_false(roles_allows(&r, ROLE_VIEWER, ACT_SUBSCRIBE));
    assert_false(roles_allows(&r, ROLE_VIEWER, ACT_DATA));
    assert_true(roles_allows(&r, ROLE_VIEWER, ACT_HEARTBEAT));
    uint32_t want[ROLE_COUNT];
    memcpy(want, DEFAULT_ACTIONS, sizeof(want));
    want[ROLE_VIEWER] = BIT(ACT_HEARTBEAT);
    check_table(&r, want); /* the other roles keep their defaults */
}

static void test_override_several(void **state) {
    (void)state;
    static const char *const ARGS[] = {"--roles.anonymous=", "--roles.publisher=all",
                                       "--roles.super_admin=base", "--roles.trader=trade, data ,heartbeat"};
    struct roles r;
    assert_int_equal(build(&r, 4, ARGS), 0);
    uint32_t want[ROLE_COUNT];
    memcpy(want, DEFAULT_ACTIONS, sizeof(want));
    want[ROLE_ANONYMOUS] = 0;
    want[ROLE_PUBLISHER] = ALL;
    want[ROLE_SUPER_ADMIN] = BASE;
    want[ROLE_TRADER] = BIT(ACT_TRADE) | BIT(ACT_DATA) | BIT(ACT_HEARTBEAT);
    check_table(&r, want);
    /* the publisher's symbol limit stays 0 whatever its actions */
    assert_int_equal(r.max_symbols[ROLE_PUBLISHER], 0);
}

static void test_override_bad_action(void **state) {
    (void)state;
    static const char *const ARGS[] = {"--roles.admin=base,admin_broadcast,launch_missiles"};
    struct roles r;
    assert_int_equal(build(&r, 1, ARGS), -1);
    assert_non_null(errmsg);
    if (!strstr(errmsg, "roles.admin") || !strstr(errmsg, "launch_missiles"))
        fail_msg("message '%s' should name roles.admin and launch_missiles", errmsg);
}

/* ---- action_for_type ---------------------------------------------------- */

static void test_action_for_type(void **state) {
    (void)state;
    static const struct {
        const char *type;
        int act;
    } M[] = {
        {"subscribe", ACT_SUBSCRIBE},
        {"unsubscribe", ACT_UNSUBSCRIBE},
        {"heartbeat", ACT_HEARTBEAT},
        {"authenticate", ACT_AUTHENTICATE},
        {"set_options", ACT_SET_OPTIONS},
        {"get_history", ACT_DATA},
        {"analysis", ACT_ANALYSIS},
        {"portfolio_subscribe", ACT_PORTFOLIO},
        {"trade", ACT_TRADE},
        {"admin_broadcast", ACT_ADMIN_BROADCAST},
        {"publish", ACT_PUBLISH},
    };
    for (size_t i = 0; i < sizeof(M) / sizeof(M[0]); i++)
        if (action_for_type(M[i].type) != M[i].act)
            fail_msg("type %s: action %d, expected %d", M[i].type, action_for_type(M[i].type), M[i].act);
    static const char *UNKNOWN[] = {
        "",          "Subscribe",   "SUBSCRIBE", "subscribe ", " subscribe", "subscrib", "subscribes",
        "data",      "portfolio",   "history",   "get_histor", "ping",       "pong",     "price_update",
        "error",     "all",         "base",      "publish\n",  "trade\t",
    };
    for (size_t i = 0; i < sizeof(UNKNOWN) / sizeof(UNKNOWN[0]); i++)
        if (action_for_type(UNKNOWN[i]) != -1)
            fail_msg("type '%s' should be unknown, got %d", UNKNOWN[i], action_for_type(UNKNOWN[i]));
}

/* ---- roles_parse_actions ------------------------------------------------ */

static void test_parse_actions(void **state) {
    (void)state;
    static const struct {
        const char *list;
        uint32_t want;
    } C[] = {
        {"base,data", BASE | BIT(ACT_DATA)},
        {"all", ALL},
        {" heartbeat , publish ", BIT(ACT_HEARTBEAT) | BIT(ACT_PUBLISH)},
        {"", 0},
        {"   ", 0},
        {",,, ,", 0},
        {"base", BASE},
        {"data,base", BASE | BIT(ACT_DATA)},
        {"heartbeat,heartbeat", BIT(ACT_HEARTBEAT)},
        {"publish,all", ALL},
        {"all,publish", ALL},
        {"base,all,base", ALL},
        {"trade,", BIT(ACT_TRADE)},
        {",trade", BIT(ACT_TRADE)},
        {"heartbeat,authenticate,subscribe,unsubscribe,set_options", BASE},
        {"heartbeat,authenticate,subscribe,unsubscribe,set_options,data,analysis,portfolio,trade,admin_broadcast,"
         "publish",
         ALL},
    };
    for (size_t i = 0; i < sizeof(C) / sizeof(C[0]); i++) {
        uint32_t out = 0xDEADBEEF;
        int rc = parse(C[i].list, &out);
        if (rc != 0)
            fail_msg("'%s': returned %d: %s", C[i].list, rc, errmsg);
        if (out != C[i].want)
            fail_msg("'%s': bits 0x%x, expected 0x%x", C[i].list, out, C[i].want);
        assert_string_equal(errmsg, "");
    }
    /* each action name on its own */
    for (int a = 0; a < ACT_COUNT; a++) {
        uint32_t out = 0;
        assert_int_equal(parse(ACTION_NAME[a], &out), 0);
        assert_int_equal(out, BIT(a));
    }
}

static void test_parse_actions_unknown(void **state) {
    (void)state;
    static const struct {
        const char *list, *word;
    } C[] = {
        {"bogus", "'bogus'"},
        {"base,bogus", "'bogus'"},
        {"bogus,base", "'bogus'"},
        {" base , bogus ", "'bogus'"},
        {"Heartbeat", "'Heartbeat'"},
        {"ALL", "'ALL'"},
        {"heart", "'heart'"},
        {"heartbeats", "'heartbeats'"},
        {"portfolio_subscribe", "'portfolio_subscribe'"}, /* a message type, not an action */
        {"get_history", "'get_history'"},
        {"heartbeat publish", "'heartbeat publish'"}, /* spaces do not separate */
        {"heartbeat;publish", "'heartbeat;publish'"},
    };
    for (size_t i = 0; i < sizeof(C) / sizeof(C[0]); i++) {
        uint32_t out = 0;
        int rc = parse(C[i].list, &out);
        if (rc != -1)
            fail_msg("'%s': returned %d, expected -1", C[i].list, rc);
        assert_non_null(errmsg);
        if (!strstr(errmsg, C[i].word))
            fail_msg("'%s': message '%s' does not name %s", C[i].list, errmsg, C[i].word);
        if (!strstr(errmsg, "roles.test"))
            fail_msg("'%s': message '%s' does not name the key", C[i].list, errmsg);
    }
}

/* ---- role names --------------------------------------------------------- */

static void test_role_names(void **state) {
    (void)state;
    for (int role = 0; role < ROLE_COUNT; role++) {
        assert_string_equal(role_name(role), ROLE_NAME[role]);
        assert_int_equal(role_from_name(ROLE_NAME[role]), role);
        assert_int_equal(role_from_name(role_name(role)), role);
    }
    static const char *UNKNOWN[] = {"",       "root",       "Admin",     "ADMIN",      "admin ",     " admin",
                                    "admins", "adm",        "superadmin", "super-admin", "unknown",  "guest",
                                    "base",   "all"};
    for (size_t i = 0; i < sizeof(UNKNOWN) / sizeof(UNKNOWN[0]); i++)
        if (role_from_name(UNKNOWN[i]) != -1)
            fail_msg("role '%s' should be unknown", UNKNOWN[i]);
    assert_string_equal(role_name(-1), "unknown");
    assert_string_equal(role_name(ROLE_COUNT), "unknown");
    assert_string_equal(role_name(12345), "unknown");
    /* "unknown" is a name for nothing, not a role */
    assert_int_equal(role_from_name(role_name(-1)), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_default_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_table_by_role, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits_follow_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_override_viewer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_override_several, setup, teardown),
        cmocka_unit_test_setup_teardown(test_override_bad_action, setup, teardown),
        cmocka_unit_test_setup_teardown(test_action_for_type, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_actions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_actions_unknown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_role_names, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
