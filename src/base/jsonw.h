/* jsonw.h - writes JSON text into a caller's buffer, without allocating.
 *
 * For the few messages on hot paths (the `connected` greeting, audit lines)
 * where building a jansson tree, dumping it and freeing it cost more than
 * the rest of a handshake's user-space work. Output is what jansson's
 * JSON_COMPACT would print for the same values: strings are UTF-8 as given
 * (callers pass valid UTF-8), with '"', '\\' and control characters
 * escaped. Writing past the end sets `full` and stops; the text is then
 * unusable, so size buffers with jw_str_max(). */
#ifndef TG_JSONW_H
#define TG_JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct jw {
    char *p;
    size_t n, cap;
    bool full;
};

static inline void jw_init(struct jw *w, char *buf, size_t cap) {
    w->p = buf;
    w->n = 0;
    w->cap = cap;
    w->full = false;
}

/* Bytes as they are (punctuation, keys known to need no escaping). */
void jw_raw(struct jw *w, const char *s, size_t len);
#define jw_lit(w, s) jw_raw((w), (s), sizeof(s) - 1)

/* A quoted, escaped string; NULL writes null. */
void jw_str(struct jw *w, const char *s);

/* A decimal integer. */
void jw_i64(struct jw *w, int64_t v);

/* The most bytes jw_str can write for s (quotes and escapes included). */
static inline size_t jw_str_max(const char *s) { return s ? 2 + 6 * strlen(s) : 4; }

#endif
