/* symbols.c - the symbol universe; see symbols.h. */
#include "pubsub/symbols.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pubsub/tick.h"

/* About 100 well-known tickers with realistic start prices. */
static const struct {
    const char *name;
    double price;
} BUILTIN[] = {
    {"AAPL", 189.25},  {"MSFT", 415.10},  {"GOOGL", 171.30}, {"GOOG", 172.45},  {"AMZN", 186.40},
    {"NVDA", 121.80},  {"META", 503.20},  {"TSLA", 248.50},  {"BRK.B", 412.60}, {"JPM", 198.70},
    {"V", 276.30},     {"MA", 458.90},    {"UNH", 521.40},   {"JNJ", 152.30},   {"XOM", 113.20},
    {"WMT", 68.40},    {"PG", 166.80},    {"HD", 352.10},    {"CVX", 156.90},   {"LLY", 812.50},
    {"ABBV", 172.60},  {"MRK", 126.40},   {"KO", 62.70},     {"PEP", 171.20},   {"AVGO", 1402.30},
    {"COST", 845.60},  {"ADBE", 478.90},  {"CRM", 268.40},   {"NFLX", 642.10},  {"AMD", 158.70},
    {"INTC", 30.90},   {"CSCO", 47.80},   {"ORCL", 139.60},  {"QCOM", 201.30},  {"TXN", 196.40},
    {"IBM", 182.50},   {"INTU", 628.70},  {"AMAT", 236.80},  {"MU", 128.90},    {"NOW", 752.40},
    {"BAC", 39.80},    {"WFC", 59.60},    {"GS", 462.30},    {"MS", 97.80},     {"C", 62.90},
    {"AXP", 232.40},   {"BLK", 789.20},   {"SCHW", 73.50},   {"PYPL", 63.20},   {"SQ", 66.80},
    {"DIS", 101.30},   {"CMCSA", 39.70},  {"T", 17.90},      {"VZ", 40.60},     {"TMUS", 163.80},
    {"NKE", 93.40},    {"MCD", 258.70},   {"SBUX", 78.60},   {"BKNG", 3712.50}, {"ABNB", 149.30},
    {"UBER", 71.20},   {"LYFT", 15.80},   {"BA", 181.60},    {"CAT", 338.90},   {"DE", 387.20},
    {"GE", 163.40},    {"HON", 203.70},   {"LMT", 462.80},   {"RTX", 102.50},   {"UPS", 138.90},
    {"FDX", 252.60},   {"PFE", 28.70},    {"TMO", 579.30},   {"ABT", 105.80},   {"DHR", 254.60},
    {"BMY", 41.90},    {"AMGN", 308.40},  {"GILD", 67.30},   {"CVS", 58.90},    {"MDT", 82.40},
    {"SPY", 528.40},   {"QQQ", 451.70},   {"DIA", 388.60},   {"IWM", 205.30},   {"GLD", 215.80},
    {"SLV", 27.40},    {"TLT", 91.20},    {"VTI", 262.10},   {"SHOP", 65.40},   {"SNOW", 158.20},
    {"PLTR", 21.90},   {"COIN", 225.60},  {"RIVN", 10.80},   {"F", 12.40},      {"GM", 46.30},
    {"SONY", 82.10},   {"TSM", 152.80},   {"BABA", 76.40},   {"ASML", 948.30},  {"SAP", 190.20},
    {"BTC-USD", 67250.00}, {"ETH-USD", 3510.00}, {"EUR/USD", 1.0842}, {"GBP/USD", 1.2715}, {"USD/JPY", 156.35},
};

bool symbol_valid(const char *s, size_t len) {
    if (len == 0 || len > SYMBOL_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!ok && i > 0)
            ok = c == '.' || c == '-' || c == ':' || c == '/' || c == '_';
        if (!ok)
            return false;
    }
    return true;
}

static uint32_t hash(const char *s, size_t len) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

