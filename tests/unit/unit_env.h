/* unit_env.h - what the unit tests that load a configuration share. */
#ifndef TG_UNIT_ENV_H
#define TG_UNIT_ENV_H

#include <stdlib.h>
#include <string.h>

extern char **environ;

/* Unsets every TICKGATE_* variable, so a configuration loaded by a test
 * sees only what the test passes (the environment overrides the file). */
static inline void unit_clear_tickgate_env(void) {
    /* collect first: unsetenv changes environ under our feet */
    for (;;) {
        char name[256] = "";
        for (char **e = environ; *e; e++)
            if (strncmp(*e, "TICKGATE_", 9) == 0) {
                const char *eq = strchr(*e, '=');
                size_t n = eq ? (size_t)(eq - *e) : strlen(*e);
                if (n >= sizeof(name))
                    n = sizeof(name) - 1;
                memcpy(name, *e, n);
                name[n] = '\0';
                break;
            }
        if (!name[0])
            return;
        unsetenv(name);
    }
}

#endif
