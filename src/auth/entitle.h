/* entitle.h - which symbols an identity may see (PROTOCOL.md section 14).
 *
 * A pattern is an exact symbol ("AAPL"), a prefix ending in '*'
 * ("NASDAQ:*") or "*" alone (every symbol). A list of patterns is compiled
 * once into a set and interned: every identity naming the same patterns
 * (thousands of connections, a handful of licences) holds a reference to
 * one shared, read-only set. The intern table is process-wide behind a
 * mutex taken only to get or put a set (at identity time), never to match.
 * A set lives while a reference to it does; the table holds at most
 * ENTITLE_SETS_MAX distinct sets (beyond: the identity is refused, never
 * given more than it is entitled to).
 *
 * A NULL set means "no restriction named" and is the caller's to read
 * (symbols: every symbol; delayed_symbols: none). */
#ifndef TG_ENTITLE_H
#define TG_ENTITLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ENTITLE_PATTERNS_MAX 1024   /* patterns in one list */
#define ENTITLE_PATTERN_LEN 33      /* a symbol (<= 32) plus '*' */
#define ENTITLE_SETS_MAX 65536      /* distinct sets alive at once */

struct entitle_pat {
    char s[ENTITLE_PATTERN_LEN + 1];
    uint8_t len;                    /* without the '*' of a prefix */
    bool prefix;
};

struct entitle_set {
    struct entitle_set *next;       /* intern table chain; private */
    uint64_t hash;                  /* of the canonical list; private */
    unsigned refs;                  /* under the table's lock; private */
    bool all;                       /* "*" is one of the patterns */
    uint32_t nexact, nprefix;
    struct entitle_pat *exact;      /* sorted, deduplicated: binary search */
    struct entitle_pat *prefix;     /* deduplicated */
};

/* True when name (len bytes) is in s. s must not be NULL. */
bool entitle_match(const struct entitle_set *s, const char *name, size_t len);

/* A reference to the set of the n patterns pats[i] (lens[i] bytes each),
 * interned; n == 0 is the empty set (matches nothing). NULL with *why set
 * ("invalid pattern", "too many patterns", "out of memory", "too many
 * entitlement sets") when it cannot be made. */
struct entitle_set *entitle_get(const char *const *pats, const size_t *lens, size_t n, const char **why);

/* The same from a JSON array of strings (a claim, a users-file field):
 * anything else is refused with *why = "not an array of strings". */
struct json_t;
struct entitle_set *entitle_get_json(const struct json_t *arr, const char **why);

/* The same from a comma-separated list (configuration). */
struct entitle_set *entitle_get_list(const char *list, const char **why);

/* A new reference to s (NULL gives NULL). */
struct entitle_set *entitle_ref(struct entitle_set *s);

/* Drops a reference; NULL is ignored. */
void entitle_put(struct entitle_set *s);

/* True when p (len bytes) is a valid pattern. */
bool entitle_pattern_valid(const char *p, size_t len);

/* Distinct sets alive now (metrics, tests). */
size_t entitle_sets_alive(void);

#endif
