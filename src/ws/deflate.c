/* deflate.c - permessage-deflate negotiation and codec; see deflate.h. */
#include "ws/deflate.h"

#include <libdeflate.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ws/frame.h"

/* libdeflate's fastest level: a tick is compressed on the fan-out path and
 * a reply once per client; level 6 saves ~8% more bytes of a price_batch
 * for 2.5x the time (docs/performance.md). */
#define DEFLATE_LEVEL 1

/* Scratch buffers up to this size stay with their thread; a larger one
 * (a message above it) is replaced at the thread's next call. */
#define SCRATCH_KEEP (1u << 20)

static bool cfg_on;              /* ws.compression; read-only after start */
static size_t cfg_min = 256;     /* ws.compression_min_bytes */
static atomic_ulong deflate_conns;  /* connections that negotiated it */
static _Atomic uint64_t runs;       /* deflate runs on outbound data */

void ws_deflate_configure(bool on, size_t min_bytes) {
    cfg_on = on;
    cfg_min = min_bytes;
}

void ws_deflate_conn_opened(void) { atomic_fetch_add_explicit(&deflate_conns, 1, memory_order_relaxed); }
void ws_deflate_conn_released(void) { atomic_fetch_sub_explicit(&deflate_conns, 1, memory_order_relaxed); }
bool ws_deflate_wanted(void) { return atomic_load_explicit(&deflate_conns, memory_order_relaxed) > 0; }
uint64_t ws_deflate_runs(void) { return atomic_load_explicit(&runs, memory_order_relaxed); }

/* ---- negotiation (RFC 7692 section 7, RFC 6455 section 9.1) ------------ */

struct lex {
    const char *s;
    size_t n, i;
};

