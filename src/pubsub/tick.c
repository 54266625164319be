/* tick.c - price_update formatting; see tick.h. */
#include "pubsub/tick.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static size_t fmt_u64(char *out, uint64_t v) {
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

size_t fmt_double(char *out, double v, int decimals) {
    if (!isfinite(v))
        v = 0;
    static const double POW10[] = {1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8};
    size_t n = 0;
    bool neg = v < 0;
    if (neg) {
        out[n++] = '-';
        v = -v;
    }
    if (decimals > 8 || v * POW10[decimals] >= 9e18) {
        /* Out of the fixed-point range: %.17g round-trips, is at most 23
         * characters and a valid JSON number, so the output stays bounded. */
        int w = snprintf(out + n, 32, "%.17g", v);
        return n + (size_t)(w < 0 ? 0 : w > 31 ? 31 : w);
    }
    uint64_t scaled = (uint64_t)llround(v * POW10[decimals]);
    uint64_t ip = scaled / (uint64_t)POW10[decimals];
    uint64_t fp = scaled % (uint64_t)POW10[decimals];
    if (neg && scaled == 0)
        n = 0; /* no "-0" */
    n += fmt_u64(out + n, ip);
    if (fp) {
        char digits[12];
        for (int i = decimals - 1; i >= 0; i--) {
            digits[i] = (char)('0' + fp % 10);
            fp /= 10;
        }
        int last = decimals - 1;
        while (last >= 0 && digits[last] == '0')
            last--;
        out[n++] = '.';
        memcpy(out + n, digits, (size_t)last + 1);
        n += (size_t)last + 1;
    }
    return n;
}

#define LIT(s) (memcpy(p, s, sizeof(s) - 1), p += sizeof(s) - 1)

size_t tick_format(char *out, const char *symbol, const struct tick *t, bool snapshot) {
    char *p = out;
    LIT("{\"type\":\"price_update\",\"symbol\":\"");
    size_t sl = strlen(symbol); /* validated symbols need no escaping */
    memcpy(p, symbol, sl);
    p += sl;
    LIT("\",\"price\":");
    p += fmt_double(p, t->price, TICK_PRICE_DECIMALS);
    LIT(",\"bid\":");
    p += fmt_double(p, t->bid, TICK_PRICE_DECIMALS);
    LIT(",\"ask\":");
    p += fmt_double(p, t->ask, TICK_PRICE_DECIMALS);
    LIT(",\"volume\":");
    p += fmt_double(p, t->volume, TICK_VOLUME_DECIMALS);
    LIT(",\"change\":");
    p += fmt_double(p, t->change, TICK_PRICE_DECIMALS);
    LIT(",\"change_percent\":");
    p += fmt_double(p, t->change_percent, TICK_VOLUME_DECIMALS);
    LIT(",\"timestamp\":");
    p += fmt_u64(p, (uint64_t)(t->timestamp < 0 ? 0 : t->timestamp));
    LIT(",\"seq\":");
    p += fmt_u64(p, t->seq);
    if (snapshot)
        LIT(",\"snapshot\":true");
    *p++ = '}';
    return (size_t)(p - out);
}
