/* roles.c - the permission table; see roles.h. */
#include "auth/roles.h"

#include <string.h>

#include "base/config.h"

static const char *ROLE_NAMES[ROLE_COUNT] = {"super_admin", "admin", "analyst", "trader",
                                             "viewer", "publisher", "anonymous"};

static const char *ACTION_NAMES[ACT_COUNT] = {"heartbeat", "authenticate", "subscribe", "unsubscribe",
                                              "set_options", "data", "analysis", "portfolio",
                                              "trade", "admin_broadcast", "publish"};

#define BASE_ACTIONS                                                                                 \
    ((1u << ACT_HEARTBEAT) | (1u << ACT_AUTHENTICATE) | (1u << ACT_SUBSCRIBE) | (1u << ACT_UNSUBSCRIBE) | \
     (1u << ACT_SET_OPTIONS))

int role_from_name(const char *name) {
    for (int i = 0; i < ROLE_COUNT; i++)
        if (strcmp(ROLE_NAMES[i], name) == 0)
            return i;
    return -1;
}

const char *role_name(int role) { return role >= 0 && role < ROLE_COUNT ? ROLE_NAMES[role] : "unknown"; }

int action_for_type(const char *t) {
    static const struct {
        const char *type;
        enum action act;
    } MAP[] = {
        {"heartbeat", ACT_HEARTBEAT},       {"authenticate", ACT_AUTHENTICATE},
        {"subscribe", ACT_SUBSCRIBE},       {"unsubscribe", ACT_UNSUBSCRIBE},
        {"set_options", ACT_SET_OPTIONS},   {"get_history", ACT_DATA},
        {"analysis", ACT_ANALYSIS},         {"portfolio_subscribe", ACT_PORTFOLIO},
        {"trade", ACT_TRADE},               {"admin_broadcast", ACT_ADMIN_BROADCAST},
        {"publish", ACT_PUBLISH},
    };
    for (size_t i = 0; i < sizeof(MAP) / sizeof(MAP[0]); i++)
        if (strcmp(MAP[i].type, t) == 0)
            return (int)MAP[i].act;
    return -1;
}

int roles_parse_actions(const char *list, uint32_t *out, FILE *err, const char *key) {
    uint32_t bits = 0;
    const char *cur = list, *p;
    size_t l;
    while (config_list_next(&cur, &p, &l)) {
        bool found = false;
        if (l == 3 && strncmp(p, "all", 3) == 0) {
            bits = (1u << ACT_COUNT) - 1;
            found = true;
        } else if (l == 4 && strncmp(p, "base", 4) == 0) {
            bits |= BASE_ACTIONS;
            found = true;
        } else {
            for (int a = 0; a < ACT_COUNT; a++)
                if (strlen(ACTION_NAMES[a]) == l && strncmp(ACTION_NAMES[a], p, l) == 0) {
                    bits |= 1u << a;
                    found = true;
                }
        }
        if (!found) {
            fprintf(err, "tickgate: %s: unknown action '%.*s' (known: base, all, heartbeat, authenticate, "
                         "subscribe, unsubscribe, set_options, data, analysis, portfolio, trade, admin_broadcast, "
                         "publish)\n", key, (int)l, p);
            return -1;
        }
    }
    *out = bits;
    return 0;
}

int roles_init(struct roles *r, const struct config *cfg, FILE *err) {
    const char *lists[ROLE_COUNT] = {cfg->roles.super_admin, cfg->roles.admin,     cfg->roles.analyst,
                                     cfg->roles.trader,      cfg->roles.viewer,    cfg->roles.publisher,
                                     cfg->roles.anonymous};
    for (int i = 0; i < ROLE_COUNT; i++) {
        char key[64];
        snprintf(key, sizeof(key), "roles.%s", ROLE_NAMES[i]);
        if (roles_parse_actions(lists[i], &r->actions[i], err, key) < 0)
            return -1;
        r->max_symbols[i] = cfg->limits.max_subscriptions_per_client;
    }
    r->max_symbols[ROLE_VIEWER] = cfg->limits.viewer_max_symbols;
    r->max_symbols[ROLE_ANONYMOUS] = cfg->limits.anonymous_max_symbols;
    r->max_symbols[ROLE_PUBLISHER] = 0;
    const int thr[ROLE_COUNT] = {cfg->throttle.super_admin, cfg->throttle.admin,     cfg->throttle.analyst,
                                 cfg->throttle.trader,      cfg->throttle.viewer,    cfg->throttle.publisher,
                                 cfg->throttle.anonymous};
    for (int i = 0; i < ROLE_COUNT; i++)
        r->throttle[i] = (uint16_t)thr[i];
    return 0;
}