static bool tchar(char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static void ows(struct lex *l) {
    while (l->i < l->n && (l->s[l->i] == ' ' || l->s[l->i] == '\t'))
        l->i++;
}

static bool at(struct lex *l, char ch) { return l->i < l->n && l->s[l->i] == ch; }

/* A token into out (NUL-terminated, truncated to cap-1: a longer one
 * matches nothing we know). False when none is there. */
static bool token(struct lex *l, char *out, size_t cap) {
    size_t s = l->i;
    while (l->i < l->n && tchar(l->s[l->i]))
        l->i++;
    size_t tl = l->i - s < cap - 1 ? l->i - s : cap - 1;
    memcpy(out, l->s + s, tl);
    out[tl] = '\0';
    return l->i > s;
}

/* A quoted-string, unescaped into out like token(). False when malformed. */
static bool quoted(struct lex *l, char *out, size_t cap) {
    size_t o = 0;
    l->i++; /* the opening quote */
    while (l->i < l->n && l->s[l->i] != '"') {
        char ch = l->s[l->i++];
        if (ch == '\\') {
            if (l->i == l->n)
                return false;
            ch = l->s[l->i++];
        }
        if (o < cap - 1)
            out[o++] = ch;
    }
    out[o] = '\0';
    if (!at(l, '"'))
        return false;
    l->i++;
    return true;
}

/* A window-bits value: 8..15 in decimal without leading zeros. */
static int window_bits(const char *v) {
    if (v[0] >= '8' && v[0] <= '9' && !v[1])
        return v[0] - '0';
    if (v[0] == '1' && v[1] >= '0' && v[1] <= '5' && !v[2])
        return 10 + v[1] - '0';
    return -1;
}

enum { P_SNCT = 1, P_CNCT = 2, P_SMWB = 4, P_CMWB = 8 };

/* Judges one parameter of a permessage-deflate offer: false when the offer
 * must be declined (unknown, repeated, bad value, or a server window below
 * the 32 KiB libdeflate always uses). */
static bool offer_param(const char *name, const char *value, bool has_value, unsigned *seen) {
    unsigned bit;
    if (strcmp(name, "server_no_context_takeover") == 0)
        bit = P_SNCT;
    else if (strcmp(name, "client_no_context_takeover") == 0)
        bit = P_CNCT;
    else if (strcmp(name, "server_max_window_bits") == 0)
        bit = P_SMWB;
    else if (strcmp(name, "client_max_window_bits") == 0)
        bit = P_CMWB;
    else
        return false;
    if (*seen & bit)
        return false;
    *seen |= bit;
    switch (bit) {
    case P_SNCT:
    case P_CNCT:
        return !has_value;
    case P_SMWB:
        return has_value && window_bits(value) == 15;
    default: /* P_CMWB: the value is optional; any client window inflates */
        return !has_value || window_bits(value) > 0;
    }
}

bool ws_deflate_negotiate(const char *value, size_t len, char resp[WS_DEFLATE_RESPONSE_MAX]) {
    struct lex l = {value, value ? len : 0, 0};
    if (!cfg_on)
        return false;
    for (;;) {
        char name[32], pname[32], pval[8];
        ows(&l);
        while (at(&l, ',')) { /* empty list elements are allowed (#rule) */
            l.i++;
            ows(&l);
        }
        if (l.i == l.n)
            return false;
        if (!token(&l, name, sizeof(name)))
            return false; /* malformed: decline everything */
        bool ours = strcasecmp(name, "permessage-deflate") == 0, ok = ours;
        unsigned seen = 0;
        ows(&l);
        while (at(&l, ';')) {
            l.i++;
            ows(&l);
            if (!token(&l, pname, sizeof(pname)))
                return false;
            ows(&l);
            bool has_value = false;
            pval[0] = '\0';
            if (at(&l, '=')) {
                l.i++;
                ows(&l);
                if (at(&l, '"') ? !quoted(&l, pval, sizeof(pval)) : !token(&l, pval, sizeof(pval)))
                    return false;
                has_value = true;
                ows(&l);
            }
            if (ours && ok)
                ok = offer_param(pname, pval, has_value, &seen);
        }
        if (l.i < l.n && !at(&l, ','))
            return false;
        if (ok) {
            strcpy(resp, "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
            if (seen & P_SMWB) /* an accepted window must be answered (7.1.2.1) */
                strcat(resp, "; server_max_window_bits=15");
            return true;
        }
    }
}

/* ---- per-thread scratch ------------------------------------------------- */

struct zctx {
    struct libdeflate_compressor *c;
    struct libdeflate_decompressor *d;
    uint8_t *buf;       /* compressed output, or inflate input with its tail */
    size_t cap;
    uint8_t *out;       /* inflated message */
    size_t out_cap;
};

static pthread_key_t zkey;
static pthread_once_t zonce = PTHREAD_ONCE_INIT;
static _Thread_local struct zctx *tz;

static void zctx_free(void *p) {
    struct zctx *z = p;
    if (!z)
        return;
    if (z->c)
        libdeflate_free_compressor(z->c);
    if (z->d)
        libdeflate_free_decompressor(z->d);
    free(z->buf);
    free(z->out);
    free(z);
}

static void zkey_make(void) { pthread_key_create(&zkey, zctx_free); }

static struct zctx *zctx_get(void) {
    if (tz)
        return tz;
    pthread_once(&zonce, zkey_make);
    struct zctx *z = calloc(1, sizeof(*z));
    if (!z || pthread_setspecific(zkey, z) != 0) {
        free(z);
        return NULL;
    }
    return tz = z;
}

void ws_deflate_thread_free(void) {
    if (!tz)
        return;
    pthread_setspecific(zkey, NULL);
    zctx_free(tz);
    tz = NULL;
}

/* Makes *p hold at least need bytes; a buffer above SCRATCH_KEEP is not
 * kept past the next call. 0 or -1 (out of memory). */
static int fit(uint8_t **p, size_t *cap, size_t need) {
    if (*cap >= need && *cap <= (need > SCRATCH_KEEP ? need : SCRATCH_KEEP))
        return 0;
    free(*p);
    *cap = 0;
    if (!(*p = malloc(need)))
        return -1;
    *cap = need;
    return 0;
}

/* ---- outbound ----------------------------------------------------------- */

size_t ws_deflate_min_bytes(void) { return cfg_min; }

long ws_deflate_compress(const uint8_t *in, size_t n, const uint8_t **out) {
    if (n < 8)
        return 0;
    struct zctx *z = zctx_get();
    if (!z || (!z->c && !(z->c = libdeflate_alloc_compressor(DEFLATE_LEVEL))) || fit(&z->buf, &z->cap, n) < 0)
        return -1;
    /* Worth it only when the result, with its 0x00 tail, is shorter. */
    size_t zn = libdeflate_deflate_compress(z->c, in, n, z->buf, n - 2);
    atomic_fetch_add_explicit(&runs, 1, memory_order_relaxed);
    if (!zn)
        return 0;
    /* libdeflate ends with a BFINAL block; one 0x00 byte starts the empty
     * stored block whose 00 00 ff ff the receiver appends (RFC 7692
     * 7.2.3.4). */
    z->buf[zn] = 0x00;
    *out = z->buf;
    return (long)zn + 1;
}

/* ---- inbound ------------------------------------------------------------ */

int ws_inflate(const uint8_t *in, size_t n, size_t max, uint8_t **out, size_t *out_len) {
    /* The 00 00 ff ff the sender removed, then an empty final block (fixed
     * Huffman, end of block): libdeflate wants a stream that ends. */
    static const uint8_t TAIL[] = {0x00, 0x00, 0xff, 0xff, 0x03, 0x00};
    struct zctx *z = zctx_get();
    if (!z || (!z->d && !(z->d = libdeflate_alloc_decompressor())) || fit(&z->buf, &z->cap, n + sizeof(TAIL)) < 0 ||
        fit(&z->out, &z->out_cap, max ? max : 1) < 0)
        return -WS_CLOSE_INTERNAL;
    if (!n) { /* no DEFLATE block at all: read as empty, as zlib-based peers do */
        *out = z->out;
        *out_len = 0;
        return 0;
    }
    memcpy(z->buf, in, n);
    memcpy(z->buf + n, TAIL, sizeof(TAIL));
    size_t got = 0;
    switch (libdeflate_deflate_decompress(z->d, z->buf, n + sizeof(TAIL), z->out, max, &got)) {
    case LIBDEFLATE_SUCCESS:
        *out = z->out;
        *out_len = got;
        return 0;
    case LIBDEFLATE_INSUFFICIENT_SPACE:
        return -WS_CLOSE_TOO_BIG;
    default:
        return -WS_CLOSE_INVALID_DATA;
    }
}
