/* utf8.c - incremental UTF-8 validator; see utf8.h. */
#include "ws/utf8.h"

#include <string.h>

bool utf8_feed(struct utf8_state *s, const uint8_t *p, size_t len) {
    const uint8_t *end = p + len;
    while (p < end) {
        if (s->need == 0) {
            /* ASCII fast path: 8 bytes at a time while no high bit is set. */
            while (end - p >= 8) {
                uint64_t v;
                memcpy(&v, p, 8);
                if (v & 0x8080808080808080ULL)
                    break;
                p += 8;
            }
            if (p == end)
                break;
            uint8_t b = *p++;
            if (b < 0x80)
                continue;
            if (b < 0xC2) /* continuation byte or overlong 2-byte lead */
                return false;
            if (b < 0xE0) {
                s->need = 1; s->lo = 0x80; s->hi = 0xBF;
            } else if (b < 0xF0) {
                s->need = 2;
                s->lo = (b == 0xE0) ? 0xA0 : 0x80; /* E0: no overlongs */
                s->hi = (b == 0xED) ? 0x9F : 0xBF; /* ED: no surrogates */
            } else if (b < 0xF5) {
                s->need = 3;
                s->lo = (b == 0xF0) ? 0x90 : 0x80; /* F0: no overlongs */
                s->hi = (b == 0xF4) ? 0x8F : 0xBF; /* F4: <= U+10FFFF */
            } else {
                return false;
            }
        } else {
            uint8_t b = *p++;
            if (b < s->lo || b > s->hi)
                return false;
            s->need--;
            s->lo = 0x80;
            s->hi = 0xBF;
        }
    }
    return true;
}

bool utf8_valid(const uint8_t *p, size_t len) {
    struct utf8_state s;
    utf8_init(&s);
    return utf8_feed(&s, p, len) && utf8_complete(&s);
}
