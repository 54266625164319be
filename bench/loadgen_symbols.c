/* loadgen_symbols.c - the symbols: names (generated PREFIXn or
 * --symbol-list), a lookup table by name for what the server sends back,
 * zipf ranks, the send-time rings, and which symbols each subscriber asks
 * for. Built once by symbols_init; read-only on the hot path except the
 * counters (subcount, pub_n, ring_ts, clast). */
#include <stdlib.h>
#include <string.h>

#include "loadgen.h"

char **sym_name;        /* [nsyms], names (owned by symbols_init) */
uint8_t *sym_len;       /* [nsyms] */
static uint32_t *sym_hash;     /* open addressing: index+1, 0 = empty */
static uint32_t sym_hmask;
static double *zipf_cdf;       /* [nsyms], when --dist zipf */
uint32_t *subcount;     /* [nsyms] confirmed subscribers of each symbol */
uint32_t *pub_n;        /* [nsyms] ticks published so far (n of the last) */
int64_t *ring_ts;       /* [nsyms * ring] scheduled time of tick n */
uint32_t ring_mask, ring_shift; /* ring size - 1, log2(ring size) */

uint32_t *csym;         /* [O.conns * per] subscriber's symbols (NO_SYM = rejected) */
uint32_t *clast;        /* [O.conns * per] last n received per subscribed symbol */
static char *sym_store; /* generated names, owned by symbols_init */

static inline uint32_t fnv(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}
uint32_t sym_find(const char *s, size_t n) {
    if (n == 0 || n > MAX_SYMLEN)
        return NO_SYM;
    for (uint32_t i = fnv(s, n) & sym_hmask;; i = (i + 1) & sym_hmask) {
        uint32_t v = sym_hash[i];
        if (!v)
            return NO_SYM;
        if (sym_len[v - 1] == n && memcmp(sym_name[v - 1], s, n) == 0)
            return v - 1;
    }
}
uint32_t zipf_pick(void) {
    double u = rng_unit();
    uint32_t lo = 0, hi = (uint32_t)O.nsyms - 1;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (zipf_cdf[mid] > u)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* Names tickgate accepts: A-Z 0-9, then also . - : / _; at most MAX_SYMLEN. */
static bool sym_ok(const char *s, size_t n) {
    if (n == 0 || n > MAX_SYMLEN)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || (i && strchr(".-:/_", ch))))
            return false;
    }
    return true;
}

int symbols_init(void) {
    if (O.list) {
        int n = 1;
        for (char *p = O.list; *p; p++)
            n += *p == ',';
        O.nsyms = n;
    }
    if (O.nsyms < 1) {
        fprintf(stderr, "loadgen: --symbols must be >= 1\n");
        return -1;
    }
    if (!O.storm && O.per > O.nsyms) {
        fprintf(stderr, "loadgen: --per %d > %d symbols\n", O.per, O.nsyms);
        return -1;
    }
    sym_name = xcalloc((size_t)O.nsyms, sizeof(*sym_name));
    sym_len = xcalloc((size_t)O.nsyms, 1);
    if (O.list) {
        int i = 0;
        for (char *p = O.list;; i++) {
            char *q = strchr(p, ',');
            if (q)
                *q = 0;
            sym_name[i] = p;
            if (!q)
                break;
            p = q + 1;
        }
    } else {
        size_t pl = strlen(O.prefix);
        sym_store = xcalloc((size_t)O.nsyms, pl + 12);
        for (int i = 0; i < O.nsyms; i++) {
            sym_name[i] = sym_store + (size_t)i * (pl + 12);
            snprintf(sym_name[i], pl + 12, "%s%d", O.prefix, i);
        }
    }
    uint32_t hs = 4;
    while (hs < 2u * (uint32_t)O.nsyms)
        hs <<= 1;
    sym_hmask = hs - 1;
    sym_hash = xcalloc(hs, sizeof(*sym_hash));
    for (int i = 0; i < O.nsyms; i++) {
        size_t l = strlen(sym_name[i]);
        if (!sym_ok(sym_name[i], l)) {
            fprintf(stderr, "loadgen: bad symbol name '%s'\n", sym_name[i]);
            return -1;
        }
        sym_len[i] = (uint8_t)l;
        if (sym_find(sym_name[i], l) != NO_SYM) {
            fprintf(stderr, "loadgen: duplicate symbol '%s'\n", sym_name[i]);
            return -1;
        }
        uint32_t h = fnv(sym_name[i], l) & sym_hmask;
        while (sym_hash[h])
            h = (h + 1) & sym_hmask;
        sym_hash[h] = (uint32_t)i + 1;
    }
    if (O.zipf) {
        zipf_cdf = xcalloc((size_t)O.nsyms, sizeof(double));
        double sum = 0;
        for (int i = 0; i < O.nsyms; i++)
            sum += 1.0 / (i + 1);
        double acc = 0;
        for (int i = 0; i < O.nsyms; i++) {
            acc += 1.0 / (i + 1) / sum;
            zipf_cdf[i] = acc;
        }
        zipf_cdf[O.nsyms - 1] = 1.0;
    }
    subcount = xcalloc((size_t)O.nsyms, sizeof(*subcount));
    pub_n = xcalloc((size_t)O.nsyms, sizeof(*pub_n));
    uint32_t ring = O.ring;
    if (!ring) {
        ring = 1u << 20;
        while (ring > 1024 && (uint64_t)ring * (uint64_t)O.nsyms > (4u << 20))
            ring >>= 1;
    }
    if (ring & (ring - 1)) {
        fprintf(stderr, "loadgen: --ring must be a power of two\n");
        return -1;
    }
    ring_mask = ring - 1;
    ring_shift = (uint32_t)__builtin_ctz(ring);
    ring_ts = xcalloc((size_t)O.nsyms * ring, sizeof(*ring_ts)); /* pages touched only when used */
    /* subscriber symbol choice */
    if (O.storm)
        return 0;
    csym = xcalloc((size_t)O.conns * (size_t)O.per, sizeof(*csym));
    clast = xcalloc((size_t)O.conns * (size_t)O.per, sizeof(*clast));
    for (int i = 0; i < O.conns; i++) {
        uint32_t *cs = &csym[(size_t)i * (size_t)O.per];
        for (int j = 0; j < O.per; j++) {
            if (!O.zipf) {
                cs[j] = (uint32_t)(((uint64_t)i * (uint64_t)O.per + (uint64_t)j) % (uint64_t)O.nsyms);
                continue;
            }
            uint32_t s = 0;
            bool dup = true;
            for (int tries = 0; dup && tries < 64 * O.per; tries++) {
                s = zipf_pick();
                dup = false;
                for (int q = 0; q < j && !dup; q++)
                    dup = cs[q] == s;
            }
            for (s = dup ? 0 : s; dup; s++) { /* fall back to the best-ranked unused one */
                dup = false;
                for (int q = 0; q < j && !dup; q++)
                    dup = cs[q] == s;
                if (!dup)
                    break;
            }
            cs[j] = s;
        }
    }
    return 0;
}

void symbols_free(void) {
    free(csym);
    free(clast);
    free(sym_name);
    free(sym_len);
    free(sym_hash);
    free(sym_store);
    free(zipf_cdf);
    free(subcount);
    free(pub_n);
    free(ring_ts);
}
