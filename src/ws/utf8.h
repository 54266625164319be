/* utf8.h - incremental UTF-8 validator (RFC 3629) for WebSocket text.
 *
 * Text messages arrive in fragments and reads of any size, so validation
 * keeps a few bytes of state between calls: a code point split across two
 * frames or two reads is checked exactly like one that arrives whole.
 * Rejects overlongs, UTF-16 surrogates (U+D800..U+DFFF), code points above
 * U+10FFFF and stray continuation bytes; truncation is caught by
 * utf8_complete() at the end of the message. */
#ifndef TG_UTF8_H
#define TG_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct utf8_state {
    uint8_t need; /* continuation bytes still expected for this code point */
    uint8_t lo;   /* lowest allowed value of the next continuation byte */
    uint8_t hi;   /* highest allowed value of the next continuation byte */
};

static inline void utf8_init(struct utf8_state *s) { s->need = 0; s->lo = 0x80; s->hi = 0xBF; }

/* Feeds len bytes. Returns false as soon as the bytes seen so far cannot be
 * the start of valid UTF-8 (the state is then undefined). */
bool utf8_feed(struct utf8_state *s, const uint8_t *p, size_t len);

/* True when the bytes fed so far end on a code point boundary. */
static inline bool utf8_complete(const struct utf8_state *s) { return s->need == 0; }

/* One-shot check of a whole buffer. */
bool utf8_valid(const uint8_t *p, size_t len);

#endif
