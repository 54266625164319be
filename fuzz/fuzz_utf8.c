/* fuzz_utf8.c - the incremental UTF-8 validator (src/ws/utf8.c).
 *
 * Input: [4 chunking bytes][bytes...]
 * Checks:
 *   - utf8_feed over any split, then utf8_complete, agrees with
 *     utf8_valid over the whole buffer;
 *   - once utf8_feed says no, the whole buffer is invalid, and the first
 *     failing chunk is the one holding the first invalid byte (fail fast,
 *     docs/protocol.md: "the first invalid byte closes with 1007");
 *   - both agree with an independent decoder written from RFC 3629
 *     (decode each code point, reject overlongs, surrogates, > U+10FFFF). */
#include <stdbool.h>

#include "fuzz_common.h"
#include "ws/utf8.h"

/* Reference: the index of the first byte after which the input can no
 * longer be the start of valid UTF-8 (size when it still can), and whether
 * the whole buffer is valid. A code point is judged as early as its bits
 * allow, like the table-driven check (E0 80 is wrong at the 80). */
static bool possible(uint32_t cp, size_t left, uint32_t min) {
    uint32_t lo = cp, hi = cp;
    for (size_t r = 0; r < left; r++) {
        lo = lo << 6;
        hi = hi << 6 | 0x3F;
    }
    return hi >= min && lo <= 0x10FFFF && !(lo >= 0xD800 && hi <= 0xDFFF);
}

static size_t ref_prefix(const uint8_t *p, size_t n, bool *valid) {
    size_t i = 0;
    while (i < n) {
        uint8_t b = p[i];
        size_t need;
        uint32_t cp, min;
        if (b < 0x80) {
            i++;
            continue;
        } else if ((b & 0xE0) == 0xC0) {
            need = 1, cp = b & 0x1F, min = 0x80;
        } else if ((b & 0xF0) == 0xE0) {
            need = 2, cp = b & 0x0F, min = 0x800;
        } else if ((b & 0xF8) == 0xF0) {
            need = 3, cp = b & 0x07, min = 0x10000;
        } else {
            *valid = false; /* continuation byte or F8..FF as a lead */
            return i;
        }
        for (size_t k = 0;; k++) {
            if (!possible(cp, need - k, min)) {
                *valid = false;
                return i + k;
            }
            if (k == need)
                break;
            if (i + k + 1 >= n) { /* truncated: a valid start, not valid whole */
                *valid = false;
                return n;
            }
            uint8_t c = p[i + k + 1];
            if ((c & 0xC0) != 0x80) {
                *valid = false;
                return i + k + 1;
            }
            cp = cp << 6 | (c & 0x3F);
        }
        i += need + 1;
    }
    *valid = true;
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct chunker ch;
    chunker_init(&ch, &data, &size);
    uint8_t *whole = fuzz_dup(data, size);
    bool v_whole = utf8_valid(whole, size);
    bool v_ref;
    size_t ok_prefix = ref_prefix(whole, size, &v_ref);
    FUZZ_CHECK(v_whole == v_ref, "utf8_valid %d, reference %d (%zu bytes)", v_whole, v_ref, size);

    struct utf8_state s;
    utf8_init(&s);
    size_t off = 0;
    bool ok = true;
    while (off < size) {
        size_t n = chunker_next(&ch, size - off);
        uint8_t *piece = fuzz_dup(data + off, n);
        ok = utf8_feed(&s, piece, n);
        free(piece);
        if (!ok) {
            /* It failed inside this chunk: the first bad byte is in it. */
            FUZZ_CHECK(ok_prefix >= off && ok_prefix < off + n,
                       "utf8_feed failed in chunk [%zu,%zu) but the first invalid byte is at %zu", off, off + n,
                       ok_prefix);
            break;
        }
        FUZZ_CHECK(ok_prefix >= off + n, "utf8_feed accepted [%zu,%zu) but byte %zu is already invalid", off,
                   off + n, ok_prefix);
        off += n;
    }
    bool v_split = ok && utf8_complete(&s);
    FUZZ_CHECK(v_split == v_whole, "split %d vs whole %d", v_split, v_whole);
    free(whole);
    return 0;
}
