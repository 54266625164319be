/* symbols.h - the symbol universe: names, start prices, lookup.
 * Loaded once at start (feed.symbols_file or the built-in list) and
 * read-only after, so every thread may look symbols up without locks. */
#ifndef TG_SYMBOLS_H
#define TG_SYMBOLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define SYMBOL_MAX 32
#define SYMBOLS_MAX 65536

struct symbol_table {
    uint32_t n;
    char (*names)[SYMBOL_MAX + 1];
    double *start;          /* start price, 0 = none */
    uint32_t *slots;        /* open-addressing index: sym + 1, 0 = empty */
    uint32_t mask;
};

/* Loads path ("" = built-in list). 0, or -1 after a message to err. */
int symbols_load(struct symbol_table *t, const char *path, FILE *err);
void symbols_free(struct symbol_table *t);

/* Index of name, or -1 when it is not in the universe. */
int symbols_find(const struct symbol_table *t, const char *name, size_t len);

/* True when s matches ^[A-Z0-9][A-Z0-9.\-:/_]{0,31}$. */
bool symbol_valid(const char *s, size_t len);

#endif
