/* roles.h - roles, actions and the permission table (PROTOCOL.md section 3).
 * Built once from the [roles] section at start; read-only after. */
#ifndef TG_ROLES_H
#define TG_ROLES_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct config;

enum action {
    ACT_HEARTBEAT = 0,
    ACT_AUTHENTICATE,
    ACT_SUBSCRIBE,
    ACT_UNSUBSCRIBE,
    ACT_SET_OPTIONS,
    ACT_DATA,
    ACT_ANALYSIS,
    ACT_PORTFOLIO,
    ACT_TRADE,
    ACT_ADMIN_BROADCAST,
    ACT_PUBLISH,
    ACT_COUNT,
};

enum role {
    ROLE_SUPER_ADMIN = 0,
    ROLE_ADMIN,
    ROLE_ANALYST,
    ROLE_TRADER,
    ROLE_VIEWER,
    ROLE_PUBLISHER,
    ROLE_ANONYMOUS,
    ROLE_COUNT,
};

struct roles {
    uint32_t actions[ROLE_COUNT];  /* bit (1 << action) per allowed action */
    int max_symbols[ROLE_COUNT];   /* symbol limit of each role */
    uint16_t throttle[ROLE_COUNT]; /* [throttle]: updates per second per symbol; 0 = unlimited */
};

/* Parses the [roles] section and the symbol limits. 0, or -1 after a
 * message naming the bad key to err. */
int roles_init(struct roles *r, const struct config *cfg, FILE *err);

static inline bool roles_allows(const struct roles *r, int role, enum action a) {
    return role >= 0 && role < ROLE_COUNT && (r->actions[role] & (1u << a)) != 0;
}

/* Role index for a name, or -1. */
int role_from_name(const char *name);
const char *role_name(int role);

/* The action a client message type needs, or -1 for an unknown type. */
int action_for_type(const char *type);

/* Parses a comma list of actions ("base", "all" allowed) into a bit set.
 * Returns -1 naming the bad word to err. */
int roles_parse_actions(const char *list, uint32_t *out, FILE *err, const char *key);

#endif
