/* tick.h - a price tick and its price_update JSON (PROTOCOL.md section 5).
 * Formatting is hand-written: it runs once per tick on the publish path and
 * must not depend on a general JSON library's allocations. */
#ifndef TG_TICK_H
#define TG_TICK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A tick as the gateway distributes it: sequenced, with change computed. */
struct tick {
    double price, bid, ask, volume;
    double change, change_percent;
    int64_t timestamp;      /* ms since the epoch at the source */
    uint64_t seq;
};

/* Precision of a price_update: prices (price, bid, ask, change) are printed
 * with up to 6 decimals, volume and change_percent with up to 4. A non-zero
 * value below one step would print as 0, so publishers may not send one. */
#define TICK_PRICE_DECIMALS 6
#define TICK_VOLUME_DECIMALS 4
#define TICK_PRICE_MIN 0.000001  /* smallest price, bid or ask other than 0 */
#define TICK_PRICE_MAX 1e12
#define TICK_VOLUME_MIN 0.0001   /* smallest volume other than 0 */
#define TICK_VOLUME_MAX 1e15

/* Longest price_update a tick can format to. */
#define TICK_JSON_MAX 400

/* Writes the price_update object for symbol into out (>= TICK_JSON_MAX
 * bytes) and returns its length. snapshot adds "snapshot":true. */
size_t tick_format(char *out, const char *symbol, const struct tick *t, bool snapshot);

/* Writes a finite double in the shortest form that round-trips with at
 * most `decimals` fractional digits; returns the length. */
size_t fmt_double(char *out, double v, int decimals);

#endif
