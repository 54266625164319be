/* publish.c - validating and publishing ticks; see publish.h. */
#include "feed/publish.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pubsub/hub.h"

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
    if (num(o, "price", &out->price, &has_price) < 0 || !has_price || !(out->price > 0) || out->price > 1e12) {
        *why = "update.price must be a positive number";
        return -1;
    }
    if (num(o, "bid", &out->bid, &out->has_bid) < 0 || (out->has_bid && !(out->bid >= 0 && out->bid <= 1e12)) ||
        num(o, "ask", &out->ask, &out->has_ask) < 0 || (out->has_ask && !(out->ask >= 0 && out->ask <= 1e12)) ||
        num(o, "volume", &out->volume, &out->has_volume) < 0 ||
        (out->has_volume && !(out->volume >= 0 && out->volume <= 1e15))) {
        *why = "update.bid and ask must be numbers in 0..1e12, volume in 0..1e15";
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
