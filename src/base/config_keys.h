/* config_keys.h - the settings table (config_keys.c), private to the
 * config room's loader (config.c): what each key is, where it lives in
 * struct config, its default and bounds, and its help line. */
#ifndef TG_CONFIG_KEYS_H
#define TG_CONFIG_KEYS_H

#include <stddef.h>

/* Set by the Makefile; these are for a build without it. */
#ifndef TG_VERSION
#define TG_VERSION "0.1.0"
#endif
#ifndef TG_WEB_DIR
#define TG_WEB_DIR "web"
#endif

enum ktype { K_STR, K_INT, K_LONG, K_BOOL, K_ENUM, K_PATH, K_SECRET, K_DOUBLE };

struct key {
    const char *section;
    const char *name;
    enum ktype type;
    size_t off;          /* offset of the field in struct config */
    const char *def;     /* default, parsed like any other value */
    long min, max;       /* integer bounds */
    const char *choices; /* K_ENUM: "a|b|c", index stored as int */
    const char *help;
};

extern const struct key CONFIG_KEYS[];
extern const size_t CONFIG_NKEYS;

#endif