int symbols_find(const struct symbol_table *t, const char *name, size_t len) {
    if (len == 0 || len > SYMBOL_MAX)
        return -1;
    for (uint32_t i = hash(name, len) & t->mask;; i = (i + 1) & t->mask) {
        uint32_t s = t->slots[i];
        if (s == 0)
            return -1;
        const char *n = t->names[s - 1];
        if (strncmp(n, name, len) == 0 && n[len] == '\0')
            return (int)(s - 1);
    }
}

static int add(struct symbol_table *t, uint32_t cap, const char *name, size_t len, double price, FILE *err,
               const char *where) {
    if (!symbol_valid(name, len)) {
        fprintf(err, "tickgate: feed.symbols_file: %s: '%.*s' is not a valid symbol\n", where, (int)len, name);
        return -1;
    }
    if (symbols_find(t, name, len) >= 0)
        return 0; /* duplicate: first one wins */
    if (t->n == cap) {
        fprintf(err, "tickgate: feed.symbols_file: more than %u symbols\n", cap);
        return -1;
    }
    memcpy(t->names[t->n], name, len);
    t->names[t->n][len] = '\0';
    t->start[t->n] = price;
    uint32_t i = hash(name, len) & t->mask;
    while (t->slots[i])
        i = (i + 1) & t->mask;
    t->slots[i] = ++t->n;
    return 0;
}

int symbols_load(struct symbol_table *t, const char *path, FILE *err) {
    memset(t, 0, sizeof(*t));
    uint32_t cap = SYMBOLS_MAX;
    uint32_t nslots = 2 * SYMBOLS_MAX;
    t->names = calloc(cap, sizeof(*t->names));
    t->start = calloc(cap, sizeof(double));
    t->slots = calloc(nslots, sizeof(uint32_t));
    t->mask = nslots - 1;
    if (!t->names || !t->start || !t->slots) {
        symbols_free(t);
        return -1;
    }
    if (!path || !*path) {
        for (size_t i = 0; i < sizeof(BUILTIN) / sizeof(BUILTIN[0]); i++)
            add(t, cap, BUILTIN[i].name, strlen(BUILTIN[i].name), BUILTIN[i].price, err, "built-in");
        return 0;
    }
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(err, "tickgate: feed.symbols_file: cannot read %s: %s\n", path, strerror(errno));
        symbols_free(t);
        return -1;
    }
    char *line = NULL;
    size_t lcap = 0;
    int ln = 0;
    int rc = 0;
    while (getline(&line, &lcap, f) >= 0) {
        ln++;
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        size_t l = strcspn(p, "\r\n");
        p[l] = '\0';
        if (!*p || *p == '#')
            continue;
        char *comma = strchr(p, ',');
        double price = 0;
        size_t nl = comma ? (size_t)(comma - p) : strlen(p);
        while (nl && (p[nl - 1] == ' ' || p[nl - 1] == '\t'))
            nl--;
        char where[300];
        snprintf(where, sizeof(where), "%s:%d", path, ln);
        if (comma) {
            char *end;
            price = strtod(comma + 1, &end);
            while (*end == ' ' || *end == '\t')
                end++;
            if (end == comma + 1 || *end || !(price >= TICK_PRICE_MIN && price <= TICK_PRICE_MAX)) {
                fprintf(err, "tickgate: feed.symbols_file: %s: bad start price (0.000001..1e12)\n", where);
                rc = -1;
                break;
            }
        }
        if (add(t, cap, p, nl, price, err, where) < 0) {
            rc = -1;
            break;
        }
    }
    free(line);
    fclose(f);
    if (rc < 0) {
        symbols_free(t);
        return -1;
    }
    if (t->n == 0) {
        fprintf(err, "tickgate: feed.symbols_file: %s has no symbols\n", path);
        symbols_free(t);
        return -1;
    }
    return 0;
}

void symbols_free(struct symbol_table *t) {
    free(t->names);
    free(t->start);
    free(t->slots);
    memset(t, 0, sizeof(*t));
}
