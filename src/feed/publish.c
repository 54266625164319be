/* publish.c - validating and publishing ticks; see publish.h. */
#include "feed/publish.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pubsub/hub.h"
#include "pubsub/tick.h"

static int num(json_t *o, const char *k, double *out, bool *has) {
    json_t *v = json_object_get(o, k);
    *has = v != NULL;
    if (!v)
        return 0;
    if (!json_is_number(v))
        return -1;
    *out = json_number_value(v);
    return isfinite(*out) ? 0 : -1;
}

/* A value a price_update shows as given: min..max (min being one printed
 * step, so nothing non-zero prints as 0), or 0 when zero_ok. */
static bool showable(double v, bool zero_ok, double min, double max) {
    return (zero_ok && v == 0) || (v >= min && v <= max);
}

static bool price_ok(double v, bool zero_ok) { return showable(v, zero_ok, TICK_PRICE_MIN, TICK_PRICE_MAX); }

int publish_parse_tick(const struct hub *h, json_t *o, struct tick_in *out, const char **why) {
    memset(out, 0, sizeof(*out));
    if (!json_is_object(o)) {
        *why = "each update must be an object";
        return -1;
    }
    json_t *sym = json_object_get(o, "symbol");
    if (!json_is_string(sym) || !symbol_valid(json_string_value(sym), json_string_length(sym))) {
        *why = "update.symbol must be a valid symbol";
        return -1;
    }
    int idx = symbols_find(h->syms, json_string_value(sym), json_string_length(sym));
    if (idx < 0) {
        *why = "update.symbol is not in the symbol universe";
        return -1;
    }
    out->sym = (uint32_t)idx;
    bool has_price, has_ts;
    double ts = 0;
    if (num(o, "price", &out->price, &has_price) < 0 || !has_price || !price_ok(out->price, false)) {
        *why = "update.price must be a number in 0.000001..1e12 (prices have 6 decimals)";
        return -1;
    }
    if (num(o, "bid", &out->bid, &out->has_bid) < 0 || (out->has_bid && !price_ok(out->bid, true)) ||
        num(o, "ask", &out->ask, &out->has_ask) < 0 || (out->has_ask && !price_ok(out->ask, true))) {
        *why = "update.bid and ask must be 0 or numbers in 0.000001..1e12 (prices have 6 decimals)";
        return -1;
    }
    if (num(o, "volume", &out->volume, &out->has_volume) < 0 ||
        (out->has_volume && !showable(out->volume, true, TICK_VOLUME_MIN, TICK_VOLUME_MAX))) {
        *why = "update.volume must be 0 or a number in 0.0001..1e15 (volumes have 4 decimals)";
        return -1;
    }
    /* A crossed quote is a feed error, not a market state: refuse it here
     * rather than show subscribers a bid above the ask. */
    if ((out->has_bid ? out->bid : out->price) > (out->has_ask ? out->ask : out->price)) {
        *why = "update.bid must not be above update.ask (a missing one is the price)";
        return -1;
    }
    if (num(o, "timestamp", &ts, &has_ts) < 0 || (has_ts && (ts < 0 || ts > 1e14))) {
        *why = "update.timestamp must be milliseconds since the epoch";
        return -1;
    }
    out->timestamp = has_ts ? (int64_t)ts : 0;
    return 0;
}

int publish_updates(struct hub *h, json_t *updates, const char **why) {
    if (!json_is_array(updates)) {
        *why = "updates must be an array of ticks";
        return -1;
    }
    size_t n = json_array_size(updates);
    if (n > PUBLISH_MAX_UPDATES) {
        *why = "at most 1000 updates per publish";
        return -1;
    }
    struct tick_in *ticks = malloc((n ? n : 1) * sizeof(*ticks));
    if (!ticks) {
        *why = "out of memory";
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (publish_parse_tick(h, json_array_get(updates, i), &ticks[i], why) < 0) {
            free(ticks);
            return -1;
        }
    for (size_t i = 0; i < n; i++)
        hub_publish(h, &ticks[i]);
    free(ticks);
    return (int)n;
}
